/**
 * Deterministic names: AMI names, workflow IDs, SSM parameter names and tags all derive from the
 * policy, the instance and the run, so a retried step finds what an earlier attempt made.
 * Pure functions only: workflows import this module too.
 */

export const TAG_POLICY = 'ami-backup:policy';
export const TAG_INSTANCE_ID = 'ami-backup:instance-id';
export const TAG_RUN = 'ami-backup:run';
export const TAG_SOURCE_IMAGE = 'ami-backup:source-image';

const RUN_ID_RE = /^\d{8}T\d{6}Z$/;

/** The run's timestamp as yyyymmddThhmmssZ (UTC, whole seconds). */
export function runIdFor(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

export function isRunId(text: string): boolean {
  return RUN_ID_RE.test(text);
}

/** "{policy}-{instanceId}-{yyyymmddThhmmssZ}": valid AMI name characters, at most 128 of them. */
export function amiName(policy: string, instanceId: string, runId: string): string {
  return `${policy}-${instanceId}-${runId}`;
}

/**
 * One workflow ID per policy and instance: Temporal refuses a second run for the same instance
 * while one is open, and the Web UI lists every run of that instance under one ID.
 */
export function instanceWorkflowId(policy: string, instanceId: string): string {
  return `ami-backup/${policy}/${instanceId}`;
}

/**
 * The fleet run of a policy. Ad-hoc fleet runs use it as is (a second one is refused while one
 * runs); a Schedule appends the scheduled time to it, so scheduled runs sort under it too.
 */
export function fleetWorkflowId(policy: string): string {
  return `ami-backup/${policy}/fleet`;
}

/** The Schedule of a policy: one per policy, named after it. */
export function scheduleIdFor(policy: string): string {
  return `ami-backup-${policy}`;
}

export function ssmParameterName(template: string, vars: { policy: string; instanceId: string; sourceRegion: string }): string {
  return template.replace(/\{(policy|instanceId|sourceRegion)\}/g, (_, key: keyof typeof vars) => vars[key]);
}

export interface Tag {
  Key: string;
  Value: string;
}

/** The tags every image and snapshot this tool creates carries (DESIGN.md, Idempotency). */
export function backupTags(args: {
  policy: string;
  instanceId: string;
  runId: string;
  instanceName?: string;
  sourceImageId?: string;
}): Tag[] {
  const tags: Tag[] = [
    { Key: TAG_POLICY, Value: args.policy },
    { Key: TAG_INSTANCE_ID, Value: args.instanceId },
    { Key: TAG_RUN, Value: args.runId },
  ];
  if (args.sourceImageId) tags.push({ Key: TAG_SOURCE_IMAGE, Value: args.sourceImageId });
  if (args.instanceName) tags.push({ Key: 'Name', Value: args.instanceName });
  return tags;
}

/** A policy's targets in words: "instances tagged Backup=true, Env=prod" or "3 listed instances". */
export function describeTargets(targets: { tags?: Record<string, string>; instanceIds?: string[] }): string {
  if (targets.tags) {
    return `instances tagged ${Object.entries(targets.tags)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`;
  }
  const n = targets.instanceIds?.length ?? 0;
  return `${n} listed instance${n === 1 ? '' : 's'}`;
}
