/**
 * The progress of a backup as a few lines of text: the Web UI's "current details" and the CLI's
 * status view show the same words. Pure: workflows import it.
 */
import type { BackupProgress, ImageProgress } from '../shared/types';

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
  return lines.join('\n');
}
