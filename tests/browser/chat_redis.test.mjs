// Browser test of the chat example on Redis (issue #9): a real redis-server and two chat
// processes on it (--redis), tab 1 on process A and tab 2 on process B, in headless Chromium
// through playwright-core. The two processes are one room; a tab that reconnects to B resumes
// from an id A gave; a fresh tab shows only what comes live (the page asks for no replay), and
// a client resuming on B with Last-Event-ID gets exactly what it missed.
//
//   SSE_CHAT_BIN=build/examples/chat node --test tests/browser/chat_redis.test.mjs
//
// Env: SSE_CHAT_BIN (required) path of a chat binary built with the Redis component;
// SSE_REDIS_SERVER (default redis-server from PATH); SSE_CHROMIUM (default /usr/bin/chromium);
// SSE_SCREENSHOT_DIR (optional) where chat-redis.png is saved.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  UI_TIMEOUT_MS, requireBin, startServer, stopServer, exited, killOnExit, launchBrowser, openPage,
  screenshot, tearDown, waitUntil, sleep } from './harness.mjs';
import { waitForEntry, waitForState } from './chat_page.mjs';

const REDIS = process.env.SSE_REDIS_SERVER || 'redis-server';

// ---- a redis-server of the test's own ----------------------------------------------------

/** A port the kernel just handed out (bound to port 0, then released). */
async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Resolves to true when something on `port` answers PING with +PONG within 500 ms. */
function pings(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(500, () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => { got += d; if (got.includes('\r\n')) done(got.startsWith('+PONG')); });
    sock.on('error', () => done(false));
  });
}

/** redis-server on a free port in a temp dir: { proc, port, dir }. Retries if the port is taken. */
async function startRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sse-chat-redis-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
                               '--appendonly', 'no', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log')],
                       { stdio: 'ignore' });
    const failed = new Promise((r) => { proc.on('error', r); proc.on('exit', r); });
    let gone = false;
    failed.then(() => { gone = true; });
    const end = performance.now() + 10_000;
    while (!gone && performance.now() < end) {
      if (await pings(port)) return { proc, port, dir };
      await sleep(50);    // a process' start: nothing to wait on
    }
    if (!gone) proc.kill('SIGKILL');
  }
  let log = '';
  try { log = readFileSync(path.join(dir, 'redis.log'), 'utf8').slice(-2000); } catch { /* none */ }
  throw new Error(`${REDIS} did not start (Debian package redis-server); its log: ${log}`);
}

async function stopRedis(redis) {
  if (!redis) return;
  if (!exited(redis.proc)) {
    const gone = once(redis.proc, 'exit');
    redis.proc.kill('SIGKILL');
    await gone;
  }
  rmSync(redis.dir, { recursive: true, force: true });
}

// ---- HTTP from the test script -------------------------------------------------------------

async function post(url, body, headers = {}) {
  const res = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, text };
}
const postMessage = (url, user, text) =>
  post(url + 'message', JSON.stringify({ user, text }), { 'Content-Type': 'application/json' });

/** Resolves once GET /listen on `url` answers 200 (it answers 503 until the node is on Redis). */
async function waitForRedis(url) {
  await waitUntil(() => new Promise((resolve) => {
    const req = http.get(url + 'listen', (res) => { res.destroy(); resolve(res.statusCode === 200); });
    req.setTimeout(2000, () => { req.destroy(); resolve(false); });
    req.on('error', () => resolve(false));
  }), { timeout: 10_000, interval: 100, what: `${url} to be connected to Redis` });
}

/**
 * GET /listen on `url` with `headers` through Node's own http client (EventSource cannot set
 * Last-Event-ID): { status, events, close, wait(pred) }, events parsed as they come
 * ({ id, event, data }; comments and the chat's presence lists skipped).
 */
