/**
 * Security, end to end with the real worker process and the real CLI:
 *
 * - no AWS credential (key ID, secret, session token) ever enters a workflow's input, result or
 *   history, nor a schedule: a fleet run (with one instance failing on an AWS error), an instance
 *   run and a schedule are made with distinctive credentials, then every history is scanned, raw
 *   and with every payload decoded;
 * - transport to Temporal over TLS, mutual TLS and API keys, configured only through Temporal's
 *   standard environment variables (TEMPORAL_ADDRESS, TEMPORAL_TLS*, TEMPORAL_API_KEY): the dev
 *   server has no TLS, so a TLS front (test/helpers/tlsFront.ts) stands before it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { RunReport } from '../../src/client';
import { scheduleIdFor } from '../../src/shared/naming';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, type CliResult, type E2eStack } from '../helpers/e2e';
import { ec2ErrorResponse } from '../helpers/recordingProxy';
import { hasOpenssl, makePki, startTlsFront, type Pki, type TlsFront } from '../helpers/tlsFront';

const SRC = 'us-east-1';
const DR = 'eu-west-1';
const FAST_WAIT = { firstCheck: '1s', maxInterval: '2s', timeout: '2m' };

/** Credentials no other text can contain by chance (moto accepts any). */
const tag = randomBytes(6).toString('hex').toUpperCase();
const SECRETS = {
  AWS_ACCESS_KEY_ID: `AKIA${tag}SECTEST`.slice(0, 20),
  AWS_SECRET_ACCESS_KEY: `sec/${randomBytes(18).toString('base64url')}+${tag}`,
  AWS_SESSION_TOKEN: `FwoGZXIvYXdzE${randomBytes(48).toString('base64url')}${tag}`,
};

let stack: E2eStack;
const seeded = { fleet: [] as string[], single: [] as string[], tls: [] as string[] };

beforeAll(async () => {
  stack = await startE2e({ workerEnv: SECRETS });
  const ids = await seedInstances(stack.ec2(SRC), { count: 8, tags: {}, namePrefix: 'sec' });
  seeded.fleet = ids.slice(0, 3);
  seeded.single = ids.slice(3, 4);
  seeded.tls = ids.slice(4);
  await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: seeded.fleet, Tags: [{ Key: 'Fleet', Value: 'sec-fleet' }] }));
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

// ---------------------------------------------------------------------------------------------
// Scanning Temporal's records for secrets

/** Every string inside a JSON value, decoded from base64 where it is base64 (payload data, memo, headers). */
function decodedStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (value.length >= 8 && value.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(value)) {
      out.push(Buffer.from(value, 'base64').toString('utf8'));
    }
  } else if (Array.isArray(value)) {
    for (const v of value) decodedStrings(v, out);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) decodedStrings(v, out);
  }
  return out;
}

interface Scan {
  /** The raw JSON, as Temporal's UI or `temporal workflow show --output json` gives it. */
  raw: string;
  /** Every base64 string in it, decoded. */
  decoded: string;
}

function scanOf(json: string): Scan {
  return { raw: json, decoded: decodedStrings(JSON.parse(json)).join('\n') };
}

/** The secrets (by variable name) found in a scan, in either form. */
function secretsIn(scan: Scan): string[] {
  return Object.entries(SECRETS)
    .filter(([, secret]) => scan.raw.includes(secret) || scan.decoded.includes(secret))
    .map(([name]) => name);
}

async function allHistories(): Promise<Array<{ workflowId: string; type: string; scan: Scan; events: number }>> {
  const found = [];
  for await (const w of stack.env.client.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
    const history = await stack.env.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    found.push({ workflowId: w.workflowId, type: w.type, scan: scanOf(historyToJSON(history)), events: history.events?.length ?? 0 });
  }
  return found;
}

test('the scanner finds a secret inside a base64 payload (so finding none below means something)', () => {
  const planted = JSON.stringify({ payloads: [{ data: Buffer.from(`{"key":"${SECRETS.AWS_SESSION_TOKEN}"}`).toString('base64') }] });
  expect(secretsIn(scanOf(planted))).toEqual(['AWS_SESSION_TOKEN']);
  expect(secretsIn(scanOf(JSON.stringify({ note: 'nothing here' })))).toEqual([]);
});

