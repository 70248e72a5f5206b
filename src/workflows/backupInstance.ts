/**
 * backupInstance: one EC2 instance, one run.
 *
 *   createImage → wait (durable timers) → tag snapshots
 *     → for each copy region, in parallel: [copy slot from the fleet] → copyImage (encrypted)
 *       → wait → tag snapshots → setSsmParam
 *     → retention in the source region and every copy region that has a rule
 *
 * Deterministic code only: no I/O, no Node imports; time comes from Temporal's workflow clock.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  TemporalFailure,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
} from '@temporalio/workflow';
import type { Activities, CleanupActivities } from '../activities';
import { durationMs, formatDuration } from '../policy/duration';
import type { CopyTarget } from '../policy/schema';
import { TAG_SOURCE_IMAGE, backupTags, ssmParameterName, type Tag } from '../shared/naming';
import {
  FAILED_IMAGE_STATES,
  type BackupInstanceInput,
  type BackupInstanceResult,
  type BackupProgress,
  type CancelCleanupMemo,
  type CopyResult,
  type DeletedImage,
  type DiscardImageOutput,
  type ImageProgress,
  type RetentionRule,
  type StepName,
} from '../shared/types';
import { nextInterval, type WaitSettings } from './backoff';
import { CopySlotClient } from './copySlots';
import { renderProgress } from './render';

export const progressQuery = defineQuery<BackupProgress>('progress');

/** How long EC2 may not know an image it just gave us the ID of before that counts as lost. */
export const NOT_FOUND_GRACE_MS = 5 * 60_000;

/**
 * AWS mutations: transient errors retried with backoff; the classifier stops the rest at once.
 * Each is a call or two to AWS (seconds, SDK retries included): a worker that dies mid-call is
 * noticed after the start-to-close timeout, so it is kept short.
 *
 * The backoff starts at 1 s (Temporal's default; the SDK has already retried each call with its
 * own backoff) and is capped at 1 minute; 20 attempts span about 15 minutes. A step makes up to
 * four AWS calls, each of which may meet a transient fault, so a step often needs several
 * attempts in a bad spell: a 5 s start made those attempts cost minutes per step (the 30 % fault
 * test took 4 minutes for 5 instances), while a bad quarter of an hour still must not end a backup.
 */
const TRANSIENT_RETRY = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' } as const;
const aws = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { ...TRANSIENT_RETRY, maximumAttempts: 20 },
});

/** Retention: a few minutes of deletes at most; transient errors retried, the rest become a warning. */
const retire = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '30s', // it heartbeats per image: a dead worker is noticed in 30 s, not 5 min
  retry: { ...TRANSIENT_RETRY, maximumAttempts: 10 }, // about 5 minutes
});

/** One look at an image: short, a few quick retries; the next poll is the real retry. */
const poll = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

/**
 * Copies may meet the destination's limit of copies in flight (ResourceLimitExceeded): they keep
 * trying, with the delay the failure asks for, until the policy's wait.timeout.
 */
const copier = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  // Unlimited attempts, bounded by time. Transient faults back off to 1 minute at most (the copy
  // limit sets its own delay), so a short wait.timeout still leaves room for several attempts.
  retry: TRANSIENT_RETRY,
});

/**
 * The copy of a cancelled run is waited for: its CopyImage call ends (with the copy's ID, tagged)
 * before the run cleans up, so the copy it made cannot escape the cleanup.
 */
const copierToTheEnd = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: TRANSIENT_RETRY,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/**
 * Throwing away a failed image, or the unfinished images of a cancelled run: a few quick retries,
 * then it is reported for a person to finish. A worker without the activity (an older build during
 * a deploy) answers NotFoundError: reported at once rather than retried.
 */
const cleaner = proxyActivities<CleanupActivities>({
  startToCloseTimeout: '1m',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 5,
    nonRetryableErrorTypes: ['NotFoundError'],
  },
});

/** patched() IDs: new commands on paths that runs recorded before them take too (see test/workflow/replay.test.ts). */
export const PATCH_DISCARD_FAILED_IMAGE = 'discard-failed-image';
export const PATCH_CLEANUP_ON_CANCEL = 'cleanup-unfinished-images-on-cancel';

function messageOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // An ActivityFailure wraps the activity's own error: the cause is what a person wants to read.
  while (e?.cause && (e as { name?: string }).name === 'ActivityFailure') e = e.cause as typeof e;
  return e?.message ?? String(err);
}

function failureType(err: unknown): string | undefined {
  let e = err as { type?: string; cause?: unknown } | undefined;
  while (e && e.type === undefined && e.cause) e = e.cause as typeof e;
  return e?.type ?? undefined;
}

export async function backupInstance(input: BackupInstanceInput): Promise<BackupInstanceResult> {
  const { policy, instanceId, runId } = input;
  const slots = new CopySlotClient(Boolean(input.copySlotsFromParent));
  const { roleArn } = policy;
  const waitSettings: WaitSettings = {
    firstCheckMs: durationMs(policy.wait.firstCheck),
    maxIntervalMs: durationMs(policy.wait.maxInterval),
    timeoutMs: durationMs(policy.wait.timeout),
  };
  const ssmParameter = ssmParameterName(policy.ssmParameter, {
    policy: policy.name,
    instanceId,
    sourceRegion: policy.sourceRegion,
  });

  const progress: BackupProgress = {
    policy: policy.name,
    instanceId,
    runId,
    step: 'starting',
    startedAt: new Date().toISOString(),
    source: { region: policy.sourceRegion, polls: 0 },
    copies: policy.copies.map((c) => ({ region: c.region, polls: 0 })),
    steps: [],
  };
  setHandler(progressQuery, () => progress);
  const show = () => setCurrentDetails(renderProgress(progress));
  show();

  /** Images this run asked EC2 for (CreateImage / CopyImage started) and those it saw available. */
  const requested = new Set<ImageProgress>();
  const finished = new Set<ImageProgress>();
  const roleOf = (target: ImageProgress): 'source' | 'copy' => (target === progress.source ? 'source' : 'copy');

  /** Runs one step, recording it for the progress query and the Web UI. */
  async function step<T>(name: StepName, region: string, run: () => Promise<T>, done: (r: T) => string): Promise<T> {
    const record = { step: name, region, startedAt: new Date().toISOString() } as BackupProgress['steps'][number];
    progress.step = name;
    progress.steps.push(record);
    show();
    try {
      const result = await run();
      record.detail = done(result);
      return result;
    } catch (err) {
      record.detail = `failed: ${messageOf(err)}`;
      throw err;
    } finally {
      record.endedAt = new Date().toISOString();
      show();
    }
  }

  /**
   * Deregisters an image of this run (with its tagged snapshots); without an image ID, whatever
   * this run made in the region. Only images carrying this run's tags are touched.
   */
  async function discard(target: ImageProgress, keepAvailable: boolean): Promise<DiscardImageOutput> {
    const what = target.imageId ?? `the ${roleOf(target)} image of run ${runId}`;
    const result = await step(
      'discardImage',
      target.region,
      () =>
        cleaner.discardImage.executeWithOptions(
          { summary: `deregister ${what} in ${target.region}${keepAvailable ? ' unless available' : ''}` },
          [
            {
              policy: policy.name,
              instanceId,
              runId,
              region: target.region,
              ...(target.imageId ? { imageId: target.imageId } : {}),
              role: roleOf(target),
              keepAvailable,
              roleArn,
            },
          ],
        ),
      (r) =>
        [
          ...r.discarded.map((d) => `${d.imageId} ${d.outcome === 'deregistered' ? 'deregistered' : 'already gone'}`),
          ...r.left.map((l) => l.reason),
        ].join('; ') || 'no image of this run found',
    );
    if (result.discarded.length > 0) progress.cleanedUp = [...(progress.cleanedUp ?? []), ...result.discarded];
    return result;
  }

  /** A failed image is no backup: deregister it, and say so in the failure. */
  async function discardFailed(target: ImageProgress): Promise<string> {
    const imageId = target.imageId!;
    try {
      const r = await discard(target, false);
      const d = r.discarded.find((x) => x.imageId === imageId);
      if (d?.outcome === 'deregistered') {
        const n = d.snapshotIds.length;
        return `Failed image ${imageId} deregistered in ${target.region}${n > 0 ? ` with ${n} snapshot${n === 1 ? '' : 's'}` : ''}.`;
      }
      if (d) return `Failed image ${imageId} was already deregistered in ${target.region}.`;
      return `Failed image ${imageId} left in ${target.region}: ${r.left.map((l) => l.reason).join('; ') || 'not found'}.`;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const problem = `Failed image ${imageId} could not be deregistered in ${target.region} (${messageOf(err)}): deregister it by hand.`;
      progress.cleanupProblems = [...(progress.cleanupProblems ?? []), problem];
      return problem;
    }
  }

  /**
   * A cancelled run throws away every image it asked for and did not see finished (a copy in
   * flight, a source image still pending), in its region; an image EC2 already lists as available
   * stays. Runs in a non-cancellable scope; what it did goes into the memo (a cancelled run has no
   * result) and the progress query.
   */
  async function cleanUpCancelled(): Promise<void> {
    const unfinished = [progress.source, ...progress.copies].filter((t) => requested.has(t) && !finished.has(t));
    const memo: CancelCleanupMemo = { cleanedUp: [], kept: [] };
    const problems: string[] = [];
    await Promise.all(
      unfinished.map(async (target) => {
        try {
          const r = await discard(target, true);
          memo.cleanedUp.push(...r.discarded);
          for (const l of r.left) {
            if (l.state === 'available') memo.kept!.push({ region: target.region, imageId: l.imageId });
            else problems.push(l.reason);
          }
        } catch (err) {
          problems.push(
            `the ${roleOf(target)} image ${target.imageId ?? `of run ${runId}`} in ${target.region} could not be deregistered (${messageOf(err)}): deregister it by hand (tag ami-backup:run=${runId}).`,
          );
        }
      }),
    );
    if (problems.length > 0) {
      memo.cleanupProblems = problems;
      progress.cleanupProblems = [...(progress.cleanupProblems ?? []), ...problems];
    }
    progress.step = 'cancelled';
    show();
    upsertMemo({ ...memo });
  }

  /** Durable polling: sleep, look, back off; never a loop inside an activity. */
  async function waitForImage(target: ImageProgress): Promise<void> {
    const imageId = target.imageId!;
    const started = Date.now();
    const deadline = started + waitSettings.timeoutMs;
    let interval: number | undefined;
    for (;;) {
      interval = nextInterval(interval, waitSettings);
      const pause = Math.max(1, Math.min(interval, deadline - Date.now()));
      await sleep(pause, { summary: `wait ${formatDuration(pause)} before check ${target.polls + 1} of ${imageId} in ${target.region}` });
      const status = await poll.getImageState.executeWithOptions({ summary: `check ${imageId} in ${target.region}` }, [
        { region: target.region, imageId, roleArn },
      ]);
      target.polls += 1;
      target.state = status.notFound ? 'pending (not listed yet)' : status.state;
      show();
      if (status.state === 'available') {
        finished.add(target);
        return;
      }
      if (FAILED_IMAGE_STATES.has(status.state)) {
        const failed = `Image ${imageId} of ${instanceId} in ${target.region} is ${status.state}: ${status.reason ?? 'EC2 gave no reason'}.`;
        const cleaned = patched(PATCH_DISCARD_FAILED_IMAGE) ? await discardFailed(target) : undefined;
        throw ApplicationFailure.nonRetryable(cleaned ? `${failed} ${cleaned}` : failed, 'ImageFailed');
      }
      const elapsed = Date.now() - started;
      if (status.notFound && elapsed > Math.min(NOT_FOUND_GRACE_MS, waitSettings.timeoutMs)) {
        throw ApplicationFailure.nonRetryable(
          `Image ${imageId} of ${instanceId} is still unknown to EC2 in ${target.region} ${formatDuration(elapsed)} after it was created: it was deregistered or never made. Run the backup again.`,
          'InvalidAMIID.NotFound',
        );
      }
      if (Date.now() >= deadline) {
        throw ApplicationFailure.nonRetryable(
          `Image ${imageId} of ${instanceId} in ${target.region} is still ${status.state} after ${policy.wait.timeout} (wait.timeout, ${target.polls} checks). Raise wait.timeout in the policy if images this large are normal, or look at the image in the EC2 console.`,
          'ImageWaitTimeout',
        );
      }
    }
  }

  async function tagSnapshotsOf(target: ImageProgress, tags: Tag[]): Promise<void> {
    await step(
      'tagSnapshots',
      target.region,
      () =>
        aws.tagSnapshots.executeWithOptions({ summary: `tag snapshots of ${target.imageId} in ${target.region}` }, [
          { region: target.region, imageId: target.imageId!, tags, roleArn },
        ]),
      (r) => `${r.snapshotIds.length} snapshot(s) tagged`,
    );
  }

  /** Copy slot (in a fleet) → CopyImage → wait until available; the slot is held exactly that long. */
  async function copyTo(copy: CopyTarget, target: ImageProgress, sourceImageId: string, name: string, tags: Tag[]): Promise<CopyResult> {
    if (slots.coordinated) {
      target.state = 'waiting for a copy slot';
      await step(
        'waitForCopySlot',
        copy.region,
        () => slots.acquire(copy.region),
        () => `slot granted (at most ${policy.maxConcurrentCopies} copies in flight in ${copy.region})`,
      );
    }
    try {
      return await copyAndWait(copy, target, sourceImageId, name, tags);
    } finally {
      await slots.release(copy.region);
    }
  }

  async function copyAndWait(
    copy: CopyTarget,
    target: ImageProgress,
    sourceImageId: string,
    name: string,
    tags: Tag[],
  ): Promise<CopyResult> {
    const deprecateAt = copy.deprecateAfter ? new Date(Date.now() + durationMs(copy.deprecateAfter)).toISOString() : undefined;
    const copyActivities = patched(PATCH_CLEANUP_ON_CANCEL) ? copierToTheEnd : copier;
    const copied = await step(
      'copyImage',
      copy.region,
      () => {
        requested.add(target);
        return copyActivities.copyImage.executeWithOptions(
          {
            summary: `encrypted copy of ${sourceImageId} to ${copy.region}${copy.kmsKeyId ? ` with ${copy.kmsKeyId}` : ''}`,
            scheduleToCloseTimeout: waitSettings.timeoutMs,
          },
          [
            {
              policy: policy.name,
              instanceId,
              runId,
              sourceRegion: policy.sourceRegion,
              sourceImageId,
              region: copy.region,
              name,
              kmsKeyId: copy.kmsKeyId,
              tags,
              deprecateAt,
              roleArn,
            },
          ],
        );
      },
      (r) => `${r.imageId}${r.reused ? ' (found from an earlier attempt)' : ''}`,
    );
    target.imageId = copied.imageId;
    await step(
      'waitForCopy',
      copy.region,
      () => waitForImage(target),
      () => `available after ${target.polls} check(s)`,
    );
    return { region: copy.region, imageId: copied.imageId };
  }

  async function publish(copy: CopyTarget, target: ImageProgress, copied: CopyResult, tags: Tag[]): Promise<CopyResult> {
    await tagSnapshotsOf(target, tags);
    const ssm = await step(
      'setSsmParam',
      copy.region,
      () =>
        aws.setSsmParam.executeWithOptions({ summary: `${ssmParameter} = ${copied.imageId} in ${copy.region}` }, [
          { region: copy.region, name: ssmParameter, imageId: copied.imageId, runId, instanceId, policy: policy.name, roleArn },
        ]),
      (r) => `${r.name} ${r.outcome}${r.outcome === 'kept-newer' ? ` (holds ${r.value} from a later run)` : ''}`,
    );
    target.ssmWritten = ssm.outcome !== 'kept-newer';
    return copied;
  }

  /**
   * Retires old backups in every region with a rule, once this backup has fully succeeded. A
   * failure here does not undo the backup: it becomes a warning in the result.
   */
  async function applyRetention(sourceImageId: string, copies: CopyResult[]): Promise<{ deleted: DeletedImage[]; warnings: string[] }> {
    const regions: Array<{ region: string; rule: RetentionRule; protect: string }> = [];
    if (policy.retention) regions.push({ region: policy.sourceRegion, rule: policy.retention, protect: sourceImageId });
    policy.copies.forEach((c, i) => {
      if (c.retention) regions.push({ region: c.region, rule: c.retention, protect: copies[i]!.imageId });
    });
    const nowMs = Date.now();
    const settled = await Promise.allSettled(
      regions.map(({ region, rule, protect }) =>
        step(
          'applyRetention',
          region,
          () =>
            retire.applyRetention.executeWithOptions({ summary: `retention in ${region}: ${describeRule(rule)}` }, [
              { policy: policy.name, instanceId, region, rule, protect: [protect], ssmParameter, nowMs, roleArn },
            ]),
          (r) => `${r.deleted.length} image(s) deleted, ${r.kept} kept`,
        ),
      ),
    );
    const unexpected = settled.find((s) => s.status === 'rejected' && (isCancellation(s.reason) || !(s.reason instanceof TemporalFailure)));
    if (unexpected) throw (unexpected as PromiseRejectedResult).reason;
    const deleted = settled.flatMap((s) => (s.status === 'fulfilled' ? s.value.deleted : []));
    const warnings = settled.flatMap((s, i) =>
      s.status === 'rejected'
        ? [`retention in ${regions[i]!.region} did not run to the end (the backup itself succeeded): ${messageOf(s.reason)}`]
        : [],
    );
    return { deleted, warnings };
  }

  try {
    const created = await step(
      'createImage',
      policy.sourceRegion,
      () => {
        requested.add(progress.source);
        return aws.createImage.executeWithOptions({ summary: `CreateImage of ${instanceId} in ${policy.sourceRegion}` }, [
          { policy: policy.name, region: policy.sourceRegion, instanceId, runId, noReboot: policy.noReboot, roleArn },
        ]);
      },
      (r) => `${r.imageId} ${r.name}${r.reused ? ' (found from an earlier attempt)' : ''}`,
    );
    progress.source.imageId = created.imageId;
    const sourceTags = backupTags({ policy: policy.name, instanceId, runId, instanceName: created.instanceName });

    await step(
      'waitForImage',
      policy.sourceRegion,
      () => waitForImage(progress.source),
      () => `available after ${progress.source.polls} check(s)`,
    );
    await tagSnapshotsOf(progress.source, sourceTags);

    const settled = await Promise.allSettled(
      policy.copies.map(async (copy, i) => {
        const tags = [...sourceTags, { Key: TAG_SOURCE_IMAGE, Value: created.imageId }];
        const copied = await copyTo(copy, progress.copies[i]!, created.imageId, created.name, tags);
        return publish(copy, progress.copies[i]!, copied, tags);
      }),
    );
    // A cancellation, or a bug in this code (not a Temporal failure), is not a failed copy: rethrow
    // it, so a bug fails the workflow task and is retried once fixed instead of failing the run.
    const unexpected = settled.find((s) => s.status === 'rejected' && (isCancellation(s.reason) || !(s.reason instanceof TemporalFailure)));
    if (unexpected) throw (unexpected as PromiseRejectedResult).reason;
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${policy.copies[i]!.region}: ${messageOf(s.reason)}`] : []));
    if (failed.length > 0) {
      const type = failureType((settled.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason) ?? 'CopyFailed';
      throw ApplicationFailure.nonRetryable(
        `The source image ${created.imageId} of ${instanceId} is kept, but ${failed.length} of ${policy.copies.length} cop${policy.copies.length === 1 ? 'y' : 'ies'} failed: ${failed.join('; ')}`,
        type,
      );
    }

    const copies = settled.map((s) => (s as PromiseFulfilledResult<CopyResult>).value);
    const { deleted, warnings } = await applyRetention(created.imageId, copies);
    progress.deleted = deleted.length;
    if (warnings.length > 0) progress.warnings = warnings;
    progress.step = 'done';
    show();
    return {
      instanceId,
      status: 'succeeded',
      sourceImageId: created.imageId,
      copies,
      ssmParameter,
      deleted,
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  } catch (err) {
    if (isCancellation(err)) {
      if (patched(PATCH_CLEANUP_ON_CANCEL)) await CancellationScope.nonCancellable(cleanUpCancelled);
      throw err;
    }
    if (!(err instanceof TemporalFailure)) throw err;
    progress.step = 'failed';
    progress.error = messageOf(err);
    show();
    if (err instanceof ApplicationFailure) throw err;
    throw ApplicationFailure.nonRetryable(`Backup of ${instanceId} failed: ${progress.error}`, failureType(err) ?? 'BackupFailed');
  }
}

function describeRule(rule: RetentionRule): string {
  const parts = [rule.keepLast !== undefined && `keep last ${rule.keepLast}`, rule.maxAge && `max age ${rule.maxAge}`];
  return parts.filter(Boolean).join(', ');
}
