// Browser test of the dashboard example: samples arrive and the canvas charts draw; a page
// opened later gets the last minute at once from the server's history.
//
//   SSE_DASHBOARD_BIN=build/examples/dashboard node --test tests/browser/dashboard.test.mjs
//
// Env: SSE_DASHBOARD_BIN (required); SSE_CHROMIUM; SSE_SCREENSHOT_DIR (dashboard.png).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  requireBin, startServer, stopServer, killOnExit, launchBrowser, openPage, screenshot, sleep,
} from './harness.mjs';

// Runs in the page before its own script: notes when each `metrics` event arrives (listeners
// added in the constructor run before the page's own).
const recordArrivals = () => {
  window.__arrivals = [];
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('metrics', () => window.__arrivals.push(performance.now()));
    }
  };
};

const samplesShown = (page) => page.evaluate(() => Number(document.body.dataset.samples || 0));

/** For each chart: how many pixels are drawn at all, and how many are close to its series colour. */
const chartPixels = (page) => page.evaluate(() => {
  const near = (hex, r, g, b) => {
    const n = parseInt(hex.slice(1), 16);
    return Math.abs(r - (n >> 16)) + Math.abs(g - ((n >> 8) & 255)) + Math.abs(b - (n & 255)) < 60;
  };
  const color = (v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim();
  // Lines at the same value overlap (on an idle network rx and tx are both 0): any series counts.
  const charts = { 'cpu-chart': ['--cpu'], 'mem-chart': ['--mem'], 'load-chart': ['--load1', '--load5', '--load15'],
                   'net-chart': ['--rx', '--tx'] };
  const out = {};
  for (const [id, vars] of Object.entries(charts)) {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const hexes = vars.map(color);
    let drawn = 0, series = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      drawn++;
      if (d[i + 3] > 150 && hexes.some((hex) => near(hex, d[i], d[i + 1], d[i + 2]))) series++;
    }
    out[id] = { drawn, series, width: c.width, height: c.height };
  }
  return out;
});

describe('dashboard example in a browser', { timeout: 120_000 }, () => {
  let bin, server, browser;
  const contexts = [], servers = [];
  const forgetLeftovers = killOnExit(() => servers.map((x) => x.proc));

  async function start(args = []) {
    server = await startServer(bin, { args });
    servers.push(server);
    return server;
  }

  async function open(viewport) {
    const { context, page } = await openPage(browser, server.url, { viewport, init: recordArrivals });
    contexts.push(context);
    return page;
  }

  before(async () => {
    bin = requireBin('SSE_DASHBOARD_BIN', 'dashboard');
    browser = await launchBrowser();
  }, { timeout: 60_000 });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    for (const x of servers) await stopServer(x.proc);
    forgetLeftovers();
  }, { timeout: 30_000 });

  test('samples arrive every second and the four charts draw them', { timeout: 40_000 }, async (t) => {
    await start();                                 // the default 1 s interval
    const page = await open({ width: 1100, height: 760 });
    await page.waitForFunction(() => Number(document.body.dataset.samples || 0) >= 3, null, { timeout: 10_000 });
    await page.waitForTimeout(100);               // the frame after the third sample

    const texts = await page.evaluate(() => Object.fromEntries(
      ['cpu-now', 'mem-now', 'mem-abs', 'load1-now', 'load5-now', 'load15-now', 'rx-now', 'tx-now', 'samples']
        .map((id) => [id, document.getElementById(id).textContent])));
    t.diagnostic(JSON.stringify(texts));
    assert.match(texts['cpu-now'], /^\d+\.\d %$/);
    assert.match(texts['mem-now'], /^\d+\.\d %$/);
    assert.match(texts['mem-abs'], /^[\d.]+ [KMGT]?i?B of [\d.]+ [KMGT]?i?B$/);
    for (const id of ['load1-now', 'load5-now', 'load15-now']) assert.match(texts[id], /^\d+\.\d\d$/);
    for (const id of ['rx-now', 'tx-now']) assert.match(texts[id], /^[\d.]+ [KMGT]?i?B\/s$/);
    assert.match(texts.samples, /^\d+ samples$/);

    // Three samples make a short line at the right end of a 60-sample axis.
    await screenshot(page, 'dashboard-3-samples');
    const pixels = await chartPixels(page);
    for (const [id, p] of Object.entries(pixels)) {
      assert.ok(p.width > 0 && p.height > 0, `${id} has no size`);
      assert.ok(p.drawn > 1000, `${id} is blank (${p.drawn} pixels drawn)`);
      assert.ok(p.series >= 12, `${id} shows no line of its series colour (${p.series} pixels)`);
    }

    // Live: the next sample comes about a second later and the texts follow it.
    const before = await page.textContent('#updated');
    const n = await samplesShown(page);
    await page.waitForFunction((k) => Number(document.body.dataset.samples) > k, n, { timeout: 3000 });
    await page.waitForFunction((b) => document.getElementById('updated').textContent !== b, before);
    await screenshot(page, 'dashboard');
    await stopServer(server.proc);
  });

  test('with --interval-ms 100, a page opened 2 s later shows >= 15 samples at once (history)',
    { timeout: 40_000 }, async (t) => {
      await start(['--interval-ms', '100']);
      const first = await open({ width: 1000, height: 700 });
      await sleep(2000);
      const second = await open({ width: 390, height: 900 });   // phone width
      await second.waitForFunction(() => Number(document.body.dataset.samples || 0) >= 15, null, { timeout: 5000 });
      const arrivals = await second.evaluate(() => window.__arrivals.slice());
      const burst = arrivals[14] - arrivals[0];
      t.diagnostic(`second page: 15th sample ${burst.toFixed(1)} ms after the first; ` +
                   `${arrivals.filter((a) => a - arrivals[0] < 50).length} within 50 ms`);
      assert.ok(burst < 60, `the first 15 samples took ${burst.toFixed(0)} ms: they were not replayed from history`);
      assert.ok(arrivals.filter((a) => a - arrivals[0] < 60).length >= 15);

      // Both pages then show the same live samples.
      await sleep(300);
      const [a, b] = await Promise.all([first, second].map((p) => p.textContent('#updated')));
      assert.ok(a.startsWith('last sample at'), a);
      assert.ok(Number(await samplesShown(first)) >= 20);
      t.diagnostic(`first page: ${a}; second page: ${b}`);
      await screenshot(second, 'dashboard-phone', { fullPage: true });
      const pixels = await chartPixels(second);
      t.diagnostic(JSON.stringify(pixels));
      for (const [id, p] of Object.entries(pixels)) assert.ok(p.series > 30, `${id} on the second page is blank`);
    });
});
