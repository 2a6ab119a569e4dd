// Browser test of the progress example: the page starts tasks and shows their bars live, ten
// and more in one tab over its one stream; the server frees every task and stream when the jobs
// end. Node-side: the client stream resumes exactly after a reconnect, and a run of 1,000 tasks
// checks for leaks (stats, connections, resident memory).
//
//   SSE_PROGRESS_BIN=build/examples/progress node --test tests/browser/progress.test.mjs
//
// Env: SSE_PROGRESS_BIN (required); SSE_CHROMIUM; SSE_SCREENSHOT_DIR (progress.png);
// SSE_RSS_CHECK=0 skips the memory bound (sanitizer builds keep freed memory resident).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  requireBin, startServer, startServerOn, stopServer, killOnExit, launchBrowser, openPage, screenshot, getJson, waitUntil,
  rssKiB, sleep, tearDown } from './harness.mjs';
import { countEventSources, readTasks, recordPercentages, watchUntilDone } from './progress_page.mjs';

/** Reads the event stream at `url` until `until(events)` is true; the events ({ event, id, data }). */
async function readEvents(url, { headers = {}, until, timeout = 20_000 }) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error(`${url}: not done within ${timeout} ms`)), timeout);
  const events = [];
  try {
    const res = await fetch(url, { headers, signal: ctl.signal });
    assert.equal(res.status, 200, `${url} answered ${res.status}`);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      for (let k; (k = buf.indexOf('\n\n')) >= 0;) {
        const block = buf.slice(0, k);
        buf = buf.slice(k + 2);
        const ev = { event: 'message', id: undefined, data: [] };
        for (const line of block.split('\n')) {
          const c = line.indexOf(':');
          if (c === 0) continue; // a comment (heartbeat)
          const field = c < 0 ? line : line.slice(0, c);
          const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (field === 'event') ev.event = value;
          else if (field === 'data') ev.data.push(value);
          else if (field === 'id') ev.id = value;
        }
        if (ev.data.length === 0) continue; // retry: and the like
        events.push({ event: ev.event, id: ev.id, data: ev.data.join('\n') });
        if (until(events)) return events;
      }
    }
    throw new Error(`${url}: the stream ended after ${JSON.stringify(events)}`);
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

