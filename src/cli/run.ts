/**
 * `ami-backup run`: start a backup of one instance or a whole fleet, and optionally follow it.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { INSTANCE_ID_RE, loadPolicyFile, type Policy } from '../policy';
import { describeTargets, fleetWorkflowId, instanceWorkflowId, runIdFor, ssmParameterName } from '../shared/naming';
import type {
  BackupFleetInput,
  BackupInstanceInput,
  BackupInstanceResult,
  BackupProgress,
  FleetInstanceResult,
  FleetProgress,
  FleetReport,
} from '../shared/types';
import { temporalSettings, workflowUiLink, type TemporalSettings } from '../temporal/config';
import { INSTANCE_ATTRIBUTE, POLICY_ATTRIBUTE, searchAttributesRegistered } from '../temporal/searchAttributes';
import { renderProgress } from '../workflows/render';
import { lookUpInstance } from './awsDirect';
import { progressPrinter } from './progressBar';
import { CLOSED_STATUS, EXIT_FAILED, EXIT_OK, UsageError, connect, hasWorker, output, type Output, type RunReport } from './common';

/**
 * Asks a run for its `progress` every `intervalMs` until it closes, handing each answer to
 * `onProgress`; resolves with the last answer. Queries fail until the first workflow task has run
 * (no handler yet) and between two runs of a continue-as-new chain: those are skipped.
 */
async function pollProgress<P>(handle: WorkflowHandle, intervalMs: number, onProgress: (p: P) => void): Promise<P | undefined> {
  let last: P | undefined;
  let finished = false;
  const done = handle.result().then(
    () => undefined,
    () => undefined,
  );
  void done.then(() => (finished = true));
  while (!finished) {
    try {
      last = await handle.query<P>('progress');
      onProgress(last);
    } catch {
      // Not answering yet (see above).
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, intervalMs))]);
  }
  return last;
}

