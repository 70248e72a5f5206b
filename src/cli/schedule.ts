/**
 * `ami-backup schedule …`: Temporal Schedules that run a policy's fleet backup (`backupFleet`) on
 * a calendar. One schedule per policy (`ami-backup-{policy}`); its action carries the whole
 * validated policy, so a changed policy file reaches the schedule only through `schedule update`.
 *
 * Defaults, and why:
 * - overlap `skip`: a fleet run still going when the next is due is left alone and the next one
 *   is skipped (Temporal counts it). Two fleet runs of one policy at once would fight over the same
 *   instances (each instance has one workflow ID), so the second would only report "skipped".
 * - catch-up window `1h` (Temporal's own default is a year): after a Temporal outage a missed run
 *   still starts if it is at most an hour late; later than that it is dropped and the next one runs
 *   on time, so a policy with `noReboot: false` never reboots instances in the middle of the day
 *   because the server was down at 03:00. `schedule trigger` / `schedule backfill` make up for it.
 * - `trigger` uses the schedule's own overlap policy (not Temporal's allow-all), for the reason above;
 *   it refuses up front, and says so, when a run is in progress and the policy would skip it.
 * - `backfill` uses `buffer-all`: every scheduled time in the range gets its own run, one after
 *   another (never two at once). Each run images the instances as they are now.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ServiceError,
  isGrpcServiceError,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import { TypedSearchAttributes, type SearchAttributePair } from '@temporalio/common';
import { optionalDateToTs, tsToDate } from '@temporalio/common/lib/time';
import os from 'node:os';
import { Command, Option } from 'commander';
import { formatDuration, loadPolicyFile, POLICY_NAME_RE, type Policy } from '../policy';
import { describeTargets, fleetWorkflowId, scheduleIdFor } from '../shared/naming';
import type { BackupFleetInput, FleetReport } from '../shared/types';
import { temporalSettings, workflowUiLink, type TemporalSettings } from '../temporal/config';
import { POLICY_ATTRIBUTE, searchAttributesRegistered } from '../temporal/searchAttributes';
import { EXIT_FAILED, EXIT_OK, UsageError, connect, hasWorker, output, type Output } from './common';
import {
  OVERLAP_CHOICES,
  OVERLAP_MEANING,
  fromOverlapPolicy,
  newSpec,
  parseSpecOptions,
  specSummary,
  timeText,
  toOverlapPolicy,
  updatedSpec,
  type OverlapChoice,
  type ParsedSpecOptions,
  type ScheduleSpecOptions,
  type SpecSummary,
} from './scheduleSpec';

/** The fleet workflow, by name only (the CLI never loads workflow code). */
type BackupFleet = (input: BackupFleetInput) => Promise<FleetReport>;
const FLEET_WORKFLOW = 'backupFleet';

export const SCHEDULE_PREFIX = scheduleIdFor('');
export const DEFAULT_CATCHUP_WINDOW = '1h';
export const DEFAULT_BACKFILL_OVERLAP = 'buffer-all';
/** A backfill that would start more runs than this is refused: a range typed wrong, not a catch-up. */
export const MAX_BACKFILL_RUNS = 100;
const NEXT_RUNS_SHOWN = 3;

interface Target {
  policyName: string;
  scheduleId: string;
  /** The policy, when given as a file. */
  policy?: Policy;
  policyFile?: string;
}

/** `--policy FILE` or `--name POLICY_NAME`: exactly one. */
function resolveTarget(opts: { policy?: string; name?: string }): Target {
  if (opts.policy !== undefined && opts.name !== undefined) {
    throw new UsageError('give either --policy FILE or --name POLICY_NAME, not both');
  }
  if (opts.policy !== undefined) {
    const policy = loadPolicyFile(opts.policy);
    return { policyName: policy.name, scheduleId: scheduleIdFor(policy.name), policy, policyFile: opts.policy };
  }
  if (opts.name === undefined) throw new UsageError('name the schedule: --policy FILE or --name POLICY_NAME');
  if (!POLICY_NAME_RE.test(opts.name)) {
    throw new UsageError(`--name "${opts.name}" is not a policy name: 1 to 64 lower-case letters, digits and "-"`);
  }
  return { policyName: opts.name, scheduleId: scheduleIdFor(opts.name) };
}

// ---------------------------------------------------------------------------------------------
// Building the schedule

/** The one line the Web UI shows for every scheduled run. */
export function fleetSummary(policy: Policy): string {
  return `Scheduled backup, policy ${policy.name}: ${describeTargets(policy.targets)} in ${policy.sourceRegion} → ${policy.copies
    .map((c) => c.region)
    .join(', ')} (encrypted)`;
}

