/**
 * Benchmarks 1, 2 and 5, on the real stack: the Temporal CLI dev server, moto, and the worker.
 *
 *  1. one backup through Temporal (client start to result) versus the direct script;
 *  2. fleets of N instances through backupFleet versus the script sequentially and with the same
 *     concurrency, with the worker's peak RSS and CPU (the worker is a child process);
 *  5. AWS calls per backup by operation, counted with an SDK middleware in an in-process worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { startDevServer, startMoto, stopProcess, type Moto } from '../scripts/stack';
import { createActivities, createAwsClients } from '../src/activities';
import { policySchema, type Policy } from '../src/policy/schema';
import { fleetWorkflowId, instanceWorkflowId, runIdFor } from '../src/shared/naming';
import type { FleetReport } from '../src/shared/types';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../src/temporal/searchAttributes';
import { createWorker } from '../src/worker';
import { backupFleet, backupInstance } from '../src/workflows';
import { countingAws, motoEnv, seedFleet, useMotoHere, type CallCounts } from './aws';
import { directBackup, directFleet } from './direct';
import { Cleanup, ROOT, log, median, processMeter, timed } from './lib';

const WORKER = path.join(ROOT, 'dist/src/worker.js');
const SOURCE = 'us-east-1';
const COPY = 'eu-west-1';

export interface LiveOptions {
  runs: number;
  fleetSizes: number[];
  /** Fleets larger than this run once (and the sequential script is extrapolated above `sequentialMax`). */
  onceAbove: number;
  sequentialMax: number;
  callsFleetSize: number;
}

export interface SingleResult {
  temporalMs: number[];
  directMs: number[];
}

export interface FleetRun {
  wallMs: number;
  cpuSeconds: number;
  peakRssMb: number;
}

export interface FleetResult {
  n: number;
  temporal: FleetRun[];
  concurrent: Array<{ wallMs: number; cpuSeconds: number }>;
  /** Measured runs of the sequential script; empty when it is extrapolated. */
  sequential: number[];
  /** Median wall time of one sequential backup, from the smallest fleet, when extrapolated. */
  sequentialExtrapolatedMs?: number;
}

export interface CallsResult {
  single: Record<string, number>;
  direct: Record<string, number>;
  fleet: Record<string, number>;
  fleetSize: number;
}

export interface LiveResults {
  policy: Policy;
  single: SingleResult;
  fleets: FleetResult[];
  calls: CallsResult;
}

let counter = 0;
export function benchPolicy(label: string, overrides: Record<string, unknown> = {}): Policy {
  counter += 1;
  const name = `bench-${label}-${process.pid}-${counter}`.slice(0, 64);
  return policySchema.parse({
    name,
    sourceRegion: SOURCE,
    targets: { tags: { BenchFleet: name } },
    copies: [{ region: COPY, retention: { keepLast: 3 } }],
    retention: { keepLast: 3 },
    // Short waits: moto makes images available at once, so every wait is one firstCheck.
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '10m' },
    maxConcurrent: 10,
    // As many copy slots as backups in flight: the scripts do not coordinate copies either.
    maxConcurrentCopies: 10,
    ...overrides,
  });
}

/**
 * The fleets of sections 2 and 6: benchPolicy without retention. Moto answers a tag-filtered
 * DescribeImages / DescribeSnapshots in time that grows with images x tags in the region (2 to
 * 3.5 s each at ~500 images, against 20 ms for a look-up by ID or name), and retention makes four
 * such listings per backup: at N = 500 the fleet becomes a benchmark of moto's tag index, and the
 * 30 s activity timeouts meant for dead workers expire while requests queue behind it.
 * Retention's own cost is in sections 1 and 5.
 */
export function fleetPolicy(label: string): Policy {
  return benchPolicy(label, { retention: undefined, copies: [{ region: COPY }] });
}

