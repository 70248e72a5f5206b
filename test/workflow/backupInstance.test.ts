/**
 * backupInstance on a real Temporal dev server, with stub activities (the only stubs allowed):
 * each test gives its instance a script of AWS answers and reads the real workflow history.
 */
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Activities } from '../../src/activities';
import type { CopyImageInput } from '../../src/activities/copyImage';
import type { CreateImageInput } from '../../src/activities/createImage';
import { toFailure } from '../../src/activities/errors';
import type { SetSsmParamInput } from '../../src/activities/setSsmParam';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema';
import type { ApplyRetentionInput, BackupProgress, ImageStatus } from '../../src/shared/types';
import { backupInstance, progressQuery } from '../../src/workflows';
import { awsError } from '../helpers/aws';
import { stubWorkerForFile } from '../helpers/temporal';

const EventType = temporal.api.enums.v1.EventType;

/** What the stub AWS does for one instance. */
interface Script {
  /** States getImageState answers for the source image, one per call; the last one repeats. */
  sourceStates?: Array<ImageStatus['state'] | 'notFound'>;
  copyStates?: Record<string, Array<ImageStatus['state'] | 'notFound'>>;
  failedReason?: string;
  /** Errors createImage throws on its first attempts, in order. */
  createErrors?: Error[];
  copyError?: Record<string, Error>;
  /** Hold getImageState until released (for mid-run queries). */
  gate?: Promise<void>;
  /** What applyRetention deletes per region, or the error it throws there. */
  retention?: Record<string, string[] | Error>;
}

const scripts = new Map<string, Script>();
const calls: Array<{ activity: string; instanceId?: string; region?: string; at: number }> = [];

function nextState(list: Array<ImageStatus['state'] | 'notFound'> | undefined, n: number) {
  if (!list || list.length === 0) return 'available';
  return list[Math.min(n, list.length - 1)]!;
}

const imageOwners = new Map<string, { instanceId: string; region: string; copy: boolean }>();
const pollCounts = new Map<string, number>();

const stubs: Activities = {
  async createImage(input: CreateImageInput) {
    calls.push({ activity: 'createImage', instanceId: input.instanceId, region: input.region, at: Date.now() });
    const script = scripts.get(input.instanceId) ?? {};
    const err = script.createErrors?.shift();
    if (err) throw err;
    const imageId = `ami-src${input.instanceId.slice(2)}`;
    imageOwners.set(imageId, { instanceId: input.instanceId, region: input.region, copy: false });
    return { imageId, name: `${input.policy}-${input.instanceId}-${input.runId}`, instanceName: 'web-1', reused: false };
  },
  async getImageState({ imageId, region }) {
    const owner = imageOwners.get(imageId)!;
    calls.push({ activity: 'getImageState', instanceId: owner.instanceId, region, at: Date.now() });
    const script = scripts.get(owner.instanceId) ?? {};
    if (script.gate) await script.gate;
    const key = `${imageId}|${region}`;
    const n = pollCounts.get(key) ?? 0;
    pollCounts.set(key, n + 1);
    const state = nextState(owner.copy ? script.copyStates?.[region] : script.sourceStates, n);
    if (state === 'notFound') return { imageId, state: 'pending', notFound: true };
    return { imageId, state, ...(state === 'failed' ? { reason: script.failedReason } : {}) };
  },
  async tagSnapshots({ imageId, region }) {
    calls.push({ activity: 'tagSnapshots', instanceId: imageOwners.get(imageId)?.instanceId, region, at: Date.now() });
    return { snapshotIds: [`snap-${imageId.slice(4)}`] };
  },
  async copyImage(input: CopyImageInput) {
    copyInputs.push(input);
    calls.push({ activity: 'copyImage', instanceId: input.instanceId, region: input.region, at: Date.now() });
    const err = scripts.get(input.instanceId)?.copyError?.[input.region];
    if (err) throw err;
    const imageId = `ami-${input.region.replace(/-/g, '')}${input.instanceId.slice(2, 10)}`;
    imageOwners.set(imageId, { instanceId: input.instanceId, region: input.region, copy: true });
    return { imageId, reused: false };
  },
  async setSsmParam(input: SetSsmParamInput) {
    calls.push({ activity: 'setSsmParam', instanceId: input.instanceId, region: input.region, at: Date.now() });
    return { name: input.name, region: input.region, value: input.imageId, outcome: 'written' as const };
  },
  async applyRetention(input: ApplyRetentionInput) {
    calls.push({ activity: 'applyRetention', instanceId: input.instanceId, region: input.region, at: Date.now() });
    retentionInputs.push(input);
    const planned = scripts.get(input.instanceId)?.retention?.[input.region];
    if (planned instanceof Error) throw planned;
    const deleted = (planned ?? []).map((imageId) => ({
      region: input.region,
      imageId,
      snapshotIds: [`snap-${imageId.slice(4)}`],
      reason: 'beyond keepLast 1',
    }));
    return { region: input.region, deleted, kept: 1 };
  },
  async findInstances() {
    throw new Error('backupInstance never looks for instances');
  },
  async listBackups() {
    throw new Error('backupInstance never lists backups');
  },
};
const retentionInputs: ApplyRetentionInput[] = [];
const copyInputs: CopyImageInput[] = [];

