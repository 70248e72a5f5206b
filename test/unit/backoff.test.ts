import { durationMs } from '../../src/policy/duration';
import { checksUntilReady, nextInterval, pollSchedule, type WaitSettings } from '../../src/workflows/backoff';

const S = 1_000;
const MIN = 60 * S;
const H = 60 * MIN;

/** The policy defaults, read the way the workflow reads them. */
const DEFAULTS: WaitSettings = {
  firstCheckMs: durationMs('60s'),
  maxIntervalMs: durationMs('3m'),
  timeoutMs: durationMs('4h'),
};

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('nextInterval', () => {
  test('the first check waits firstCheck', () => {
    expect(nextInterval(undefined, DEFAULTS)).toBe(60 * S);
  });

  test('then doubles, capped at maxInterval', () => {
    expect(nextInterval(60 * S, DEFAULTS)).toBe(120 * S);
    expect(nextInterval(120 * S, DEFAULTS)).toBe(180 * S);
    expect(nextInterval(180 * S, DEFAULTS)).toBe(180 * S);
    expect(nextInterval(100 * S, DEFAULTS)).toBe(180 * S);
    expect(nextInterval(30 * S, DEFAULTS)).toBe(60 * S);
  });

  test('does not depend on the timeout', () => {
    expect(nextInterval(60 * S, { ...DEFAULTS, timeoutMs: 1 })).toBe(120 * S);
  });
});

describe('pollSchedule', () => {
  test('with the defaults: 60s, 120s, then 180s until exactly 4h', () => {
    const schedule = pollSchedule(DEFAULTS);
    expect(schedule.slice(0, 5)).toEqual([60 * S, 120 * S, 180 * S, 180 * S, 180 * S]);
    expect(sum(schedule)).toBe(4 * H);
    // 60s + 120s, then (4h - 3m) / 3m = 79 full intervals of 3m.
    expect(schedule).toHaveLength(81);
    expect(schedule.slice(2).every((ms) => ms === 180 * S)).toBe(true);
  });

  test('never sleeps longer than maxInterval, never sleeps for zero', () => {
    for (const ms of pollSchedule(DEFAULTS)) {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(DEFAULTS.maxIntervalMs);
    }
  });

  test('the last sleep is cut short so that the sum is exactly the timeout', () => {
    const schedule = pollSchedule({ ...DEFAULTS, timeoutMs: 4 * H + 30 * S });
    expect(sum(schedule)).toBe(4 * H + 30 * S);
    expect(schedule.at(-1)).toBe(30 * S);
    expect(schedule.at(-2)).toBe(180 * S);
    expect(schedule).toHaveLength(82);
  });

  test('a timeout inside the doubling phase', () => {
    expect(pollSchedule({ ...DEFAULTS, timeoutMs: 100 * S })).toEqual([60 * S, 40 * S]);
    expect(pollSchedule({ ...DEFAULTS, timeoutMs: 60 * S })).toEqual([60 * S]);
    expect(pollSchedule({ ...DEFAULTS, timeoutMs: 30 * S })).toEqual([30 * S]);
  });

  test('other settings: 10s doubling to 100s for 10m', () => {
    expect(pollSchedule({ firstCheckMs: 10 * S, maxIntervalMs: 100 * S, timeoutMs: 10 * MIN })).toEqual(
      [10, 20, 40, 80, 100, 100, 100, 100, 50].map((s) => s * S),
    );
  });

  test('maxInterval equal to firstCheck gives a fixed interval', () => {
    expect(pollSchedule({ firstCheckMs: 5 * MIN, maxIntervalMs: 5 * MIN, timeoutMs: 22 * MIN })).toEqual(
      [5, 5, 5, 5, 2].map((m) => m * MIN),
    );
  });

  test('the sum is the timeout for many settings', () => {
    for (const firstCheckMs of [1 * S, 7 * S, 60 * S]) {
      for (const maxIntervalMs of [firstCheckMs, 3 * MIN, 17 * MIN]) {
        for (const timeoutMs of [firstCheckMs + 1, 61 * MIN + 1, 4 * H, 7 * 24 * H]) {
          const schedule = pollSchedule({ firstCheckMs, maxIntervalMs, timeoutMs });
          expect(sum(schedule)).toBe(timeoutMs);
          expect(schedule[0]).toBe(Math.min(firstCheckMs, timeoutMs));
        }
      }
    }
  });

  test('a 7-day timeout stays a bounded number of timers', () => {
    expect(pollSchedule({ ...DEFAULTS, timeoutMs: 7 * 24 * H })).toHaveLength(2 + (7 * 24 * H - 3 * MIN) / (3 * MIN));
  });
});

describe('checksUntilReady', () => {
  test('an image ready after 30 minutes with the defaults: 11 checks, noticed at once', () => {
    // Checks at 1m, 3m, 6m, 9m, ... 30m.
    const { checks, noticedAfterMs } = checksUntilReady(30 * MIN, DEFAULTS);
    expect(checks).toBe(11);
    expect(noticedAfterMs).toBe(30 * MIN);
    expect(noticedAfterMs - 30 * MIN).toBeLessThanOrEqual(3 * MIN);
  });

  test('an image ready after 31 minutes is noticed at 33 minutes, on the 12th check', () => {
    expect(checksUntilReady(31 * MIN, DEFAULTS)).toEqual({ checks: 12, noticedAfterMs: 33 * MIN });
  });

  test('an image ready after 2 hours with the defaults: 41 checks', () => {
    const { checks, noticedAfterMs } = checksUntilReady(2 * H, DEFAULTS);
    expect(checks).toBe(41);
    expect(noticedAfterMs).toBe(2 * H);
  });

  test('an image that is ready at once is seen at the first check', () => {
    expect(checksUntilReady(0, DEFAULTS)).toEqual({ checks: 1, noticedAfterMs: 60 * S });
    expect(checksUntilReady(59 * S, DEFAULTS)).toEqual({ checks: 1, noticedAfterMs: 60 * S });
    expect(checksUntilReady(61 * S, DEFAULTS)).toEqual({ checks: 2, noticedAfterMs: 3 * MIN });
  });

  test('an image ready exactly at the timeout is seen at the last check', () => {
    expect(checksUntilReady(4 * H, DEFAULTS)).toEqual({ checks: 81, noticedAfterMs: 4 * H });
  });

  test('an image never ready within the timeout is never noticed', () => {
    expect(checksUntilReady(4 * H + 1, DEFAULTS)).toEqual({ checks: 81, noticedAfterMs: Number.POSITIVE_INFINITY });
  });

  test('with the defaults the lag is never more than 3 minutes and checks are far fewer than a 1-minute poller', () => {
    for (let readyAfter = 0; readyAfter <= 4 * H; readyAfter += 7 * MIN + 13 * S) {
      const { checks, noticedAfterMs } = checksUntilReady(readyAfter, DEFAULTS);
      expect(noticedAfterMs).toBeGreaterThanOrEqual(readyAfter);
      expect(noticedAfterMs - readyAfter).toBeLessThanOrEqual(3 * MIN);
      expect(checks).toBeLessThanOrEqual(Math.ceil(readyAfter / MIN) / 2 + 2);
    }
  });
});