function fleetAction(policy: Policy, taskQueue: string, searchAttributes: boolean): ScheduleOptionsStartWorkflowAction<BackupFleet> {
  return {
    type: 'startWorkflow',
    workflowType: FLEET_WORKFLOW,
    // The schedule appends the scheduled time: ami-backup/{policy}/fleet-2026-01-01T03:00:00Z.
    workflowId: fleetWorkflowId(policy.name),
    taskQueue,
    args: [{ policy, searchAttributes }],
    memo: { policy: policy.name },
    staticSummary: fleetSummary(policy),
    typedSearchAttributes: searchAttributes ? [{ key: POLICY_ATTRIBUTE, value: policy.name }] : undefined,
    searchAttributes: undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Describing a schedule in words

export function scheduleUiLink(settings: Pick<TemporalSettings, 'uiUrl' | 'namespace'>, scheduleId: string): string {
  return `${settings.uiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
}

function policyOf(desc: Pick<ScheduleDescription, 'scheduleId' | 'memo'> & { action?: { args?: readonly unknown[] } }): string {
  const arg = desc.action?.args?.[0] as Partial<BackupFleetInput> | undefined;
  const memoPolicy = desc.memo?.policy;
  return (
    arg?.policy?.name ??
    (typeof memoPolicy === 'string' ? memoPolicy : undefined) ??
    (desc.scheduleId.startsWith(SCHEDULE_PREFIX) ? desc.scheduleId.slice(SCHEDULE_PREFIX.length) : desc.scheduleId)
  );
}

function hasPolicyAttribute(attrs: SearchAttributePair[] | TypedSearchAttributes | undefined): boolean {
  const pairs = attrs instanceof TypedSearchAttributes ? attrs.getAll() : (attrs ?? []);
  return pairs.some((pair) => pair.key.name === POLICY_ATTRIBUTE.name);
}

function bufferedCount(desc: ScheduleDescription): number {
  const size = desc.raw.info?.bufferSize;
  return size ? Number(size) : 0;
}

// ---------------------------------------------------------------------------------------------
// Talking to Temporal

function createHint(target: Target): string {
  return `ami-backup schedule create --policy ${target.policyFile ?? 'FILE'} --cron "0 3 * * *"`;
}

function notFound(target: Target, settings: TemporalSettings): number {
  console.error(
    `ami-backup: no schedule ${target.scheduleId} for policy ${target.policyName} in namespace ${settings.namespace}.\n` +
      `Create it with: ${createHint(target)}   (\`ami-backup schedule list\` shows the existing ones)`,
  );
  return EXIT_FAILED;
}

/**
 * Connects, runs `fn`, closes. A missing schedule or a refusal from Temporal becomes a message
 * that names the schedule and exit 1; bad input (UsageError) and unreachable Temporal go to main().
 */
async function withClient(
  what: string,
  target: Target,
  fn: (client: Client, settings: TemporalSettings) => Promise<number>,
): Promise<number> {
  const settings = temporalSettings();
  const client = await connect(settings);
  try {
    return await fn(client, settings);
  } catch (err) {
    if (err instanceof ScheduleNotFoundError || (isGrpcServiceError(err) && err.code === 5) /* NOT_FOUND */) {
      return notFound(target, settings);
    }
    if (err instanceof ServiceError || isGrpcServiceError(err)) {
      const cause = (err as { cause?: Error }).cause?.message;
      console.error(
        `ami-backup: could not ${what} schedule ${target.scheduleId} (policy ${target.policyName}, namespace ${settings.namespace}): ` +
          `${err.message}${cause ? `: ${cause}` : ''}`,
      );
      return EXIT_FAILED;
    }
    throw err;
  } finally {
    await client.connection.close();
  }
}

/** Temporal's own spec check (field values, time zones it knows) as bad input. */
function specRefused(err: unknown, p: ParsedSpecOptions, verb: string): never {
  const given = [
    p.cron !== undefined ? `--cron "${p.cron}"` : '',
    p.timezone !== undefined ? `--timezone ${p.timezone}` : '',
    p.everyMs !== undefined ? `--every ${formatDuration(p.everyMs)}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  throw new UsageError(`Temporal refused the schedule (${given}): ${(err as Error).message}. Nothing was ${verb}.`);
}

async function noWorkerWarning(client: Client, settings: TemporalSettings, taskQueue: string, out: Output): Promise<void> {
  if ((await hasWorker(client, { ...settings, taskQueue })) === false) {
    out.info(
      `Warning: no worker is polling task queue "${taskQueue}" in namespace "${settings.namespace}": runs wait until one does. ` +
        'Start one with `npm run worker` (same TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AMI_BACKUP_TASK_QUEUE).',
    );
  }
}

function printNextRuns(out: Output, desc: ScheduleDescription): void {
  const tz = desc.spec.timezone || 'UTC';
  const next = desc.info.nextActionTimes.slice(0, NEXT_RUNS_SHOWN);
  if (desc.state.paused) {
    out.info(`  next runs: none while paused (\`ami-backup schedule unpause --name ${policyOf(desc)}\`)`);
    return;
  }
  if (next.length === 0) {
    out.info('  next runs: none (the spec matches no future time)');
    return;
  }
  next.forEach((d, i) => out.info(`${i === 0 ? '  next runs: ' : '             '}${timeText(d, tz)}`));
}

function searchAttributeNote(out: Output, registered: boolean, namespace: string): void {
  if (registered) return;
  out.info(
    `Note: search attribute ${POLICY_ATTRIBUTE.name} is not registered in namespace ${namespace}, so scheduled runs are not ` +
      `tagged with it (they run all the same). Register it, then run \`schedule update\`:\n` +
      `  temporal operator search-attribute create --namespace ${namespace} --name ${POLICY_ATTRIBUTE.name} --type Keyword`,
  );
}

// ---------------------------------------------------------------------------------------------
// The commands

interface CreateOptions extends ScheduleSpecOptions {
  policy: string;
  paused?: boolean;
  note?: string;
}

export async function createSchedule(opts: CreateOptions): Promise<number> {
  const out = output(false);
  const policy = loadPolicyFile(opts.policy);
  const p = parseSpecOptions(
    { ...opts, catchupWindow: opts.catchupWindow ?? DEFAULT_CATCHUP_WINDOW, overlap: opts.overlap ?? 'skip' },
    true,
  );
  const target: Target = { policyName: policy.name, scheduleId: scheduleIdFor(policy.name), policy, policyFile: opts.policy };

  return withClient('create', target, async (client, settings) => {
    const registered = await searchAttributesRegistered(client.connection, settings.namespace);
    try {
      await client.schedule.create<BackupFleet>({
        scheduleId: target.scheduleId,
        spec: newSpec(p),
        action: fleetAction(policy, settings.taskQueue, registered),
        policies: { overlap: toOverlapPolicy(p.overlap!), catchupWindow: p.catchupMs },
        state: {
          paused: Boolean(opts.paused),
          note: opts.note ?? (opts.paused ? 'created paused with ami-backup schedule create' : undefined),
        },
        memo: { policy: policy.name },
        typedSearchAttributes: registered ? [{ key: POLICY_ATTRIBUTE, value: policy.name }] : undefined,
      });
    } catch (err) {
      if (err instanceof ScheduleAlreadyRunning) {
        console.error(
          `ami-backup: schedule ${target.scheduleId} for policy ${policy.name} already exists in namespace ${settings.namespace}; nothing was changed.\n` +
            `Change it with: ami-backup schedule update --policy ${opts.policy} [--cron EXPR | --every DURATION] …\n` +
            `See it with:    ami-backup schedule describe --name ${policy.name}`,
        );
        return EXIT_FAILED;
      }
      if (err instanceof TypeError) specRefused(err, p, 'created');
      throw err;
    }
    const desc = await client.schedule.getHandle(target.scheduleId).describe();
    out.info(
      `Created schedule ${target.scheduleId} for policy ${policy.name} (namespace ${settings.namespace}, task queue ${settings.taskQueue})`,
    );
    out.info(`  when:      ${specSummary(desc.spec).text}`);
    out.info(`  overlap:   ${p.overlap} (${OVERLAP_MEANING[p.overlap!]}); catch-up window ${formatDuration(p.catchupMs!)}`);
    if (desc.state.paused) out.info(`  paused:    yes${desc.state.note ? ` (${desc.state.note})` : ''}`);
    printNextRuns(out, desc);
    out.info(`  Web UI:    ${scheduleUiLink(settings, target.scheduleId)}`);
    out.info(
      `The policy is stored in the schedule: after editing ${opts.policy}, run \`ami-backup schedule update --policy ${opts.policy}\`.`,
    );
    if (p.everyMs !== undefined && p.timezone !== undefined) {
      out.info('Note: --timezone does not move --every runs (intervals count from 1970-01-01T00:00Z); use --cron for local times.');
    }
    searchAttributeNote(out, registered, settings.namespace);
    await noWorkerWarning(client, settings, settings.taskQueue, out);
    return EXIT_OK;
  });
}

interface UpdateOptions extends ScheduleSpecOptions {
  policy: string;
  note?: string;
}

export async function updateSchedule(opts: UpdateOptions): Promise<number> {
  const out = output(false);
  const policy = loadPolicyFile(opts.policy);
  const p = parseSpecOptions(opts, false);
  const target: Target = { policyName: policy.name, scheduleId: scheduleIdFor(policy.name), policy, policyFile: opts.policy };

  return withClient('update', target, async (client, settings) => {
    const registered = await searchAttributesRegistered(client.connection, settings.namespace);
    const handle = client.schedule.getHandle(target.scheduleId);
    let previous: ScheduleDescription | undefined;
    try {
      await handle.update<BackupFleet>((prev) => {
        previous = prev;
        if (prev.action.workflowType !== FLEET_WORKFLOW) {
          throw new UsageError(
            `schedule ${target.scheduleId} starts "${prev.action.workflowType}", not ${FLEET_WORKFLOW}: it is not an ami-backup schedule; nothing was changed`,
          );
        }
        const schedulePairs = prev.typedSearchAttributes.getAll().filter((pair) => pair.key.name !== POLICY_ATTRIBUTE.name);
        return {
          ...prev,
          spec: updatedSpec(prev.spec, p),
          // Keep the schedule's task queue: a laptop with default settings must not move it away from its workers.
          action: { ...fleetAction(policy, prev.action.taskQueue, registered), retry: prev.action.retry, priority: prev.action.priority },
          policies: {
            ...prev.policies,
            ...(p.overlap !== undefined ? { overlap: toOverlapPolicy(p.overlap) } : {}),
            ...(p.catchupMs !== undefined ? { catchupWindow: p.catchupMs } : {}),
          },
          state: { ...prev.state, ...(opts.note !== undefined ? { note: opts.note } : {}) },
          searchAttributes: undefined,
          typedSearchAttributes: registered ? [...schedulePairs, { key: POLICY_ATTRIBUTE, value: policy.name }] : schedulePairs,
        };
      });
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) {
        console.error(
          `ami-backup: no schedule ${target.scheduleId} for policy ${policy.name} in namespace ${settings.namespace}: nothing to update.\n` +
            `Create it with: ami-backup schedule create --policy ${opts.policy} --cron "0 3 * * *"`,
        );
        return EXIT_FAILED;
      }
      if (err instanceof TypeError) specRefused(err, p, 'changed');
      throw err;
    }
    const desc = await handle.describe();
    const before = previous ? specSummary(previous.spec).text : undefined;
    const after = specSummary(desc.spec).text;
    out.info(`Updated schedule ${target.scheduleId}: policy ${policy.name} from ${opts.policy}`);
    out.info(`  when:      ${after}${before && before !== after ? ` (was ${before})` : ''}`);
    out.info(
      `  overlap:   ${fromOverlapPolicy(desc.policies.overlap)}; catch-up window ${formatDuration(desc.policies.catchupWindow)}` +
        (desc.state.paused ? `; paused${desc.state.note ? ` (${desc.state.note})` : ''}` : ''),
    );
    printNextRuns(out, desc);
    out.info(`  Web UI:    ${scheduleUiLink(settings, target.scheduleId)}`);
    out.info('Runs already started keep the policy they started with.');
    if (desc.action.taskQueue !== settings.taskQueue) {
      out.info(
        `Note: the schedule starts runs on task queue "${desc.action.taskQueue}" (kept), not "${settings.taskQueue}" (AMI_BACKUP_TASK_QUEUE).`,
      );
    }
    searchAttributeNote(out, registered, settings.namespace);
    return EXIT_OK;
  });
}

/** What `schedule describe --json` prints. */
export interface ScheduleReport {
  scheduleId: string;
  policy: string;
  namespace: string;
  spec: SpecSummary;
  paused: boolean;
  note?: string;
  overlap: OverlapChoice;
  catchupWindow: string;
  pauseOnFailure: boolean;
  workflowType: string;
  workflowId?: string;
  taskQueue: string;
  /** Whether scheduled runs carry the AmiBackupPolicy search attribute. */
  searchAttribute: boolean;
  /** Whether the policy in the schedule equals the file given with --policy (absent with --name). */
  policyMatchesFile?: boolean;
  nextRuns: string[];
  recentActions: Array<{ scheduledAt: string; takenAt: string; workflowId: string; runId: string; status: string }>;
  running: Array<{ workflowId: string; runId: string }>;
  /** Runs waiting for the running one to end (buffer-one / buffer-all, backfills). */
  buffered: number;
  actionsTaken: number;
  skippedOverlap: number;
  missedCatchupWindow: number;
  createdAt: string;
  updatedAt?: string;
  webUi: string;
}

async function runStatus(client: Client, workflowId: string): Promise<string> {
  try {
    // The latest run under that ID: a fleet that continued as new reports where it is now.
    const d = await client.workflow.getHandle(workflowId).describe();
    return d.status.name.toLowerCase();
  } catch {
    return 'unknown';
  }
}

async function scheduleReport(
  client: Client,
  settings: TemporalSettings,
  desc: ScheduleDescription,
  target: Target,
): Promise<ScheduleReport> {
  const recent = desc.info.recentActions.slice(-10);
  const statuses = await Promise.all(recent.map((a) => runStatus(client, a.action.workflow.workflowId)));
  const embedded = (desc.action.args?.[0] as Partial<BackupFleetInput> | undefined)?.policy;
  return {
    scheduleId: desc.scheduleId,
    policy: policyOf(desc),
    namespace: settings.namespace,
    spec: specSummary(desc.spec),
    paused: desc.state.paused,
    ...(desc.state.note ? { note: desc.state.note } : {}),
    overlap: fromOverlapPolicy(desc.policies.overlap),
    catchupWindow: formatDuration(desc.policies.catchupWindow),
    pauseOnFailure: desc.policies.pauseOnFailure,
    workflowType: desc.action.workflowType,
    workflowId: desc.action.workflowId,
    taskQueue: desc.action.taskQueue,
    searchAttribute: hasPolicyAttribute(desc.action.typedSearchAttributes),
    ...(target.policy ? { policyMatchesFile: JSON.stringify(embedded) === JSON.stringify(target.policy) } : {}),
    nextRuns: desc.state.paused ? [] : desc.info.nextActionTimes.map((d) => d.toISOString()),
    recentActions: recent.map((a, i) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      status: statuses[i]!,
    })),
    running: desc.info.runningActions.map((a) => ({ workflowId: a.workflow.workflowId, runId: a.workflow.firstExecutionRunId })),
    buffered: bufferedCount(desc),
    actionsTaken: desc.info.numActionsTaken,
    skippedOverlap: desc.info.numActionsSkippedOverlap,
    missedCatchupWindow: desc.info.numActionsMissedCatchupWindow,
    createdAt: desc.info.createdAt.toISOString(),
    ...(desc.info.lastUpdatedAt ? { updatedAt: desc.info.lastUpdatedAt.toISOString() } : {}),
    webUi: scheduleUiLink(settings, desc.scheduleId),
  };
}

