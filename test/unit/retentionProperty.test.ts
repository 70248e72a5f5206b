/**
 * Retention can never delete an image (or snapshot) this tool did not create: a property test over
 * random image sets with mixed tags, through the code the applyRetention activity runs (listBackups'
 * ownership filter, selectForRetention, the snapshot ownership check and the orphan rule).
 *
 * test/unit/retention.test.ts checks selectForRetention's rules on images already known to be
 * ours; this file checks what decides which images are ours. EC2 is played by an in-memory account
 * whose DescribeImages / DescribeSnapshots IGNORE the tag filters (the worst a server-side filter
 * can do: EC2 reads `*` and `?` in filter values as wildcards), so only the activity's own check
 * stands between a foreign image and DeregisterImage. DeleteSnapshot refuses a snapshot an image
 * still uses, as EC2 does. test/activities/retentionForeign.test.ts runs rounds of the same against moto.
 */
import type { EC2Client, Image, Snapshot } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { AwsClients } from '../../src/activities/aws';
import { applyRetention, listBackups, ORPHAN_MIN_AGE_MS } from '../../src/activities/retention';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, runIdFor } from '../../src/shared/naming';
import type { RetentionRule } from '../../src/shared/types';
import { awsError } from '../helpers/aws';
import { mulberry32 as prng } from '../../scripts/prng';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 30, 12, 0, 0);
const REGION = 'us-east-1';
const POLICY = 'web-servers';
const INSTANCE = 'i-0123456789abcdef0';
const PARAMETER = `/ami-backup/${POLICY}/${INSTANCE}/latest`;

type Tags = Array<{ Key: string; Value: string }>;

/** Values that look like ours but are not: other names, other case, wildcards, spaces, prefixes. */
const LOOKALIKE_POLICIES = [
  'db-servers',
  'web-servers-2',
  'web-server',
  'web-servers ',
  ' web-servers',
  'Web-Servers',
  'WEB-SERVERS',
  'web-*',
  'web-server?',
  '*',
  '',
];
const LOOKALIKE_INSTANCES = [
  'i-0fedcba9876543210',
  INSTANCE.toUpperCase(),
  `${INSTANCE} `,
  INSTANCE.slice(0, -1),
  `${INSTANCE.slice(0, -2)}*`,
  `${INSTANCE}?`,
  '*',
  '',
];
const LOOKALIKE_KEYS: Array<[string, string]> = [
  ['Ami-Backup:Policy', 'Ami-Backup:Instance-Id'],
  ['ami-backup:Policy', TAG_INSTANCE_ID],
  [TAG_POLICY, 'ami-backup:instanceid'],
  [`${TAG_POLICY} `, TAG_INSTANCE_ID],
  [`aws:${TAG_POLICY}`, `aws:${TAG_INSTANCE_ID}`],
  ['policy', 'instance-id'],
];
const STATES = ['available', 'available', 'available', 'available', 'pending', 'failed', 'error', 'invalid', 'deregistered'];

type Kind = 'ours' | 'other-policy' | 'other-instance' | 'other-keys' | 'only-policy' | 'only-instance' | 'untagged';
const KINDS: Kind[] = ['ours', 'ours', 'ours', 'other-policy', 'other-instance', 'other-keys', 'only-policy', 'only-instance', 'untagged'];

