/**
 * The end-to-end stack, as a user runs it, for any e2e test file: the Temporal dev server (with
 * the ami-backup search attributes), moto, the REAL worker process (dist/src/worker.js) and the
 * REAL CLI process (dist/src/client.js).
 *
 * Between the worker (and the CLI) and moto sits the recording proxy (recordingProxy.ts): it keeps
 * every exchange with its body, timing and response, and can answer a request itself
 * (`proxy.inject`), for AWS errors moto never gives.
 *
 * Usage, one stack per test file:
 *
 *   let stack: E2eStack;
 *   beforeAll(async () => { stack = await startE2e(); }, 180_000);
 *   afterAll(() => stack?.stop());
 *
 * The test's own AWS clients (`stack.ec2(region)`, `stack.ssm(region)`) talk to moto directly,
 * so nothing a test does to arrange or check moto shows up in the recordings.
 *
 * For the reliability suite: `killWorker()` / `startWorker()` replace the worker process, and with
 * `{ devServer: { dbFile } }` Temporal is the CLI dev server keeping its state in that file, so
 * `restartTemporal()` can stop it and start it again on the same port with the same state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { RunReport } from '../../src/client';
import { TestWorkflowEnvironment as TestEnv } from '@temporalio/testing';
import { startDevServer, startMoto, stopProcess, type DevServer, type Moto } from '../../scripts/stack';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../../src/temporal/searchAttributes';
import { startRecordingProxy, type RecordingProxy } from './recordingProxy';
import { startTemporal, uniqueTaskQueue } from './temporal';

const ROOT = path.resolve(__dirname, '../..');
export const CLIENT = path.join(ROOT, 'dist/src/client.js');
export const WORKER = path.join(ROOT, 'dist/src/worker.js');

const CREDENTIALS = { accessKeyId: 'e2e-access-key', secretAccessKey: 'e2e-secret-key' };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The last line of stdout as JSON: where every `--json` command puts its object. */
export function lastJson<T = RunReport>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export interface E2eOptions {
  /** Added to the worker's environment (after the defaults below). */
  workerEnv?: NodeJS.ProcessEnv;
  /**
   * Temporal as `temporal server start-dev` keeping its state in `dbFile` (restartTemporal() needs
   * it), instead of the default dev server of @temporalio/testing (in memory).
   */
  devServer?: { dbFile: string };
}