function printReport(out: Output, r: ScheduleReport, settings: TemporalSettings, policyFile?: string): void {
  out.info(`Schedule ${r.scheduleId} (policy ${r.policy}, namespace ${r.namespace})`);
  out.info(`  when:        ${r.spec.text}`);
  out.info(`  state:       ${r.paused ? `PAUSED${r.note ? `: ${r.note}` : ''}` : `active${r.note ? ` (note: ${r.note})` : ''}`}`);
  out.info(`  overlap:     ${r.overlap} (${OVERLAP_MEANING[r.overlap] ?? ''})`);
  out.info(`  catch-up:    ${r.catchupWindow} (a run missed while Temporal was down starts if at most this late)`);
  out.info(`  starts:      ${r.workflowType} on task queue ${r.taskQueue}, workflow ID ${r.workflowId}-{time}`);
  if (r.policyMatchesFile === false) {
    out.info(`  policy:      DIFFERS from ${policyFile}: run \`ami-backup schedule update --policy ${policyFile}\` to use the file`);
  } else if (r.policyMatchesFile) {
    out.info(`  policy:      same as ${policyFile}`);
  }
  const tz = r.spec.timezone;
  if (r.nextRuns.length === 0) {
    out.info(`  next runs:   ${r.paused ? 'none while paused' : 'none'}`);
  } else {
    r.nextRuns
      .slice(0, NEXT_RUNS_SHOWN)
      .forEach((t, i) => out.info(`${i === 0 ? '  next runs:   ' : '               '}${timeText(new Date(t), tz)}`));
  }
  out.info(
    `  actions:     ${r.actionsTaken} taken, ${r.skippedOverlap} skipped (overlap), ${r.missedCatchupWindow} missed (catch-up window)` +
      (r.buffered ? `, ${r.buffered} waiting to start` : ''),
  );
  if (r.recentActions.length === 0) {
    out.info('  recent runs: none yet');
  } else {
    out.info('  recent runs:');
    for (const a of r.recentActions) {
      out.info(`    ${a.scheduledAt.replace(/\.\d{3}Z$/, 'Z')}  ${a.status.padEnd(10)} ${a.workflowId}`);
      out.info(`      ${workflowUiLink(settings, a.workflowId, a.runId)}`);
    }
  }
  out.info(`  Web UI:      ${r.webUi}`);
}