function openStream(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const events = [];
    let buf = '';
    const req = http.get(url + 'listen', { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buf += chunk.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const ev = { id: undefined, event: 'message', data: [] };
          let any = false;
          for (const line of block.split('\n')) {
            const m = /^([^:]+): ?(.*)$/.exec(line);
            if (!m) continue;                                    // a comment (heartbeat)
            if (m[1] === 'id') { ev.id = m[2]; any = true; }
            else if (m[1] === 'event') { ev.event = m[2]; any = true; }
            else if (m[1] === 'data') { ev.data.push(m[2]); any = true; }
          }
          // stricter than EventSource; presence lists are each process's own, not replayed
          if (any && ev.event !== 'presence') events.push({ ...ev, data: ev.data.join('\n') });
        }
      });
      res.on('error', () => {});
      resolve({
        status: res.statusCode, events,
        close: () => req.destroy(),
        wait: (pred, what) => waitUntil(() => events.some(pred), { timeout: 5000, what }),
      });
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('stream idle for 15 s')));
  });
}

// ---- helpers in the page (more in chat_page.mjs) ------------------------------------------

/** Every entry of #messages as "user: text" (chat) or "notice: text". */
const entries = (page) =>
  page.$$eval('#messages li', (els) => els.map((e) =>
    `${e.classList.contains('notice') ? 'notice' : e.querySelector('.user')?.textContent}: ` +
    e.querySelector('.text')?.textContent));

// ---- the tests -------------------------------------------------------------------------------

