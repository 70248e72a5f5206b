/**
 * Worker logs: one line per event, readable by default, JSON for log pipelines
 * (AMI_BACKUP_LOG_FORMAT=json). AMI_BACKUP_LOG_LEVEL sets the level (default INFO).
 * Task tokens and other bulky SDK fields are left out; the workflow, run and activity stay.
 */
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

/** Bulky or internal SDK fields, never logged. */
const DROP = new Set(['taskToken', 'sdkComponent', 'isLocal']);
/** Fields the text format also leaves out: the message already says them, or they rarely vary. */
const TEXT_DROP = new Set(['activityId', 'activityType', 'workflowType', 'namespace', 'taskQueue']);

function fields(meta: Record<string, unknown> | undefined, format: 'text' | 'json'): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(meta ?? {}).filter(([k, v]) => v !== undefined && !DROP.has(k) && !(format === 'text' && TEXT_DROP.has(k))),
  );
}

function textValue(v: unknown): string {
  const s = typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v);
  return /\s/.test(s) ? JSON.stringify(s) : s;
}

export function formatLogLine(entry: LogEntry, format: 'text' | 'json'): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const meta = fields(entry.meta as Record<string, unknown> | undefined, format);
  if (format === 'json') {
    return JSON.stringify({ time, level: entry.level.toLowerCase(), msg: entry.message, ...meta }, (_k, v) =>
      v instanceof Error ? { message: v.message, name: v.name } : typeof v === 'bigint' ? String(v) : v,
    );
  }
  const rest = Object.entries(meta).map(([k, v]) => `${k}=${textValue(v)}`);
  return [time, entry.level.padEnd(5), entry.message, ...rest].join(' ');
}

export function workerLogger(env: NodeJS.ProcessEnv = process.env): DefaultLogger {
  const level = (env.AMI_BACKUP_LOG_LEVEL ?? 'INFO').toUpperCase() as LogLevel;
  const format = env.AMI_BACKUP_LOG_FORMAT === 'json' ? 'json' : 'text';
  return new DefaultLogger(level, (entry) => {
    const line = formatLogLine(entry, format);
    (entry.level === 'ERROR' || entry.level === 'WARN' ? process.stderr : process.stdout).write(`${line}\n`);
  });
}

/**
 * Installs the worker logger in the SDK runtime (once per process, before any worker), and the
 * Prometheus exporter on 0.0.0.0:metricsPort when given (the SDK's worker, workflow, activity and
 * poller metrics, prefixed temporal_).
 */
export function installWorkerLogging(env: NodeJS.ProcessEnv = process.env, metricsPort?: number): void {
  Runtime.install({
    logger: workerLogger(env),
    ...(metricsPort !== undefined ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `0.0.0.0:${metricsPort}` } } } } : {}),
  });
}
