/**
 * `ami-backup status`, `list` and `cancel`: look at runs and steer them, through Temporal.
 *
 * - status WORKFLOW_ID: the run's `progress` query (a running one) or its result (a closed one).
 * - list: recent runs from Temporal visibility, newest first; fleets and ad-hoc instance runs by
 *   default, fleet children with --all.
 * - cancel WORKFLOW_ID: asks the run to stop; a fleet cancels its children (parent close policy
 *   REQUEST_CANCEL); backups already finished stay. Each cancelled instance backup deregisters its
 *   unfinished images and records them in its memo; with --wait the CLI reads and prints them.
 */
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { Command } from 'commander';
import { loadPolicyFile, POLICY_NAME_RE } from '../policy';
import type { BackupInstanceResult, BackupProgress, CancelCleanupMemo, DiscardedImage, FleetProgress, FleetReport } from '../shared/types';
import { temporalSettings, workflowUiLink, type TemporalSettings } from '../temporal/config';
import { POLICY_ATTRIBUTE, searchAttributesRegistered } from '../temporal/searchAttributes';
import { renderFleetProgress, renderProgress } from '../workflows/render';
import { EXIT_FAILED, EXIT_OK, UsageError, connect, output, type Output } from './common';
import { causeMessage } from './run';

const WORKFLOW_TYPES = ['backupFleet', 'backupInstance'];
const QUERY_DEADLINE_MS = 5_000;

async function withClient(fn: (client: Client, settings: TemporalSettings) => Promise<number>): Promise<number> {
  const settings = temporalSettings();
  const client = await connect(settings);
  try {
    return await fn(client, settings);
  } finally {
    await client.connection.close();
  }
}

/** Describes a run, or says there is none (bad input: exit 2). */
async function describeRun(client: Client, settings: TemporalSettings, workflowId: string): Promise<WorkflowExecutionDescription> {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new UsageError(
        `no run with workflow ID "${workflowId}" in namespace ${settings.namespace}. ` +
          'Workflow IDs look like ami-backup/POLICY/fleet or ami-backup/POLICY/i-…: see `ami-backup list`.',
      );
    }
    throw err;
  }
}

/** Markdown bold (for the Web UI) is noise on a terminal. */
const plain = (text: string) => text.replace(/\*\*/g, '');

export interface StatusReport {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  startTime: string;
  closeTime?: string;
  progress?: BackupProgress | FleetProgress;
  result?: BackupInstanceResult | FleetReport;
  error?: string;
  webUi: string;
}

export async function statusCommand(workflowId: string, opts: { json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  return withClient(async (client, settings) => {
    const desc = await describeRun(client, settings, workflowId);
    const handle = client.workflow.getHandle(workflowId);
    const report: StatusReport = {
      workflowId,
      runId: desc.runId,
      type: desc.type,
      status: desc.status.name,
      startTime: desc.startTime.toISOString(),
      ...(desc.closeTime ? { closeTime: desc.closeTime.toISOString() } : {}),
      webUi: workflowUiLink(settings, workflowId, desc.runId),
    };
    if (desc.status.name === 'RUNNING') {
      try {
        report.progress = await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
          handle.query<BackupProgress | FleetProgress>('progress'),
        );
      } catch (err) {
        report.error = `no progress yet (${causeMessage(err)}): is a worker polling task queue ${desc.taskQueue}?`;
      }
    } else if (desc.status.name === 'COMPLETED') {
      report.result = await handle.result();
    } else {
      report.error = await handle.result().then(
        () => undefined,
        (err: unknown) => (err instanceof WorkflowFailedError ? causeMessage(err) : String(err)),
      );
    }

    out.info(
      `${workflowId} (${desc.type}) · ${desc.status.name} · started ${report.startTime}${report.closeTime ? ` · ended ${report.closeTime}` : ''}`,
    );
    if (report.progress) {
      out.info(
        plain(
          desc.type === 'backupFleet'
            ? renderFleetProgress(report.progress as FleetProgress)
            : renderProgress(report.progress as BackupProgress),
        ),
      );
    }
    if (report.result) printResult(out, desc.type, report.result);
    if (report.error) out.info(`Error: ${report.error}`);
    out.info(`Web UI: ${report.webUi}`);
    if (out.json) console.log(JSON.stringify(report));
    return EXIT_OK;
  });
}

