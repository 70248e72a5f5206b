/**
 * The benchmarks of issue 6, end to end (sections 1 to 6 of docs/BENCHMARKS.md):
 *
 *   npm run bench                  the full run: writes docs/BENCHMARKS.md and docs/bench-*.svg
 *   npm run bench -- --quick       every benchmark at tiny sizes: writes .tmp/bench-quick.md (a smoke run)
 *   npm run bench -- --runs 5      runs per figure (default 3; the figures are medians)
 *
 * Benchmarks report; they do not assert: the exit code is non-zero only when a benchmark broke
 * (an error, a backup that did not succeed), never for a missed target. Every server and worker
 * started is stopped at the end, on failure and on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Cleanup, ROOT, log, machine } from './lib';
import { liveBenchmarks, type LiveOptions } from './live';
import { profileBenchmarks } from './profile';
import { buildReport } from './report';
import { timeSkippingBenchmarks } from './skip';

const MIN = 60_000;

interface Args {
  quick: boolean;
  runs: number;
}

const USAGE = 'usage: npm run bench [-- --quick] [-- --runs N]';

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, runs: 3 };
  let runsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--runs' || a.startsWith('--runs=')) {
      const value = a.includes('=') ? a.slice('--runs='.length) : argv[++i];
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`--runs takes a whole number from 1 to 20, got "${value}"\n${USAGE}`);
      args.runs = n;
      runsGiven = true;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option "${a}"\n${USAGE}`);
  }
  if (args.quick && !runsGiven) args.runs = 1;
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const t0 = Date.now();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping everything the benchmarks started`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const live: LiveOptions = args.quick
    ? { runs: args.runs, fleetSizes: [2, 3], onceAbove: 100, sequentialMax: 3, callsFleetSize: 2 }
    : { runs: args.runs, fleetSizes: [10, 100, 500], onceAbove: 500, sequentialMax: 10, callsFleetSize: 10 };
  const outFile = args.quick ? path.join(ROOT, '.tmp/bench-quick.md') : path.join(ROOT, 'docs/BENCHMARKS.md');
  const chartPrefix = args.quick ? 'bench-quick-' : 'bench-';
  const env = machine();
  log(
    `${args.quick ? 'quick smoke run' : 'full run'}, ${args.runs} run(s) per figure; ${env.cores} cores, load ${env.loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );
  try {
    const skip = await timeSkippingBenchmarks({ creationTimesMs: [5 * MIN, 30 * MIN, 120 * MIN], fleetSize: args.quick ? 3 : 10 }, cleanup);
    const liveResults = await liveBenchmarks(live, cleanup);
    await cleanup.run();
    log(`6. where the time and memory go: a fleet of ${args.quick ? 3 : 100} under each worker setting`);
    const profile = await profileBenchmarks(args.quick ? 3 : 100, cleanup);
    const report = buildReport({
      quick: args.quick,
      runs: args.runs,
      machine: env,
      loadAfter: os.loadavg(),
      startedAt: started,
      wallMs: Date.now() - t0,
      live: liveResults,
      skip,
      profile,
      chartPrefix,
    });
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, report.markdown);
    for (const [name, svg] of Object.entries(report.charts))
      writeFileSync(path.join(path.dirname(outFile), `${chartPrefix}${name}.svg`), svg);
    log(
      `wrote ${path.relative(process.cwd(), outFile)} and ${Object.keys(report.charts).length} chart(s) in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
    for (const h of report.headline) log(`  ${h}`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    log(`a benchmark broke: ${(err as Error).stack ?? err}`);
    return 1;
  } finally {
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${(err as Error).message}`);
    process.exit(2);
  },
);
