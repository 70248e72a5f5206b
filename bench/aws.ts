/**
 * AWS for the benchmarks: moto as the endpoint, instances seeded in a few RunInstances calls, and
 * AWS clients that count every request by operation with an SDK middleware.
 */
import { DescribeImagesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { createAwsClients, type AwsClients } from '../src/activities/aws';

export const BENCH_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench', AWS_REGION: 'us-east-1' };

/** The AWS part of an environment: the SDK's standard settings pointed at moto. */
export function motoEnv(endpoint: string): NodeJS.ProcessEnv {
  return { AWS_ENDPOINT_URL: endpoint, ...BENCH_CREDENTIALS, AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined };
}

/** Points this process's AWS SDK at moto. */
export function useMotoHere(endpoint: string): void {
  for (const [k, v] of Object.entries(motoEnv(endpoint))) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

/** Requests sent, by "service:Operation", each HTTP attempt counted (SDK retries included). */
export type CallCounts = Map<string, number>;

/** AWS clients that report every request (each HTTP attempt) to `record` as "service:Operation". */
export function countingAws(record: (operation: string) => void): AwsClients {
  return createAwsClients({
    onClient: (client, service) => {
      const stack = client.middlewareStack as EC2Client['middlewareStack'];
      stack.add(
        (next, context) => async (args) => {
          record(`${service}:${context.commandName?.replace(/Command$/, '') ?? 'unknown'}`);
          return next(args);
        },
        // The deserialize step runs once per attempt (the retry middleware sits before it).
        { step: 'deserialize', name: 'benchCallCounter' },
      );
    },
  });
}

const MAX_PER_CALL = 250;
const PLACEHOLDER_IMAGE = 'ami-0123456789abcdef0';

/** Launches `count` instances tagged `tags` in moto, in as few RunInstances calls as it allows. */
export async function seedFleet(ec2: EC2Client, count: number, tags: Record<string, string>): Promise<string[]> {
  // Moto started without its default images (startMoto({ defaultAmis: false })) launches from any
  // well-formed ID: it does not check that the image exists.
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'architecture', Values: ['x86_64'] }] }));
  const imageId = images.Images?.find((i) => i.ImageId)?.ImageId ?? PLACEHOLDER_IMAGE;
  const ids: string[] = [];
  while (ids.length < count) {
    const n = Math.min(MAX_PER_CALL, count - ids.length);
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        InstanceType: 't3.micro',
        MinCount: n,
        MaxCount: n,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [...Object.entries(tags).map(([Key, Value]) => ({ Key, Value })), { Key: 'Name', Value: 'bench' }],
          },
        ],
      }),
    );
    ids.push(...(run.Instances ?? []).map((i) => i.InstanceId!));
  }
  return ids.sort();
}
