/**
 * discardImage: throws away an image of one run that will never be a backup: it failed, or its run
 * was cancelled before it was finished (a copy in flight, a source image still pending). EC2 stops
 * a copy in progress when its destination image is deregistered.
 *
 * Only ever an image carrying this tool's tags for that policy, instance AND run: a foreign image,
 * or one of another run, is left alone and reported. Idempotent: an image already gone is what we
 * wanted ("already-gone"), and the tagged snapshots an earlier attempt left behind it (their EC2
 * description names the image) are deleted then. With `keepAvailable` an image that is available
 * (finished) stays: a cancelled run keeps what it completed.
 */
import { DescribeImagesCommand, type EC2Client, type Image, type Snapshot } from '@aws-sdk/client-ec2';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, TAG_SOURCE_IMAGE, amiName } from '../shared/naming';
import type { DiscardImageInput, DiscardImageOutput, DiscardedImage } from '../shared/types';
import type { AwsClients } from './aws';
import { awsErrorCode, toFailure, type ErrorContext } from './errors';
import { findOwnImages, snapshotIdsOf } from './images';
import { deleteSnapshots, deregister, imageIdFromDescription, isOurs, ourSnapshots, tagOf } from './retention';

/** The image by ID, or undefined when EC2 does not know it (any more). */
async function describeImage(ec2: EC2Client, imageId: string, ctx: ErrorContext): Promise<Image | undefined> {
  try {
    const got = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return got.Images?.find((i) => i.ImageId === imageId);
  } catch (err) {
    if (awsErrorCode(err) === 'InvalidAMIID.NotFound' || awsErrorCode(err) === 'InvalidAMIID.Unavailable') return undefined;
    throw toFailure(err, { ...ctx, operation: 'ec2:DescribeImages', imageId });
  }
}

/** This run's images in the region: by this tool's tags, and by the run's AMI name (to report one that lacks them). */
async function imagesOfRun(ec2: EC2Client, input: DiscardImageInput, ctx: ErrorContext): Promise<Image[]> {
  const tagged = await findOwnImages(
    ec2,
    [
      { Name: `tag:${TAG_POLICY}`, Values: [input.policy] },
      { Name: `tag:${TAG_INSTANCE_ID}`, Values: [input.instanceId] },
      { Name: `tag:${TAG_RUN}`, Values: [input.runId] },
    ],
    ctx,
  );
  const named = await findOwnImages(ec2, [{ Name: 'name', Values: [amiName(input.policy, input.instanceId, input.runId)] }], ctx);
  const byId = new Map<string, Image>();
  for (const i of [...tagged, ...named]) if (i.ImageId) byId.set(i.ImageId, i);
  return [...byId.values()].sort((a, b) => (a.ImageId! < b.ImageId! ? -1 : 1));
}

const isOfRun = (tags: Image['Tags'], input: DiscardImageInput) => isOurs(tags, input) && tagOf(tags, TAG_RUN) === input.runId;

/** Tagged snapshots of this run that name `imageId` in their description: left by an attempt that deregistered it. */
function leftBehind(tagged: Map<string, Snapshot>, imageId: string, input: DiscardImageInput): string[] {
  return [...tagged.values()]
    .filter((s) => s.SnapshotId && tagOf(s.Tags, TAG_RUN) === input.runId && imageIdFromDescription(s.Description) === imageId)
    .map((s) => s.SnapshotId!)
    .sort();
}

/** Deletes each tagged snapshot; one that cannot go now is reported, not fatal (the image is already gone). */
async function deleteEach(
  ec2: EC2Client,
  snapshotIds: string[],
  tagged: Map<string, Snapshot>,
  ctx: ErrorContext,
): Promise<Pick<DiscardedImage, 'snapshotIds' | 'snapshotsLeft'>> {
  const deleted: string[] = [];
  const left: NonNullable<DiscardedImage['snapshotsLeft']> = [];
  for (const snapshotId of snapshotIds) {
    if (!tagged.has(snapshotId)) {
      left.push({ snapshotId, reason: 'carries no ami-backup tags for this policy and instance' });
      continue;
    }
    try {
      const gone = await deleteSnapshots(ec2, [snapshotId], ctx);
      if (gone.length > 0) deleted.push(snapshotId);
      else left.push({ snapshotId, reason: 'still in use; the next retention run deletes it' });
    } catch (err) {
      left.push({ snapshotId, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return { snapshotIds: deleted, ...(left.length > 0 ? { snapshotsLeft: left } : {}) };
}

export async function discardImage(aws: AwsClients, input: DiscardImageInput): Promise<DiscardImageOutput> {
  const { region } = input;
  const ec2 = aws.ec2(region, input.roleArn);
  const ctx: ErrorContext = { operation: 'discardImage', region, instanceId: input.instanceId, imageId: input.imageId };
  const output: DiscardImageOutput = { region, discarded: [], left: [] };

  // An image EC2 no longer knows is `gone` (undefined).
  const candidates: Array<{ imageId: string; image?: Image }> = input.imageId
    ? [{ imageId: input.imageId, image: await describeImage(ec2, input.imageId, ctx) }]
    : (await imagesOfRun(ec2, input, ctx)).map((image) => ({ imageId: image.ImageId!, image }));
  if (candidates.length === 0) return output;
  const tagged = await ourSnapshots(ec2, input);

  for (const { imageId, image } of candidates) {
    const imageCtx = { ...ctx, imageId };
    if (!image || image.State === 'deregistered') {
      const cleaned = await deleteEach(ec2, leftBehind(tagged, imageId, input), tagged, imageCtx);
      output.discarded.push({ region, imageId, role: input.role ?? 'source', state: 'gone', outcome: 'already-gone', ...cleaned });
      continue;
    }
    if (!isOfRun(image.Tags, input)) {
      output.left.push({
        imageId,
        reason: `${imageId} in ${region} does not carry the ami-backup tags of policy ${input.policy}, instance ${input.instanceId}, run ${input.runId}: left alone`,
      });
      continue;
    }
    if (input.keepAvailable && image.State === 'available') {
      output.left.push({ imageId, state: 'available', reason: `${imageId} in ${region} is available (finished): kept` });
      continue;
    }
    const snapshotIds = [...new Set([...snapshotIdsOf(image), ...leftBehind(tagged, imageId, input)])];
    await deregister(ec2, imageId, imageCtx);
    const cleaned = await deleteEach(ec2, snapshotIds, tagged, imageCtx);
    output.discarded.push({
      region,
      imageId,
      ...(image.Name ? { name: image.Name } : {}),
      role: input.role ?? (tagOf(image.Tags, TAG_SOURCE_IMAGE) ? 'copy' : 'source'),
      state: image.State ?? 'unknown',
      outcome: 'deregistered',
      ...cleaned,
    });
  }
  return output;
}
