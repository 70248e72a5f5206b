/**
 * `ami-backup plan --policy FILE`: what a run of the policy would do now, read straight from AWS
 * with the operator's own credentials. It starts no workflow and changes nothing.
 *
 * - The instances: `findInstances` in the source region, exactly as backupFleet calls it.
 * - For every instance and every region with a retention rule, what the run's applyRetention will
 *   delete once the run's new image is available: `planRetention` (the same selection function)
 *   over the instance's images, with a virtual new image at "now" protected. In a copy region the
 *   image the SSM parameter holds now is NOT protected: the run points the parameter at its new
 *   copy first. In the source region the run reads the parameter too, so its value is protected
 *   there when it exists. Snapshots are counted as the run deletes them: only those carrying both
 *   ownership tags; snapshots whose image is already gone ("orphans") are listed as the run
 *   reports them (ORPHAN_REASON).
 * - Cost for big fleets: per region with a rule, one DescribeImages and one DescribeSnapshots
 *   (filtered by the ami-backup:policy tag, all pages), grouped by ami-backup:instance-id; plus,
 *   when the source region has a rule, GetParameters for 10 instances at a time.
 */
import { DescribeSnapshotsCommand, type Image, type Snapshot } from '@aws-sdk/client-ec2';
import { GetParametersCommand } from '@aws-sdk/client-ssm';
import type { Command } from 'commander';
import type { AwsClients } from '../activities/aws';
import { awsCall, type ErrorContext } from '../activities/errors';
import { findInstances } from '../activities/findInstances';
import { findOwnImages } from '../activities/images';
import { ORPHAN_REASON, selectOrphans, toBackupImage } from '../activities/retention';
import { loadPolicyFile, type Policy } from '../policy';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, runIdFor, ssmParameterName } from '../shared/naming';
import { imageTimeMs, planRetention } from '../shared/retention';
import type { BackupImage, RetentionRule } from '../shared/types';
import { withOperatorAws } from './awsDirect';
import { EXIT_OK, UsageError, output, type Output } from './common';

/** One image (or a group of orphaned snapshots) the next run would delete. */
export interface PlannedDeletion {
  instanceId: string;
  region: string;
  /** '' for orphaned snapshots whose description names no image (as applyRetention reports them). */
  imageId: string;
  runId?: string;
  reason: string;
  snapshotIds: string[];
}

/** The object `plan --json` prints as the last line of stdout. */
export interface PlanReport {
  policy: string;
  sourceRegion: string;
  instances: string[];
  problems: Array<{ instanceId: string; reason: string }>;
  deletions: PlannedDeletion[];
}

/** Placeholder ID of the image the next run will make (never a real AMI ID). */
export const NEXT_RUN_IMAGE_ID = 'ami-backup:next-run';

/** GetParameters takes at most 10 names. */
const PARAMETER_BATCH = 10;

const PERMISSIONS = 'ec2:DescribeInstances, ec2:DescribeImages and ec2:DescribeSnapshots, and ssm:GetParameters in the source region';

type Tags = Array<{ Key?: string; Value?: string }> | undefined;
const tagOf = (tags: Tags, key: string) => tags?.find((t) => t.Key === key)?.Value;

interface RuleRegion {
  region: string;
  rule: RetentionRule;
  isSource: boolean;
}

/** The regions where a run applies retention, source first, in the order the workflow lists them. */
export function retentionRegions(policy: Policy): RuleRegion[] {
  const regions: RuleRegion[] = [];
  if (policy.retention) regions.push({ region: policy.sourceRegion, rule: policy.retention, isSource: true });
  for (const c of policy.copies) if (c.retention) regions.push({ region: c.region, rule: c.retention, isSource: false });
  return regions;
}

/** This policy's images and snapshots in one region, by instance (both ownership tags checked exactly). */
interface RegionInventory {
  images: Map<string, Image[]>;
  snapshots: Map<string, Snapshot[]>;
}

function groupByInstance<T extends { Tags?: Tags }>(items: T[], policy: string, wanted: ReadonlySet<string>): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    // EC2 filter values treat `*` and `?` as wildcards: the tags are checked again, exactly (as listBackups does).
    if (tagOf(item.Tags, TAG_POLICY) !== policy) continue;
    const instanceId = tagOf(item.Tags, TAG_INSTANCE_ID);
    if (instanceId === undefined || !wanted.has(instanceId)) continue;
    const group = groups.get(instanceId) ?? [];
    group.push(item);
    groups.set(instanceId, group);
  }
  return groups;
}

