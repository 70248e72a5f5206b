/**
 * Which backups retention retires: by count (keepLast), by age (maxAge), or both, as DLM does.
 * Pure and deterministic (no clock, no I/O): the applyRetention activity, the `plan` command and
 * workflows all call it, and must all agree.
 *
 * The rules, in the order they are checked for each image:
 *  1. a protected image (the one this run made, the one the SSM parameter points to) is kept;
 *  2. an image in a failed state ('failed', 'error', 'invalid') goes, whatever the rule;
 *  3. an image in any other state but 'available' ('pending', unknown states) is kept;
 *  4. an image whose age cannot be told (no valid runId tag, no parsable creationDate) is kept;
 *  5. the newest available image is kept, so a backup chain can never be emptied;
 *  6. an available image goes when it is beyond the keepLast newest available-or-protected images
 *     (protected ones count toward keepLast, pending ones do not), or older than maxAge, measured
 *     from its runId (or creationDate) to `nowMs`.
 */
import { durationMs } from '../policy/duration';
import { isRunId, runIdFor } from './naming';
import type { BackupImage, RetentionRule } from './types';

/** States of an image that will never become usable: retention removes them whatever the rule. */
export const RETIRABLE_FAILED_STATES: ReadonlySet<string> = new Set(['failed', 'error', 'invalid']);

export type RemovedImage = BackupImage & { reason: string };

export interface RetentionSelection {
  /** Images that stay, newest first (images whose age is unknown last). */
  keep: BackupImage[];
  /** Images to deregister (with their snapshots), newest first, each with why. */
  remove: RemovedImage[];
}

export interface SelectOptions {
  /** The clock maxAge is measured against, in ms since the epoch (the workflow's clock). */
  nowMs: number;
  /** Image IDs never removed. */
  protect: ReadonlySet<string>;
}

/** The instant a runId (yyyymmddThhmmssZ) names, or undefined when it is not a valid one. */
export function runIdMs(runId: string): number | undefined {
  if (!isRunId(runId)) return undefined;
  const n = (from: number, to: number) => Number(runId.slice(from, to));
  const ms = Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(9, 11), n(11, 13), n(13, 15));
  // Date.UTC rolls "month 13" or "second 61" over: only a round trip proves the ID names a real instant.
  return Number.isFinite(ms) && runIdFor(new Date(ms)) === runId ? ms : undefined;
}

/** When the image was made: its run, else EC2's CreationDate, else undefined. */
export function imageTimeMs(image: BackupImage): number | undefined {
  const fromRun = image.runId !== undefined ? runIdMs(image.runId) : undefined;
  if (fromRun !== undefined) return fromRun;
  if (image.creationDate === undefined) return undefined;
  const parsed = Date.parse(image.creationDate);
  return Number.isFinite(parsed) ? parsed : undefined;
}

/** Plain code-unit order (no locale): the same answer in every worker and in workflow replay. */
function compareText(a: string | undefined, b: string | undefined): number {
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Newest first; ties broken by runId, creationDate (both newest first), then image ID, so the order is total. */
function newestFirst(a: { image: BackupImage; time: number }, b: { image: BackupImage; time: number }): number {
  return (
    b.time - a.time ||
    compareText(b.image.runId, a.image.runId) ||
    compareText(b.image.creationDate, a.image.creationDate) ||
    compareText(a.image.imageId, b.image.imageId)
  );
}

/** Splits one policy's and instance's images (in one region) into those to keep and those to remove. */
export function selectForRetention(images: BackupImage[], rule: RetentionRule, opts: SelectOptions): RetentionSelection {
  const maxAgeMs = rule.maxAge !== undefined ? durationMs(rule.maxAge) : undefined;
  const dated: Array<{ image: BackupImage; time: number }> = [];
  const undated: BackupImage[] = [];
  for (const image of images) {
    const time = imageTimeMs(image);
    if (time === undefined) undated.push(image);
    else dated.push({ image, time });
  }
  dated.sort(newestFirst);
  undated.sort((a, b) => compareText(a.imageId, b.imageId));

  const keep: BackupImage[] = [];
  const remove: RemovedImage[] = [];
  const newestAvailable = dated.find((d) => d.image.state === 'available')?.image.imageId;
  let counted = 0;
  for (const { image, time } of dated) {
    const isProtected = opts.protect.has(image.imageId);
    const available = image.state === 'available';
    if (isProtected || available) counted++;
    if (isProtected || image.imageId === newestAvailable) {
      keep.push(image);
    } else if (RETIRABLE_FAILED_STATES.has(image.state)) {
      remove.push({ ...image, reason: `failed image (${image.state})` });
    } else if (!available) {
      keep.push(image);
    } else {
      const reasons: string[] = [];
      if (rule.keepLast !== undefined && counted > rule.keepLast) reasons.push(`beyond keepLast ${rule.keepLast}`);
      if (maxAgeMs !== undefined && opts.nowMs - time > maxAgeMs) reasons.push(`older than maxAge ${rule.maxAge}`);
      if (reasons.length > 0) remove.push({ ...image, reason: reasons.join(' and ') });
      else keep.push(image);
    }
  }
  // Age unknown: nothing to measure the rules against, so kept; a failed one is useless at any age.
  for (const image of undated) {
    if (!opts.protect.has(image.imageId) && RETIRABLE_FAILED_STATES.has(image.state)) {
      remove.push({ ...image, reason: `failed image (${image.state})` });
    } else {
      keep.push(image);
    }
  }
  return { keep, remove };
}

export interface PlanOptions {
  /** When the next run happens (maxAge is measured from it). */
  nowMs: number;
  /** The image the next run will make: its runId (or creationDate) places it; its imageId may be a placeholder. */
  newImage: BackupImage;
  /** Other images the run will protect (the image the SSM parameter points to). */
  protect?: ReadonlySet<string>;
}

/**
 * What the next run will delete among `images`: retention runs once that run's image is
 * available, so the new image joins the set as available and protected, exactly as the run
 * passes it to applyRetention. Returns only existing images.
 */
export function planRetention(images: BackupImage[], rule: RetentionRule, opts: PlanOptions): RemovedImage[] {
  const newImage: BackupImage = { ...opts.newImage, state: 'available' };
  const existing = images.filter((i) => i.imageId !== newImage.imageId);
  const protect = new Set([...(opts.protect ?? []), newImage.imageId]);
  return selectForRetention([newImage, ...existing], rule, { nowMs: opts.nowMs, protect }).remove;
}