test('no AWS credential enters any workflow history, result or schedule, although the worker and CLI held them', async () => {
  const policy = `sec-${tag.toLowerCase()}`;
  const file = stack.writePolicy('secrets.json', {
    name: policy,
    sourceRegion: SRC,
    targets: { tags: { Fleet: 'sec-fleet' } },
    copies: [{ region: DR, kmsKeyId: 'alias/ami-backup-dr' }],
    retention: { keepLast: 1 },
    wait: FAST_WAIT,
  });
  // One instance fails on an AWS error, so failure details (where an SDK error's request could leak) are in the history too.
  const [failing] = seeded.fleet;
  stack.proxy.inject = (r) =>
    r.action === 'CreateImage' && r.body.includes(`InstanceId=${failing}`)
      ? ec2ErrorResponse('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403)
      : undefined;
  let fleet: CliResult;
  try {
    fleet = await stack.cli(['run', '--policy', file, '--wait', '--json', '--poll-interval', '300'], SECRETS);
  } finally {
    stack.proxy.inject = undefined;
  }
  const fleetReport = lastJson<RunReport>(fleet.stdout);
  expect(fleet.code).toBe(1);
  expect(fleetReport).toMatchObject({ status: 'failed', counts: { total: 3, succeeded: 2, failed: 1 } });

  const single = await stack.cli(
    ['run', '--policy', file, '--instance', seeded.single[0]!, '--wait', '--json', '--poll-interval', '300'],
    SECRETS,
  );
  expect(single.code).toBe(0);
  const singleReport = lastJson<RunReport>(single.stdout);
  expect(singleReport.status).toBe('succeeded');

  const created = await stack.cli(['schedule', 'create', '--policy', file, '--every', '1h', '--paused'], SECRETS);
  expect(created.code).toBe(0);
  const schedule = stack.env.client.schedule.getHandle(scheduleIdFor(policy));
  const scheduleScan = scanOf(JSON.stringify(await schedule.describe()));
  await schedule.delete();

  // The worker really used these credentials: every request that reached moto was signed with the key ID.
  const reachedMoto = stack.proxy.requests.filter((r) => !r.injected);
  expect(reachedMoto.length).toBeGreaterThan(10);
  expect(new Set(reachedMoto.map((r) => r.accessKeyId))).toEqual(new Set([SECRETS.AWS_ACCESS_KEY_ID]));

  const histories = await allHistories();
  // The fleet, its three children, and the instance run.
  expect(histories.map((h) => h.type).sort()).toEqual([
    'backupFleet',
    'backupInstance',
    'backupInstance',
    'backupInstance',
    'backupInstance',
  ]);
  const everything = [...histories.map((h) => ({ what: h.workflowId, scan: h.scan })), { what: 'schedule', scan: scheduleScan }];
  for (const { what, scan } of everything) expect({ what, found: secretsIn(scan) }).toEqual({ what, found: [] });

  // The scan read the payloads: instance IDs, image IDs and the failure's AWS error code are in the decoded text.
  const decoded = histories.map((h) => h.scan.decoded).join('\n');
  for (const id of [...seeded.fleet, ...seeded.single]) expect(decoded).toContain(`"${id}"`);
  for (const i of [...fleetReport.instances, ...singleReport.instances].filter((x) => x.sourceImageId))
    expect(decoded).toContain(i.sourceImageId);
  expect(decoded).toContain('UnauthorizedOperation');
  expect(scheduleScan.decoded).toContain(policy);
  expect(histories.reduce((n, h) => n + h.events, 0)).toBeGreaterThan(50);

  // Nor do the worker's log and the CLI's output show them.
  const printed = { raw: [stack.workerLog(), fleet.stdout, fleet.stderr, single.stdout, single.stderr].join('\n'), decoded: '' };
  expect(secretsIn(printed)).toEqual([]);
}, 240_000);

// ---------------------------------------------------------------------------------------------
// TLS, mTLS and API keys

describe('transport to Temporal', () => {
  let dir: string;
  let pki: Pki;
  let front: TlsFront | undefined;

  beforeAll(() => {
    expect(hasOpenssl()).toBe(true);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-pki-'));
    pki = makePki(dir);
  });

  afterEach(async () => {
    // The worker talks through the front: stop it first (stack.stop() copes with no worker).
    await stack.killWorker();
    await front?.stop();
    front = undefined;
  }, 30_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let nextInstance = 0;
  const policyFile = () =>
    stack.writePolicy('tls.json', {
      name: 'sec-tls',
      sourceRegion: SRC,
      targets: { tags: { Nothing: 'x' } },
      copies: [{ region: DR }],
      wait: FAST_WAIT,
    });

  /** One instance backup through the front, with the CLI configured by `env`; its exit code and report. */
  async function backupThrough(env: NodeJS.ProcessEnv): Promise<{ result: CliResult; instanceId: string }> {
    const instanceId = seeded.tls[nextInstance++ % seeded.tls.length]!;
    const result = await stack.cli(
      ['run', '--policy', policyFile(), '--instance', instanceId, '--wait', '--json', '--poll-interval', '300'],
      env,
    );
    return { result, instanceId };
  }

  const methods = (f: TlsFront) => new Set(f.streams.filter((s) => s.forwarded).map((s) => s.path.split('/').pop()));

  /** A connection failure as a person should read it: exit 1, the address named, no stack trace. */
  function expectConnectFailure(r: CliResult, address: string) {
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringContaining(`cannot reach Temporal at ${address}`) });
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }

  test('TLS: the worker and the CLI connect with the CA from TEMPORAL_TLS_SERVER_CA_CERT_PATH, and a backup runs', async () => {
    front = await startTlsFront({ upstream: stack.env.address, pki });
    const tls = {
      TEMPORAL_ADDRESS: front.address,
      TEMPORAL_TLS: 'true',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
    };
    await stack.killWorker();
    await stack.startWorker(tls);
    const { result, instanceId } = await backupThrough(tls);
    expect(result.code).toBe(0);
    expect(lastJson<RunReport>(result.stdout)).toMatchObject({ status: 'succeeded', instances: [{ instanceId, status: 'succeeded' }] });
    // Both went through the front: the worker polled, the CLI started the workflow.
    expect([...methods(front)]).toEqual(
      expect.arrayContaining(['PollWorkflowTaskQueue', 'PollActivityTaskQueue', 'StartWorkflowExecution']),
    );

    // Plaintext to a TLS port, or TLS without the CA (the system's roots do not know it): a clear failure.
    expectConnectFailure(await stack.cli(['list', '--json'], { TEMPORAL_ADDRESS: front.address }), front.address);
    expectConnectFailure(
      await stack.cli(['list', '--json'], { TEMPORAL_ADDRESS: front.address, TEMPORAL_TLS: 'true', TEMPORAL_TLS_SERVER_NAME: 'localhost' }),
      front.address,
    );
  }, 180_000);

  test('mTLS: with the client certificate the worker and the CLI work; without it, or with one from another CA, a clear failure', async () => {
    front = await startTlsFront({ upstream: stack.env.address, pki, requireClientCert: true });
    const server = { TEMPORAL_ADDRESS: front.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert, TEMPORAL_TLS_SERVER_NAME: 'localhost' };
    const mtls = { ...server, TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey };

    // The worker without a certificate does not start, and says where it could not connect.
    await stack.killWorker();
    const refused = await stack.startWorker(server).then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(refused).toContain(`ami-backup worker: cannot reach Temporal at ${front.address}`);
    // In TLS 1.3 the server refuses a missing client certificate after the client has finished its
    // side of the handshake: the client hears either the alert or a stream closed under it. Both
    // messages point at the client certificate settings.
    expect(refused).toMatch(/CertificateRequired|broken pipe|connection reset/i);
    expect(refused).toMatch(/TEMPORAL_TLS_CLIENT_CERT_PATH (and|\/) TEMPORAL_TLS_CLIENT_KEY_PATH/);
    expect(refused).not.toMatch(/^\s+at /m);

    // A certificate file that is not there: a settings error (exit 2) naming the variables, not a stack trace.
    const unreadable = await stack.startWorker({ ...mtls, TEMPORAL_TLS_CLIENT_CERT_PATH: path.join(dir, 'missing.crt') }).then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(unreadable).toContain('worker exited with 2');
    expect(unreadable).toContain('ami-backup worker: cannot read the Temporal connection settings');
    expect(unreadable).toContain('missing.crt');
    expect(unreadable).not.toMatch(/^\s+at /m);
    // The CLI says the same, with exit 2 (bad input: nothing was tried).
    const cliUnreadable = await stack.cli(['list', '--json'], { ...mtls, TEMPORAL_TLS_CLIENT_CERT_PATH: path.join(dir, 'missing.crt') });
    expect(cliUnreadable.code).toBe(2);
    expect(cliUnreadable.stderr).toContain('ami-backup: cannot read the Temporal connection settings');
    expect(cliUnreadable.stderr).toContain('missing.crt');
    expect(cliUnreadable.stderr).not.toMatch(/^\s+at /m);

    await stack.startWorker(mtls);
    const { result } = await backupThrough(mtls);
    expect(result.code).toBe(0);
    expect(lastJson<RunReport>(result.stdout).status).toBe('succeeded');
    // Every call that got through presented the test CA's client certificate.
    expect(front.streams.length).toBeGreaterThan(0);
    expect(new Set(front.streams.map((s) => s.clientCn))).toEqual(new Set(['ami-backup-worker']));
    expect([...methods(front)]).toEqual(expect.arrayContaining(['PollWorkflowTaskQueue', 'StartWorkflowExecution']));

    const before = front.tlsErrors.length;
    expectConnectFailure(await stack.cli(['list', '--json'], server), front.address);
    expectConnectFailure(
      await stack.cli(['list', '--json'], {
        ...server,
        TEMPORAL_TLS_CLIENT_CERT_PATH: pki.strangerCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: pki.strangerKey,
      }),
      front.address,
    );
    expect(front.tlsErrors.length).toBeGreaterThan(before);
  }, 180_000);

  test('API key: with the right key the worker and the CLI work; a wrong key gives a clear error', async () => {
    const apiKey = `key-${randomBytes(12).toString('hex')}`;
    front = await startTlsFront({ upstream: stack.env.address, pki, apiKey });
    // TEMPORAL_API_KEY turns TLS on by itself; the CA and server name are for the test CA only.
    const keyed = {
      TEMPORAL_ADDRESS: front.address,
      TEMPORAL_API_KEY: apiKey,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
    };

    await stack.killWorker();
    const refused = await stack.startWorker({ ...keyed, TEMPORAL_API_KEY: 'wrong' }).then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(refused).toContain(`ami-backup worker: cannot reach Temporal at ${front.address}`);
    expect(refused).toContain('invalid API key');
    expect(refused).toContain('Temporal refused the credentials: check TEMPORAL_API_KEY');
    expect(refused).not.toContain(apiKey);
    expect(refused).not.toMatch(/^\s+at /m);

    await stack.startWorker(keyed);
    const { result } = await backupThrough(keyed);
    expect(result.code).toBe(0);
    expect(lastJson<RunReport>(result.stdout).status).toBe('succeeded');

    const wrong = await stack.cli(['list', '--json'], { ...keyed, TEMPORAL_API_KEY: 'wrong' });
    expectConnectFailure(wrong, front.address);
    // The CLI says why, as the worker does (connectErrorMessage): the server's own words and what to check.
    expect(wrong.stderr).toContain('invalid API key');
    expect(wrong.stderr).toContain('Temporal refused the credentials: check TEMPORAL_API_KEY');
    expect(wrong.stderr).not.toContain(apiKey);
    expect(wrong.stderr).not.toContain('wrong');
    // Only the wrong key's calls were refused.
    expect(front.streams.filter((s) => !s.forwarded).length).toBeGreaterThan(0);
    expect([...methods(front)]).toEqual(expect.arrayContaining(['PollWorkflowTaskQueue', 'StartWorkflowExecution']));
  }, 180_000);
});
