/**
 * Fleet backups end to end, as an operator runs them: the real CLI starts `backupFleet` on the
 * Temporal dev server, the real worker backs up instances in moto, and every test checks what
 * really happened: the images, snapshots and SSM parameters in moto, the CLI's exit codes and
 * JSON, and the workflows' histories in Temporal.
 *
 * One stack (Temporal, moto, worker) for the file; every test has a policy name and a `Fleet`
 * tag value of its own, and its instances are seeded once, up front.
 */
import {
  CopyImageCommand,
  CreateImageCommand,
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  TerminateInstancesCommand,
  type Filter,
  type Image,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, GetParametersCommand } from '@aws-sdk/client-ssm';
import type { RunReport } from '../../src/client';
import type { ListEntry, StatusReport } from '../../src/cli/inspect';
import type { PlanReport } from '../../src/cli/plan';
import type { ScheduleReport } from '../../src/cli/schedule';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, TAG_SOURCE_IMAGE, runIdFor } from '../../src/shared/naming';
import type { FleetProgress, FleetReport } from '../../src/shared/types';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, type E2eStack } from '../helpers/e2e';
import { childrenInFlight } from '../helpers/history';
import { ec2ErrorResponse, type ProxiedRequest } from '../helpers/recordingProxy';

const SRC = 'us-east-1';
const DR1 = 'eu-west-1';
const DR2 = 'eu-central-1';
const KMS_KEY = 'alias/ami-backup-dr';
const FAST_WAIT = { firstCheck: '1s', maxInterval: '2s', timeout: '2m' };

let stack: E2eStack;

/**
 * Each test's instances and the `Fleet` tag they carry (undefined: no Fleet tag at all). Seeded
 * once, in one seedInstances call: moto answers a RunInstances in ~0.1 s, but the look-up of an
 * image to launch from takes seconds, and seedInstances makes it once per call.
 */
const GROUPS = {
  fleet: { count: 25, tag: 'e2e25' },
  untagged: { count: 5, tag: undefined },
  otherTag: { count: 2, tag: 'e2e25-not' },
  targets: { count: 4, tag: 'e2e-targets' },
  retention: { count: 2, tag: 'e2e-retention' },
  schedule: { count: 2, tag: 'e2e-schedule' },
  cancel: { count: 3, tag: 'e2e-cancel' },
  latest: { count: 1, tag: 'e2e-latest' },
  copyLimit: { count: 6, tag: 'e2e-copy-limit' },
} as const;
const seeded = {} as Record<keyof typeof GROUPS, string[]>;

beforeAll(async () => {
  stack = await startE2e();
  const groups = Object.entries(GROUPS) as Array<[keyof typeof GROUPS, { count: number; tag?: string }]>;
  const ids = await seedInstances(stack.ec2(SRC), { count: groups.reduce((n, [, g]) => n + g.count, 0), tags: {}, namePrefix: 'e2e' });
  for (const [name, { count, tag }] of groups) {
    seeded[name] = ids.splice(0, count);
    if (tag) await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: seeded[name], Tags: [{ Key: 'Fleet', Value: tag }] }));
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

// ---------------------------------------------------------------------------------------------
// Looking at moto and Temporal

const tagOf = (image: { Tags?: Array<{ Key?: string; Value?: string }> }, key: string) => image.Tags?.find((t) => t.Key === key)?.Value;

/** Images this account owns in `region` matching every filter (moto's own public AMIs excluded). */
async function ownImages(region: string, filters: Filter[]): Promise<Image[]> {
  const got = await stack.ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }));
  return got.Images ?? [];
}

/** This tool's images of one policy in `region`. */
const policyImages = (region: string, policy: string) => ownImages(region, [{ Name: `tag:${TAG_POLICY}`, Values: [policy] }]);

function byInstance(images: Image[]): Map<string, Image[]> {
  const map = new Map<string, Image[]>();
  for (const image of images) {
    const id = tagOf(image, TAG_INSTANCE_ID) ?? '';
    map.set(id, [...(map.get(id) ?? []), image]);
  }
  return map;
}

const snapshotIdsOf = (image: Image) => (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));

async function snapshotExists(region: string, snapshotId: string): Promise<boolean> {
  try {
    const got = await stack.ec2(region).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    return (got.Snapshots ?? []).some((s) => s.SnapshotId === snapshotId);
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidSnapshot.NotFound') return false;
    throw err;
  }
}

