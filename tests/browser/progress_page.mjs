// What the progress tests ask of the progress page (examples/progress/page.html), from outside.
import { sleep } from './harness.mjs';

/** Each task on the page: { id, state, pct } in page order. */
export const readTasks = (page) => page.$$eval('#tasks .task', (els) => els.map((e) => ({
  id: e.dataset.id, state: e.dataset.state, pct: e.querySelector('.pct')?.textContent,
  width: e.querySelector('.fill')?.style.width,
})));

/** Counts the EventSources a page makes (`window.__eventSources`); an init script. */
export function countEventSources() {
  const Native = window.EventSource;
  window.__eventSources = 0;
  window.EventSource = class extends Native {
    constructor(...args) { super(...args); window.__eventSources++; }
  };
}

/**
 * Records in the page every percentage each task shows, as the DOM changes: polling from the
 * test would miss the ones a loaded machine (a sanitizer build) shows between two polls.
 */
export const recordPercentages = (page) => page.evaluate(() => {
  window.__seen = {};
  const record = () => {
    for (const e of document.querySelectorAll('#tasks .task')) {
      const pct = e.querySelector('.pct')?.textContent;
      (window.__seen[e.dataset.id] ||= []).includes(pct) || window.__seen[e.dataset.id].push(pct);
    }
  };
  new MutationObserver(record).observe(document.getElementById('tasks'),
    { subtree: true, childList: true, characterData: true, attributes: true });
});

/** Polls the page until every task is done; `seen`: id -> the percentages it showed. */
export async function watchUntilDone(page, count, timeout = 30_000) {
  const end = performance.now() + timeout;
  for (;;) {
    const tasks = await readTasks(page);
    if (tasks.length === count && tasks.every((t) => t.state === 'done')) {
      const recorded = await page.evaluate(() => window.__seen || {});
      const seen = new Map(Object.entries(recorded).map(([id, pcts]) => [id, new Set(pcts)]));
      return { tasks, seen };
    }
    if (performance.now() > end) throw new Error(`tasks not done after ${timeout} ms: ${JSON.stringify(tasks)}`);
    await sleep(15);
  }
}