const harness = stubWorkerForFile('wf', stubs);
const { taskQueue } = harness;

function policy(overrides: Partial<PolicyInput> = {}): Policy {
  return policySchema.parse({
    name: 'web',
    sourceRegion: 'us-east-1',
    targets: { tags: { Backup: 'true' } },
    copies: [{ region: 'eu-west-1', kmsKeyId: 'alias/dr' }],
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '1m' },
    ...overrides,
  });
}

let seq = 0;
function newInstance(script: Script = {}): string {
  seq += 1;
  const id = `i-${(0xa0000000 + seq * 7919 + (Date.now() % 100000)).toString(16).padStart(8, '0')}`;
  scripts.set(id, script);
  return id;
}

async function start(instanceId: string, p: Policy = policy()): Promise<WorkflowHandle<typeof backupInstance>> {
  return harness.env.client.workflow.start(backupInstance, {
    taskQueue,
    workflowId: `test-${instanceId}`,
    args: [{ policy: p, instanceId, runId: '20261203T120000Z' }],
  });
}

async function historyOf(handle: WorkflowHandle) {
  return (await handle.fetchHistory()).events ?? [];
}

async function timerMs(handle: WorkflowHandle): Promise<number[]> {
  return (await historyOf(handle))
    .filter((e) => e.eventType === EventType.EVENT_TYPE_TIMER_STARTED)
    .map((e) => {
      const d = e.timerStartedEventAttributes!.startToFireTimeout!;
      return Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6);
    });
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

const callsOf = (instanceId: string, activity: string) => calls.filter((c) => c.instanceId === instanceId && c.activity === activity);

test('happy path: create, wait, copy, wait, SSM; the result names every image', async () => {
  const id = newInstance();
  const handle = await start(id);
  const result = await handle.result();

  expect(result).toEqual({
    instanceId: id,
    status: 'succeeded',
    sourceImageId: `ami-src${id.slice(2)}`,
    copies: [{ region: 'eu-west-1', imageId: expect.stringMatching(/^ami-euwest1/) }],
    ssmParameter: `/ami-backup/web/${id}/latest`,
    deleted: [],
  });
  expect(calls.filter((c) => c.instanceId === id).map((c) => `${c.activity}@${c.region}`)).toEqual([
    'createImage@us-east-1',
    'getImageState@us-east-1',
    'tagSnapshots@us-east-1',
    'copyImage@eu-west-1',
    'getImageState@eu-west-1',
    'tagSnapshots@eu-west-1',
    'setSsmParam@eu-west-1',
  ]);
  const progress = await handle.query(progressQuery);
  expect(progress.step).toBe('done');
  expect(progress.steps.map((s) => s.step)).toEqual([
    'createImage',
    'waitForImage',
    'tagSnapshots',
    'copyImage',
    'waitForCopy',
    'tagSnapshots',
    'setSsmParam',
  ]);
  expect(progress.steps.every((s) => s.endedAt && s.detail)).toBe(true);
  // The Web UI reads like a log: activities and timers carry summaries, the run has current details.
  const history = await historyOf(handle);
  const summaries = history.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => e.userMetadata?.summary);
  expect(summaries.every((s) => s?.data && s.data.length > 0)).toBe(true);
  const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  expect(metadata.currentDetails).toContain('Step: **done**');
  expect(metadata.currentDetails).toContain(`source us-east-1: ami-src${id.slice(2)} available`);
});

test('pending three times then available: four checks after 1s, 2s, 2s, 2s (doubling, capped at maxInterval)', async () => {
  const id = newInstance({ sourceStates: ['pending', 'pending', 'pending', 'available'] });
  const handle = await start(id);
  await handle.result();

  expect(callsOf(id, 'getImageState').filter((c) => c.region === 'us-east-1')).toHaveLength(4);
  // Timers of the source wait, then one for the copy's single check.
  expect(await timerMs(handle)).toEqual([1000, 2000, 2000, 2000, 1000]);
  const progress = await handle.query(progressQuery);
  expect(progress.source.polls).toBe(4);
  expect(progress.copies[0]!.polls).toBe(1);
});

