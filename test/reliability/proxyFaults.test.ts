/**
 * Reliability: AWS misbehaving, through the proxy between the worker's AWS SDK and moto: the copy
 * limit for a while, answers lost after AWS did the work, EC2's eventual consistency, random
 * throttling / 5xx / resets / slow answers at 30 %, and a schedule firing onto a run still going.
 * Every test counts the images in moto (by this tool's deterministic names, so an untagged
 * duplicate counts too) and looks at the workflow histories for the retries.
 *
 * The worker runs with AMI_BACKUP_AWS_MAX_ATTEMPTS=1: the SDK retries nothing, every failure goes
 * to Temporal's retry policy (visible in the history) and every retry goes through the
 * activities' own idempotency checks. (With the SDK's own retries, a CreateImage / CopyImage
 * resent after a lost answer relies on EC2's name uniqueness and ClientToken, which moto lacks.)
 * The CLI signs with another access key, so faults meant for the worker never hit it.
 */
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import type { temporal } from '@temporalio/proto';
import { seedInstances } from '../../scripts/seed';
import { backupImagesByInstance, lastJson, runPolicy, startE2e, until, type E2eStack } from '../helpers/e2e';
import { eventuallyConsistent, randomFaults } from '../helpers/faultProxy';
import { ec2ErrorResponse, type ProxiedRequest } from '../helpers/recordingProxy';

const SRC = 'us-east-1';
const DR1 = 'eu-west-1';
const DR2 = 'eu-central-1';
const WORKER_KEY = 'e2e-access-key';
const CLI_ENV = { AWS_ACCESS_KEY_ID: 'e2e-cli-key' };

const GROUPS = { limit: 6, lost: 4, consistency: 3, overlap: 2, random: 5 } as const;
type Group = keyof typeof GROUPS;

let stack: E2eStack;
const seeded = {} as Record<Group, string[]>;
const measured: Record<string, unknown> = {};

beforeAll(async () => {
  stack = await startE2e({ workerEnv: { AMI_BACKUP_AWS_MAX_ATTEMPTS: '1' } });
  const groups = Object.entries(GROUPS) as Array<[Group, number]>;
  const ids = await seedInstances(stack.ec2(SRC), { count: groups.reduce((n, [, c]) => n + c, 0), tags: {}, namePrefix: 'fault' });
  for (const [group, count] of groups) {
    seeded[group] = ids.splice(0, count);
    await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: seeded[group], Tags: [{ Key: 'Fleet', Value: `fault-${group}` }] }));
  }
}, 180_000);

afterAll(async () => {
  console.log(`proxy faults measured: ${JSON.stringify(measured)}`);
  await stack?.stop();
}, 60_000);

afterEach(() => {
  stack.proxy.intercept = undefined;
});

const sorted = (ids: Iterable<string>) => [...ids].sort();
const paramsOf = (x: ProxiedRequest) => new URLSearchParams(x.body);
const ofPolicy = (name: string) => (x: ProxiedRequest) => x.body.includes(`${name}-i-`) || x.body.includes(`"/ami-backup/${name}/`);

function writeFleetPolicy(group: Group, extra: object = {}): { name: string; file: string } {
  const name = `fault-${group}`;
  const file = stack.writePolicy(`${name}.json`, {
    name,
    sourceRegion: SRC,
    targets: { tags: { Fleet: name } },
    copies: [{ region: DR1 }, { region: DR2 }],
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '5m' },
    ...extra,
  });
  return { name, file };
}

/** Exactly one source image and one copy per region per instance in moto: the ones the report names. */
async function expectOneBackupEach(name: string, instanceIds: string[], report: Awaited<ReturnType<typeof runPolicy>>['report']) {
  expect(report.counts).toEqual({ total: instanceIds.length, succeeded: instanceIds.length, failed: 0, skipped: 0 });
  const byId = new Map(report.instances.map((i) => [i.instanceId, i]));
  let images = 0;
  for (const region of [SRC, DR1, DR2]) {
    const found = await backupImagesByInstance(stack, region, name);
    expect(sorted(found.keys())).toEqual(sorted(instanceIds));
    for (const [instanceId, list] of found) {
      const r = byId.get(instanceId)!;
      const expected = region === SRC ? r.sourceImageId : r.copies.find((c) => c.region === region)?.imageId;
      expect({ instanceId, region, images: list.map((i) => i.imageId) }).toEqual({ instanceId, region, images: [expected] });
      images += list.length;
    }
  }
  return images;
}