describe('progress example in a browser', { timeout: 150_000 }, () => {
  let bin, server, browser;
  const contexts = [];
  const forgetLeftovers = killOnExit(() => [server?.proc]);

  before(async () => {
    bin = requireBin('SSE_PROGRESS_BIN', 'progress');
    server = await startServer(bin);           // the default 50 ms steps, as a user sees them
    browser = await launchBrowser();
  }, { timeout: 60_000 });

  after(async () => {
    await tearDown({ contexts, browser, server, forgetLeftovers });
  }, { timeout: 30_000 });

  test('"Start 3 tasks" shows three bars that move live, reach 100 % and show done', { timeout: 60_000 },
    async (t) => {
      const { context, page } = await openPage(browser, server.url, { viewport: { width: 900, height: 560 } });
      contexts.push(context);
      await recordPercentages(page);
      const t0 = performance.now();
      await page.click('#start3');
      await page.waitForFunction(() => document.querySelectorAll('#tasks .task').length === 3);
      // Mid-way: every bar is moving.
      await page.waitForFunction(() => [...document.querySelectorAll('#tasks .task')].every((e) =>
        e.dataset.state === 'running' && parseInt(e.querySelector('.pct').textContent, 10) >= 25));
      await screenshot(page, 'progress-running');

      const { tasks, seen } = await watchUntilDone(page, 3);
      t.diagnostic(`3 tasks done in ${(performance.now() - t0).toFixed(0)} ms`);
      assert.equal(new Set(tasks.map((x) => x.id)).size, 3, 'three different task ids');
      for (const x of tasks) {
        assert.equal(x.pct, '100%');
        assert.equal(x.width, '100%');
        const intermediate = [...seen.get(x.id)].filter((p) => p !== '0%' && p !== '100%');
        assert.ok(intermediate.length >= 3, `task ${x.id} showed only ${[...seen.get(x.id)]}`);
      }
      // The summary follows on the next animation frame.
      await page.waitForFunction(() => document.getElementById('summary').textContent === '0 running · 3 done');
      await page.waitForTimeout(200); // let the last bar's transition finish
      await screenshot(page, 'progress');

      // The server kept nothing: no task, no stream (the page lets its stream go when all are done).
      const stats = await waitUntil(async () => {
        const s = await getJson(server.url + 'stats');
        return s.running === 0 && s.streams === 0 && s.client_streams === 0 ? s : null;
      }, { timeout: 2000, what: 'running 0, streams 0 and client_streams 0' });
      assert.ok(stats.finished_kept >= 3);

      // A finished task's stream answers 204 (EventSource stops retrying), an unknown one 404.
      const finished = await fetch(`${server.url}tasks/${tasks[0].id}/events`);
      assert.equal(finished.status, 204);
      await finished.arrayBuffer();
      const unknown = await fetch(`${server.url}tasks/ffffffffffffffff/events`);
      assert.equal(unknown.status, 404);
      await unknown.arrayBuffer();
    });

  test('ten tasks in one tab run at once over one stream, more join it, all finish', { timeout: 60_000 },
    async (t) => {
      // A browser opens at most six connections per host: with a stream per task, the seventh
      // task would sit in "connecting" (and POST /tasks behind it) until others end.
      const { context, page } = await openPage(browser, server.url, { init: countEventSources });
      contexts.push(context);
      await recordPercentages(page);
      await page.fill('#count', '10');
      await page.click('#start');
      await page.waitForFunction(() => {
        const els = [...document.querySelectorAll('#tasks .task')];
        return els.length === 10 && els.every((e) =>
          e.dataset.state === 'running' && parseInt(e.querySelector('.pct').textContent, 10) > 0);
      }).catch(async (e) => {
        throw new Error(`not all ten tasks ran at once: ${JSON.stringify(await readTasks(page))}`, { cause: e });
      });
      // More tasks while those run: they are started at once and join the open stream.
      await page.click('#start3');
      await page.waitForFunction(() => document.querySelectorAll('#tasks .task').length === 13);
      const { tasks, seen } = await watchUntilDone(page, 13);
      assert.equal(new Set(tasks.map((x) => x.id)).size, 13);
      for (const x of tasks) {
        assert.equal(x.pct, '100%');
        const intermediate = [...seen.get(x.id)].filter((p) => p !== '0%' && p !== '100%');
        assert.ok(intermediate.length >= 2, `task ${x.id} showed only ${[...seen.get(x.id)]}`);
      }
      const made = await page.evaluate(() => window.__eventSources);
      t.diagnostic(`13 tasks over ${made} EventSource(s)`);
      assert.equal(made, 1, 'the tab opened more than one EventSource');
      await page.waitForFunction(() => document.getElementById('summary').textContent === '0 running · 13 done');
      await waitUntil(async () => {
        const s = await getJson(server.url + 'stats');
        return s.running === 0 && s.client_streams === 0;
      }, { timeout: 2000, what: 'running 0 and client_streams 0' });
    });

  test('a reload mid-way picks the running tasks up again and they finish', { timeout: 60_000 }, async () => {
    const { context, page } = await openPage(browser, server.url);
    contexts.push(context);
    await page.click('#start3');
    await page.waitForFunction(() => [...document.querySelectorAll('#tasks .task')].filter((e) =>
      e.dataset.state === 'running' && parseInt(e.querySelector('.pct').textContent, 10) >= 10).length === 3);
    const before = (await readTasks(page)).filter((x) => x.state === 'running');
    await page.reload();
    // Restored from sessionStorage and re-attached: the current percentage comes at once.
    await page.waitForFunction((ids) => ids.every((id) => {
      const e = document.querySelector(`#tasks .task[data-id="${id}"]`);
      return e && parseInt(e.querySelector('.pct').textContent, 10) >= 10;
    }), before.map((x) => x.id));
    const { tasks } = await watchUntilDone(page, (await readTasks(page)).length);
    for (const x of before) assert.equal(tasks.find((y) => y.id === x.id)?.state, 'done');
    await waitUntil(async () => {
      const s = await getJson(server.url + 'stats');
      return s.running === 0 && s.streams === 0;
    }, { timeout: 2000, what: 'running 0 and streams 0 after the reload' });
  });
});

