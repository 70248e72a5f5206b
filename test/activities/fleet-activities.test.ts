/**
 * findInstances, listBackups and applyRetention against moto. Each test makes its own instances
 * (and a tag value of its own where it searches by tag), so tests never see each other's data in
 * the one moto server they share.
 */
import {
  CreateImageCommand,
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { findInstances } from '../../src/activities/findInstances';
import { ORPHAN_MIN_AGE_MS, ORPHAN_REASON, applyRetention, listBackups } from '../../src/activities/retention';
import { backupTags, TAG_INSTANCE_ID, TAG_POLICY } from '../../src/shared/naming';
import type { ApplyRetentionInput, FindInstancesInput } from '../../src/shared/types';
import { seedInstances } from '../../scripts/seed';
import { startMoto, type Moto } from '../../scripts/stack';
import { awsError, failureOf, recordingAws, type TestAws, useMoto } from '../helpers/aws';

const SRC = 'us-east-1';
const DR = 'eu-west-1';
const POLICY = 'web-servers';
const DAY = 86_400_000;

let moto: Moto;
let t: TestAws;
const clients = new Map<string, EC2Client>();
let ssmDr: SSMClient;

/** A plain client for setting the scene and looking at the result (not recorded). */
function ec2(region = SRC): EC2Client {
  let client = clients.get(region);
  if (!client) clients.set(region, (client = new EC2Client({ region })));
  return client;
}

beforeAll(async () => {
  moto = await startMoto();
  useMoto(moto.endpoint);
  ssmDr = new SSMClient({ region: DR });
});

afterAll(async () => {
  for (const client of clients.values()) client.destroy();
  ssmDr?.destroy();
  await moto?.stop();
});

beforeEach(() => {
  t = recordingAws();
});

let unique = 0;
/** A tag value no other test uses. */
const fresh = (prefix: string) => `${prefix}-${process.pid}-${++unique}`;

const requestsOf = (command: string) => t.requests.filter((r) => r.command === command);

describe('findInstances by tags', () => {
  it('finds running and stopped instances carrying every tag, across pages, and never untagged or terminated ones', async () => {
    const fleet = fresh('fleet');
    const tags = { Fleet: fleet, Backup: 'true' };
    const tagged = await seedInstances(ec2(), { count: 25, tags });
    const [stopped] = await seedInstances(ec2(), { count: 1, tags, namePrefix: 'stopped' });
    const [terminated] = await seedInstances(ec2(), { count: 1, tags, namePrefix: 'gone' });
    // Untagged, or carrying only some of the tags, or another value: never targets.
    const others = [
      ...(await seedInstances(ec2(), { count: 1, tags: {} })),
      ...(await seedInstances(ec2(), { count: 1, tags: { Fleet: fleet } })),
      ...(await seedInstances(ec2(), { count: 1, tags: { Backup: 'true' } })),
      ...(await seedInstances(ec2(), { count: 1, tags: { Fleet: fleet, Backup: 'false' } })),
    ];
    await ec2().send(new StopInstancesCommand({ InstanceIds: [stopped!] }));
    await ec2().send(new TerminateInstancesCommand({ InstanceIds: [terminated!] }));

    const out = await findInstances(t.aws, { region: SRC, tags }, { pageSize: 5 });

    expect(out.problems).toEqual([]);
    expect(out.instanceIds).toEqual([...tagged, stopped!].sort());
    for (const id of [terminated!, ...others]) expect(out.instanceIds).not.toContain(id);
    // moto pages DescribeInstances by reservation (one per seeded instance): 26 matches in pages of 5.
    const pages = requestsOf('DescribeInstancesCommand');
    expect(pages).toHaveLength(6);
    expect(pages.every((r) => r.input.MaxResults === 5)).toBe(true);
    expect(pages[0]!.input.NextToken).toBeUndefined();
    expect(pages.slice(1).every((r) => typeof r.input.NextToken === 'string')).toBe(true);
    const filters = pages[0]!.input.Filters as Array<{ Name: string; Values: string[] }>;
    expect(filters).toEqual(
      expect.arrayContaining([
        { Name: 'tag:Fleet', Values: [fleet] },
        { Name: 'tag:Backup', Values: ['true'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ]),
    );
  });

  it('asks for pages of 1000 by default and follows them to the end', async () => {
    const tags = { Fleet: fresh('fleet') };
    const ids = await seedInstances(ec2(), { count: 3, tags });
    const out = await findInstances(t.aws, { region: SRC, tags });
    expect(out.instanceIds).toEqual([...ids].sort());
    const pages = requestsOf('DescribeInstancesCommand');
    expect(pages).toHaveLength(1);
    expect(pages[0]!.body).toContain('MaxResults=1000');
  });

  it('matches tag values exactly, although EC2 filters read * and ? as wildcards', async () => {
    const fleet = fresh('fleet');
    const [literal] = await seedInstances(ec2(), { count: 1, tags: { Fleet: `${fleet}*` } });
    const [wildcardMatch] = await seedInstances(ec2(), { count: 1, tags: { Fleet: `${fleet}-eu` } });
    const out = await findInstances(t.aws, { region: SRC, tags: { Fleet: `${fleet}*` } });
    expect(out.instanceIds).toEqual([literal]);
    expect(out.instanceIds).not.toContain(wildcardMatch);
  });

  it('returns an empty list, not an error, when nothing matches', async () => {
    await expect(findInstances(t.aws, { region: SRC, tags: { Fleet: fresh('nobody') } })).resolves.toEqual({
      instanceIds: [],
      problems: [],
    });
  });

  it('refuses a target with no tags rather than describing every instance in the region', async () => {
    const inputs: FindInstancesInput[] = [
      { region: SRC },
      { region: SRC, tags: {} },
      { region: SRC, tags: { A: 'b' }, instanceIds: ['i-0123456789abcdef0'] },
    ];
    for (const input of inputs) {
      const failure = await failureOf(findInstances(t.aws, input));
      expect(failure).toMatchObject({ type: 'InvalidTargets', nonRetryable: true });
    }
    expect(t.requests).toHaveLength(0);
  });

  it('names the operation and region when AWS refuses', async () => {
    t.setFault((command) =>
      command === 'DescribeInstancesCommand' ? awsError('UnauthorizedOperation', 'You are not authorized.') : undefined,
    );
    const failure = await failureOf(findInstances(t.aws, { region: DR, tags: { Backup: 'true' } }));
    expect(failure).toMatchObject({ type: 'UnauthorizedOperation', nonRetryable: true });
    expect(failure.message).toContain('ec2:DescribeInstances');
    expect(failure.message).toContain(DR);
  });
});

describe('findInstances by instance IDs', () => {
  it('finds the listed instances and reports a missing and a terminated one with what to do', async () => {
    const [running, stopped, terminated] = await seedInstances(ec2(), { count: 3, tags: {} });
    await ec2().send(new StopInstancesCommand({ InstanceIds: [stopped!] }));
    await ec2().send(new TerminateInstancesCommand({ InstanceIds: [terminated!] }));
    const missing = 'i-0123456789abcdef0';

    const out = await findInstances(t.aws, { region: SRC, instanceIds: [terminated!, running!, missing, stopped!, running!] });

    expect(out.instanceIds).toEqual([running!, stopped!].sort());
    expect(out.problems).toEqual([
      { instanceId: missing, reason: expect.stringMatching(/^does not exist in us-east-1: remove it from targets\.instanceIds/) },
      { instanceId: terminated!, reason: 'is terminated: remove it from targets.instanceIds' },
    ]);
    // The instance-id filter, never InstanceIds (which fails the whole call on one unknown ID).
    const requests = requestsOf('DescribeInstancesCommand');
    expect(requests).toHaveLength(1);
    expect(requests[0]!.input.InstanceIds).toBeUndefined();
    expect(requests[0]!.input.Filters).toEqual([{ Name: 'instance-id', Values: [missing, running!, stopped!, terminated!].sort() }]);
  });

  it('asks in chunks of 200 IDs', async () => {
    const real = await seedInstances(ec2(), { count: 2, tags: {} });
    const fake = Array.from({ length: 248 }, (_, i) => `i-${(0xabc0000000000000n + BigInt(i)).toString(16).padStart(17, '0')}`);
    const out = await findInstances(t.aws, { region: SRC, instanceIds: [...fake, ...real] });

    expect(out.instanceIds).toEqual([...real].sort());
    expect(out.problems).toHaveLength(248);
    const chunks = requestsOf('DescribeInstancesCommand').map((r) => (r.input.Filters as Array<{ Values: string[] }>)[0]!.Values);
    expect(chunks.map((c) => c.length)).toEqual([200, 50]);
    expect(chunks.flat().sort()).toEqual([...fake, ...real].sort());
  });
});

/**
 * An image of `instanceId` as this tool leaves it: tagged for the policy, instance and run, and
 * its snapshots tagged alike. `policy: null` makes an image without any of this tool's tags.
 */
async function makeBackup(
  instanceId: string,
  runId: string,
  opts: { region?: string; policy?: string | null; taggedInstanceId?: string; tagSnapshots?: boolean } = {},
) {
  const client = ec2(opts.region);
  const { ImageId: imageId } = await client.send(
    new CreateImageCommand({ InstanceId: instanceId, Name: `${fresh('img')}-${runId}`, NoReboot: true }),
  );
  const image = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId!] }))).Images![0]!;
  const snapshotIds = (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));
  expect(snapshotIds.length).toBeGreaterThan(0);
  if (opts.policy !== null) {
    const tags = backupTags({ policy: opts.policy ?? POLICY, instanceId: opts.taggedInstanceId ?? instanceId, runId });
    // moto 5.2.5 answers snapshot TagSpecifications on CreateImage with a 500: tag by ID.
    await client.send(
      new CreateTagsCommand({ Resources: opts.tagSnapshots === false ? [imageId!] : [imageId!, ...snapshotIds], Tags: tags }),
    );
  }
  return { imageId: imageId!, snapshotIds, runId };
}

