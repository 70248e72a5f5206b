/**
 * A real Temporal server for a test file: the CLI dev server through @temporalio/testing, given
 * the binary scripts/install-temporal.sh installed. Without one, the SDK downloads its own
 * (needs internet).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
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
  const path = temporalCliPath();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: path ? { type: 'existing-path', path } : { type: 'cached-download' },
      ip: '127.0.0.1',
      log: { format: 'pretty', level: 'error' },
      ...(opts.searchAttributes === false ? {} : { searchAttributes: [POLICY_ATTRIBUTE, INSTANCE_ATTRIBUTE] }),
    },
  });
}

let counter = 0;
/** A task queue no other test uses. */
export function uniqueTaskQueue(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Date.now()}`;
}