function printResult(out: Output, type: string, result: BackupInstanceResult | FleetReport): void {
  if (type === 'backupFleet') {
    const r = result as FleetReport;
    const { total, succeeded, failed, skipped } = r.counts;
    out.info(`${total} instance(s): ${succeeded} succeeded, ${failed} failed, ${skipped} skipped (run ${r.runId})`);
    for (const i of r.instances.filter((x) => x.status !== 'succeeded')) out.info(`  ✗ ${i.instanceId} (${i.status}): ${i.error}`);
    return;
  }
  const r = result as BackupInstanceResult;
  out.info(`source ${r.sourceImageId}; ${r.copies.map((c) => `${c.region} ${c.imageId}`).join(', ')}; SSM parameter ${r.ssmParameter}`);
  if (r.deleted.length > 0) out.info(`retention deleted ${r.deleted.map((d) => `${d.imageId} (${d.region})`).join(', ')}`);
  for (const w of r.warnings ?? []) out.info(`warning: ${w}`);
}

export interface ListEntry {
  workflowId: string;
  runId: string;
  type: string;
  policy?: string;
  status: string;
  startTime: string;
  closeTime?: string;
  /** Fleets: how many instances (and outcomes when done); instance runs: the instance. */
  instances?: string;
}

const STATUS_NAMES: Record<string, string> = {
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Canceled',
  canceled: 'Canceled',
  terminated: 'Terminated',
  timed_out: 'TimedOut',
  'timed-out': 'TimedOut',
  continued: 'ContinuedAsNew',
};

function instancesText(type: string, memo: Record<string, unknown> | undefined): string | undefined {
  if (type === 'backupInstance') return typeof memo?.instanceId === 'string' ? memo.instanceId : undefined;
  if (typeof memo?.total !== 'number') return undefined;
  const counts = memo.counts as { succeeded: number; failed: number; skipped: number } | undefined;
  return counts ? `${memo.total} (${counts.succeeded} ok, ${counts.failed} failed, ${counts.skipped} skipped)` : String(memo.total);
}

