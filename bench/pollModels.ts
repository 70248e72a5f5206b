/**
 * The pollers compared in benchmark 3, as pure models of "image ready after T: when is it seen,
 * after how many looks":
 *
 *  - ami-backup: src/workflows/backoff.ts (the workflow's own schedule) with the policy's waits;
 *  - the AWS SDK v3 waiter (waitUntilImageAvailable): first look at once, then @smithy/util-waiter's
 *    exponentialBackoffWithJitter with EC2's defaults minDelay 15 s and maxDelay 120 s (from
 *    node_modules/@aws-sdk/client-ec2: `serviceDefaults = { minDelay: 15, maxDelay: 120 }`): attempt
 *    k waits a random time between minDelay and min(maxDelay, minDelay * 2^(k-1)), and maxDelay
 *    once k exceeds log2(maxDelay / minDelay) + 1;
 *  - a fixed-interval poller (the old Lambda chain: a look every 60 s; and 15 s for comparison).
 */
import { checksUntilReady, type WaitSettings } from '../src/workflows/backoff';
import { median } from './lib';
import { mulberry32 as seeded } from '../scripts/prng';

export interface PollOutcome {
  polls: number;
  lagMs: number;
}

export function backoffPoller(readyAfterMs: number, ws: WaitSettings): PollOutcome {
  const { checks, noticedAfterMs } = checksUntilReady(readyAfterMs, ws);
  return { polls: checks, lagMs: noticedAfterMs - readyAfterMs };
}

export function fixedPoller(readyAfterMs: number, intervalMs: number): PollOutcome {
  const polls = Math.max(1, Math.ceil(readyAfterMs / intervalMs));
  return { polls, lagMs: polls * intervalMs - readyAfterMs };
}

export function sdkWaiterOnce(readyAfterMs: number, random: () => number, minDelayMs = 15_000, maxDelayMs = 120_000): PollOutcome {
  const ceiling = Math.log(maxDelayMs / minDelayMs) / Math.log(2) + 1;
  let t = 0;
  let polls = 1; // the waiter looks once before any delay
  for (let attempt = 1; t < readyAfterMs; attempt++) {
    const delay =
      attempt > ceiling ? maxDelayMs : minDelayMs + random() * (Math.min(minDelayMs * 2 ** (attempt - 1), maxDelayMs) - minDelayMs);
    t += delay;
    polls += 1;
  }
  return { polls, lagMs: t - readyAfterMs };
}

/** The SDK waiter's median polls and lag over `trials` jittered runs. */
export function sdkWaiter(readyAfterMs: number, trials = 201, seed = 42): PollOutcome & { maxLagMs: number } {
  const random = seeded(seed);
  const runs = Array.from({ length: trials }, () => sdkWaiterOnce(readyAfterMs, random));
  return {
    polls: median(runs.map((r) => r.polls)),
    lagMs: median(runs.map((r) => r.lagMs)),
    maxLagMs: Math.max(...runs.map((r) => r.lagMs)),
  };
}

export interface Strategy {
  name: string;
  run(readyAfterMs: number): PollOutcome;
}

export function strategies(ws: WaitSettings): Strategy[] {
  return [
    { name: 'ami-backup (default backoff)', run: (t) => backoffPoller(t, ws) },
    { name: 'SDK waitUntilImageAvailable', run: (t) => sdkWaiter(t) },
    { name: 'fixed 60 s (old Lambda chain)', run: (t) => fixedPoller(t, 60_000) },
    { name: 'fixed 15 s', run: (t) => fixedPoller(t, 15_000) },
  ];
}

/** Worst and mean lag of each strategy over creation times from `fromMs` to `toMs` in steps of `stepMs`. */
export function sweep(
  s: Strategy,
  fromMs: number,
  toMs: number,
  stepMs: number,
): { maxLagMs: number; meanLagMs: number; points: Array<[number, number]> } {
  let max = 0;
  let sum = 0;
  let n = 0;
  const points: Array<[number, number]> = [];
  for (let t = fromMs; t <= toMs; t += stepMs) {
    const o = s.run(t);
    max = Math.max(max, o.lagMs);
    sum += o.lagMs;
    n += 1;
    points.push([t, o.polls]);
  }
  return { maxLagMs: max, meanLagMs: sum / n, points };
}
