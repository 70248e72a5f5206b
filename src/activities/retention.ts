import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Filter,
  type Image,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, isRunId } from '../shared/naming';
import { selectForRetention } from '../shared/retention';
import type { ApplyRetentionInput, ApplyRetentionOutput, BackupImage, DeletedImage } from '../shared/types';
import type { AwsClients } from './aws';
import { beat } from './heartbeat';
import { awsCall, awsErrorCode, toFailure, type ErrorContext } from './errors';
import { findOwnImages, snapshotIdsOf } from './images';

export interface ListBackupsInput {
  policy: string;
  instanceId: string;
  region: string;
  roleArn?: string;
}

/** Why snapshots found without their image were deleted (see applyRetention). */
export const ORPHAN_REASON = 'snapshots left behind by an image already deregistered';

export type Tags = Array<{ Key?: string; Value?: string }> | undefined;

export const tagOf = (tags: Tags, key: string) => tags?.find((t) => t.Key === key)?.Value;

/** Both ownership tags, exactly (EC2 filter values treat `*` and `?` as wildcards). */
export function isOurs(tags: Tags, input: ListBackupsInput): boolean {
  return tagOf(tags, TAG_POLICY) === input.policy && tagOf(tags, TAG_INSTANCE_ID) === input.instanceId;
}

export function ownershipFilters(input: ListBackupsInput): Filter[] {
  return [
    { Name: `tag:${TAG_POLICY}`, Values: [input.policy] },
    { Name: `tag:${TAG_INSTANCE_ID}`, Values: [input.instanceId] },
  ];
}

export function toBackupImage(region: string, image: Image): BackupImage {
  const backup: BackupImage = { region, imageId: image.ImageId!, state: image.State ?? 'unknown', snapshotIds: snapshotIdsOf(image) };
  if (image.Name) backup.name = image.Name;
  const runId = tagOf(image.Tags, TAG_RUN);
  if (runId) backup.runId = runId;
  if (image.CreationDate) backup.creationDate = image.CreationDate;
  return backup;
}

/**
 * This tool's images of one policy and instance in one region: owned by this account and tagged
 * with both ami-backup:policy and ami-backup:instance-id, so images of other policies or
 * instances, and untagged images, can never become retention candidates.
 */
export async function listBackups(aws: AwsClients, input: ListBackupsInput): Promise<BackupImage[]> {
  const ec2 = aws.ec2(input.region, input.roleArn);
  const ctx: ErrorContext = { operation: 'ec2:DescribeImages', region: input.region, instanceId: input.instanceId };
  const images = await findOwnImages(ec2, ownershipFilters(input), ctx);
  return images.filter((i) => i.ImageId && isOurs(i.Tags, input)).map((i) => toBackupImage(input.region, i));
}

/** Snapshots owned by this account carrying both ownership tags, by ID (all pages). */
export async function ourSnapshots(ec2: EC2Client, input: ListBackupsInput): Promise<Map<string, Snapshot>> {
  const ctx: ErrorContext = { operation: 'ec2:DescribeSnapshots', region: input.region, instanceId: input.instanceId };
  const found = new Map<string, Snapshot>();
  let NextToken: string | undefined;
  do {
    const page = await awsCall(ctx, () =>
      ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: ownershipFilters(input), MaxResults: 1000, NextToken })),
    );
    for (const s of page.Snapshots ?? []) if (s.SnapshotId && isOurs(s.Tags, input)) found.set(s.SnapshotId, s);
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/** The image ID the SSM parameter holds in this region, or undefined when there is no parameter. */
async function pinnedImage(aws: AwsClients, input: ApplyRetentionInput): Promise<string | undefined> {
  if (!input.ssmParameter) return undefined;
  try {
    const got = await aws.ssm(input.region, input.roleArn).send(new GetParameterCommand({ Name: input.ssmParameter }));
    return got.Parameter?.Value || undefined;
  } catch (err) {
    if (awsErrorCode(err) === 'ParameterNotFound') return undefined;
    throw toFailure(err, {
      operation: 'ssm:GetParameter',
      region: input.region,
      instanceId: input.instanceId,
      parameter: input.ssmParameter,
    });
  }
}

/** DeregisterImage; an image already gone (an earlier attempt, or a person) is what we wanted. */
export async function deregister(ec2: EC2Client, imageId: string, ctx: ErrorContext): Promise<void> {
  try {
    await ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
  } catch (err) {
    const code = awsErrorCode(err);
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable') return;
    throw toFailure(err, { ...ctx, operation: 'ec2:DeregisterImage', imageId });
  }
}

/**
 * DeleteSnapshot for each; returns those now gone. Already deleted is fine. A snapshot still in
 * use (EC2 may lag behind a deregistration, or another image was registered from it) is left for
 * now: once its image is gone it is an orphan, and the next retention run deletes it.
 */
export async function deleteSnapshots(ec2: EC2Client, snapshotIds: string[], ctx: ErrorContext): Promise<string[]> {
  const gone: string[] = [];
  for (const snapshotId of snapshotIds) {
    try {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
      gone.push(snapshotId);
    } catch (err) {
      const code = awsErrorCode(err);
      if (code === 'InvalidSnapshot.NotFound') gone.push(snapshotId);
      else if (code !== 'InvalidSnapshot.InUse') throw toFailure(err, { ...ctx, operation: 'ec2:DeleteSnapshot' });
    }
  }
  return gone;
}