/** SSM parameter values in `region` by name (GetParameters takes 10 names at a time). */
async function parameters(region: string, names: string[]): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (let i = 0; i < names.length; i += 10) {
    const got = await stack.ssm(region).send(new GetParametersCommand({ Names: names.slice(i, i + 10) }));
    for (const p of got.Parameters ?? []) values.set(p.Name!, p.Value!);
  }
  return values;
}

const param = (policy: string, instanceId: string) => `/ami-backup/${policy}/${instanceId}/latest`;

/** A fleet policy over instances tagged Fleet=`tag`. */
function fleetPolicy(name: string, tag: string, extra: object = {}): object {
  return { name, sourceRegion: SRC, targets: { tags: { Fleet: tag } }, copies: [{ region: DR1 }], wait: FAST_WAIT, ...extra };
}

/** `run --policy FILE --wait --json`: the exit code and the report. */
async function runFleet(policyFile: string): Promise<{ code: number | null; report: RunReport; stderr: string }> {
  const run = await stack.cli(['run', '--policy', policyFile, '--wait', '--json', '--poll-interval', '300']);
  let report: RunReport;
  try {
    report = lastJson(run.stdout);
  } catch {
    throw new Error(
      `run printed no JSON report (exit ${run.code}):\n${run.stdout}\n${run.stderr}\nworker:\n${stack.workerLog().slice(-4000)}`,
    );
  }
  return { code: run.code, report, stderr: run.stderr };
}

