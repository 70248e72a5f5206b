/**
 * The progress of a backup as a few lines of text: the Web UI's "current details" and the CLI's
 * status view show the same words. Pure: workflows import it.
 */
import type { BackupProgress, FleetProgress, ImageProgress } from '../shared/types';

function image(label: string, p: ImageProgress): string {
  if (!p.imageId) return `- ${label} ${p.region}: not started`;
  const state = p.state ?? 'requested';
  const checks = p.polls ? ` (${p.polls} check${p.polls === 1 ? '' : 's'})` : '';
  const ssm = p.ssmWritten === undefined ? '' : p.ssmWritten ? ', SSM parameter set' : ', SSM parameter holds a later run';
  return `- ${label} ${p.region}: ${p.imageId} ${state}${checks}${ssm}`;
}

export function renderProgress(p: BackupProgress): string {
  const lines = [
    `**${p.instanceId}** · policy ${p.policy} · run ${p.runId}`,
    `Step: **${p.step}**`,
    image('source', p.source),
    ...p.copies.map((c) => image('copy', c)),
  ];
  if (p.error) lines.push(`Error: ${p.error}`);
  for (const d of p.cleanedUp ?? []) {
    lines.push(
      `Cleaned up: ${d.role} ${d.imageId} in ${d.region} ${d.outcome === 'deregistered' ? `deregistered (was ${d.state})` : 'already gone'}`,
    );
  }
  for (const problem of p.cleanupProblems ?? []) lines.push(`Not cleaned up: ${problem}`);
  return lines.join('\n');
}

/** The fleet's current details: counts, what is in flight, copy slots, the latest failures. */
export function renderFleetProgress(p: FleetProgress): string {
  const done = p.succeeded + p.failed + p.skipped;
  const lines = [
    `**Fleet ${p.policy}** · run ${p.runId}${p.generation > 0 ? ` · continued ${p.generation}×` : ''}`,
    `Phase: **${p.phase}** · ${done} of ${p.total} done: ${p.succeeded} succeeded, ${p.failed} failed, ${p.skipped} skipped`,
  ];
  if (p.inFlight.length > 0) {
    const shown = p.inFlight.slice(0, 10).join(', ');
    lines.push(`In flight (${p.inFlight.length}): ${shown}${p.inFlight.length > 10 ? ', …' : ''}`);
  }
  for (const [region, s] of Object.entries(p.copySlots)) {
    if (s.inFlight > 0 || s.waiting > 0) lines.push(`Copies to ${region}: ${s.inFlight} of ${s.limit} in flight, ${s.waiting} waiting`);
  }
  for (const f of p.recentFailures.slice(-5)) lines.push(`Failed ${f.instanceId}: ${f.error}`);
  return lines.join('\n');
}
