/**
 * Shapes that cross the boundary between client, workflow and activities. Type-only: safe to
 * import from workflow code.
 */
import type { Policy } from '../policy/schema';
import type { Tag } from './naming';

export type { Policy, Tag };

export interface BackupInstanceInput {
  policy: Policy;
  instanceId: string;
  /** The run's timestamp, yyyymmddThhmmssZ: names the AMI and tags everything the run creates. */
  runId: string;
  /**
   * Set by backupFleet: ask the parent for a copy slot per region before CopyImage (the fleet
   * keeps at most policy.maxConcurrentCopies copies in flight per region).
   */
  copySlotsFromParent?: boolean;
}

/** backupFleet's input: what a Schedule's action carries. */
export interface BackupFleetInput {
  policy: Policy;
  /** Whether the namespace has the AmiBackupPolicy / AmiBackupInstanceId search attributes (the starter checks). */
  searchAttributes?: boolean;
  /** Only these instances (an ad-hoc run of part of the fleet); default: findInstances. */
  instanceIds?: string[];
  /** The run's timestamp; default: the workflow's start time. Kept across continue-as-new. */
  runId?: string;
  /** Carried across continue-as-new: what is left and what is done. */
  carry?: FleetCarry;
}

export interface FleetCarry {
  remaining: string[];
  /** The report so far: failures and skips always, successes up to the detail limit. */
  results: FleetInstanceResult[];
  counts: { succeeded: number; failed: number; skipped: number };
  total: number;
  startedAt: string;
  /** How many runs (continue-as-new generations) came before this one. */
  generation: number;
}

/** One instance in the fleet report. `ssmParameter` is left out: it derives from the policy. */
export interface FleetInstanceResult {
  instanceId: string;
  status: 'succeeded' | 'failed' | 'skipped';
  sourceImageId?: string;
  copies?: CopyResult[];
  deleted?: DeletedImage[];
  warnings?: string[];
  /** Why it failed or was skipped. */
  error?: string;
  /** The child workflow that backed it up. */
  workflowId?: string;
}

export interface FleetReport {
  policy: string;
  runId: string;
  startedAt: string;
  endedAt: string;
  counts: { total: number; succeeded: number; failed: number; skipped: number };
  /** Every failed and skipped instance; succeeded ones while the report is under its detail limit (1,000). */
  instances: FleetInstanceResult[];
  /** Succeeded instances counted but not listed (their child workflows hold the detail). */
  unlisted: number;
}

/** The answer of backupFleet's `progress` query. */
export interface FleetProgress {
  policy: string;
  runId: string;
  startedAt: string;
  phase: 'finding instances' | 'backing up' | 'done';
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  /** Instances being backed up right now (child workflows running). */
  inFlight: string[];
  /** Copies in flight per copy region, and how many wait for a slot. */
  copySlots: Record<string, { inFlight: number; waiting: number; limit: number }>;
  /** The latest failures, newest last (at most 20). */
  recentFailures: Array<{ instanceId: string; error: string }>;
  generation: number;
}

export interface CopyResult {
  region: string;
  imageId: string;
}

export interface BackupInstanceResult {
  instanceId: string;
  status: 'succeeded' | 'failed';
  sourceImageId?: string;
  copies: CopyResult[];
  /** The SSM parameter name written in every copy region. */
  ssmParameter: string;
  /** Images retired by retention after this backup, in every region. */
  deleted: DeletedImage[];
  /** Things that did not stop the backup but need a look (retention that could not run). */
  warnings?: string[];
  error?: string;
}

/** EC2 image states (DescribeImages), plus "pending" for an image EC2 does not list yet. */
export type ImageState = 'pending' | 'available' | 'invalid' | 'deregistered' | 'transient' | 'failed' | 'error' | 'disabled';

export const FAILED_IMAGE_STATES: ReadonlySet<string> = new Set(['failed', 'error', 'invalid', 'deregistered', 'disabled']);

export interface ImageStatus {
  imageId: string;
  state: ImageState;
  /** EC2's StateReason message, when it gives one. */
  reason?: string;
  /** True when EC2 does not know the image (yet): eventual consistency right after create/copy. */
  notFound?: boolean;
}

export type StepName =
  | 'starting'
  | 'createImage'
  | 'waitForImage'
  | 'tagSnapshots'
  | 'waitForCopySlot'
  | 'copyImage'
  | 'waitForCopy'
  | 'setSsmParam'
  | 'applyRetention'
  | 'discardImage'
  | 'done'
  | 'failed'
  | 'cancelled';

export interface StepRecord {
  step: StepName;
  region: string;
  startedAt: string;
  endedAt?: string;
  /** What the step produced or why it failed, in a few words. */
  detail?: string;
}

