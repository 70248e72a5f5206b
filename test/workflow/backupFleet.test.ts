/**
 * backupFleet on a real Temporal dev server with stub activities: the sliding window, copy slots
 * across the fleet, per-instance failures and skips. The children are the real backupInstance.
 */
import { instanceWorkflowId } from '../../src/shared/naming';
import type { FleetProgress, FleetReport } from '../../src/shared/types';
import { INSTANCE_ATTRIBUTE, POLICY_ATTRIBUTE } from '../../src/temporal/searchAttributes';
import { backupFleet, backupInstance, fleetProgressQuery } from '../../src/workflows';
import { env, findInputs, fleet, instanceIds, maxChildrenInFlight, startFleet, stats, taskQueue, useFleetHarness } from '../helpers/fleet';

useFleetHarness();

describe('backupFleet', () => {
  test('25 instances, maxConcurrent 4: every one backed up by its own child, never more than 4 at once', async () => {
    const ids = instanceIds(25);
    const policy = fleet('web25', { instances: ids }, { maxConcurrent: 4 });
    const handle = await startFleet(policy);
    const report: FleetReport = await handle.result();

    expect(report.counts).toEqual({ total: 25, succeeded: 25, failed: 0, skipped: 0 });
    expect(report.instances.map((r) => r.instanceId).sort()).toEqual([...ids].sort());
    for (const r of report.instances) {
      expect(r).toMatchObject({ status: 'succeeded', workflowId: instanceWorkflowId('web25', r.instanceId) });
      expect(r.sourceImageId).toBe(`ami-s${r.instanceId.slice(2)}`);
      expect(r.copies).toEqual([{ region: 'eu-west-1', imageId: `ami-ceu${r.instanceId.slice(2)}` }]);
    }
    const max = await maxChildrenInFlight(handle);
    expect(max).toBeLessThanOrEqual(4);
    expect(max).toBe(4); // the window is used, not just bounded
    expect(findInputs.find((f) => f.tags?.Fleet === 'web25')).toMatchObject({ region: 'us-east-1', tags: { Fleet: 'web25' } });
    // Every child ran with the fleet's run ID and under its deterministic workflow ID.
    const child = await env.client.workflow.getHandle(instanceWorkflowId('web25', ids[0]!)).describe();
    expect(child.type).toBe('backupInstance');
    expect(child.parentExecution?.workflowId).toBe(handle.workflowId);
  });

  test('zero matching instances is a success with an empty report', async () => {
    const policy = fleet('empty', { instances: [] });
    const report = await (await startFleet(policy)).result();
    expect(report.counts).toEqual({ total: 0, succeeded: 0, failed: 0, skipped: 0 });
    expect(report.instances).toEqual([]);
  });

  test('one instance failing fails alone; listed instances that are gone are reported failed with why', async () => {
    const ids = instanceIds(5);
    const policy = fleet('mixed', {
      instances: ids,
      failCreate: new Set([ids[2]!]),
      problems: [{ instanceId: 'i-0deadbeefdeadbeef', reason: 'is terminated: remove it from targets.instanceIds' }],
    });
    const report = await (await startFleet(policy)).result();

    expect(report.counts).toEqual({ total: 6, succeeded: 4, failed: 2, skipped: 0 });
    const failed = report.instances.find((r) => r.instanceId === ids[2]);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toContain('InvalidInstanceID.NotFound');
    expect(failed?.error).toContain(ids[2]);
    expect(report.instances.find((r) => r.instanceId === 'i-0deadbeefdeadbeef')).toMatchObject({
      status: 'failed',
      error: 'i-0deadbeefdeadbeef is terminated: remove it from targets.instanceIds',
    });
  });

  test('an instance whose backup is already running is skipped, naming the running workflow', async () => {
    const ids = instanceIds(3);
    let release!: () => void;
    const until = new Promise<void>((r) => (release = r));
    const policy = fleet('busy', { instances: ids, gate: { ids: new Set([ids[1]!]), until } });
    // An ad-hoc run of one instance holds its workflow ID.
    const adHoc = await env.client.workflow.start(backupInstance, {
      taskQueue,
      workflowId: instanceWorkflowId('busy', ids[1]!),
      args: [{ policy, instanceId: ids[1]!, runId: '20261203T000000Z' }],
    });
    const report = await (await startFleet(policy)).result();
    release();
    await adHoc.result();

    expect(report.counts).toMatchObject({ total: 3, succeeded: 2, skipped: 1 });
    const skipped = report.instances.find((r) => r.instanceId === ids[1]);
    expect(skipped?.status).toBe('skipped');
    expect(skipped?.error).toContain(`already running (workflow ${instanceWorkflowId('busy', ids[1]!)})`);
  });

  test('copy limit 2, 6 instances, two copy regions: never more than 2 copies in flight per region; ResourceLimitExceeded only delays', async () => {
    const ids = instanceIds(6);
    const policy = fleet(
      'copies',
      { instances: ids, copyPendingPolls: 2, copyLimitErrors: { 'eu-central-1': 2 } },
      { maxConcurrent: 6, maxConcurrentCopies: 2, copies: [{ region: 'eu-west-1' }, { region: 'eu-central-1' }] },
    );
    const handle = await startFleet(policy);

    // Mid-run, the fleet's progress shows the copy slots.
    let seen: FleetProgress | undefined;
    for (let i = 0; i < 100 && !seen; i++) {
      const p = await handle.query(fleetProgressQuery).catch(() => undefined);
      if (p && Object.values(p.copySlots).some((s) => s.inFlight > 0)) seen = p;
      else await new Promise((r) => setTimeout(r, 100));
    }
    const report = await handle.result();

    expect(report.counts).toEqual({ total: 6, succeeded: 6, failed: 0, skipped: 0 });
    for (const region of ['eu-west-1', 'eu-central-1']) {
      const s = stats('copies', region);
      expect(s.made).toBe(6);
      expect(s.max).toBeLessThanOrEqual(2);
      expect(s.max).toBe(2);
    }
    expect(stats('copies', 'eu-central-1').refused).toBe(2);
    expect(seen?.copySlots['eu-west-1']?.limit).toBe(2);
    expect(seen!.copySlots['eu-west-1']!.inFlight).toBeLessThanOrEqual(2);
    // The refused copies are in the child's history as retried attempts, not failures.
    const children = report.instances.map((r) => r.workflowId!);
    let retried = 0;
    for (const id of children) {
      for (const e of (await env.client.workflow.getHandle(id).fetchHistory()).events ?? []) {
        const attempt = e.activityTaskStartedEventAttributes?.attempt ?? 1;
        if (attempt > 1 && e.activityTaskStartedEventAttributes?.lastFailure?.applicationFailureInfo?.type === 'ResourceLimitExceeded')
          retried += 1;
      }
    }
    expect(retried).toBeGreaterThanOrEqual(1);
    // Six children for two slots: each one asked for its slot (one request and one release per region).
    expect(await slotSignalsSent(children[0]!)).toBe(4);
  });

  test('a window no larger than the copy slots cannot reach the limit: children copy without asking for slots', async () => {
    const ids = instanceIds(4);
    // maxConcurrent 10 > 5 copy slots, but only 4 instances: at most 4 copies per region at once.
    const small = await (await startFleet(fleet('small', { instances: ids }))).result();
    expect(small.counts).toEqual({ total: 4, succeeded: 4, failed: 0, skipped: 0 });
    for (const r of small.instances) expect(await slotSignalsSent(r.workflowId!)).toBe(0);
    expect(stats('small', 'eu-west-1').made).toBe(4);

    // maxConcurrent 3 with 3 copy slots over 7 instances: the window never exceeds the slots.
    const ids7 = instanceIds(7);
    const windowed = await (
      await startFleet(fleet('windowed', { instances: ids7 }, { maxConcurrent: 3, maxConcurrentCopies: 3 }))
    ).result();
    expect(windowed.counts).toEqual({ total: 7, succeeded: 7, failed: 0, skipped: 0 });
    for (const r of windowed.instances) expect(await slotSignalsSent(r.workflowId!)).toBe(0);
    expect(stats('windowed', 'eu-west-1').max).toBeLessThanOrEqual(3);
  });
});

