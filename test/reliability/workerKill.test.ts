/**
 * Reliability: the worker killed (SIGKILL) in the middle of each step of a fleet run of 10
 * instances, a new worker started, and the run completes with exactly one source image and one
 * copy per region per instance in moto, and the SSM parameters pointing at those copies.
 *
 * The kill comes at the right moment by watching the proxy: the first request of the step's AWS
 * action is held, the worker is killed while AWS "works on it", then the request is let through
 * (AWS did the work; nobody hears the answer). The activity's 30 s start-to-close timeout (the
 * retention heartbeat timeout for retention) hands it to the new worker.
 *
 * One stack for the file; each test has its own policy name and its own 10 instances.
 */
import { CreateTagsCommand, DescribeImagesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { GetParametersCommand } from '@aws-sdk/client-ssm';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, TAG_SOURCE_IMAGE, runIdFor } from '../../src/shared/naming';
import { seedInstances } from '../../scripts/seed';
import { backupImagesByInstance, runPolicy, startE2e, type E2eStack } from '../helpers/e2e';
import { holdFirst, imagesCreated } from '../helpers/faultProxy';
import type { ProxiedRequest } from '../helpers/recordingProxy';

const SRC = 'us-east-1';
const DR1 = 'eu-west-1';
const DR2 = 'eu-central-1';
const FLEET = 10;
const STEPS = ['create', 'wait', 'copy', 'ssm', 'retention'] as const;
type Step = (typeof STEPS)[number];

let stack: E2eStack;
const seeded = {} as Record<Step, string[]>;
const durations: Record<string, number> = {};

beforeAll(async () => {
  stack = await startE2e();
  const ids = await seedInstances(stack.ec2(SRC), { count: FLEET * STEPS.length, tags: {}, namePrefix: 'kill' });
  for (const step of STEPS) {
    seeded[step] = ids.splice(0, FLEET);
    await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: seeded[step], Tags: [{ Key: 'Fleet', Value: `kill-${step}` }] }));
  }
}, 180_000);

afterAll(async () => {
  console.log(`worker-kill durations (ms): ${JSON.stringify(durations)}`);
  await stack?.stop();
}, 60_000);

const sorted = (ids: Iterable<string>) => [...ids].sort();
const paramsOf = (x: ProxiedRequest) => new URLSearchParams(x.body);

function policyFile(step: Step): { name: string; file: string } {
  const name = `kill-${step}`;
  const retention = step === 'retention' ? { retention: { keepLast: 1 } } : {};
  const file = stack.writePolicy(`${name}.json`, {
    name,
    sourceRegion: SRC,
    targets: { tags: { Fleet: name } },
    copies: [
      { region: DR1, ...retention },
      { region: DR2, ...retention },
    ],
    ...retention,
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '5m' },
  });
  return { name, file };
}

/** Runs the fleet, kills the worker when `match` first sees its request, lets that request through, starts a new worker. */
async function runAndKill(step: Step, match: (x: ProxiedRequest) => boolean) {
  const { name, file } = policyFile(step);
  const hold = holdFirst(match);
  stack.proxy.intercept = hold.intercept;
  const started = Date.now();
  try {
    const run = runPolicy(stack, file);
    const held = await Promise.race([
      hold.seen,
      run.then((r) => {
        throw new Error(`the run ended before the ${step} step was seen: ${JSON.stringify(r.report)}`);
      }),
    ]);
    await stack.killWorker('SIGKILL');
    const killedAt = Date.now();
    hold.release('forward'); // AWS does the work; the killed worker never hears the answer
    await stack.startWorker();
    const result = await run;
    durations[step] = Date.now() - started;
    return { ...result, name, held, killedAt, recoveredMs: Date.now() - killedAt };
  } finally {
    stack.proxy.intercept = undefined;
  }
}