interface TargetOptions {
  policy?: string;
  name?: string;
}

export async function describeSchedule(opts: TargetOptions & { json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  const target = resolveTarget(opts);
  return withClient('describe', target, async (client, settings) => {
    const desc = await client.schedule.getHandle(target.scheduleId).describe();
    const report = await scheduleReport(client, settings, desc, target);
    printReport(out, report, settings, target.policyFile);
    if (out.json) console.log(JSON.stringify(report));
    return EXIT_OK;
  });
}

/** One line of `schedule list`. */
export interface ScheduleListEntry {
  scheduleId: string;
  policy: string;
  spec: string;
  paused: boolean;
  note?: string;
  nextRun?: string;
}

export async function listSchedules(opts: { json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  const settings = temporalSettings();
  const client = await connect(settings);
  try {
    const ids: string[] = [];
    for await (const s of client.schedule.list()) if (s.scheduleId.startsWith(SCHEDULE_PREFIX)) ids.push(s.scheduleId);
    ids.sort();
    // The list comes from visibility (eventually consistent); describe says how each one is right now.
    const described = await Promise.all(
      ids.map((id) =>
        client.schedule
          .getHandle(id)
          .describe()
          .catch(() => undefined),
      ),
    );
    const entries: ScheduleListEntry[] = described
      .filter((d): d is ScheduleDescription => d !== undefined)
      .map((d) => ({
        scheduleId: d.scheduleId,
        policy: policyOf(d),
        spec: specSummary(d.spec).text,
        paused: d.state.paused,
        ...(d.state.note ? { note: d.state.note } : {}),
        ...(!d.state.paused && d.info.nextActionTimes[0] ? { nextRun: d.info.nextActionTimes[0].toISOString() } : {}),
      }));
    if (entries.length === 0) {
      out.info(
        `No ami-backup schedules in namespace ${settings.namespace}. Create one with: ami-backup schedule create --policy FILE --cron "0 3 * * *"`,
      );
    } else {
      const rows = [
        ['SCHEDULE', 'POLICY', 'WHEN', 'STATE', 'NEXT RUN'],
        ...entries.map((e) => [
          e.scheduleId,
          e.policy,
          e.spec,
          e.paused ? 'paused' : 'active',
          e.nextRun?.replace(/\.\d{3}Z$/, 'Z') ?? '-',
        ]),
      ];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) out.info(r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
    }
    if (out.json) console.log(JSON.stringify(entries));
    return EXIT_OK;
  } finally {
    await client.connection.close();
  }
}

function defaultNote(verb: string): string {
  let who = process.env.USER || process.env.USERNAME;
  try {
    who ||= os.userInfo().username;
  } catch {
    // No passwd entry (a container running as a bare UID).
  }
  return `${verb} by ${who || 'an unknown user'} with ami-backup at ${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
}

export async function pauseSchedule(opts: TargetOptions & { note?: string }, pause: boolean): Promise<number> {
  const out = output(false);
  const target = resolveTarget(opts);
  return withClient(pause ? 'pause' : 'unpause', target, async (client, settings) => {
    const handle: ScheduleHandle = client.schedule.getHandle(target.scheduleId);
    const note = opts.note ?? defaultNote(pause ? 'paused' : 'unpaused');
    if (pause) await handle.pause(note);
    else await handle.unpause(note);
    const desc = await handle.describe();
    if (pause) {
      out.info(`Paused schedule ${target.scheduleId} (policy ${target.policyName}): ${note}`);
      out.info(`  No new runs start until \`ami-backup schedule unpause --name ${target.policyName}\`; runs already started carry on.`);
      if (desc.info.runningActions.length) {
        out.info(`  Still running: ${desc.info.runningActions.map((a) => a.workflow.workflowId).join(', ')}`);
      }
    } else {
      out.info(`Unpaused schedule ${target.scheduleId} (policy ${target.policyName}): ${note}`);
      printNextRuns(out, desc);
    }
    out.info(`  Web UI: ${scheduleUiLink(settings, target.scheduleId)}`);
    return EXIT_OK;
  });
}

