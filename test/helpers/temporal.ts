/**
 * A real Temporal server for a test file: the CLI dev server through @temporalio/testing, given
 * the binary scripts/install-temporal.sh installed. Without one, the SDK downloads its own
 * (needs internet).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporalCliPath } from '../../scripts/stack';

export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  const path = temporalCliPath();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: path ? { type: 'existing-path', path } : { type: 'cached-download' },
      ip: '127.0.0.1',
      log: { format: 'pretty', level: 'error' },
    },
  });
}

let counter = 0;
/** A task queue no other test uses. */
export function uniqueTaskQueue(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Date.now()}`;
}