describe('progress example in a browser, across a server restart', { timeout: 90_000 }, () => {
  let bin, server, browser;
  const contexts = [];
  const forgetLeftovers = killOnExit(() => [server?.proc]);

  before(async () => {
    bin = requireBin('SSE_PROGRESS_BIN', 'progress');
    server = await startServer(bin, { args: ['--step-ms', '300'] }); // tasks of 6 s and more
    browser = await launchBrowser();
  }, { timeout: 60_000 });
  after(async () => {
    await tearDown({ contexts, browser, server, forgetLeftovers });
  }, { timeout: 30_000 });

  test('the stream reconnects by itself; tasks the new server does not know are shown as such',
    { timeout: 60_000 }, async () => {
      const { context, page } = await openPage(browser, server.url, { init: countEventSources });
      contexts.push(context);
      await page.click('#start3');
      await page.waitForFunction(() => [...document.querySelectorAll('#tasks .task')].filter((e) =>
        e.dataset.state === 'running' && parseInt(e.querySelector('.pct').textContent, 10) > 0).length === 3);
      assert.ok(await stopServer(server.proc), 'progress did not exit within 5 s of SIGTERM');
      await page.waitForFunction(() => [...document.querySelectorAll('#tasks .task')].every((e) =>
        e.dataset.state === 'reconnecting'));
      server = await startServerOn(bin, server.port, { args: ['--step-ms', '300'] });
      // EventSource comes back after `retry` with the old run's id: `reset`, then the page asks
      // for each task and learns that this server never heard of them.
      await page.waitForFunction(() => [...document.querySelectorAll('#tasks .task')].every((e) =>
        e.dataset.state === 'gone'), null, { timeout: 20_000 });
      assert.equal(await page.evaluate(() => window.__eventSources), 1, 'the reconnect was not EventSource\'s own');
      await waitUntil(async () => (await getJson(server.url + 'stats')).client_streams === 0,
                      { what: 'the page let its stream go' });
    });
});