const sorted = (ids: Iterable<string>) => [...ids].sort();

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The most children a fleet had in flight at once, from its own history. */
async function maxChildrenInFlight(workflowId: string): Promise<{ max: number; started: number; ended: number }> {
  return childrenInFlight((await stack.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []);
}

/** Waits until the wall clock is in a later second than `runId` (run IDs have one-second resolution). */
async function nextSecondAfter(runId: string): Promise<void> {
  while (runIdFor(new Date()) <= runId) await new Promise((r) => setTimeout(r, 100));
}

// ---------------------------------------------------------------------------------------------

test('a fleet of 25 tagged instances: exactly those are backed up, encrypted into two regions, never more than maxConcurrent at once', async () => {
  const policy = 'fleet25';
  const file = stack.writePolicy(
    'fleet25.json',
    fleetPolicy(policy, GROUPS.fleet.tag, {
      copies: [{ region: DR1, kmsKeyId: KMS_KEY }, { region: DR2 }],
      maxConcurrent: 4,
    }),
  );
  const tagged = sorted(seeded.fleet);

  const { code, report, stderr } = await runFleet(file);
  expect(code).toBe(0);
  expect(report).toMatchObject({
    workflowId: `ami-backup/${policy}/fleet`,
    status: 'succeeded',
    counts: { total: 25, succeeded: 25, failed: 0, skipped: 0 },
  });
  expect(sorted(report.instances.map((i) => i.instanceId))).toEqual(tagged);
  for (const i of report.instances) {
    expect(i).toMatchObject({ status: 'succeeded', ssmParameter: param(policy, i.instanceId), deleted: [] });
    expect(i.copies.map((c) => c.region).sort()).toEqual([DR2, DR1].sort());
  }
  expect(stderr).toContain('25 instance(s), 25 succeeded, 0 failed, 0 skipped');
  const result = new Map(report.instances.map((i) => [i.instanceId, i]));

  // Source region: one image per tagged instance, the one the report names; none for the others.
  const sources = byInstance(await policyImages(SRC, policy));
  expect(sorted(sources.keys())).toEqual(tagged);
  for (const [instanceId, images] of sources) {
    expect(images.map((i) => i.ImageId)).toEqual([result.get(instanceId)!.sourceImageId]);
  }
  const bystanders = [...seeded.untagged, ...seeded.otherTag];
  expect(await ownImages(SRC, [{ Name: `tag:${TAG_INSTANCE_ID}`, Values: bystanders }])).toEqual([]);
  expect(stack.proxy.requests.filter((r) => r.action === 'CreateImage' && bystanders.some((id) => r.body.includes(id)))).toEqual([]);

  // Each copy region: one copy per instance, made from its source image, held by its SSM parameter.
  for (const region of [DR1, DR2]) {
    const copies = byInstance(await policyImages(region, policy));
    expect(sorted(copies.keys())).toEqual(tagged);
    const values = await parameters(
      region,
      tagged.map((id) => param(policy, id)),
    );
    for (const [instanceId, images] of copies) {
      const expected = result.get(instanceId)!.copies.find((c) => c.region === region)!.imageId;
      expect(images.map((i) => i.ImageId)).toEqual([expected]);
      expect(tagOf(images[0]!, TAG_SOURCE_IMAGE)).toBe(result.get(instanceId)!.sourceImageId);
      expect(values.get(param(policy, instanceId))).toBe(expected);
    }
  }
  for (const id of bystanders) expect(await parameters(DR1, [param(policy, id)])).toEqual(new Map());

  // What the worker sent (moto ignores encryption): every CopyImage encrypted, with the key where the policy sets one.
  const sourceIds = new Set(report.instances.map((i) => i.sourceImageId!));
  const copyRequests = stack.proxy.requests
    .filter((r) => r.action === 'CopyImage')
    .map((r) => ({ region: r.region, params: new URLSearchParams(r.body) }))
    .filter((r) => sourceIds.has(r.params.get('SourceImageId') ?? ''));
  expect(new Set(copyRequests.map((r) => `${r.region}|${r.params.get('SourceImageId')}`)).size).toBe(50);
  for (const r of copyRequests) {
    expect(r.params.get('Encrypted')).toBe('true');
    expect(r.params.get('ClientToken')).toBeTruthy();
    expect(r.params.get('KmsKeyId')).toBe(r.region === DR1 ? KMS_KEY : null);
  }

  // Temporal: the fleet's own history says no more than 4 children were ever in flight (and 4 were).
  const children = await maxChildrenInFlight(`ami-backup/${policy}/fleet`);
  expect(children).toEqual({ max: 4, started: 25, ended: 25 });
}, 180_000);

test('a policy whose tags match nothing: success with an empty report', async () => {
  const policy = 'nothing';
  const { code, report, stderr } = await runFleet(stack.writePolicy('nothing.json', fleetPolicy(policy, 'matches-nothing')));
  expect(code).toBe(0);
  expect(report).toEqual({
    workflowId: `ami-backup/${policy}/fleet`,
    status: 'succeeded',
    counts: { total: 0, succeeded: 0, failed: 0, skipped: 0 },
    instances: [],
  });
  expect(stderr).toContain('no instance matched instances tagged Fleet=matches-nothing');
  expect(await policyImages(SRC, policy)).toEqual([]);
  expect((await maxChildrenInFlight(`ami-backup/${policy}/fleet`)).started).toBe(0);
});

test('a terminated instance among the targets fails alone, the others are backed up, and the exit code is 1', async () => {
  const policy = 'targets';
  const [gone, ...good] = seeded.targets as [string, ...string[]];
  await stack.ec2(SRC).send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
  const file = stack.writePolicy('targets.json', {
    name: policy,
    sourceRegion: SRC,
    targets: { instanceIds: seeded.targets },
    copies: [{ region: DR1 }],
    wait: FAST_WAIT,
  });

  const { code, report } = await runFleet(file);
  expect(code).toBe(1);
  expect(report).toMatchObject({ status: 'failed', counts: { total: 4, succeeded: 3, failed: 1, skipped: 0 } });
  const failed = report.instances.find((i) => i.instanceId === gone)!;
  expect(failed.status).toBe('failed');
  expect(failed.error).toContain(gone);
  expect(failed.error).toMatch(/terminated/);
  const succeeded = report.instances.filter((i) => i.status === 'succeeded');
  expect(sorted(succeeded.map((i) => i.instanceId))).toEqual(sorted(good));

  const sources = byInstance(await policyImages(SRC, policy));
  const copies = byInstance(await policyImages(DR1, policy));
  expect(sorted(sources.keys())).toEqual(sorted(good));
  expect(sorted(copies.keys())).toEqual(sorted(good));
  for (const i of succeeded) {
    expect(sources.get(i.instanceId)!.map((x) => x.ImageId)).toEqual([i.sourceImageId]);
    expect(copies.get(i.instanceId)!.map((x) => x.ImageId)).toEqual([i.copies[0]!.imageId]);
  }
  expect(stack.proxy.requests.filter((r) => r.action === 'CreateImage' && r.body.includes(gone))).toEqual([]);
});

test('retention keepLast 2 after three runs: two images per region, old snapshots gone, other images untouched; plan foretold it', async () => {
  const policy = 'retention';
  const [first, second] = seeded.retention as [string, string];
  const file = stack.writePolicy(
    'retention.json',
    fleetPolicy(policy, GROUPS.retention.tag, { retention: { keepLast: 2 }, copies: [{ region: DR1, retention: { keepLast: 2 } }] }),
  );

  // Lures, in both regions, for the first instance: an image without our tags, and one of another
  // policy with the same instance-id tag and a run older than any of ours.
  const lureTags = [
    { Key: TAG_POLICY, Value: 'other' },
    { Key: TAG_INSTANCE_ID, Value: first },
    { Key: TAG_RUN, Value: '20000101T000000Z' },
  ];
  const lures: Array<{ region: string; imageId: string }> = [];
  for (const [n, tags] of [
    ['untagged', []],
    ['other-policy', lureTags],
  ] as const) {
    const made = await stack.ec2(SRC).send(new CreateImageCommand({ InstanceId: first, Name: `lure-${n}`, NoReboot: true }));
    if (tags.length > 0) await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: [made.ImageId!], Tags: [...tags] }));
    const copied = await stack
      .ec2(DR1)
      .send(new CopyImageCommand({ SourceRegion: SRC, SourceImageId: made.ImageId!, Name: `lure-${n}-copy` }));
    if (tags.length > 0) await stack.ec2(DR1).send(new CreateTagsCommand({ Resources: [copied.ImageId!], Tags: [...tags] }));
    lures.push({ region: SRC, imageId: made.ImageId! }, { region: DR1, imageId: copied.ImageId! });
  }
  const lureSnapshots: Array<{ region: string; snapshotId: string }> = [];
  for (const region of [SRC, DR1]) {
    const images = await stack
      .ec2(region)
      .send(new DescribeImagesCommand({ ImageIds: lures.filter((l) => l.region === region).map((l) => l.imageId) }));
    lureSnapshots.push(...images.Images!.flatMap(snapshotIdsOf).map((snapshotId) => ({ region, snapshotId })));
  }
  expect(lureSnapshots.filter((s) => s.region === SRC)).toHaveLength(2);
  expect(lureSnapshots.filter((s) => s.region === DR1)).toHaveLength(2);

  const runs: RunReport[] = [];
  const runIds: string[] = [];
  for (let n = 1; n <= 2; n++) {
    if (runIds.length > 0) await nextSecondAfter(runIds[runIds.length - 1]!);
    const { code, report } = await runFleet(file);
    expect(code).toBe(0);
    expect(report.counts).toEqual({ total: 2, succeeded: 2, failed: 0, skipped: 0 });
    expect(report.instances.flatMap((i) => i.deleted)).toEqual([]);
    runs.push(report);
    runIds.push(
      tagOf(
        (await stack.ec2(SRC).send(new DescribeImagesCommand({ ImageIds: [report.instances[0]!.sourceImageId!] }))).Images![0]!,
        TAG_RUN,
      )!,
    );
  }

  // The images of run 1 (each region) and their snapshots: what run 3 must retire.
  const run1Images = runs[0]!.instances.flatMap((i) => [
    { instanceId: i.instanceId, region: SRC, imageId: i.sourceImageId! },
    ...i.copies.map((c) => ({ instanceId: i.instanceId, region: c.region, imageId: c.imageId })),
  ]);
  const run1Snapshots: Array<{ region: string; snapshotId: string }> = [];
  for (const { region, imageId } of run1Images) {
    const image = (await stack.ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0]!;
    for (const snapshotId of snapshotIdsOf(image)) run1Snapshots.push({ region, snapshotId });
  }
  expect(run1Snapshots.filter((s) => s.region === SRC)).toHaveLength(2);
  expect(run1Snapshots.filter((s) => s.region === DR1)).toHaveLength(2);

  // plan, before the third run: the same instances, and run 1's images as the deletions.
  await nextSecondAfter(runIds[1]!);
  const planned = await stack.cli(['plan', '--policy', file, '--json']);
  expect(planned.code).toBe(0);
  const plan = lastJson<PlanReport>(planned.stdout);
  expect(plan.instances).toEqual(sorted([first, second]));
  expect(plan.problems).toEqual([]);

  const third = await runFleet(file);
  expect(third.code).toBe(0);
  const deleted = third.report.instances.flatMap((i) => i.deleted.map((d) => ({ instanceId: i.instanceId, ...d })));
  const key = (d: { region: string; imageId: string }) => `${d.region}|${d.imageId}`;

  // The report lists run 1's images in both regions, with their snapshots; plan listed exactly those.
  expect(sorted(deleted.map(key))).toEqual(sorted(run1Images.map(key)));
  expect(sorted(plan.deletions.map(key))).toEqual(sorted(deleted.map(key)));
  expect(sorted(plan.deletions.map((d) => `${d.instanceId}|${key(d)}`))).toEqual(sorted(deleted.map((d) => `${d.instanceId}|${key(d)}`)));
  expect(sorted(third.report.instances.map((i) => i.instanceId))).toEqual(plan.instances);
  for (const d of deleted) expect(d.runId).toBe(runIds[0]);
  expect(sorted(deleted.flatMap((d) => d.snapshotIds))).toEqual(sorted(run1Snapshots.map((s) => s.snapshotId)));

  // Moto: exactly runs 2 and 3 left, per instance and region; run 1's snapshots gone, run 2's kept.
  const runOf = (report: RunReport, instanceId: string, region: string) => {
    const r = report.instances.find((i) => i.instanceId === instanceId)!;
    return region === SRC ? r.sourceImageId! : r.copies.find((c) => c.region === region)!.imageId;
  };
  for (const region of [SRC, DR1]) {
    const left = byInstance(await policyImages(region, policy));
    expect(sorted(left.keys())).toEqual(sorted([first, second]));
    for (const instanceId of [first, second]) {
      expect(sorted(left.get(instanceId)!.map((i) => i.ImageId!))).toEqual(
        sorted([runOf(runs[1]!, instanceId, region), runOf(third.report, instanceId, region)]),
      );
      for (const image of left.get(instanceId)!) {
        for (const snapshotId of snapshotIdsOf(image)) expect(await snapshotExists(region, snapshotId)).toBe(true);
      }
    }
  }
  for (const { region, snapshotId } of run1Snapshots) expect(await snapshotExists(region, snapshotId)).toBe(false);

  // The lures: still there, with their snapshots.
  for (const { region, imageId } of lures) {
    const image = (await stack.ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    expect(image?.State).toBe('available');
  }
  for (const { region, snapshotId } of lureSnapshots) expect(await snapshotExists(region, snapshotId)).toBe(true);
  expect(stack.proxy.requests.filter((r) => r.action === 'DeregisterImage' && lures.some((l) => r.body.includes(l.imageId)))).toEqual([]);
}, 150_000);