/** Follows one instance's backup, printing a line whenever something moves. */
async function follow(handle: WorkflowHandle, out: Output, intervalMs: number): Promise<BackupProgress | undefined> {
  let lastText = '';
  let last = await pollProgress<BackupProgress>(handle, intervalMs, (p) => {
    const text = renderProgress(p);
    if (text === lastText) return;
    lastText = text;
    const step = p.steps[p.steps.length - 1];
    out.info(`[${new Date().toISOString().slice(11, 19)}] ${p.step}${step ? ` (${step.region})` : ''}: ${summaryLine(p)}`);
  });
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

interface RunOptions {
  policy: string;
  instance?: string;
  wait?: boolean;
  json?: boolean;
  pollInterval: string;
  /** false with --no-preflight: start without looking the instance up first. */
  preflight?: boolean;
}

/** Instance states with nothing left to back up: CreateImage would fail on them. */
const GONE_STATES = new Set(['shutting-down', 'terminated']);

/**
 * `run --instance`'s pre-flight: one DescribeInstances in the source region with the operator's
 * own credentials, so that a mistyped or terminated instance is refused before a workflow starts.
 * Returns why the instance cannot be backed up, or undefined to go ahead. Where the CLI cannot
 * ask AWS (no credentials here, denied, unreachable: often only the worker has AWS access), it
 * warns and goes ahead; the workflow then meets the problem with the worker's credentials.
 */
async function preflight(policy: Policy, instanceId: string): Promise<string | undefined> {
  const region = policy.sourceRegion;
  try {
    const found = await lookUpInstance(region, policy.roleArn, instanceId);
    if (!found.found) {
      return (
        `instance ${instanceId} does not exist in ${region} (the policy's sourceRegion): check the ID, or the policy's sourceRegion ` +
        `if the instance lives elsewhere (\`ami-backup plan --policy FILE\` lists the instances the policy targets)`
      );
    }
    if (found.state !== undefined && GONE_STATES.has(found.state)) {
      return `instance ${instanceId} in ${region} is ${found.state}: there is nothing left to back up; give a running or stopped instance`;
    }
    return undefined;
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    const why = err.message.replace(/\s*Will retry\.$/, '');
    process.stderr.write(
      `ami-backup: warning: could not look up ${instanceId} in ${region} before starting (${why}).\n` +
        '  Starting the run anyway: the worker checks the instance with its own credentials. ' +
        '(`--no-preflight` skips this look-up where the CLI has no AWS access.)\n',
    );
    return undefined;
  }
}

/** What starting a run needs, for one instance or a fleet. */
interface StartSpec {
  workflowType: 'backupInstance' | 'backupFleet';
  workflowId: string;
  args: unknown[];
  staticSummary: string;
  memo: Record<string, unknown>;
  searchAttributes: Array<{ key: typeof POLICY_ATTRIBUTE | typeof INSTANCE_ATTRIBUTE; value: string }>;
  /** "a backup of i-… under policy web" / "a fleet backup of policy web": for the refusal message. */
  what: string;
}

/** Starts the run, or explains that one is already running (undefined: exit 1). */
async function startRun(client: Client, settings: TemporalSettings, out: Output, spec: StartSpec): Promise<WorkflowHandle | undefined> {
  try {
    return await client.workflow.start(spec.workflowType, {
      taskQueue: settings.taskQueue,
      workflowId: spec.workflowId,
      args: spec.args,
      staticSummary: spec.staticSummary,
      memo: spec.memo,
      ...(spec.searchAttributes.length > 0 ? { typedSearchAttributes: spec.searchAttributes } : {}),
      workflowIdConflictPolicy: 'FAIL',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = await client.workflow
      .getHandle(spec.workflowId)
      .describe()
      .catch(() => undefined);
    out.info(
      `ami-backup: ${spec.what} is already running: workflow ${spec.workflowId}` +
        `${running ? ` (run ${running.runId}, started ${running.startTime.toISOString()})` : ''}.\n` +
        `Wait for it (ami-backup status ${spec.workflowId}), or cancel it (ami-backup cancel ${spec.workflowId}): ${workflowUiLink(settings, spec.workflowId)}`,
    );
    if (out.json) console.log(JSON.stringify({ workflowId: spec.workflowId, status: 'running', instances: [] } satisfies RunReport));
    return undefined;
  }
}

export async function runCommand(opts: RunOptions): Promise<number> {
  const out = output(Boolean(opts.json));
  const policy = loadPolicyFile(opts.policy);
  if (opts.instance !== undefined && !INSTANCE_ID_RE.test(opts.instance)) {
    throw new UsageError(`--instance "${opts.instance}" is not an EC2 instance ID such as i-0123456789abcdef0`);
  }
  const pollMs = Number(opts.pollInterval);
  if (!Number.isFinite(pollMs) || pollMs < 100)
    throw new UsageError(`--poll-interval must be a number of milliseconds ≥ 100, got "${opts.pollInterval}"`);

  if (opts.instance !== undefined && opts.preflight !== false) {
    const refusal = await preflight(policy, opts.instance);
    if (refusal !== undefined) return refuseInstance(policy, opts.instance, refusal, out);
  }

  const settings = temporalSettings();
  const client = await connect(settings);
  try {
    const indexed = await searchAttributesRegistered(client.connection, settings.namespace);
    const copies = policy.copies.map((c) => c.region).join(', ');
    const instanceId = opts.instance;
    const runId = runIdFor(new Date());
    const spec: StartSpec = instanceId
      ? {
          workflowType: 'backupInstance',
          workflowId: instanceWorkflowId(policy.name, instanceId),
          args: [{ policy, instanceId, runId } satisfies BackupInstanceInput],
          staticSummary: `Back up ${instanceId} (policy ${policy.name}) from ${policy.sourceRegion} to ${copies}`,
          memo: { policy: policy.name, instanceId },
          searchAttributes: indexed
            ? [
                { key: POLICY_ATTRIBUTE, value: policy.name },
                { key: INSTANCE_ATTRIBUTE, value: instanceId },
              ]
            : [],
          what: `a backup of ${instanceId} under policy ${policy.name}`,
        }
      : {
          workflowType: 'backupFleet',
          workflowId: fleetWorkflowId(policy.name),
          args: [{ policy, runId, searchAttributes: indexed } satisfies BackupFleetInput],
          staticSummary: `Fleet backup of policy ${policy.name}: ${describeTargets(policy.targets)} in ${policy.sourceRegion}, copies to ${copies}`,
          memo: { policy: policy.name },
          searchAttributes: indexed ? [{ key: POLICY_ATTRIBUTE, value: policy.name }] : [],
          what: `a fleet backup of policy ${policy.name}`,
        };
    const handle = await startRun(client, settings, out, spec);
    if (!handle) return EXIT_FAILED;
    const started = await handle.describe();
    out.info(
      instanceId
        ? `Started backup of ${instanceId} (policy ${policy.name}, run ${runId})`
        : `Started fleet backup of policy ${policy.name} (${describeTargets(policy.targets)}, run ${runId})`,
    );
    out.info(`  workflow: ${spec.workflowId}`);
    out.info(`  Web UI:   ${workflowUiLink(settings, spec.workflowId, started.runId)}`);
    if ((await hasWorker(client, settings)) === false) {
      out.info(
        `Warning: no worker is polling task queue "${settings.taskQueue}" in namespace "${settings.namespace}"; ` +
          'the backup starts when one does. Start one with `npm run worker` (same TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AMI_BACKUP_TASK_QUEUE).',
      );
    }

    if (!opts.wait) {
      if (!instanceId) out.info(`Follow it with: ami-backup status ${spec.workflowId}`);
      if (out.json) console.log(JSON.stringify({ workflowId: spec.workflowId, status: 'running', instances: [] } satisfies RunReport));
      return EXIT_OK;
    }
    const report = instanceId
      ? await waitForInstance(handle, policy, instanceId, out, settings, pollMs)
      : await waitForFleet(handle, policy, out, settings, pollMs);
    if (out.json) console.log(JSON.stringify(report));
    return report.status === 'succeeded' ? EXIT_OK : EXIT_FAILED;
  } finally {
    await client.connection.close();
  }
}

/** The pre-flight found the instance gone: say so (and with --json, report it failed), start nothing, exit 1. */
function refuseInstance(policy: Policy, instanceId: string, reason: string, out: Output): number {
  process.stderr.write(`ami-backup: Backup of ${instanceId} failed before it started: ${reason}. Nothing was started.\n`);
  if (out.json) {
    const workflowId = instanceWorkflowId(policy.name, instanceId);
    const ssm = ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion });
    const report: RunReport = {
      workflowId,
      status: 'failed',
      instances: [failedInstance(workflowId, instanceId, policy, undefined, reason, ssm)],
    };
    console.log(JSON.stringify(report));
  }
  return EXIT_FAILED;
}

async function waitForInstance(
  handle: WorkflowHandle,
  policy: Policy,
  instanceId: string,
  out: Output,
  settings: TemporalSettings,
  pollMs: number,
): Promise<RunReport> {
  const { workflowId } = handle;
  const progress = await follow(handle, out, pollMs);
  try {
    const result: BackupInstanceResult = await handle.result();
    out.info(
      `Backup of ${instanceId} succeeded: source ${result.sourceImageId}, ${result.copies.map((c) => `${c.region} ${c.imageId}`).join(', ')}`,
    );
    out.info(`  restore from SSM parameter ${result.ssmParameter} in ${result.copies.map((c) => c.region).join(', ')}`);
    if (result.deleted.length > 0) out.info(`  retention deleted ${result.deleted.map((d) => `${d.imageId} (${d.region})`).join(', ')}`);
    for (const w of result.warnings ?? []) out.info(`  warning: ${w}`);
    return { workflowId, status: 'succeeded', instances: [result] };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const desc = await handle.describe();
    const status = CLOSED_STATUS[desc.status.name] ?? 'failed';
    const error = causeMessage(err);
    const ssm = ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion });
    out.info(`Backup of ${instanceId} ${status}: ${error}`);
    out.info(`  history: ${workflowUiLink(settings, workflowId, desc.runId)}`);
    return { workflowId, status, instances: [failedInstance(workflowId, instanceId, policy, progress, error, ssm)] };
  }
}