describe('progress example: the client stream (node only)', { timeout: 60_000 }, () => {
  let bin, server;
  const forgetLeftovers = killOnExit(() => [server?.proc]);

  before(async () => {
    bin = requireBin('SSE_PROGRESS_BIN', 'progress');
    server = await startServer(bin, { args: ['--step-ms', '10'] });
  });
  after(async () => {
    if (server) assert.ok(await stopServer(server.proc), 'progress did not exit within 5 s of SIGTERM');
    forgetLeftovers();
  }, { timeout: 30_000 });

  const startTask = async (client) => {
    const res = await fetch(`${server.url}tasks?client=${client}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 201);
    return (await res.json()).id;
  };
  const dones = (events) => events.filter((e) => e.event === 'done').length;

  test('a reconnect with Last-Event-ID gets exactly what it missed; finished tasks are not sent again',
    async (t) => {
      const client = `c${process.pid}`;
      const url = `${server.url}events?client=${client}`;
      const ids = [];
      for (let i = 0; i < 4; i++) ids.push(await startTask(client));
      // One listener stays connected throughout (a first connect gets what was sent so far);
      // another leaves after ten events and comes back with the id of the last one.
      const whole = readEvents(url, { until: (evs) => dones(evs) === 4 });
      const before = await readEvents(url, { until: (evs) => evs.length === 10 });
      const afterwards = await readEvents(url, {
        headers: { 'Last-Event-ID': before.at(-1).id },
        until: (evs) => dones(before) + dones(evs) === 4,
      });
      const all = await whole;
      t.diagnostic(`${all.length} events; the reconnect got ${afterwards.length} of them`);
      assert.deepEqual([...before, ...afterwards], all, 'the resumed stream lost or repeated events');
      assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'ids are unique');
      for (const id of ids) {
        const mine = all.filter((e) => JSON.parse(e.data).task === id);
        const percents = mine.map((e) => JSON.parse(e.data).percent);
        for (let i = 1; i < percents.length; i++) assert.ok(percents[i] > percents[i - 1] || mine[i].event === 'done');
        assert.deepEqual(mine.slice(-2).map((e) => e.event), ['progress', 'done'], `task ${id} ends with done`);
        assert.equal(dones(mine), 1);
        const status = await getJson(`${server.url}tasks/${id}`);
        assert.equal(status.state, 'done');
        assert.equal(status.percent, 100);
        assert.equal(typeof status.ms, 'number');
      }
      // After the last `done` a reconnect gets nothing old: the first event is the next task's.
      const next = readEvents(url, { headers: { 'Last-Event-ID': all.at(-1).id }, until: (evs) => evs.length === 1 });
      const fifth = await startTask(client);
      const [first] = await next;
      assert.equal(first.event, 'progress');
      assert.equal(JSON.parse(first.data).task, fifth, `an old event came again: ${JSON.stringify(first)}`);
      // Other clients see none of it; bad requests are refused.
      const other = readEvents(`${server.url}events?client=other${process.pid}`, { until: (evs) => evs.length === 1 });
      const theirs = await startTask(`other${process.pid}`);
      assert.equal(JSON.parse((await other)[0].data).task, theirs);
      for (const bad of ['events', 'events?client=', 'events?client=a%20b', 'tasks?client=' + 'x'.repeat(65)]) {
        const res = await fetch(server.url + bad, { method: bad.startsWith('tasks') ? 'POST' : 'GET' });
        assert.equal(res.status, 400, `${bad} answered ${res.status}`);
        await res.arrayBuffer();
      }
      await waitUntil(async () => (await getJson(server.url + 'stats')).client_streams === 0,
                      { what: 'client_streams 0 once the readers left' });
    });
});

describe('progress example under 1,000 tasks (node only)', { timeout: 150_000 }, () => {
  let bin, server;
  const forgetLeftovers = killOnExit(() => [server?.proc]);

  before(async () => {
    bin = requireBin('SSE_PROGRESS_BIN', 'progress');
    server = await startServer(bin, { args: ['--step-ms', '10'] }); // tasks of 0.2 s and more
  });
  after(async () => {
    if (server) assert.ok(await stopServer(server.proc), 'progress did not exit within 5 s of SIGTERM');
    forgetLeftovers();
  }, { timeout: 30_000 });

  /** Starts a task and reads its stream to the end; what it saw. */
  async function runTask() {
    const res = await fetch(server.url + 'tasks', { method: 'POST', signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 201, `POST /tasks answered ${res.status}`);
    const { id } = await res.json();
    const events = await fetch(`${server.url}tasks/${id}/events`, { signal: AbortSignal.timeout(20_000) });
    const body = await events.text(); // resolves once the server ends the stream
    if (events.status === 204) return 'finished-first';
    assert.equal(events.status, 200);
    assert.match(body, /event: progress\nid: 100\ndata: \{"percent":100\}\n\nevent: done\n/);
    const percents = [...body.matchAll(/^event: progress\nid: (\d+)\n/gm)].map((m) => Number(m[1]));
    for (let i = 1; i < percents.length; i++) assert.ok(percents[i] > percents[i - 1], 'percentages increase');
    return 'streamed';
  }

  /** Runs `n` tasks, `concurrency` at a time. */
  async function runTasks(n, concurrency) {
    let next = 0;
    const outcomes = { streamed: 0, 'finished-first': 0 };
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        outcomes[await runTask()]++;
      }
    }));
    return outcomes;
  }

  const settled = () => waitUntil(async () => {
    const s = await getJson(server.url + 'stats');
    return s.running === 0 && s.streams === 0 ? s : null;
  }, { timeout: 5000, what: 'running 0 and streams 0' });

  test('1,000 tasks, 50 at a time: every stream ends, nothing is left, no memory grows', async (t) => {
    const t0 = performance.now();
    const first = await runTasks(100, 50);
    await settled();
    await sleep(300);
    const rssAfter100 = await rssKiB(server.proc.pid);
    const rest = await runTasks(900, 50);
    const elapsed = performance.now() - t0;
    const stats = await settled();
    await sleep(300);
    const rssAfter1000 = await rssKiB(server.proc.pid);
    const streamed = first.streamed + rest.streamed;
    t.diagnostic(`1000 tasks in ${elapsed.toFixed(0)} ms; ${streamed} streamed to the end, ` +
                 `${1000 - streamed} finished before their GET (204)`);
    t.diagnostic(`VmRSS after 100 tasks: ${rssAfter100} KiB; after 1000: ${rssAfter1000} KiB ` +
                 `(${rssAfter1000 - rssAfter100 >= 0 ? '+' : ''}${rssAfter1000 - rssAfter100} KiB)`);
    // Every task either streamed to its end or finished before its GET (a 204, checked in
    // runTask); how many finish first depends on the machine's load, so only ask for most.
    assert.ok(streamed >= 500, `only ${streamed} of 1000 tasks were streamed`);
    assert.equal(stats.finished_kept, 1000);
    if (process.env.SSE_RSS_CHECK === '0') {
      t.diagnostic('SSE_RSS_CHECK=0: the RSS bound is not checked (sanitizer build)');
    } else {
      assert.ok(rssAfter1000 - rssAfter100 < 8 * 1024,
                `RSS grew by ${rssAfter1000 - rssAfter100} KiB between 100 and 1000 tasks`);
    }

    // Connections drain: streams end with the response; idle keep-alive sockets of fetch's pool
    // are closed by its own idle timeout (4 s). Allow the one this poll uses.
    const conns = await waitUntil(async () => {
      const s = await getJson(server.url + 'stats');
      return s.connections <= 2 ? s : null;
    }, { timeout: 15_000, interval: 250, what: 'connections back to ~0' });
    t.diagnostic(`stats at the end: ${JSON.stringify(conns)}`);
    assert.equal(conns.running, 0);
    assert.equal(conns.streams, 0);
  });
});
