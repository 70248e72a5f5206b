/**
 * The worker process's production settings: health endpoints, Prometheus metrics, a bad setting
 * refused at start, and a clean stop on SIGTERM. Against a real dev server; no AWS call is made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { freePort, stopProcess } from '../../scripts/stack';
import { startTemporal, uniqueTaskQueue } from '../helpers/temporal';

const WORKER = path.resolve(__dirname, '../../dist/src/worker.js');
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startTemporal();
}, 180_000);

afterAll(async () => {
  await env?.teardown();
});

function startWorker(extra: NodeJS.ProcessEnv): { child: ChildProcess; log: () => string; exited: Promise<number | null> } {
  let log = '';
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      AMI_BACKUP_TASK_QUEUE: uniqueTaskQueue('proc'),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'unused',
      AWS_SECRET_ACCESS_KEY: 'unused',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: () => log, exited };
}

async function waitFor(check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('timed out');
}

test('serves /healthz, /readyz and Prometheus /metrics, then stops cleanly on SIGTERM', async () => {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const w = startWorker({
    AMI_BACKUP_METRICS_PORT: String(metricsPort),
    AMI_BACKUP_HEALTH_PORT: String(healthPort),
    AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES: '7',
    AMI_BACKUP_SHUTDOWN_GRACE: '5s',
  });
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200);
    const ready = await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json();
    expect(ready).toEqual({ ok: true, state: 'RUNNING' });
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${healthPort}/nope`)).status).toBe(404);

    let metrics = '';
    await waitFor(async () => {
      metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return /temporal_/.test(metrics);
    });
    expect(metrics).toMatch(/temporal_worker_start|temporal_num_pollers|temporal_worker_task_slots_available/);
    // The activity slot limit reached the SDK.
    expect(metrics).toMatch(/temporal_worker_task_slots_available\{[^}]*worker_type="ActivityWorker"[^}]*\} 7/);
    expect(w.log()).toContain(`health on :${healthPort}/healthz`);

    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(w.log()).toContain('stopped cleanly');
  } finally {
    await stopProcess(w.child);
  }
}, 90_000);

test('a bad setting stops the worker at start with exit 2 and the variable named', async () => {
  const w = startWorker({ AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES: 'many' });
  expect(await w.exited).toBe(2);
  expect(w.log()).toContain('AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES="many" must be a whole number');
});