export async function triggerSchedule(opts: TargetOptions & { overlap?: OverlapChoice }): Promise<number> {
  const out = output(false);
  const target = resolveTarget(opts);
  return withClient('trigger', target, async (client, settings) => {
    const handle = client.schedule.getHandle(target.scheduleId);
    const desc = await handle.describe();
    const overlap = opts.overlap ?? fromOverlapPolicy(desc.policies.overlap);
    const running = desc.info.runningActions.map((a) => a.workflow.workflowId);
    if (running.length > 0 && overlap === 'skip') {
      console.error(
        `ami-backup: a run of schedule ${target.scheduleId} is still going (${running.join(', ')}); with overlap "skip" ` +
          'a triggered run would be skipped, so nothing was triggered.\n' +
          `Wait for it, or trigger with --overlap buffer-one (start when it ends) or --overlap terminate-other (stop it and start now).`,
      );
      return EXIT_FAILED;
    }
    const before = new Set(desc.info.recentActions.map((a) => a.action.workflow.workflowId));
    await handle.trigger(toOverlapPolicy(overlap));
    out.info(`Triggered schedule ${target.scheduleId} (policy ${target.policyName}) now, overlap ${overlap}.`);
    if (desc.state.paused) out.info('  The schedule stays paused: only this run starts.');
    // The schedule starts the run a moment later; name it when it shows up.
    let started: string | undefined;
    for (let i = 0; i < 15 && !started && running.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await handle.describe();
      started = now.info.recentActions.map((a) => a.action.workflow.workflowId).find((id) => !before.has(id));
    }
    if (started) {
      out.info(`  workflow: ${started}`);
      out.info(`  Web UI:   ${workflowUiLink(settings, started)}`);
    } else if (running.length > 0) {
      out.info(`  It starts when the running one (${running.join(', ')}) ends, as overlap ${overlap} says.`);
    }
    out.info(`Watch it: ami-backup list   (or ami-backup schedule describe --name ${target.policyName})`);
    await noWorkerWarning(client, settings, desc.action.taskQueue, out);
    return EXIT_OK;
  });
}

