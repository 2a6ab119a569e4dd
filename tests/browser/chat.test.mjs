// Browser test of the chat example: drives examples/chat/page.html, served by the real
// `chat` binary, in headless Chromium through playwright-core.
//
//   SSE_CHAT_BIN=build/examples/chat/chat node --test tests/browser/chat.test.mjs
//
// Env: SSE_CHAT_BIN (required) path of the chat binary; SSE_CHROMIUM (default
// /usr/bin/chromium); SSE_SCREENSHOT_DIR (optional) where chat.png is saved.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHAT_BIN = process.env.SSE_CHAT_BIN;
const CHROMIUM = process.env.SSE_CHROMIUM || '/usr/bin/chromium';
const SHOT_DIR = process.env.SSE_SCREENSHOT_DIR;
const START_TIMEOUT_MS = 10_000;
const UI_TIMEOUT_MS = 10_000;

// ---- chat server process -------------------------------------------------------------

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/** Spawns the chat binary and resolves to { proc, url } once it prints its URL. */
function startServer(port) {
  return new Promise((resolve, reject) => {
    const proc = spawn(CHAT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--threads', '2'],
                       { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { if (!exited(proc)) proc.kill('SIGKILL'); reject(err); } else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(
      `chat did not print its URL within ${START_TIMEOUT_MS} ms; stdout so far: ${JSON.stringify(out)}`)),
      START_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {       // keeps draining after the URL, so the pipe never fills
      if (done) return;
      out += chunk;
      const m = /http:\/\/[^\s]+/.exec(out);
      if (m) finish(null, { proc, url: m[0].endsWith('/') ? m[0] : m[0] + '/' });
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${CHAT_BIN}: ${e.message}`)));
    proc.on('exit', (code, sig) => finish(new Error(
      `chat exited (code ${code}, signal ${sig}) before printing its URL; stdout: ${JSON.stringify(out)}`)));
  });
}

/** SIGTERM, wait up to 5 s for the exit, then SIGKILL. */
async function stopServer(proc) {
  if (!proc || exited(proc)) return;
  const gone = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timedOut = await Promise.race([
    gone.then(() => false),
    new Promise((r) => setTimeout(r, 5000, true).unref()),
  ]);
  if (timedOut && !exited(proc)) {
    proc.kill('SIGKILL');
    await gone;
  }
}

/** Restart on a fixed port; the old socket may linger briefly, so retry a bounded number of times. */
async function startServerOn(port) {
  let last;
  for (let attempt = 0; attempt < 20; attempt++) {
    try { return await startServer(port); } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw last;
}

// ---- helpers in the page ----------------------------------------------------------------

const waitForState = (page, state, timeout = UI_TIMEOUT_MS) =>
  page.waitForFunction((s) => document.getElementById('status')?.dataset.state === s, state, { timeout });

/** Waits until #messages holds an entry of `kind` ('msg' | 'notice') with exactly this text (and user). */
const waitForEntry = (page, kind, text, user, timeout = UI_TIMEOUT_MS) =>
  page.waitForFunction(([kind, text, user]) =>
    [...document.querySelectorAll(`#messages .${kind}`)].some((e) =>
      e.querySelector('.text')?.textContent === text &&
      (user === null || e.querySelector('.user')?.textContent === user)),
  [kind, text, user ?? null], { timeout });

const noticeTexts = (page) =>
  page.$$eval('#messages .notice .text', (els) => els.map((e) => e.textContent));

async function publish(url, body) {
  return fetch(url + 'publish', { method: 'POST', body, signal: AbortSignal.timeout(5000) });
}

// ---- the tests ----------------------------------------------------------------------------

describe('chat example in a browser', { timeout: 120_000 }, () => {
  let server;        // { proc, url }
  let browser;
  const contexts = [];
  let pageA, pageB;

  const killLeftovers = () => { if (server && !exited(server.proc)) server.proc.kill('SIGKILL'); };
  process.on('exit', killLeftovers);

  async function openTab(viewport) {
    const context = await browser.newContext({ viewport });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(server.url, { timeout: UI_TIMEOUT_MS });
    return page;
  }

  before(async () => {
    if (!CHAT_BIN) {
      throw new Error('SSE_CHAT_BIN is not set: point it at the built chat example, ' +
                      'e.g. SSE_CHAT_BIN=build/examples/chat/chat node --test tests/browser/chat.test.mjs');
    }
    try { accessSync(CHAT_BIN, constants.X_OK); } catch {
      throw new Error(`SSE_CHAT_BIN=${CHAT_BIN} is not an executable file`);
    }
    server = await startServer(0);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
             '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    pageA = await openTab({ width: 390, height: 760 });   // phone width
    pageB = await openTab({ width: 960, height: 640 });
  }, { timeout: 60_000 });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    if (server) await stopServer(server.proc);
    process.off('exit', killLeftovers);
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

    if (SHOT_DIR) {
      mkdirSync(SHOT_DIR, { recursive: true });
      await pageB.screenshot({ path: path.join(SHOT_DIR, 'chat.png') });
    }
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

  test('the status goes to reconnecting when the server dies and back to connected when it returns',
    { timeout: 60_000 }, async (t) => {
      const port = Number(new URL(server.url).port);
      assert.ok(port > 0, `no port in ${server.url}`);
      await Promise.all([waitForState(pageA, 'connected'), waitForState(pageB, 'connected')]);

      await stopServer(server.proc);
      await Promise.all([pageA, pageB].map((p) => waitForState(p, 'reconnecting', 15_000)));

      server = await startServerOn(port);
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
