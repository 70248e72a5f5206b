/**
 * Reliability faults 7 (image fails) and 8 (cancellation), on a real Temporal dev server with stub
 * activities over a small in-memory EC2: what a failed image and a cancelled run leave behind.
 *
 * - A failed image (source or copy) is deregistered and the failure says so; a failed copy keeps
 *   the source image; the fleet report shows it.
 * - A cancelled run deregisters every image it asked for and did not see finished (a copy being
 *   waited for, a copy whose CopyImage answer never came, a source still pending), keeps what EC2
 *   lists as available, and records it in its memo and progress.
 */
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { Activities, CleanupActivities } from '../../src/activities';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema';
import type { CancelCleanupMemo, DiscardImageInput, DiscardedImage, FleetReport, ImageStatus } from '../../src/shared/types';
import { backupFleet, backupInstance, progressQuery } from '../../src/workflows';
import { stubWorkerForFile } from '../helpers/temporal';

type State = ImageStatus['state'];

/** The stub EC2: every image a run made, with the state getImageState answers (and discard sees). */
interface FakeImage {
  imageId: string;
  region: string;
  instanceId: string;
  runId: string;
  role: 'source' | 'copy';
  state: State | 'gone';
}

interface Script {
  sourceStates?: State[];
  copyStates?: Record<string, State[]>;
  /** CopyImage in this region makes the copy, then its answer is lost (every attempt: a retryable error). */
  copyAnswerLost?: string[];
  reason?: string;
}

const scripts = new Map<string, Script>();
const images = new Map<string, FakeImage>();
const polls = new Map<string, number>();
const discards: DiscardImageInput[] = [];
const copyAttempts: Array<{ instanceId: string; region: string }> = [];

function image(imageId: string): FakeImage {
  return images.get(imageId)!;
}

function stateFor(img: FakeImage): State {
  const script = scripts.get(img.instanceId) ?? {};
  const list = img.role === 'source' ? script.sourceStates : script.copyStates?.[img.region];
  const n = polls.get(img.imageId) ?? 0;
  polls.set(img.imageId, n + 1);
  return list && list.length > 0 ? list[Math.min(n, list.length - 1)]! : 'available';
}

const stubs: Activities & CleanupActivities = {
  async findInstances(input) {
    return { instanceIds: [...(input.instanceIds ?? [])].sort(), problems: [] };
  },
  async createImage(input) {
    const imageId = `ami-s${input.instanceId.slice(2)}`;
    images.set(imageId, {
      imageId,
      region: input.region,
      instanceId: input.instanceId,
      runId: input.runId,
      role: 'source',
      state: 'pending',
    });
    return { imageId, name: `${input.policy}-${input.instanceId}-${input.runId}`, reused: false };
  },
  async getImageState({ imageId }) {
    const img = image(imageId);
    if (img.state === 'gone') return { imageId, state: 'deregistered' };
    const state = stateFor(img);
    img.state = state;
    return { imageId, state, ...(state === 'failed' ? { reason: scripts.get(img.instanceId)?.reason ?? 'no reason' } : {}) };
  },
  async tagSnapshots({ imageId }) {
    return { snapshotIds: [`snap-${imageId.slice(4)}`] };
  },
  async copyImage(input) {
    copyAttempts.push({ instanceId: input.instanceId, region: input.region });
    const imageId = `ami-c${input.region.replace(/-/g, '').slice(0, 6)}${input.instanceId.slice(2, 10)}`;
    if (!images.has(imageId)) {
      images.set(imageId, {
        imageId,
        region: input.region,
        instanceId: input.instanceId,
        runId: input.runId,
        role: 'copy',
        state: 'pending',
      });
    }
    if (scripts.get(input.instanceId)?.copyAnswerLost?.includes(input.region)) {
      throw ApplicationFailure.retryable(`CopyImage into ${input.region}: the answer never came (connection reset)`, 'NetworkError');
    }
    return { imageId, reused: false };
  },
  async setSsmParam(input) {
    return { name: input.name, region: input.region, value: input.imageId, outcome: 'written' as const };
  },
  async applyRetention(input) {
    return { region: input.region, deleted: [], kept: 1 };
  },
  async listBackups() {
    return [];
  },
  async discardImage(input) {
    discards.push(input);
    const found = input.imageId
      ? [images.get(input.imageId)].filter((i): i is FakeImage => i !== undefined)
      : [...images.values()].filter((i) => i.region === input.region && i.instanceId === input.instanceId && i.runId === input.runId);
    const discarded: DiscardedImage[] = [];
    const left: Array<{ imageId: string; reason: string; state?: string }> = [];
    for (const img of found) {
      if (img.state === 'gone') {
        discarded.push({
          region: img.region,
          imageId: img.imageId,
          role: img.role,
          state: 'gone',
          outcome: 'already-gone',
          snapshotIds: [],
        });
      } else if (input.keepAvailable && img.state === 'available') {
        left.push({ imageId: img.imageId, state: 'available', reason: `${img.imageId} in ${img.region} is available (finished): kept` });
      } else {
        discarded.push({
          region: img.region,
          imageId: img.imageId,
          role: img.role,
          state: img.state,
          outcome: 'deregistered',
          snapshotIds: [],
        });
        img.state = 'gone';
      }
    }
    return { region: input.region, discarded, left };
  },
};

