/**
 * Reliability: the Temporal server restarted in the middle of a fleet run. Temporal is the CLI dev
 * server with a database file; it is stopped while the run is creating and waiting for images,
 * stays down a few seconds, and starts again on the same port with the same file. The worker
 * reconnects by itself, the run completes, and moto holds exactly one backup per instance and
 * region. The CLI's `run --wait` is followed through the outage; where it gives up, `status`
 * re-attaches to the run by its workflow ID.
 */
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import { GetParametersCommand } from '@aws-sdk/client-ssm';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StatusReport } from '../../src/cli/inspect';
import type { FleetReport } from '../../src/shared/types';
import { seedInstances } from '../../scripts/seed';
import { backupImagesByInstance, lastJson, runPolicy, startE2e, until, type E2eStack } from '../helpers/e2e';

const SRC = 'us-east-1';
const DR1 = 'eu-west-1';
const DR2 = 'eu-central-1';
const FLEET = 10;

let stack: E2eStack;
let dbDir: string;
let instances: string[];

beforeAll(async () => {
  dbDir = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-temporal-db-'));
  stack = await startE2e({ devServer: { dbFile: path.join(dbDir, 'temporal.db') } });
  instances = await seedInstances(stack.ec2(SRC), { count: FLEET, tags: { Fleet: 'restart' }, namePrefix: 'restart' });
  await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: instances, Tags: [{ Key: 'Fleet', Value: 'restart' }] }));
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  if (dbDir) rmSync(dbDir, { recursive: true, force: true });
}, 60_000);

const sorted = (ids: Iterable<string>) => [...ids].sort();

test('a Temporal server restart mid-run: the worker reconnects, the run completes, one backup per instance and region', async () => {
  const name = 'restart';
  const workflowId = `ami-backup/${name}/fleet`;
  const file = stack.writePolicy(`${name}.json`, {
    name,
    sourceRegion: SRC,
    targets: { tags: { Fleet: name } },
    copies: [{ region: DR1 }, { region: DR2 }],
    // Waits long enough that the restart lands while images are being created and waited for.
    wait: { firstCheck: '5s', maxInterval: '5s', timeout: '5m' },
  });
  const started = Date.now();
  const following = runPolicy(stack, file).catch((err: Error) => err);

  // The restart comes once every instance's CreateImage has reached AWS: the run is mid-wait.
  await until(
    'every CreateImage of the run',
    async () =>
      stack.proxy.requests.filter((x) => x.action === 'CreateImage' && x.body.includes(`${name}-i-`)).length >= FLEET ? true : undefined,
    60_000,
    100,
  );
  const downAt = Date.now();
  await stack.restartTemporal({ downMs: 3_000 });
  const upAfterMs = Date.now() - downAt;

  // `run --wait` either followed the run through the outage or gave up: then re-attach with `status`.
  const followed = await following;
  let report: FleetReport;
  let reattached = false;
  if (!(followed instanceof Error) && followed.code === 0) {
    report = followed.report as unknown as FleetReport;
  } else {
    reattached = true;
    const status = await until(
      'the run to end (ami-backup status)',
      async () => {
        const s = await stack.cli(['status', workflowId, '--json']);
        if (s.code !== 0) return undefined;
        const r = lastJson<StatusReport>(s.stdout);
        return r.status === 'RUNNING' ? undefined : r;
      },
      240_000,
      1_000,
    );
    expect(status.status).toBe('COMPLETED');
    report = status.result as FleetReport;
  }
  const totalMs = Date.now() - started;
  console.log(
    `temporal restart: down and up again in ${upAfterMs} ms; run completed ${totalMs} ms after start; ` +
      `run --wait ${reattached ? `gave up (${followed instanceof Error ? followed.message.split('\n')[0] : `exit ${followed.code}: ${followed.stderr.trim().split('\n').pop()}`}), re-attached with status` : 'followed it through'}`,
  );

  expect(report.counts).toEqual({ total: FLEET, succeeded: FLEET, failed: 0, skipped: 0 });
  expect(sorted(report.instances.map((i) => i.instanceId))).toEqual(sorted(instances));
  const byId = new Map(report.instances.map((i) => [i.instanceId, i]));
  for (const region of [SRC, DR1, DR2]) {
    const images = await backupImagesByInstance(stack, region, name);
    expect(sorted(images.keys())).toEqual(sorted(instances));
    for (const [instanceId, found] of images) {
      const r = byId.get(instanceId)!;
      const expected = region === SRC ? r.sourceImageId : r.copies?.find((c) => c.region === region)?.imageId;
      expect({ instanceId, region, images: found.map((i) => i.imageId) }).toEqual({ instanceId, region, images: [expected] });
    }
    if (region === SRC) continue;
    const names = instances.map((id) => `/ami-backup/${name}/${id}/latest`);
    const got = await Promise.all(
      [0, 1].map((p) => stack.ssm(region).send(new GetParametersCommand({ Names: names.slice(p * 5, p * 5 + 5) }))),
    );
    const values = new Map(got.flatMap((g) => g.Parameters ?? []).map((p) => [p.Name!, p.Value!]));
    for (const id of instances)
      expect(values.get(`/ami-backup/${name}/${id}/latest`)).toBe(byId.get(id)!.copies?.find((c) => c.region === region)?.imageId);
  }
  // The worker lived through it: the same process, never restarted.
  expect(stack.worker.exitCode).toBeNull();
}, 300_000);
