/**
 * What every CLI command shares: exit codes, the errors main() turns into messages, output that
 * keeps stdout for JSON, and the Temporal connection.
 */
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { BackupInstanceResult } from '../shared/types';
import { connectErrorMessage, type TemporalSettings } from '../temporal/config';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

/** The object `--json` prints as the last line of stdout (DESIGN.md, Interfaces). */
export interface RunReport {
  workflowId: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'terminated' | 'timed_out';
  /** Fleet runs: how many instances in each outcome. */
  counts?: { total: number; succeeded: number; failed: number; skipped: number };
  /** Fleet runs over 1,000 instances: succeeded instances counted but not listed. */
  unlisted?: number;
  /** Per instance; in a fleet, "skipped" means its own backup was already running (not a failure). */
  instances: Array<Omit<BackupInstanceResult, 'status'> & { status: BackupInstanceResult['status'] | 'skipped' }>;
}

/** How a run that did not succeed ended, in the words of the JSON report. */
export const CLOSED_STATUS: Record<string, RunReport['status']> = {
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
};

/** Bad input from the command line: exit 2, nothing started. */
export class UsageError extends Error {}

export interface Output {
  json: boolean;
  /** Human lines: stdout normally, stderr under --json so stdout ends with the JSON object. */
  info(line: string): void;
}

export function output(json: boolean): Output {
  return { json, info: (line) => (json ? process.stderr : process.stdout).write(`${line}\n`) };
}

export async function connect(settings: TemporalSettings): Promise<Client> {
  try {
    const connection = await Connection.connect({ ...settings.connection, connectTimeout: '10s' });
    return new Client({ connection, namespace: settings.namespace });
  } catch (err) {
    throw new ConnectError(connectErrorMessage(err, settings));
  }
}

/** Temporal could not be reached: exit 1. */
export class ConnectError extends Error {}

/**
 * Whether any worker polled the task queue lately. A run started with no worker waits silently
 * for one; the operator should hear that at once. Unknown (undefined) when the server will not say.
 */
export async function hasWorker(client: Client, settings: TemporalSettings): Promise<boolean | undefined> {
  try {
    const described = await client.workflowService.describeTaskQueue({
      namespace: settings.namespace,
      taskQueue: { name: settings.taskQueue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    return (described.pollers ?? []).length > 0;
  } catch {
    return undefined;
  }
}