/** One random account: images of every kind with their snapshots, orphan snapshots, an SSM parameter. */
function randomAccount(seed: number) {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(list: readonly T[]) => list[int(list.length)]!;
  const runAt = () => runIdFor(new Date(NOW - int(120) * DAY - int(DAY)));
  const tagsFor = (kind: Kind, runId: string): Tags => {
    const run = rand() < 0.9 ? [{ Key: TAG_RUN, Value: runId }] : [];
    switch (kind) {
      case 'ours':
        return [{ Key: TAG_POLICY, Value: POLICY }, { Key: TAG_INSTANCE_ID, Value: INSTANCE }, ...run];
      case 'other-policy':
        return [{ Key: TAG_POLICY, Value: pick(LOOKALIKE_POLICIES) }, { Key: TAG_INSTANCE_ID, Value: INSTANCE }, ...run];
      case 'other-instance':
        return [{ Key: TAG_POLICY, Value: POLICY }, { Key: TAG_INSTANCE_ID, Value: pick(LOOKALIKE_INSTANCES) }, ...run];
      case 'other-keys': {
        const [p, i] = pick(LOOKALIKE_KEYS);
        return [{ Key: p, Value: POLICY }, { Key: i, Value: INSTANCE }, ...run];
      }
      case 'only-policy':
        return [{ Key: TAG_POLICY, Value: POLICY }, ...run];
      case 'only-instance':
        return [{ Key: TAG_INSTANCE_ID, Value: INSTANCE }, ...run];
      case 'untagged':
        return rand() < 0.5 ? [] : [{ Key: 'Name', Value: `${POLICY}-${INSTANCE}` }];
    }
  };

  const images: Image[] = [];
  const snapshots: Snapshot[] = [];
  const kindOf = new Map<string, Kind>();
  let n = 0;
  /** A snapshot, `oldEnough` to be an orphan if its image is gone, or made a minute ago. */
  const snapshot = (tags: Tags, imageId: string | undefined, oldEnough: boolean): string => {
    const id = `snap-${seed.toString(16)}${(n++).toString(16).padStart(8, '0')}`;
    snapshots.push({
      SnapshotId: id,
      State: rand() < 0.9 ? 'completed' : 'pending',
      Tags: tags,
      Description: imageId ? `Created by CreateImage(${INSTANCE}) for ${imageId}` : undefined,
      StartTime: new Date(oldEnough ? NOW - ORPHAN_MIN_AGE_MS - int(120) * DAY : NOW - 60_000),
    });
    return id;
  };
  for (let i = int(18); i > 0; i--) {
    const kind = pick(KINDS);
    const runId = runAt();
    const imageId = `ami-${seed.toString(16)}${(n++).toString(16).padStart(8, '0')}`;
    const tags = tagsFor(kind, runId);
    // Mostly the image's tags on its snapshots; sometimes untagged snapshots (made by hand, or tagging failed).
    const snapTags = rand() < 0.85 ? tags : [];
    const snapshotIds = Array.from({ length: 1 + int(2) }, () => snapshot(snapTags, imageId, true));
    images.push({
      ImageId: imageId,
      State: pick(STATES) as Image['State'],
      Tags: tags,
      Name: `${POLICY}-${INSTANCE}-${runId}`,
      CreationDate: new Date(NOW - int(120) * DAY).toISOString(),
      BlockDeviceMappings: snapshotIds.map((SnapshotId) => ({ DeviceName: '/dev/xvda', Ebs: { SnapshotId } })),
    });
    kindOf.set(imageId, kind);
  }
  // An image of another owner registered from one of our snapshots (EC2 then refuses to delete it).
  const ourSnapshot = snapshots.find((s) => s.Tags?.some((t) => t.Key === TAG_POLICY && t.Value === POLICY));
  if (ourSnapshot && rand() < 0.3) {
    const imageId = `ami-${seed.toString(16)}${(n++).toString(16).padStart(8, '0')}`;
    images.push({
      ImageId: imageId,
      State: 'available',
      Tags: [],
      BlockDeviceMappings: [{ Ebs: { SnapshotId: ourSnapshot.SnapshotId! } }],
    });
    kindOf.set(imageId, 'untagged');
  }
  // Orphan snapshots (their image is gone), of every kind, old and new.
  for (let i = int(5); i > 0; i--) {
    const kind = pick(KINDS);
    snapshot(tagsFor(kind, runAt()), rand() < 0.7 ? `ami-${seed.toString(16)}deadbeef` : undefined, rand() < 0.8);
  }
  const ours = images.filter((i) => kindOf.get(i.ImageId!) === 'ours');
  const protect = ours.filter(() => rand() < 0.2).map((i) => i.ImageId!);
  // The SSM parameter: absent, or pointing at any image (ours or not).
  const pinned = images.length > 0 && rand() < 0.6 ? pick(images).ImageId! : undefined;
  const ruleKind = int(3);
  const rule: RetentionRule = {
    ...(ruleKind !== 1 ? { keepLast: 1 + int(4) } : {}),
    ...(ruleKind !== 0 ? { maxAge: pick(['1h', '7d', '30d']) } : {}),
  };
  return { images, snapshots, kindOf, protect, pinned, rule };
}

type Account = ReturnType<typeof randomAccount>;

/** The account as EC2 and SSM answer for it; DescribeX ignore filters; what was deleted is recorded. */
function accountClients(account: Account) {
  const deregistered: string[] = [];
  const deletedSnapshots: string[] = [];
  const live = new Map(account.images.map((i) => [i.ImageId!, i]));
  const snaps = new Map(account.snapshots.map((s) => [s.SnapshotId!, s]));
  const ec2 = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const input = command.input;
      switch (command.constructor.name) {
        case 'DescribeImagesCommand':
          return { Images: [...live.values()] };
        case 'DescribeSnapshotsCommand':
          return { Snapshots: [...snaps.values()] };
        case 'DeregisterImageCommand': {
          const id = input.ImageId as string;
          if (!live.delete(id)) throw awsError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
          deregistered.push(id);
          return {};
        }
        case 'DeleteSnapshotCommand': {
          const id = input.SnapshotId as string;
          if (!snaps.has(id)) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
          const user = [...live.values()].find((i) => i.BlockDeviceMappings?.some((m) => m.Ebs?.SnapshotId === id));
          if (user) throw awsError('InvalidSnapshot.InUse', `The snapshot ${id} is currently in use by ${user.ImageId}`);
          snaps.delete(id);
          deletedSnapshots.push(id);
          return {};
        }
        default:
          throw new Error(`unexpected EC2 call ${command.constructor.name}`);
      }
    },
  } as unknown as EC2Client;
  const ssm = {
    send: async (command: { constructor: { name: string }; input: { Name?: string } }) => {
      if (command.constructor.name !== 'GetParameterCommand') throw new Error(`unexpected SSM call ${command.constructor.name}`);
      if (account.pinned === undefined || command.input.Name !== PARAMETER) throw awsError('ParameterNotFound', 'ParameterNotFound');
      return { Parameter: { Name: PARAMETER, Value: account.pinned } };
    },
  } as unknown as SSMClient;
  const aws: AwsClients = { ec2: () => ec2, ssm: () => ssm };
  return { aws, deregistered, deletedSnapshots };
}

