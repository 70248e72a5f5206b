/**
 * Benchmark 6, where a fleet run's time and memory go (for the targets of benchmark 2):
 *
 * For one fleet of N through the real worker process, it reads from /proc the CPU seconds of every
 * process sharing the machine's cores (the worker, the Temporal dev server, moto) and the worker's
 * memory: resident at idle (polling, nothing run yet), at the end, and at its peak (VmHWM). It
 * repeats the run under a few worker settings (the V8 heap caps a container would set, the
 * workflow cache), then runs the concurrent direct script on the same moto for the baseline.
 */
import { readFileSync } from 'node:fs';
import { createActivities, createAwsClients } from '../src/activities';
import { fleetWorkflowId, runIdFor } from '../src/shared/naming';
import { backupFleet } from '../src/workflows';
import { seedFleet } from './aws';
import { directFleet } from './direct';
import { Cleanup, cpuSeconds, fmt, log, peakRssMb, timed } from './lib';
import { fleetPolicy, startBenchStack, startWorkerProcess } from './live';

/** Resident memory now (VmRSS), in MB. */
function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
  return kb / 1024;
}

interface Variant {
  name: string;
  env: NodeJS.ProcessEnv;
}

const VARIANTS: Variant[] = [
  { name: 'defaults', env: {} },
  { name: 'NODE_OPTIONS=--max-old-space-size=192', env: { NODE_OPTIONS: '--max-old-space-size=192' } },
  { name: 'NODE_OPTIONS=--max-semi-space-size=4', env: { NODE_OPTIONS: '--max-semi-space-size=4' } },
  { name: 'AMI_BACKUP_MAX_CACHED_WORKFLOWS=20', env: { AMI_BACKUP_MAX_CACHED_WORKFLOWS: '20' } },
];

export interface ProfileRow {
  what: string;
  wallMs: number;
  cpu: { worker?: number; server: number; moto: number; script?: number };
  rss?: { idle: number; end: number; peak: number };
}

export interface ProfileResults {
  n: number;
  rows: ProfileRow[];
}

export async function profileBenchmarks(n: number, cleanup: Cleanup): Promise<ProfileResults> {
  {
    const { moto, server, client, ec2 } = await startBenchStack(cleanup);
    const taskQueue = `profile-${process.pid}`;
    const cpuOf = (pid: number | undefined) => (pid ? cpuSeconds(pid) : Number.NaN);
    const rows: ProfileRow[] = [];

    for (const variant of VARIANTS) {
      await moto.reset();
      const policy = fleetPolicy(`p${n}`);
      await seedFleet(ec2, n, { BenchFleet: policy.name });
      const worker = await startWorkerProcess(cleanup, server.address, taskQueue, moto, variant.env);
      const pid = worker.child.pid!;
      const idle = rssMb(pid);
      const before = { worker: cpuSeconds(pid), server: cpuOf(server.pid), moto: cpuOf(moto.pid) };
      const run = await timed(() =>
        client.workflow.execute(backupFleet, {
          taskQueue,
          workflowId: `${fleetWorkflowId(policy.name)}-${rows.length}`,
          args: [{ policy }],
        }),
      );
      const row: ProfileRow = {
        what: `ami-backup, ${variant.name}`,
        wallMs: run.ms,
        cpu: { worker: cpuSeconds(pid) - before.worker, server: cpuOf(server.pid) - before.server, moto: cpuOf(moto.pid) - before.moto },
        rss: { idle, end: rssMb(pid), peak: peakRssMb(pid) },
      };
      await worker.stop();
      if (run.value.counts.succeeded !== n)
        throw new Error(`the fleet under ${variant.name} backed up ${run.value.counts.succeeded} of ${n}`);
      rows.push(row);
      log(`${row.what}: ${fmt(row.wallMs / 1000, 1)} s, RSS idle ${fmt(idle)} / peak ${fmt(row.rss!.peak)} MB`);
    }

    await moto.reset();
    const policy = fleetPolicy(`q${n}`);
    const ids = await seedFleet(ec2, n, { BenchFleet: policy.name });
    const acts = createActivities(createAwsClients());
    const before = { server: cpuOf(server.pid), moto: cpuOf(moto.pid), self: process.cpuUsage() };
    const script = await timed(() => directFleet(acts, policy, ids, runIdFor(new Date()), policy.maxConcurrent));
    const self = process.cpuUsage(before.self);
    rows.push({
      what: `direct script, ${policy.maxConcurrent} at a time`,
      wallMs: script.ms,
      cpu: { server: cpuOf(server.pid) - before.server, moto: cpuOf(moto.pid) - before.moto, script: (self.user + self.system) / 1e6 },
    });
    log(`direct script: ${fmt(script.ms / 1000, 1)} s`);
    await cleanup.run();
    return { n, rows };
  }
}
