// Cross-origin use of the chat example in headless Chromium: a page on another origin (another
// port) subscribes with EventSource {withCredentials: true} and POSTs with fetch (a JSON body,
// so the browser sends a CORS preflight first); a page on an origin not allowed is blocked.
//
//   SSE_CHAT_BIN=build/examples/chat node --test tests/browser/cors.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { requireBin, startServer, killOnExit, launchBrowser, openPage, tearDown, waitUntil } from './harness.mjs';

/** The page another origin serves: it talks to the chat server at `api` across origins. */
const page = (api) => `<!doctype html><meta charset="utf-8"><title>other origin</title>
<script>
  window.got = [];
  window.errors = 0;
  const es = new EventSource(${JSON.stringify(api)} + 'listen?topic=cors&topic=chat', { withCredentials: true });
  window.es = es;
  es.onmessage = (e) => window.got.push(e.data);
  es.addEventListener('chat', (e) => window.got.push(JSON.parse(e.data).text));
  es.onerror = () => { window.errors++; };
  window.send = async (text) => {
    const r = await fetch(${JSON.stringify(api)} + 'message', {
      method: 'POST', credentials: 'include',
      headers: { 'Content-Type': 'application/json' },   // not a simple request: preflight
      body: JSON.stringify({ user: 'other-origin', text }),
    });
    return r.status;
  };
  window.publish = async (text) => {
    const r = await fetch(${JSON.stringify(api)} + 'publish?topic=cors', { method: 'POST', body: text, credentials: 'include' });
    return (await r.json()).id !== undefined;
  };
</script>`;

/** A static server on 127.0.0.1 and a free port, serving `html()` at /. */
async function pageServer(html) {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, origin: `http://127.0.0.1:${srv.address().port}` };
}

describe('chat example across origins', { timeout: 90_000 }, () => {
  let server, browser, allowed, other, api;
  const contexts = [];
  let forget;

  before(async () => {
    const bin = requireBin('SSE_CHAT_BIN', 'chat');
    allowed = await pageServer(() => page(api));
    other = await pageServer(() => page(api));
    server = await startServer(bin, { args: ['--allow-origin', allowed.origin, '--allow-credentials'] });
    api = server.url;
    forget = killOnExit(() => [server.proc]);
    browser = await launchBrowser();
  });

  after(async () => {
    await tearDown({ contexts, browser, server, forgetLeftovers: forget });
    allowed?.srv.close();
    other?.srv.close();
  });

  test('an allowed origin subscribes with credentials, posts JSON and publishes', async () => {
    const { context, page: p } = await openPage(browser, allowed.origin + '/');
    contexts.push(context);
    await p.waitForFunction(() => window.es.readyState === 1, null, { timeout: 10_000 });
    assert.equal(await p.evaluate(() => window.send('hello across origins')), 204);
    assert.equal(await p.evaluate(() => window.publish('published across origins')), true);
    await p.waitForFunction(() => window.got.includes('hello across origins') &&
                                  window.got.includes('published across origins'), null, { timeout: 10_000 });
    assert.equal(await p.evaluate(() => window.errors), 0);
  });

  test('an origin not allowed is blocked: no stream, no post', async () => {
    const { context, page: p } = await openPage(browser, other.origin + '/');
    contexts.push(context);
    // A CORS failure fails the EventSource for good: CLOSED, no reconnect.
    await p.waitForFunction(() => window.es.readyState === 2, null, { timeout: 10_000 });
    const sent = await p.evaluate(() => window.send('must not arrive').then(() => 'sent', (e) => e.name));
    assert.equal(sent, 'TypeError');
    // And nothing it tried reached the room: the allowed page never sees it.
    const { context: c2, page: watcher } = await openPage(browser, allowed.origin + '/');
    contexts.push(c2);
    await watcher.waitForFunction(() => window.es.readyState === 1, null, { timeout: 10_000 });
    await watcher.evaluate(() => window.publish('marker'));
    await watcher.waitForFunction(() => window.got.includes('marker'), null, { timeout: 10_000 });
    assert.ok(!(await watcher.evaluate(() => window.got.includes('must not arrive'))));
    await waitUntil(async () => (await p.evaluate(() => window.got.length)) === 0, { what: 'blocked page got nothing' });
  });
});
