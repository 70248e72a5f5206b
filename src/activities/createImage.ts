import { CreateImageCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { amiName, backupTags } from '../shared/naming';
import type { AwsClients } from './aws';
import { awsCall, awsErrorCode, toFailure, type ErrorContext } from './errors';
import { findOwnImages, isLiveImage } from './images';

export interface CreateImageInput {
  policy: string;
  region: string;
  instanceId: string;
  runId: string;
  noReboot: boolean;
  roleArn?: string;
}

export interface CreateImageOutput {
  imageId: string;
  name: string;
  /** The instance's Name tag, copied onto every image and snapshot of this backup. */
  instanceName?: string;
  /** True when an earlier attempt had already created the image (a retry after a lost answer). */
  reused: boolean;
}

/**
 * CreateImage from the instance with a deterministic name and this tool's tags. Idempotent: an
 * image of the same name (an earlier attempt of this run) is returned instead of a second one.
 */
export async function createImage(aws: AwsClients, input: CreateImageInput): Promise<CreateImageOutput> {
  const ec2 = aws.ec2(input.region, input.roleArn);
  const ctx: ErrorContext = { operation: 'ec2:CreateImage', region: input.region, instanceId: input.instanceId };
  const name = amiName(input.policy, input.instanceId, input.runId);

  const described = await awsCall({ ...ctx, operation: 'ec2:DescribeInstances' }, () =>
    ec2.send(new DescribeInstancesCommand({ InstanceIds: [input.instanceId] })),
  );
  const instance = described.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === input.instanceId);
  if (!instance) {
    throw ApplicationFailure.nonRetryable(
      `Instance ${input.instanceId} was not found in ${input.region}. Check the instance ID and the policy's sourceRegion.`,
      'InvalidInstanceID.NotFound',
    );
  }
  const state = instance.State?.Name;
  if (state === 'terminated' || state === 'shutting-down') {
    throw ApplicationFailure.nonRetryable(
      `Instance ${input.instanceId} in ${input.region} is ${state}: a terminated instance cannot be backed up. Remove it from the policy targets.`,
      'InstanceTerminated',
    );
  }
  const instanceName = instance.Tags?.find((t) => t.Key === 'Name')?.Value;

  const existing = (await findOwnImages(ec2, [{ Name: 'name', Values: [name] }], ctx)).find(isLiveImage);
  if (existing?.ImageId) return { imageId: existing.ImageId, name, instanceName, reused: true };

  const tags = backupTags({ policy: input.policy, instanceId: input.instanceId, runId: input.runId, instanceName });
  try {
    const created = await ec2.send(
      new CreateImageCommand({
        InstanceId: input.instanceId,
        Name: name,
        Description: `ami-backup of ${input.instanceId}${instanceName ? ` (${instanceName})` : ''}, policy ${input.policy}, run ${input.runId}`,
        NoReboot: input.noReboot,
        // Snapshots are tagged once the image is available (tagSnapshots): their IDs are known then.
        TagSpecifications: [{ ResourceType: 'image', Tags: tags }],
      }),
    );
    if (!created.ImageId) throw ApplicationFailure.retryable(`CreateImage for ${input.instanceId} returned no image ID`, 'NoImageId');
    return { imageId: created.ImageId, name, instanceName, reused: false };
  } catch (err) {
    if (awsErrorCode(err) === 'InvalidAMIName.Duplicate') {
      const dup = (await findOwnImages(ec2, [{ Name: 'name', Values: [name] }], ctx)).find((i) => i.ImageId);
      if (dup?.ImageId) return { imageId: dup.ImageId, name, instanceName, reused: true };
    }
    throw toFailure(err, ctx);
  }
}