function parseTime(flag: string, text: string): Date {
  const date = /^\d{4}-\d{2}-\d{2}(T|$)/.test(text) ? new Date(text) : new Date(NaN);
  if (Number.isNaN(date.getTime())) {
    throw new UsageError(`${flag} "${text}" is not an ISO 8601 time such as 2026-01-31T03:00:00Z or 2026-01-31 (midnight UTC)`);
  }
  return date;
}

export async function backfillSchedule(opts: TargetOptions & { from: string; to: string; overlap: OverlapChoice }): Promise<number> {
  const out = output(false);
  const target = resolveTarget(opts);
  const from = parseTime('--from', opts.from);
  const to = parseTime('--to', opts.to);
  if (from >= to) throw new UsageError(`--from ${opts.from} must be before --to ${opts.to}`);
  if (to.getTime() > Date.now() + 60_000) {
    throw new UsageError(`--to ${opts.to} is in the future: backfill makes up for past times; future ones run by themselves`);
  }
  return withClient('backfill', target, async (client, settings) => {
    const handle = client.schedule.getHandle(target.scheduleId);
    const desc = await handle.describe();
    const matching = await client.workflowService.listScheduleMatchingTimes({
      namespace: settings.namespace,
      scheduleId: target.scheduleId,
      startTime: optionalDateToTs(from),
      endTime: optionalDateToTs(to),
    });
    const times = (matching.startTime ?? []).map((t) => tsToDate(t));
    const spec = specSummary(desc.spec).text;
    if (times.length === 0) {
      out.info(
        `Schedule ${target.scheduleId} (${spec}) has no scheduled time between ${from.toISOString()} and ${to.toISOString()}: nothing to backfill.`,
      );
      return EXIT_OK;
    }
    if (times.length > MAX_BACKFILL_RUNS) {
      throw new UsageError(
        `${from.toISOString()} to ${to.toISOString()} covers ${times.length >= 1000 ? 'at least 1000' : times.length} scheduled times of ` +
          `${target.scheduleId} (${spec}); backfill starts at most ${MAX_BACKFILL_RUNS}. Narrow the range (nothing was started), ` +
          `or use \`ami-backup schedule trigger --name ${target.policyName}\` for one run now.`,
      );
    }
    await handle.backfill({ start: from, end: to, overlap: toOverlapPolicy(opts.overlap) });
    out.info(
      `Backfilling ${times.length} run${times.length === 1 ? '' : 's'} of schedule ${target.scheduleId} (policy ${target.policyName}), ` +
        `overlap ${opts.overlap}: ${OVERLAP_MEANING[opts.overlap]}.`,
    );
    for (const t of times.slice(0, 10)) out.info(`  ${t.toISOString().replace(/\.\d{3}Z$/, 'Z')}`);
    if (times.length > 10) out.info(`  … and ${times.length - 10} more`);
    const running = desc.info.runningActions.map((a) => a.workflow.workflowId);
    if (running.length > 0 && opts.overlap !== 'allow-all') {
      out.info(`A run is going now (${running.join(', ')}): as overlap ${opts.overlap} says, these wait for it.`);
    }
    out.info('Each run backs up the instances as they are now; the times only name the runs.');
    out.info(
      `Watch them: ami-backup list   (or ami-backup schedule describe --name ${target.policyName}; Web UI ${scheduleUiLink(settings, target.scheduleId)})`,
    );
    await noWorkerWarning(client, settings, desc.action.taskQueue, out);
    return EXIT_OK;
  });
}