/** Copy-slot signals a child sent to its fleet (requests and releases). */
async function slotSignalsSent(workflowId: string): Promise<number> {
  const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName?.startsWith('copySlot')).length;
}

test('with the search attributes registered, every child carries AmiBackupPolicy and AmiBackupInstanceId; without, none', async () => {
  const ids = instanceIds(2);
  const policy = fleet('indexed', { instances: ids });
  const handle = await env.client.workflow.start(backupFleet, {
    taskQueue,
    workflowId: 'fleet-indexed',
    args: [{ policy, searchAttributes: true }],
  });
  await handle.result();
  const child = await env.client.workflow.getHandle(instanceWorkflowId('indexed', ids[0]!)).describe();
  expect(child.typedSearchAttributes.get(POLICY_ATTRIBUTE)).toBe('indexed');
  expect(child.typedSearchAttributes.get(INSTANCE_ATTRIBUTE)).toBe(ids[0]);
  expect(child.memo).toMatchObject({ policy: 'indexed', instanceId: ids[0] });
  const fleetMemo = (await handle.describe()).memo;
  expect(fleetMemo).toMatchObject({ total: 2, counts: { succeeded: 2, failed: 0, skipped: 0 } });

  const plainIds = instanceIds(1);
  const plainPolicy = fleet('unindexed', { instances: plainIds });
  await (await startFleet(plainPolicy)).result();
  const plainChild = await env.client.workflow.getHandle(instanceWorkflowId('unindexed', plainIds[0]!)).describe();
  expect(plainChild.typedSearchAttributes.get(POLICY_ATTRIBUTE)).toBeUndefined();
});

test('a cancelled fleet ends only after every running child has stopped', async () => {
  const ids = instanceIds(3);
  let release!: () => void;
  const until = new Promise<void>((r) => (release = r));
  const policy = fleet('cancelme', { instances: ids, gate: { ids: new Set(ids), until } });
  const handle = await startFleet(policy);
  // Wait until all three children are running (their createImage is held).
  for (let i = 0; i < 100; i++) {
    const p = await handle.query(fleetProgressQuery).catch(() => undefined);
    if (p?.inFlight.length === 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow();
  release();
  expect((await handle.describe()).status.name).toBe('CANCELLED');
  for (const id of ids) {
    const child = await env.client.workflow.getHandle(instanceWorkflowId('cancelme', id)).describe();
    expect(child.status.name).toBe('CANCELLED');
  }
});
