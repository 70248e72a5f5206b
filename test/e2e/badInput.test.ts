/**
 * The bad-input table (issue 5): every case runs the REAL CLI process against the real stack
 * (Temporal dev server, moto, the real worker), and must
 * - exit 2 (1 where AWS answers a well-formed request: an instance that does not exist or is terminated),
 * - print a message naming the field or ID and what is allowed,
 * - start and create nothing: no image, snapshot or SSM parameter in moto, no AWS request that
 *   changes anything, no workflow in Temporal visibility, no schedule.
 * One stack for the whole file; every command of a case runs at once.
 */
import { DescribeImagesCommand, DescribeSnapshotsCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeParametersCommand } from '@aws-sdk/client-ssm';
import { ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, type CliResult, type E2eStack } from '../helpers/e2e';
import { ec2ErrorResponse } from '../helpers/recordingProxy';

let stack: E2eStack;
let running: string;
let terminated: string;

const NAME = 'bad-input';
const REGIONS = ['us-east-1', 'eu-west-1', 'eu-west-2', 'eu-central-1', 'eu-north-1'];
const NONEXISTENT = 'i-0fedcba9876543210';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = Record<string, any>;
const good = (): Raw => ({
  name: NAME,
  sourceRegion: 'us-east-1',
  targets: { tags: { Backup: 'true' } },
  copies: [{ region: 'eu-west-1' }],
  wait: { firstCheck: '1s', maxInterval: '2s', timeout: '2m' },
});
const patched = (patch: (p: Raw) => void): Raw => {
  const p = good();
  patch(p);
  return p;
};
const GOOD_YAML = 'name: bad-input\nsourceRegion: us-east-1\ncopies:\n  - region: eu-west-1\n';

/** An AWS request that changes something (the CLI's and the worker's, through the recording proxy). */
const MUTATING = /^(Create|Copy|Put|Register|Deregister|Delete|Run|Terminate|Start|Stop|Modify|Enable|Disable|AddTags)/;

interface World {
  images: string[];
  snapshots: string[];
  parameters: string[];
  workflows: string[];
  schedules: string[];
  mutatingRequests: number;
}

/** Everything a case could have started or created. */
async function world(): Promise<World> {
  const images: string[] = [];
  const snapshots: string[] = [];
  const parameters: string[] = [];
  for (const region of REGIONS) {
    const ec2 = stack.ec2(region);
    const imgs = await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
    images.push(...(imgs.Images ?? []).map((i) => `${region}/${i.ImageId}`));
    const snaps = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    snapshots.push(...(snaps.Snapshots ?? []).map((s) => `${region}/${s.SnapshotId}`));
    const params = await stack.ssm(region).send(new DescribeParametersCommand({ MaxResults: 50 }));
    parameters.push(...(params.Parameters ?? []).map((p) => `${region}${p.Name}`));
  }
  const workflows: string[] = [];
  for await (const w of stack.env.client.workflow.list()) workflows.push(`${w.workflowId}/${w.runId}`);
  const schedules: string[] = [];
  for await (const s of stack.env.client.schedule.list()) schedules.push(s.scheduleId);
  const mutatingRequests = stack.proxy.requests.filter((r) => MUTATING.test(r.action)).length;
  return {
    images: images.sort(),
    snapshots: snapshots.sort(),
    parameters: parameters.sort(),
    workflows: workflows.sort(),
    schedules: schedules.sort(),
    mutatingRequests,
  };
}