export interface E2eStack {
  env: TestWorkflowEnvironment;
  moto: Moto;
  proxy: RecordingProxy;
  taskQueue: string;
  /** A temporary directory for policy files, removed by stop(). */
  dir: string;
  /** The current worker process (a test may stop it; stop() copes). */
  readonly worker: ChildProcess;
  /** Kills the current worker (SIGKILL by default: no goodbye to Temporal) and waits for it to exit. */
  killWorker(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a new worker process (extra environment on top of the first one's) and waits until it polls. */
  startWorker(extraEnv?: NodeJS.ProcessEnv): Promise<void>;
  /** Stops the dev server and starts it again on the same port with the same database (devServer option only). */
  restartTemporal(opts?: { downMs?: number }): Promise<void>;
  /** Everything the worker printed so far. */
  workerLog(): string;
  /** The environment of the worker and the CLI: Temporal, the task queue, AWS through the proxy. */
  processEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs the real CLI (`node dist/src/client.js …`) to its end, or kills it when `signal` aborts. */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<CliResult>;
  /** Writes a policy (an object becomes JSON) into `dir` and returns its path. */
  writePolicy(file: string, body: object | string): string;
  /** AWS clients straight to moto (not recorded), one per region, destroyed by stop(). */
  ec2(region: string): EC2Client;
  ssm(region: string): SSMClient;
  stop(): Promise<void>;
}

/**
 * The worker's environment on top of processEnv(): a copy that meets ResourceLimitExceeded
 * tries again after 1 s instead of a minute.
 */
export const WORKER_ENV: NodeJS.ProcessEnv = { AMI_BACKUP_COPY_LIMIT_RETRY_DELAY: '1s' };

export async function startE2e(opts: E2eOptions = {}): Promise<E2eStack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-e2e-'));
  const taskQueue = uniqueTaskQueue('e2e');
  let devServer: DevServer | undefined;
  const startTemporalServer = async (): Promise<TestWorkflowEnvironment> => {
    if (!opts.devServer) return startTemporal();
    devServer = await startDevServer({ dbFile: opts.devServer.dbFile, searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES });
    return TestEnv.createFromExistingServer({ address: devServer.address });
  };
  const [env, moto] = await Promise.all([startTemporalServer(), startMoto()]);
  const proxy = await startRecordingProxy(moto.endpoint);
  const ec2Clients = new Map<string, EC2Client>();
  const ssmClients = new Map<string, SSMClient>();

  const processEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    ...process.env,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_NAMESPACE: 'default',
    AMI_BACKUP_TASK_QUEUE: taskQueue,
    AWS_ENDPOINT_URL: proxy.endpoint,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    // Never a profile or session from the machine running the tests.
    AWS_PROFILE: undefined,
    AWS_SESSION_TOKEN: undefined,
    ...extra,
  });

  let workerLog = '';
  let worker: ChildProcess | undefined;
  const startWorker = async (extraEnv: NodeJS.ProcessEnv = {}): Promise<void> => {
    const child = spawn(process.execPath, [WORKER], {
      env: processEnv({ ...WORKER_ENV, ...opts.workerEnv, ...extraEnv }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker = child;
    const from = workerLog.length;
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer) => {
        workerLog += c.toString();
        if (workerLog.slice(from).includes('polling task queue')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${workerLog.slice(from)}`)));
      setTimeout(() => reject(new Error(`the worker did not start polling within 60 s:\n${workerLog.slice(from)}`)), 60_000).unref();
    });
  };
  const killWorker = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const child = worker;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  };
  const restartTemporal = async ({ downMs = 0 } = {}): Promise<void> => {
    if (!devServer || !opts.devServer) throw new Error('restartTemporal() needs startE2e({ devServer: { dbFile } })');
    const [, port] = /:(\d+)$/.exec(devServer.address)!;
    const uiPort = Number(new URL(devServer.uiUrl).port);
    await devServer.stop();
    devServer = undefined;
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    devServer = await startDevServer({
      port: Number(port),
      uiPort,
      dbFile: opts.devServer.dbFile,
      searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES,
    });
  };
  const stop = async () => {
    if (worker) await stopProcess(worker, 15_000);
    for (const c of [...ec2Clients.values(), ...ssmClients.values()]) c.destroy();
    await proxy.stop();
    await moto.stop();
    await env.teardown();
    await devServer?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await startWorker();
  } catch (err) {
    await stop();
    throw err;
  }

  const awsConfig = (region: string) => ({ region, endpoint: moto.endpoint, credentials: CREDENTIALS });
  return {
    env,
    moto,
    proxy,
    taskQueue,
    dir,
    get worker() {
      return worker!;
    },
    killWorker,
    startWorker,
    restartTemporal,
    workerLog: () => workerLog,
    processEnv,
    cli: (args, extraEnv = {}, signal) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [CLIENT, ...args], { env: processEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'], signal });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      }),
    writePolicy: (file, body) => {
      const full = path.join(dir, file);
      writeFileSync(full, typeof body === 'string' ? body : JSON.stringify(body, null, 2));
      return full;
    },
    ec2: (region) => {
      let client = ec2Clients.get(region);
      if (!client) ec2Clients.set(region, (client = new EC2Client(awsConfig(region))));
      return client;
    },
    ssm: (region) => {
      let client = ssmClients.get(region);
      if (!client) ssmClients.set(region, (client = new SSMClient(awsConfig(region))));
      return client;
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Counting in moto, for the reliability suite

export interface BackupImage {
  imageId: string;
  instanceId: string;
  runId: string;
  state?: string;
  /** The ami-backup:* tags (and Name) the image carries. */
  tags: Record<string, string>;
}

/**
 * Every image this account owns in `region` that a backup of `policy` made, tagged or not (found
 * by the deterministic name `{policy}-{instanceId}-{runId}`: a duplicate whose tags never came
 * would hide from a tag filter), by instance.
 */
export async function backupImagesByInstance(stack: E2eStack, region: string, policy: string): Promise<Map<string, BackupImage[]>> {
  const got = await stack.ec2(region).send(new DescribeImagesCommand({ Owners: ['self'] }));
  const pattern = new RegExp(`^${policy.replace(/[-]/g, '\\-')}-(i-[0-9a-f]+)-(\\d{8}T\\d{6}Z)$`);
  const byInstance = new Map<string, BackupImage[]>();
  for (const image of got.Images ?? []) {
    const m = pattern.exec(image.Name ?? '');
    if (!m || !image.ImageId) continue;
    const tags = Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    const entry: BackupImage = { imageId: image.ImageId, instanceId: m[1]!, runId: m[2]!, state: image.State, tags };
    byInstance.set(entry.instanceId, [...(byInstance.get(entry.instanceId) ?? []), entry]);
  }
  return byInstance;
}

/** `run --policy FILE --wait --json` through the real CLI: the exit code, the report, the time it took. */
export async function runPolicy(
  stack: E2eStack,
  policyFile: string,
  extraArgs: string[] = [],
  extraEnv: NodeJS.ProcessEnv = {},
  signal?: AbortSignal,
): Promise<{ code: number | null; report: RunReport; stderr: string; ms: number }> {
  const started = Date.now();
  const run = await stack.cli(
    ['run', '--policy', policyFile, '--wait', '--json', '--poll-interval', '500', ...extraArgs],
    extraEnv,
    signal,
  );
  try {
    return { code: run.code, report: lastJson(run.stdout), stderr: run.stderr, ms: Date.now() - started };
  } catch {
    throw new Error(
      `run printed no JSON report (exit ${run.code}):\n${run.stdout}\n${run.stderr}\nworker:\n${stack.workerLog().slice(-4000)}`,
    );
  }
}

/** Polls `probe` until it returns something other than undefined. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
