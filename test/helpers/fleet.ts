/**
 * A Temporal dev server and a worker running the real workflows over stub AWS activities that
 * play a scripted fleet: for the backupFleet tests. Stub activities are the only stubs allowed.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { Activities } from '../../src/activities';
import { toFailure } from '../../src/activities/errors';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema';
import type { FindInstancesInput, ImageStatus } from '../../src/shared/types';
import { backupFleet } from '../../src/workflows';
import { awsError } from '../helpers/aws';
import { childrenInFlight } from './history';
import { startTemporal, uniqueTaskQueue } from './temporal';

export const EventType = temporal.api.enums.v1.EventType;

/** What the stub AWS does for one fleet (keyed by policy name). */
export interface FleetScript {
  instances: string[];
  problems?: Array<{ instanceId: string; reason: string }>;
  /** Instances whose createImage fails (non-retryable). */
  failCreate?: Set<string>;
  /** getImageState answers for copies before "available". */
  copyPendingPolls?: number;
  /** How many CopyImage calls per region answer ResourceLimitExceeded first. */
  copyLimitErrors?: Record<string, number>;
  /** Hold createImage of these instances until released. */
  gate?: { ids: Set<string>; until: Promise<void> };
}

const fleets = new Map<string, FleetScript>();
export const findInputs: FindInstancesInput[] = [];
/** Per policy and region: copies in flight now, the most ever, and CopyImage calls refused. */
const copyStats = new Map<string, { now: Set<string>; max: number; refused: number; made: number }>();
const imageOf = new Map<string, { policy: string; region: string; copy: boolean; polls: number }>();

export function stats(policy: string, region: string) {
  const key = `${policy}|${region}`;
  if (!copyStats.has(key)) copyStats.set(key, { now: new Set(), max: 0, refused: 0, made: 0 });
  return copyStats.get(key)!;
}

const stubs: Activities = {
  async findInstances(input) {
    findInputs.push(input);
    const script = fleets.get(input.tags?.Fleet ?? '');
    if (!script) return { instanceIds: [], problems: [] };
    return { instanceIds: [...script.instances].sort(), problems: script.problems ?? [] };
  },
  async createImage(input) {
    const script = fleets.get(input.policy)!;
    if (script.gate?.ids.has(input.instanceId)) await script.gate.until;
    if (script.failCreate?.has(input.instanceId)) {
      throw toFailure(awsError('InvalidInstanceID.NotFound', `The instance ID '${input.instanceId}' does not exist`), {
        operation: 'ec2:CreateImage',
        region: input.region,
        instanceId: input.instanceId,
      });
    }
    const imageId = `ami-s${input.instanceId.slice(2)}`;
    imageOf.set(imageId, { policy: input.policy, region: input.region, copy: false, polls: 0 });
    return { imageId, name: `${input.policy}-${input.instanceId}-${input.runId}`, reused: false };
  },
  async getImageState({ imageId, region }): Promise<ImageStatus> {
    const image = imageOf.get(imageId)!;
    image.polls += 1;
    if (image.copy && image.polls <= (fleets.get(image.policy)!.copyPendingPolls ?? 0)) return { imageId, state: 'pending' };
    if (image.copy) stats(image.policy, region).now.delete(imageId);
    return { imageId, state: 'available' };
  },
  async tagSnapshots({ imageId }) {
    return { snapshotIds: [`snap-${imageId.slice(4)}`] };
  },
  async copyImage(input) {
    const script = fleets.get(input.policy)!;
    const s = stats(input.policy, input.region);
    const limitErrors = script.copyLimitErrors?.[input.region] ?? 0;
    if (s.refused < limitErrors) {
      s.refused += 1;
      throw toFailure(
        awsError('ResourceLimitExceeded', 'Too many snapshot copies in progress. The limit is 5 for this destination region.'),
        {
          operation: 'ec2:CopyImage',
          region: input.region,
          instanceId: input.instanceId,
        },
      );
    }
    const imageId = `ami-c${input.region.slice(0, 2)}${input.instanceId.slice(2)}`;
    imageOf.set(imageId, { policy: input.policy, region: input.region, copy: true, polls: 0 });
    s.made += 1;
    s.now.add(imageId);
    s.max = Math.max(s.max, s.now.size);
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

export let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
export const taskQueue = uniqueTaskQueue('fleet');

/** Starts the server and worker for the calling test file. */
export function useFleetHarness(): void {
  beforeAll(async () => {
    process.env.AMI_BACKUP_COPY_LIMIT_RETRY_DELAY = '1s';
    env = await startTemporal();
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../src/workflows'),
      activities: stubs,
      maxConcurrentWorkflowTaskExecutions: 100,
      maxConcurrentActivityTaskExecutions: 200,
      maxCachedWorkflows: 1000,
    });
    running = worker.run();
  }, 180_000);

  afterAll(async () => {
    delete process.env.AMI_BACKUP_COPY_LIMIT_RETRY_DELAY;
    worker?.shutdown();
    await running;
    await env?.teardown();
  });
}

let seq = 0;
export function instanceIds(n: number): string[] {
  seq += 1;
  return Array.from({ length: n }, (_, i) => `i-${(0x10000000 * (seq % 15) + seq * 65536 + i).toString(16).padStart(17, '0')}`);
}

export function fleet(name: string, script: FleetScript, overrides: Partial<PolicyInput> = {}): Policy {
  fleets.set(name, script);
  return policySchema.parse({
    name,
    sourceRegion: 'us-east-1',
    targets: { tags: { Fleet: name } },
    copies: [{ region: 'eu-west-1' }],
    wait: { firstCheck: '1s', maxInterval: '1s', timeout: '5m' },
    ...overrides,
  });
}

export async function startFleet(policy: Policy, id = `fleet-${policy.name}`): Promise<WorkflowHandle<typeof backupFleet>> {
  return env.client.workflow.start(backupFleet, { taskQueue, workflowId: id, args: [{ policy }] });
}

export async function historyOf(handle: WorkflowHandle, runId?: string) {
  return (await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory()).events ?? [];
}

/** The most children the fleet ever had running at once, from its own history. */
export async function maxChildrenInFlight(handle: WorkflowHandle): Promise<number> {
  return childrenInFlight(await historyOf(handle)).max;
}
