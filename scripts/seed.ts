/**
 * Seeds an AWS emulator with instances to back up (demo and tests). Never run against real AWS:
 * it launches instances.
 */
import { DescribeImagesCommand, RunInstancesCommand, type EC2Client, type Tag } from '@aws-sdk/client-ec2';

/** Launches `count` t3.micro instances carrying `tags` (and a Name) and returns their IDs. */
export async function seedInstances(
  ec2: EC2Client,
  opts: { count: number; tags: Record<string, string>; namePrefix?: string },
): Promise<string[]> {
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'architecture', Values: ['x86_64'] }] }));
  const imageId = images.Images?.find((i) => i.ImageId)?.ImageId;
  if (!imageId) throw new Error('the emulator lists no Amazon image to launch instances from');
  const ids: string[] = [];
  for (let i = 0; i < opts.count; i++) {
    const tags: Tag[] = Object.entries(opts.tags).map(([Key, Value]) => ({ Key, Value }));
    tags.push({ Key: 'Name', Value: `${opts.namePrefix ?? 'web'}-${i + 1}` });
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
      }),
    );
    ids.push(run.Instances![0]!.InstanceId!);
  }
  return ids;
}