/** Follows a fleet with a progress bar (TTY) or lines, then reports every instance. */
async function waitForFleet(
  handle: WorkflowHandle,
  policy: Policy,
  out: Output,
  settings: TemporalSettings,
  pollMs: number,
): Promise<RunReport> {
  const { workflowId } = handle;
  const printer = progressPrinter(out.json ? process.stderr : process.stdout);
  const reported = new Set<string>();
  await pollProgress<FleetProgress>(handle, pollMs, (p) => {
    for (const f of p.recentFailures) {
      if (reported.has(f.instanceId)) continue;
      reported.add(f.instanceId);
      printer.line(`  ✗ ${f.instanceId}: ${f.error}`);
    }
    printer.update(p);
  });
  printer.end();
  try {
    const fleet: FleetReport = await handle.result();
    const instances = fleet.instances.map((r) => fleetEntry(policy, r));
    for (const r of fleet.instances)
      if (r.status !== 'succeeded' && !reported.has(r.instanceId)) out.info(`  ✗ ${r.instanceId} (${r.status}): ${r.error}`);
    const { total, succeeded, failed, skipped } = fleet.counts;
    out.info(`Fleet backup of policy ${policy.name}: ${total} instance(s), ${succeeded} succeeded, ${failed} failed, ${skipped} skipped`);
    const deleted = fleet.instances.reduce((n, r) => n + (r.deleted?.length ?? 0), 0);
    if (deleted > 0) out.info(`  retention deleted ${deleted} old image(s)`);
    if (fleet.unlisted > 0)
      out.info(`  (${fleet.unlisted} succeeded instance(s) are counted but not listed; see their workflows ami-backup/${policy.name}/i-…)`);
    if (total === 0) out.info(`  no instance matched ${describeTargets(policy.targets)} in ${policy.sourceRegion}`);
    return {
      workflowId,
      status: failed > 0 ? 'failed' : 'succeeded',
      counts: fleet.counts,
      ...(fleet.unlisted > 0 ? { unlisted: fleet.unlisted } : {}),
      instances,
    };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const desc = await handle.describe();
    const status = CLOSED_STATUS[desc.status.name] ?? 'failed';
    out.info(`Fleet backup of policy ${policy.name} ${status}: ${causeMessage(err)}`);
    out.info(`  history: ${workflowUiLink(settings, workflowId, desc.runId)}`);
    return { workflowId, status, instances: [] };
  }
}

/** A fleet report entry in the shape of DESIGN.md's per-instance JSON object. */
function fleetEntry(policy: Policy, r: FleetInstanceResult): RunReport['instances'][number] {
  return {
    instanceId: r.instanceId,
    status: r.status,
    sourceImageId: r.sourceImageId,
    copies: r.copies ?? [],
    ssmParameter: ssmParameterName(policy.ssmParameter, {
      policy: policy.name,
      instanceId: r.instanceId,
      sourceRegion: policy.sourceRegion,
    }),
    deleted: r.deleted ?? [],
    ...(r.warnings ? { warnings: r.warnings } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}
