import { CopyImageCommand, CreateTagsCommand, EnableImageDeprecationCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { Tag } from '../shared/naming';
import type { AwsClients } from './aws';
import { awsCall, awsErrorCode, toFailure, type ErrorContext } from './errors';
import { findOwnImages, isLiveImage } from './images';

export interface CopyImageInput {
  policy: string;
  instanceId: string;
  runId: string;
  sourceRegion: string;
  sourceImageId: string;
  /** The destination (disaster-recovery) region. */
  region: string;
  name: string;
  /** KMS key for the copy; the account's default EBS key when absent. */
  kmsKeyId?: string;
  /** Tags for the copy and its snapshots: the source image's, plus ami-backup:source-image. */
  tags: Tag[];
  /** When the copy is deprecated (ISO 8601; EnableImageDeprecation), if the policy asks. */
  deprecateAt?: string;
  roleArn?: string;
}

export interface CopyImageOutput {
  imageId: string;
  reused: boolean;
}

/** Same run, same source image, same region: same token, so EC2 makes the copy only once. */
export function copyClientToken(runId: string, sourceImageId: string, region: string): string {
  const digest = createHash('sha256').update(`${runId}|${sourceImageId}|${region}`).digest('hex');
  return `ami-backup-${digest.slice(0, 48)}`;
}

/**
 * CopyImage into the disaster-recovery region, always encrypted. Idempotent three times over: a
 * copy already named as this run's copy in the region is returned, the ClientToken makes EC2
 * answer a repeated request with the first copy, and a name EC2 says is taken is this run's copy.
 */
export async function copyImage(aws: AwsClients, input: CopyImageInput): Promise<CopyImageOutput> {
  const ec2 = aws.ec2(input.region, input.roleArn);
  const ctx: ErrorContext = {
    operation: 'ec2:CopyImage',
    region: input.region,
    instanceId: input.instanceId,
    imageId: input.sourceImageId,
    kmsKeyId: input.kmsKeyId,
  };
  const earlier = await findEarlierCopy(ec2, input, ctx);
  if (earlier) return finishReused(ec2, input, earlier, ctx);

  let copied;
  try {
    copied = await ec2.send(
      new CopyImageCommand({
        SourceRegion: input.sourceRegion,
        SourceImageId: input.sourceImageId,
        Name: input.name,
        Description: `ami-backup copy of ${input.sourceImageId} (${input.instanceId}) from ${input.sourceRegion}, run ${input.runId}`,
        Encrypted: true,
        KmsKeyId: input.kmsKeyId,
        ClientToken: copyClientToken(input.runId, input.sourceImageId, input.region),
        TagSpecifications: [
          { ResourceType: 'image', Tags: input.tags },
          { ResourceType: 'snapshot', Tags: input.tags },
        ],
      }),
    );
  } catch (err) {
    // The name is this run's: a copy of that name is the one an earlier attempt made.
    if (awsErrorCode(err) === 'InvalidAMIName.Duplicate') {
      const dup = await findEarlierCopy(ec2, input, ctx);
      if (dup) return finishReused(ec2, input, dup, ctx);
    }
    throw toFailure(err, ctx);
  }
  if (!copied.ImageId) throw ApplicationFailure.retryable(`CopyImage into ${input.region} returned no image ID`, 'NoImageId');
  // Tag again by ID: endpoints that ignore TagSpecifications on CopyImage still get the tags the
  // idempotency look-up above and retention rely on.
  await awsCall({ ...ctx, operation: 'ec2:CreateTags', imageId: copied.ImageId }, () =>
    ec2.send(new CreateTagsCommand({ Resources: [copied.ImageId!], Tags: input.tags })),
  );
  await deprecate(ec2, input, copied.ImageId, ctx);
  return { imageId: copied.ImageId, reused: false };
}

/**
 * The copy an earlier attempt of this run made in the region, found by its name: the run's name
 * is fixed in the workflow's history and unique in a region, and it is set by CopyImage itself, so
 * it is there even when the answer was lost before the tags below were put on. (A tag look-up by
 * source image was dropped: it never found a copy the name look-up missed, cost a DescribeImages
 * per copy and attempt, and tag filters are the slow kind of DescribeImages.)
 */
async function findEarlierCopy(ec2: EC2Client, input: CopyImageInput, ctx: ErrorContext): Promise<string | undefined> {
  const named = (await findOwnImages(ec2, [{ Name: 'name', Values: [input.name] }], ctx)).find(isLiveImage);
  return named?.ImageId;
}

/** An earlier attempt's copy: tagged again (harmless when the tags are there), deprecated if asked. */
async function finishReused(ec2: EC2Client, input: CopyImageInput, imageId: string, ctx: ErrorContext): Promise<CopyImageOutput> {
  await awsCall({ ...ctx, operation: 'ec2:CreateTags', imageId }, () =>
    ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: input.tags })),
  );
  await deprecate(ec2, input, imageId, ctx);
  return { imageId, reused: true };
}

/** Sets the copy's deprecation time (idempotent: the same time again is a no-op for EC2). */
async function deprecate(ec2: EC2Client, input: CopyImageInput, imageId: string, ctx: ErrorContext): Promise<void> {
  if (!input.deprecateAt) return;
  await awsCall({ ...ctx, operation: 'ec2:EnableImageDeprecation', imageId }, () =>
    ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: new Date(input.deprecateAt!) })),
  );
}
