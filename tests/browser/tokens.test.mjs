// Browser test of the tokens example: a reply appears word by word, is the same for the same
// prompt and seed, Stop makes the server stop generating, and a plain EventSource (without the
// page's own close) stops after `done` instead of getting the reply again.
//
//   SSE_TOKENS_BIN=build/examples/tokens node --test tests/browser/tokens.test.mjs
//
// Env: SSE_TOKENS_BIN (required); SSE_CHROMIUM; SSE_SCREENSHOT_DIR (tokens.png).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  requireBin, startServer, stopServer, killOnExit, launchBrowser, openPage, screenshot, getJson, waitUntil, sleep, tearDown } from './harness.mjs';

const PROMPT = 'Alice was beginning to get very';

const replyText = (page) => page.evaluate(() => document.getElementById('reply')?.textContent ?? '');
const state = (page) => page.evaluate(() => document.getElementById('state').dataset.state);

/** Fills the form and clicks Generate. */
async function generate(page, { prompt = PROMPT, seed = 42, max = 60 } = {}) {
  await page.fill('#prompt', prompt);
  await page.fill('#seed', String(seed));
  await page.fill('#max', String(max));
  await page.click('#generate');
}

/** Polls the reply until the page says done; the lengths it went through and the final text. */
async function watchReply(page, timeout = 30_000) {
  const lengths = [];
  const end = performance.now() + timeout;
  for (;;) {
    const [text, st] = await Promise.all([replyText(page), state(page)]);
    if (lengths[lengths.length - 1] !== text.length) lengths.push(text.length);
    if (st === 'done') return { lengths, text };
    if (st !== 'generating') throw new Error(`reply ended in state ${st}`);
    if (performance.now() > end) throw new Error(`no done within ${timeout} ms`);
    await sleep(10);
  }
}

describe('tokens example in a browser', { timeout: 120_000 }, () => {
  let bin, server, browser, page;
  const contexts = [];
  const forgetLeftovers = killOnExit(() => [server?.proc]);

  before(async () => {
    bin = requireBin('SSE_TOKENS_BIN', 'tokens');
    server = await startServer(bin);            // the default 30 ms per token
    browser = await launchBrowser();
    const opened = await openPage(browser, server.url, { viewport: { width: 900, height: 620 } });
    contexts.push(opened.context);
    page = opened.page;
  }, { timeout: 60_000 });

  after(async () => {
    await tearDown({ contexts, browser, server, forgetLeftovers });
  }, { timeout: 30_000 });

  let first;
  test('a reply with a fixed seed appears word by word and ends done', { timeout: 30_000 }, async (t) => {
    const t0 = performance.now();
    await generate(page);
    await page.waitForFunction(() => document.getElementById('reply')?.textContent.split(' ').length > 20);
    await screenshot(page, 'tokens-generating');
    const { lengths, text } = await watchReply(page);
    t.diagnostic(`60 tokens in ${(performance.now() - t0).toFixed(0)} ms; ${lengths.length} lengths seen`);
    const intermediate = lengths.filter((n) => n > 0 && n < text.length);
    assert.ok(intermediate.length >= 3, `only these lengths were seen: ${lengths}`);
    for (let i = 1; i < lengths.length; i++) assert.ok(lengths[i] > lengths[i - 1], `lengths went ${lengths}`);
    assert.equal(text.trim().split(/\s+/).length, 60, `not 60 words: ${JSON.stringify(text)}`);
    assert.match(await page.textContent('#count'), /^60 \/ 60 tokens$/);
    assert.equal(await page.textContent('#output .echo'), PROMPT);
    first = text;
    await screenshot(page, 'tokens');
  });

  test('the same prompt and seed give the same text; another seed another', { timeout: 40_000 }, async () => {
    assert.ok(first, 'the first test did not produce a reply');
    await generate(page);
    const again = await watchReply(page);
    assert.equal(again.text, first);

    // The stream bytes say the same as the page.
    const url = `${server.url}generate?prompt=${encodeURIComponent(PROMPT)}&seed=42&max_tokens=60`;
    const body = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
    const tokens = [...body.matchAll(/^event: token\nid: \d+\ndata: (.*)$/gm)].map((m) => m[1]);
    assert.equal(tokens.length, 60);
    assert.equal(tokens.join(''), first);
    assert.match(body, /event: done\nid: done\ndata: \{"tokens":60\}\n\n$/);

    await generate(page, { seed: 43 });
    const other = await watchReply(page);
    assert.notEqual(other.text, first);
  });

  test('Stop closes the stream: the server cancels the reply within 2 s', { timeout: 30_000 }, async (t) => {
    const before = await getJson(server.url + 'stats');
    await generate(page, { max: 2000 });
    await page.waitForFunction(() => document.getElementById('reply')?.textContent.split(' ').length > 10);
    await waitUntil(async () => (await getJson(server.url + 'stats')).active === 1, { what: 'active 1' });
    const t0 = performance.now();
    await page.click('#stop');
    assert.equal(await state(page), 'stopped');
    const stats = await waitUntil(async () => {
      const s = await getJson(server.url + 'stats');
      return s.cancelled >= before.cancelled + 1 && s.active === 0 ? s : null;
    }, { timeout: 2000, interval: 20, what: 'cancelled + 1 and active 0' });
    t.diagnostic(`cancelled ${(performance.now() - t0).toFixed(0)} ms after Stop: ${JSON.stringify(stats)}`);
    const length = (await replyText(page)).length;
    await sleep(200);
    assert.equal((await replyText(page)).length, length, 'the reply kept growing after Stop');
    assert.equal(stats.completed, before.completed);
    await screenshot(page, 'tokens-stopped');
  });

  test('a plain EventSource gets the reply once: after done the reconnect is refused and it stops',
    { timeout: 30_000 }, async (t) => {
      const before = await getJson(server.url + 'stats');
      // No close() on `done`, as any client but the bundled page: EventSource reconnects when the
      // stream ends (after the server's retry, 3-4 s) with Last-Event-ID; it must be told 204.
      const url = `/generate?prompt=${encodeURIComponent(PROMPT)}&seed=42&max_tokens=10`;
      const seen = await page.evaluate((u) => new Promise((resolve) => {
        const es = new EventSource(u);
        const r = { tokens: 0, done: 0, errors: 0, opens: 0 };
        const end = (how) => { es.close(); resolve({ ...r, how }); };
        es.onopen = () => { r.opens++; };
        es.addEventListener('token', () => { r.tokens++; });
        es.addEventListener('done', () => { if (++r.done > 1) end('done twice'); });
        es.onerror = () => { r.errors++; if (es.readyState === EventSource.CLOSED) end('closed'); };
        setTimeout(() => end('still open after 15 s'), 15_000);
      }), url);
      t.diagnostic(JSON.stringify(seen));
      assert.equal(seen.how, 'closed', `the EventSource did not stop: ${JSON.stringify(seen)}`);
      assert.equal(seen.done, 1);
      assert.equal(seen.tokens, 10);
      assert.equal(seen.opens, 1, 'the reconnect after done was accepted');
      const after = await getJson(server.url + 'stats');
      assert.equal(after.completed, before.completed + 1, 'the reply was generated more than once');
    });
});