test('an image EC2 does not list yet is waited for (eventual consistency)', async () => {
  const id = newInstance({ sourceStates: ['notFound', 'notFound', 'available'] });
  const result = await (await start(id)).result();
  expect(result.status).toBe('succeeded');
  expect(callsOf(id, 'getImageState').filter((c) => c.region === 'us-east-1')).toHaveLength(3);
});

test("a failed image fails the step with EC2's reason, and nothing is copied", async () => {
  const id = newInstance({ sourceStates: ['pending', 'failed'], failedReason: 'Snapshot creation failed: volume busy' });
  const handle = await start(id);
  const failure = await failureOf(handle);

  expect(failure.type).toBe('ImageFailed');
  expect(failure.message).toContain('Snapshot creation failed: volume busy');
  expect(failure.message).toContain(id);
  expect(failure.message).toContain('us-east-1');
  expect(callsOf(id, 'copyImage')).toHaveLength(0);
  const progress = await handle.query(progressQuery);
  expect(progress.step).toBe('failed');
  expect(progress.error).toContain('volume busy');
});

test('wait.timeout fails the wait with a clear message after the scheduled checks', async () => {
  const id = newInstance({ sourceStates: ['pending'] });
  const handle = await start(id, policy({ wait: { firstCheck: '1s', maxInterval: '2s', timeout: '4s' } }));
  const failure = await failureOf(handle);

  expect(failure.type).toBe('ImageWaitTimeout');
  expect(failure.message).toMatch(/still pending after 4s \(wait\.timeout, \d+ checks\)/);
  // 1s + 2s, then what is left of the 4s (less the time the checks took): cut to the deadline.
  const timers = await timerMs(handle);
  expect(timers.slice(0, 2)).toEqual([1000, 2000]);
  expect(timers).toHaveLength(3);
  expect(timers[2]).toBeGreaterThan(500);
  expect(timers[2]).toBeLessThanOrEqual(1000);
  expect(callsOf(id, 'copyImage')).toHaveLength(0);
});

test('a non-retryable AWS error fails at once, after one attempt', async () => {
  const denied = toFailure(awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403), {
    operation: 'ec2:CreateImage',
    region: 'us-east-1',
  });
  const id = newInstance({ createErrors: [denied] });
  const handle = await start(id);
  const failure = await failureOf(handle);

  expect(failure.type).toBe('UnauthorizedOperation');
  expect(failure.message).toContain('not authorized');
  expect(callsOf(id, 'createImage')).toHaveLength(1);
  const history = await historyOf(handle);
  const failed = history.find((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)!;
  expect(failed.activityTaskFailedEventAttributes!.retryState).toBe(temporal.api.enums.v1.RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE);
});