export interface ImageProgress {
  region: string;
  imageId?: string;
  state?: string;
  polls: number;
  ssmWritten?: boolean;
}

/** The answer of the `progress` query. */
export interface BackupProgress {
  policy: string;
  instanceId: string;
  runId: string;
  step: StepName;
  startedAt: string;
  source: ImageProgress;
  copies: ImageProgress[];
  steps: StepRecord[];
  /** Images retention deleted after this backup. */
  deleted?: number;
  warnings?: string[];
  error?: string;
  /** Images of this run discarded because they failed, or because the run was cancelled before they were finished. */
  cleanedUp?: DiscardedImage[];
  /** Cleanup that could not be done (the image is still there): what and why, for a person to finish. */
  cleanupProblems?: string[];
}

/** An image retention retired: deregistered, with the snapshots deleted behind it. */
export interface DeletedImage {
  region: string;
  imageId: string;
  name?: string;
  /** The ami-backup:run tag of the image (the run that made it). */
  runId?: string;
  snapshotIds: string[];
  /** Why it went: "beyond keepLast 2" or "older than maxAge 30d". */
  reason: string;
}

/** One of this tool's images for a policy and instance, as retention and `plan` see it. */
export interface BackupImage {
  region: string;
  imageId: string;
  name?: string;
  runId?: string;
  /** EC2's CreationDate (ISO 8601). */
  creationDate?: string;
  state: string;
  snapshotIds: string[];
}

export interface RetentionRule {
  keepLast?: number;
  /** A duration string as in the policy ("30d"). */
  maxAge?: string;
}

export interface FindInstancesInput {
  region: string;
  roleArn?: string;
  /** Every tag must match (running and stopped instances). */
  tags?: Record<string, string>;
  /** Or these instances; any that does not exist or is terminated is reported in `problems`. */
  instanceIds?: string[];
}

export interface FindInstancesOutput {
  /** The instances to back up, sorted. */
  instanceIds: string[];
  /** Listed instances that cannot be backed up, with why ("does not exist in us-east-1", "is terminated"). */
  problems: Array<{ instanceId: string; reason: string }>;
}

export interface ApplyRetentionInput {
  policy: string;
  instanceId: string;
  region: string;
  rule: RetentionRule;
  /** Images never deleted: those this run made. */
  protect: string[];
  /** The SSM parameter to read in this region: the image it holds is never deleted. */
  ssmParameter?: string;
  /** The workflow's clock, in ms since the epoch (maxAge is measured from it). */
  nowMs: number;
  roleArn?: string;
}

export interface ApplyRetentionOutput {
  region: string;
  deleted: DeletedImage[];
  /** Images of this policy and instance left in the region. */
  kept: number;
}

/**
 * An image of one run thrown away (discardImage): it failed, or its run was cancelled before it
 * was finished. Deregistered, and its snapshots deleted where they carry this tool's tags.
 */
export interface DiscardedImage {
  region: string;
  imageId: string;
  name?: string;
  /** The source image of the run, or a copy (it carries ami-backup:source-image). */
  role: 'source' | 'copy';
  /** Its state when it was discarded (pending, available, failed …); "gone" when it was already deregistered. */
  state: string;
  outcome: 'deregistered' | 'already-gone';
  /** Snapshots deleted with it. */
  snapshotIds: string[];
  /** Snapshots left, with why (no ami-backup tags, still in use …). */
  snapshotsLeft?: Array<{ snapshotId: string; reason: string }>;
}

export interface DiscardImageInput {
  policy: string;
  instanceId: string;
  /** The run the image belongs to: only images tagged with it are discarded. */
  runId: string;
  region: string;
  /** The image; without it, every image of this run in the region (by tags, and by name to report untagged ones). */
  imageId?: string;
  /** What the image is to the run, when the workflow knows (reported as is for an image already gone). */
  role?: 'source' | 'copy';
  /** Leave an image that is available (finished) alone: a cancelled run keeps what it completed. */
  keepAvailable?: boolean;
  roleArn?: string;
}

export interface DiscardImageOutput {
  region: string;
  discarded: DiscardedImage[];
  /** Images found but not touched: they do not carry this run's tags, or they are available and keepAvailable was asked. */
  left: Array<{ imageId: string; reason: string; state?: string }>;
}

/** What a cancelled backupInstance run left in its memo (a cancelled workflow has no result). */
export interface CancelCleanupMemo {
  cleanedUp: DiscardedImage[];
  /** Images of this run that were available when the run was cancelled: finished, so they stay. */
  kept?: Array<{ region: string; imageId: string }>;
  cleanupProblems?: string[];
}