export async function deleteSchedule(opts: TargetOptions): Promise<number> {
  const out = output(false);
  const target = resolveTarget(opts);
  return withClient('delete', target, async (client) => {
    const handle = client.schedule.getHandle(target.scheduleId);
    const desc = await handle.describe();
    await handle.delete();
    out.info(`Deleted schedule ${target.scheduleId} (policy ${target.policyName}): no more scheduled runs.`);
    const running = desc.info.runningActions.map((a) => a.workflow.workflowId);
    out.info(
      running.length
        ? `  Runs it already started are NOT stopped: ${running.join(', ')} (cancel them in the Web UI if you must).`
        : '  Runs it already started are not touched (none is running now).',
    );
    out.info('  Images, copies and SSM parameters made so far stay as they are.');
    return EXIT_OK;
  });
}

// ---------------------------------------------------------------------------------------------
// Wiring

const overlapOption = (description: string, defaultValue?: OverlapChoice) => {
  const option = new Option('--overlap <policy>', description).choices(OVERLAP_CHOICES);
  return defaultValue ? option.default(defaultValue) : option;
};

const targetHelp = '--policy FILE reads the policy name from the file; --name POLICY_NAME names it directly.';

function addSpecOptions(cmd: Command, forCreate: boolean): Command {
  return cmd
    .option('--cron <expr>', 'when to run: 5 cron fields (minute hour day-of-month month day-of-week) or @daily, @weekly …')
    .option('--every <duration>', 'or run at a fixed interval (at least 1m), counted from 1970-01-01T00:00Z: "12h", "1d"')
    .option('--timezone <tz>', `IANA time zone for --cron${forCreate ? ' (default UTC)' : ''}, such as Europe/Berlin`)
    .option('--jitter <duration>', 'start each run up to this much later, at random (spreads load): "5m"')
    .addOption(
      new Option(
        '--catchup-window <duration>',
        'after a Temporal outage, start a missed run only if it is at most this late (at least 10s)' +
          (forCreate ? '' : '; kept when not given'),
      ).default(forCreate ? DEFAULT_CATCHUP_WINDOW : undefined),
    )
    .addOption(
      overlapOption(
        'when a run is due while the last is still going: skip it (default), buffer-one, buffer-all, cancel-other, terminate-other, allow-all' +
          (forCreate ? '' : '; kept when not given'),
        forCreate ? 'skip' : undefined,
      ),
    );
}