test('a retryable AWS error is retried by Temporal and the backup recovers', async () => {
  const throttled = toFailure(awsError('RequestLimitExceeded', 'Request limit exceeded.', 503), {
    operation: 'ec2:CreateImage',
    region: 'us-east-1',
  });
  const id = newInstance({ createErrors: [throttled] });
  const handle = await start(id);
  const result = await handle.result();

  expect(result.status).toBe('succeeded');
  expect(callsOf(id, 'createImage')).toHaveLength(2);
  const history = await historyOf(handle);
  const startedCreate = history.filter(
    (e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && e.activityTaskStartedEventAttributes?.attempt === 2,
  );
  expect(startedCreate.length).toBeGreaterThan(0);
  expect(startedCreate[0]!.activityTaskStartedEventAttributes!.lastFailure?.message).toContain('RequestLimitExceeded');
});

test('progress can be queried mid-run: the step, the image and the checks so far', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const id = newInstance({ sourceStates: ['pending', 'available'] });
  const handle = await start(id);

  let progress: BackupProgress | undefined;
  for (let i = 0; i < 100; i++) {
    progress = await handle.query(progressQuery).catch(() => undefined);
    if (progress?.source.polls === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  scripts.get(id)!.gate = gate;
  expect(progress).toMatchObject({
    instanceId: id,
    policy: 'web',
    runId: '20261203T120000Z',
    step: 'waitForImage',
    source: { region: 'us-east-1', imageId: `ami-src${id.slice(2)}`, state: 'pending', polls: 1 },
    copies: [{ region: 'eu-west-1', polls: 0 }],
  });
  release();
  await handle.result();
});

test('copies to two regions run in parallel; one failing fails the run but keeps the source and the other copy', async () => {
  const kmsError = toFailure(awsError('InvalidKMSKey.NotFound', 'Key alias/dr does not exist'), {
    operation: 'ec2:CopyImage',
    region: 'eu-central-1',
    kmsKeyId: 'alias/dr',
  });
  const id = newInstance({ copyError: { 'eu-central-1': kmsError } });
  const handle = await start(
    id,
    policy({
      copies: [
        { region: 'eu-west-1', kmsKeyId: 'alias/dr' },
        { region: 'eu-central-1', kmsKeyId: 'alias/dr' },
      ],
    }),
  );
  const failure = await failureOf(handle);

  expect(failure.type).toBe('InvalidKMSKey.NotFound');
  expect(failure.message).toContain(`source image ami-src${id.slice(2)}`);
  expect(failure.message).toContain('1 of 2 copies failed');
  expect(failure.message).toContain('eu-central-1');
  expect(callsOf(id, 'setSsmParam').map((c) => c.region)).toEqual(['eu-west-1']);
  const progress = await handle.query(progressQuery);
  expect(progress.copies.find((c) => c.region === 'eu-west-1')).toMatchObject({ state: 'available', ssmWritten: true });
});

test('retention runs after the backup succeeded, in the source region and every copy region with a rule; the result lists what went', async () => {
  const id = newInstance({ retention: { 'us-east-1': ['ami-old1'], 'eu-west-1': ['ami-old2', 'ami-old3'] } });
  const p = policy({
    retention: { keepLast: 3 },
    copies: [{ region: 'eu-west-1', kmsKeyId: 'alias/dr', retention: { keepLast: 2, maxAge: '30d' } }, { region: 'eu-central-1' }],
  });
  const handle = await start(id, p);
  const result = await handle.result();

  expect(result.status).toBe('succeeded');
  expect(result.deleted.map((d) => `${d.region}/${d.imageId}`).sort()).toEqual([
    'eu-west-1/ami-old2',
    'eu-west-1/ami-old3',
    'us-east-1/ami-old1',
  ]);
  expect(result.warnings).toBeUndefined();
  // eu-central-1 has no rule: no retention there.
  expect(
    callsOf(id, 'applyRetention')
      .map((c) => c.region)
      .sort(),
  ).toEqual(['eu-west-1', 'us-east-1']);
  const inputs = retentionInputs.filter((r) => r.instanceId === id);
  const dr = inputs.find((r) => r.region === 'eu-west-1')!;
  expect(dr).toMatchObject({ policy: 'web', rule: { keepLast: 2, maxAge: '30d' }, ssmParameter: `/ami-backup/web/${id}/latest` });
  expect(dr.protect).toEqual([result.copies.find((c) => c.region === 'eu-west-1')!.imageId]);
  expect(inputs.find((r) => r.region === 'us-east-1')!.protect).toEqual([result.sourceImageId]);
  // Retention starts only once every copy's SSM parameter was written.
  const lastSsm = Math.max(...callsOf(id, 'setSsmParam').map((c) => c.at));
  expect(Math.min(...callsOf(id, 'applyRetention').map((c) => c.at))).toBeGreaterThanOrEqual(lastSsm);
  const progress = await handle.query(progressQuery);
  expect(progress.deleted).toBe(3);
  expect(progress.steps.filter((s) => s.step === 'applyRetention').map((s) => s.detail)).toContain('2 image(s) deleted, 1 kept');
});

test('retention failing does not undo the backup: it succeeds with a warning naming the region', async () => {
  const denied = toFailure(awsError('UnauthorizedOperation', 'not allowed to DeregisterImage'), {
    operation: 'ec2:DeregisterImage',
    region: 'eu-west-1',
  });
  const id = newInstance({ retention: { 'eu-west-1': denied } });
  const handle = await start(id, policy({ copies: [{ region: 'eu-west-1', retention: { keepLast: 1 } }] }));
  const result = await handle.result();

  expect(result.status).toBe('succeeded');
  expect(result.warnings).toHaveLength(1);
  expect(result.warnings![0]).toContain('retention in eu-west-1');
  expect(result.warnings![0]).toContain('UnauthorizedOperation');
  expect(callsOf(id, 'applyRetention')).toHaveLength(1); // non-retryable: one attempt
});

test('a failed backup never runs retention', async () => {
  const id = newInstance({ sourceStates: ['failed'], failedReason: 'snapshot error', retention: { 'us-east-1': ['ami-old'] } });
  const handle = await start(id, policy({ retention: { keepLast: 1 } }));
  await failureOf(handle);
  expect(callsOf(id, 'applyRetention')).toHaveLength(0);
});

test('deprecateAfter on a copy reaches copyImage as a deprecation time from the workflow clock', async () => {
  const id = newInstance();
  const before = Date.now();
  const handle = await start(id, policy({ copies: [{ region: 'eu-west-1', deprecateAfter: '90d' }] }));
  await handle.result();
  const input = copyInputs.find((c) => c.instanceId === id)!;
  const at = Date.parse(input.deprecateAt!);
  expect(at - before).toBeGreaterThanOrEqual(90 * 86_400_000 - 5_000);
  expect(at - Date.now()).toBeLessThanOrEqual(90 * 86_400_000);
});
