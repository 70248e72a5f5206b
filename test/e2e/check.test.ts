/**
 * `ami-backup check`: Temporal and the AWS permissions (EC2 DryRun, KMS, SSM) against the real
 * dev server and moto; denied permissions injected at the proxy, as AWS would answer them.
 */
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import type { CheckResult } from '../../src/cli/check';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, type E2eStack } from '../helpers/e2e';
import { ec2ErrorResponse } from '../helpers/recordingProxy';

let stack: E2eStack;
let kms: KMSClient;
interface Report {
  policy: string;
  ok: boolean;
  results: CheckResult[];
}

beforeAll(async () => {
  stack = await startE2e();
  kms = new KMSClient({ region: 'eu-west-1', endpoint: stack.moto.endpoint, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } });
  const key = await kms.send(new CreateKeyCommand({ Description: 'ami-backup check test' }));
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/check-dr', TargetKeyId: key.KeyMetadata!.KeyId! }));
  await seedInstances(stack.ec2('us-east-1'), { count: 1, tags: { CheckFleet: 'yes' } });
}, 180_000);

afterAll(async () => {
  kms?.destroy();
  await stack?.stop();
});

const policy = (name: string, kmsKeyId = 'alias/check-dr') => ({
  name,
  sourceRegion: 'us-east-1',
  targets: { tags: { CheckFleet: 'yes' } },
  copies: [{ region: 'eu-west-1', kmsKeyId }],
  wait: { firstCheck: '1s', maxInterval: '2s', timeout: '2m' },
});
const byCheck = (r: Report, check: string) => r.results.find((x) => x.check === check);

test('before the first backup: what can be dry-run is allowed, the rest is marked not checked yet; after it, everything is checked', async () => {
  const file = stack.writePolicy('check.json', policy('check'));
  const first = await stack.cli(['check', '--policy', file, '--json']);
  expect(first.code).toBe(0);
  const before = lastJson<Report>(first.stdout);
  expect(before.ok).toBe(true);
  expect(byCheck(before, 'temporal:namespace')?.status).toBe('ok');
  expect(byCheck(before, 'temporal:search-attributes')?.detail).toContain('are registered');
  expect(byCheck(before, 'ec2:DescribeInstances')?.detail).toContain('1 instance(s) match instances tagged CheckFleet=yes');
  expect(byCheck(before, 'ec2:CreateImage')).toMatchObject({ status: 'ok', region: 'us-east-1' });
  expect(byCheck(before, 'ec2:CopyImage')).toMatchObject({ status: 'not-checked', region: 'eu-west-1' });
  expect(byCheck(before, 'kms:DescribeKey')).toMatchObject({ status: 'ok', region: 'eu-west-1' });
  expect(byCheck(before, 'ssm:GetParameter')?.detail).toContain('does not exist yet');
  // The DryRun really was a dry run: nothing was created.
  const dry = stack.proxy.requests.filter((r) => r.action === 'CreateImage');
  expect(dry.length).toBeGreaterThan(0);
  expect(dry.every((r) => r.body.includes('DryRun=true'))).toBe(true);
  expect(first.stderr).toContain('✓ ec2:CreateImage (us-east-1)');

  expect((await stack.cli(['run', '--policy', file, '--wait'])).code).toBe(0);
  const after = lastJson<Report>((await stack.cli(['check', '--policy', file, '--json'])).stdout);
  expect(after.ok).toBe(true);
  for (const check of ['ec2:CopyImage', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:CreateTags']) {
    expect(byCheck(after, check)?.status).toBe('ok');
  }
  expect(byCheck(after, 'ssm:GetParameter')?.detail).toMatch(/holds ami-/);
});

test('a denied permission and a missing KMS key are reported with what to grant or fix, exit 1', async () => {
  const file = stack.writePolicy('check-bad.json', policy('checkbad', 'alias/no-such-key'));
  stack.proxy.inject = (r) =>
    r.action === 'CreateImage' && r.body.includes('DryRun=true')
      ? ec2ErrorResponse('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403)
      : undefined;
  try {
    const r = await stack.cli(['check', '--policy', file, '--json']);
    expect(r.code).toBe(1);
    const report = lastJson<Report>(r.stdout);
    expect(report.ok).toBe(false);
    expect(byCheck(report, 'ec2:CreateImage')).toMatchObject({ status: 'missing' });
    expect(byCheck(report, 'ec2:CreateImage')?.detail).toContain('grant ec2:CreateImage');
    expect(byCheck(report, 'kms:DescribeKey')).toMatchObject({ status: 'missing', region: 'eu-west-1' });
    expect(r.stderr).toContain('2 problem(s)');
  } finally {
    stack.proxy.inject = undefined;
  }
});

test('Temporal unreachable is a problem named with the address; --no-temporal skips it', async () => {
  const file = stack.writePolicy('check-t.json', policy('checkt'));
  const r = await stack.cli(['check', '--policy', file, '--json', '--no-aws'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  expect(r.code).toBe(1);
  const report = lastJson<Report>(r.stdout);
  expect(report.results).toEqual([expect.objectContaining({ check: 'temporal:connect', status: 'missing' })]);
  expect(report.results[0]!.detail).toContain('127.0.0.1:1');
  const skipped = await stack.cli(['check', '--policy', file, '--json', '--no-temporal'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  expect(skipped.code).toBe(0);
  expect(lastJson<Report>(skipped.stdout).results.some((x) => x.check.startsWith('temporal:'))).toBe(false);
});

test('a bad policy is exit 2', async () => {
  const file = stack.writePolicy('check-invalid.json', { name: 'Bad' });
  expect((await stack.cli(['check', '--policy', file])).code).toBe(2);
});