const isOurTags = (tags: Snapshot['Tags']) =>
  tags?.some((t) => t.Key === TAG_POLICY && t.Value === POLICY) === true &&
  tags.some((t) => t.Key === TAG_INSTANCE_ID && t.Value === INSTANCE);

const CASES = 1500;

test(`listBackups lists exactly this policy's and instance's images, whatever EC2's filter returns (${CASES} random accounts)`, async () => {
  const seen = new Map<Kind, number>();
  for (let seed = 1; seed <= CASES; seed++) {
    const account = randomAccount(seed);
    const { aws } = accountClients(account);
    const listed = (await listBackups(aws, { policy: POLICY, instanceId: INSTANCE, region: REGION })).map((i) => i.imageId).sort();
    const ours = account.images.filter((i) => account.kindOf.get(i.ImageId!) === 'ours').map((i) => i.ImageId!);
    expect({ seed, listed }).toEqual({ seed, listed: ours.sort() });
    for (const kind of account.kindOf.values()) seen.set(kind, (seen.get(kind) ?? 0) + 1);
  }
  // The generator made plenty of every kind of image.
  for (const kind of new Set(KINDS)) expect({ kind, many: (seen.get(kind) ?? 0) > 300 }).toEqual({ kind, many: true });
});

test(`applyRetention deletes only this tool's images and snapshots, never a protected or pinned one (${CASES} random accounts)`, async () => {
  let deletedImages = 0;
  let deletedOrphans = 0;
  let withForeign = 0;
  let pinnedForeign = 0;
  for (let seed = 1; seed <= CASES; seed++) {
    const account = randomAccount(seed);
    const { aws, deregistered, deletedSnapshots } = accountClients(account);
    const out = await applyRetention(aws, {
      policy: POLICY,
      instanceId: INSTANCE,
      region: REGION,
      rule: account.rule,
      protect: account.protect,
      ssmParameter: PARAMETER,
      nowMs: NOW,
    });
    const why = `seed ${seed}, rule ${JSON.stringify(account.rule)}`;
    const foreignImages = deregistered.filter((id) => account.kindOf.get(id) !== 'ours');
    expect({ why, foreignImages }).toEqual({ why, foreignImages: [] });
    const snapshotTags = new Map(account.snapshots.map((s) => [s.SnapshotId!, s.Tags]));
    const foreignSnapshots = deletedSnapshots.filter((id) => !isOurTags(snapshotTags.get(id)));
    expect({ why, foreignSnapshots }).toEqual({ why, foreignSnapshots: [] });
    const keptSafe = deregistered.filter((id) => account.protect.includes(id) || id === account.pinned);
    expect({ why, keptSafe }).toEqual({ why, keptSafe: [] });
    // What it reports is what it did.
    expect(
      out.deleted
        .filter((d) => d.reason !== 'snapshots left behind by an image already deregistered')
        .map((d) => d.imageId)
        .sort(),
    ).toEqual([...deregistered].sort());
    expect(out.deleted.flatMap((d) => d.snapshotIds).sort()).toEqual([...deletedSnapshots].sort());

    deletedImages += deregistered.length;
    deletedOrphans += out.deleted.filter((d) => d.reason.startsWith('snapshots left behind')).length;
    if (account.images.some((i) => account.kindOf.get(i.ImageId!) !== 'ours')) withForeign++;
    if (account.pinned && account.kindOf.get(account.pinned) !== 'ours') pinnedForeign++;
  }
  // The cases exercised deletion next to foreign images, orphan clean-up, and foreign pinned images.
  expect(deletedImages).toBeGreaterThan(1000);
  expect(deletedOrphans).toBeGreaterThan(100);
  expect(withForeign).toBeGreaterThan(CASES * 0.8);
  expect(pinnedForeign).toBeGreaterThan(200);
});
