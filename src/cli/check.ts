/**
 * `ami-backup check --policy FILE`: is this machine (the worker's container, usually) ready to run
 * the policy? It checks, changing nothing:
 *
 * - Temporal: the connection and namespace, workers on the task queue, the search attributes;
 * - AWS, with the credentials of this process (and the policy's roleArn): DescribeInstances for
 *   the targets, then EC2 DryRun calls for what the backup does (CreateImage, CreateTags, CopyImage
 *   into each copy region, DeregisterImage, DeleteSnapshot), kms:DescribeKey for each copy's key,
 *   ssm:GetParameter in each copy region.
 *
 * A DryRun answers DryRunOperation when the call would be allowed and UnauthorizedOperation when
 * not, so nothing is created. Calls that need an existing backup (CopyImage of a source image,
 * DeregisterImage, DeleteSnapshot) are tried on one when the policy has made any, and reported as
 * not checked yet otherwise. ssm:PutParameter has no dry run: it is listed as not checkable.
 */
import {
  CopyImageCommand,
  CreateImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { Command } from 'commander';
import { createAwsClients, credentialsFor } from '../activities/aws';
import { awsErrorCode } from '../activities/errors';
import { findInstances } from '../activities/findInstances';
import { findOwnImages, snapshotIdsOf } from '../activities/images';
import { loadPolicyFile, type Policy } from '../policy';
import { TAG_POLICY, describeTargets, ssmParameterName } from '../shared/naming';
import { temporalSettings } from '../temporal/config';
import { searchAttributesRegistered } from '../temporal/searchAttributes';
import { EXIT_FAILED, EXIT_OK, connect, hasWorker, output } from './common';

export interface CheckResult {
  check: string;
  region?: string;
  status: 'ok' | 'missing' | 'not-checked' | 'info';
  detail: string;
}

const ALLOWED = 'DryRunOperation';
const DENIED = new Set(['UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException', 'AuthFailure']);

function messageOf(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0]!;
}

/** Runs an EC2 call with DryRun: allowed, denied, or something else went wrong. */
async function dryRun(check: string, region: string, what: string, send: () => Promise<unknown>): Promise<CheckResult> {
  try {
    await send();
    return { check, region, status: 'ok', detail: `${what} (the endpoint ran it without a dry-run answer)` };
  } catch (err) {
    const code = awsErrorCode(err);
    if (code === ALLOWED) return { check, region, status: 'ok', detail: `allowed (DryRun ${what})` };
    if (DENIED.has(code))
      return { check, region, status: 'missing', detail: `${code}: ${messageOf(err)} — grant ${check} (deploy/iam-policy.json)` };
    return { check, region, status: 'missing', detail: `${code || 'error'}: ${messageOf(err)} (DryRun ${what})` };
  }
}

async function read<T>(check: string, region: string, call: () => Promise<T>, ok: (r: T) => string): Promise<CheckResult> {
  try {
    return { check, region, status: 'ok', detail: ok(await call()) };
  } catch (err) {
    const code = awsErrorCode(err);
    const fix = DENIED.has(code) ? ` — grant ${check} (deploy/iam-policy.json)` : '';
    return { check, region, status: 'missing', detail: `${code || 'error'}: ${messageOf(err)}${fix}` };
  }
}

async function checkTemporal(): Promise<CheckResult[]> {
  const settings = temporalSettings();
  const where = `${settings.connection.address}, namespace ${settings.namespace}`;
  let client;
  try {
    client = await connect(settings);
  } catch (err) {
    return [{ check: 'temporal:connect', status: 'missing', detail: messageOf(err) }];
  }
  try {
    const results: CheckResult[] = [];
    try {
      await client.workflowService.describeNamespace({ namespace: settings.namespace });
      results.push({ check: 'temporal:namespace', status: 'ok', detail: `connected to ${where}` });
    } catch (err) {
      results.push({ check: 'temporal:namespace', status: 'missing', detail: `${where}: ${messageOf(err)}` });
      return results;
    }
    const polled = await hasWorker(client, settings);
    results.push({
      check: 'temporal:worker',
      status: 'info',
      detail:
        polled === true
          ? `a worker polls task queue ${settings.taskQueue}`
          : `no worker polls task queue ${settings.taskQueue} yet (start one: runs wait for it)`,
    });
    const indexed = await searchAttributesRegistered(client.connection, settings.namespace);
    results.push({
      check: 'temporal:search-attributes',
      status: 'info',
      detail: indexed
        ? 'AmiBackupPolicy and AmiBackupInstanceId are registered'
        : 'AmiBackupPolicy / AmiBackupInstanceId not registered: runs work, but cannot be filtered by them (README: Search attributes)',
    });
    return results;
  } finally {
    await client.connection.close();
  }
}

