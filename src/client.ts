#!/usr/bin/env node
/**
 * ami-backup: the operator's CLI.
 *
 *   ami-backup run --policy FILE --instance ID [--wait] [--json]
 *
 * Exit codes: 0 every instance succeeded (or the run was started), 1 a backup failed or Temporal
 * could not be reached, 2 bad input (nothing was started).
 */
import { Command, CommanderError, Option } from 'commander';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { version } from '../package.json';
import { INSTANCE_ID_RE, PolicyError, formatProblems, loadPolicyFile, type Policy } from './policy';
import { instanceWorkflowId, runIdFor, ssmParameterName } from './shared/naming';
import type { BackupInstanceResult, BackupProgress } from './shared/types';
import { temporalSettings, workflowUiLink, type TemporalSettings } from './temporal/config';
import type { backupInstance } from './workflows';
import { renderProgress } from './workflows/render';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

/** The object `--json` prints as the last line of stdout (DESIGN.md, Interfaces). */
export interface RunReport {
  workflowId: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'terminated' | 'timed_out';
  instances: Array<BackupInstanceResult>;
}

/** How a run that did not succeed ended, in the words of the JSON report. */
const CLOSED_STATUS: Record<string, RunReport['status']> = {
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
};

class UsageError extends Error {}

interface Output {
  json: boolean;
  /** Human lines: stdout normally, stderr under --json so stdout ends with the JSON object. */
  info(line: string): void;
}

function output(json: boolean): Output {
  return { json, info: (line) => (json ? process.stderr : process.stdout).write(`${line}\n`) };
}

async function connect(settings: TemporalSettings): Promise<Client> {
  try {
    const connection = await Connection.connect({ ...settings.connection, connectTimeout: '10s' });
    return new Client({ connection, namespace: settings.namespace });
  } catch (err) {
    throw new ConnectError(
      `cannot reach Temporal at ${settings.connection.address} (namespace ${settings.namespace}): ${(err as Error).message}\n` +
        'Start a Temporal server (make dev-server) or set TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY / TEMPORAL_TLS_*.',
    );
  }
}

class ConnectError extends Error {}

/**
 * Whether any worker polled the task queue lately. A run started with no worker waits silently
 * for one; the operator should hear that at once. Unknown (undefined) when the server will not say.
 */
async function hasWorker(client: Client, settings: TemporalSettings): Promise<boolean | undefined> {
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

/** Follows a run through its `progress` query, printing a line whenever something moves. */
async function follow(handle: WorkflowHandle, out: Output, intervalMs: number): Promise<BackupProgress | undefined> {
  let last: BackupProgress | undefined;
  let lastText = '';
  let finished = false;
  const done = handle.result().then(
    () => undefined,
    () => undefined,
  );
  void done.then(() => (finished = true));
  while (!finished) {
    try {
      last = await handle.query<BackupProgress>('progress');
      const text = renderProgress(last);
      if (text !== lastText) {
        const step = last.steps[last.steps.length - 1];
        out.info(`[${new Date().toISOString().slice(11, 19)}] ${last.step}${step ? ` (${step.region})` : ''}: ${summaryLine(last)}`);
        lastText = text;
      }
    } catch {
      // The first workflow task may not have run yet: no query handler until then.
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, intervalMs))]);
  }
  try {
    last = await handle.query<BackupProgress>('progress');
  } catch {
    // A closed run is queried by replay on a worker; without one, the last answer stands.
  }
  return last;
}

function summaryLine(p: BackupProgress): string {
  const parts = [`source ${p.source.imageId ?? '-'} ${p.source.state ?? ''}`.trim()];
  for (const c of p.copies) parts.push(`${c.region} ${c.imageId ?? '-'} ${c.state ?? ''}`.trim());
  return parts.join(', ');
}

function failedInstance(
  workflowId: string,
  instanceId: string,
  policy: Policy,
  progress: BackupProgress | undefined,
  error: string,
  ssmParameter: string,
): BackupInstanceResult {
  return {
    instanceId,
    status: 'failed',
    sourceImageId: progress?.source.imageId,
    copies: (progress?.copies ?? []).flatMap((c) => (c.imageId ? [{ region: c.region, imageId: c.imageId }] : [])),
    ssmParameter,
    deleted: [],
    error: error || `backup ${workflowId} of policy ${policy.name} failed`,
  };
}

function causeMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

