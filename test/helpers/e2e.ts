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
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { RunReport } from '../../src/client';
import { startMoto, stopProcess, type Moto } from '../../scripts/stack';
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
}

export interface E2eStack {
  env: TestWorkflowEnvironment;
  moto: Moto;
  proxy: RecordingProxy;
  taskQueue: string;
  /** A temporary directory for policy files, removed by stop(). */
  dir: string;
  /** The worker process (a test may stop it; stop() copes). */
  worker: ChildProcess;
  /** Everything the worker printed so far. */
  workerLog(): string;
  /** The environment of the worker and the CLI: Temporal, the task queue, AWS through the proxy. */
  processEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs the real CLI (`node dist/src/client.js …`) to its end. */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<CliResult>;
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
  const [env, moto] = await Promise.all([startTemporal(), startMoto()]);
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
  const worker: ChildProcess = spawn(process.execPath, [WORKER], {
    env: processEnv({ ...WORKER_ENV, ...opts.workerEnv }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = async () => {
    await stopProcess(worker, 15_000);
    for (const c of [...ec2Clients.values(), ...ssmClients.values()]) c.destroy();
    await proxy.stop();
    await moto.stop();
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer) => {
        workerLog += c.toString();
        if (workerLog.includes('polling task queue')) resolve();
      };
      worker.stdout!.on('data', onData);
      worker.stderr!.on('data', onData);
      worker.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${workerLog}`)));
      setTimeout(() => reject(new Error(`the worker did not start polling within 60 s:\n${workerLog}`)), 60_000).unref();
    });
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
    worker,
    workerLog: () => workerLog,
    processEnv,
    cli: (args, extraEnv = {}) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [CLIENT, ...args], { env: processEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
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
