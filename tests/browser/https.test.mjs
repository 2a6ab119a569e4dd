// Browser test of HTTPS and HTTP/2: the chat and progress examples with a self-signed
// certificate (openssl), in headless Chromium (--ignore-certificate-errors). Over HTTP/1.1 a
// browser opens at most six connections per host, shared by the tabs of one profile: a
// seventh chat tab, its page load queued behind six open EventSources, would not even load.
// Over HTTP/2 every EventSource is a stream of one connection.
//
//   SSE_CHAT_BIN=build/examples/chat SSE_PROGRESS_BIN=build/examples/progress \
//     node --test tests/browser/https.test.mjs
//
// Env: SSE_CHAT_BIN, SSE_PROGRESS_BIN (required); SSE_CHROMIUM; SSE_SCREENSHOT_DIR
// (https-chat.png, https-progress.png).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  requireBin, startServer, killOnExit, launchBrowser, openPage, openTab, recordResponses, selfSignedCert,
  screenshot, tearDown } from './harness.mjs';
import { waitForEntry, waitForState } from './chat_page.mjs';
import { readTasks, recordPercentages, watchUntilDone } from './progress_page.mjs';

const TABS = 10;
const TASKS = 10;

/** The protocol the page's own document came over (Navigation Timing), e.g. 'h2'. */
const documentProtocol = (page) =>
  page.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol);

/** Asserts that every response recorded (recordResponses) came over h2; returns their types. */
function assertAllH2(responses, what) {
  assert.ok(responses.length > 0, `${what}: no responses recorded`);
  const other = responses.filter((r) => r.protocol !== 'h2');
  assert.deepEqual(other, [], `${what}: responses not over h2`);
  return new Set(responses.map((r) => r.type));
}

describe('HTTPS and HTTP/2 in a browser', { timeout: 150_000 }, () => {
  let chatBin, progressBin, cert, chat, progress, browser;
  const contexts = [];
  const forgetLeftovers = killOnExit(() => [chat?.proc, progress?.proc]);

  before(async () => {
    chatBin = requireBin('SSE_CHAT_BIN', 'chat');
    progressBin = requireBin('SSE_PROGRESS_BIN', 'progress');
    cert = selfSignedCert();
    chat = await startServer(chatBin, { args: cert.args });
    progress = await startServer(progressBin, { args: cert.args });
    assert.match(chat.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(progress.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
  }, { timeout: 60_000 });

  after(async () => {
    await tearDown({ contexts, browser, server: chat, forgetLeftovers: null });
    await tearDown({ server: progress, forgetLeftovers });
    cert?.remove();
  }, { timeout: 30_000 });

  test(`${TABS} chat tabs on one origin all connect over h2; a message from the first and from the last reaches all`,
    { timeout: 90_000 }, async (t) => {
      // One context: its tabs share a connection pool, as a user's tabs do. Each tab loads while
      // the earlier tabs' EventSources stay open.
      const tabs = [];
      const responses = [];
      const watch = async (p) => { responses.push(await recordResponses(p)); };
      const t0 = performance.now();
      const { context, page: first } = await openPage(browser, chat.url, { beforeGoto: watch });
      contexts.push(context);
      tabs.push(first);
      for (let i = 1; i < TABS; i++) {
        await waitForState(tabs[i - 1], 'connected');
        tabs.push(await openTab(context, chat.url, { beforeGoto: watch }).catch((e) => {
          throw new Error(`tab ${i + 1} of ${TABS} did not load with ${i} chat streams open`, { cause: e });
        }));
      }
      await Promise.all(tabs.map((p, i) => waitForState(p, 'connected').catch((e) => {
        throw new Error(`tab ${i + 1} of ${TABS}: its EventSource did not open`, { cause: e });
      })));
      t.diagnostic(`${TABS} tabs loaded and connected in ${(performance.now() - t0).toFixed(0)} ms`);

      for (const from of [0, TABS - 1]) {
        const text = `from tab ${from + 1} over h2 ${Date.now()}`;
        await tabs[from].fill('#nick', `tab${from + 1}`);
        await tabs[from].fill('#text', text);
        const t1 = performance.now();
        await tabs[from].press('#text', 'Enter');
        await Promise.all(tabs.map((p, i) => waitForEntry(p, 'msg', text, `tab${from + 1}`).catch((e) => {
          throw new Error(`tab ${i + 1} did not show the message sent from tab ${from + 1}`, { cause: e });
        })));
        t.diagnostic(`tab ${from + 1} -> all ${TABS} tabs: ${(performance.now() - t1).toFixed(0)} ms`);
        assert.equal(await tabs[from].textContent('#error'), '', `tab ${from + 1} shows an error`);
      }

      for (let i = 0; i < TABS; i++) {
        assert.equal(await documentProtocol(tabs[i]), 'h2', `tab ${i + 1}'s page did not come over h2`);
        const types = assertAllH2(responses[i], `tab ${i + 1}`);
        assert.ok(types.has('EventSource'), `tab ${i + 1}: no EventSource response recorded`);
        assert.ok(types.has('Document'), `tab ${i + 1}: no document response recorded`);
      }
      assert.ok(responses[0].some((r) => r.type === 'Fetch' && new URL(r.url).pathname === '/message'),
                'the first tab\'s POST /message was not recorded');
      await screenshot(tabs[TABS - 1], 'https-chat');
    });

  test(`the progress page runs ${TASKS} tasks to completion in one tab over h2`, { timeout: 60_000 }, async (t) => {
    let responses;
    const { context, page } = await openPage(browser, progress.url,
      { beforeGoto: async (p) => { responses = await recordResponses(p); } });
    contexts.push(context);
    await recordPercentages(page);
    await page.fill('#count', String(TASKS));
    const t0 = performance.now();
    await page.click('#start');
    await page.waitForFunction((n) => document.querySelectorAll('#tasks .task').length === n, TASKS);
    const { tasks, seen } = await watchUntilDone(page, TASKS).catch(async (e) => {
      throw new Error(`not all ${TASKS} tasks finished: ${JSON.stringify(await readTasks(page))}`, { cause: e });
    });
    t.diagnostic(`${TASKS} tasks done in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(new Set(tasks.map((x) => x.id)).size, TASKS, `${TASKS} different task ids`);
    for (const x of tasks) {
      assert.equal(x.pct, '100%');
      const intermediate = [...seen.get(x.id)].filter((p) => p !== '0%' && p !== '100%');
      assert.ok(intermediate.length >= 2, `task ${x.id} showed only ${[...seen.get(x.id)]}`);
    }
    await page.waitForFunction((n) => document.getElementById('summary').textContent === `0 running · ${n} done`,
                               TASKS);
    assert.equal(await documentProtocol(page), 'h2', 'the progress page did not come over h2');
    const types = assertAllH2(responses, 'progress tab');
    assert.ok(types.has('EventSource'), 'no EventSource response recorded');
    assert.equal(responses.filter((r) => r.type === 'Fetch' && new URL(r.url).pathname === '/tasks').length, TASKS,
                 `not ${TASKS} POST /tasks recorded`);
    await screenshot(page, 'https-progress');
  });
});
