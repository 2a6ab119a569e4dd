// Shared plumbing of the browser tests: run an example binary on a free port (over HTTP or,
// with a self-signed certificate, HTTPS), stop it, drive headless Chromium through
// playwright-core, see which protocol its requests used, save screenshots.
//
// Env: SSE_CHROMIUM (default /usr/bin/chromium); SSE_SCREENSHOT_DIR (optional) where
// screenshots are saved.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.SSE_CHROMIUM || '/usr/bin/chromium';
export const SHOT_DIR = process.env.SSE_SCREENSHOT_DIR;
export const START_TIMEOUT_MS = 10_000;
export const UI_TIMEOUT_MS = 10_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The path in env var `name`, checked to be an executable file. */
export function requireBin(name, example) {
  const bin = process.env[name];
  if (!bin) {
    throw new Error(`${name} is not set: point it at the built example, e.g. ` +
                    `${name}=build/examples/${example} node --test tests/browser/${example}.test.mjs`);
  }
  try { accessSync(bin, constants.X_OK); } catch {
    throw new Error(`${name}=${bin} is not an executable file`);
  }
  return bin;
}

export function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/**
 * Spawns `bin --host 127.0.0.1 --port PORT --threads 2 ...args` and resolves to
 * { proc, url, port } once it prints its URL (http:// or https://; url ends with '/').
 */
export function startServer(bin, { port = 0, args = [] } = {}) {
  const name = path.basename(bin);
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--threads', '2', ...args],
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
      `${name} did not print its URL within ${START_TIMEOUT_MS} ms; stdout so far: ${JSON.stringify(out)}`)),
      START_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {       // keeps draining after the URL, so the pipe never fills
      if (done) return;
      out += chunk;
      const m = /https?:\/\/[^\s]+/.exec(out);
      if (m) {
        const url = m[0].endsWith('/') ? m[0] : m[0] + '/';
        finish(null, { proc, url, port: Number(new URL(url).port) });
      }
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${bin}: ${e.message}`)));
    proc.on('exit', (code, sig) => finish(new Error(
      `${name} exited (code ${code}, signal ${sig}) before printing its URL; stdout: ${JSON.stringify(out)}`)));
  });
}

/** SIGTERM, wait up to 5 s for the exit, then SIGKILL. Resolves to true if it exited in time. */
export async function stopServer(proc) {
  if (!proc || exited(proc)) return true;
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
  return !timedOut;
}

/** Restart on a fixed port; the old socket may linger briefly, so retry a bounded number of times. */
export async function startServerOn(bin, port, options = {}) {
  let last;
  for (let attempt = 0; attempt < 20; attempt++) {
    try { return await startServer(bin, { ...options, port }); } catch (e) { last = e; }
    await sleep(250);
  }
  throw last;
}

/** SIGKILLs the processes `procs()` returns if the test runner exits without stopping them. */
export function killOnExit(procs) {
  const kill = () => {
    for (const p of procs()) if (p && !exited(p)) p.kill('SIGKILL');
  };
  process.on('exit', kill);
  return () => process.off('exit', kill);
}

/**
 * Headless Chromium with the flags every browser test uses, and `args` after them (e.g.
 * '--ignore-certificate-errors' for a server with a self-signed certificate).
 */
export function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
           '--no-first-run', '--disable-component-update', '--disable-sync', ...args],
  });
}

/** A new context (own cookies, storage and connections) with one page at `url`. */
export async function openPage(browser, url, { viewport = { width: 960, height: 720 }, init, beforeGoto } = {}) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  if (init) await context.addInitScript(init);
  const page = await openTab(context, url, { beforeGoto });
  return { context, page };
}

/**
 * Another page (tab) of `context` at `url`: the tabs of one context share its connections
 * (HTTP/1.1's six per host among them). `beforeGoto(page)` runs before it loads.
 */
export async function openTab(context, url, { beforeGoto } = {}) {
  const page = await context.newPage();
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url, { timeout: UI_TIMEOUT_MS });
  return page;
}

/**
 * Records the responses `page` gets as Chromium saw them (DevTools protocol): an array that
 * fills with { url, type, status, protocol } ('h2', 'http/1.1'; type 'EventSource', 'Fetch',
 * 'Document', ...) from the headers of each, streams included. Call before the page loads.
 */
export async function recordResponses(page) {
  const seen = [];
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.responseReceived', ({ type, response }) =>
    seen.push({ url: response.url, type, status: response.status, protocol: response.protocol }));
  await cdp.send('Network.enable');
  return seen;
}

/**
 * A self-signed certificate for localhost and 127.0.0.1 made with the openssl command (in a
 * temporary directory): { cert, key, args, remove } where args are the examples' --tls-cert
 * and --tls-key flags.
 */
export function selfSignedCert() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sse-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key, args: ['--tls-cert', cert, '--tls-key', key],
           remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Saves a screenshot as `$SSE_SCREENSHOT_DIR/<name>.png` when that is set; returns its path. */
export async function screenshot(page, name, options = {}) {
  if (!SHOT_DIR) return null;
  mkdirSync(SHOT_DIR, { recursive: true });
  const file = path.join(SHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, ...options });
  return file;
}

/** GET `url` and parse the JSON body (5 s timeout). */
export async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000), cache: 'no-store' });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return res.json();
}

/** Polls `probe` until it returns a truthy value (returned) or `timeout` ms pass (throws). */
export async function waitUntil(probe, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const end = performance.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (performance.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** Resident memory of process `pid` in KiB, from /proc/<pid>/status. */
export async function rssKiB(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Closes the test's browser contexts and browser, stops its server, forgets leftovers. */
export async function tearDown({ contexts = [], browser, server, forgetLeftovers }) {
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server.proc);
  if (forgetLeftovers) forgetLeftovers();
}
