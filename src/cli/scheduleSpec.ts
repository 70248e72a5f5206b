/**
 * The "when" of a schedule: checking --cron / --every / --timezone / --jitter / --catchup-window /
 * --overlap before anything touches Temporal, building the ScheduleSpec, and putting a spec back
 * into words for `describe` and `list`. Pure functions, no I/O.
 *
 * Temporal compiles a cron string into a structured calendar and forgets the text; the text after
 * "#" survives as the calendar's comment, so `cronSpec` stores the expression there ("cron 0 3 * * *")
 * and `calendarText` gives it back (or rebuilds cron-like text for calendars made elsewhere).
 */
import {
  DAYS_OF_WEEK,
  MONTHS,
  type CalendarSpecDescription,
  type Range,
  type ScheduleOverlapPolicy,
  type ScheduleSpec,
  type ScheduleSpecDescription,
} from '@temporalio/client';
import { DURATION_HELP, formatDuration, parseDuration } from '../policy/duration';
import { UsageError } from './common';

export const MIN_EVERY_MS = 60_000;
/** Temporal raises any shorter catch-up window to 10 s without a word. */
export const MIN_CATCHUP_MS = 10_000;
export const OVERLAP_CHOICES = ['skip', 'buffer-one', 'buffer-all', 'cancel-other', 'terminate-other', 'allow-all'] as const;
export type OverlapChoice = (typeof OVERLAP_CHOICES)[number];

export const OVERLAP_MEANING: Record<OverlapChoice, string> = {
  skip: 'a run due while the last one is still going is skipped',
  'buffer-one': 'a run due while the last one is still going starts when it ends (at most one waits)',
  'buffer-all': 'runs due while the last one is still going wait and start one after another',
  'cancel-other': 'a run due while the last one is still going cancels it, then starts',
  'terminate-other': 'a run due while the last one is still going terminates it and starts at once',
  'allow-all': 'runs start when due even if others are still going (they compete for the same instances)',
};

export const CRON_MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const CRON_COMMENT_PREFIX = 'cron ';

export function toOverlapPolicy(choice: OverlapChoice): Exclude<ScheduleOverlapPolicy, undefined> {
  return choice.toUpperCase().replace(/-/g, '_') as Exclude<ScheduleOverlapPolicy, undefined>;
}

export function fromOverlapPolicy(policy: ScheduleOverlapPolicy): OverlapChoice {
  return (policy ?? 'SKIP').toLowerCase().replace(/_/g, '-') as OverlapChoice;
}

// ---------------------------------------------------------------------------------------------
// Validating the options (before anything touches Temporal)

export interface ScheduleSpecOptions {
  cron?: string;
  every?: string;
  timezone?: string;
  jitter?: string;
  catchupWindow?: string;
  overlap?: OverlapChoice;
}

export interface ParsedSpecOptions {
  cron?: string;
  everyMs?: number;
  timezone?: string;
  jitterMs?: number;
  catchupMs?: number;
  overlap?: OverlapChoice;
}

/** A cron expression Temporal takes, checked cheaply; the server checks the field values. */
export function validateCron(expr: string): string {
  const cron = expr.trim().replace(/\s+/g, ' ');
  if (cron === '') throw new UsageError('--cron is empty: give 5 fields such as "0 3 * * *" (03:00 every day)');
  if (/^(CRON_)?TZ=/i.test(cron)) throw new UsageError(`--cron "${expr}": give the time zone with --timezone, not in the expression`);
  if (cron.includes('#')) {
    throw new UsageError(`--cron "${expr}": Temporal cron has no "#" (no nth weekday, no comments); use --note for a comment`);
  }
  if (cron.startsWith('@')) {
    if (cron.startsWith('@every')) throw new UsageError(`--cron "${expr}": use --every DURATION for fixed intervals`);
    if (!CRON_MACROS.has(cron)) {
      throw new UsageError(`--cron "${expr}" is not a shorthand Temporal knows: use one of ${[...CRON_MACROS].join(', ')}, or 5 fields`);
    }
    return cron;
  }
  const fields = cron.split(' ');
  if (fields.length !== 5) {
    throw new UsageError(
      `--cron "${expr}" has ${fields.length} field${fields.length === 1 ? '' : 's'}: give 5, minute hour day-of-month month day-of-week, ` +
        'such as "0 3 * * *" (03:00 every day) or "30 1 * * MON-FRI"; or @daily, @weekly …',
    );
  }
  return cron;
}

