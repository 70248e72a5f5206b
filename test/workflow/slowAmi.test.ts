/**
 * Reliability fault 10, a slow AMI: an image that takes 6 hours, on Temporal's time-skipping test
 * server (timers fire as soon as nothing else runs: hours of workflow time in seconds). Stub
 * activities answer from the server's clock (each attempt's scheduled time), so "6 hours after
 * CreateImage" is workflow time, not the test's.
 *
 * - Within wait.timeout (8h) the backup succeeds, and its history stays bounded: no more events
 *   than the polling schedule (backoff.ts) allows.
 * - Past wait.timeout it fails with a message naming the image, the instance, the region, the
 *   timeout and what to do.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { Activities } from '../../src/activities';
import { durationMs } from '../../src/policy/duration';
import { policySchema, type Policy } from '../../src/policy/schema';
import type { BackupInstanceResult } from '../../src/shared/types';
import { checksUntilReady, pollSchedule, type WaitSettings } from '../../src/workflows/backoff';
import { backupInstance } from '../../src/workflows';
import { stubWorkerForFile } from '../helpers/temporal';

const HOUR = 3_600_000;
const SOURCE_READY_AFTER_MS = 6 * HOUR;
const COPY_READY_AFTER_MS = 20 * 60_000;

/** When each image was asked for, in server time; undefined readiness: never ready. */
const made = new Map<string, { at: number; readyAfterMs?: number }>();
const neverReady = new Set<string>();

/** The server's clock as the activity sees it: when this attempt was scheduled (time-skipped). */
const serverNow = () => Context.current().info.currentAttemptScheduledTimestampMs;

const stubs: Activities = {
  async findInstances() {
    throw new Error('not used');
  },
  async createImage(input) {
    const imageId = `ami-slow${input.instanceId.slice(2)}`;
    made.set(imageId, { at: serverNow(), readyAfterMs: neverReady.has(input.instanceId) ? undefined : SOURCE_READY_AFTER_MS });
    return { imageId, name: `${input.policy}-${input.instanceId}-${input.runId}`, reused: false };
  },
  async getImageState({ imageId }) {
    const image = made.get(imageId)!;
    const ready = image.readyAfterMs !== undefined && serverNow() - image.at >= image.readyAfterMs;
    return { imageId, state: ready ? 'available' : 'pending' };
  },
  async tagSnapshots({ imageId }) {
    return { snapshotIds: [`snap-${imageId.slice(4)}`] };
  },
  async copyImage(input) {
    const imageId = `ami-copy${input.instanceId.slice(2)}`;
    made.set(imageId, { at: serverNow(), readyAfterMs: COPY_READY_AFTER_MS });
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
};

const harness = stubWorkerForFile('slow', stubs, { timeSkipping: true });
const { taskQueue } = harness;

/** The policy's defaults (first check 60s, then doubling up to 3m), with an 8-hour timeout. */
const policy: Policy = policySchema.parse({
  name: 'slow',
  sourceRegion: 'us-east-1',
  targets: { tags: { Backup: 'true' } },
  copies: [{ region: 'eu-west-1' }],
  wait: { timeout: '8h' },
});
const settings: WaitSettings = {
  firstCheckMs: durationMs(policy.wait.firstCheck),
  maxIntervalMs: durationMs(policy.wait.maxInterval),
  timeoutMs: durationMs(policy.wait.timeout),
};

/**
 * Events per check: a timer (started, fired), the workflow task it wakes (scheduled, started,
 * completed), the activity (scheduled, started, completed) and the workflow task after it: 11.
 */
const EVENTS_PER_CHECK = 11;
/** Everything else of one backup: start, createImage, tagSnapshots ×2, copyImage, setSsmParam, markers, the end. */
const FIXED_EVENTS = 60;

/** The history's size, and the workflow time from its first event to its last (the server's clock). */
async function historyOf(workflowId: string): Promise<{ events: number; serverMs: number }> {
  const events = (await harness.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const ms = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);
  return { events: events.length, serverMs: ms(events[events.length - 1]!) - ms(events[0]!) };
}

test('a 6-hour CreateImage finishes within an 8-hour wait.timeout, with a history bounded by the polling schedule', async () => {
  const instanceId = 'i-0000000000000a601';
  const workflowId = `slow-${instanceId}-${Date.now()}`;
  const startedReal = Date.now();
  const result: BackupInstanceResult = await harness.env.client.workflow.execute(backupInstance, {
    taskQueue,
    workflowId,
    args: [{ policy, instanceId, runId: '20261203T000000Z' }],
  });
  const realMs = Date.now() - startedReal;
  const { events, serverMs } = await historyOf(workflowId);

  expect(result.status).toBe('succeeded');
  expect(result.sourceImageId).toBe(`ami-slow${instanceId.slice(2)}`);
  // Six hours (and the copy's twenty minutes) went by on the server's clock, in seconds of ours.
  expect(serverMs).toBeGreaterThanOrEqual(SOURCE_READY_AFTER_MS + COPY_READY_AFTER_MS);
  expect(serverMs).toBeLessThan(settings.timeoutMs);
  expect(realMs).toBeLessThan(60_000);

  const checks = checksUntilReady(SOURCE_READY_AFTER_MS, settings).checks + checksUntilReady(COPY_READY_AFTER_MS, settings).checks;
  const bound = checks * EVENTS_PER_CHECK + FIXED_EVENTS;
  expect(events).toBeLessThanOrEqual(bound);
  // Far below Temporal's 50,000-event limit, and below what even a never-ready image could cost.
  expect(bound).toBeLessThan(pollSchedule(settings).length * EVENTS_PER_CHECK * 2 + FIXED_EVENTS);
  console.log(
    `slow AMI: ${checks} checks, ${events} events (bound ${bound}), ${Math.round(serverMs / 60_000)} min of workflow time in ${realMs} ms`,
  );
});

test('past wait.timeout the step fails, naming the image, the instance, the region, the timeout and what to do', async () => {
  const instanceId = 'i-0000000000000a602';
  neverReady.add(instanceId);
  const workflowId = `slow-${instanceId}-${Date.now()}`;
  const startedReal = Date.now();
  const err = await harness.env.client.workflow
    .execute(backupInstance, { taskQueue, workflowId, args: [{ policy, instanceId, runId: '20261203T000000Z' }] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  const realMs = Date.now() - startedReal;
  const { events, serverMs } = await historyOf(workflowId);

  expect(err).toBeInstanceOf(WorkflowFailedError);
  const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure.type).toBe('ImageWaitTimeout');
  expect(failure.message).toContain(`ami-slow${instanceId.slice(2)}`);
  expect(failure.message).toContain(instanceId);
  expect(failure.message).toContain('us-east-1');
  expect(failure.message).toContain('after 8h (wait.timeout');
  expect(failure.message).toContain('Raise wait.timeout in the policy');
  // It gave up at the timeout, not before and not much after.
  expect(serverMs).toBeGreaterThanOrEqual(settings.timeoutMs);
  expect(serverMs).toBeLessThan(settings.timeoutMs + 10 * 60_000);
  expect(events).toBeLessThanOrEqual(pollSchedule(settings).length * EVENTS_PER_CHECK + FIXED_EVENTS);
  expect(realMs).toBeLessThan(60_000);
  console.log(`past the timeout: ${events} events, failed after ${Math.round(serverMs / 60_000)} min of workflow time in ${realMs} ms`);
});
