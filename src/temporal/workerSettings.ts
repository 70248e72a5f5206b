/**
 * The worker's production settings, from the environment (all optional):
 *
 *   AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES       activities run at once        (SDK default 100)
 *   AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS   workflow tasks run at once    (SDK default 40)
 *   AMI_BACKUP_MAX_CACHED_WORKFLOWS            workflows kept in memory      (SDK default: by heap size)
 *   AMI_BACKUP_SHUTDOWN_GRACE                  time running activities get after SIGTERM (default 30s)
 *   AMI_BACKUP_METRICS_PORT                    Prometheus /metrics on 0.0.0.0:PORT (off when unset)
 *   AMI_BACKUP_HEALTH_PORT                     /healthz and /readyz on 0.0.0.0:PORT (off when unset)
 *   AMI_BACKUP_AWS_MAX_ATTEMPTS                AWS SDK attempts per call before the activity fails and
 *                                              Temporal's retry policy (visible in the history) takes over
 *                                              (default 3; 1 leaves every retry to Temporal)
 *
 * A bad value stops the worker at start with a message naming the variable.
 */
import { parseDuration } from '../policy/duration';

export interface WorkerSettings {
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  maxCachedWorkflows?: number;
  shutdownGraceMs: number;
  metricsPort?: number;
  healthPort?: number;
  awsMaxAttempts: number;
}

export class SettingsError extends Error {}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new SettingsError(`${name}="${raw}" must be a whole number from ${min} to ${max}`);
  return n;
}

export function workerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const grace = env.AMI_BACKUP_SHUTDOWN_GRACE || '30s';
  const shutdownGraceMs = parseDuration(grace);
  if (shutdownGraceMs === undefined || shutdownGraceMs > 3_600_000) {
    throw new SettingsError(`AMI_BACKUP_SHUTDOWN_GRACE="${grace}" must be a duration such as "30s" or "2m" (at most 1h)`);
  }
  const settings: WorkerSettings = {
    maxConcurrentActivityTaskExecutions: integer(env, 'AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES', 1, 10_000),
    maxConcurrentWorkflowTaskExecutions: integer(env, 'AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS', 2, 10_000),
    maxCachedWorkflows: integer(env, 'AMI_BACKUP_MAX_CACHED_WORKFLOWS', 0, 1_000_000),
    shutdownGraceMs,
    metricsPort: integer(env, 'AMI_BACKUP_METRICS_PORT', 1, 65_535),
    healthPort: integer(env, 'AMI_BACKUP_HEALTH_PORT', 1, 65_535),
    awsMaxAttempts: integer(env, 'AMI_BACKUP_AWS_MAX_ATTEMPTS', 1, 10) ?? 3,
  };
  if (settings.metricsPort !== undefined && settings.metricsPort === settings.healthPort) {
    throw new SettingsError(
      `AMI_BACKUP_METRICS_PORT and AMI_BACKUP_HEALTH_PORT are both ${settings.metricsPort}: give them different ports`,
    );
  }
  return settings;
}
