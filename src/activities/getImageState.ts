import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import type { ImageState, ImageStatus } from '../shared/types';
import type { AwsClients } from './aws';
import { awsErrorCode, toFailure, type ErrorContext } from './errors';

export interface GetImageStateInput {
  region: string;
  imageId: string;
  roleArn?: string;
}

/**
 * One look at an image: its state and EC2's reason. EC2 is eventually consistent, so an image
 * it does not know yet is reported as pending with `notFound`; the workflow decides how long
 * that may last.
 */
export async function getImageState(aws: AwsClients, input: GetImageStateInput): Promise<ImageStatus> {
  const ctx: ErrorContext = { operation: 'ec2:DescribeImages', region: input.region, imageId: input.imageId };
  const ec2 = aws.ec2(input.region, input.roleArn);
  let result;
  try {
    result = await ec2.send(new DescribeImagesCommand({ ImageIds: [input.imageId] }));
  } catch (err) {
    if (awsErrorCode(err) === 'InvalidAMIID.NotFound') return { imageId: input.imageId, state: 'pending', notFound: true };
    throw toFailure(err, ctx);
  }
  const image = result.Images?.find((i) => i.ImageId === input.imageId);
  if (!image) return { imageId: input.imageId, state: 'pending', notFound: true };
  const status: ImageStatus = { imageId: input.imageId, state: (image.State ?? 'pending') as ImageState };
  if (image.StateReason?.Message) status.reason = image.StateReason.Message;
  return status;
}
