/** Small EC2 look-ups shared by the activities. */
import { DescribeImagesCommand, type EC2Client, type Filter, type Image } from '@aws-sdk/client-ec2';
import { awsCall, type ErrorContext } from './errors';

/** Images owned by this account that match every filter (all pages). */
export async function findOwnImages(ec2: EC2Client, filters: Filter[], ctx: ErrorContext): Promise<Image[]> {
  const images: Image[] = [];
  let NextToken: string | undefined;
  do {
    const page = await awsCall(ctx, () => ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters, NextToken })));
    images.push(...(page.Images ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return images;
}

/** Snapshot IDs behind an image's EBS block devices. */
export function snapshotIdsOf(image: Image): string[] {
  return (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));
}

/** Images that are usable or on their way to it (not failed, not deregistered). */
export function isLiveImage(image: Image): boolean {
  return !['failed', 'error', 'invalid', 'deregistered', 'disabled'].includes(image.State ?? '');
}