/** Strongly consistent (visibility may lag): the workflows a run of the policy would have started. */
async function expectNoRun(instanceIds: string[]): Promise<void> {
  for (const id of [`ami-backup/${NAME}/fleet`, ...instanceIds.map((i) => `ami-backup/${NAME}/${i}`)]) {
    await expect(stack.env.client.workflow.getHandle(id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
  }
  await expect(stack.env.client.schedule.getHandle(`ami-backup-${NAME}`).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
}

interface PolicyCase {
  what: string;
  /** The file: an object (JSON), text, or bytes. */
  body: Raw | string | Buffer;
  /** What stderr must contain: the field path and what is allowed. */
  says: Array<string | RegExp>;
}

const POLICY_CASES: PolicyCase[] = [
  // names
  {
    what: 'a name with upper case and _',
    body: patched((p) => (p.name = 'Web_Servers')),
    says: ['name: "Web_Servers" is not a policy name', '1 to 64 lower-case letters, digits and "-"'],
  },
  { what: 'a 65-character name', body: patched((p) => (p.name = 'a'.repeat(65))), says: ['name: ', '1 to 64 lower-case letters'] },
  { what: 'a numeric name', body: patched((p) => (p.name = 12)), says: ['name: name must be a string of 1 to 64 lower-case letters'] },
  // regions
  {
    what: 'a malformed source region',
    body: patched((p) => (p.sourceRegion = 'us-east')),
    says: ['sourceRegion: "us-east" is not an AWS region name such as "eu-west-1"'],
  },
  {
    what: 'an unknown copy region (misspelt)',
    body: patched((p) => (p.copies[0].region = 'eu-wset-1')),
    says: ['copies[0].region: "eu-wset-1" is not an AWS region', 'not one of east, west'],
  },
  {
    what: 'an unknown source region (no such area)',
    body: patched((p) => (p.sourceRegion = 'xx-east-1')),
    says: ['sourceRegion: "xx-east-1" is not an AWS region', 'not one of af, ap, ca'],
  },
  {
    what: 'a copy region listed twice',
    body: patched((p) => p.copies.push({ region: 'eu-west-1' })),
    says: ['copies[1].region: eu-west-1 is listed twice in copies'],
  },
  {
    what: 'a copy to the source region',
    body: patched((p) => (p.copies[0].region = 'us-east-1')),
    says: ['copies[0].region: us-east-1 is the source region: a disaster-recovery copy must go to another region'],
  },
  {
    what: 'four copies',
    body: patched((p) => (p.copies = ['eu-west-1', 'eu-west-2', 'eu-central-1', 'eu-north-1'].map((region) => ({ region })))),
    says: ['copies: copies has at most 3 regions'],
  },
  { what: 'no copies', body: patched((p) => (p.copies = [])), says: ['copies: copies needs at least one disaster-recovery region'] },
  // KMS keys
  {
    what: 'a KMS key that is a bare name',
    body: patched((p) => (p.copies[0].kmsKeyId = 'ami-backup')),
    says: ['copies[0].kmsKeyId: "ami-backup" is not a KMS key: use a key ID, "alias/NAME", or a key or alias ARN'],
  },
  {
    what: 'a KMS key ARN in another region',
    body: patched((p) => (p.copies[0].kmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab')),
    says: ['copies[0].kmsKeyId: the KMS key is in us-east-1 but the copy goes to eu-west-1', 'a key of its own region'],
  },
  {
    what: 'a KMS key as a number',
    body: patched((p) => (p.copies[0].kmsKeyId = 42)),
    says: ['copies[0].kmsKeyId: kmsKeyId must be a string: a key ID, "alias/NAME"'],
  },
  // SSM parameter names and templates
  {
    what: 'an SSM name without {instanceId}',
    body: patched((p) => (p.ssmParameter = '/ami-backup/{policy}/latest')),
    says: ['ssmParameter: "/ami-backup/{policy}/latest" must contain {instanceId}'],
  },
  {
    what: 'an unknown SSM placeholder',
    body: patched((p) => (p.ssmParameter = '/ami-backup/{region}/{instanceId}')),
    says: ['ssmParameter: unknown placeholder {region}: use {policy}, {instanceId}, {sourceRegion}'],
  },
  {
    what: 'an SSM name under /aws',
    body: patched((p) => (p.ssmParameter = '/aws/backup/{instanceId}')),
    says: ['ssmParameter: "/aws/backup/{instanceId}" starts with a prefix AWS reserves'],
  },
  {
    what: 'an SSM name without leading /',
    body: patched((p) => (p.ssmParameter = 'ami-backup/{instanceId}')),
    says: ['ssmParameter: "ami-backup/{instanceId}" must start with "/"'],
  },
  { what: 'an empty SSM name', body: patched((p) => (p.ssmParameter = '')), says: ['ssmParameter: ssmParameter cannot be empty'] },
  // durations
  {
    what: 'a duration in words',
    body: patched((p) => (p.wait = { firstCheck: '5 minutes' })),
    says: ['wait.firstCheck: "5 minutes" is not a duration: use a whole number followed by ms, s, m, h or d'],
  },
  {
    what: 'a duration as a number',
    body: patched((p) => (p.wait = { timeout: 3600 })),
    says: ['wait.timeout: wait.timeout must be a duration string', '"4h"'],
  },
  {
    what: 'a timeout over 7 days',
    body: patched((p) => (p.wait = { timeout: '8d' })),
    says: ['wait.timeout: timeout (8d) is longer than 7d'],
  },
  {
    what: 'a maxAge under an hour',
    body: patched((p) => (p.retention = { maxAge: '30m' })),
    says: ['retention.maxAge: maxAge must be at least 1h, got "30m"'],
  },
  // tag maps
  {
    what: 'an unquoted YAML boolean tag value',
    body: `${GOOD_YAML}targets:\n  tags:\n    Backup: true\n`,
    says: ['targets.tags.Backup: tag values must be strings: quote them, e.g. Backup: "true"'],
  },
  { what: 'an empty tag map', body: patched((p) => (p.targets.tags = {})), says: ['targets.tags: targets.tags needs at least one tag'] },
  {
    what: 'tags as a string',
    body: patched((p) => (p.targets.tags = 'Backup=true')),
    says: ['targets.tags: targets.tags must be a mapping of tag keys to values, such as { Backup: "true" }'],
  },
  {
    what: 'both tags and instance IDs',
    body: patched((p) => (p.targets.instanceIds = ['i-0123456789abcdef0'])),
    says: ['targets: targets needs exactly one of "tags" or "instanceIds"'],
  },
  {
    what: 'a malformed instance ID in the policy',
    body: patched((p) => (p.targets = { instanceIds: ['i-123'] })),
    says: ['targets.instanceIds[0]: "i-123" is not an EC2 instance ID such as "i-0123456789abcdef0"'],
  },
  // retention and concurrency
  { what: 'keepLast 0', body: patched((p) => (p.retention = { keepLast: 0 })), says: ['retention.keepLast: keepLast must be at least 1'] },
  {
    what: 'keepLast negative',
    body: patched((p) => (p.copies[0].retention = { keepLast: -3 })),
    says: ['copies[0].retention.keepLast: keepLast must be at least 1'],
  },
  {
    what: 'keepLast as a string',
    body: patched((p) => (p.retention = { keepLast: 'seven' })),
    says: ['retention.keepLast: keepLast must be a whole number of backups to keep (1 to 1000)'],
  },
  { what: 'maxConcurrent 0', body: patched((p) => (p.maxConcurrent = 0)), says: ['maxConcurrent: maxConcurrent must be at least 1'] },
  {
    what: 'maxConcurrent huge',
    body: patched((p) => (p.maxConcurrent = 1_000_000)),
    says: ['maxConcurrent: maxConcurrent must be at most 200'],
  },
  {
    what: 'maxConcurrentCopies as a string',
    body: patched((p) => (p.maxConcurrentCopies = '5')),
    says: ['maxConcurrentCopies: maxConcurrentCopies must be a whole number from 1 to 50'],
  },
  {
    what: 'a user ARN as roleArn',
    body: patched((p) => (p.roleArn = 'arn:aws:iam::123456789012:user/bob')),
    says: ['roleArn: "arn:aws:iam::123456789012:user/bob" is not an IAM role ARN such as'],
  },
  // unknown fields
  {
    what: 'an unknown top-level field',
    body: patched((p) => (p.schedule = 'daily')),
    says: ['schedule: unknown field (check its spelling and indentation'],
  },
  {
    what: 'a misspelt field in a copy',
    body: patched((p) => (p.copies[0].kms = 'alias/x')),
    says: ['copies[0].kms: unknown field'],
  },
  // files that are no policy
  { what: 'an empty file', body: '', says: ['the file is empty: a policy needs at least name, sourceRegion, targets and copies'] },
  { what: 'not YAML', body: 'name: [bad-input\n  sourceRegion: }\n', says: [/not valid YAML or JSON: .*line 1/] },
  { what: 'broken JSON', body: '{"name": "bad-input",', says: ['not valid YAML or JSON'] },
  {
    what: 'a YAML list',
    body: '- name: bad-input\n- sourceRegion: us-east-1\n',
    says: ['a policy is a mapping of fields (name, sourceRegion'],
  },
  { what: 'a binary file', body: randomBytes(64 * 1024), says: ['the file is not text', 'a policy is a YAML or JSON text file in UTF-8'] },
  {
    what: 'Latin-1 text (not UTF-8)',
    body: Buffer.from(`${GOOD_YAML}targets: { tags: { Owner: "Andr\xe9" } }\n`, 'latin1'),
    says: ['the file is not text'],
  },
  {
    what: 'a 10 MB file',
    body: Buffer.alloc(10 * 1024 * 1024, '# padding\n'),
    says: ['the file is 10.0 MiB; a policy file is at most 1 MiB'],
  },
];

/** The commands that would start or create something, and two that only read (plan, check). */
const commands = (file: string): string[][] => [
  ['run', '--policy', file],
  ['run', '--policy', file, '--instance', running, '--wait', '--json', '--poll-interval', '300'],
  ['schedule', 'create', '--policy', file, '--cron', '0 3 * * *'],
  ['plan', '--policy', file],
  ['check', '--policy', file, '--json'],
];

const timings: Array<{ what: string; ms: number }> = [];
let baseline: World;

beforeAll(async () => {
  stack = await startE2e();
  const ec2 = stack.ec2('us-east-1');
  [running] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  [terminated] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' }, namePrefix: 'gone' });
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: [terminated!] }));
  baseline = await world();
}, 180_000);

afterAll(async () => {
  console.log(`bad-input CLI wall times (ms, all commands of a case at once):\n${timings.map((t) => `  ${t.ms}\t${t.what}`).join('\n')}`);
  await stack?.stop();
});

test('the table is large enough, and the good policy passes every command it is tried with (the control)', async () => {
  expect(POLICY_CASES.length + ID_CASES.length).toBeGreaterThanOrEqual(30);
  expect(new Set(POLICY_CASES.map((c) => c.what)).size).toBe(POLICY_CASES.length);
  const file = stack.writePolicy('good.json', good());
  const plan = await stack.cli(['plan', '--policy', file, '--json']);
  expect(plan.stderr).not.toContain('not a valid policy');
  expect(plan.code).toBe(0);
  expect(lastJson<{ instances: string[] }>(plan.stdout).instances).toEqual([running]);
});

describe('bad policy files: exit 2, every command, with the field and what is allowed; nothing started', () => {
  test.each(POLICY_CASES)('$what', async ({ what, body, says }) => {
    const index = POLICY_CASES.findIndex((c) => c.what === what);
    // writePolicy writes text; bytes (binary, Latin-1, 10 MB) are written as they are.
    const file = Buffer.isBuffer(body) ? path.join(stack.dir, `case-${index}.bin`) : stack.writePolicy(`case-${index}.yaml`, body);
    if (Buffer.isBuffer(body)) writeFileSync(file, body);
    const started = Date.now();
    const results = await Promise.all(commands(file).map((args) => stack.cli(args)));
    timings.push({ what, ms: Date.now() - started });
    results.forEach((r: CliResult, i) => {
      const cmd = commands(file)[i]!.slice(0, 2).join(' ');
      expect({ cmd, code: r.code }).toEqual({ cmd, code: 2 });
      expect(r.stderr).toContain(`${file} is not a valid policy (nothing was started)`);
      for (const s of says) expect(r.stderr).toMatch(typeof s === 'string' ? new RegExp(escape(s)) : s);
      // No stack trace, and nothing on stdout (where --json consumers read).
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    });
    await expectNoRun([running]);
    expect(await world()).toEqual(baseline);
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface IdCase {
  what: string;
  args: () => string[];
  code: 1 | 2;
  says: () => Array<string | RegExp>;
  /** With --json: the last line of stdout is this report. */
  json?: () => Raw;
}

const policyFile = () => stack.writePolicy('good.json', good());

const ID_CASES: IdCase[] = [
  {
    what: 'run --instance with a name, not an ID',
    args: () => ['run', '--policy', policyFile(), '--instance', 'web-1'],
    code: 2,
    says: () => ['--instance "web-1" is not an EC2 instance ID such as i-0123456789abcdef0'],
  },
  {
    what: 'run --instance with an upper-case ID',
    args: () => ['run', '--policy', policyFile(), '--instance', 'i-0123456789ABCDEF0', '--wait'],
    code: 2,
    says: () => ['--instance "i-0123456789ABCDEF0" is not an EC2 instance ID'],
  },
  {
    what: 'run --instance with an AMI ID',
    args: () => ['run', '--policy', policyFile(), '--instance', 'ami-0123456789abcdef0', '--json'],
    code: 2,
    says: () => ['--instance "ami-0123456789abcdef0" is not an EC2 instance ID'],
  },
  {
    what: 'run --instance that does not exist',
    args: () => ['run', '--policy', policyFile(), '--instance', NONEXISTENT],
    code: 1,
    says: () => [
      `Backup of ${NONEXISTENT} failed before it started: instance ${NONEXISTENT} does not exist in us-east-1`,
      "check the ID, or the policy's sourceRegion",
      'Nothing was started.',
    ],
  },
  {
    what: 'run --instance that does not exist, --wait --json',
    args: () => ['run', '--policy', policyFile(), '--instance', NONEXISTENT, '--wait', '--json'],
    code: 1,
    says: () => [`instance ${NONEXISTENT} does not exist in us-east-1`],
    json: () => ({
      workflowId: `ami-backup/${NAME}/${NONEXISTENT}`,
      status: 'failed',
      instances: [{ instanceId: NONEXISTENT, status: 'failed', copies: [], deleted: [], error: expect.stringContaining('does not exist') }],
    }),
  },
  {
    what: 'run --instance that is terminated',
    args: () => ['run', '--policy', policyFile(), '--instance', terminated, '--wait'],
    code: 1,
    says: () => [new RegExp(`instance ${terminated} in us-east-1 is (terminated|shutting-down): there is nothing left to back up`)],
  },
  {
    what: 'status of an unknown workflow ID',
    args: () => ['status', `ami-backup/${NAME}/fleet`],
    code: 2,
    says: () => [`no run with workflow ID "ami-backup/${NAME}/fleet" in namespace default`, 'see `ami-backup list`'],
  },
  {
    what: 'status of a malformed workflow ID',
    args: () => ['status', 'not a workflow id', '--json'],
    code: 2,
    says: () => ['no run with workflow ID "not a workflow id"', 'Workflow IDs look like ami-backup/POLICY/fleet'],
  },
  {
    what: 'cancel of an unknown workflow ID',
    args: () => ['cancel', `ami-backup/${NAME}/${running}`, '--wait'],
    code: 2,
    says: () => [`no run with workflow ID "ami-backup/${NAME}/${running}"`],
  },
];

describe('bad IDs on the command line: the ID named, exit 2 (1 where AWS answers), nothing started', () => {
  test.each(ID_CASES)('$what', async ({ what, args, code, says, json }) => {
    const started = Date.now();
    const r = await stack.cli(args());
    timings.push({ what, ms: Date.now() - started });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: expect.any(String) });
    for (const s of says()) expect(r.stderr).toMatch(typeof s === 'string' ? new RegExp(escape(s)) : s);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    if (json) expect(lastJson(r.stdout)).toMatchObject(json());
    await expectNoRun([running, NONEXISTENT, terminated]);
    expect(await world()).toEqual(baseline);
  });
});

describe('when the pre-flight cannot ask AWS, the run starts anyway (the worker decides)', () => {
  /** Runs the CLI, then waits for the run it started to fail in the worker (the instance does not exist) and checks nothing was created. */
  async function startedAndFailed(r: CliResult): Promise<void> {
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Started backup of ${NONEXISTENT}`);
    const handle = stack.env.client.workflow.getHandle(`ami-backup/${NAME}/${NONEXISTENT}`);
    await expect(handle.result()).rejects.toThrow();
    const after = await world();
    expect({ ...after, workflows: [], mutatingRequests: 0 }).toEqual({ ...baseline, workflows: [], mutatingRequests: 0 });
  }

  test('AWS unreachable: a warning naming the instance, region and cause, then the run starts', async () => {
    const r = await stack.cli(['run', '--policy', policyFile(), '--instance', NONEXISTENT], { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    expect(r.stderr).toMatch(
      new RegExp(`warning: could not look up ${NONEXISTENT} in us-east-1 before starting \\(ec2:DescribeInstances failed .*ECONNREFUSED`),
    );
    expect(r.stderr).toContain('Starting the run anyway');
    await startedAndFailed(r);
  }, 60_000);

  test('AWS denies DescribeInstances to the operator: a warning, then the run starts', async () => {
    stack.proxy.inject = (req) =>
      req.accessKeyId === 'operator-denied' && req.action === 'DescribeInstances'
        ? ec2ErrorResponse('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403)
        : undefined;
    try {
      const r = await stack.cli(['run', '--policy', policyFile(), '--instance', NONEXISTENT], { AWS_ACCESS_KEY_ID: 'operator-denied' });
      expect(r.stderr).toMatch(new RegExp(`warning: could not look up ${NONEXISTENT} in us-east-1 .*UnauthorizedOperation`));
      await startedAndFailed(r);
    } finally {
      stack.proxy.inject = undefined;
    }
  }, 60_000);

  test('--no-preflight: no look-up at all, no warning; the run starts', async () => {
    const r = await stack.cli(['run', '--policy', policyFile(), '--instance', NONEXISTENT, '--no-preflight'], {
      AWS_ACCESS_KEY_ID: 'operator-no-preflight',
    });
    expect(r.stderr).not.toContain('warning');
    expect(stack.proxy.requests.filter((q) => q.accessKeyId === 'operator-no-preflight')).toEqual([]);
    await startedAndFailed(r);
  }, 60_000);
});
