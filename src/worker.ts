/**
 * The worker process: runs backupInstance workflows and the AWS activities.
 *
 *   npm run worker            (env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AMI_BACKUP_TASK_QUEUE,
 *                              TEMPORAL_TLS_* / TEMPORAL_API_KEY, the AWS SDK's usual settings)
 *
 * It shuts down cleanly on SIGINT / SIGTERM: no new tasks are taken, running activities get
 * the shutdown grace time to finish, and whatever is cut short is retried by Temporal.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, createAwsClients, type AwsClients } from './activities';
import { activityLogging } from './temporal/activityLogging';
import { temporalSettings } from './temporal/config';
import { installWorkerLogging } from './temporal/logging';

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  aws?: AwsClients;
  /** Time running activities get to finish on shutdown before they are cancelled. */
  shutdownGraceTime?: WorkerOptions['shutdownGraceTime'];
}

/** A prebuilt workflow bundle (made by `npm run build`) when present, else the workflow sources. */
export function workflowSource(env: NodeJS.ProcessEnv = process.env): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const bundle = env.AMI_BACKUP_WORKFLOW_BUNDLE ?? path.join(__dirname, 'workflow-bundle.js');
  if (env.AMI_BACKUP_WORKFLOW_BUNDLE !== '' && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('./workflows') };
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
  });
}

async function main(): Promise<void> {
  installWorkerLogging();
  const settings = temporalSettings();
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(settings.connection);
  } catch (err) {
    console.error(
      `ami-backup worker: cannot reach Temporal at ${settings.connection.address} (namespace ${settings.namespace}): ${(err as Error).message}\n` +
        'Start a Temporal server (make dev-server) or set TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_API_KEY.',
    );
    process.exit(1);
  }
  try {
    const worker = await createWorker({ connection, namespace: settings.namespace, taskQueue: settings.taskQueue });
    console.log(
      `ami-backup worker: polling task queue "${settings.taskQueue}" in namespace "${settings.namespace}" at ${settings.connection.address}`,
    );
    // The SDK's runtime turns SIGINT/SIGTERM into worker.shutdown(); run() resolves once drained.
    await worker.run();
    console.log('ami-backup worker: stopped cleanly');
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`ami-backup worker: ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
}
