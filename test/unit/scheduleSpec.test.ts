import type { CalendarSpecDescription } from '@temporalio/client';
import { UsageError } from '../../src/cli/common';
import {
  calendarText,
  fromOverlapPolicy,
  newSpec,
  parseSpecOptions,
  specSummary,
  timeText,
  toOverlapPolicy,
  updatedSpec,
  validateCron,
} from '../../src/cli/scheduleSpec';

const every = <T>(start: T, end: T) => [{ start, end, step: 1 }];
/** 03:00 daily, as Temporal describes a calendar it compiled (no comment: made by another tool). */
const daily3: CalendarSpecDescription = {
  second: every(0, 0),
  minute: every(0, 0),
  hour: every(3, 3),
  dayOfMonth: every(1, 31),
  month: every('JANUARY' as const, 'DECEMBER' as const),
  year: [],
  dayOfWeek: every('SUNDAY' as const, 'SATURDAY' as const),
  comment: '',
};

describe('validateCron', () => {
  test.each(['0 3 * * *', '*/15 * * * *', '30 1 * * MON-FRI', '@daily', '@weekly', '  0   3 * * *  '])('accepts %p', (cron) => {
    expect(validateCron(cron)).toBe(cron.trim().replace(/\s+/g, ' '));
  });
  test.each([
    ['0 3 * *', 'has 4 fields'],
    ['0 0 3 * * * 2030', 'has 7 fields'],
    ['', 'empty'],
    ['@every 1h', '--every'],
    ['@sometimes', 'not a shorthand'],
    ['CRON_TZ=UTC 0 3 * * *', '--timezone'],
    ['0 3 * * MON#2', '"#"'],
  ])('refuses %p', (cron, message) => {
    expect(() => validateCron(cron)).toThrow(UsageError);
    expect(() => validateCron(cron)).toThrow(message);
  });
});

describe('parseSpecOptions', () => {
  test('parses durations and the time zone', () => {
    expect(parseSpecOptions({ every: '12h', jitter: '5m', catchupWindow: '1h', timezone: 'Europe/Berlin' }, true)).toEqual({
      everyMs: 12 * 3_600_000,
      jitterMs: 300_000,
      catchupMs: 3_600_000,
      timezone: 'Europe/Berlin',
      overlap: undefined,
    });
  });
  test.each([
    [{ cron: '0 3 * * *', every: '1h' }, 'not both'],
    [{}, 'say when to run'],
    [{ every: '30s' }, 'at least 1m'],
    [{ every: '90500ms' }, 'whole seconds'],
    [{ cron: '@daily', timezone: 'Nowhere/Land' }, 'IANA time zone'],
    [{ every: '1h', jitter: '1h' }, 'shorter than --every'],
    [{ cron: '@daily', catchupWindow: '9s' }, 'at least 10s'],
  ])('refuses %p', (opts, message) => {
    expect(() => parseSpecOptions(opts, true)).toThrow(message);
  });
  test('update needs no times', () => {
    expect(parseSpecOptions({}, false)).toEqual({ overlap: undefined });
  });
});

describe('specs', () => {
  test('a cron keeps its text in the calendar comment', () => {
    expect(newSpec({ cron: '0 3 * * *', timezone: 'UTC' })).toEqual({ cronExpressions: ['0 3 * * * # cron 0 3 * * *'], timezone: 'UTC' });
  });
  test('update replaces the times only when given', () => {
    const prev = { calendars: [daily3], intervals: [], timezone: 'Europe/Berlin', jitter: 60_000 };
    expect(updatedSpec(prev, { jitterMs: 0 })).toEqual({ ...prev, jitter: 0 });
    expect(updatedSpec(prev, { everyMs: 3_600_000 })).toEqual({
      ...prev,
      calendars: [],
      cronExpressions: [],
      intervals: [{ every: 3_600_000 }],
    });
  });
  test('calendarText gives back the cron text, or rebuilds it', () => {
    expect(calendarText({ ...daily3, comment: 'cron 0 3 * * *' })).toBe('0 3 * * *');
    expect(calendarText(daily3)).toBe('0 3 * * *');
    expect(
      calendarText({
        ...daily3,
        minute: [{ start: 0, end: 59, step: 15 }],
        dayOfWeek: every('MONDAY' as const, 'FRIDAY' as const),
        month: every('MARCH' as const, 'MARCH' as const),
      }),
    ).toBe('0-59/15 3 * 3 1-5');
  });
  test('specSummary', () => {
    expect(specSummary({ calendars: [daily3], intervals: [], timezone: 'Europe/Berlin', jitter: 300_000 }).text).toBe(
      'cron "0 3 * * *" Europe/Berlin, jitter 5m',
    );
    expect(specSummary({ calendars: [], intervals: [{ every: 43_200_000, offset: 0 }], timezone: '' })).toEqual({
      every: ['12h'],
      timezone: 'UTC',
      text: 'every 12h',
    });
  });
  test('overlap names', () => {
    expect(toOverlapPolicy('terminate-other')).toBe('TERMINATE_OTHER');
    expect(fromOverlapPolicy('BUFFER_ALL')).toBe('buffer-all');
  });
  test('timeText shows the local time in the schedule time zone', () => {
    const t = new Date('2026-01-31T02:00:00Z');
    expect(timeText(t, '')).toBe('2026-01-31T02:00:00Z');
    expect(timeText(t, 'Europe/Berlin')).toBe('2026-01-31T02:00:00Z (2026-01-31 03:00:00 Europe/Berlin)');
  });
});
