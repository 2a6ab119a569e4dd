// Shared plumbing of the browser tests: run an example binary on a free port, stop it, drive
// headless Chromium through playwright-core, save screenshots.
//
// Env: SSE_CHROMIUM (default /usr/bin/chromium); SSE_SCREENSHOT_DIR (optional) where
// screenshots are saved.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync } from 'node:fs';
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
 * { proc, url, port } once it prints its URL (url ends with '/').
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
      const m = /http:\/\/[^\s]+/.exec(out);
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

/** Headless Chromium with the flags every browser test uses. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
           '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A new context (own cookies and storage) with one page at `url`. */
export async function openPage(browser, url, { viewport = { width: 960, height: 720 }, init } = {}) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  await page.goto(url, { timeout: UI_TIMEOUT_MS });
  return { context, page };
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
