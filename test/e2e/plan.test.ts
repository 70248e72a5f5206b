/**
 * `ami-backup plan` and `ami-backup latest` against moto, through main() in-process. Backups are
 * made the way the tool makes them: the real createImage / tagSnapshots / copyImage / setSsmParam
 * activities. The agreement test then runs the real applyRetention as the workflow would after a
 * fourth run and checks it deletes exactly what plan listed.
 *
 * Each test has a policy name and a target tag value of its own, so tests never see each other's
 * instances or images in the one moto server they share.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CreateImageCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { createAwsClients, type AwsClients } from '../../src/activities/aws';
import { copyImage } from '../../src/activities/copyImage';
import { createImage } from '../../src/activities/createImage';
import { ORPHAN_MIN_AGE_MS, ORPHAN_REASON, applyRetention } from '../../src/activities/retention';
import { setSsmParam } from '../../src/activities/setSsmParam';
import { tagSnapshots } from '../../src/activities/tagSnapshots';
import type { LatestReport } from '../../src/cli/latest';
import type { PlanReport, PlannedDeletion } from '../../src/cli/plan';
import { lastJson } from '../helpers/e2e';
import { cliInProcess } from '../helpers/cliInProcess';
import { DEFAULT_SSM_PARAMETER } from '../../src/policy';
import { TAG_SOURCE_IMAGE, backupTags, runIdFor, ssmParameterName } from '../../src/shared/naming';
import type { DeletedImage, RetentionRule } from '../../src/shared/types';
import { seedInstances } from '../../scripts/seed';
import { startMoto, type Moto } from '../../scripts/stack';
import { useMoto } from '../helpers/aws';

const SRC = 'us-east-1';
const DR = 'eu-west-1';
const DR2 = 'us-west-2';
const RUNS = ['20261101T030000Z', '20261102T030000Z', '20261103T030000Z'] as const;
const DAY = 86_400_000;

const ENV_KEYS = ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'AWS_PROFILE'];
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

let moto: Moto;
let aws: AwsClients;
let dir: string;
const ec2Clients = new Map<string, EC2Client>();
const ssmClients = new Map<string, SSMClient>();

function ec2(region: string): EC2Client {
  let client = ec2Clients.get(region);
  if (!client) ec2Clients.set(region, (client = new EC2Client({ region })));
  return client;
}

function ssm(region: string): SSMClient {
  let client = ssmClients.get(region);
  if (!client) ssmClients.set(region, (client = new SSMClient({ region })));
  return client;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-plan-'));
  moto = await startMoto();
  useMoto(moto.endpoint);
  aws = createAwsClients();
});

afterAll(async () => {
  for (const c of [...ec2Clients.values(), ...ssmClients.values()]) c.destroy();
  for (const region of [SRC, DR, DR2]) {
    aws?.ec2(region).destroy();
    aws?.ssm(region).destroy();
  }
  await moto?.stop();
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let unique = 0;
/** A name no other test uses (policy names and tag values). */
const fresh = (prefix: string) => `${prefix}-${process.pid}-${++unique}`;

const cli = cliInProcess;

interface PolicyBody {
  name: string;
  sourceRegion: string;
  targets: { tags?: Record<string, string>; instanceIds?: string[] };
  copies: Array<{ region: string; retention?: RetentionRule }>;
  retention?: RetentionRule;
  [key: string]: unknown;
}

function writePolicy(body: PolicyBody | Record<string, unknown>): string {
  const file = path.join(dir, `${fresh('policy')}.json`);
  writeFileSync(file, JSON.stringify(body, null, 2));
  return file;
}

const parameterOf = (policy: string, instanceId: string) =>
  ssmParameterName(DEFAULT_SSM_PARAMETER, { policy, instanceId, sourceRegion: SRC });

interface Backup {
  runId: string;
  /** Image ID by region (the source and every copy). */
  images: Record<string, string>;
}

