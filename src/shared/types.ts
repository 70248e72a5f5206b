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
  /** Image IDs retired by retention (filled in once retention runs). */
  deleted: string[];
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
  'starting' | 'createImage' | 'waitForImage' | 'tagSnapshots' | 'copyImage' | 'waitForCopy' | 'setSsmParam' | 'done' | 'failed';

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
  error?: string;
}