export interface WorkerProcess {
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startWorkerProcess(
  cleanup: Cleanup,
  address: string,
  taskQueue: string,
  moto: Moto,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: 'default',
      AMI_BACKUP_TASK_QUEUE: taskQueue,
      AMI_BACKUP_LOG_LEVEL: 'WARN',
      ...motoEnv(moto.endpoint),
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = cleanup.add('worker process', () => stopProcess(child, 15_000));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      out = (out + c.toString()).slice(-8_000);
      if (out.includes('polling task queue')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the worker (${WORKER}) exited with ${code} while starting:\n${out}`)));
    setTimeout(() => reject(new Error(`the worker did not start polling within 60 s:\n${out}`)), 60_000).unref();
  });
  return { child, stop };
}

const sorted = (counts: CallCounts): Record<string, number> => Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));

/** Moto (without default images) and a dev server, a client of it and an EC2 client for seeding; all stopped by `cleanup`. */
export async function startBenchStack(cleanup: Cleanup) {
  const [moto, server] = await Promise.all([
    startMoto({ defaultAmis: false }),
    startDevServer({ searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES }),
  ]);
  cleanup.add('moto', () => moto.stop());
  cleanup.add('Temporal dev server', () => server.stop());
  useMotoHere(moto.endpoint);
  const connection = await Connection.connect({ address: server.address });
  cleanup.add('client connection', () => connection.close());
  const client = new Client({ connection, namespace: 'default' });
  const ec2 = new EC2Client({ region: SOURCE });
  cleanup.add('seeding client', async () => ec2.destroy());
  return { moto, server, client, ec2 };
}

export async function liveBenchmarks(opts: LiveOptions, cleanup: Cleanup): Promise<LiveResults> {
  log('starting moto and the Temporal dev server');
  const { moto, server, client, ec2 } = await startBenchStack(cleanup);
  const acts = createActivities(createAwsClients());
  const taskQueue = `bench-${process.pid}`;

  // 1. Single-instance overhead.
  log(`1. single instance: ${opts.runs} run(s) through Temporal and of the direct script (after one warm-up each)`);
  const single: SingleResult = { temporalMs: [], directMs: [] };
  const singlePolicy = benchPolicy('single');
  let worker = await startWorkerProcess(cleanup, server.address, taskQueue, moto);
  const ids = await seedFleet(ec2, 2 * (opts.runs + 1), { BenchFleet: singlePolicy.name });
  for (let i = 0; i <= opts.runs; i++) {
    const runId = runIdFor(new Date());
    const viaTemporal = await timed(() =>
      client.workflow.execute(backupInstance, {
        taskQueue,
        workflowId: `${instanceWorkflowId(singlePolicy.name, ids[2 * i]!)}-${i}`,
        args: [{ policy: singlePolicy, instanceId: ids[2 * i]!, runId }],
      }),
    );
    if (viaTemporal.value.status !== 'succeeded')
      throw new Error(`benchmark 1: the backup through Temporal ended ${viaTemporal.value.status}`);
    const direct = await timed(() => directBackup(acts, singlePolicy, ids[2 * i + 1]!, runId));
    if (i === 0) continue; // warm-up
    single.temporalMs.push(viaTemporal.ms);
    single.directMs.push(direct.ms);
    log(`   run ${i}: Temporal ${viaTemporal.ms.toFixed(0)} ms, direct ${direct.ms.toFixed(0)} ms`);
  }
  await worker.stop();

  // 2. Fleet throughput.
  const fleets: FleetResult[] = [];
  let perSequentialBackupMs: number | undefined;
  for (const n of opts.fleetSizes) {
    const runs = n > opts.onceAbove ? 1 : opts.runs;
    const result: FleetResult = { n, temporal: [], concurrent: [], sequential: [] };
    for (let r = 0; r < runs; r++) {
      await moto.reset();
      const policy = fleetPolicy(`f${n}`);
      await seedFleet(ec2, n, { BenchFleet: policy.name });
      worker = await startWorkerProcess(cleanup, server.address, taskQueue, moto);
      const meter = processMeter(worker.child);
      const fleet = await timed(() =>
        client.workflow.execute(backupFleet, { taskQueue, workflowId: `${fleetWorkflowId(policy.name)}-${r}`, args: [{ policy }] }),
      );
      const usage = meter();
      await worker.stop();
      const report: FleetReport = fleet.value;
      if (report.counts.succeeded !== n) {
        throw new Error(
          `benchmark 2: the fleet of ${n} backed up ${report.counts.succeeded} (failed ${report.counts.failed}, skipped ${report.counts.skipped})`,
        );
      }
      result.temporal.push({ wallMs: fleet.ms, ...usage });
      log(
        `2. N=${n} run ${r + 1}/${runs}: Temporal ${(fleet.ms / 1000).toFixed(1)} s, worker ${usage.cpuSeconds.toFixed(1)} CPU s, peak RSS ${usage.peakRssMb.toFixed(0)} MB`,
      );

      await moto.reset();
      const concurrentPolicy = fleetPolicy(`c${n}`);
      const concurrentIds = await seedFleet(ec2, n, { BenchFleet: concurrentPolicy.name });
      const cpu0 = process.cpuUsage();
      const concurrent = await timed(() =>
        directFleet(acts, concurrentPolicy, concurrentIds, runIdFor(new Date()), concurrentPolicy.maxConcurrent),
      );
      const cpu = process.cpuUsage(cpu0);
      result.concurrent.push({ wallMs: concurrent.ms, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
      log(`   script, ${concurrentPolicy.maxConcurrent} at a time: ${(concurrent.ms / 1000).toFixed(1)} s`);

      if (n <= opts.sequentialMax) {
        await moto.reset();
        const seqPolicy = fleetPolicy(`s${n}`);
        const seqIds = await seedFleet(ec2, n, { BenchFleet: seqPolicy.name });
        const sequential = await timed(() => directFleet(acts, seqPolicy, seqIds, runIdFor(new Date()), 1));
        result.sequential.push(sequential.ms);
        log(`   script, one at a time: ${(sequential.ms / 1000).toFixed(1)} s`);
      }
    }
    if (result.sequential.length > 0) perSequentialBackupMs ??= median(result.sequential) / n;
    else result.sequentialExtrapolatedMs = perSequentialBackupMs;
    fleets.push(result);
  }

  // 5. AWS calls by operation, counted in an in-process worker (and in the direct script).
  log(`5. AWS calls: one backup, the direct script, and a fleet of ${opts.callsFleetSize}`);
  await moto.reset();
  const counted = { single: new Map(), direct: new Map(), fleet: new Map() } satisfies Record<string, CallCounts>;
  const callsPolicy = benchPolicy('calls');
  const callIds = await seedFleet(ec2, 2, { BenchFleet: `${callsPolicy.name}-single` });
  const callsFleetPolicy = benchPolicy('callsfleet');
  await seedFleet(ec2, opts.callsFleetSize, { BenchFleet: callsFleetPolicy.name });
  // One set of clients; the counter is switched between the measurements (nothing overlaps).
  let current: CallCounts = counted.single;
  const counting = countingAws((op) => current.set(op, (current.get(op) ?? 0) + 1));
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  cleanup.add('worker connection', () => nativeConnection.close());
  const callsQueue = `${taskQueue}-calls`;
  const inProcess = await createWorker({ connection: nativeConnection, namespace: 'default', taskQueue: callsQueue, aws: counting });
  await inProcess.runUntil(async () => {
    const runId = runIdFor(new Date());
    current = counted.single;
    const r = await client.workflow.execute(backupInstance, {
      taskQueue: callsQueue,
      workflowId: `${instanceWorkflowId(callsPolicy.name, callIds[0]!)}-calls`,
      args: [{ policy: callsPolicy, instanceId: callIds[0]!, runId }],
    });
    if (r.status !== 'succeeded') throw new Error(`benchmark 5: the counted backup ended ${r.status}`);
    current = counted.fleet;
    const report = await client.workflow.execute(backupFleet, {
      taskQueue: callsQueue,
      workflowId: fleetWorkflowId(callsFleetPolicy.name),
      args: [{ policy: callsFleetPolicy }],
    });
    if (report.counts.succeeded !== opts.callsFleetSize)
      throw new Error(`benchmark 5: the counted fleet backed up ${report.counts.succeeded} of ${opts.callsFleetSize}`);
  });
  current = counted.direct;
  await directBackup(createActivities(counting), callsPolicy, callIds[1]!, runIdFor(new Date()));

  return {
    policy: singlePolicy,
    single,
    fleets,
    calls: { single: sorted(counted.single), direct: sorted(counted.direct), fleet: sorted(counted.fleet), fleetSize: opts.callsFleetSize },
  };
}
