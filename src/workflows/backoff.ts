/**
 * The polling schedule that replaces the Lambda poller: first check after `firstCheck`, then the
 * interval doubles up to `maxInterval`, until `timeout`. Pure functions: the workflow uses them
 * with durable timers, tests and benchmarks use them to reason about polls.
 */

export interface WaitSettings {
  firstCheckMs: number;
  maxIntervalMs: number;
  timeoutMs: number;
}

/** The next sleep: `firstCheck` for the first check, then double the previous one, capped. */
export function nextInterval(previousMs: number | undefined, s: WaitSettings): number {
  if (previousMs === undefined) return s.firstCheckMs;
  return Math.min(previousMs * 2, s.maxIntervalMs);
}

/**
 * Every sleep the workflow would take if the image never became ready, in order, the last one
 * cut short so that they add up to exactly `timeout` (activity time not counted).
 */
export function pollSchedule(s: WaitSettings): number[] {
  const sleeps: number[] = [];
  let elapsed = 0;
  let interval: number | undefined;
  while (elapsed < s.timeoutMs) {
    interval = nextInterval(interval, s);
    const step = Math.min(interval, s.timeoutMs - elapsed);
    sleeps.push(step);
    elapsed += step;
  }
  return sleeps;
}

/** How many checks it takes to notice an image that becomes ready `readyAfterMs` after creation. */
export function checksUntilReady(readyAfterMs: number, s: WaitSettings): { checks: number; noticedAfterMs: number } {
  let elapsed = 0;
  let checks = 0;
  for (const sleep of pollSchedule(s)) {
    elapsed += sleep;
    checks += 1;
    if (elapsed >= readyAfterMs) return { checks, noticedAfterMs: elapsed };
  }
  return { checks, noticedAfterMs: Number.POSITIVE_INFINITY };
}
