#!/usr/bin/env node
/**
 * ami-backup: the operator's CLI. Each command lives in src/cli/; this file wires them up.
 *
 * Exit codes: 0 success, 1 a backup failed or Temporal/AWS could not be reached, 2 bad input
 * (nothing was started or changed).
 */
import { Command, CommanderError, Option } from 'commander';
import { version } from '../package.json';
import { EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ConnectError, UsageError } from './cli/common';
import { registerLatestCommand } from './cli/latest';
import { registerPlanCommand } from './cli/plan';
import { registerCheckCommand } from './cli/check';
import { registerInspectCommands } from './cli/inspect';
import { runCommand } from './cli/run';
import { registerScheduleCommands } from './cli/schedule';
import { PolicyError, formatProblems } from './policy';
import { TemporalConfigError } from './temporal/config';

export { EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, type RunReport } from './cli/common';

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('ami-backup')
    .description('Durable EC2 AMI backups into disaster-recovery regions, on Temporal.')
    .version(version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run')
    .description(
      'Back up now: the whole fleet the policy targets, or one --instance. Each instance: CreateImage, wait, encrypted copy to every DR region, SSM parameter, retention.',
    )
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON)')
    .option('-i, --instance <id>', 'back up only this EC2 instance (default: every instance the policy targets)')
    .option('-w, --wait', 'follow the run until it ends (a progress bar for a fleet) and print its result')
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .option(
      '--no-preflight',
      'with --instance: start without first looking the instance up in AWS with your own credentials (for a CLI with no AWS access)',
    )
    .addOption(new Option('--poll-interval <ms>', 'how often --wait asks the workflow for progress').default('2000').hideHelp())
    .addHelpText(
      'after',
      `
Examples:
  ami-backup run --policy policy.yaml --wait                      # every tagged instance, with a progress bar
  ami-backup run --policy policy.yaml --instance i-0123456789abcdef0 --wait
  ami-backup run --policy policy.yaml --wait --json | tail -1 | jq '.instances[] | select(.status=="failed")'

With --instance, the instance is first looked up in the policy's sourceRegion with your own AWS
credentials: one that does not exist or is terminated is refused (exit 1) before anything starts.
Where that look-up cannot reach AWS or is denied, a warning says so and the run starts anyway.

Exit codes: 0 no instance failed (or the run was started, without --wait; an instance "skipped"
because its own backup was already running is not a failure), 1 a backup failed (or the instance
does not exist or is terminated, or a run of the same policy/instance is already going), 2 bad
input (nothing was started).`,
    )
    .action(async (opts) => setExit(await runCommand(opts)));

  registerInspectCommands(program, setExit);
  registerScheduleCommands(program, setExit);
  registerPlanCommand(program, setExit);
  registerLatestCommand(program, setExit);
  registerCheckCommand(program, setExit);

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
    }
    if (err instanceof PolicyError) {
      console.error(`ami-backup: ${err.source} is not a valid policy (nothing was started):\n${formatProblems(err.problems)}`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof UsageError) {
      console.error(`ami-backup: ${err.message}`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof TemporalConfigError) {
      console.error(`ami-backup: ${err.message}`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof ConnectError) {
      console.error(`ami-backup: ${err.message}`);
      return EXIT_FAILED;
    }
    console.error(`ami-backup: ${(err as Error).stack ?? err}`);
    return EXIT_FAILED;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