async function regionInventory(aws: AwsClients, policy: Policy, region: string, instances: ReadonlySet<string>): Promise<RegionInventory> {
  const ec2 = aws.ec2(region, policy.roleArn);
  const filters = [{ Name: `tag:${TAG_POLICY}`, Values: [policy.name] }];
  const images = findOwnImages(ec2, filters, { operation: 'ec2:DescribeImages', region });
  const snapshots = (async () => {
    const ctx: ErrorContext = { operation: 'ec2:DescribeSnapshots', region };
    const all: Snapshot[] = [];
    let NextToken: string | undefined;
    do {
      const page = await awsCall(ctx, () =>
        ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters, MaxResults: 1000, NextToken })),
      );
      all.push(...(page.Snapshots ?? []));
      NextToken = page.NextToken;
    } while (NextToken);
    return all;
  })();
  const [imageList, snapshotList] = await Promise.all([images, snapshots]);
  return {
    images: groupByInstance(
      imageList.filter((i) => i.ImageId),
      policy.name,
      instances,
    ),
    snapshots: groupByInstance(
      snapshotList.filter((s) => s.SnapshotId),
      policy.name,
      instances,
    ),
  };
}

/** The value of each instance's SSM parameter in `region`, for those that have one. */
async function parameterValues(aws: AwsClients, policy: Policy, region: string, instanceIds: string[]): Promise<Map<string, string>> {
  const ssm = aws.ssm(region, policy.roleArn);
  const nameOf = new Map(
    instanceIds.map((instanceId) => [
      ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion }),
      instanceId,
    ]),
  );
  const names = [...nameOf.keys()];
  const values = new Map<string, string>();
  for (let i = 0; i < names.length; i += PARAMETER_BATCH) {
    const batch = names.slice(i, i + PARAMETER_BATCH);
    const got = await awsCall({ operation: 'ssm:GetParameters', region, parameter: batch[0] }, () =>
      ssm.send(new GetParametersCommand({ Names: batch })),
    );
    // Names SSM does not know come back in InvalidParameters: no parameter, nothing pinned.
    for (const p of got.Parameters ?? []) {
      const instanceId = p.Name !== undefined ? nameOf.get(p.Name) : undefined;
      if (instanceId && p.Value) values.set(instanceId, p.Value);
    }
  }
  return values;
}

/**
 * What applyRetention will delete for one instance in one region after the next run, given the
 * instance's images and snapshots there (both already checked to carry both ownership tags).
 * Mirrors applyRetention step by step: the images planRetention retires (oldest first) with their
 * tagged snapshots, then the orphaned snapshots.
 */
export function planInstanceRegion(
  instanceId: string,
  region: string,
  images: BackupImage[],
  snapshots: Snapshot[],
  rule: RetentionRule,
  opts: { nowMs: number; pinned?: string },
): PlannedDeletion[] {
  const newImage: BackupImage = {
    region,
    imageId: NEXT_RUN_IMAGE_ID,
    state: 'available',
    snapshotIds: [],
    runId: runIdFor(new Date(opts.nowMs)),
  };
  const remove = planRetention(images, rule, {
    nowMs: opts.nowMs,
    newImage,
    protect: new Set(opts.pinned ? [opts.pinned] : []),
  });
  const tagged = new Map(snapshots.map((s) => [s.SnapshotId!, s]));
  const deletions: PlannedDeletion[] = [...remove].reverse().map((image) => ({
    instanceId,
    region,
    imageId: image.imageId,
    ...(image.runId ? { runId: image.runId } : {}),
    reason: image.reason,
    snapshotIds: image.snapshotIds.filter((id) => tagged.has(id)),
  }));

  const removed = new Set(remove.map((i) => i.imageId));
  const keptRuns = new Set([newImage, ...images].flatMap((i) => (!removed.has(i.imageId) && i.runId ? [i.runId] : [])));
  const orphans = selectOrphans(tagged, images, keptRuns, opts.nowMs);
  for (const group of orphans) {
    deletions.push({
      instanceId,
      region,
      imageId: group.imageId,
      runId: group.runId,
      reason: ORPHAN_REASON,
      snapshotIds: group.snapshotIds,
    });
  }
  return deletions;
}