async function checkAws(policy: Policy): Promise<CheckResult[]> {
  const made: Array<{ destroy(): void }> = [];
  const aws = createAwsClients({ onClient: (c) => made.push(c), maxAttempts: 2 });
  const { sourceRegion: src, roleArn } = policy;
  const ec2 = (region: string): EC2Client => aws.ec2(region, roleArn);
  const results: CheckResult[] = [];
  try {
    let instanceId: string | undefined;
    try {
      const found = await findInstances(aws, { region: src, roleArn, tags: policy.targets.tags, instanceIds: policy.targets.instanceIds });
      instanceId = found.instanceIds[0];
      results.push({
        check: 'ec2:DescribeInstances',
        region: src,
        status: 'ok',
        detail: `${found.instanceIds.length} instance(s) match ${describeTargets(policy.targets)}${found.problems.length ? `; ${found.problems.length} listed one(s) cannot be backed up` : ''}`,
      });
    } catch (err) {
      results.push({ check: 'ec2:DescribeInstances', region: src, status: 'missing', detail: messageOf(err) });
      return results; // Without it nothing else can be tried (credentials or role are wrong).
    }
    if (instanceId) {
      results.push(
        await dryRun('ec2:CreateImage', src, `on ${instanceId}`, () =>
          ec2(src).send(
            new CreateImageCommand({ DryRun: true, InstanceId: instanceId, Name: `ami-backup-check-${Date.now()}`, NoReboot: true }),
          ),
        ),
      );
    } else {
      results.push({ check: 'ec2:CreateImage', region: src, status: 'not-checked', detail: 'no instance matches the targets yet' });
    }

    const images = await findOwnImages(ec2(src), [{ Name: `tag:${TAG_POLICY}`, Values: [policy.name] }], {
      operation: 'ec2:DescribeImages',
      region: src,
    }).catch((err: unknown) => {
      results.push({ check: 'ec2:DescribeImages', region: src, status: 'missing', detail: messageOf(err) });
      return undefined;
    });
    if (images)
      results.push({ check: 'ec2:DescribeImages', region: src, status: 'ok', detail: `${images.length} backup image(s) of this policy` });
    const image = images?.find((i) => i.State === 'available');
    const later = 'no backup image of this policy yet: run check again after the first backup';

    if (image?.ImageId) {
      results.push(
        await dryRun('ec2:CreateTags', src, `on ${image.ImageId}`, () =>
          ec2(src).send(
            new CreateTagsCommand({ DryRun: true, Resources: [image.ImageId!], Tags: [{ Key: TAG_POLICY, Value: policy.name }] }),
          ),
        ),
        await dryRun('ec2:DeregisterImage', src, `on ${image.ImageId}`, () =>
          ec2(src).send(new DeregisterImageCommand({ DryRun: true, ImageId: image.ImageId! })),
        ),
      );
      const snapshotId = snapshotIdsOf(image)[0];
      if (snapshotId) {
        results.push(
          await dryRun('ec2:DeleteSnapshot', src, `on ${snapshotId}`, () =>
            ec2(src).send(new DeleteSnapshotCommand({ DryRun: true, SnapshotId: snapshotId })),
          ),
        );
      }
    } else {
      for (const check of ['ec2:CreateTags', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot']) {
        results.push({ check, region: src, status: 'not-checked', detail: later });
      }
    }
    results.push(
      await read(
        'ec2:DescribeSnapshots',
        src,
        () => ec2(src).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], MaxResults: 5 })),
        () => 'allowed',
      ),
    );

    for (const copy of policy.copies) {
      const region = copy.region;
      if (image?.ImageId) {
        results.push(
          await dryRun('ec2:CopyImage', region, `of ${image.ImageId} from ${src}`, () =>
            ec2(region).send(
              new CopyImageCommand({
                DryRun: true,
                SourceRegion: src,
                SourceImageId: image.ImageId!,
                Name: `ami-backup-check-${Date.now()}`,
                Encrypted: true,
                KmsKeyId: copy.kmsKeyId,
              }),
            ),
          ),
        );
      } else {
        results.push({ check: 'ec2:CopyImage', region, status: 'not-checked', detail: later });
      }
      const keyId = copy.kmsKeyId ?? 'alias/aws/ebs';
      const kms = new KMSClient({ region, maxAttempts: 2, credentials: credentialsFor(region, roleArn) });
      made.push(kms);
      results.push(
        await read(
          'kms:DescribeKey',
          region,
          () => kms.send(new DescribeKeyCommand({ KeyId: keyId })),
          (r) =>
            r.KeyMetadata?.Enabled === false
              ? `${keyId} exists but is DISABLED: enable it or choose another key`
              : `${keyId} is ${r.KeyMetadata?.KeyState ?? 'usable'}${copy.kmsKeyId ? '' : ' (the default EBS key)'}`,
        ),
      );
      const keyResult = results[results.length - 1]!;
      if (keyResult.detail.includes('DISABLED')) keyResult.status = 'missing';
      if (!copy.kmsKeyId && keyResult.detail.startsWith('NotFoundException')) {
        // AWS creates the account's default EBS key on first use.
        Object.assign(keyResult, {
          status: 'info',
          detail: 'alias/aws/ebs does not exist yet: AWS creates the default EBS key on first use',
        });
      }
      const parameter = ssmParameterName(policy.ssmParameter, {
        policy: policy.name,
        instanceId: instanceId ?? 'i-00000000000000000',
        sourceRegion: src,
      });
      results.push(
        await read(
          'ssm:GetParameter',
          region,
          async () => {
            try {
              return (await aws.ssm(region, roleArn).send(new GetParameterCommand({ Name: parameter }))).Parameter?.Value;
            } catch (err) {
              if (awsErrorCode(err) === 'ParameterNotFound') return undefined;
              throw err;
            }
          },
          (value) => `${parameter} ${value ? `holds ${value}` : 'does not exist yet'}`,
        ),
      );
      results.push({
        check: 'ssm:PutParameter',
        region,
        status: 'not-checked',
        detail: 'has no dry run; make sure it is granted under the parameter prefix',
      });
    }
    return results;
  } finally {
    for (const c of made) c.destroy();
  }
}