describe('chat example on Redis: two processes, one room', { timeout: 120_000 }, () => {
  let CHAT_BIN;
  let redis, serverA, serverB, browser;
  const contexts = [];
  let tab1, tab2;       // tab 1 on process A, tab 2 on process B

  const forgetLeftovers = killOnExit(() => [redis?.proc, serverA?.proc, serverB?.proc]);

  async function openTab(server, viewport = { width: 960, height: 640 }) {
    const { context, page } = await openPage(browser, server.url, { viewport });
    contexts.push(context);
    return { context, page };
  }

  before(async () => {
    CHAT_BIN = requireBin('SSE_CHAT_BIN', 'chat');
    redis = await startRedis();
    const args = ['--redis', `127.0.0.1:${redis.port}`];
    [serverA, serverB] = await Promise.all([startServer(CHAT_BIN, { args }), startServer(CHAT_BIN, { args })]);
    assert.notEqual(serverA.port, serverB.port);
    // A page whose first GET /listen gets 503 waits a few seconds before it tries again: open
    // the tabs once both processes are on Redis.
    await Promise.all([waitForRedis(serverA.url), waitForRedis(serverB.url)]);
    browser = await launchBrowser();
    tab1 = (await openTab(serverA, { width: 390, height: 760 })).page;
    tab2 = (await openTab(serverB)).page;
  }, { timeout: 60_000 });

  after(async () => {
    await tearDown({ contexts, browser });
    await Promise.all([stopServer(serverA?.proc), stopServer(serverB?.proc)]);
    await stopRedis(redis);
    forgetLeftovers();
  }, { timeout: 30_000 });

  test('a message typed in tab 1 (process A) shows up in tab 2 (process B), and back', { timeout: 30_000 },
    async (t) => {
      await Promise.all([waitForState(tab1, 'connected'), waitForState(tab2, 'connected')]);
      const one = 'from tab 1 on A <b>not bold</b>';
      await tab1.fill('#nick', 'alice');
      await tab1.fill('#text', one);
      const t0 = performance.now();
      await tab1.press('#text', 'Enter');
      await waitForEntry(tab2, 'msg', one, 'alice', 5000);
      t.diagnostic(`tab 1 Enter -> tab 2 on the other process shows it: ${(performance.now() - t0).toFixed(0)} ms`);
      await waitForEntry(tab1, 'msg', one, 'alice');
      await tab1.waitForFunction(() => document.getElementById('text').value === '');

      const two = 'from tab 2 on B ✓';
      await tab2.fill('#nick', 'bob');
      await tab2.fill('#text', two);
      await tab2.click('#send');
      await Promise.all([waitForEntry(tab1, 'msg', two, 'bob'), waitForEntry(tab2, 'msg', two, 'bob')]);
      for (const page of [tab1, tab2]) {
        assert.deepEqual(await entries(page), [`alice: ${one}`, `bob: ${two}`]);
        assert.equal(await page.locator('#messages b').count(), 0, 'markup in a message was rendered as HTML');
        assert.equal(await page.textContent('#error'), '');
      }
      await screenshot(tab2, 'chat-redis');
    });

  test('tab 2 reconnects to B from the last id it saw and gets exactly what A published meanwhile',
    { timeout: 30_000 }, async () => {
      const before = await entries(tab2);
      const lastSeen = await tab2.evaluate(() => window.sseChat.lastId());
      assert.ok(lastSeen, 'tab 2 remembered no event id');
      await tab2.evaluate(() => window.sseChat.pause());
      const missed = [1, 2, 3].map((i) => `missed ${i} ${Date.now()}`);
      for (const m of missed) assert.equal((await postMessage(serverA.url, 'carol', m)).status, 204);
      await Promise.all(missed.map((m) => waitForEntry(tab1, 'msg', m, 'carol')));  // A's tab saw them live
      assert.deepEqual(await entries(tab2), before, 'a paused tab must not receive events');
      await tab2.evaluate(() => window.sseChat.reconnect());   // GET /listen?lastEventId= on B
      await waitForState(tab2, 'connected');
      const live = `live after the reconnect ${Date.now()}`;
      assert.equal((await postMessage(serverA.url, 'carol', live)).status, 204);
      await waitForEntry(tab2, 'msg', live, 'carol');
      assert.deepEqual(await entries(tab2), [...before, ...[...missed, live].map((m) => `carol: ${m}`)],
                       'the replay must hold exactly the missed messages, in order, then live ones');
    });

  test('a tab on B closed and opened again: the page shows what comes live; Last-Event-ID on B resumes',
    { timeout: 40_000 }, async (t) => {
      const lastSeen = await tab2.evaluate(() => window.sseChat.lastId());
      const lastEntry = (await entries(tab2)).at(-1);
      assert.ok(lastSeen && lastEntry);
      t.diagnostic(`tab 2 closed after "${lastEntry}" (id ${lastSeen})`);
      const context = tab2.context();
      contexts.splice(contexts.indexOf(context), 1);
      await context.close();

      const missed = [1, 2, 3].map((i) => `while tab 2 was closed ${i} ${Date.now()}`);
      const ids = [];
      for (const m of missed) {
        const r = await post(serverA.url + 'publish', m);
        assert.equal(r.status, 200, `POST /publish on A answered ${r.status}: ${r.text}`);
        ids.push(JSON.parse(r.text).id);
      }
      assert.equal(new Set(ids).size, 3, `ids are not distinct: ${ids}`);

      // A fresh load of the page opens GET /listen without an id: it shows only what comes live.
      const { page: tab3 } = await openTab(serverB);
      await waitForState(tab3, 'connected');
      const marker = `live for the new tab ${Date.now()}`;
      assert.equal((await post(serverA.url + 'publish', marker)).status, 200);
      await waitForEntry(tab3, 'notice', marker);
      assert.deepEqual(await entries(tab3), [`notice: ${marker}`],
                       'a freshly loaded page shows live messages only (it asks for no replay)');

      // The resume itself, with the Last-Event-ID the closed tab had (from Node: EventSource
      // cannot set the header): exactly the three missed events, in order, under A's ids.
      const stream = await openStream(serverB.url, { 'Last-Event-ID': lastSeen });
      try {
        assert.equal(stream.status, 200);
        await stream.wait((e) => e.data === marker, 'the resumed stream to reach the marker');
        const after = `after the resume ${Date.now()}`;
        assert.equal((await post(serverB.url + 'publish', after)).status, 200);
        await stream.wait((e) => e.data === after, 'a live event on the resumed stream');
        await sleep(200);   // anything doubled would come with or right after it
        assert.deepEqual(stream.events.map((e) => e.data), [...missed, marker, after]);
        assert.deepEqual(stream.events.slice(0, 3).map((e) => e.id), ids,
                         'the replayed events must carry the ids A answered');
        assert.ok(stream.events.every((e) => e.event === 'message'));
      } finally {
        stream.close();
      }
    });
});
