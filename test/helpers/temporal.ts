/**
 * A real Temporal server for a test file: the CLI dev server through @temporalio/testing, given
 * the binary scripts/install-temporal.sh installed. Without one, the SDK downloads its own
 * (needs internet).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { temporalCliPath } from '../../scripts/stack';
import { INSTANCE_ATTRIBUTE, POLICY_ATTRIBUTE } from '../../src/temporal/searchAttributes';

let runtimeInstalled = false;
/** Worker logs at ERROR in tests (expected failures log WARN): state changes and per-activity lines would drown the report. */
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

/** The dev server, with this tool's search attributes registered unless `searchAttributes: false`. */
export async function startTemporal(opts: { searchAttributes?: boolean } = {}): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const cli = temporalCliPath();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: cli ? { type: 'existing-path', path: cli } : { type: 'cached-download' },
      ip: '127.0.0.1',
      log: { format: 'pretty', level: 'error' },
      ...(opts.searchAttributes === false ? {} : { searchAttributes: [POLICY_ATTRIBUTE, INSTANCE_ATTRIBUTE] }),
    },
  });
}

/** Temporal's time-skipping test server, as scripts/install-test-server.sh installs it. */
export function testServerPath(): string | undefined {
  const candidates = [process.env.TEMPORAL_TEST_SERVER_PATH, path.resolve(__dirname, '../../.cache/bin/temporal-test-server')];
  return candidates.find((c): c is string => Boolean(c) && existsSync(c!));
}

/**
 * The time-skipping test server: timers fire as soon as nothing else is running, so a workflow
 * that waits hours finishes in seconds. Without the installed one, the SDK downloads its own.
 * (No search attributes, no schedules: for single-workflow tests of long waits.)
 */
export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const server = testServerPath();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: server ? { type: 'existing-path', path: server } : { type: 'cached-download' } },
  });
}

let counter = 0;
/** A task queue no other test uses. */
export function uniqueTaskQueue(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Date.now()}`;
}

/** What stubWorkerForFile gives a test file: read `env` inside tests (it exists from beforeAll on). */
export interface StubWorkerHarness {
  readonly env: TestWorkflowEnvironment;
  readonly taskQueue: string;
}

/**
 * A Temporal server and a worker running this tool's workflows over stub activities, for one
 * workflow test file: started in the file's beforeAll, shut down and torn down in its afterAll.
 * The dev server by default; `timeSkipping` for waits of hours.
 */
export function stubWorkerForFile(prefix: string, activities: object, opts: { timeSkipping?: boolean } = {}): StubWorkerHarness {
  const taskQueue = uniqueTaskQueue(prefix);
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  beforeAll(async () => {
    env = opts.timeSkipping ? await startTimeSkipping() : await startTemporal();
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../src/workflows'),
      activities,
    });
    running = worker.run();
  }, 180_000);
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the Temporal test environment is not started yet (use it inside a test)');
      return env;
    },
    taskQueue,
  };
}
