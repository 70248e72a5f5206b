/**
 * Benchmarks 3 and 4: the real workflows on Temporal's time-skipping test server, over stub
 * activities whose images become available a given time after they were made (measured on the
 * server's clock, so hours pass in seconds).
 *
 *  3. polls made and detection lag for images that take 5 min, 30 min and 2 h, with the policy's
 *     default waits;
 *  4. history events and billable actions per backup (30 min creation + 30 min copy to one
 *     region), for one instance alone and per instance in a fleet.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../src/activities';
import { policySchema, type Policy } from '../src/policy/schema';
import { fleetWorkflowId, instanceWorkflowId } from '../src/shared/naming';
import type { ImageStatus } from '../src/shared/types';
import { workflowSource } from '../src/worker';
import { backupFleet, backupInstance } from '../src/workflows';
import { Cleanup, ROOT, log } from './lib';

const EventType = temporal.api.enums.v1.EventType;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const MIN = 60_000;

interface ImageClock {
  readyAt: number;
  polls: number;
  detectedAt?: number;
}

/** Stub activities: images are available `creationMs` (source) or `copyMs` (copy) after they are made. */
class StubAws {
  readonly images = new Map<string, ImageClock>();
  creationMs = 30 * MIN;
  copyMs = 30 * MIN;
  private seq = 0;

  private static serverNow(): number {
    return Context.current().info.currentAttemptScheduledTimestampMs;
  }

  private make(kind: 's' | 'c', afterMs: number): string {
    this.seq += 1;
    const imageId = `ami-${kind}${this.seq.toString(16).padStart(16, '0')}`;
    this.images.set(imageId, { readyAt: StubAws.serverNow() + afterMs, polls: 0 });
    return imageId;
  }

  activities(): Activities {
    return {
      findInstances: async (input) => ({ instanceIds: [...(input.instanceIds ?? [])].sort(), problems: [] }),
      createImage: async (input) => ({
        imageId: this.make('s', this.creationMs),
        name: `${input.policy}-${input.instanceId}-${input.runId}`,
        reused: false,
      }),
      getImageState: async ({ imageId }): Promise<ImageStatus> => {
        const image = this.images.get(imageId)!;
        const t = StubAws.serverNow();
        image.polls += 1;
        if (t < image.readyAt) return { imageId, state: 'pending' };
        image.detectedAt ??= t;
        return { imageId, state: 'available' };
      },
      tagSnapshots: async ({ imageId }) => ({ snapshotIds: [`snap-${imageId.slice(4)}`] }),
      copyImage: async () => ({ imageId: this.make('c', this.copyMs), reused: false }),
      setSsmParam: async (input) => ({ name: input.name, region: input.region, value: input.imageId, outcome: 'written' as const }),
      applyRetention: async (input) => ({ region: input.region, deleted: [], kept: 1 }),
      listBackups: async () => [],
    };
  }
}

export interface PollingResult {
  creationMs: number;
  polls: number;
  lagMs: number;
}

export interface CostResult {
  label: string;
  instances: number;
  workflows: number;
  events: number;
  /** Events of the fleet workflow itself (0 for a single backup). */
  parentEvents: number;
  eventsByType: Record<string, number>;
  actions: Record<string, number>;
}

export interface SkipResults {
  polling: PollingResult[];
  costs: CostResult[];
}

function policy(name: string, overrides: Record<string, unknown> = {}): Policy {
  // The default waits (firstCheck 60s, maxInterval 3m, timeout 4h): what a user gets.
  return policySchema.parse({
    name,
    sourceRegion: 'us-east-1',
    targets: { tags: { Bench: name } },
    copies: [{ region: 'eu-west-1', retention: { keepLast: 3 } }],
    retention: { keepLast: 3 },
    ...overrides,
  });
}

const typeName = (t: number | null | undefined): string =>
  (EventType[t ?? 0] ?? `type ${t}`)
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());

/**
 * Billable actions in histories, per Temporal Cloud's definition (docs.temporal.io/cloud/actions):
 * workflow started (client start, child start, continue-as-new), activity started or retried
 * (each attempt), timer started, signal sent (counted once, at the sender), search attribute
 * upsert (not the TemporalChangeVersion upserts of patched(), which are exempt). Queries, schedules and heartbeats leave no trace here and are reported apart.
 */
export function countActions(histories: HistoryEvent[][]): Record<string, number> {
  const a = { workflowStarted: 0, activityAttempts: 0, timerStarted: 0, signalSent: 0, searchAttributeUpsert: 0 };
  for (const events of histories) {
    for (const e of events) {
      switch (e.eventType) {
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
          a.workflowStarted += 1;
          break;
        case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
          a.activityAttempts += Math.max(1, e.activityTaskStartedEventAttributes?.attempt ?? 1);
          break;
        case EventType.EVENT_TYPE_TIMER_STARTED:
          a.timerStarted += 1;
          break;
        case EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
          a.signalSent += 1;
          break;
        case EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
          // patched() upserts TemporalChangeVersion, which Temporal Cloud does not bill.
          const keys = Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {});
          if (keys.some((k) => k !== 'TemporalChangeVersion')) a.searchAttributeUpsert += 1;
          break;
        }
        default:
      }
    }
  }
  return { ...a, total: Object.values(a).reduce((x, y) => x + y, 0) };
}

