import { CreateTagsCommand, DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { Tag } from '../shared/naming';
import type { AwsClients } from './aws';
import { awsCall, type ErrorContext } from './errors';
import { snapshotIdsOf } from './images';

export interface TagSnapshotsInput {
  region: string;
  imageId: string;
  tags: Tag[];
  roleArn?: string;
}

/**
 * Puts this tool's tags on an available image's snapshots (and the image again, harmlessly), so
 * retention can find and delete them later. Idempotent: CreateTags overwrites equal tags.
 */
export async function tagSnapshots(aws: AwsClients, input: TagSnapshotsInput): Promise<{ snapshotIds: string[] }> {
  const ec2 = aws.ec2(input.region, input.roleArn);
  const ctx: ErrorContext = { operation: 'ec2:CreateTags', region: input.region, imageId: input.imageId };
  const described = await awsCall({ ...ctx, operation: 'ec2:DescribeImages' }, () =>
    ec2.send(new DescribeImagesCommand({ ImageIds: [input.imageId] })),
  );
  const image = described.Images?.[0];
  if (!image) {
    throw ApplicationFailure.retryable(`Image ${input.imageId} is not listed in ${input.region} yet`, 'InvalidAMIID.NotFound');
  }
  const snapshotIds = snapshotIdsOf(image);
  await awsCall(ctx, () => ec2.send(new CreateTagsCommand({ Resources: [input.imageId, ...snapshotIds], Tags: input.tags })));
  return { snapshotIds };
}
