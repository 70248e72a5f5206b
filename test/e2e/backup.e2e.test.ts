/**
 * End to end, as a user runs it: the Temporal dev server, moto, the real worker process
 * (dist/src/worker.js) and the real CLI (dist/src/client.js). A recording proxy between the
 * worker and moto keeps what the worker sent, since moto ignores encryption.
 */
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, TAG_SOURCE_IMAGE } from '../../src/shared/naming';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, type E2eStack } from '../helpers/e2e';
import type { RecordingProxy } from '../helpers/recordingProxy';

let stack: E2eStack;
let env: TestWorkflowEnvironment;
let proxy: RecordingProxy;
let ec2: EC2Client;
let taskQueue: string;

const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => stack.cli(args, extraEnv);
const writePolicy = (name: string, body: object | string) => stack.writePolicy(name, body);

const goodPolicy = {
  name: 'e2e',
  sourceRegion: 'us-east-1',
  targets: { tags: { Backup: 'true' } },
  copies: [{ region: 'eu-west-1', kmsKeyId: 'alias/ami-backup-dr' }],
  wait: { firstCheck: '1s', maxInterval: '2s', timeout: '2m' },
};

async function workflowCount(): Promise<number> {
  let n = 0;
  for await (const _ of env.client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) n += 1;
  return n;
}

beforeAll(async () => {
  stack = await startE2e();
  ({ env, proxy, taskQueue } = stack);
  ec2 = stack.ec2('us-east-1');
}, 180_000);

afterAll(() => stack?.stop());

test('ami-backup run --wait --json backs up a tagged instance into the DR region, encrypted, and sets the SSM parameter', async () => {
  const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' }, namePrefix: 'app' });
  const policyFile = writePolicy('good.json', goodPolicy);

  const run = await cli(['run', '--policy', policyFile, '--instance', instanceId!, '--wait', '--json', '--poll-interval', '300']);
  expect(run.stderr).toContain(`workflow: ami-backup/e2e/${instanceId}`);
  expect(run.stderr).toContain(`/namespaces/default/workflows/${encodeURIComponent(`ami-backup/e2e/${instanceId}`)}`);
  expect(run.code).toBe(0);

  const report = lastJson(run.stdout);
  expect(report).toMatchObject({ workflowId: `ami-backup/e2e/${instanceId}`, status: 'succeeded' });
  const [result] = report.instances;
  expect(result).toMatchObject({ instanceId, status: 'succeeded', ssmParameter: `/ami-backup/e2e/${instanceId}/latest`, deleted: [] });

  // The source AMI in us-east-1, tagged, with its snapshots tagged.
  const source = (await ec2.send(new DescribeImagesCommand({ ImageIds: [result!.sourceImageId!] }))).Images![0]!;
  const sourceTags = Object.fromEntries(source.Tags!.map((t) => [t.Key, t.Value]));
  expect(sourceTags).toMatchObject({ [TAG_POLICY]: 'e2e', [TAG_INSTANCE_ID]: instanceId, Name: 'app-1' });
  expect(sourceTags[TAG_RUN]).toMatch(/^\d{8}T\d{6}Z$/);
  expect(source.Name).toBe(`e2e-${instanceId}-${sourceTags[TAG_RUN]}`);
  const snapshotIds = source.BlockDeviceMappings!.flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));
  const snaps = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }));
  expect(snaps.Snapshots!.every((s) => s.Tags?.some((t) => t.Key === TAG_POLICY && t.Value === 'e2e'))).toBe(true);

  // The copy in eu-west-1, tagged with its source.
  expect(result!.copies).toHaveLength(1);
  const { region, imageId: copyId } = result!.copies[0]!;
  expect(region).toBe('eu-west-1');
  const copy = (await stack.ec2('eu-west-1').send(new DescribeImagesCommand({ ImageIds: [copyId] }))).Images![0]!;
  expect(copy.Tags).toEqual(expect.arrayContaining([{ Key: TAG_SOURCE_IMAGE, Value: result!.sourceImageId }]));

  // The SSM parameter in the DR region points at the copy.
  const param = await stack.ssm('eu-west-1').send(new GetParameterCommand({ Name: `/ami-backup/e2e/${instanceId}/latest` }));
  expect(param.Parameter).toMatchObject({ Value: copyId, DataType: 'aws:ec2:image' });

  // What the worker really sent (moto ignores encryption): one encrypted CopyImage, with the key.
  const copyRequests = proxy.requests.filter((r) => r.action === 'CopyImage' && r.body.includes(result!.sourceImageId!));
  expect(copyRequests).toHaveLength(1);
  expect(copyRequests[0]!.region).toBe('eu-west-1');
  expect(copyRequests[0]!.body).toContain('Encrypted=true');
  expect(copyRequests[0]!.body).toContain(`KmsKeyId=${encodeURIComponent('alias/ami-backup-dr')}`);
  expect(proxy.requests.filter((r) => r.action === 'CreateImage' && r.body.includes(instanceId!))).toHaveLength(1);

  // The worker logged each step with its context.
  expect(stack.workerLog()).toMatch(/createImage completed/);
  expect(stack.workerLog()).toMatch(/setSsmParam completed/);
});