const MARK: Record<CheckResult['status'], string> = { ok: '✓', missing: '✗', 'not-checked': '–', info: 'i' };

export async function checkCommand(opts: { policy: string; json?: boolean; temporal: boolean; aws: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  const policy = loadPolicyFile(opts.policy);
  const results = [...(opts.temporal ? await checkTemporal() : []), ...(opts.aws ? await checkAws(policy) : [])];
  out.info(
    `Checking policy ${policy.name} (${policy.sourceRegion} → ${policy.copies.map((c) => c.region).join(', ')})${policy.roleArn ? ` as ${policy.roleArn}` : ''}:`,
  );
  for (const r of results) out.info(`  ${MARK[r.status]} ${r.check}${r.region ? ` (${r.region})` : ''}: ${r.detail}`);
  const missing = results.filter((r) => r.status === 'missing');
  out.info(missing.length === 0 ? 'Everything checked is in place.' : `${missing.length} problem(s): fix them before the first backup.`);
  if (out.json) console.log(JSON.stringify({ policy: policy.name, ok: missing.length === 0, results }));
  return missing.length === 0 ? EXIT_OK : EXIT_FAILED;
}

export function registerCheckCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('check')
    .description(
      'Check that this machine can run the policy: Temporal, and the AWS permissions and KMS keys (EC2 DryRun calls). Changes nothing.',
    )
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON)')
    .option('--no-temporal', 'skip the Temporal checks')
    .option('--no-aws', 'skip the AWS checks')
    .option('--json', 'print the results as one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
Run it where the worker runs, with the worker's credentials, before the first backup:
  docker compose run --rm worker node dist/src/client.js check --policy /policies/web.yaml
  kubectl exec deploy/ami-backup-worker -- node dist/src/client.js check --policy /policies/web.yaml

Examples:
  ami-backup check --policy policy.yaml
  ami-backup check --policy policy.yaml --no-temporal --json | tail -1 | jq '.results[] | select(.status=="missing")'

Exit codes: 0 everything checked is in place, 1 something is missing, 2 bad input.`,
    )
    .action(async (opts) => setExit(await checkCommand(opts)));
}
