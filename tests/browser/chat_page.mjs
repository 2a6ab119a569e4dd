// What the chat tests ask of the chat page (examples/chat/page.html), from outside.
import { UI_TIMEOUT_MS } from './harness.mjs';

/** Waits until the page's status says `state` ('connecting' | 'connected' | 'closed' | ...). */
export const waitForState = (page, state, timeout = UI_TIMEOUT_MS) =>
  page.waitForFunction((s) => document.getElementById('status')?.dataset.state === s, state, { timeout });

/** Waits until #messages holds an entry of `kind` ('msg' | 'notice') with exactly this text (and user). */
export const waitForEntry = (page, kind, text, user, timeout = UI_TIMEOUT_MS) =>
  page.waitForFunction(([kind, text, user]) =>
    [...document.querySelectorAll(`#messages .${kind}`)].some((e) =>
      e.querySelector('.text')?.textContent === text &&
      (user === null || e.querySelector('.user')?.textContent === user)),
  [kind, text, user ?? null], { timeout });
