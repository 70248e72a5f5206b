/**
 * Copy slots: a fleet keeps at most `maxConcurrentCopies` copies in flight per destination region.
 *
 * AWS caps the snapshot copies in progress per destination region (ResourceLimitExceeded:
 * "Too many snapshot copies in progress", as low as 5). A chain of Lambdas cannot coordinate
 * that; a fleet workflow can: it is a semaphore per region, and its backupInstance children ask
 * it for a slot (signal), wait to be granted one (signal back), and give it back once their copy
 * is available (signal). A child that ends holding slots has them released by the parent.
 *
 * A copy that still meets ResourceLimitExceeded (copies started by something else) waits and
 * retries in its activity's retry policy: the slot only keeps this tool from causing it.
 *
 * Deterministic code only.
 */
import { condition, defineSignal, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';

export interface SlotRequest {
  /** The child asking (its workflow ID). */
  workflowId: string;
  region: string;
}

export const copySlotRequest = defineSignal<[SlotRequest]>('copySlotRequest');
export const copySlotRelease = defineSignal<[SlotRequest]>('copySlotRelease');
export const copySlotGrant = defineSignal<[{ region: string }]>('copySlotGrant');

/** The fleet's side: one counting semaphore per region, granted first come, first served. */
export class CopySlots {
  private readonly holders = new Map<string, Set<string>>();
  private readonly queues = new Map<string, string[]>();

  constructor(
    private readonly limit: number,
    regions: string[],
  ) {
    for (const r of regions) {
      this.holders.set(r, new Set());
      this.queues.set(r, []);
    }
  }

  /** Installs the signal handlers on the current (fleet) workflow. */
  listen(): void {
    setHandler(copySlotRequest, ({ workflowId, region }) => this.request(workflowId, region));
    setHandler(copySlotRelease, ({ workflowId, region }) => this.release(workflowId, region));
  }

  request(workflowId: string, region: string): void {
    const holders = this.holdersOf(region);
    const queue = this.queues.get(region)!;
    if (holders.has(workflowId)) {
      // A repeated request (the child's signal was retried): grant again, it is idempotent.
      this.grant(workflowId, region);
      return;
    }
    if (!queue.includes(workflowId)) queue.push(workflowId);
    this.pump(region);
  }

  release(workflowId: string, region: string): void {
    this.holdersOf(region).delete(workflowId);
    const queue = this.queues.get(region)!;
    const i = queue.indexOf(workflowId);
    if (i >= 0) queue.splice(i, 1);
    this.pump(region);
  }

  /** A child ended: whatever it held or waited for is free again. */
  releaseAll(workflowId: string): void {
    for (const region of this.holders.keys()) this.release(workflowId, region);
  }

  snapshot(): Record<string, { inFlight: number; waiting: number; limit: number }> {
    return Object.fromEntries(
      [...this.holders].map(([region, h]) => [region, { inFlight: h.size, waiting: this.queues.get(region)!.length, limit: this.limit }]),
    );
  }

  private holdersOf(region: string): Set<string> {
    if (!this.holders.has(region)) {
      this.holders.set(region, new Set());
      this.queues.set(region, []);
    }
    return this.holders.get(region)!;
  }

  private pump(region: string): void {
    const holders = this.holdersOf(region);
    const queue = this.queues.get(region)!;
    while (holders.size < this.limit && queue.length > 0) {
      const next = queue.shift()!;
      holders.add(next);
      this.grant(next, region);
    }
  }

  private grant(workflowId: string, region: string): void {
    // A child that is gone cannot take its slot: give it to the next one.
    getExternalWorkflowHandle(workflowId)
      .signal(copySlotGrant, { region })
      .catch(() => this.release(workflowId, region));
  }
}

/** The child's side. Without a parent fleet (an ad-hoc run of one instance) slots are free. */
export class CopySlotClient {
  private readonly granted = new Set<string>();
  private readonly parentId: string | undefined;

  constructor(enabled: boolean) {
    this.parentId = enabled ? workflowInfo().parent?.workflowId : undefined;
    if (this.parentId) setHandler(copySlotGrant, ({ region }) => void this.granted.add(region));
  }

  get coordinated(): boolean {
    return this.parentId !== undefined;
  }

  async acquire(region: string): Promise<void> {
    if (!this.parentId) return;
    if (this.granted.has(region)) return;
    await getExternalWorkflowHandle(this.parentId).signal(copySlotRequest, { workflowId: workflowInfo().workflowId, region });
    await condition(() => this.granted.has(region));
  }

  async release(region: string): Promise<void> {
    if (!this.parentId || !this.granted.delete(region)) return;
    // The parent releases leftovers when the child ends, so a lost release only delays the next grant.
    await getExternalWorkflowHandle(this.parentId)
      .signal(copySlotRelease, { workflowId: workflowInfo().workflowId, region })
      .catch(() => undefined);
  }
}
