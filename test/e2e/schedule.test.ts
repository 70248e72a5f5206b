/**
 * `ami-backup schedule …` against a real Temporal dev server (two: one with the ami-backup search
 * attributes registered, one without). The CLI runs in-process through main(); no worker is
 * needed: a scheduled or triggered run simply waits in its (unique) task queue.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, ScheduleNotFoundError, type WorkflowExecutionInfo } from '@temporalio/client';
import { TypedSearchAttributes, type SearchAttributePair } from '@temporalio/common';
import { startDevServer, type DevServer } from '../../scripts/stack';
import { lastJson } from '../helpers/e2e';
import { cliInProcess } from '../helpers/cliInProcess';
import type { ScheduleListEntry, ScheduleReport } from '../../src/cli/schedule';
import type { BackupFleetInput } from '../../src/shared/types';
import { DEV_SERVER_SEARCH_ATTRIBUTES, POLICY_ATTRIBUTE } from '../../src/temporal/searchAttributes';

let server: DevServer;
let bareServer: DevServer;
let client: Client;
let bareClient: Client;
let dir: string;
const taskQueue = `schedule-e2e-${process.pid}-${Date.now()}`;
const ENV_KEYS = ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'AMI_BACKUP_TASK_QUEUE', 'TEMPORAL_UI_URL'];
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

function restoreEnv(saved: Record<string, string | undefined>): void {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}

const cli = cliInProcess;

const basePolicy = {
  sourceRegion: 'us-east-1',
  targets: { tags: { Backup: 'true' } },
  copies: [{ region: 'eu-west-1' }],
};

function writePolicy(file: string, body: object): string {
  const full = path.join(dir, file);
  writeFileSync(full, JSON.stringify(body, null, 2));
  return full;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function fleetRuns(c: Client, scheduleId: string): Promise<WorkflowExecutionInfo[]> {
  const runs: WorkflowExecutionInfo[] = [];
  for await (const w of c.workflow.list({ query: `WorkflowType='backupFleet' AND TemporalScheduledById='${scheduleId}'` })) runs.push(w);
  return runs;
}

async function expectNoSchedule(c: Client, scheduleId: string): Promise<void> {
  await expect(c.schedule.getHandle(scheduleId).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
}

function hasPolicyAttribute(attrs: SearchAttributePair[] | TypedSearchAttributes | undefined, value: string): boolean {
  const pairs = attrs instanceof TypedSearchAttributes ? attrs.getAll() : (attrs ?? []);
  return pairs.some((p) => p.key.name === POLICY_ATTRIBUTE.name && p.value === value);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-schedule-'));
  [server, bareServer] = await Promise.all([startDevServer({ searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES }), startDevServer()]);
  client = new Client({ connection: await Connection.connect({ address: server.address }) });
  bareClient = new Client({ connection: await Connection.connect({ address: bareServer.address }) });
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.TEMPORAL_NAMESPACE = 'default';
  process.env.AMI_BACKUP_TASK_QUEUE = taskQueue;
  process.env.TEMPORAL_UI_URL = server.uiUrl;
});

afterAll(async () => {
  restoreEnv(savedEnv);
  await client?.connection.close();
  await bareClient?.connection.close();
  await Promise.all([server?.stop(), bareServer?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('schedule --help', () => {
  it.each(['create', 'update', 'describe', 'list', 'pause', 'unpause', 'trigger', 'backfill', 'delete'])(
    '%s has help with examples',
    async (cmd) => {
      const r = await cli(['schedule', cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain(`ami-backup schedule ${cmd}`);
    },
  );
});

describe('a schedule through its life', () => {
  const name = 'sched-main';
  const id = `ami-backup-${name}`;
  let policyFile: string;

  it('create --cron --timezone --jitter: prints the ID, the next 3 runs and the Web UI link', async () => {
    policyFile = writePolicy('main.json', { name, ...basePolicy });
    const r = await cli([
      'schedule',
      'create',
      '--policy',
      policyFile,
      '--cron',
      '0 3 * * *',
      '--timezone',
      'Europe/Berlin',
      '--jitter',
      '5m',
      '--note',
      'owned by team storage',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Created schedule ${id}`);
    expect(r.stdout).toContain(`${server.uiUrl}/namespaces/default/schedules/${id}`);
    const runLines = r.stdout.split('\n').filter((l) => /^\s+(next runs: )?\d{4}-\d\d-\d\dT.*Europe\/Berlin\)$/.test(l));
    expect(runLines).toHaveLength(3);
    expect(r.stdout).not.toContain('not registered');
  });

  it('describe shows the cron, time zone, jitter, overlap and catch-up window', async () => {
    const r = await cli(['schedule', 'describe', '--policy', policyFile, '--json']);
    expect(r.code).toBe(0);
    const report = lastJson<ScheduleReport>(r.stdout);
    expect(report).toMatchObject({
      scheduleId: id,
      policy: name,
      spec: { cron: ['0 3 * * *'], timezone: 'Europe/Berlin', jitter: '5m' },
      paused: false,
      note: 'owned by team storage',
      overlap: 'skip',
      catchupWindow: '1h',
      workflowType: 'backupFleet',
      taskQueue,
      searchAttribute: true,
      policyMatchesFile: true,
      recentActions: [],
    });
    expect(report.nextRuns.length).toBeGreaterThanOrEqual(3);
    for (const t of report.nextRuns) {
      // 03:00 in Berlin, plus up to 5 minutes of jitter.
      expect(new Date(t).toLocaleTimeString('sv-SE', { timeZone: 'Europe/Berlin' })).toMatch(/^03:0[0-5]:/);
    }
    const human = await cli(['schedule', 'describe', '--name', name]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('cron "0 3 * * *" Europe/Berlin, jitter 5m');
    expect(human.stdout).toContain('overlap:     skip');
  });

  it('the schedule itself, as Temporal has it', async () => {
    const d = await client.schedule.getHandle(id).describe();
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.policies.catchupWindow).toBe(3_600_000);
    expect(d.spec.timezone).toBe('Europe/Berlin');
    expect(d.spec.jitter).toBe(300_000);
    expect(d.action.workflowType).toBe('backupFleet');
    expect(d.action.workflowId).toBe(`ami-backup/${name}/fleet`);
    expect(d.action.taskQueue).toBe(taskQueue);
    const input = d.action.args![0] as BackupFleetInput;
    expect(input.policy.name).toBe(name);
    expect(input.searchAttributes).toBe(true);
    expect(d.action.staticSummary).toContain(`policy ${name}`);
    expect(hasPolicyAttribute(d.action.typedSearchAttributes, name)).toBe(true);
    expect(hasPolicyAttribute(d.typedSearchAttributes, name)).toBe(true);
    expect(d.memo).toEqual({ policy: name });
  });

  it('create again: exit 1, says to use schedule update, changes nothing', async () => {
    const r = await cli(['schedule', 'create', '--policy', policyFile, '--every', '1h']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`schedule ${id}`);
    expect(r.stderr).toContain('already exists');
    expect(r.stderr).toContain('schedule update');
    const d = await client.schedule.getHandle(id).describe();
    expect(d.spec.intervals).toEqual([]);
    expect(d.spec.calendars).toHaveLength(1);
  });

  it('update puts the changed policy in and keeps the cron, time zone, jitter and note', async () => {
    const changed = writePolicy('main-v2.json', { name, ...basePolicy, copies: [{ region: 'eu-west-1' }, { region: 'eu-central-1' }] });
    const r = await cli(['schedule', 'update', '--policy', changed]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Updated schedule ${id}`);
    let d = await client.schedule.getHandle(id).describe();
    expect((d.action.args![0] as BackupFleetInput).policy.copies.map((c) => c.region)).toEqual(['eu-west-1', 'eu-central-1']);
    expect(d.action.staticSummary).toContain('eu-central-1');
    expect(d.spec.calendars![0]!.hour).toEqual([{ start: 3, end: 3, step: 1 }]);
    expect(d.spec.timezone).toBe('Europe/Berlin');
    expect(d.spec.jitter).toBe(300_000);
    expect(d.state.note).toBe('owned by team storage');
    expect(d.policies.overlap).toBe('SKIP');
    expect(hasPolicyAttribute(d.typedSearchAttributes, name)).toBe(true);

    // Policies change when given, the times stay.
    const r2 = await cli(['schedule', 'update', '--policy', changed, '--overlap', 'buffer-one', '--catchup-window', '3h']);
    expect(r2.code).toBe(0);
    d = await client.schedule.getHandle(id).describe();
    expect(d.policies.overlap).toBe('BUFFER_ONE');
    expect(d.policies.catchupWindow).toBe(3 * 3_600_000);
    expect(d.spec.calendars![0]!.hour).toEqual([{ start: 3, end: 3, step: 1 }]);

    // The first file is now out of date, and describe says so.
    const stale = await cli(['schedule', 'describe', '--policy', policyFile]);
    expect(stale.stdout).toContain('DIFFERS');
  });

  it('update of a schedule that does not exist: exit 1, suggests create', async () => {
    const other = writePolicy('nobody.json', { name: 'sched-nobody', ...basePolicy });
    const r = await cli(['schedule', 'update', '--policy', other, '--cron', '0 4 * * *']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no schedule ami-backup-sched-nobody');
    expect(r.stderr).toContain('schedule create');
    await expectNoSchedule(client, 'ami-backup-sched-nobody');
  });

  it('list shows it', async () => {
    const entry = await waitFor('the schedule in list', async () => {
      const r = await cli(['schedule', 'list', '--json']);
      expect(r.code).toBe(0);
      return lastJson<ScheduleListEntry[]>(r.stdout).find((e) => e.scheduleId === id);
    });
    expect(entry).toMatchObject({ policy: name, paused: false });
    expect(entry.spec).toContain('0 3 * * *');
    expect(entry.nextRun).toMatch(/^\d{4}-/);
    const human = await cli(['schedule', 'list']);
    expect(human.stdout).toMatch(new RegExp(`${id}\\s+${name}\\s+cron "0 3 \\* \\* \\*"`));
  });

  it('pause: describe says paused, with the note; unpause resumes', async () => {
    const p = await cli(['schedule', 'pause', '--name', name, '--note', 'maintenance CHG-42']);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`Paused schedule ${id}`);
    let report = lastJson<ScheduleReport>((await cli(['schedule', 'describe', '--name', name, '--json'])).stdout);
    expect(report.paused).toBe(true);
    expect(report.note).toBe('maintenance CHG-42');
    expect((await client.schedule.getHandle(id).describe()).state.paused).toBe(true);

    const u = await cli(['schedule', 'unpause', '--name', name]);
    expect(u.code).toBe(0);
    expect(u.stdout).toContain('next runs:');
    report = lastJson<ScheduleReport>((await cli(['schedule', 'describe', '--name', name, '--json'])).stdout);
    expect(report.paused).toBe(false);
    expect(report.note).toMatch(/^unpaused by /);
  });

  it('delete: gone, describe exits 1 naming it and how to create it', async () => {
    const r = await cli(['schedule', 'delete', '--name', name]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Deleted schedule ${id}`);
    expect(r.stdout).toContain('not touched');
    await expectNoSchedule(client, id);
    const d = await cli(['schedule', 'describe', '--name', name]);
    expect(d.code).toBe(1);
    expect(d.stderr).toContain(`no schedule ${id}`);
    expect(d.stderr).toContain('schedule create');
    expect((await cli(['schedule', 'delete', '--name', name])).code).toBe(1);
    expect((await cli(['schedule', 'pause', '--name', name])).code).toBe(1);
  });
});

describe('runs', () => {
  it('trigger: a backupFleet run appears in visibility; a second trigger while it runs is refused', async () => {
    const name = 'sched-trigger';
    const id = `ami-backup-${name}`;
    const file = writePolicy('trigger.json', { name, ...basePolicy });
    expect((await cli(['schedule', 'create', '--policy', file, '--every', '1d', '--paused'])).code).toBe(0);

    const r = await cli(['schedule', 'trigger', '--name', name]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Triggered schedule ${id}`);
    expect(r.stdout).toContain('ami-backup list');
    expect(r.stdout).toContain(`workflow: ami-backup/${name}/fleet-`);
    expect(r.stdout).toContain(`no worker is polling task queue "${taskQueue}"`);

    const runs = await waitFor('the triggered run', async () => {
      const found = await fleetRuns(client, id);
      return found.length > 0 ? found : undefined;
    });
    expect(runs).toHaveLength(1);
    expect(runs[0]!.workflowId).toMatch(new RegExp(`^ami-backup/${name}/fleet-\\d{4}-`));
    expect(runs[0]!.taskQueue).toBe(taskQueue);
    expect(runs[0]!.status.name).toBe('RUNNING');
    expect(runs[0]!.typedSearchAttributes.get(POLICY_ATTRIBUTE)).toBe(name);

    const again = await cli(['schedule', 'trigger', '--name', name]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('still going');
    expect(again.stderr).toContain('nothing was triggered');

    const report = lastJson<ScheduleReport>((await cli(['schedule', 'describe', '--name', name, '--json'])).stdout);
    expect(report.recentActions).toHaveLength(1);
    expect(report.recentActions[0]).toMatchObject({ workflowId: runs[0]!.workflowId, status: 'running' });
    expect(report.running).toHaveLength(1);
  });

  it('backfill: one run per scheduled time in a past range (buffer-all: one at a time; allow-all: all at once)', async () => {
    const hour = 3_600_000;
    const top = Math.floor(Date.now() / hour) * hour;
    // Hourly schedule; the range holds exactly three full hours: top-3h, top-2h, top-1h.
    const from = new Date(top - 3.5 * hour).toISOString();
    const to = new Date(top - 0.5 * hour).toISOString();
    const expected = [3, 2, 1].map((h) => `fleet-${new Date(top - h * hour).toISOString().replace(/\.\d{3}Z$/, 'Z')}`);

    const buffered = writePolicy('backfill.json', { name: 'sched-backfill', ...basePolicy });
    expect((await cli(['schedule', 'create', '--policy', buffered, '--cron', '0 * * * *', '--paused'])).code).toBe(0);
    const r = await cli(['schedule', 'backfill', '--name', 'sched-backfill', '--from', from, '--to', to]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Backfilling 3 runs of schedule ami-backup-sched-backfill');
    expect(r.stdout).toContain('overlap buffer-all');
    // No worker: the first run stays open, so the other two wait for it.
    const first = await waitFor('the first backfilled run', async () => {
      const found = await fleetRuns(client, 'ami-backup-sched-backfill');
      return found.length > 0 ? found : undefined;
    });
    expect(first.map((w) => w.workflowId)).toEqual([`ami-backup/sched-backfill/${expected[0]}`]);
    const report = await waitFor('the buffered runs', async () => {
      const rep = lastJson<ScheduleReport>((await cli(['schedule', 'describe', '--name', 'sched-backfill', '--json'])).stdout);
      return rep.buffered === 2 ? rep : undefined;
    });
    expect(report.running).toHaveLength(1);

    const all = writePolicy('backfill-all.json', { name: 'sched-backfill-all', ...basePolicy });
    expect((await cli(['schedule', 'create', '--policy', all, '--cron', '0 * * * *', '--paused'])).code).toBe(0);
    const r2 = await cli(['schedule', 'backfill', '--policy', all, '--from', from, '--to', to, '--overlap', 'allow-all']);
    expect(r2.code).toBe(0);
    const runs = await waitFor('three backfilled runs', async () => {
      const found = await fleetRuns(client, 'ami-backup-sched-backfill-all');
      return found.length === 3 ? found : undefined;
    });
    expect(runs.map((w) => w.workflowId).sort()).toEqual(expected.map((e) => `ami-backup/sched-backfill-all/${e}`));
  });

  it('backfill refuses bad ranges and starts nothing', async () => {
    const now = Date.now();
    const cases = [
      ['--from', new Date(now - 3_600_000).toISOString(), '--to', new Date(now - 7_200_000).toISOString()],
      ['--from', new Date(now - 3_600_000).toISOString(), '--to', new Date(now + 86_400_000).toISOString()],
      ['--from', 'yesterday', '--to', new Date(now).toISOString()],
    ];
    for (const range of cases) {
      const r = await cli(['schedule', 'backfill', '--name', 'sched-backfill-all', ...range]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--from|--to/);
    }
    const none = await cli(['schedule', 'backfill', '--name', 'sched-missing', '--from', '2020-01-01', '--to', '2020-01-02']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no schedule ami-backup-sched-missing');
    expect(await fleetRuns(client, 'ami-backup-sched-backfill-all')).toHaveLength(3);
  });
});

describe('bad input: exit 2, nothing created', () => {
  const name = 'sched-bad';
  const id = `ami-backup-${name}`;
  let file: string;
  beforeAll(() => {
    file = writePolicy('bad-input.json', { name, ...basePolicy });
  });

  it.each([
    ['--cron and --every', ['--cron', '0 3 * * *', '--every', '1h'], 'not both'],
    ['neither --cron nor --every', [], '--cron'],
    ['--every under a minute', ['--every', '10s'], 'at least 1m'],
    ['--every that is not a duration', ['--every', 'daily'], 'not a duration'],
    ['an unknown time zone', ['--cron', '0 3 * * *', '--timezone', 'Mars/Olympus_Mons'], 'IANA time zone'],
    ['a cron with 4 fields', ['--cron', '0 3 * *'], 'has 4 fields'],
    ['a cron with a # (nth weekday)', ['--cron', '0 3 * * MON#2'], '"#"'],
    ['a cron Temporal refuses', ['--cron', '61 3 * * *'], 'Temporal refused'],
    ['a bad jitter', ['--cron', '0 3 * * *', '--jitter', 'a bit'], '--jitter'],
    ['a catch-up window under 10s', ['--cron', '0 3 * * *', '--catchup-window', '5s'], 'at least 10s'],
    ['an unknown overlap policy', ['--cron', '0 3 * * *', '--overlap', 'sometimes'], 'sometimes'],
  ])('%s', async (_what, args, message) => {
    const r = await cli(['schedule', 'create', '--policy', file, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    await expectNoSchedule(client, id);
  });

  it('a bad policy file', async () => {
    const bad = writePolicy('bad-policy.json', { name, ...basePolicy, copies: [{ region: 'mars-1' }], schedule: 'daily' });
    const r = await cli(['schedule', 'create', '--policy', bad, '--cron', '0 3 * * *']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a valid policy');
    expect(r.stderr).toContain('copies[0].region');
    expect(r.stderr).toContain('schedule: unknown field');
    await expectNoSchedule(client, id);
  });

  it('--policy and --name together, or neither', async () => {
    expect((await cli(['schedule', 'describe', '--policy', file, '--name', name])).code).toBe(2);
    const neither = await cli(['schedule', 'pause']);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('--policy FILE or --name POLICY_NAME');
    expect((await cli(['schedule', 'trigger', '--name', 'Not_A_Name'])).code).toBe(2);
  });
});

describe('a namespace without the search attributes', () => {
  it('creates the schedule without them, and its runs start', async () => {
    const name = 'sched-bare';
    const id = `ami-backup-${name}`;
    const file = writePolicy('bare.json', { name, ...basePolicy });
    const env = { TEMPORAL_ADDRESS: bareServer.address, TEMPORAL_UI_URL: bareServer.uiUrl };
    const r = await cli(['schedule', 'create', '--policy', file, '--cron', '@daily'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`search attribute ${POLICY_ATTRIBUTE.name} is not registered`);

    const d = await bareClient.schedule.getHandle(id).describe();
    expect((d.action.args![0] as BackupFleetInput).searchAttributes).toBe(false);
    expect(hasPolicyAttribute(d.action.typedSearchAttributes, name)).toBe(false);
    expect(hasPolicyAttribute(d.typedSearchAttributes, name)).toBe(false);

    expect((await cli(['schedule', 'trigger', '--name', name], env)).code).toBe(0);
    const runs = await waitFor('the triggered run', async () => {
      const found = await fleetRuns(bareClient, id);
      return found.length > 0 ? found : undefined;
    });
    expect(runs[0]!.status.name).toBe('RUNNING');

    // update on the same namespace keeps working without them too
    expect((await cli(['schedule', 'update', '--policy', file, '--jitter', '1m'], env)).code).toBe(0);
    expect((await bareClient.schedule.getHandle(id).describe()).spec.jitter).toBe(60_000);
  });
});
