/**
 * `ami-backup run`: start a backup of one instance or a whole fleet, and optionally follow it.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { INSTANCE_ID_RE, loadPolicyFile, type Policy } from '../policy';
import { instanceWorkflowId, runIdFor, ssmParameterName } from '../shared/naming';
import type { BackupInstanceResult, BackupProgress } from '../shared/types';
import { temporalSettings, workflowUiLink } from '../temporal/config';
import type { backupInstance } from '../workflows';
import { renderProgress } from '../workflows/render';
import {
  CLOSED_STATUS,
  EXIT_FAILED,
  EXIT_OK,
  UsageError,
  connect,
  hasWorker,
  output,
  type Output,
  type RunReport,
} from './common';

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

export function causeMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export async function runCommand(opts: {
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

