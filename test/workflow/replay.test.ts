/**
 * Replay: the workflow code of today must replay the histories of runs recorded with earlier
 * versions, or a deploy would break backups that are in flight (a non-determinism error).
 *
 * The fixtures are real histories from `make demo` runs, exported with
 *   temporal workflow show -w <workflow id> -o json > test/fixtures/histories/<name>.json
 * Add one whenever the workflow changes shape; never edit or delete one that users may still run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';

const DIR = path.resolve(__dirname, '../fixtures/histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

beforeAll(() => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Installed already by another suite in this worker process.
  }
});

test('there are recorded histories to replay', () => {
  expect(files).toEqual(
    expect.arrayContaining([
      'backupInstance-succeeded.json',
      'backupInstance-failed.json',
      'backupFleet-succeeded.json',
      'backupInstance-fleet-child-retention.json',
    ]),
  );
});

test.each(files)('the current workflow code replays %s without non-determinism', async (file) => {
  const json = JSON.parse(readFileSync(path.join(DIR, file), 'utf8'));
  expect(json.events.length).toBeGreaterThan(10);
  const history = historyFromJSON(json);
  await expect(
    Worker.runReplayHistory({ workflowsPath: require.resolve('../../src/workflows') }, history, `replay-${file}`),
  ).resolves.toBeUndefined();
});