function byType(histories: HistoryEvent[][]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const events of histories) for (const e of events) counts[typeName(e.eventType)] = (counts[typeName(e.eventType)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([, x], [, y]) => y - x));
}

function testServerPath(): string | undefined {
  const candidates = [process.env.TEMPORAL_TEST_SERVER_PATH, path.join(ROOT, '.cache/bin/temporal-test-server')];
  return candidates.find((c): c is string => Boolean(c) && existsSync(c!));
}

export async function timeSkippingBenchmarks(
  opts: { creationTimesMs: number[]; fleetSize: number },
  cleanup: Cleanup,
): Promise<SkipResults> {
  log('starting the time-skipping test server');
  const server = testServerPath();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: server ? { type: 'existing-path', path: server } : { type: 'cached-download' } },
  });
  const stopEnv = cleanup.add('time-skipping test server', () => env.teardown());
  const stub = new StubAws();
  const taskQueue = `bench-skip-${process.pid}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    ...workflowSource(),
    activities: stub.activities(),
    maxCachedWorkflows: 100,
  });
  const polling: PollingResult[] = [];
  const costs: CostResult[] = [];
  const history = async (workflowId: string) => (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];

  await worker.runUntil(async () => {
    // 3. Polling cost: creation takes T, the copy is instant (only the source wait is measured).
    for (const creationMs of opts.creationTimesMs) {
      stub.creationMs = creationMs;
      stub.copyMs = 0;
      const p = policy(`poll-${creationMs / MIN}m`);
      const before = new Set(stub.images.keys());
      await env.client.workflow.execute(backupInstance, {
        taskQueue,
        workflowId: instanceWorkflowId(p.name, 'i-0000000000000000a'),
        args: [{ policy: p, instanceId: 'i-0000000000000000a', runId: '20260101T000000Z' }],
      });
      const [sourceId] = [...stub.images.keys()].filter((k) => !before.has(k) && k.startsWith('ami-s'));
      const image = stub.images.get(sourceId!)!;
      polling.push({ creationMs, polls: image.polls, lagMs: image.detectedAt! - image.readyAt });
      log(`3. creation ${creationMs / MIN} min: ${image.polls} polls, lag ${((image.detectedAt! - image.readyAt) / 1000).toFixed(1)} s`);
    }

    // 4. Temporal cost: 30 min creation + 30 min copy to one region.
    stub.creationMs = 30 * MIN;
    stub.copyMs = 30 * MIN;
    const single = policy('cost-single');
    const singleId = instanceWorkflowId(single.name, 'i-0000000000000000b');
    await env.client.workflow.execute(backupInstance, {
      taskQueue,
      workflowId: singleId,
      args: [{ policy: single, instanceId: 'i-0000000000000000b', runId: '20260101T000000Z' }],
    });
    const singleHistory = [await history(singleId)];
    costs.push({
      label: 'one instance (backupInstance alone)',
      instances: 1,
      workflows: 1,
      events: singleHistory[0]!.length,
      parentEvents: 0,
      eventsByType: byType(singleHistory),
      actions: countActions(singleHistory),
    });

    const fleet = policy('cost-fleet');
    const instanceIds = Array.from({ length: opts.fleetSize }, (_, i) => `i-${(0xc0 + i).toString(16).padStart(17, '0')}`);
    const fleetId = fleetWorkflowId(fleet.name);
    const report = await env.client.workflow.execute(backupFleet, {
      taskQueue,
      workflowId: fleetId,
      args: [{ policy: fleet, instanceIds }],
    });
    if (report.counts.succeeded !== opts.fleetSize)
      throw new Error(`benchmark 4: the fleet backed up ${report.counts.succeeded} of ${opts.fleetSize}`);
    const fleetHistories = [
      await history(fleetId),
      ...(await Promise.all(instanceIds.map((id) => history(instanceWorkflowId(fleet.name, id))))),
    ];
    costs.push({
      label: `fleet of ${opts.fleetSize} (backupFleet + children)`,
      instances: opts.fleetSize,
      workflows: fleetHistories.length,
      events: fleetHistories.reduce((n, h) => n + h.length, 0),
      parentEvents: fleetHistories[0]!.length,
      eventsByType: byType(fleetHistories),
      actions: countActions(fleetHistories),
    });
    log(`4. single: ${singleHistory[0]!.length} events; fleet of ${opts.fleetSize}: ${costs[1]!.events} events`);
  });
  await stopEnv();
  return { polling, costs };
}