/** Exactly one source image and one copy per region per instance for `runId`, as the report says, tagged; SSM holds the copies. */
async function expectExactlyOneBackupEach(name: string, instanceIds: string[], report: Awaited<ReturnType<typeof runPolicy>>['report']) {
  expect(report.status).toBe('succeeded');
  expect(sorted(report.instances.map((i) => i.instanceId))).toEqual(sorted(instanceIds));
  const byId = new Map(report.instances.map((i) => [i.instanceId, i]));
  const runIds = new Set<string>();
  for (const region of [SRC, DR1, DR2]) {
    const images = await backupImagesByInstance(stack, region, name);
    expect(sorted(images.keys())).toEqual(sorted(instanceIds));
    for (const [instanceId, found] of images) {
      const result = byId.get(instanceId)!;
      const expected = region === SRC ? result.sourceImageId : result.copies.find((c) => c.region === region)?.imageId;
      // Only this run's images are left (retention keeps 1): one image, the reported one.
      expect({ instanceId, region, images: found.map((i) => i.imageId) }).toEqual({ instanceId, region, images: [expected] });
      const [image] = found;
      expect(image!.tags).toMatchObject({ [TAG_POLICY]: name, [TAG_INSTANCE_ID]: instanceId, [TAG_RUN]: image!.runId });
      if (region !== SRC) expect(image!.tags[TAG_SOURCE_IMAGE]).toBe(result.sourceImageId);
      runIds.add(image!.runId);
    }
    if (region === SRC) continue;
    const got = await Promise.all(
      [0, 1].map((page) =>
        stack
          .ssm(region)
          .send(
            new GetParametersCommand({ Names: instanceIds.slice(page * 5, page * 5 + 5).map((id) => `/ami-backup/${name}/${id}/latest`) }),
          ),
      ),
    );
    const values = new Map(got.flatMap((g) => g.Parameters ?? []).map((p) => [p.Name!, p.Value!]));
    for (const instanceId of instanceIds) {
      expect(values.get(`/ami-backup/${name}/${instanceId}/latest`)).toBe(
        byId.get(instanceId)!.copies.find((c) => c.region === region)!.imageId,
      );
    }
  }
  expect(runIds.size).toBe(1);
}

/** A request of this policy's backups: an AMI name in EC2's query, or an SSM parameter name in SSM's JSON. */
const ofPolicy = (name: string) => (x: ProxiedRequest) => x.body.includes(`${name}-i-`) || x.body.includes(`"/ami-backup/${name}/`);

test('killed during createImage: the retry finds the image the dead worker asked for; one image per instance and region', async () => {
  const name = 'kill-create';
  const { code, report, held } = await runAndKill('create', (x) => x.action === 'CreateImage' && ofPolicy(name)(x));
  expect(held.action).toBe('CreateImage');
  expect(code).toBe(0);
  await expectExactlyOneBackupEach(name, seeded.create, report);
  // The held CreateImage reached AWS; the retry asked for no second image of that instance.
  const heldName = paramsOf(held).get('Name');
  expect(
    stack.proxy.requests.filter((x) => x.action === 'CreateImage' && paramsOf(x).get('Name') === heldName && !x.injected),
  ).toHaveLength(1);
}, 240_000);

test('killed while waiting (a DescribeImages poll): the new worker polls on; one image per instance and region', async () => {
  const name = 'kill-wait';
  const ours = (x: ProxiedRequest) => x.action === 'CreateImage' && ofPolicy(name)(x);
  const { code, report, held } = await runAndKill(
    'wait',
    (x) => x.action === 'DescribeImages' && imagesCreated(stack.proxy.requests.filter(ours)).has(paramsOf(x).get('ImageId.1') ?? ''),
  );
  expect(held.action).toBe('DescribeImages');
  expect(code).toBe(0);
  await expectExactlyOneBackupEach(name, seeded.wait, report);
}, 240_000);