export function registerScheduleCommands(program: Command, setExit: (code: number) => void): void {
  const schedule = program
    .command('schedule')
    .description("Run a policy's fleet backup on a calendar with a Temporal Schedule (one schedule per policy: ami-backup-{policy}).")
    .addHelpText(
      'after',
      `
Each schedule starts the backupFleet workflow with the policy stored in it; after editing the
policy file, run \`schedule update\`. Exit codes: 0 done, 1 Temporal refused or the schedule is
missing / already there, 2 bad input (nothing created or changed).

Examples:
  ami-backup schedule create --policy policy.yaml --cron "0 3 * * *" --timezone Europe/Berlin --jitter 10m
  ami-backup schedule list
  ami-backup schedule describe --name web-servers
  ami-backup schedule trigger --name web-servers`,
    );

  addSpecOptions(
    schedule
      .command('create')
      .description('Create the schedule of a policy: its fleet backup runs at the times you give.')
      .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON); the schedule is ami-backup-{name}'),
    true,
  )
    .option('--paused', 'create it paused (nothing runs until `schedule unpause`)')
    .option('--note <text>', 'a note shown with the schedule (why it exists, who owns it)')
    .addHelpText(
      'after',
      `
Exactly one of --cron or --every. Cron times are in --timezone (default UTC); Temporal runs a
time that does not exist on a DST change day not at all, and one that occurs twice, twice.

Defaults: overlap skip (a fleet run still going when the next is due: the next is skipped, since
two runs would compete for the same instances); catch-up window ${DEFAULT_CATCHUP_WINDOW} (a run missed during a
Temporal outage starts only if at most an hour late, so a backup that reboots instances is not
run in the middle of the day; \`schedule trigger\` or \`schedule backfill\` make up for it).

Examples:
  ami-backup schedule create --policy policy.yaml --cron "0 3 * * *"
  ami-backup schedule create --policy policy.yaml --cron "30 1 * * MON-FRI" --timezone America/New_York --jitter 15m
  ami-backup schedule create --policy policy.yaml --every 12h --paused --note "waiting for change CHG-1234"

Exit codes: 0 created, 1 it already exists (use \`schedule update\`) or Temporal refused, 2 bad input.`,
    )
    .action(async (opts) => setExit(await createSchedule(opts)));

  addSpecOptions(
    schedule
      .command('update')
      .description('Put a changed policy file into its schedule; change the times or policies given, keep the rest.')
      .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON); names the schedule ami-backup-{name}'),
    false,
  )
    .option('--note <text>', "replace the schedule's note")
    .addHelpText(
      'after',
      `
Always replaces the policy stored in the schedule with the file's. Options not given keep their
current value; --cron or --every replaces the times. Runs already started keep their policy.
To pause or resume, use \`schedule pause\` / \`schedule unpause\`.

Examples:
  ami-backup schedule update --policy policy.yaml
  ami-backup schedule update --policy policy.yaml --cron "0 2 * * *" --timezone UTC
  ami-backup schedule update --policy policy.yaml --overlap buffer-one --catchup-window 3h

Exit codes: 0 updated, 1 no such schedule (use \`schedule create\`) or Temporal refused, 2 bad input.`,
    )
    .action(async (opts) => setExit(await updateSchedule(opts)));

  schedule
    .command('describe')
    .description('Show a schedule: times, state and note, next runs, recent runs and how they ended.')
    .option('-p, --policy <file>', 'policy file; also says whether the schedule holds this version of it')
    .option('-n, --name <policy>', 'policy name')
    .option('--json', 'print one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
${targetHelp}

Examples:
  ami-backup schedule describe --name web-servers
  ami-backup schedule describe --policy policy.yaml --json | tail -1 | jq .recentActions

Exit codes: 0 shown, 1 no such schedule, 2 bad input.`,
    )
    .action(async (opts) => setExit(await describeSchedule(opts)));

  schedule
    .command('list')
    .description('List every ami-backup schedule in the namespace: policy, times, state, next run.')
    .option('--json', 'print one JSON array on the last line of stdout')
    .addHelpText(
      'after',
      `
Examples:
  ami-backup schedule list
  ami-backup schedule list --json | tail -1 | jq -r '.[] | select(.paused) | .policy'`,
    )
    .action(async (opts) => setExit(await listSchedules(opts)));

  for (const pause of [true, false]) {
    const verb = pause ? 'pause' : 'unpause';
    schedule
      .command(verb)
      .description(pause ? 'Stop starting new runs (runs already going carry on).' : 'Start running on schedule again.')
      .option('-p, --policy <file>', 'policy file')
      .option('-n, --name <policy>', 'policy name')
      .option('--note <text>', `why (shown with the schedule; default: who ${pause ? 'paused' : 'unpaused'} it, and when)`)
      .addHelpText(
        'after',
        `
${targetHelp}

Examples:
  ami-backup schedule ${verb} --name web-servers${pause ? ' --note "maintenance window CHG-1234"' : ''}
  ami-backup schedule ${verb} --policy policy.yaml

Exit codes: 0 done, 1 no such schedule, 2 bad input.`,
      )
      .action(async (opts) => setExit(await pauseSchedule(opts, pause)));
  }

  schedule
    .command('trigger')
    .description('Run the scheduled fleet backup now (also while paused).')
    .option('-p, --policy <file>', 'policy file')
    .option('-n, --name <policy>', 'policy name')
    .addOption(overlapOption("if a run is still going: default the schedule's own policy (skip: nothing is triggered, and it says so)"))
    .addHelpText(
      'after',
      `
${targetHelp} The run uses the policy stored in the schedule (\`schedule update\` first after an edit).

Examples:
  ami-backup schedule trigger --name web-servers
  ami-backup schedule trigger --policy policy.yaml --overlap buffer-one

Exit codes: 0 triggered, 1 no such schedule, or a run is going and overlap skip would drop it, 2 bad input.`,
    )
    .action(async (opts) => setExit(await triggerSchedule(opts)));

  schedule
    .command('backfill')
    .description('Make up for scheduled times missed in a past range (Temporal down, schedule paused).')
    .option('-p, --policy <file>', 'policy file')
    .option('-n, --name <policy>', 'policy name')
    .requiredOption('--from <time>', 'start of the range, ISO 8601 (2026-01-31T00:00:00Z, or 2026-01-31 for midnight UTC)')
    .requiredOption('--to <time>', 'end of the range, ISO 8601, not in the future')
    .addOption(overlapOption('how the runs share time: buffer-all runs each one after another', DEFAULT_BACKFILL_OVERLAP))
    .addHelpText(
      'after',
      `
Every time the schedule's spec matches in the range gets its own run. The default overlap,
buffer-all, starts them one after another: two fleet runs at once would compete for the same
instances. Each run backs up the instances as they are now; for a single catch-up run use
\`schedule trigger\`. At most ${MAX_BACKFILL_RUNS} runs per backfill. Works while paused.

Examples:
  ami-backup schedule backfill --name web-servers --from 2026-01-30T00:00:00Z --to 2026-02-01T00:00:00Z
  ami-backup schedule backfill --policy policy.yaml --from 2026-01-31 --to 2026-02-01 --overlap skip

Exit codes: 0 started (or nothing to do), 1 no such schedule, 2 bad input (nothing started).`,
    )
    .action(async (opts) => setExit(await backfillSchedule(opts)));

  schedule
    .command('delete')
    .description('Delete a schedule: no more scheduled runs. Runs already started are not stopped.')
    .option('-p, --policy <file>', 'policy file')
    .option('-n, --name <policy>', 'policy name')
    .addHelpText(
      'after',
      `
${targetHelp} Backups already made (AMIs, copies, SSM parameters) are not touched.

Examples:
  ami-backup schedule delete --name web-servers

Exit codes: 0 deleted, 1 no such schedule, 2 bad input.`,
    )
    .action(async (opts) => setExit(await deleteSchedule(opts)));
}