test('a schedule: created, triggered, its fleet run completes through the worker, paused, deleted', async () => {
  const policy = 'scheduled';
  const file = stack.writePolicy('scheduled.json', fleetPolicy(policy, GROUPS.schedule.tag));

  const created = await stack.cli(['schedule', 'create', '--policy', file, '--every', '1h']);
  expect(created.code).toBe(0);
  expect(created.stdout).toContain(`Created schedule ami-backup-${policy}`);

  const triggered = await stack.cli(['schedule', 'trigger', '--name', policy]);
  expect(triggered.code).toBe(0);

  // The run shows in `list` (Temporal visibility) and completes through the worker.
  const listRuns = async () => {
    const listed = await stack.cli(['list', '--name', policy, '--json']);
    expect(listed.code).toBe(0);
    return lastJson<ListEntry[]>(listed.stdout);
  };
  const seen = await until('the triggered run to be listed', async () => (await listRuns())[0], 30_000);
  expect(seen).toMatchObject({ type: 'backupFleet', policy });
  expect(seen.workflowId.startsWith(`ami-backup/${policy}/fleet`)).toBe(true);
  const done = await until(
    'the triggered run to complete',
    async () => (await listRuns()).find((e) => e.workflowId === seen.workflowId && e.status !== 'RUNNING'),
    60_000,
    1_000,
  );
  expect(done.status).toBe('COMPLETED');
  expect(done.instances).toBe('2 (2 ok, 0 failed, 0 skipped)');

  const status = await stack.cli(['status', seen.workflowId, '--json']);
  expect(status.code).toBe(0);
  const result = lastJson<StatusReport>(status.stdout).result as FleetReport;
  expect(result.counts).toEqual({ total: 2, succeeded: 2, failed: 0, skipped: 0 });
  const sources = byInstance(await policyImages(SRC, policy));
  expect(sorted(sources.keys())).toEqual(sorted(seeded.schedule));
  expect(sorted(byInstance(await policyImages(DR1, policy)).keys())).toEqual(sorted(seeded.schedule));
  for (const i of result.instances) expect(sources.get(i.instanceId)!.map((x) => x.ImageId)).toContain(i.sourceImageId);

  const paused = await stack.cli(['schedule', 'pause', '--name', policy]);
  expect(paused.code).toBe(0);
  const described = await stack.cli(['schedule', 'describe', '--name', policy, '--json']);
  expect(described.code).toBe(0);
  expect(lastJson<ScheduleReport>(described.stdout)).toMatchObject({
    scheduleId: `ami-backup-${policy}`,
    policy,
    paused: true,
    nextRuns: [],
  });

  const deleted = await stack.cli(['schedule', 'delete', '--name', policy]);
  expect(deleted.code).toBe(0);
  const gone = await stack.cli(['schedule', 'describe', '--name', policy, '--json']);
  expect(gone.code).toBe(1);
  expect(gone.stderr).toContain(`no schedule ami-backup-${policy}`);
}, 120_000);