export function durationOption(flag: string, text: string, minMs: number): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} "${text}" is not a duration: use ${DURATION_HELP}`);
  if (ms < minMs) throw new UsageError(`${flag} must be at least ${formatDuration(minMs)}, got "${text}"`);
  if (ms % 1000 !== 0) throw new UsageError(`${flag} "${text}" must be whole seconds (Temporal rounds schedules to seconds)`);
  return ms;
}

export function validateTimezone(tz: string): string {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
  } catch {
    throw new UsageError(`--timezone "${tz}" is not an IANA time zone such as "UTC", "Europe/Berlin" or "America/New_York"`);
  }
  return tz;
}

/** Checks the spec and policy options. `requireWhen`: exactly one of --cron / --every (create). */
export function parseSpecOptions(opts: ScheduleSpecOptions, requireWhen: boolean): ParsedSpecOptions {
  if (opts.cron !== undefined && opts.every !== undefined) {
    throw new UsageError('give either --cron EXPR or --every DURATION, not both');
  }
  if (requireWhen && opts.cron === undefined && opts.every === undefined) {
    throw new UsageError('say when to run: --cron "0 3 * * *" (03:00 every day) or --every 12h');
  }
  const parsed: ParsedSpecOptions = { overlap: opts.overlap };
  if (opts.cron !== undefined) parsed.cron = validateCron(opts.cron);
  if (opts.every !== undefined) parsed.everyMs = durationOption('--every', opts.every, MIN_EVERY_MS);
  if (opts.timezone !== undefined) parsed.timezone = validateTimezone(opts.timezone);
  if (opts.jitter !== undefined) parsed.jitterMs = durationOption('--jitter', opts.jitter, 0);
  if (parsed.jitterMs !== undefined && parsed.everyMs !== undefined && parsed.jitterMs >= parsed.everyMs) {
    throw new UsageError(`--jitter ${opts.jitter} must be shorter than --every ${opts.every}`);
  }
  if (opts.catchupWindow !== undefined) parsed.catchupMs = durationOption('--catchup-window', opts.catchupWindow, MIN_CATCHUP_MS);
  return parsed;
}

/** The comment Temporal keeps with a cron spec: the expression as typed, for `describe`. */
function cronSpec(cron: string): string {
  return `${cron} # ${CRON_COMMENT_PREFIX}${cron}`;
}

/** The spec of a new schedule (parseSpecOptions made sure --cron or --every is there). */
export function newSpec(p: ParsedSpecOptions): ScheduleSpec {
  return {
    ...(p.cron !== undefined ? { cronExpressions: [cronSpec(p.cron)] } : { intervals: [{ every: p.everyMs! }] }),
    timezone: p.timezone,
    jitter: p.jitterMs,
  };
}

/** The spec after `update`: --cron / --every replace the times; the rest stays unless given. */
export function updatedSpec(prev: ScheduleSpecDescription, p: ParsedSpecOptions): ScheduleSpec {
  const spec: ScheduleSpec = { ...prev };
  if (p.cron !== undefined || p.everyMs !== undefined) {
    spec.calendars = [];
    spec.intervals = [];
    spec.cronExpressions = p.cron !== undefined ? [cronSpec(p.cron)] : [];
    if (p.everyMs !== undefined) spec.intervals = [{ every: p.everyMs }];
  }
  if (p.timezone !== undefined) spec.timezone = p.timezone;
  if (p.jitterMs !== undefined) spec.jitter = p.jitterMs;
  return spec;
}

/** One Range as cron text; `names` maps a month or weekday name to its number (index + `first`). */
function rangeText(r: Range<number | string>, names?: readonly string[], first = 0): string {
  const show = (v: number | string) => (typeof v === 'string' && names ? String(names.indexOf(v) + first) : String(v));
  const base = r.end === r.start ? show(r.start) : `${show(r.start)}-${show(r.end)}`;
  return r.step > 1 ? `${base}/${r.step}` : base;
}

function fieldText(ranges: Range<number | string>[], all: string, names?: readonly string[], first = 0): string {
  if (ranges.length === 0) return '*';
  const text = ranges.map((r) => rangeText(r, names, first)).join(',');
  return text === all ? '*' : text;
}

/** A calendar made elsewhere (Web UI, another tool) as cron-like text. */
export function calendarText(c: CalendarSpecDescription): string {
  if (c.comment?.startsWith(CRON_COMMENT_PREFIX)) return c.comment.slice(CRON_COMMENT_PREFIX.length);
  const fields = [
    fieldText(c.minute, '0-59'),
    fieldText(c.hour, '0-23'),
    fieldText(c.dayOfMonth, '1-31'),
    fieldText(c.month, '1-12', MONTHS, 1),
    fieldText(c.dayOfWeek, '0-6', DAYS_OF_WEEK),
  ];
  const second = fieldText(c.second, '0-59');
  const year = c.year.length ? fieldText(c.year, '') : '';
  return [second !== '0' ? `${second}s ` : '', fields.join(' '), year ? ` year ${year}` : ''].join('');
}

export interface SpecSummary {
  cron?: string[];
  every?: string[];
  timezone: string;
  jitter?: string;
  text: string;
}

export function specSummary(spec: ScheduleSpecDescription): SpecSummary {
  const cron = (spec.calendars ?? []).map(calendarText);
  const every = (spec.intervals ?? []).map((i) => formatDuration(i.every) + (i.offset ? ` (offset ${formatDuration(i.offset)})` : ''));
  const timezone = spec.timezone || 'UTC';
  const jitter = spec.jitter ? formatDuration(spec.jitter) : undefined;
  const parts = [...cron.map((c) => `cron "${c}"`), ...every.map((e) => `every ${e}`)];
  const text = `${parts.join(' + ') || 'no times'}` + (cron.length ? ` ${timezone}` : '') + (jitter ? `, jitter ${jitter}` : '');
  return { ...(cron.length ? { cron } : {}), ...(every.length ? { every } : {}), timezone, ...(jitter ? { jitter } : {}), text };
}

/** An instant in UTC, and in the schedule's time zone when it has one. */
export function timeText(date: Date, tz: string): string {
  const iso = date.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (!tz || tz === 'UTC' || tz === 'Etc/UTC') return iso;
  // The sv-SE locale writes "2026-01-31 03:00:00": readable and unambiguous.
  return `${iso} (${date.toLocaleString('sv-SE', { timeZone: tz })} ${tz})`;
}
