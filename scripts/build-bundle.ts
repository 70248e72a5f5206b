/**
 * Prebuilds the workflow bundle (as Temporal's `production` sample) so a worker starts without
 * running webpack: dist/src/workflow-bundle.js, picked up by src/worker.ts when present.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  const workflowsPath = require.resolve('../src/workflows');
  const out = path.resolve(__dirname, '../src/workflow-bundle.js');
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    logger: { log() {}, info() {}, warn: console.warn, error: console.error, debug() {}, trace() {} },
  });
  writeFileSync(out, code);
  console.log(`workflow bundle: ${path.relative(process.cwd(), out)} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