/** One backup of an instance, step by step as backupInstance does it, with the real activities. */
async function backup(policy: string, instanceId: string, runId: string, copyRegions: string[]): Promise<Backup> {
  const created = await createImage(aws, { policy, region: SRC, instanceId, runId, noReboot: true });
  const tags = backupTags({ policy, instanceId, runId, instanceName: created.instanceName });
  await tagSnapshots(aws, { region: SRC, imageId: created.imageId, tags });
  const images: Record<string, string> = { [SRC]: created.imageId };
  for (const region of copyRegions) {
    const copyTags = [...tags, { Key: TAG_SOURCE_IMAGE, Value: created.imageId }];
    const copied = await copyImage(aws, {
      policy,
      instanceId,
      runId,
      sourceRegion: SRC,
      sourceImageId: created.imageId,
      region,
      name: created.name,
      tags: copyTags,
    });
    await tagSnapshots(aws, { region, imageId: copied.imageId, tags: copyTags });
    await setSsmParam(aws, { region, name: parameterOf(policy, instanceId), imageId: copied.imageId, runId, instanceId, policy });
    images[region] = copied.imageId;
  }
  return { runId, images };
}

async function snapshotsOf(region: string, imageId: string): Promise<string[]> {
  const image = (await ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0]!;
  return (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : [])).sort();
}

