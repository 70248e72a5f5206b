/**
 * The baseline: a plain script making the same AWS calls as backupInstance, in the same order,
 * with the same waits (firstCheck, then doubling up to maxInterval: src/workflows/backoff.ts). It
 * calls the very activity functions the worker runs, so the AWS traffic is identical; only
 * Temporal is missing (no durability, no retries across crashes, no copy-slot coordination).
 */
import type { Activities } from '../src/activities';
import { durationMs } from '../src/policy/duration';
import { TAG_SOURCE_IMAGE, backupTags, ssmParameterName } from '../src/shared/naming';
import type { Policy } from '../src/shared/types';
import { nextInterval, type WaitSettings } from '../src/workflows/backoff';
import { sleepMs } from './lib';

function waitSettings(policy: Policy): WaitSettings {
  return {
    firstCheckMs: durationMs(policy.wait.firstCheck),
    maxIntervalMs: durationMs(policy.wait.maxInterval),
    timeoutMs: durationMs(policy.wait.timeout),
  };
}

async function waitForImage(acts: Activities, ws: WaitSettings, region: string, imageId: string): Promise<number> {
  const deadline = Date.now() + ws.timeoutMs;
  let interval: number | undefined;
  let polls = 0;
  for (;;) {
    interval = nextInterval(interval, ws);
    await sleepMs(Math.max(1, Math.min(interval, deadline - Date.now())));
    const status = await acts.getImageState({ region, imageId });
    polls += 1;
    if (status.state === 'available') return polls;
    if (status.state !== 'pending' || Date.now() >= deadline)
      throw new Error(`direct script: image ${imageId} in ${region} is ${status.state}`);
  }
}

/** One backup of one instance, start to end, as a script would do it. */
export async function directBackup(acts: Activities, policy: Policy, instanceId: string, runId: string): Promise<void> {
  const ws = waitSettings(policy);
  const ssmParameter = ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion });
  const created = await acts.createImage({
    policy: policy.name,
    region: policy.sourceRegion,
    instanceId,
    runId,
    noReboot: policy.noReboot,
  });
  await waitForImage(acts, ws, policy.sourceRegion, created.imageId);
  const sourceTags = backupTags({ policy: policy.name, instanceId, runId, instanceName: created.instanceName });
  await acts.tagSnapshots({ region: policy.sourceRegion, imageId: created.imageId, tags: sourceTags });
  const tags = [...sourceTags, { Key: TAG_SOURCE_IMAGE, Value: created.imageId }];
  const copies = await Promise.all(
    policy.copies.map(async (copy) => {
      const copied = await acts.copyImage({
        policy: policy.name,
        instanceId,
        runId,
        sourceRegion: policy.sourceRegion,
        sourceImageId: created.imageId,
        region: copy.region,
        name: created.name,
        kmsKeyId: copy.kmsKeyId,
        tags,
      });
      await waitForImage(acts, ws, copy.region, copied.imageId);
      await acts.tagSnapshots({ region: copy.region, imageId: copied.imageId, tags });
      await acts.setSsmParam({ region: copy.region, name: ssmParameter, imageId: copied.imageId, runId, instanceId, policy: policy.name });
      return { region: copy.region, imageId: copied.imageId, rule: copy.retention };
    }),
  );
  const nowMs = Date.now();
  const retention = [
    ...(policy.retention ? [{ region: policy.sourceRegion, rule: policy.retention, protect: created.imageId }] : []),
    ...copies.flatMap((c) => (c.rule ? [{ region: c.region, rule: c.rule, protect: c.imageId }] : [])),
  ];
  await Promise.all(
    retention.map(({ region, rule, protect }) =>
      acts.applyRetention({ policy: policy.name, instanceId, region, rule, protect: [protect], ssmParameter, nowMs }),
    ),
  );
}

/** Backs up every instance with at most `concurrency` at a time (1: one after the other). */
export async function directFleet(
  acts: Activities,
  policy: Policy,
  instanceIds: string[],
  runId: string,
  concurrency: number,
): Promise<void> {
  const queue = [...instanceIds];
  const lanes = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) await directBackup(acts, policy, id, runId);
  });
  await Promise.all(lanes);
}