interface Retry {
  workflowId: string;
  activity: string;
  attempt: number;
  failureType: string;
  message: string;
}

/** Every activity retry in the histories of the fleet and its instances: attempt > 1 and the failure before it. */
async function retriesIn(name: string, instanceIds: string[], fleetWorkflowId = `ami-backup/${name}/fleet`): Promise<Retry[]> {
  const retries: Retry[] = [];
  for (const workflowId of [fleetWorkflowId, ...instanceIds.map((id) => `ami-backup/${name}/${id}`)]) {
    const events = (await stack.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const scheduled = new Map<string, string>();
    for (const e of events as temporal.api.history.v1.IHistoryEvent[]) {
      if (e.activityTaskScheduledEventAttributes) {
        scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
      }
      const started = e.activityTaskStartedEventAttributes;
      if (started && (started.attempt ?? 1) > 1) {
        retries.push({
          workflowId,
          activity: scheduled.get(String(started.scheduledEventId)) ?? '',
          attempt: started.attempt!,
          failureType: started.lastFailure?.applicationFailureInfo?.type ?? (started.lastFailure?.timeoutFailureInfo ? 'timeout' : ''),
          message: started.lastFailure?.message ?? '',
        });
      }
    }
  }
  return retries;
}

test('copy limit: CopyImage answers ResourceLimitExceeded in one region for 15 s; every copy waits, none fails, no duplicate', async () => {
  // A copy slot for every instance: all the copies meet the limit, none waits for a slot instead.
  const { name, file } = writeFleetPolicy('limit', { maxConcurrentCopies: GROUPS.limit });
  let limitFrom: number | undefined;
  const LIMIT_MS = 15_000;
  const refused: ProxiedRequest[] = [];
  stack.proxy.intercept = (x) => {
    if (x.action !== 'CopyImage' || x.region !== DR1 || !ofPolicy(name)(x)) return undefined;
    limitFrom ??= Date.now();
    if (Date.now() - limitFrom > LIMIT_MS) return undefined;
    refused.push(x);
    return {
      kind: 'respond',
      fault: 'copy-limit',
      response: ec2ErrorResponse(
        'ResourceLimitExceeded',
        'You have reached the maximum number of concurrent snapshot copies (fault proxy).',
      ),
    };
  };
  const { code, report, ms } = await runPolicy(stack, file, [], CLI_ENV);
  expect(code).toBe(0);
  const images = await expectOneBackupEach(name, seeded.limit, report);
  // Sustained: every copy into DR1 was refused, most of them several times, and none reached moto in the window.
  const refusedSources = new Set(refused.map((x) => paramsOf(x).get('SourceImageId')));
  expect(refusedSources.size).toBe(GROUPS.limit);
  const made = stack.proxy.requests.filter((x) => x.action === 'CopyImage' && x.region === DR1 && ofPolicy(name)(x) && !x.injected);
  expect(made).toHaveLength(GROUPS.limit);
  for (const x of made) expect(x.sentAt - limitFrom!).toBeGreaterThan(LIMIT_MS);
  const retries = (await retriesIn(name, seeded.limit)).filter((r) => r.activity === 'copyImage');
  expect(retries.length).toBeGreaterThan(0);
  for (const r of retries) expect(r.failureType).toBe('ResourceLimitExceeded');
  measured.copyLimit = {
    refusals: refused.length,
    images,
    copyRetriesInHistory: retries.length,
    maxAttempt: Math.max(...retries.map((r) => r.attempt)),
    ms,
  };
}, 180_000);

test('lost response: CreateImage and CopyImage are done by AWS but their answers never arrive; the retries find the images, no duplicate', async () => {
  const { name, file } = writeFleetPolicy('lost');
  const dropped = new Set<string>();
  stack.proxy.intercept = (x) => {
    if (!ofPolicy(name)(x) || (x.action !== 'CreateImage' && x.action !== 'CopyImage')) return undefined;
    const p = paramsOf(x);
    const key = `${x.action}|${x.region}|${x.action === 'CreateImage' ? p.get('Name') : p.get('SourceImageId')}`;
    if (dropped.has(key)) return undefined;
    dropped.add(key);
    return { kind: 'drop-response', fault: 'lost-response' };
  };
  const { code, report, ms } = await runPolicy(stack, file, [], CLI_ENV);
  expect(code).toBe(0);
  expect(dropped.size).toBe(GROUPS.lost * 3); // one CreateImage and two CopyImage per instance
  const images = await expectOneBackupEach(name, seeded.lost, report);
  // AWS was asked once per image: each retry found the image the lost answer would have named.
  const asked = stack.proxy.requests.filter((x) => ofPolicy(name)(x) && (x.action === 'CreateImage' || x.action === 'CopyImage'));
  expect(asked).toHaveLength(GROUPS.lost * 3);
  const retries = (await retriesIn(name, seeded.lost)).filter((r) => r.activity === 'createImage' || r.activity === 'copyImage');
  expect(retries).toHaveLength(GROUPS.lost * 3);
  for (const r of retries) expect(r.message).toMatch(/ECONNRESET|socket hang up/);
  measured.lostResponse = { dropped: dropped.size, images, awsRequestsForImages: asked.length, retriesInHistory: retries.length, ms };
}, 180_000);

test('eventual consistency: the first 3 DescribeImages of every new image answer InvalidAMIID.NotFound; the backups succeed', async () => {
  const { name, file } = writeFleetPolicy('consistency');
  const consistency = eventuallyConsistent(stack.proxy, 3);
  stack.proxy.intercept = consistency.intercept;
  const { code, report, ms } = await runPolicy(stack, file, [], CLI_ENV);
  expect(code).toBe(0);
  const images = await expectOneBackupEach(name, seeded.consistency, report);
  const ids = report.instances.flatMap((i) => [i.sourceImageId!, ...i.copies.map((c) => c.imageId)]);
  for (const id of ids) expect({ id, notFound: consistency.notFound.get(id) }).toEqual({ id, notFound: 3 });
  measured.eventualConsistency = { images, notFoundAnswers: [...consistency.notFound.values()].reduce((a, b) => a + b, 0), ms };
}, 180_000);

test('overlap: a schedule firing while its run still goes is skipped; a second ad-hoc run (fleet or instance) is refused naming the running one', async () => {
  const { name, file } = writeFleetPolicy('overlap');
  // Every CreateImage of the policy waits at the gate: the scheduled run stays in flight (under the 30 s activity timeout).
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const held: ProxiedRequest[] = [];
  // Later, the ad-hoc fleet run's discovery (DescribeInstances with the policy's tag) waits at a
  // second gate, so that it is still running when the second ad-hoc run comes.
  let holdDiscovery = false;
  let openDiscovery!: () => void;
  const discoveryGate = new Promise<void>((r) => (openDiscovery = r));
  const discoveries: ProxiedRequest[] = [];
  stack.proxy.intercept = (x) => {
    if (x.action === 'CreateImage' && ofPolicy(name)(x)) {
      held.push(x);
      return gate.then(() => undefined);
    }
    if (holdDiscovery && x.action === 'DescribeInstances' && x.body.includes(name)) {
      discoveries.push(x);
      return discoveryGate.then(() => undefined);
    }
    return undefined;
  };
  try {
    expect((await stack.cli(['schedule', 'create', '--policy', file, '--every', '1h'], CLI_ENV)).code).toBe(0);
    const triggered = await stack.cli(['schedule', 'trigger', '--name', name], CLI_ENV);
    expect(triggered.code).toBe(0);
    await until('both backups to be at CreateImage', async () => (held.length >= GROUPS.overlap ? true : undefined), 20_000, 100);
    const schedule = stack.env.client.schedule.getHandle(`ami-backup-${name}`);
    const scheduledRun = (await schedule.describe()).info.runningActions[0]!.workflow.workflowId;

    // The schedule fires twice more (with its own overlap policy, skip): both skipped.
    // One firing at a time: two triggers sent back to back were sometimes counted as one skip by
    // the schedule (in a CI run numActionsSkippedOverlap stayed at 1 for 45 s). What the
    // schedule said last is in the failure if it never gets there.
    let lastSeen = {};
    const skippedAtLeast = (n: number) =>
      until(
        `firing ${n} to be skipped`,
        async () => {
          const d = await schedule.describe();
          lastSeen = { ...d.info, runningActions: d.info.runningActions.map((a) => a.workflow.workflowId) };
          return d.info.numActionsSkippedOverlap >= n ? d : undefined;
        },
        30_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the schedule said last: ${JSON.stringify(lastSeen)}`);
      });
    await schedule.trigger('SKIP');
    await skippedAtLeast(1);
    await schedule.trigger('SKIP');
    const skipped = await skippedAtLeast(2);
    expect(skipped.info.numActionsSkippedOverlap).toBe(2);
    expect(skipped.info.numActionsTaken).toBe(1);
    expect(skipped.info.runningActions.map((a) => a.workflow.workflowId)).toEqual([scheduledRun]);
    // The CLI's trigger says so up front and triggers nothing.
    const again = await stack.cli(['schedule', 'trigger', '--name', name], CLI_ENV);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`a run of schedule ami-backup-${name} is still going (${scheduledRun})`);

    // Ad hoc, one instance whose backup the scheduled run holds: refused, naming it.
    const [instanceId] = seeded.overlap as [string];
    const single = await stack.cli(['run', '--policy', file, '--instance', instanceId, '--json'], CLI_ENV);
    expect(single.code).toBe(1);
    expect(single.stderr).toContain(`already running: workflow ami-backup/${name}/${instanceId}`);
    // Ad hoc, the fleet: the first starts (and waits in its discovery), the second is refused naming the first.
    holdDiscovery = true;
    const adHoc = await stack.cli(['run', '--policy', file, '--json'], CLI_ENV);
    expect(adHoc.code).toBe(0);
    await until('the ad-hoc fleet run to look for its instances', async () => (discoveries.length > 0 ? true : undefined), 20_000, 100);
    const second = await stack.cli(['run', '--policy', file, '--json'], CLI_ENV);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already running: workflow ami-backup/${name}/fleet`);
    // Let the first go on: its instances are still busy with the scheduled run, so both are skipped.
    openDiscovery();
    const adHocResult = await stack.env.client.workflow.getHandle(`ami-backup/${name}/fleet`).result();
    expect(adHocResult.counts).toEqual({ total: 2, succeeded: 0, failed: 0, skipped: 2 });
    measured.overlap = { skippedOverlap: skipped.info.numActionsSkippedOverlap, heldForMs: Date.now() - held[0]!.sentAt };
  } finally {
    openDiscovery();
    open();
  }
  const scheduledResult = await until(
    'the scheduled run to end',
    async () => {
      const d = await stack.env.client.schedule.getHandle(`ami-backup-${name}`).describe();
      return d.info.runningActions.length === 0 ? d.info.recentActions : undefined;
    },
    60_000,
    500,
  );
  expect(scheduledResult).toHaveLength(1);
  const runId = scheduledResult[0]!.action.workflow.workflowId;
  const status = await stack.cli(['status', runId, '--json'], CLI_ENV);
  const report = lastJson<{ status: string; result: Awaited<ReturnType<typeof runPolicy>>['report'] }>(status.stdout);
  expect(report.status).toBe('COMPLETED');
  await expectOneBackupEach(name, seeded.overlap, report.result);
  expect((await stack.cli(['schedule', 'delete', '--name', name], CLI_ENV)).code).toBe(0);
}, 180_000);

const RANDOM_RUN_MS = 420_000;

/** Per instance and activity: the activities that were retried, the highest attempt, and the failure before it. */
function retryDigest(retries: Retry[]): string {
  const rows = new Map<string, { retries: number; maxAttempt: number; last: string }>();
  for (const r of retries) {
    const key = `${r.workflowId.split('/').pop()} ${r.activity}`;
    const row = rows.get(key) ?? { retries: 0, maxAttempt: 0, last: '' };
    row.retries += 1;
    row.maxAttempt = Math.max(row.maxAttempt, r.attempt);
    row.last = r.failureType;
    rows.set(key, row);
  }
  return [...rows]
    .map(
      ([key, row]) => `  ${key}: retried ${row.retries} time(s) in the history, up to attempt ${row.maxAttempt}, last failure ${row.last}`,
    )
    .join('\n');
}

test(
  'random AWS faults at 30 % (throttling, 500, 503, resets, slow answers): every backup completes, no duplicate, retries in the history',
  async () => {
    // A step is a few AWS calls, each failing 24 % of the time here (no SDK retries), so a step may
    // take several attempts: wait.timeout gives a copy (unlimited attempts, bounded by it) room for
    // about 20 at the 1 minute backoff cap, where 5 minutes left a ~1 % chance per copy to run out.
    const { name, file } = writeFleetPolicy('random', {
      retention: { keepLast: 1 },
      wait: { firstCheck: '1s', maxInterval: '2s', timeout: '15m' },
    });
    const faults = randomFaults({
      rate: 0.3,
      seed: 20261203,
      maxConsecutive: 3,
      slowMs: 1_500,
      match: (x) => x.accessKeyId === WORKER_KEY,
    });
    stack.proxy.intercept = faults.intercept;
    // The run gets RANDOM_RUN_MS; past it the test fails with where the retries went, not with
    // jest's bare timeout.
    const stop = new AbortController();
    const running = runPolicy(stack, file, [], CLI_ENV, stop.signal);
    running.catch(() => undefined); // aborted below when it outlives RANDOM_RUN_MS
    const outcome = await Promise.race([
      running,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), RANDOM_RUN_MS).unref()),
    ]);
    stack.proxy.intercept = undefined;
    stop.abort(); // the CLI, if it still waits
    if (!outcome)
      throw new Error(
        `the run was not done after ${RANDOM_RUN_MS / 1000} s:\n${retryDigest(await retriesIn(name, seeded.random).catch(() => []))}`,
      );
    const { code, report, ms } = outcome;
    if (code !== 0)
      console.log(
        `random faults: exit ${code}, report ${JSON.stringify(report)}\n${retryDigest(await retriesIn(name, seeded.random).catch(() => []))}`,
      );
    expect(code).toBe(0);
    const images = await expectOneBackupEach(name, seeded.random, report);
    const counts = faults.counts();
    for (const kind of ['throttle', 'http500', 'http503', 'reset', 'slow'] as const) expect(counts[kind]).toBeGreaterThan(0);

    // Temporal's history shows the retries, each naming the fault before it.
    const retries = await retriesIn(name, seeded.random);
    expect(retries.length).toBeGreaterThan(0);
    const types = new Set(retries.map((r) => r.failureType));
    for (const t of types)
      expect([
        'RequestLimitExceeded',
        'ThrottlingException',
        'InternalError',
        'InternalServerError',
        'Unavailable',
        'ServiceUnavailableException',
        'ServiceUnavailable',
        'ECONNRESET',
        'UND_ERR_SOCKET',
        'EPIPE',
      ]).toContain(t);
    expect(types.size).toBeGreaterThanOrEqual(3);
    measured.randomFaults = {
      faultsGiven: counts,
      requests: stack.proxy.requests.filter((x) => x.accessKeyId === WORKER_KEY && ofPolicy(name)(x)).length,
      images,
      retriesInHistory: retries.length,
      failureTypes: [...types],
      maxAttempt: Math.max(...retries.map((r) => r.attempt)),
      ms,
    };
    console.log(`random faults retries:\n${retryDigest(retries)}`);
  },
  RANDOM_RUN_MS + 60_000,
);
