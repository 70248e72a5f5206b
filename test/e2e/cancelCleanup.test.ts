/**
 * Reliability fault 8 end to end: `ami-backup cancel --wait --json` on a fleet whose copies are in
 * flight, with the real worker and CLI against moto.
 *
 * Moto makes every image available at once and a copy in a blink, so the recording proxy stands
 * in for slow AWS: it holds each CopyImage into the copy region (the call is in flight when the
 * cancel comes; it reaches moto only afterwards), and answers DescribeImages there with the images
 * still `pending` (copies take minutes in AWS). The test's own clients see moto as it is.
 *
 * What must hold: every copy of the run is deregistered in its region, the source images stay,
 * no SSM parameter is written, and the CLI's report lists, per instance, what was deregistered where.
 */
import http from 'node:http';
import { CreateTagsCommand, DescribeImagesCommand, type Image } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import type { CancelCleanup } from '../../src/cli/inspect';
import { seedInstances } from '../../scripts/seed';
import { lastJson, startE2e, until, type E2eStack } from '../helpers/e2e';
import type { ProxiedRequest, ProxyAction } from '../helpers/recordingProxy';

const SRC = 'us-east-1';
const DR = 'eu-west-1';
const POLICY = 'cancel-cleanup';
const FLEET_TAG = 'e2e-cancel-cleanup';

let stack: E2eStack;
let instances: string[];

beforeAll(async () => {
  stack = await startE2e();
  instances = await seedInstances(stack.ec2(SRC), { count: 2, tags: {}, namePrefix: 'cleanup' });
  await stack.ec2(SRC).send(new CreateTagsCommand({ Resources: instances, Tags: [{ Key: 'Fleet', Value: FLEET_TAG }] }));
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** Moto's answer to a request, sent by the test itself (so it can change the answer). */
function askMoto(req: ProxiedRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      `${stack.moto.endpoint}${req.path}`,
      {
        method: req.method,
        headers: {
          'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
          // Moto reads the region from the credential scope; it does not check the signature.
          authorization: `AWS4-HMAC-SHA256 Credential=${req.accessKeyId}/20261203/${req.region}/ec2/aws4_request, SignedHeaders=host, Signature=0`,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, body: Buffer.concat(parts).toString('utf8') }));
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

async function ownImages(region: string): Promise<Image[]> {
  const got = await stack.ec2(region).send(new DescribeImagesCommand({ Owners: ['self'] }));
  return (got.Images ?? []).filter((i) => i.Name?.startsWith(`${POLICY}-`));
}

test('cancel --wait --json on a fleet with copies in flight: the copies are deregistered in their region, the sources stay, the report says so', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  stack.proxy.intercept = (req): ProxyAction | Promise<ProxyAction> | undefined => {
    if (req.region !== DR) return undefined;
    if (req.action === 'CopyImage') return released.then(() => ({ kind: 'forward', fault: 'held-until-cancel' }) as ProxyAction);
    if (req.action === 'DescribeImages') {
      return askMoto(req).then(({ status, body }) => ({
        kind: 'respond',
        fault: 'copy-still-pending',
        response: { status, body: body.replace(/<imageState>available<\/imageState>/g, '<imageState>pending</imageState>') },
      }));
    }
    return undefined;
  };
  const file = stack.writePolicy('cancel-cleanup.json', {
    name: POLICY,
    sourceRegion: SRC,
    targets: { tags: { Fleet: FLEET_TAG } },
    copies: [{ region: DR }],
    wait: { firstCheck: '1s', maxInterval: '2s', timeout: '5m' },
  });
  const workflowId = `ami-backup/${POLICY}/fleet`;
  const started = Date.now();
  try {
    const run = await stack.cli(['run', '--policy', file, '--json']);
    expect(run.code).toBe(0);

    // Both copies are in flight: their CopyImage calls are held at the proxy.
    await until(
      'both CopyImage calls to be in flight',
      async () => (stack.proxy.requests.filter((r) => r.action === 'CopyImage' && r.region === DR).length >= 2 ? true : undefined),
      60_000,
    );
    const cancel = stack.cli(['cancel', workflowId, '--wait', '--json']);
    // Every instance backup has been asked to cancel; only then do the CopyImage calls reach moto.
    for (const instanceId of instances) {
      const child = stack.env.client.workflow.getHandle(`ami-backup/${POLICY}/${instanceId}`);
      await until(
        `${instanceId}'s backup to be asked to cancel`,
        async () => {
          const events = (await child.fetchHistory()).events ?? [];
          return events.some((e) => e.workflowExecutionCancelRequestedEventAttributes) ? true : undefined;
        },
        30_000,
      );
    }
    release();
    const cancelled = await cancel;
    expect(cancelled.code).toBe(0);
    const report = lastJson<{ workflowId: string; status: string; cancelled: boolean; cleanup: CancelCleanup[] }>(cancelled.stdout);
    expect(report).toMatchObject({ workflowId, status: 'CANCELLED', cancelled: true });

    // moto, as it is: no copy left in the copy region; both source images kept (available).
    expect(await ownImages(DR)).toEqual([]);
    const sources = await ownImages(SRC);
    expect(sources.map((i) => i.Name!.split('-').slice(2, 4).join('-')).sort()).toEqual([...instances].sort());
    expect(sources.every((i) => i.State === 'available')).toBe(true);
    for (const instanceId of instances) {
      await expect(
        stack.ssm(DR).send(new GetParameterCommand({ Name: `/ami-backup/${POLICY}/${instanceId}/latest` })),
      ).rejects.toMatchObject({ name: 'ParameterNotFound' });
    }

    // The report: per instance, the copy deregistered in eu-west-1; nothing else touched.
    expect(report.cleanup.map((c) => c.instanceId).sort()).toEqual([...instances].sort());
    const copyIds = stack.proxy.requests
      .filter((r) => r.action === 'CopyImage' && r.region === DR)
      .map((r) => /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(r.response ?? '')?.[1]);
    for (const c of report.cleanup) {
      expect(c.status).toBe('CANCELLED');
      expect(c.deregistered).toEqual([expect.objectContaining({ region: DR, role: 'copy', outcome: 'deregistered', state: 'pending' })]);
      expect(copyIds).toContain(c.deregistered[0]!.imageId);
      expect(c.kept).toEqual([]);
      expect(c.problems).toBeUndefined();
    }
    // With --json the lines for people go to stderr; stdout holds the JSON alone.
    for (const instanceId of instances) {
      expect(cancelled.stderr).toMatch(
        new RegExp(`${instanceId} \\(CANCELLED\\): deregistered copy ami-[0-9a-f]+ in ${DR} \\(was pending\\)`),
      );
    }
    console.log(`cancel cleanup e2e: ${report.cleanup.length} copies deregistered, run + cancel took ${Date.now() - started} ms`);
  } finally {
    release();
    stack.proxy.intercept = undefined;
  }
}, 150_000);
