/**
 * The history bound: a fleet of 2,000 (stub) instances continues as new so that no run's history
 * comes near Temporal's limits, and the report of every instance stays small. Its own file: it
 * takes minutes (2,000 real backupInstance children on the dev server).
 */
import { CHILDREN_PER_RUN, REPORT_DETAIL_LIMIT } from '../../src/workflows/backupFleet';
import { fleet, historyOf, instanceIds, startFleet, useFleetHarness } from '../helpers/fleet';

useFleetHarness();

describe('backupFleet history bound', () => {
  test('2,000 instances: the fleet continues as new, every run keeps a bounded history, every instance is reported', async () => {
    const ids = instanceIds(2000);
    const policy = fleet('big', { instances: ids }, { maxConcurrent: 200, maxConcurrentCopies: 50 });
    const handle = await startFleet(policy);
    const report = await handle.result();

    expect(report.counts).toEqual({ total: 2000, succeeded: 2000, failed: 0, skipped: 0 });
    // Full detail for the first REPORT_DETAIL_LIMIT instances, the rest counted: the payload stays small at any size.
    expect(report.instances).toHaveLength(REPORT_DETAIL_LIMIT);
    expect(report.unlisted).toBe(2000 - REPORT_DETAIL_LIMIT);
    expect(new Set(report.instances.map((r) => r.instanceId)).size).toBe(report.instances.length);
    expect(Buffer.byteLength(JSON.stringify(report))).toBeLessThan(512 * 1024);

    // Walk the chain of runs: each one's history stays well below Temporal's limits.
    const runs: Array<{ events: number; bytes: number }> = [];
    const described = await handle.describe();
    let runId: string | undefined = described.runId;
    const seenRuns = new Set<string>();
    // The last run's first event names the run it continued from; follow them back.
    while (runId && !seenRuns.has(runId)) {
      seenRuns.add(runId);
      const events = await historyOf(handle, runId);
      runs.push({ events: events.length, bytes: Buffer.byteLength(JSON.stringify(events)) });
      runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
    }
    expect(runs.length).toBeGreaterThanOrEqual(Math.ceil(2000 / CHILDREN_PER_RUN));
    for (const r of runs) {
      expect(r.events).toBeLessThan(10_240); // Temporal warns at 10,240 events; the hard limit is 51,200
      expect(r.bytes).toBeLessThan(10 * 1024 * 1024);
    }
  }, 2_400_000);
});