async function runCommand(opts: {
  policy: string;
  instance?: string;
  wait?: boolean;
  json?: boolean;
  pollInterval: string;
}): Promise<number> {
  const out = output(Boolean(opts.json));
  const policy = loadPolicyFile(opts.policy);
  if (!opts.instance)
    throw new UsageError('--instance ID is required: name the EC2 instance to back up (for example --instance i-0123456789abcdef0)');
  if (!INSTANCE_ID_RE.test(opts.instance)) {
    throw new UsageError(`--instance "${opts.instance}" is not an EC2 instance ID such as i-0123456789abcdef0`);
  }
  const pollMs = Number(opts.pollInterval);
  if (!Number.isFinite(pollMs) || pollMs < 100)
    throw new UsageError(`--poll-interval must be a number of milliseconds ≥ 100, got "${opts.pollInterval}"`);

  const settings = temporalSettings();
  const client = await connect(settings);
  try {
    const instanceId = opts.instance;
    const runId = runIdFor(new Date());
    const workflowId = instanceWorkflowId(policy.name, instanceId);
    let handle: WorkflowHandle<typeof backupInstance>;
    try {
      handle = await client.workflow.start<typeof backupInstance>('backupInstance', {
        taskQueue: settings.taskQueue,
        workflowId,
        args: [{ policy, instanceId, runId }],
        staticSummary: `Back up ${instanceId} (policy ${policy.name}) from ${policy.sourceRegion} to ${policy.copies.map((c) => c.region).join(', ')}`,
        workflowIdConflictPolicy: 'FAIL',
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        const running = await client.workflow
          .getHandle(workflowId)
          .describe()
          .catch(() => undefined);
        out.info(
          `ami-backup: a backup of ${instanceId} under policy ${policy.name} is already running: workflow ${workflowId}` +
            `${running ? ` (run ${running.runId}, started ${running.startTime.toISOString()})` : ''}.\n` +
            `Wait for it, or cancel it in the Web UI: ${workflowUiLink(settings, workflowId)}`,
        );
        if (out.json) console.log(JSON.stringify({ workflowId, status: 'running', instances: [] } satisfies RunReport));
        return EXIT_FAILED;
      }
      throw err;
    }
    const started = await handle.describe();
    out.info(`Started backup of ${instanceId} (policy ${policy.name}, run ${runId})`);
    out.info(`  workflow: ${workflowId}`);
    out.info(`  Web UI:   ${workflowUiLink(settings, workflowId, started.runId)}`);
    if ((await hasWorker(client, settings)) === false) {
      out.info(
        `Warning: no worker is polling task queue "${settings.taskQueue}" in namespace "${settings.namespace}"; ` +
          'the backup starts when one does. Start one with `npm run worker` (same TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AMI_BACKUP_TASK_QUEUE).',
      );
    }

    if (!opts.wait) {
      if (out.json) console.log(JSON.stringify({ workflowId, status: 'running', instances: [] } satisfies RunReport));
      return EXIT_OK;
    }

    const progress = await follow(handle, out, pollMs);
    let report: RunReport;
    try {
      const result = await handle.result();
      report = { workflowId, status: 'succeeded', instances: [result] };
      out.info(
        `Backup of ${instanceId} succeeded: source ${result.sourceImageId}, ${result.copies.map((c) => `${c.region} ${c.imageId}`).join(', ')}`,
      );
      out.info(`  restore from SSM parameter ${result.ssmParameter} in ${result.copies.map((c) => c.region).join(', ')}`);
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const desc = await handle.describe();
      const status = CLOSED_STATUS[desc.status.name] ?? 'failed';
      const error = causeMessage(err);
      const ssm = ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion });
      report = { workflowId, status, instances: [failedInstance(workflowId, instanceId, policy, progress, error, ssm)] };
      out.info(`Backup of ${instanceId} ${status}: ${error}`);
      out.info(`  history: ${workflowUiLink(settings, workflowId, started.runId)}`);
    }
    if (out.json) console.log(JSON.stringify(report));
    return report.status === 'succeeded' ? EXIT_OK : EXIT_FAILED;
  } finally {
    await client.connection.close();
  }
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('ami-backup')
    .description('Durable EC2 AMI backups into disaster-recovery regions, on Temporal.')
    .version(version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run')
    .description('Back up one instance now: CreateImage, wait, encrypted copy to every DR region, SSM parameter.')
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON)')
    .option('-i, --instance <id>', 'the EC2 instance to back up')
    .option('-w, --wait', 'follow the run until it ends and print its result')
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .addOption(new Option('--poll-interval <ms>', 'how often --wait asks the workflow for progress').default('2000').hideHelp())
    .addHelpText(
      'after',
      `
Examples:
  ami-backup run --policy policy.yaml --instance i-0123456789abcdef0
  ami-backup run --policy policy.yaml --instance i-0123456789abcdef0 --wait
  ami-backup run --policy policy.yaml --instance i-0123456789abcdef0 --wait --json | tail -1 | jq .

Exit codes: 0 success (or started, without --wait), 1 the backup failed, 2 bad input.`,
    )
    .action(async (opts) => setExit(await runCommand(opts)));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
    }
    if (err instanceof PolicyError) {
      console.error(`ami-backup: ${err.source} is not a valid policy (nothing was started):\n${formatProblems(err.problems)}`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof UsageError) {
      console.error(`ami-backup: ${err.message}`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof ConnectError) {
      console.error(`ami-backup: ${err.message}`);
      return EXIT_FAILED;
    }
    console.error(`ami-backup: ${(err as Error).stack ?? err}`);
    return EXIT_FAILED;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