test('killed during copyImage: the retry finds the copy the dead worker asked for (ClientToken); one copy per region', async () => {
  const name = 'kill-copy';
  const { code, report, held } = await runAndKill('copy', (x) => x.action === 'CopyImage' && ofPolicy(name)(x));
  expect(code).toBe(0);
  await expectExactlyOneBackupEach(name, seeded.copy, report);
  // The held CopyImage reached moto (which ignores ClientToken and the copy's TagSpecifications):
  // the retry found that copy by its name and asked for no second one.
  const token = paramsOf(held).get('ClientToken');
  expect(stack.proxy.requests.filter((x) => x.action === 'CopyImage' && paramsOf(x).get('ClientToken') === token)).toHaveLength(1);
}, 240_000);

test('killed during setSsmParam (PutParameter): the retry leaves the parameter on the right copy', async () => {
  const name = 'kill-ssm';
  const { code, report, held } = await runAndKill('ssm', (x) => x.action === 'PutParameter' && ofPolicy(name)(x));
  expect(held.action).toBe('PutParameter');
  expect(code).toBe(0);
  await expectExactlyOneBackupEach(name, seeded.ssm, report);
}, 240_000);

test('killed during retention (DeregisterImage): the retry finishes retiring the earlier run; one backup left per region', async () => {
  const { name, file } = policyFile('retention');
  const first = await runPolicy(stack, file);
  expect(first.code).toBe(0);
  const firstIds = first.report.instances.flatMap((i) => [i.sourceImageId!, ...i.copies.map((c) => c.imageId)]);
  expect(firstIds).toHaveLength(FLEET * 3);
  // Run IDs have one-second resolution: the second run must be in a later second.
  const firstRun = runIdFor(new Date());
  while (runIdFor(new Date()) <= firstRun) await new Promise((r) => setTimeout(r, 100));

  const { code, report, held, killedAt } = await runAndKill(
    'retention',
    (x) => x.action === 'DeregisterImage' && firstIds.includes(paramsOf(x).get('ImageId') ?? ''),
  );
  expect(held.action).toBe('DeregisterImage');
  expect(code).toBe(0);
  await expectExactlyOneBackupEach(name, seeded.retention, report);
  // The first run's images are gone (expectExactlyOneBackupEach). The report names those the new
  // worker retired: every earlier image but those the dead worker had asked EC2 to deregister
  // before the kill (the held one, and any that other instances' retention activities, running at
  // the same time, got to between the hold and the SIGKILL).
  const deleted = new Set(report.instances.flatMap((i) => i.deleted.map((d) => d.imageId)));
  for (const id of deleted) expect(firstIds).toContain(id);
  const byDeadWorker = new Set(
    stack.proxy.requests
      .filter((x) => x.action === 'DeregisterImage' && x.sentAt <= killedAt)
      .map((x) => paramsOf(x).get('ImageId') ?? '')
      .filter((id) => firstIds.includes(id)),
  );
  expect(byDeadWorker).toContain(paramsOf(held).get('ImageId'));
  expect(firstIds.filter((id) => !deleted.has(id) && !byDeadWorker.has(id))).toEqual([]);
  // Snapshots the dead worker's deregistrations left behind: retention's orphan sweep takes them once they are an hour old.
  let orphans = 0;
  for (const region of [SRC, DR1, DR2]) {
    const snaps = await stack
      .ec2(region)
      .send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${TAG_POLICY}`, Values: [name] }] }));
    const images = await stack.ec2(region).send(new DescribeImagesCommand({ Owners: ['self'] }));
    const referenced = new Set((images.Images ?? []).flatMap((i) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId)));
    orphans += (snaps.Snapshots ?? []).filter((s) => !referenced.has(s.SnapshotId)).length;
  }
  console.log(
    `retention kill: ${deleted.size} of ${firstIds.length} earlier images in the report, ${byDeadWorker.size} deregistered by the dead worker, ${orphans} orphan snapshot(s) left for the hourly sweep`,
  );
  // Only an image the dead worker deregistered can leave snapshots behind (one per image here).
  expect(orphans).toBeLessThanOrEqual(byDeadWorker.size);
}, 300_000);
