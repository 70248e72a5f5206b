/**
 * make demo: the whole product on this machine with no AWS account. Starts the Temporal dev
 * server (with its Web UI), moto with a few tagged instances, and the worker; backs one instance
 * up through the real CLI; then prints where to look, and keeps running until Ctrl-C.
 *
 *   node dist/scripts/demo.js [--exit]     (--exit: stop everything after the backup)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { NativeConnection } from '@temporalio/worker';
import { installWorkerLogging } from '../src/temporal/logging';
import { createWorker } from '../src/worker';
import { seedInstances } from './seed';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../src/temporal/searchAttributes';
import { startDevServer, startMoto } from './stack';

const ROOT = path.resolve(__dirname, '../..');

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function main(): Promise<void> {
  const exitAfter = process.argv.includes('--exit');
  // The usual ports when they are free, so the links match Temporal's docs.
  const [port, uiPort] = (await portFree(7233)) && (await portFree(8233)) ? [7233, 8233] : [undefined, undefined];

  console.log('Starting the Temporal dev server and moto (the AWS emulator)...');
  const [temporal, moto] = await Promise.all([
    startDevServer({ port, uiPort, searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES }),
    startMoto(),
  ]);
  const stops: Array<() => Promise<void>> = [moto.stop, temporal.stop];

  Object.assign(process.env, {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: 'demo',
    AWS_SECRET_ACCESS_KEY: 'demo',
    AWS_REGION: 'us-east-1',
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_UI_URL: temporal.uiUrl,
    AMI_BACKUP_TASK_QUEUE: 'ami-backup',
  });
  delete process.env.AWS_PROFILE;

  const ec2 = new EC2Client({ region: 'us-east-1' });
  const instances = await seedInstances(ec2, { count: 5, tags: { Backup: 'true', Team: 'demo' }, namePrefix: 'web' });
  await seedInstances(ec2, { count: 2, tags: { Team: 'demo' }, namePrefix: 'scratch' });
  ec2.destroy();
  console.log(`moto at ${moto.endpoint}: ${instances.length} instances tagged Backup=true in us-east-1 (and 2 untagged ones, left alone)`);

  const dir = path.join(ROOT, '.cache/demo');
  mkdirSync(dir, { recursive: true });
  const policyFile = path.join(dir, 'policy.yaml');
  writeFileSync(
    policyFile,
    [
      'name: demo',
      'sourceRegion: us-east-1',
      'targets: { tags: { Backup: "true" } }',
      'copies:',
      '  - region: eu-west-1',
      '    kmsKeyId: alias/ami-backup-dr',
      '    retention: { keepLast: 3 }',
      'retention: { keepLast: 3 }',
      'maxConcurrent: 3',
      '# moto makes images available at once; real AMIs want the defaults (60s, 3m, 4h)',
      'wait: { firstCheck: 2s, maxInterval: 5s, timeout: 10m }',
      '',
    ].join('\n'),
  );

  // The fleet's progress bar is the show; the worker's per-activity lines (AMI_BACKUP_LOG_LEVEL=INFO) would bury it.
  process.env.AMI_BACKUP_LOG_LEVEL ??= 'WARN';
  installWorkerLogging();
  const connection = await NativeConnection.connect({ address: temporal.address });
  const worker = await createWorker({ connection, namespace: 'default', taskQueue: 'ami-backup', shutdownGraceTime: '5s' });
  const running = worker.run();
  stops.unshift(async () => {
    worker.shutdown();
    await running;
    await connection.close();
  });

  const stopAll = async () => {
    for (const stop of stops) await stop().catch(() => undefined);
  };

  const policyPath = path.relative(ROOT, policyFile);
  console.log(`\nBacking up the fleet (every instance tagged Backup=true) with the CLI:\n  ami-backup run --policy ${policyPath} --wait\n`);
  const code = await new Promise<number>((resolve) => {
    const cli = spawn(
      process.execPath,
      [path.join(ROOT, 'dist/src/client.js'), 'run', '--policy', policyFile, '--wait', '--poll-interval', '500'],
      {
        stdio: 'inherit',
        env: process.env,
      },
    );
    cli.on('exit', (c) => resolve(c ?? 1));
  });

  const link = `${temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent('ami-backup/demo/fleet')}`;
  console.log(`
${code === 0 ? 'The fleet backup completed.' : `The fleet backup failed (exit ${code}).`}
  Temporal Web UI:  ${temporal.uiUrl}
  This run:         ${link}
  (open it: the fleet's children are the per-instance backups; in each, "Event History" shows every AWS step and wait)

Try it yourself, in another shell:
  export TEMPORAL_ADDRESS=${temporal.address} TEMPORAL_UI_URL=${temporal.uiUrl} AWS_ENDPOINT_URL=${moto.endpoint} AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
  alias ami-backup="node ${path.relative(process.cwd(), path.join(ROOT, 'dist/src/client.js'))}"
  ami-backup list
  ami-backup status ami-backup/demo/fleet
  ami-backup latest --policy ${policyPath} --instance ${instances[0]}
  ami-backup plan --policy ${policyPath}
  ami-backup run --policy ${policyPath} --instance ${instances[1]} --wait
  ami-backup schedule create --policy ${policyPath} --every 5m
`);

  if (exitAfter) {
    await stopAll();
    process.exit(code);
  }
  console.log('The stack keeps running; press Ctrl-C to stop it.');
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.log('\nStopping the worker, moto and the Temporal dev server...');
      void stopAll().then(() => process.exit(code));
    });
  }
}

main().catch((err) => {
  console.error(`demo: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
