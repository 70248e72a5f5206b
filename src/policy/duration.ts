/**
 * Durations in policy files are strings such as "90s", "5m", "4h" or "30d".
 * Pure functions only: workflows import this module too.
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_RE = /^(\d+)(ms|s|m|h|d)$/;

export const DURATION_HELP = 'a whole number followed by ms, s, m, h or d, such as "90s", "5m", "4h" or "30d"';

/** Milliseconds for a duration string, or undefined when the string is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_RE.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * UNIT_MS[match[2]!]!;
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Milliseconds for a duration string that was validated before; throws on anything else. */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new TypeError(`"${text}" is not a duration: use ${DURATION_HELP}`);
  return ms;
}

/** Short human form: 1500 → "1.5s", 90000 → "1m30s", 14400000 → "4h". */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1_000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1_000);
  const h = Math.floor(totalSeconds / 3_600);
  const m = Math.floor((totalSeconds % 3_600) / 60);
  const s = totalSeconds % 60;
  return [h ? `${h}h` : '', m ? `${m}m` : '', s ? `${s}s` : ''].join('') || '0s';
}