export async function listCommand(opts: {
  policy?: string;
  name?: string;
  status?: string;
  limit: string;
  all?: boolean;
  json?: boolean;
}): Promise<number> {
  const out = output(Boolean(opts.json));
  if (opts.policy && opts.name) throw new UsageError('give --policy FILE or --name POLICY, not both');
  const name = opts.policy ? loadPolicyFile(opts.policy).name : opts.name;
  if (name !== undefined && !POLICY_NAME_RE.test(name))
    throw new UsageError(`--name "${name}" is not a policy name (lower-case letters, digits, "-")`);
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new UsageError(`--limit must be a whole number from 1 to 1000, got "${opts.limit}"`);
  const status = opts.status ? STATUS_NAMES[opts.status.toLowerCase()] : undefined;
  if (opts.status && !status) throw new UsageError(`--status must be one of ${Object.keys(STATUS_NAMES).join(', ')}, got "${opts.status}"`);

  return withClient(async (client, settings) => {
    const clauses = [`WorkflowType IN (${WORKFLOW_TYPES.map((t) => `'${t}'`).join(', ')})`];
    if (name) {
      clauses.push(
        (await searchAttributesRegistered(client.connection, settings.namespace))
          ? `${POLICY_ATTRIBUTE.name} = '${name}'`
          : `WorkflowId STARTS_WITH 'ami-backup/${name}/'`,
      );
    }
    if (status) clauses.push(`ExecutionStatus = '${status}'`);
    if (!opts.all) clauses.push('ParentWorkflowId IS NULL');
    const query = clauses.join(' AND ');
    const entries: ListEntry[] = [];
    for await (const w of client.workflow.list({ query, pageSize: Math.min(limit, 100) })) {
      const memo = w.memo as Record<string, unknown> | undefined;
      entries.push({
        workflowId: w.workflowId,
        runId: w.runId,
        type: w.type,
        ...(typeof memo?.policy === 'string' ? { policy: memo.policy } : {}),
        status: w.status.name,
        startTime: w.startTime.toISOString(),
        ...(w.closeTime ? { closeTime: w.closeTime.toISOString() } : {}),
        ...(instancesText(w.type, memo) ? { instances: instancesText(w.type, memo) } : {}),
      });
      if (entries.length >= limit) break;
    }
    if (entries.length === 0) {
      out.info(`No runs${name ? ` of policy ${name}` : ''}${status ? ` with status ${status}` : ''} in namespace ${settings.namespace}.`);
    } else {
      const rows = entries.map((e) => [
        e.startTime.slice(0, 19).replace('T', ' '),
        e.status,
        e.type,
        e.policy ?? '-',
        e.instances ?? '-',
        e.workflowId,
      ]);
      const header = ['STARTED (UTC)', 'STATUS', 'TYPE', 'POLICY', 'INSTANCES', 'WORKFLOW ID'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [header, ...rows]) out.info(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
      out.info(
        `Details: ami-backup status WORKFLOW_ID · Web UI: ${settings.uiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/workflows`,
      );
    }
    if (out.json) console.log(JSON.stringify(entries));
    return EXIT_OK;
  });
}

/** What a cancelled instance backup cleaned up, from its memo (a cancelled run has no result). */
export interface CancelCleanup {
  instanceId: string;
  workflowId: string;
  status: string;
  /** Unfinished images of the run, deregistered in their regions. */
  deregistered: Array<Pick<DiscardedImage, 'region' | 'imageId' | 'role' | 'state' | 'outcome' | 'snapshotIds'>>;
  /** Images that were available (finished) when the run was cancelled: they stay. */
  kept: Array<{ region: string; imageId: string }>;
  /** Images that could not be deregistered: what and why, to finish by hand. */
  problems?: string[];
}

const CHILD_CLOSE_WAIT_MS = 60_000;

/** The instance backups a fleet run started: its (last) history lists them. */
async function childWorkflowIds(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const ids = (history.events ?? []).flatMap((e) => {
    const id = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    return id ? [id] : [];
  });
  return [...new Set(ids)];
}

/** A cancelled instance backup's cleanup, once it has ended (a fleet may end before its last child has). */
async function cleanupOf(client: Client, workflowId: string): Promise<CancelCleanup> {
  const handle = client.workflow.getHandle(workflowId);
  const deadline = Date.now() + CHILD_CLOSE_WAIT_MS;
  let desc = await handle.describe();
  while (desc.status.name === 'RUNNING' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    desc = await handle.describe();
  }
  const memo = (desc.memo ?? {}) as Partial<CancelCleanupMemo> & { instanceId?: string };
  const cleanup: CancelCleanup = {
    instanceId: memo.instanceId ?? workflowId.split('/').pop() ?? workflowId,
    workflowId,
    status: desc.status.name,
    deregistered: (memo.cleanedUp ?? []).map(({ region, imageId, role, state, outcome, snapshotIds }) => ({
      region,
      imageId,
      role,
      state,
      outcome,
      snapshotIds,
    })),
    kept: memo.kept ?? [],
  };
  if (memo.cleanupProblems?.length) cleanup.problems = memo.cleanupProblems;
  return cleanup;
}

function printCleanup(out: Output, cleanups: CancelCleanup[]): void {
  for (const c of cleanups) {
    const done = c.deregistered.map((d) =>
      d.outcome === 'deregistered'
        ? `deregistered ${d.role} ${d.imageId} in ${d.region} (was ${d.state})`
        : `${d.role} ${d.imageId} in ${d.region} already gone`,
    );
    const kept = c.kept.map((k) => `kept ${k.imageId} in ${k.region} (available)`);
    const lines = [...done, ...kept];
    out.info(`  ${c.instanceId} (${c.status}): ${lines.length > 0 ? lines.join('; ') : 'no unfinished image to clean up'}`);
    for (const p of c.problems ?? []) out.info(`    not cleaned up: ${p}`);
  }
}

export async function cancelCommand(workflowId: string, opts: { wait?: boolean; json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  return withClient(async (client, settings) => {
    const desc = await describeRun(client, settings, workflowId);
    if (desc.status.name !== 'RUNNING') {
      out.info(`ami-backup: ${workflowId} already ended (${desc.status.name}); nothing to cancel.`);
      if (out.json) console.log(JSON.stringify({ workflowId, status: desc.status.name, cancelled: false }));
      return EXIT_FAILED;
    }
    const handle = client.workflow.getHandle(workflowId);
    await handle.cancel();
    out.info(
      `Cancellation requested for ${workflowId} (${desc.type}): steps in flight stop${desc.type === 'backupFleet' ? ', every running instance backup is cancelled' : ''}; ` +
        'images not finished yet (copies in flight, a source image still pending) are deregistered; images already available and backups already finished stay.',
    );
    out.info(`  Web UI: ${workflowUiLink(settings, workflowId, desc.runId)}`);
    let status = 'CANCEL_REQUESTED';
    let cleanups: CancelCleanup[] = [];
    if (opts.wait) {
      await handle.result().catch(() => undefined);
      status = (await handle.describe()).status.name;
      out.info(`${workflowId} ended: ${status}`);
      // Each cancelled instance backup deregistered its unfinished images: say which, where.
      const instanceRuns = desc.type === 'backupFleet' ? await childWorkflowIds(client, workflowId) : [workflowId];
      cleanups = (await Promise.all(instanceRuns.map((id) => cleanupOf(client, id)))).filter((c) => c.status === 'CANCELLED');
      if (cleanups.length > 0) out.info('Cleanup of the cancelled backups (images of this run that were not finished):');
      printCleanup(out, cleanups);
    }
    // `cleanup` lists the cancelled instance backups when any of them deregistered an image (or could not).
    const cleaned = cleanups.some((c) => c.deregistered.length > 0 || c.problems);
    if (out.json) console.log(JSON.stringify({ workflowId, status, cancelled: true, ...(cleaned ? { cleanup: cleanups } : {}) }));
    return EXIT_OK;
  });
}

export function registerInspectCommands(program: Command, setExit: (code: number) => void): void {
  program
    .command('status')
    .description("Show a run: a running one's progress (step, images, copies in flight), a finished one's result.")
    .argument('<workflow-id>', 'the run, e.g. ami-backup/web-servers/fleet or ami-backup/web-servers/i-0123456789abcdef0')
    .option('--json', 'print the status as one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
Examples:
  ami-backup status ami-backup/web-servers/fleet
  ami-backup status ami-backup/web-servers/i-0123456789abcdef0 --json | tail -1 | jq .progress.step

Exit codes: 0 shown, 1 Temporal could not be reached, 2 no such run.`,
    )
    .action(async (workflowId: string, opts) => setExit(await statusCommand(workflowId, opts)));

  program
    .command('list')
    .description('Recent runs, newest first: fleets and ad-hoc instance runs (with --all, every instance of every fleet too).')
    .option('-p, --policy <file>', 'only runs of this policy')
    .option('-n, --name <policy-name>', 'only runs of the policy with this name')
    .option('-s, --status <status>', 'only runs with this status: running, completed, failed, cancelled, terminated, timed_out')
    .option('-l, --limit <n>', 'at most this many runs', '20')
    .option('-a, --all', 'include the per-instance runs of fleets')
    .option('--json', 'print the runs as one JSON array on the last line of stdout')
    .addHelpText(
      'after',
      `
Examples:
  ami-backup list
  ami-backup list --name web-servers --status failed --all
  ami-backup list --policy policy.yaml --json | tail -1 | jq '.[0].workflowId'

Exit codes: 0 listed (even when empty), 1 Temporal could not be reached, 2 bad input.`,
    )
    .action(async (opts) => setExit(await listCommand(opts)));

  program
    .command('cancel')
    .description(
      'Cancel a running backup or fleet run. Images not finished yet are deregistered; finished backups and available images stay.',
    )
    .argument('<workflow-id>', 'the run to cancel (see `ami-backup list`)')
    .option('-w, --wait', 'wait until the run has stopped, then say which unfinished images were deregistered where')
    .option('--json', 'print the outcome as one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
Examples:
  ami-backup cancel ami-backup/web-servers/fleet --wait
  ami-backup cancel ami-backup/web-servers/i-0123456789abcdef0

With --wait --json the object also holds \`cleanup\` when an image was deregistered (or could not be):
one entry per cancelled instance backup: {instanceId, workflowId, status, deregistered: [{region, imageId,
role, state, outcome, snapshotIds}], kept: [{region, imageId}], problems?}.

Exit codes: 0 cancellation requested, 1 the run had already ended (or Temporal could not be reached), 2 no such run.`,
    )
    .action(async (workflowId: string, opts) => setExit(await cancelCommand(workflowId, opts)));
}