const harness = stubWorkerForFile('cleanup', stubs);
const { taskQueue } = harness;

const RUN = '20261203T120000Z';

function policy(overrides: Partial<PolicyInput> = {}): Policy {
  return policySchema.parse({
    name: 'cleanup',
    sourceRegion: 'us-east-1',
    targets: { tags: { Backup: 'true' } },
    copies: [{ region: 'eu-west-1' }],
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '2m' },
    ...overrides,
  });
}

let seq = 0;
function newInstance(script: Script = {}): string {
  seq += 1;
  const id = `i-${(0xc0000000 + seq * 7919 + (Date.now() % 100000)).toString(16).padStart(8, '0')}`;
  scripts.set(id, script);
  return id;
}

async function start(instanceId: string, p: Policy = policy()): Promise<WorkflowHandle<typeof backupInstance>> {
  return harness.env.client.workflow.start(backupInstance, {
    taskQueue,
    workflowId: `cleanup-${instanceId}`,
    args: [{ policy: p, instanceId, runId: RUN }],
  });
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Cancels and waits until the run has ended; returns its memo (what the cleanup recorded). */
async function cancelAndWait(handle: WorkflowHandle): Promise<CancelCleanupMemo> {
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow();
  const desc = await handle.describe();
  expect(desc.status.name).toBe('CANCELLED');
  return desc.memo as unknown as CancelCleanupMemo;
}

const discardsOf = (instanceId: string) => discards.filter((d) => d.instanceId === instanceId);
const sourceOf = (instanceId: string) => `ami-s${instanceId.slice(2)}`;

describe('7: an image fails', () => {
  test("a failed source image: the step fails with EC2's reason, the image is deregistered, and the failure says so", async () => {
    const id = newInstance({ sourceStates: ['pending', 'failed'], reason: 'Snapshot creation failed: volume busy' });
    const handle = await start(id);
    const failure = await failureOf(handle);

    expect(failure.type).toBe('ImageFailed');
    expect(failure.message).toContain('Snapshot creation failed: volume busy');
    expect(failure.message).toContain(`Failed image ${sourceOf(id)} deregistered in us-east-1`);
    expect(discardsOf(id)).toEqual([expect.objectContaining({ imageId: sourceOf(id), region: 'us-east-1', keepAvailable: false })]);
    expect(image(sourceOf(id)).state).toBe('gone');
    expect(copyAttempts.filter((c) => c.instanceId === id)).toHaveLength(0);
    const progress = await handle.query(progressQuery);
    expect(progress.step).toBe('failed');
    expect(progress.cleanedUp).toEqual([expect.objectContaining({ imageId: sourceOf(id), outcome: 'deregistered', state: 'failed' })]);
  });

  test('a failed copy keeps the source image, deregisters the copy in its region, and reports both', async () => {
    const id = newInstance({ copyStates: { 'eu-central-1': ['pending', 'failed'] }, reason: 'Copy failed: KMS key disabled' });
    const handle = await start(id, policy({ copies: [{ region: 'eu-west-1' }, { region: 'eu-central-1' }] }));
    const failure = await failureOf(handle);

    expect(failure.type).toBe('ImageFailed');
    expect(failure.message).toContain(`The source image ${sourceOf(id)} of ${id} is kept`);
    expect(failure.message).toContain('1 of 2 copies failed');
    expect(failure.message).toContain('Copy failed: KMS key disabled');
    const failedCopy = [...images.values()].find((i) => i.instanceId === id && i.region === 'eu-central-1')!;
    expect(failure.message).toContain(`Failed image ${failedCopy.imageId} deregistered in eu-central-1`);
    expect(discardsOf(id).map((d) => `${d.region}/${d.imageId}`)).toEqual([`eu-central-1/${failedCopy.imageId}`]);
    expect(image(sourceOf(id)).state).toBe('available');
    expect([...images.values()].find((i) => i.instanceId === id && i.region === 'eu-west-1')!.state).toBe('available');
  });

  test('the fleet report shows the failed image and that it was deregistered', async () => {
    const ok = newInstance();
    const bad = newInstance({ sourceStates: ['failed'], reason: 'InternalError' });
    const report: FleetReport = await harness.env.client.workflow.execute(backupFleet, {
      taskQueue,
      workflowId: `cleanup-fleet-${bad}`,
      args: [{ policy: policy({ name: 'cleanup-fleet' }), instanceIds: [ok, bad], runId: RUN }],
    });
    expect(report.counts).toMatchObject({ total: 2, succeeded: 1, failed: 1 });
    const failed = report.instances.find((i) => i.instanceId === bad)!;
    expect(failed.status).toBe('failed');
    expect(failed.error).toContain(`is failed: InternalError`);
    expect(failed.error).toContain(`Failed image ${sourceOf(bad)} deregistered in us-east-1`);
  });
});

describe('8: cancellation', () => {
  test('cancelled while copies are in flight: the unfinished copy is deregistered, the finished source and an available copy stay', async () => {
    const id = newInstance({ copyStates: { 'eu-west-1': ['pending'], 'eu-central-1': ['pending'] } });
    const handle = await start(id, policy({ copies: [{ region: 'eu-west-1' }, { region: 'eu-central-1' }] }));
    await eventually('both copies being waited for', async () => {
      const p = await handle.query(progressQuery).catch(() => undefined);
      return p && p.copies.every((c) => c.polls >= 1) ? p : undefined;
    });
    // EC2 finished the eu-central-1 copy since the last look: it stays.
    const central = [...images.values()].find((i) => i.instanceId === id && i.region === 'eu-central-1')!;
    central.state = 'available';
    scripts.get(id)!.copyStates!['eu-central-1'] = ['available'];
    const west = [...images.values()].find((i) => i.instanceId === id && i.region === 'eu-west-1')!;

    const memo = await cancelAndWait(handle);
    expect(memo.cleanedUp).toEqual([
      expect.objectContaining({ region: 'eu-west-1', imageId: west.imageId, role: 'copy', outcome: 'deregistered' }),
    ]);
    expect(memo.kept).toEqual([{ region: 'eu-central-1', imageId: central.imageId }]);
    expect(west.state).toBe('gone');
    expect(central.state).toBe('available');
    expect(image(sourceOf(id)).state).toBe('available');
    // The source was seen available: never a candidate.
    expect(
      discardsOf(id)
        .map((d) => d.region)
        .sort(),
    ).toEqual(['eu-central-1', 'eu-west-1']);
    const progress = await handle.query(progressQuery);
    expect(progress.step).toBe('cancelled');
    expect(progress.cleanedUp!.map((d) => d.imageId)).toEqual([west.imageId]);
    const details = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(details.currentDetails).toContain(`Cleaned up: copy ${west.imageId} in eu-west-1 deregistered`);
  });

  test('cancelled while its CopyImage answer never came: the copy is found by its run in the region and deregistered', async () => {
    const id = newInstance({ copyAnswerLost: ['eu-west-1'] });
    const handle = await start(id);
    await eventually('a CopyImage attempt whose answer was lost', () =>
      copyAttempts.some((c) => c.instanceId === id && c.region === 'eu-west-1') ? true : undefined,
    );
    const copy = [...images.values()].find((i) => i.instanceId === id && i.region === 'eu-west-1')!;

    const memo = await cancelAndWait(handle);
    // The workflow never learnt the copy's ID: it asked for whatever this run made in eu-west-1.
    expect(discardsOf(id)).toEqual([expect.objectContaining({ region: 'eu-west-1', runId: RUN, keepAvailable: true })]);
    expect(discardsOf(id)[0]!.imageId).toBeUndefined();
    expect(memo.cleanedUp).toEqual([expect.objectContaining({ region: 'eu-west-1', imageId: copy.imageId, outcome: 'deregistered' })]);
    expect(copy.state).toBe('gone');
    expect(image(sourceOf(id)).state).toBe('available');
  });

  test('cancelled while the source image is pending: it is deregistered; nothing was copied', async () => {
    const id = newInstance({ sourceStates: ['pending'] });
    const handle = await start(id);
    await eventually('the source being waited for', async () => {
      const p = await handle.query(progressQuery).catch(() => undefined);
      return p && p.source.polls >= 1 ? p : undefined;
    });
    const memo = await cancelAndWait(handle);
    expect(memo.cleanedUp).toEqual([expect.objectContaining({ region: 'us-east-1', imageId: sourceOf(id), role: 'source' })]);
    expect(memo.cleanupProblems).toBeUndefined();
    expect(image(sourceOf(id)).state).toBe('gone');
    expect(copyAttempts.filter((c) => c.instanceId === id)).toHaveLength(0);
  });
});
