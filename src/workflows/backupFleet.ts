/**
 * backupFleet: every instance a policy targets, each backed up by its own backupInstance child.
 *
 *   findInstances → sliding window of children (at most maxConcurrent running)
 *     → report of every instance: succeeded / failed (with why) / skipped (with why)
 *
 * The fleet also hands out copy slots (copySlots.ts), so no more than maxConcurrentCopies
 * copies are in flight per copy region across the whole fleet. When the window itself is no
 * larger than maxConcurrentCopies the limit cannot be reached, and children copy without asking.
 *
 * History stays bounded for any fleet size: after CHILDREN_PER_RUN children (or when the server
 * suggests it) the window drains and the workflow continues as new with what is left and the
 * report so far. The report keeps full detail for REPORT_DETAIL_LIMIT instances and counts the
 * rest, so its payload stays far below Temporal's 2 MB limit even for 10,000 instances; every
 * child's own result stays in its workflow.
 *
 * Deterministic code only.
 */
import {
  ParentClosePolicy,
  TemporalFailure,
  continueAsNew,
  defineQuery,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import { describeTargets, instanceWorkflowId, runIdFor } from '../shared/naming';
import type { BackupFleetInput, BackupInstanceResult, FleetCarry, FleetInstanceResult, FleetProgress, FleetReport } from '../shared/types';
import { INSTANCE_ATTRIBUTE, POLICY_ATTRIBUTE } from '../temporal/searchAttributes';
import { backupInstance } from './backupInstance';
import { CopySlots } from './copySlots';
import { renderFleetProgress } from './render';

export const fleetProgressQuery = defineQuery<FleetProgress>('progress');

/** Children started by one run before it continues as new: keeps each run's history near 5,000 events. */
export const CHILDREN_PER_RUN = 250;
/** Instances kept in full in the report; beyond it succeeded ones are only counted (failures always listed, up to this many). */
export const REPORT_DETAIL_LIMIT = 1000;
const RECENT_FAILURES = 20;

const discovery = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '30s', // a heartbeat per page of instances
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
});

function messageOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown; name?: string } | undefined;
  // ChildWorkflowFailure / ActivityFailure wrap the failure a person wants to read.
  while (e?.cause && (e.name === 'ChildWorkflowFailure' || e.name === 'ActivityFailure')) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export async function backupFleet(input: BackupFleetInput): Promise<FleetReport> {
  const { policy } = input;
  const runId = input.runId ?? runIdFor(new Date());
  const carry: FleetCarry = input.carry ?? {
    remaining: [],
    results: [],
    counts: { succeeded: 0, failed: 0, skipped: 0 },
    total: 0,
    startedAt: new Date().toISOString(),
    generation: 0,
  };
  const { results, counts } = carry;

  let phase: FleetProgress['phase'] = input.carry ? 'backing up' : 'finding instances';
  const slots = new CopySlots(
    policy.maxConcurrentCopies,
    policy.copies.map((c) => c.region),
  );
  slots.listen();
  const inFlight = new Map<string, Promise<void>>();
  const recentFailures: FleetProgress['recentFailures'] = [];
  const progress = (): FleetProgress => ({
    policy: policy.name,
    runId,
    startedAt: carry.startedAt,
    phase,
    total: carry.total,
    ...counts,
    inFlight: [...inFlight.keys()],
    copySlots: slots.snapshot(),
    recentFailures: [...recentFailures],
    generation: carry.generation,
  });
  setHandler(fleetProgressQuery, progress);
  const show = () => setCurrentDetails(renderFleetProgress(progress()));
  show();

  function record(result: FleetInstanceResult): void {
    counts[result.status] += 1;
    if (result.status !== 'succeeded') {
      recentFailures.push({ instanceId: result.instanceId, error: result.error ?? result.status });
      if (recentFailures.length > RECENT_FAILURES) recentFailures.shift();
    }
    const listed = results.filter((r) => r.status !== 'succeeded').length;
    if (result.status === 'succeeded' ? results.length < REPORT_DETAIL_LIMIT : listed < REPORT_DETAIL_LIMIT) results.push(result);
    show();
  }

  if (!input.carry) {
    const found = await discovery.findInstances.executeWithOptions(
      {
        summary: input.instanceIds
          ? `check ${input.instanceIds.length} listed instance(s) in ${policy.sourceRegion}`
          : `find ${describeTargets(policy.targets)} in ${policy.sourceRegion}`,
      },
      [
        {
          region: policy.sourceRegion,
          roleArn: policy.roleArn,
          ...(input.instanceIds
            ? { instanceIds: input.instanceIds }
            : policy.targets.instanceIds
              ? { instanceIds: policy.targets.instanceIds }
              : { tags: policy.targets.tags }),
        },
      ],
    );
    carry.remaining = found.instanceIds;
    carry.total = found.instanceIds.length + found.problems.length;
    for (const p of found.problems) record({ instanceId: p.instanceId, status: 'failed', error: `${p.instanceId} ${p.reason}` });
    phase = 'backing up';
    // `ami-backup list` and the Web UI read the fleet's size from the memo.
    upsertMemo({ total: carry.total });
    show();
  }

  async function backUp(instanceId: string): Promise<void> {
    const workflowId = instanceWorkflowId(policy.name, instanceId);
    let child;
    try {
      child = await startChild(backupInstance, {
        workflowId,
        args: [{ policy, instanceId, runId, copySlotsFromParent: slotsNeeded }],
        staticSummary: `Back up ${instanceId} (policy ${policy.name}) from ${policy.sourceRegion} to ${policy.copies.map((c) => c.region).join(', ')}`,
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        memo: { policy: policy.name, instanceId },
        ...(input.searchAttributes
          ? {
              typedSearchAttributes: [
                { key: POLICY_ATTRIBUTE, value: policy.name },
                { key: INSTANCE_ATTRIBUTE, value: instanceId },
              ],
            }
          : {}),
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        record({
          instanceId,
          status: 'skipped',
          workflowId,
          error: `a backup of ${instanceId} was already running (workflow ${workflowId}); this run left it alone`,
        });
        return;
      }
      throw err;
    }
    try {
      const r: BackupInstanceResult = await child.result();
      record({
        instanceId,
        status: 'succeeded',
        workflowId,
        sourceImageId: r.sourceImageId,
        copies: r.copies,
        ...(r.deleted.length > 0 ? { deleted: r.deleted } : {}),
        ...(r.warnings ? { warnings: r.warnings } : {}),
      });
    } catch (err) {
      if (isCancellation(err) || !(err instanceof TemporalFailure)) throw err;
      record({ instanceId, status: 'failed', workflowId, error: messageOf(err) });
    } finally {
      slots.releaseAll(workflowId);
    }
  }

  // Slots only matter when more children can run at once than there are copy slots: each child
  // holds at most one slot per region, so with a window of at most maxConcurrentCopies the limit
  // can never be reached, and asking for slots would only cost each child three signals (three
  // actions and about 40 history events per region). Decided once per run, from what is left.
  const slotsNeeded = Math.min(policy.maxConcurrent, carry.remaining.length) > policy.maxConcurrentCopies;
  let started = 0;
  const rollOver = () => started >= CHILDREN_PER_RUN || workflowInfo().continueAsNewSuggested;
  while (carry.remaining.length > 0 || inFlight.size > 0) {
    while (inFlight.size < policy.maxConcurrent && carry.remaining.length > 0 && !rollOver()) {
      const instanceId = carry.remaining.shift()!;
      started += 1;
      inFlight.set(
        instanceId,
        backUp(instanceId).finally(() => inFlight.delete(instanceId)),
      );
      show();
    }
    if (inFlight.size === 0) break;
    try {
      await Promise.race(inFlight.values());
    } catch (err) {
      // Cancelled: every running child was asked to cancel too; end once they all have, so the
      // fleet never reports "cancelled" while its backups are still stopping.
      if (isCancellation(err)) await Promise.allSettled(inFlight.values());
      throw err;
    }
  }

  if (carry.remaining.length > 0) {
    // Everything this run started has ended (no slot is held): the next run starts clean.
    await continueAsNew<typeof backupFleet>({ ...input, runId, carry: { ...carry, generation: carry.generation + 1 } });
  }

  phase = 'done';
  upsertMemo({ total: carry.total, counts });
  show();
  const report: FleetReport = {
    policy: policy.name,
    runId,
    startedAt: carry.startedAt,
    endedAt: new Date().toISOString(),
    counts: { total: carry.total, ...counts },
    instances: results,
    unlisted: carry.total - results.length,
  };
  return report;
}