test('a bad policy prints every problem with its field and exits 2, starting nothing', async () => {
  const before = await workflowCount();
  const file = writePolicy(
    'bad.yaml',
    [
      'name: Web Servers',
      'sourceRegion: us-east-1',
      'targets: { tags: { Backup: true } }',
      'copies:',
      '  - region: us-east-1',
      '    kmsKeyId: nope',
      'colour: blue',
      '',
    ].join('\n'),
  );
  const run = await cli(['run', '--policy', file, '--instance', 'i-0123456789abcdef0', '--json']);

  expect(run.code).toBe(2);
  expect(run.stderr).toContain('nothing was started');
  for (const field of ['name:', 'targets.tags.Backup:', 'copies[0].region:', 'copies[0].kmsKeyId:', 'colour:'])
    expect(run.stderr).toContain(field);
  expect(run.stdout).toBe('');
  expect(await workflowCount()).toBe(before);
});

test('a malformed instance ID exits 2 and starts nothing', async () => {
  const before = await workflowCount();
  const run = await cli(['run', '--policy', writePolicy('ok.json', goodPolicy), '--instance', 'web-1']);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('"web-1" is not an EC2 instance ID');
  expect(await workflowCount()).toBe(before);
});

test('a backup that fails exits 1 and says which instance, where and why', async () => {
  const run = await cli([
    'run',
    '--policy',
    writePolicy('ok.json', goodPolicy),
    '--instance',
    'i-0fedcba9876543210',
    '--wait',
    '--json',
    '--poll-interval',
    '300',
  ]);
  expect(run.code).toBe(1);
  const report = lastJson(run.stdout);
  expect(report.status).toBe('failed');
  expect(report.instances[0]).toMatchObject({ instanceId: 'i-0fedcba9876543210', status: 'failed', copies: [] });
  expect(report.instances[0]!.error).toContain('i-0fedcba9876543210');
  expect(report.instances[0]!.error).toContain('us-east-1');
  expect(run.stderr).toContain('Backup of i-0fedcba9876543210 failed');
});

test('a second run for an instance whose backup is still running is refused, naming the running one', async () => {
  const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  const slow = writePolicy('slow.json', { ...goodPolicy, wait: { firstCheck: '20s', maxInterval: '20s', timeout: '2m' } });
  const first = await cli(['run', '--policy', slow, '--instance', instanceId!]);
  expect(first.code).toBe(0);
  expect(first.stdout).toContain('Started backup');

  const second = await cli(['run', '--policy', slow, '--instance', instanceId!, '--json']);
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`already running: workflow ami-backup/e2e/${instanceId}`);
  await env.client.workflow.getHandle(`ami-backup/e2e/${instanceId}`).cancel();
});

test('a run cancelled while --wait follows it reports "cancelled" and exits 1', async () => {
  const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  const slow = writePolicy('slow.json', { ...goodPolicy, wait: { firstCheck: '30s', maxInterval: '30s', timeout: '2m' } });
  const following = cli(['run', '--policy', slow, '--instance', instanceId!, '--wait', '--json', '--poll-interval', '200']);
  const handle = env.client.workflow.getHandle(`ami-backup/e2e/${instanceId}`);
  for (
    let i = 0;
    i < 100 &&
    !(await handle.describe().then(
      () => true,
      () => false,
    ));
    i++
  )
    await new Promise((r) => setTimeout(r, 100));
  await handle.cancel();
  const run = await following;
  expect(run.code).toBe(1);
  expect(lastJson(run.stdout)).toMatchObject({ status: 'cancelled', instances: [{ instanceId, status: 'failed' }] });
});

test('starting a run on a task queue no worker polls warns the operator', async () => {
  const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  const run = await cli(['run', '--policy', writePolicy('ok.json', goodPolicy), '--instance', instanceId!], {
    AMI_BACKUP_TASK_QUEUE: 'nobody-polls-this',
  });
  expect(run.code).toBe(0);
  expect(run.stdout).toContain('Warning: no worker is polling task queue "nobody-polls-this"');
  await env.client.workflow.getHandle(`ami-backup/e2e/${instanceId}`).terminate('test over');
  // With a worker on the queue, no warning.
  const [other] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  const served = await cli([
    'run',
    '--policy',
    writePolicy('ok.json', goodPolicy),
    '--instance',
    other!,
    '--wait',
    '--poll-interval',
    '300',
  ]);
  expect(served.code).toBe(0);
  expect(served.stdout).not.toContain('no worker is polling');
});

test('the worker stops cleanly on SIGTERM', async () => {
  const exited = new Promise<number | null>((resolve) => stack.worker.once('exit', (code) => resolve(code)));
  stack.worker.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(stack.workerLog()).toContain('stopped cleanly');
});