test('status shows a running fleet, cancel --wait stops it and its children; unknown and finished runs are refused', async () => {
  const policy = 'cancelled';
  const workflowId = `ami-backup/${policy}/fleet`;
  const file = stack.writePolicy(
    'cancelled.json',
    // Each backup waits 30 s before its first look at the new image: long enough to cancel it there.
    fleetPolicy(policy, GROUPS.cancel.tag, { wait: { firstCheck: '30s', maxInterval: '30s', timeout: '2m' } }),
  );

  const started = await stack.cli(['run', '--policy', file, '--json']);
  expect(started.code).toBe(0);
  expect(lastJson(started.stdout)).toEqual({ workflowId, status: 'running', instances: [] });

  const status = await until(
    'the fleet to be backing up its 3 instances',
    async () => {
      const s = await stack.cli(['status', workflowId, '--json']);
      expect(s.code).toBe(0);
      const report = lastJson<StatusReport>(s.stdout);
      const progress = report.progress as FleetProgress | undefined;
      return progress?.phase === 'backing up' && progress.inFlight.length === 3 ? report : undefined;
    },
    20_000,
  );
  expect(status).toMatchObject({ workflowId, type: 'backupFleet', status: 'RUNNING' });
  expect(status.progress).toMatchObject({ policy, total: 3, succeeded: 0, failed: 0 });
  expect(sorted((status.progress as FleetProgress).inFlight)).toEqual(sorted(seeded.cancel));

  const cancelled = await stack.cli(['cancel', workflowId, '--wait', '--json']);
  expect(cancelled.code).toBe(0);
  expect(lastJson(cancelled.stdout)).toEqual({ workflowId, status: 'CANCELLED', cancelled: true });
  expect((await stack.env.client.workflow.getHandle(workflowId).describe()).status.name).toBe('CANCELLED');
  // Every instance backup it had started is cancelled too (the fleet may end before the last one has).
  for (const instanceId of seeded.cancel) {
    const child = stack.env.client.workflow.getHandle(`ami-backup/${policy}/${instanceId}`);
    await until(
      `${instanceId}'s backup to be cancelled`,
      async () => ((await child.describe()).status.name === 'RUNNING' ? undefined : true),
      10_000,
    );
    expect((await child.describe()).status.name).toBe('CANCELLED');
  }
  // Cancelled mid-wait: no copy was made, no parameter written.
  expect(await policyImages(DR1, policy)).toEqual([]);

  const unknown = await stack.cli(['status', 'ami-backup/no-such-policy/fleet', '--json']);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain('no run with workflow ID "ami-backup/no-such-policy/fleet"');

  const again = await stack.cli(['cancel', workflowId, '--json']);
  expect(again.code).toBe(1);
  expect(lastJson(again.stdout)).toEqual({ workflowId, status: 'CANCELLED', cancelled: false });
  expect(again.stderr).toContain('already ended');
}, 90_000);

