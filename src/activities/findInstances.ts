import { DescribeInstancesCommand, type EC2Client, type Filter, type Instance } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { FindInstancesInput, FindInstancesOutput } from '../shared/types';
import type { AwsClients } from './aws';
import { awsCall, type ErrorContext } from './errors';
import { beat } from './heartbeat';

/**
 * Instance states a tag-targeted fleet run backs up. DLM targets running and stopped instances;
 * the two transitional states between them are included too, so an instance that happens to be
 * starting or stopping when the schedule fires is not silently skipped: CreateImage answers
 * IncorrectInstanceState for a moment, which is retryable, and the state settles within minutes.
 * shutting-down and terminated instances are never targeted.
 */
export const TARGET_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped'] as const;

const GONE_STATES = new Set(['shutting-down', 'terminated']);

/** The `instance-id` filter takes at most 200 values. */
const ID_CHUNK = 200;

export interface FindInstancesOptions {
  /** DescribeInstances MaxResults (5 to 1000); tests lower it to exercise paging. */
  pageSize?: number;
}

/** Every instance matching the filters, following NextToken through every page. */
async function describeAll(ec2: EC2Client, filters: Filter[], pageSize: number, ctx: ErrorContext): Promise<Instance[]> {
  const instances: Instance[] = [];
  let NextToken: string | undefined;
  do {
    beat();
    const page = await awsCall(ctx, () => ec2.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: pageSize, NextToken })));
    instances.push(...(page.Reservations ?? []).flatMap((r) => r.Instances ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return instances;
}

/** EC2 filter values treat `*` and `?` as wildcards: the tags are checked again, exactly. */
function hasEveryTag(instance: Instance, tags: Record<string, string>): boolean {
  const own = new Map((instance.Tags ?? []).map((t) => [t.Key, t.Value]));
  return Object.entries(tags).every(([key, value]) => own.get(key) === value);
}

async function byTags(
  ec2: EC2Client,
  input: FindInstancesInput,
  tags: Record<string, string>,
  pageSize: number,
): Promise<FindInstancesOutput> {
  const ctx: ErrorContext = { operation: 'ec2:DescribeInstances', region: input.region };
  const filters: Filter[] = [
    ...Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
    { Name: 'instance-state-name', Values: [...TARGET_INSTANCE_STATES] },
  ];
  const found = await describeAll(ec2, filters, pageSize, ctx);
  const ids = found.filter((i) => hasEveryTag(i, tags)).flatMap((i) => (i.InstanceId ? [i.InstanceId] : []));
  return { instanceIds: [...new Set(ids)].sort(), problems: [] };
}

/**
 * The `instance-id` filter rather than InstanceIds: InstanceIds fails the whole call with
 * InvalidInstanceID.NotFound when one ID is unknown, the filter just leaves it out, so each
 * missing instance can be reported on its own while the others are backed up.
 */
async function byIds(ec2: EC2Client, input: FindInstancesInput, requested: string[], pageSize: number): Promise<FindInstancesOutput> {
  const ctx: ErrorContext = { operation: 'ec2:DescribeInstances', region: input.region };
  const unique = [...new Set(requested)].sort();
  const stateOf = new Map<string, string>();
  for (let i = 0; i < unique.length; i += ID_CHUNK) {
    const chunk = unique.slice(i, i + ID_CHUNK);
    for (const instance of await describeAll(ec2, [{ Name: 'instance-id', Values: chunk }], pageSize, ctx)) {
      if (instance.InstanceId) stateOf.set(instance.InstanceId, instance.State?.Name ?? 'unknown');
    }
  }
  const instanceIds: string[] = [];
  const problems: FindInstancesOutput['problems'] = [];
  for (const id of unique) {
    const state = stateOf.get(id);
    if (state === undefined) {
      problems.push({
        instanceId: id,
        reason: `does not exist in ${input.region}: remove it from targets.instanceIds (or check the policy's sourceRegion)`,
      });
    } else if (GONE_STATES.has(state)) {
      const how = state === 'terminated' ? '' : ` (${state})`;
      problems.push({ instanceId: id, reason: `is terminated${how}: remove it from targets.instanceIds` });
    } else {
      instanceIds.push(id);
    }
  }
  return { instanceIds, problems };
}

/**
 * The instances a fleet run backs up: those carrying every tag of the policy (in a state of
 * TARGET_INSTANCE_STATES), or the listed instance IDs that still exist. Listed instances that
 * are gone come back in `problems`, with what to do about them, instead of failing the run.
 */
export async function findInstances(
  aws: AwsClients,
  input: FindInstancesInput,
  options: FindInstancesOptions = {},
): Promise<FindInstancesOutput> {
  const ec2 = aws.ec2(input.region, input.roleArn);
  const pageSize = options.pageSize ?? 1000;
  const hasTags = input.tags !== undefined && Object.keys(input.tags).length > 0;
  if (input.instanceIds !== undefined && input.tags === undefined) return byIds(ec2, input, input.instanceIds, pageSize);
  if (hasTags && input.instanceIds === undefined) return byTags(ec2, input, input.tags!, pageSize);
  // Never describe "every instance": a target with no tags would otherwise back up the whole region.
  throw ApplicationFailure.nonRetryable(
    `findInstances in ${input.region} needs exactly one of targets.tags (at least one tag) or targets.instanceIds: fix the policy's targets.`,
    'InvalidTargets',
  );
}