async function imageExists(imageId: string, region = SRC): Promise<boolean> {
  const found = await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'image-id', Values: [imageId] }] }));
  return (found.Images ?? []).length > 0;
}

async function existingSnapshots(snapshotIds: string[], region = SRC): Promise<string[]> {
  const found = await ec2(region).send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: snapshotIds }] }));
  return (found.Snapshots ?? []).map((s) => s.SnapshotId!).sort();
}

const RUNS = ['20260101T000000Z', '20260201T000000Z', '20260301T000000Z'] as const;
const NOW = Date.UTC(2026, 2, 1, 1, 0, 0);

/** One instance with three backups (oldest first), plus images that must never be candidates. */
async function scene(region = SRC) {
  const [instanceId, neighbour] = await seedInstances(ec2(region), { count: 2, tags: {} });
  const backups = [];
  for (const runId of RUNS) backups.push(await makeBackup(instanceId!, runId, { region }));
  const untagged = await makeBackup(instanceId!, RUNS[0], { region, policy: null });
  const otherPolicy = await makeBackup(instanceId!, RUNS[0], { region, policy: 'db-servers' });
  const otherInstance = await makeBackup(neighbour!, RUNS[0], { region });
  const input: ApplyRetentionInput = {
    policy: POLICY,
    instanceId: instanceId!,
    region,
    rule: { keepLast: 2 },
    protect: [backups[2]!.imageId],
    nowMs: NOW,
  };
  return { instanceId: instanceId!, backups, strangers: [untagged, otherPolicy, otherInstance], input };
}

