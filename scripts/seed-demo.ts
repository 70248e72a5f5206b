/**
 * The compose demo's seed job (`docker compose --profile demo up` runs it once): fills the AWS
 * emulator (moto) with what examples/demo.yaml backs up.
 *
 * - us-east-1: five instances tagged Backup=true (web-1 … web-5) and two that are not
 *   (scratch-1, scratch-2, left alone by the policy), all tagged Team=demo;
 * - eu-west-1: the KMS key the copies are encrypted with, under alias/ami-backup-dr, so
 *   `ami-backup check --policy /policies/demo.yaml` finds it.
 *
 *   node dist/scripts/seed-demo.js      (env: AWS_ENDPOINT_URL, credentials, AWS_REGION)
 *
 * It launches instances, so it refuses to run without AWS_ENDPOINT_URL (never against real AWS).
 * Run twice, it changes nothing: the instances and the alias are found and reported.
 */
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateAliasCommand, CreateKeyCommand, KMSClient, ListAliasesCommand } from '@aws-sdk/client-kms';
import { seedInstances } from './seed';

const SOURCE_REGION = 'us-east-1';
const COPY_REGION = 'eu-west-1';
const KMS_ALIAS = 'alias/ami-backup-dr';
const DEMO_TAG = { Team: 'demo' };

/** Waits for the emulator to answer (the container may be up before the server in it). */
async function waitForEndpoint(endpoint: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(new URL('/moto-api/data.json', endpoint));
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the AWS emulator at ${endpoint} did not answer within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

async function demoInstances(ec2: EC2Client): Promise<Array<{ id: string; name: string; backup: boolean }>> {
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:Team', Values: [DEMO_TAG.Team] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    }),
  );
  return (out.Reservations ?? []).flatMap((r) =>
    (r.Instances ?? []).map((i) => ({
      id: i.InstanceId!,
      name: i.Tags?.find((t) => t.Key === 'Name')?.Value ?? '',
      backup: Boolean(i.Tags?.some((t) => t.Key === 'Backup' && t.Value === 'true')),
    })),
  );
}

async function ensureKmsAlias(kms: KMSClient): Promise<string> {
  const aliases = await kms.send(new ListAliasesCommand({}));
  const existing = aliases.Aliases?.find((a) => a.AliasName === KMS_ALIAS);
  if (existing?.TargetKeyId) return `${KMS_ALIAS} (key ${existing.TargetKeyId}, already there)`;
  const key = await kms.send(new CreateKeyCommand({ Description: 'ami-backup demo: DR copies' }));
  const keyId = key.KeyMetadata!.KeyId!;
  await kms.send(new CreateAliasCommand({ AliasName: KMS_ALIAS, TargetKeyId: keyId }));
  return `${KMS_ALIAS} (key ${keyId})`;
}

async function main(): Promise<void> {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) {
    console.error('seed-demo: AWS_ENDPOINT_URL is not set. This script launches instances: it only runs against an emulator.');
    process.exit(2);
  }
  await waitForEndpoint(endpoint);

  const ec2 = new EC2Client({ region: SOURCE_REGION });
  const kms = new KMSClient({ region: COPY_REGION });
  try {
    let instances = await demoInstances(ec2);
    if (instances.length === 0) {
      await seedInstances(ec2, { count: 5, tags: { Backup: 'true', ...DEMO_TAG }, namePrefix: 'web' });
      await seedInstances(ec2, { count: 2, tags: DEMO_TAG, namePrefix: 'scratch' });
      instances = await demoInstances(ec2);
    } else {
      console.log('seed-demo: the demo instances are already there.');
    }
    const alias = await ensureKmsAlias(kms);

    console.log(`seed-demo: ${endpoint}, ${SOURCE_REGION}:`);
    for (const i of instances.sort((a, b) => a.name.localeCompare(b.name)))
      console.log(`  ${i.id}  ${i.name.padEnd(10)} ${i.backup ? 'Backup=true' : '(not tagged Backup: left alone)'}`);
    console.log(`seed-demo: ${COPY_REGION}: KMS ${alias}`);
    console.log('Back them up:  docker compose run --rm worker node dist/src/client.js run --policy /policies/demo.yaml --wait');
  } finally {
    ec2.destroy();
    kms.destroy();
  }
}

main().catch((err) => {
  console.error(`seed-demo: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