/** Every image and snapshot this account owns, per region: what "changes nothing" is measured by. */
async function inventory(regions: string[]): Promise<Record<string, { images: string[]; snapshots: string[] }>> {
  const result: Record<string, { images: string[]; snapshots: string[] }> = {};
  for (const region of regions) {
    const images = await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'] }));
    const snapshots = await ec2(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    result[region] = {
      images: (images.Images ?? []).map((i) => `${i.ImageId}:${i.State}`).sort(),
      snapshots: (snapshots.Snapshots ?? []).map((s) => s.SnapshotId!).sort(),
    };
  }
  return result;
}

async function parameterValue(region: string, name: string): Promise<string | undefined> {
  try {
    return (await ssm(region).send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch {
    return undefined;
  }
}

/** A deletion as plan and applyRetention both describe it, comparable. */
const key = (d: { region: string; imageId: string; runId?: string; reason: string; snapshotIds: string[] }, instanceId: string) =>
  JSON.stringify([instanceId, d.region, d.imageId, d.runId ?? null, d.reason, [...d.snapshotIds].sort()]);

/**
 * A policy with keepLast 2 in the source region and in the copy region, two tagged instances with
 * three backups each (RUNS), and images that must never be listed: one untagged, one of another
 * policy (both of the first instance).
 */
async function keepLastScene() {
  const name = fresh('plan');
  const tag = fresh('backup');
  const seeded = await seedInstances(ec2(SRC), { count: 2, tags: { PlanTest: tag }, namePrefix: 'app' });
  const nameOf = new Map(seeded.map((id, i) => [id, `app-${i + 1}`]));
  const instances = [...seeded].sort();
  const backups: Record<string, Backup[]> = {};
  for (const instanceId of instances) {
    backups[instanceId] = [];
    for (const runId of RUNS) backups[instanceId].push(await backup(name, instanceId, runId, [DR]));
  }
  const first = instances[0]!;
  const { ImageId: untagged } = await ec2(SRC).send(new CreateImageCommand({ InstanceId: first, Name: fresh('untagged'), NoReboot: true }));
  const otherPolicy = await backup(fresh('other'), first, RUNS[0], [DR]);
  const file = writePolicy({
    name,
    sourceRegion: SRC,
    targets: { tags: { PlanTest: tag } },
    copies: [{ region: DR, retention: { keepLast: 2 } }],
    retention: { keepLast: 2 },
  });
  return { name, file, instances, nameOf, backups, strangers: [untagged!, ...Object.values(otherPolicy.images)] };
}

describe('plan --help', () => {
  it('has help with examples and exit codes', async () => {
    const r = await cli(['plan', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('ami-backup plan --policy');
    expect(r.stdout).toContain('Exit codes:');
  });
});

describe('plan: instances', () => {
  it('lists exactly the tagged running and stopped instances: not untagged, not terminated', async () => {
    const tag = fresh('fleet');
    const [running, stopped, terminated] = await seedInstances(ec2(SRC), { count: 3, tags: { PlanFleet: tag } });
    const [untagged] = await seedInstances(ec2(SRC), { count: 1, tags: { PlanFleet: `${tag}-not` } });
    await ec2(SRC).send(new StopInstancesCommand({ InstanceIds: [stopped!] }));
    await ec2(SRC).send(new TerminateInstancesCommand({ InstanceIds: [terminated!] }));
    const file = writePolicy({ name: fresh('fleet'), sourceRegion: SRC, targets: { tags: { PlanFleet: tag } }, copies: [{ region: DR }] });

    const json = await cli(['plan', '--policy', file, '--json']);
    expect(json.stderr).not.toMatch(/ami-backup: /);
    expect(json.code).toBe(0);
    const report = lastJson<PlanReport>(json.stdout);
    expect(report.instances).toEqual([running!, stopped!].sort());
    expect(report.instances).not.toContain(untagged);
    expect(report.problems).toEqual([]);
    expect(report.deletions).toEqual([]);

    const human = await cli(['plan', '--policy', file]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`${SRC} → ${DR}`);
    expect(human.stdout).toContain('Nothing was changed');
    expect(human.stdout).toContain('Instances a run would back up (2):');
    expect(human.stdout).toContain(running);
    expect(human.stdout).toContain(stopped);
    expect(human.stdout).not.toContain(terminated);
    expect(human.stdout).toContain('the policy has no retention rule');
  });

  it('reports listed instances that do not exist or are terminated as problems', async () => {
    const [alive, terminated] = await seedInstances(ec2(SRC), { count: 2, tags: {} });
    await ec2(SRC).send(new TerminateInstancesCommand({ InstanceIds: [terminated!] }));
    const missing = 'i-0123456789abcdef0';
    const file = writePolicy({
      name: fresh('listed'),
      sourceRegion: SRC,
      targets: { instanceIds: [alive!, terminated!, missing] },
      copies: [{ region: DR }],
    });

    const r = await cli(['plan', '--policy', file, '--json']);
    expect(r.code).toBe(0);
    const report = lastJson<PlanReport>(r.stdout);
    expect(report.instances).toEqual([alive]);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        { instanceId: missing, reason: expect.stringMatching(/^does not exist in us-east-1/) },
        { instanceId: terminated, reason: expect.stringMatching(/^is terminated/) },
      ]),
    );
    expect(report.problems).toHaveLength(2);
    // Human lines go to stderr under --json; stdout ends with the JSON object.
    expect(r.stderr).toContain(`${missing} does not exist in us-east-1`);
    expect(r.stderr).toContain(`${terminated} is terminated`);
  });
});

describe('plan: retention', () => {
  it('keepLast 2 with three runs: the oldest two in every region (the new image counts as one kept); never strangers; changes nothing', async () => {
    const { name, file, instances, nameOf, backups, strangers } = await keepLastScene();
    const before = await inventory([SRC, DR]);
    const parametersBefore = await Promise.all(instances.map((i) => parameterValue(DR, parameterOf(name, i))));

    const r = await cli(['plan', '--policy', file, '--json']);
    expect(r.code).toBe(0);
    const report = lastJson<PlanReport>(r.stdout);

    // --json shape
    expect(Object.keys(report).sort()).toEqual(['deletions', 'instances', 'policy', 'problems', 'sourceRegion']);
    expect(report).toMatchObject({ policy: name, sourceRegion: SRC, instances, problems: [] });
    for (const d of report.deletions) {
      expect(Object.keys(d).sort()).toEqual(['imageId', 'instanceId', 'reason', 'region', 'runId', 'snapshotIds']);
    }

    const expected: string[] = [];
    for (const instanceId of instances) {
      for (const region of [SRC, DR]) {
        for (const b of backups[instanceId]!.slice(0, 2)) {
          const imageId = b.images[region]!;
          const snapshotIds = await snapshotsOf(region, imageId);
          expect(snapshotIds.length).toBeGreaterThan(0);
          expected.push(key({ region, imageId, runId: b.runId, reason: 'beyond keepLast 2', snapshotIds }, instanceId));
        }
      }
    }
    expect(report.deletions.map((d) => key(d, d.instanceId)).sort()).toEqual(expected.sort());
    // Grouped by instance and region, oldest first.
    expect(report.deletions.map((d) => [d.instanceId, d.region, d.runId])).toEqual(
      instances.flatMap((i) => [SRC, DR].flatMap((region) => RUNS.slice(0, 2).map((run) => [i, region, run]))),
    );
    const listed = new Set(report.deletions.map((d) => d.imageId));
    for (const stranger of strangers) expect(listed.has(stranger)).toBe(false);
    for (const instanceId of instances) expect(listed.has(backups[instanceId]![2]!.images[SRC]!)).toBe(false);

    const human = await cli(['plan', '--policy', file]);
    expect(human.code).toBe(0);
    expect(human.stderr).toBe('');
    const text = human.stdout;
    expect(text).toContain(`Plan for policy ${name}: ${SRC} → ${DR}`);
    expect(text).toContain('Nothing was changed');
    expect(text).toContain(`Retention: ${SRC} keep last 2; ${DR} keep last 2`);
    for (const instanceId of instances) {
      expect(text).toContain(`  ${instanceId}  ${nameOf.get(instanceId)}\n`);
      expect(text).toContain(`  ${instanceId} (${nameOf.get(instanceId)})\n`);
    }
    const oldest = backups[instances[0]!]![0]!;
    expect(text).toMatch(new RegExp(`${oldest.images[DR]}  run ${RUNS[0]}  age \\d+d \\d+h  beyond keepLast 2  \\d+ snapshots?`));
    expect(text).toContain('Total: 2 instances to back up, 0 problems; 8 images and');
    expect(text).toContain('(2 instances, 2 regions). Nothing was changed.');

    expect(await inventory([SRC, DR])).toEqual(before);
    expect(await Promise.all(instances.map((i) => parameterValue(DR, parameterOf(name, i))))).toEqual(parametersBefore);
  });

  it("agrees exactly with what the next run's applyRetention deletes, SSM parameters included", async () => {
    const { name, file, instances, backups } = await keepLastScene();
    const [pinnedOne, plain] = instances as [string, string];
    const parameter = parameterOf(name, pinnedOne);
    // The source region's parameter (if any) is read by the run and protects its image: pin the oldest.
    await ssm(SRC).send(
      new PutParameterCommand({ Name: parameter, Value: backups[pinnedOne]![0]!.images[SRC], Type: 'String', Overwrite: true }),
    );
    // In the copy region the run repoints the parameter to its new copy before retention: pinning
    // the oldest copy now protects nothing.
    await ssm(DR).send(
      new PutParameterCommand({ Name: parameter, Value: backups[pinnedOne]![0]!.images[DR], Type: 'String', Overwrite: true }),
    );
    // An image deregistered by hand leaves its tagged snapshots behind: the run deletes those "orphans" too.
    await ec2(DR).send(new DeregisterImageCommand({ ImageId: backups[plain]![0]!.images[DR] }));

    // Plan for a run an hour from now: the orphaned snapshots are then old enough to go (ORPHAN_MIN_AGE_MS).
    const at = Date.now() + ORPHAN_MIN_AGE_MS;
    const r = await cli(['plan', '--policy', file, '--json', '--at', new Date(at).toISOString()]);
    expect(r.code).toBe(0);
    const planned = lastJson<PlanReport>(r.stdout).deletions;
    const runsOf = (instanceId: string, region: string) =>
      planned.filter((d) => d.instanceId === instanceId && d.region === region).map((d) => d.runId);
    expect(runsOf(pinnedOne, SRC)).toEqual([RUNS[1]]);
    expect(runsOf(pinnedOne, DR)).toEqual([RUNS[0], RUNS[1]]);
    expect(runsOf(plain, SRC)).toEqual([RUNS[0], RUNS[1]]);
    expect(planned.filter((d) => d.instanceId === plain && d.region === DR).map((d) => [d.runId, d.reason])).toEqual([
      [RUNS[1], 'beyond keepLast 2'],
      [RUNS[0], ORPHAN_REASON],
    ]);

    // The fourth run, as backupInstance does it: back up, point the parameter at the new copy,
    // then retention in every region with a rule, protecting the image just made there.
    const runId = runIdFor(new Date());
    const deleted: string[] = [];
    for (const instanceId of instances) {
      const fourth = await backup(name, instanceId, runId, [DR]);
      expect(await parameterValue(DR, parameterOf(name, instanceId))).toBe(fourth.images[DR]);
      for (const region of [SRC, DR]) {
        const out = await applyRetention(aws, {
          policy: name,
          instanceId,
          region,
          rule: { keepLast: 2 },
          protect: [fourth.images[region]!],
          ssmParameter: parameterOf(name, instanceId),
          nowMs: at,
        });
        deleted.push(...out.deleted.map((d: DeletedImage) => key(d, instanceId)));
      }
    }
    expect(deleted.length).toBe(7);
    expect(deleted.sort()).toEqual(planned.map((d: PlannedDeletion) => key(d, d.instanceId)).sort());
  });

  it('maxAge: lists the images older than maxAge, and only in the regions with a rule', async () => {
    const name = fresh('age');
    const tag = fresh('aged');
    const [instanceId] = await seedInstances(ec2(SRC), { count: 1, tags: { PlanAge: tag } });
    const now = Date.now();
    const runs = [10, 5, 1].map((days) => runIdFor(new Date(now - days * DAY)));
    const made: Backup[] = [];
    for (const runId of runs) made.push(await backup(name, instanceId!, runId, [DR]));
    const file = writePolicy({
      name,
      sourceRegion: SRC,
      targets: { tags: { PlanAge: tag } },
      copies: [{ region: DR }],
      retention: { maxAge: '7d' },
    });

    const r = await cli(['plan', '--policy', file, '--json']);
    expect(r.code).toBe(0);
    const report = lastJson<PlanReport>(r.stdout);
    expect(report.deletions).toEqual([
      {
        instanceId,
        region: SRC,
        imageId: made[0]!.images[SRC],
        runId: runs[0],
        reason: 'older than maxAge 7d',
        snapshotIds: await snapshotsOf(SRC, made[0]!.images[SRC]!),
      },
    ]);
    expect(r.stderr).toContain(`Retention: ${SRC} max age 7d; ${DR} none`);
  });
});

describe('plan: failures', () => {
  it('a bad policy is exit 2, with every problem, and nothing is called', async () => {
    const file = writePolicy({ name: 'Bad Name', sourceRegion: SRC, targets: { tags: { A: 'b' } }, copies: [{ region: DR }], extra: 1 });
    const r = await cli(['plan', '--policy', file, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('is not a valid policy');
    expect(r.stderr).toContain('name:');
    expect(r.stderr).toContain('extra: unknown field');

    expect((await cli(['plan'])).code).toBe(2);
    expect((await cli(['plan', '--policy', path.join(dir, 'missing.yaml')])).code).toBe(2);
    const good = writePolicy({ name: fresh('at'), sourceRegion: SRC, targets: { tags: { A: 'b' } }, copies: [{ region: DR }] });
    const badAt = await cli(['plan', '--policy', good, '--at', 'tomorrow']);
    expect(badAt.code).toBe(2);
    expect(badAt.stderr).toContain('--at "tomorrow" is not a time');
  });

  it('AWS unreachable is exit 1 with a message naming the operation and region, not a stack', async () => {
    const file = writePolicy({ name: fresh('down'), sourceRegion: SRC, targets: { tags: { A: 'b' } }, copies: [{ region: DR }] });
    const endpoint = process.env.AWS_ENDPOINT_URL;
    process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9';
    try {
      const r = await cli(['plan', '--policy', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`ami-backup: ec2:DescribeInstances failed (region ${SRC})`);
      expect(r.stderr).toContain('your own AWS credentials');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      process.env.AWS_ENDPOINT_URL = endpoint;
    }
  });
});

describe('latest', () => {
  let name: string;
  let file: string;
  let instanceId: string;
  let never: string;
  let newest: Backup;

  beforeAll(async () => {
    name = fresh('latest');
    [instanceId, never] = (await seedInstances(ec2(SRC), { count: 2, tags: {} })) as [string, string];
    await backup(name, instanceId, RUNS[0], [DR, DR2]);
    newest = await backup(name, instanceId, RUNS[1], [DR, DR2]);
    file = writePolicy({
      name,
      sourceRegion: SRC,
      targets: { instanceIds: [instanceId, never] },
      copies: [{ region: DR }, { region: DR2 }],
    });
  });

  it('has help with examples and exit codes', async () => {
    const r = await cli(['latest', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('--image-id "$(ami-backup latest');
    expect(r.stdout).toContain('Exit codes:');
  });

  it('with one region prints only the AMI ID on stdout, the details on stderr', async () => {
    const r = await cli(['latest', '--policy', file, '--instance', instanceId, '--region', DR]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${newest.images[DR]}\n`);
    expect(r.stderr).toContain(`${DR}: ${newest.images[DR]} (available, run ${RUNS[1]}, created `);
    expect(r.stderr).toContain(`parameter ${parameterOf(name, instanceId)}`);
  });

  it('without --region shows every copy region with its details', async () => {
    const r = await cli(['latest', '--policy', file, '--instance', instanceId]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Latest backup of ${instanceId} (policy ${name}), parameter ${parameterOf(name, instanceId)}`);
    for (const region of [DR, DR2]) expect(r.stdout).toContain(`${region}: ${newest.images[region]} (available, run ${RUNS[1]}, created `);
  });

  it('--json: one object on the last line of stdout', async () => {
    const r = await cli(['latest', '--policy', file, '--instance', instanceId, '--json']);
    expect(r.code).toBe(0);
    const report = lastJson<LatestReport>(r.stdout);
    expect(report).toEqual({
      policy: name,
      instanceId,
      parameter: parameterOf(name, instanceId),
      regions: [DR, DR2].map((region) => ({
        region,
        imageId: newest.images[region],
        state: 'available',
        runId: RUNS[1],
        created: expect.any(String),
      })),
    });
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('the source region (no parameter there): the newest backup image by its tags', async () => {
    const r = await cli(['latest', '--policy', file, '--instance', instanceId, '--region', SRC, '--json']);
    expect(r.code).toBe(0);
    expect(lastJson<LatestReport>(r.stdout).regions).toEqual([
      { region: SRC, imageId: newest.images[SRC], state: 'available', runId: RUNS[1], created: expect.any(String), via: 'tags' },
    ]);
  });

  it('no backup yet: exit 1, saying so per region, nothing on stdout', async () => {
    const r = await cli(['latest', '--policy', file, '--instance', never, '--region', DR2]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `ami-backup: no backup of ${never} has reached ${DR2} yet (parameter ${parameterOf(name, never)} not found): run a backup first`,
    );

    const json = await cli(['latest', '--policy', file, '--instance', never, '--json']);
    expect(json.code).toBe(1);
    expect(lastJson<LatestReport>(json.stdout).regions).toEqual([
      { region: DR, error: expect.stringContaining(`no backup of ${never} has reached ${DR} yet`) },
      { region: DR2, error: expect.stringContaining(`no backup of ${never} has reached ${DR2} yet`) },
    ]);
  });

  it('a parameter holding an image that is gone: exit 1, naming it', async () => {
    const [other] = await seedInstances(ec2(SRC), { count: 1, tags: {} });
    const gone = 'ami-0123456789abcdef0';
    await ssm(DR).send(new PutParameterCommand({ Name: parameterOf(name, other!), Value: gone, Type: 'String', Overwrite: true }));
    const r = await cli(['latest', '--policy', file, '--instance', other!, '--region', DR]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${gone}, held by parameter ${parameterOf(name, other!)} in ${DR}, does not exist`);
  });

  it('bad input is exit 2: a region not in the policy (naming the allowed ones), a malformed instance ID, a bad policy', async () => {
    const region = await cli(['latest', '--policy', file, '--instance', instanceId, '--region', 'ap-south-1']);
    expect(region.code).toBe(2);
    expect(region.stdout).toBe('');
    expect(region.stderr).toContain(`--region ap-south-1 is not a region of policy ${name}`);
    expect(region.stderr).toContain(`${DR}, ${DR2}`);
    expect(region.stderr).toContain(SRC);

    const malformed = await cli(['latest', '--policy', file, '--instance', 'i-nope']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('"i-nope" is not an EC2 instance ID');

    expect((await cli(['latest', '--policy', file])).code).toBe(2);
    const badPolicy = writePolicy({ name, sourceRegion: SRC, copies: [] });
    expect((await cli(['latest', '--policy', badPolicy, '--instance', instanceId])).code).toBe(2);
  });
});
