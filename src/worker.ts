/**
 * The worker process: runs backupInstance workflows and the AWS activities.
 *
 *   npm run worker            (env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AMI_BACKUP_TASK_QUEUE,
 *                              TEMPORAL_TLS_* / TEMPORAL_API_KEY, the AWS SDK's usual settings)
 *
 * It shuts down cleanly on SIGINT / SIGTERM: no new tasks are taken, running activities get
 * the shutdown grace time to finish, and whatever is cut short is retried by Temporal.
 *
 * Production settings (src/temporal/workerSettings.ts): concurrency limits, the shutdown grace,
 * a Prometheus endpoint (AMI_BACKUP_METRICS_PORT) and health endpoints (AMI_BACKUP_HEALTH_PORT).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, createAwsClients, type AwsClients } from './activities';
import { activityLogging } from './temporal/activityLogging';
import { connectErrorMessage, TemporalConfigError, temporalSettings, type TemporalSettings } from './temporal/config';
import { startHealthServer, type HealthServer } from './temporal/health';
import { installWorkerLogging } from './temporal/logging';
import { SettingsError, workerSettings, type WorkerSettings } from './temporal/workerSettings';

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  aws?: AwsClients;
  /** Time running activities get to finish on shutdown before they are cancelled. */
  shutdownGraceTime?: WorkerOptions['shutdownGraceTime'];
  /** Concurrency limits (undefined: the SDK's defaults). */
  limits?: Pick<WorkerSettings, 'maxConcurrentActivityTaskExecutions' | 'maxConcurrentWorkflowTaskExecutions' | 'maxCachedWorkflows'>;
}

/** A prebuilt workflow bundle (made by `npm run build`) when present, else the workflow sources. */
export function workflowSource(env: NodeJS.ProcessEnv = process.env): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const bundle = env.AMI_BACKUP_WORKFLOW_BUNDLE ?? path.join(__dirname, 'workflow-bundle.js');
  if (env.AMI_BACKUP_WORKFLOW_BUNDLE !== '' && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('./workflows') };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...workflowSource(),
    activities: createActivities(options.aws ?? createAwsClients()),
    interceptors: { activity: [activityLogging] },
    shutdownGraceTime: options.shutdownGraceTime ?? '30s',
    ...definedOnly({
      maxConcurrentActivityTaskExecutions: options.limits?.maxConcurrentActivityTaskExecutions,
      maxConcurrentWorkflowTaskExecutions: options.limits?.maxConcurrentWorkflowTaskExecutions,
      maxCachedWorkflows: options.limits?.maxCachedWorkflows,
    }),
  });
}

async function main(): Promise<void> {
  let tuning: WorkerSettings;
  try {
    tuning = workerSettings();
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    console.error(`ami-backup worker: ${err.message}`);
    process.exit(2);
  }
  installWorkerLogging(process.env, tuning.metricsPort);
  let settings: TemporalSettings;
  try {
    settings = temporalSettings();
  } catch (err) {
    if (!(err instanceof TemporalConfigError)) throw err;
    console.error(`ami-backup worker: ${err.message}`);
    process.exit(2);
  }
  let worker: Worker | undefined;
  let health: HealthServer | undefined;
  if (tuning.healthPort !== undefined) {
    health = await startHealthServer(tuning.healthPort, () => worker?.getState() ?? 'STARTING');
    console.log(`ami-backup worker: health on :${health.port}/healthz and /readyz`);
  }
  if (tuning.metricsPort !== undefined) console.log(`ami-backup worker: Prometheus metrics on :${tuning.metricsPort}/metrics`);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(settings.connection);
  } catch (err) {
    console.error(`ami-backup worker: ${connectErrorMessage(err, settings)}`);
    process.exit(1);
  }
  try {
    worker = await createWorker({
      connection,
      namespace: settings.namespace,
      taskQueue: settings.taskQueue,
      shutdownGraceTime: tuning.shutdownGraceMs,
      limits: tuning,
      aws: createAwsClients({ maxAttempts: tuning.awsMaxAttempts }),
    });
    console.log(
      `ami-backup worker: polling task queue "${settings.taskQueue}" in namespace "${settings.namespace}" at ${settings.connection.address}`,
    );
    // The SDK's runtime turns SIGINT/SIGTERM into worker.shutdown(); run() resolves once drained.
    await worker.run();
    console.log('ami-backup worker: stopped cleanly');
  } finally {
    await connection.close();
    await health?.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`ami-backup worker: ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
}