test('latest prints only the AMI ID the SSM parameter holds', async () => {
  const policy = 'latest';
  const [instanceId] = seeded.latest as [string];
  const file = stack.writePolicy('latest.json', fleetPolicy(policy, GROUPS.latest.tag, { copies: [{ region: DR1 }, { region: DR2 }] }));
  const { code, report } = await runFleet(file);
  expect(code).toBe(0);

  const latest = await stack.cli(['latest', '--policy', file, '--instance', instanceId, '--region', DR1]);
  expect(latest.code).toBe(0);
  expect(latest.stdout).toMatch(/^ami-[0-9a-f]+\n$/);
  const value = (await stack.ssm(DR1).send(new GetParameterCommand({ Name: param(policy, instanceId) }))).Parameter!.Value;
  expect(latest.stdout.trim()).toBe(value);
  expect(value).toBe(report.instances[0]!.copies.find((c) => c.region === DR1)!.imageId);
  expect(latest.stderr).toContain(`${DR1}: ${value}`);
});

test('copies in flight never exceed maxConcurrentCopies per region, and ResourceLimitExceeded only delays a copy', async () => {
  const policy = 'copy-limit';
  const file = stack.writePolicy(
    'copy-limit.json',
    fleetPolicy(policy, GROUPS.copyLimit.tag, { copies: [{ region: DR1 }, { region: DR2 }], maxConcurrent: 6, maxConcurrentCopies: 2 }),
  );
  // AWS refuses the first two copies into DR1 as if other copies were in flight there.
  let refusals = 2;
  const refused: ProxiedRequest[] = [];
  stack.proxy.inject = (x) => {
    if (x.action !== 'CopyImage' || x.region !== DR1 || refusals === 0 || !x.body.includes(`Name=${policy}-`)) return undefined;
    refusals -= 1;
    refused.push(x);
    return ec2ErrorResponse('ResourceLimitExceeded', 'Too many snapshot copies in progress. The limit is 2 for this destination region.');
  };
  const since = stack.proxy.requests.length;
  let run;
  try {
    run = await runFleet(file);
  } finally {
    stack.proxy.inject = undefined;
  }
  expect(run.code).toBe(0);
  expect(run.report.counts).toEqual({ total: 6, succeeded: 6, failed: 0, skipped: 0 });
  expect(refused).toHaveLength(2);

  // Each copy is in flight from its CopyImage request to the first answer that says it is available.
  const exchanges = stack.proxy.requests.slice(since);
  const sourceIds = new Set(run.report.instances.map((i) => i.sourceImageId!));
  for (const region of [DR1, DR2]) {
    const intervals = exchanges
      .filter((x) => x.action === 'CopyImage' && x.region === region && !x.injected && x.status === 200)
      .filter((x) => sourceIds.has(new URLSearchParams(x.body).get('SourceImageId') ?? ''))
      .map((x) => {
        const imageId = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(x.response ?? '')![1]!;
        const available = exchanges.find(
          (d) =>
            d.action === 'DescribeImages' &&
            d.region === region &&
            d.sentAt >= x.sentAt &&
            new URLSearchParams(d.body).get('ImageId.1') === imageId &&
            /<imageState>available<\/imageState>/.test(d.response ?? ''),
        );
        expect(available).toBeDefined();
        return { start: x.sentAt, end: available!.answeredAt! };
      });
    expect(intervals).toHaveLength(6);
    const points = intervals.flatMap((i) => [
      { t: i.start, d: 1 },
      { t: i.end, d: -1 },
    ]);
    // Ends before starts at the same millisecond: a slot is released only after its copy was seen available.
    points.sort((a, b) => a.t - b.t || a.d - b.d);
    let now = 0;
    let max = 0;
    for (const p of points) max = Math.max(max, (now += p.d));
    expect({ region, max }).toEqual({ region, max: 2 });
  }

  // The refused copies were tried again and made: one copy per instance in each region.
  for (const region of [DR1, DR2]) expect(sorted(byInstance(await policyImages(region, policy)).keys())).toEqual(sorted(seeded.copyLimit));
  const refusedSources = refused.map((x) => new URLSearchParams(x.body).get('SourceImageId'));
  for (const sourceImageId of refusedSources) {
    expect(
      exchanges.some(
        (x) =>
          x.action === 'CopyImage' && !x.injected && x.status === 200 && new URLSearchParams(x.body).get('SourceImageId') === sourceImageId,
      ),
    ).toBe(true);
  }
}, 120_000);
