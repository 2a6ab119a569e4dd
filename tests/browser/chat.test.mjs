// Browser test of the chat example: drives examples/chat/page.html, served by the real
// `chat` binary, in headless Chromium through playwright-core.
//
//   SSE_CHAT_BIN=build/examples/chat node --test tests/browser/chat.test.mjs
//
// Env: SSE_CHAT_BIN (required) path of the chat binary; SSE_CHROMIUM (default
// /usr/bin/chromium); SSE_SCREENSHOT_DIR (optional) where chat.png is saved.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  UI_TIMEOUT_MS, requireBin, startServer, startServerOn, stopServer, killOnExit, launchBrowser, openPage,
  screenshot, tearDown } from './harness.mjs';
import { waitForEntry, waitForState } from './chat_page.mjs';

// ---- helpers in the page ----------------------------------------------------------------

const noticeTexts = (page) =>
  page.$$eval('#messages .notice .text', (els) => els.map((e) => e.textContent));

async function publish(url, body) {
  return fetch(url + 'publish', { method: 'POST', body, signal: AbortSignal.timeout(5000) });
}

// ---- the tests ----------------------------------------------------------------------------

describe('chat example in a browser', { timeout: 120_000 }, () => {
  let CHAT_BIN;
  let server;        // { proc, url }
  let browser;
  const contexts = [];
  let pageA, pageB;

  const forgetLeftovers = killOnExit(() => [server?.proc]);

  async function openTab(viewport, nick) {
    // A nickname remembered from an earlier visit, so the first stream is already listed under it.
    const init = nick ? `try { localStorage.setItem('sse-chat.nick', ${JSON.stringify(nick)}); } catch {}` : undefined;
    const { context, page } = await openPage(browser, server.url, { viewport, init });
    contexts.push(context);
    return { context, page };
  }

  before(async () => {
    CHAT_BIN = requireBin('SSE_CHAT_BIN', 'chat');
    server = await startServer(CHAT_BIN);
    browser = await launchBrowser();
    pageA = (await openTab({ width: 390, height: 760 })).page;   // phone width
    pageB = (await openTab({ width: 960, height: 640 })).page;
  }, { timeout: 60_000 });

  after(async () => {
    await tearDown({ contexts, browser, server, forgetLeftovers });
  }, { timeout: 30_000 });

  test('a message typed in tab A shows up in tab B within 1 s, as text', { timeout: 30_000 }, async (t) => {
    await Promise.all([waitForState(pageA, 'connected'), waitForState(pageB, 'connected')]);
    const message = '<b>not bold</b> & "quotes"';
    await pageA.fill('#nick', 'alice');
    await pageA.fill('#text', message);

    const t0 = performance.now();
    await pageA.press('#text', 'Enter');
    await waitForEntry(pageB, 'msg', message, 'alice', 5000);
    const elapsed = performance.now() - t0;
    t.diagnostic(`tab A Enter -> tab B shows it: ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed < 1000, `message took ${elapsed.toFixed(0)} ms to reach tab B`);

    await waitForEntry(pageA, 'msg', message, 'alice');
    await pageA.waitForFunction(() => document.getElementById('text').value === '');
    for (const page of [pageA, pageB]) {
      assert.equal(await page.locator('#messages b').count(), 0, 'markup in a message was rendered as HTML');
    }
    assert.equal(await pageA.evaluate(() => localStorage.getItem('sse-chat.nick')), 'alice');

    await screenshot(pageB, 'chat');
  });

  test('the Send button sends too', { timeout: 30_000 }, async () => {
    await pageB.fill('#nick', 'bob');
    const message = 'sent with the button ✓';
    await pageB.fill('#text', message);
    await pageB.click('#send');
    await Promise.all([waitForEntry(pageA, 'msg', message, 'bob'), waitForEntry(pageB, 'msg', message, 'bob')]);
    await pageB.waitForFunction(() => document.getElementById('text').value === '');
    assert.equal(await pageB.textContent('#error'), '');
  });

  test('POST /publish shows the text, verbatim, as a notice in every tab', { timeout: 30_000 }, async () => {
    const text = 'line one\nline two <i>x</i>';
    const res = await publish(server.url, text);
    assert.ok(res.ok, `POST /publish answered ${res.status}`);
    await Promise.all([pageA, pageB].map((p) => waitForEntry(p, 'notice', text)));
    for (const page of [pageA, pageB]) {
      assert.equal(await page.locator('#messages i').count(), 0, 'markup in a notice was rendered as HTML');
    }
  });

  test('POST /publish with a body that is not UTF-8 answers 400 and publishes nothing', { timeout: 30_000 },
    async () => {
      const before = await Promise.all([pageA, pageB].map(noticeTexts));
      for (const bad of [Buffer.from([0xff, 0xfe]), Buffer.from([0x61, 0x0a, 0xff, 0xfe, 0x62])]) {
        const res = await publish(server.url, bad);
        assert.equal(res.status, 400, `POST /publish of bytes ${bad.toString('hex')} answered ${res.status}`);
        await res.text();
      }
      // Events on a stream are ordered: once a later marker has arrived, the bad body would
      // have arrived too had it been published.
      const marker = `marker after the bad body ${Date.now()}`;
      assert.ok((await publish(server.url, marker)).ok);
      await Promise.all([pageA, pageB].map((p) => waitForEntry(p, 'notice', marker)));
      const afterwards = await Promise.all([pageA, pageB].map(noticeTexts));
      for (let i = 0; i < 2; i++) assert.deepEqual(afterwards[i], [...before[i], marker]);
    });

  test('a tab that was away gets exactly the messages it missed when it reconnects', { timeout: 30_000 },
    async () => {
      const before = await noticeTexts(pageB);
      await pageB.evaluate(() => window.sseChat.pause());
      const missed = [1, 2, 3].map((i) => `missed ${i} ${Date.now()}`);
      for (const m of missed) assert.ok((await publish(server.url, m)).ok);
      await Promise.all(missed.map((m) => waitForEntry(pageA, 'notice', m)));   // A saw them live
      assert.deepEqual(await noticeTexts(pageB), before, 'a paused tab must not receive events');
      await pageB.evaluate(() => window.sseChat.reconnect());                   // ?lastEventId=
      await waitForEntry(pageB, 'notice', missed[2]);
      const live = `live after the reconnect ${Date.now()}`;
      assert.ok((await publish(server.url, live)).ok);
      await waitForEntry(pageB, 'notice', live);
      assert.deepEqual(await noticeTexts(pageB), [...before, ...missed, live],
                       'the replay must hold exactly the missed events, in order, then live ones');
    });

  test('every tab shows who is in the room, live: two tabs of one name count once, a closed tab leaves',
    { timeout: 45_000 }, async (t) => {
      const viewport = { width: 960, height: 640 };
      const carol = (await openTab(viewport, 'carol')).page;
      const dave = await openTab(viewport, 'dave');
      const carol2 = await openTab(viewport, 'carol');
      const listed = (page, names) => page.waitForFunction(
        (names) => names.every((n) => window.sseChat.people().includes(n)), names);
      await Promise.all([carol, dave.page, carol2.page].map((p) => listed(p, ['carol', 'dave'])));
      assert.equal(await carol.textContent('#people li.me'), 'carol (you)');
      assert.equal((await carol.evaluate(() => window.sseChat.people())).filter((n) => n === 'carol').length, 1);

      await carol2.context.close();                       // carol still has a tab open
      const t0 = performance.now();
      await dave.context.close();
      await carol.waitForFunction(() => !window.sseChat.people().includes('dave'), null, { timeout: 5000 });
      const elapsed = performance.now() - t0;
      t.diagnostic(`tab closed -> the other tab shows it left: ${elapsed.toFixed(0)} ms`);
      assert.ok(elapsed < 3000, `leaving took ${elapsed.toFixed(0)} ms to show`);
      await carol.waitForFunction(() => [...document.querySelectorAll('#messages .presence')]
        .some((e) => e.textContent === 'dave left the room'));
      assert.ok((await carol.evaluate(() => window.sseChat.people())).includes('carol'),
                'closing one of two tabs of a name must not list it as gone');
      assert.equal(await carol.locator('#messages .presence', { hasText: 'carol left' }).count(), 0);
      await screenshot(carol, 'chat-presence');
    });

  test('the status goes to reconnecting when the server dies and back to connected when it returns',
    { timeout: 60_000 }, async (t) => {
      const port = Number(new URL(server.url).port);
      assert.ok(port > 0, `no port in ${server.url}`);
      await Promise.all([waitForState(pageA, 'connected'), waitForState(pageB, 'connected')]);

      await stopServer(server.proc);
      await Promise.all([pageA, pageB].map((p) => waitForState(p, 'reconnecting', 15_000)));

      server = await startServerOn(CHAT_BIN, port);
      const t0 = performance.now();
      // Chromium retries about every 3 s when no `retry` field was sent; allow for several tries.
      await Promise.all([pageA, pageB].map((p) => waitForState(p, 'connected', 30_000)));
      t.diagnostic(`reconnected ${(performance.now() - t0).toFixed(0)} ms after the restart`);

      // The new stream is live.
      const text = 'back again';
      assert.ok((await publish(server.url, text)).ok);
      await Promise.all([pageA, pageB].map((p) => waitForEntry(p, 'notice', text)));
    });
});