/** The image a snapshot was made for, from EC2's description ("Created by CreateImage(i-…) for ami-…", "Copied for DestinationAmi ami-…"). */
export function imageIdFromDescription(description: string | undefined): string | undefined {
  return /\bami-[0-9a-f]{8,17}\b/.exec(description ?? '')?.[0];
}

/**
 * A snapshot younger than this is never an orphan: EC2's lists are eventually consistent, so an
 * image made moments ago (this run's) may not be listed yet while its snapshots already are.
 * Orphans come from images retired long before (an interrupted retention), so nothing is lost.
 */
export const ORPHAN_MIN_AGE_MS = 60 * 60_000;

export interface OrphanGroup {
  /** The image the snapshots belonged to, from their EC2 description ('' when it names none). */
  imageId: string;
  runId: string;
  snapshotIds: string[];
}

/**
 * Tagged snapshots whose image is gone, grouped by image, oldest run first. Shared by
 * applyRetention and `ami-backup plan`, so the plan lists what the run deletes.
 */
export function selectOrphans(
  tagged: Map<string, Snapshot>,
  images: BackupImage[],
  keptRuns: ReadonlySet<string>,
  nowMs: number,
): OrphanGroup[] {
  const referenced = new Set(images.flatMap((i) => i.snapshotIds));
  const groups = new Map<string, OrphanGroup>();
  for (const [snapshotId, snapshot] of tagged) {
    const runId = tagOf(snapshot.Tags, TAG_RUN);
    if (referenced.has(snapshotId) || snapshot.State === 'pending' || !runId || !isRunId(runId) || keptRuns.has(runId)) continue;
    const started = snapshot.StartTime ? new Date(snapshot.StartTime).getTime() : undefined;
    if (started === undefined || !(nowMs - started >= ORPHAN_MIN_AGE_MS)) continue;
    const imageId = imageIdFromDescription(snapshot.Description) ?? '';
    const key = `${imageId}|${runId}`;
    const group = groups.get(key) ?? { imageId, runId, snapshotIds: [] };
    group.snapshotIds.push(snapshotId);
    groups.set(key, group);
  }
  return [...groups.values()]
    .map((g) => ({ ...g, snapshotIds: [...g.snapshotIds].sort() }))
    .sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
}

/**
 * Retention for one policy and instance in one region:
 *
 * - candidates are this tool's images of that policy and instance (listBackups); the images in
 *   `protect` and the image the SSM parameter holds in the region are never deleted;
 * - selectForRetention decides; each image it retires is deregistered, then its snapshots are
 *   deleted, but only snapshots that carry both ownership tags too (an untagged one is left);
 * - idempotent under retries: snapshots whose image is already gone (an attempt that stopped
 *   between DeregisterImage and DeleteSnapshot, or an image deregistered by hand) are "orphans"
 *   and deleted as well, when they carry both ownership tags and a run tag, are not being created
 *   (state pending), are referenced by no image listed (in any state), their run is not that
 *   of any image kept, and they are older than ORPHAN_MIN_AGE_MS. They are reported grouped by the image they belonged to: `imageId` is the
 *   AMI their EC2 description names (or '' when it names none), `reason` is ORPHAN_REASON.
 */
export async function applyRetention(aws: AwsClients, input: ApplyRetentionInput): Promise<ApplyRetentionOutput> {
  const { region } = input;
  const ec2 = aws.ec2(region, input.roleArn);
  const ctx: ErrorContext = { operation: 'retention', region, instanceId: input.instanceId };

  beat({ listing: region });
  const images = await listBackups(aws, input);
  beat({ listed: images.length });
  const protect = new Set(input.protect);
  const pinned = await pinnedImage(aws, input);
  if (pinned) protect.add(pinned);
  const { keep, remove } = selectForRetention(images, input.rule, { nowMs: input.nowMs, protect });
  const tagged = await ourSnapshots(ec2, input);

  const deleted: DeletedImage[] = [];
  // Oldest first: an attempt cut short has retired the images that were most overdue.
  for (const image of [...remove].reverse()) {
    beat({ deregistering: image.imageId });
    await deregister(ec2, image.imageId, ctx);
    const snapshotIds = await deleteSnapshots(
      ec2,
      image.snapshotIds.filter((id) => tagged.has(id)),
      { ...ctx, imageId: image.imageId },
    );
    const done: DeletedImage = { region, imageId: image.imageId, snapshotIds, reason: image.reason };
    if (image.name) done.name = image.name;
    if (image.runId) done.runId = image.runId;
    deleted.push(done);
  }

  const keptRuns = new Set(keep.flatMap((i) => (i.runId ? [i.runId] : [])));
  const orphans = selectOrphans(tagged, images, keptRuns, input.nowMs);
  for (const group of orphans) {
    beat({ orphansOf: group.imageId });
    const snapshotIds = await deleteSnapshots(ec2, group.snapshotIds, { ...ctx, imageId: group.imageId || undefined });
    if (snapshotIds.length > 0) deleted.push({ region, imageId: group.imageId, runId: group.runId, snapshotIds, reason: ORPHAN_REASON });
  }

  return { region, deleted, kept: keep.length };
}