interface PlanResult {
  report: PlanReport;
  /** Instance names from their backups' Name tag, where a backup was seen. */
  names: Map<string, string>;
  /** When each image to delete was made (ms), for the human output. */
  imageTimes: Map<string, number>;
  nowMs: number;
}

export async function computePlan(aws: AwsClients, policy: Policy, nowMs: number): Promise<PlanResult> {
  const found = await findInstances(aws, {
    region: policy.sourceRegion,
    roleArn: policy.roleArn,
    ...(policy.targets.tags ? { tags: policy.targets.tags } : {}),
    ...(policy.targets.instanceIds ? { instanceIds: policy.targets.instanceIds } : {}),
  });
  const instances = new Set(found.instanceIds);
  const regions = instances.size > 0 ? retentionRegions(policy) : [];
  const source = regions.find((r) => r.isSource);
  const [inventories, pinned] = await Promise.all([
    Promise.all(regions.map((r) => regionInventory(aws, policy, r.region, instances))),
    source ? parameterValues(aws, policy, source.region, found.instanceIds) : Promise.resolve(new Map<string, string>()),
  ]);

  const deletions: PlannedDeletion[] = [];
  const names = new Map<string, string>();
  const imageTimes = new Map<string, number>();
  for (const instanceId of found.instanceIds) {
    regions.forEach(({ region, rule, isSource }, i) => {
      const inventory = inventories[i]!;
      const raw = inventory.images.get(instanceId) ?? [];
      const images = raw.map((image) => toBackupImage(region, image));
      for (const image of images) imageTimes.set(`${region}|${image.imageId}`, imageTimeMs(image) ?? NaN);
      const newest = [...raw].sort((a, b) => (tagOf(b.Tags, TAG_RUN) ?? '').localeCompare(tagOf(a.Tags, TAG_RUN) ?? ''))[0];
      const name = tagOf(newest?.Tags, 'Name');
      if (name && !names.has(instanceId)) names.set(instanceId, name);
      deletions.push(
        ...planInstanceRegion(instanceId, region, images, inventory.snapshots.get(instanceId) ?? [], rule, {
          nowMs,
          // Only the source region: in a copy region the run repoints the parameter to its new copy first.
          pinned: isSource ? pinned.get(instanceId) : undefined,
        }),
      );
    });
  }
  return {
    report: {
      policy: policy.name,
      sourceRegion: policy.sourceRegion,
      instances: found.instanceIds,
      problems: found.problems.map((p) => ({ instanceId: p.instanceId, reason: p.reason })),
      deletions,
    },
    names,
    imageTimes,
    nowMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Printing

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** "32d 14h", "5h 3m", "12m". */
export function ageText(ms: number): string {
  if (!Number.isFinite(ms)) return 'age unknown';
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}

function ruleText(rule: RetentionRule): string {
  return [rule.keepLast !== undefined ? `keep last ${rule.keepLast}` : '', rule.maxAge ? `max age ${rule.maxAge}` : '']
    .filter(Boolean)
    .join(', ');
}

function printPlan(out: Output, policy: Policy, result: PlanResult): void {
  const { report, names, imageTimes, nowMs } = result;
  const copies = policy.copies.map((c) => c.region).join(', ');
  out.info(
    `Plan for policy ${policy.name}: ${policy.sourceRegion} → ${copies}, as of ${new Date(nowMs).toISOString()}. Nothing was changed.`,
  );
  const rules = [
    { region: policy.sourceRegion, rule: policy.retention },
    ...policy.copies.map((c) => ({ region: c.region, rule: c.retention })),
  ];
  out.info(`Retention: ${rules.map((r) => `${r.region} ${r.rule ? ruleText(r.rule) : 'none (nothing deleted)'}`).join('; ')}`);

  out.info('');
  if (report.instances.length === 0) {
    out.info('Instances a run would back up: none (the run would succeed with an empty report).');
  } else {
    out.info(`Instances a run would back up (${report.instances.length}):`);
    for (const id of report.instances) out.info(`  ${id}${names.has(id) ? `  ${names.get(id)}` : ''}`);
  }
  if (report.problems.length > 0) {
    out.info(`Problems (${report.problems.length}): skipped by the run, reported in its result`);
    for (const p of report.problems) out.info(`  ${p.instanceId} ${p.reason}`);
  }

  out.info('');
  const ruleRegions = retentionRegions(policy);
  if (ruleRegions.length === 0) {
    out.info('Retention would delete nothing: the policy has no retention rule.');
  } else if (report.deletions.length === 0) {
    out.info(`Retention would delete nothing on the next run (${ruleRegions.map((r) => r.region).join(', ')}).`);
  } else {
    out.info('Retention would delete on the next run (after its new image is available):');
    let lastInstance = '';
    let lastRegion = '';
    for (const d of report.deletions) {
      if (d.instanceId !== lastInstance) {
        out.info(`  ${d.instanceId}${names.has(d.instanceId) ? ` (${names.get(d.instanceId)})` : ''}`);
        lastInstance = d.instanceId;
        lastRegion = '';
      }
      if (d.region !== lastRegion) {
        out.info(`    ${d.region}`);
        lastRegion = d.region;
      }
      const age = ageText(nowMs - (imageTimes.get(`${d.region}|${d.imageId}`) ?? NaN));
      const what = d.reason === ORPHAN_REASON ? `snapshots of ${d.imageId || 'an unknown image'}` : d.imageId;
      out.info(
        `      ${what}  run ${d.runId ?? '-'}  ${d.reason === ORPHAN_REASON ? '' : `age ${age}  `}${d.reason}  ${plural(d.snapshotIds.length, 'snapshot')}`,
      );
    }
  }
  const images = report.deletions.filter((d) => d.reason !== ORPHAN_REASON).length;
  const snapshots = report.deletions.reduce((n, d) => n + d.snapshotIds.length, 0);
  const regions = new Set(report.deletions.map((d) => d.region)).size;
  const instances = new Set(report.deletions.map((d) => d.instanceId)).size;
  out.info(
    `Total: ${plural(report.instances.length, 'instance')} to back up, ${plural(report.problems.length, 'problem')}; ` +
      `${plural(images, 'image')} and ${plural(snapshots, 'snapshot')} to delete` +
      (images + snapshots > 0 ? ` (${plural(instances, 'instance')}, ${plural(regions, 'region')})` : '') +
      '. Nothing was changed.',
  );
}

export async function planCommand(opts: { policy: string; at?: string; json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  const policy = loadPolicyFile(opts.policy);
  const nowMs = opts.at === undefined ? Date.now() : Date.parse(opts.at);
  if (!Number.isFinite(nowMs)) {
    throw new UsageError(`--at "${opts.at}" is not a time: use ISO 8601 such as 2026-12-04T03:00:00Z`);
  }
  return withOperatorAws('plan', policy.roleArn, PERMISSIONS, async (aws) => {
    const result = await computePlan(aws, policy, nowMs);
    printPlan(out, policy, result);
    if (out.json) console.log(JSON.stringify(result.report));
    return EXIT_OK;
  });
}

export function registerPlanCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('plan')
    .description('Show what a run of the policy would do now: the instances it backs up and the images retention deletes. Changes nothing.')
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON)')
    .option('--at <time>', 'plan for a run at this time (ISO 8601, default now): what maxAge retires by then')
    .option('--json', 'print the plan as one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
Reads AWS directly with your own AWS credentials (the standard AWS SDK chain; the policy's
roleArn is assumed as the worker does). Starts no workflow, creates and deletes nothing.

Deletions are computed with the same selection the run applies after its new image is available:
that new image counts as one of keepLast; in copy regions the image the SSM parameter holds now is
not protected (the run points the parameter at its new copy first). Snapshots left behind by an
image already deregistered (over an hour ago) are listed too: the run deletes them as well.
Needs ec2:DescribeInstances, ec2:DescribeImages, ec2:DescribeSnapshots, and ssm:GetParameters in
the source region when it has a retention rule.

Examples:
  ami-backup plan --policy policy.yaml
  ami-backup plan --policy policy.yaml --at 2026-12-24T03:00:00Z
  ami-backup plan --policy policy.yaml --json | tail -1 | jq '.deletions | group_by(.region) | map({region: .[0].region, images: length})'

Exit codes: 0 planned, 1 AWS refused or could not be reached, 2 bad input (bad policy).`,
    )
    .action(async (opts) => setExit(await planCommand(opts)));
}