describe('listBackups', () => {
  it("lists only this tool's images of that policy and instance, with their run and snapshots", async () => {
    const { instanceId, backups } = await scene();
    const listed = await listBackups(t.aws, { policy: POLICY, instanceId, region: SRC });

    expect(listed.map((i) => i.imageId).sort()).toEqual(backups.map((b) => b.imageId).sort());
    for (const b of backups) {
      expect(listed.find((i) => i.imageId === b.imageId)).toMatchObject({
        region: SRC,
        runId: b.runId,
        state: 'available',
        snapshotIds: b.snapshotIds,
        name: expect.stringContaining(b.runId),
        creationDate: expect.any(String),
      });
    }
    const describe = requestsOf('DescribeImagesCommand')[0]!;
    expect(describe.input).toMatchObject({
      Owners: ['self'],
      Filters: [
        { Name: `tag:${TAG_POLICY}`, Values: [POLICY] },
        { Name: `tag:${TAG_INSTANCE_ID}`, Values: [instanceId] },
      ],
    });
  });
});

describe('applyRetention', () => {
  it('keepLast 2 of 3: deregisters the oldest and deletes its snapshots, touching nothing else', async () => {
    const { backups, strangers, input } = await scene();
    const [oldest, middle, newest] = backups;

    const out = await applyRetention(t.aws, { ...input, ssmParameter: '/ami-backup/not/written/yet' });

    expect(out).toEqual({
      region: SRC,
      kept: 2,
      deleted: [
        {
          region: SRC,
          imageId: oldest!.imageId,
          name: expect.stringContaining(RUNS[0]),
          runId: RUNS[0],
          snapshotIds: oldest!.snapshotIds,
          reason: 'beyond keepLast 2',
        },
      ],
    });
    expect(await imageExists(oldest!.imageId)).toBe(false);
    expect(await existingSnapshots(oldest!.snapshotIds)).toEqual([]);
    for (const kept of [middle!, newest!, ...strangers]) {
      expect(await imageExists(kept.imageId)).toBe(true);
      expect(await existingSnapshots(kept.snapshotIds)).toEqual([...kept.snapshotIds].sort());
    }
    expect(requestsOf('DeregisterImageCommand').map((r) => r.input.ImageId)).toEqual([oldest!.imageId]);
  });

  it('never deletes the image the SSM parameter points to, even when it is the oldest', async () => {
    const { instanceId, backups, input } = await scene(DR);
    const [oldest, middle, newest] = backups;
    const parameter = `/ami-backup/${POLICY}/${instanceId}/latest`;
    await ssmDr.send(new PutParameterCommand({ Name: parameter, Value: oldest!.imageId, Type: 'String', Overwrite: true }));

    const out = await applyRetention(t.aws, { ...input, rule: { keepLast: 1 }, ssmParameter: parameter });

    expect(out.deleted.map((d) => [d.imageId, d.reason])).toEqual([[middle!.imageId, 'beyond keepLast 1']]);
    expect(out.kept).toBe(2);
    expect(await imageExists(oldest!.imageId, DR)).toBe(true);
    expect(await imageExists(newest!.imageId, DR)).toBe(true);
    expect(await imageExists(middle!.imageId, DR)).toBe(false);
    const get = requestsOf('GetParameterCommand');
    expect(get).toHaveLength(1);
    expect(get[0]).toMatchObject({ region: DR, input: { Name: parameter } });
  });

  it('maxAge: with the clock far ahead every image is too old, but the newest available one stays', async () => {
    const { backups, input } = await scene();
    const [oldest, middle, newest] = backups;

    const out = await applyRetention(t.aws, { ...input, rule: { maxAge: '30d' }, protect: [], nowMs: NOW + 365 * DAY });

    expect(out.deleted.map((d) => [d.imageId, d.reason])).toEqual([
      [oldest!.imageId, 'older than maxAge 30d'],
      [middle!.imageId, 'older than maxAge 30d'],
    ]);
    expect(out.kept).toBe(1);
    expect(await imageExists(newest!.imageId)).toBe(true);
    expect(await existingSnapshots([...oldest!.snapshotIds, ...middle!.snapshotIds])).toEqual([]);
  });

  it('maxAge measured from the run: a month later only the image older than 30 days goes', async () => {
    const { backups, input } = await scene();
    const out = await applyRetention(t.aws, { ...input, rule: { keepLast: 5, maxAge: '30d' } });
    expect(out.deleted.map((d) => [d.imageId, d.reason])).toEqual([[backups[0]!.imageId, 'older than maxAge 30d']]);
  });

  it('is idempotent: running it again deletes nothing more', async () => {
    const { input } = await scene();
    const first = await applyRetention(t.aws, input);
    expect(first.deleted).toHaveLength(1);

    t = recordingAws();
    const second = await applyRetention(t.aws, input);
    expect(second).toEqual({ region: SRC, deleted: [], kept: 2 });
    expect(requestsOf('DeregisterImageCommand')).toHaveLength(0);
    expect(requestsOf('DeleteSnapshotCommand')).toHaveLength(0);
  });

  it('a retry after an attempt stopped between DeregisterImage and DeleteSnapshot still deletes the snapshots', async () => {
    const { backups, input } = await scene();
    const oldest = backups[0]!;
    t.setFault((command) =>
      command === 'DeleteSnapshotCommand' ? awsError('RequestLimitExceeded', 'Request limit exceeded.', 503) : undefined,
    );
    const failure = await failureOf(applyRetention(t.aws, input));
    expect(failure).toMatchObject({ type: 'RequestLimitExceeded', nonRetryable: false });
    expect(await imageExists(oldest.imageId)).toBe(false);
    expect(await existingSnapshots(oldest.snapshotIds)).toEqual([...oldest.snapshotIds].sort());

    t.setFault(undefined);
    // The retry comes later; moto's snapshots are brand new, so move the clock past ORPHAN_MIN_AGE_MS.
    const retry = await applyRetention(t.aws, { ...input, nowMs: Date.now() + ORPHAN_MIN_AGE_MS });

    expect(retry.deleted).toEqual([
      { region: SRC, imageId: oldest.imageId, runId: RUNS[0], snapshotIds: [...oldest.snapshotIds].sort(), reason: ORPHAN_REASON },
    ]);
    expect(await existingSnapshots(oldest.snapshotIds)).toEqual([]);
  });

  it('deletes tagged snapshots whose image is gone, never an untagged one or one of another policy', async () => {
    const [instanceId] = await seedInstances(ec2(), { count: 1, tags: {} });
    const keep = await makeBackup(instanceId!, RUNS[2]);
    const tagged = await makeBackup(instanceId!, RUNS[0]);
    const untagged = await makeBackup(instanceId!, RUNS[0], { policy: null });
    const otherPolicy = await makeBackup(instanceId!, RUNS[0], { policy: 'db-servers' });
    for (const gone of [tagged, untagged, otherPolicy]) await ec2().send(new DeregisterImageCommand({ ImageId: gone.imageId }));
    const input: ApplyRetentionInput = {
      policy: POLICY,
      instanceId: instanceId!,
      region: SRC,
      rule: { keepLast: 3 },
      protect: [],
      nowMs: Date.now(),
    };

    // Snapshots younger than ORPHAN_MIN_AGE_MS are left: EC2 may not list a just-made image yet.
    expect(await applyRetention(t.aws, input)).toEqual({ region: SRC, kept: 1, deleted: [] });
    expect(await existingSnapshots(tagged.snapshotIds)).toEqual([...tagged.snapshotIds].sort());

    const out = await applyRetention(t.aws, { ...input, nowMs: Date.now() + ORPHAN_MIN_AGE_MS });

    expect(out).toEqual({
      region: SRC,
      kept: 1,
      deleted: [
        { region: SRC, imageId: tagged.imageId, runId: RUNS[0], snapshotIds: [...tagged.snapshotIds].sort(), reason: ORPHAN_REASON },
      ],
    });
    expect(await existingSnapshots(tagged.snapshotIds)).toEqual([]);
    expect(await existingSnapshots(untagged.snapshotIds)).toEqual([...untagged.snapshotIds].sort());
    expect(await existingSnapshots(otherPolicy.snapshotIds)).toEqual([...otherPolicy.snapshotIds].sort());
    expect(await existingSnapshots(keep.snapshotIds)).toEqual([...keep.snapshotIds].sort());
  });

  it("deregisters a retired image but leaves its snapshots when they lack this tool's tags", async () => {
    const [instanceId] = await seedInstances(ec2(), { count: 1, tags: {} });
    const old = await makeBackup(instanceId!, RUNS[0], { tagSnapshots: false });
    await makeBackup(instanceId!, RUNS[1]);

    const out = await applyRetention(t.aws, {
      policy: POLICY,
      instanceId: instanceId!,
      region: SRC,
      rule: { keepLast: 1 },
      protect: [],
      nowMs: NOW,
    });

    expect(out.deleted).toEqual([expect.objectContaining({ imageId: old.imageId, snapshotIds: [], reason: 'beyond keepLast 1' })]);
    expect(await imageExists(old.imageId)).toBe(false);
    expect(await existingSnapshots(old.snapshotIds)).toEqual([...old.snapshotIds].sort());
    expect(requestsOf('DeleteSnapshotCommand')).toHaveLength(0);
  });

  it('an image already deregistered by someone else between listing and deleting is fine', async () => {
    const { backups, input } = await scene();
    const oldest = backups[0]!;
    const client = t.aws.ec2(SRC);
    const send = client.send.bind(client);
    client.send = (async (command: { constructor: { name: string } }) => {
      if (command.constructor.name === 'DeregisterImageCommand') await ec2().send(new DeregisterImageCommand({ ImageId: oldest.imageId }));
      return send(command as never);
    }) as typeof client.send;
    try {
      const out = await applyRetention(t.aws, input);
      expect(out.deleted).toEqual([expect.objectContaining({ imageId: oldest.imageId, snapshotIds: oldest.snapshotIds })]);
    } finally {
      client.send = send;
    }
    expect(await existingSnapshots(oldest.snapshotIds)).toEqual([]);
  });

  it('names the operation, instance, image and region when AWS refuses a deregistration', async () => {
    const { instanceId, backups, input } = await scene();
    t.setFault((command) =>
      command === 'DeregisterImageCommand' ? awsError('UnauthorizedOperation', 'You are not authorized.') : undefined,
    );
    const failure = await failureOf(applyRetention(t.aws, input));
    expect(failure).toMatchObject({ type: 'UnauthorizedOperation', nonRetryable: true });
    for (const part of ['ec2:DeregisterImage', instanceId, backups[0]!.imageId, SRC]) expect(failure.message).toContain(part);
    expect(await imageExists(backups[0]!.imageId)).toBe(true);
  });

  it('stops when the SSM parameter cannot be read: it might protect an image', async () => {
    const { input } = await scene(DR);
    t.setFault((command) => (command === 'GetParameterCommand' ? awsError('AccessDeniedException', 'Not allowed to read it.') : undefined));
    const failure = await failureOf(applyRetention(t.aws, { ...input, ssmParameter: '/ami-backup/x/latest' }));
    expect(failure).toMatchObject({ type: 'AccessDeniedException', nonRetryable: true });
    expect(failure.message).toContain('ssm:GetParameter');
    expect(failure.message).toContain(DR);
    expect(requestsOf('DeregisterImageCommand')).toHaveLength(0);
  });
});
