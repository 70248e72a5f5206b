/**
 * What the commands that read AWS straight from the CLI (`plan`, `latest`) share: AWS clients over
 * the operator's own credentials (the SDK's standard chain; the policy's roleArn is assumed as the
 * worker assumes it), closed when the command ends, and AWS failures turned into one readable
 * message and exit 1. These commands only read: they never start a workflow or change anything.
 *
 * Every AWS call goes through the activities' error mapping (`awsCall` / `toFailure`), so a failure
 * arrives here as an ApplicationFailure whose message already names the operation and region.
 */
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { createAwsClients, type AwsClients } from '../activities/aws';
import { awsCall } from '../activities/errors';
import { EXIT_FAILED } from './common';

const CREDENTIAL_ERRORS = new Set([
  'CredentialsProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'UnrecognizedClientException',
  'AuthFailure',
]);

/** The message for an AWS failure: the activity's text, then what it means for this command. */
export function awsFailureText(failure: ApplicationFailure, command: string, roleArn: string | undefined, permissions: string): string {
  // "Will retry." is the worker's side of the story; here the SDK has already tried 3 times.
  const message = failure.message.replace(/\s*Will retry\.$/, ' (still failing after 3 attempts: try again in a moment).');
  const identity = `your own AWS credentials (the standard AWS SDK chain: AWS_PROFILE, AWS_ACCESS_KEY_ID …)${
    roleArn ? `, assuming the policy's roleArn ${roleArn}` : ''
  }`;
  const what =
    failure.type && CREDENTIAL_ERRORS.has(failure.type)
      ? `\`ami-backup ${command}\` calls AWS with ${identity}: refresh or set those credentials and try again.`
      : `\`ami-backup ${command}\` calls AWS with ${identity}, not the worker's; it needs ${permissions}.`;
  return `ami-backup: ${message}\n  ${what} Nothing was changed.`;
}

/**
 * Runs `fn` with AWS clients made for this command only and closes them afterwards (so the process
 * can exit at once). An AWS failure becomes its message on stderr and exit 1; anything else
 * (UsageError, a bug) goes on to main().
 */
export async function withOperatorAws(
  command: string,
  roleArn: string | undefined,
  permissions: string,
  fn: (aws: AwsClients) => Promise<number>,
): Promise<number> {
  const made: Array<{ destroy(): void }> = [];
  const aws = createAwsClients({ onClient: (client) => made.push(client) });
  try {
    return await fn(aws);
  } catch (err) {
    if (err instanceof ApplicationFailure) {
      console.error(awsFailureText(err, command, roleArn, permissions));
      return EXIT_FAILED;
    }
    throw err;
  } finally {
    for (const client of made) client.destroy();
  }
}

/** How long `run`'s pre-flight waits for AWS before it gives up and starts the run anyway. */
export const PREFLIGHT_TIMEOUT_MS = 10_000;

/** What the pre-flight learnt about an instance: its state, or undefined when it does not exist. */
export type InstanceLookup = { found: true; state: string | undefined } | { found: false };

/**
 * Looks an instance up in `region` with the operator's own credentials (the policy's roleArn
 * assumed, as the worker does), for `run --instance`'s pre-flight. The `instance-id` filter, not
 * InstanceIds: an unknown ID is an empty answer, not an error. Throws an ApplicationFailure when
 * AWS cannot be asked (unreachable, denied, no credentials) or does not answer within `timeoutMs`.
 */
export async function lookUpInstance(
  region: string,
  roleArn: string | undefined,
  instanceId: string,
  timeoutMs = PREFLIGHT_TIMEOUT_MS,
): Promise<InstanceLookup> {
  const made: Array<{ destroy(): void }> = [];
  const aws = createAwsClients({ maxAttempts: 2, onClient: (client) => made.push(client) });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const ctx = { operation: 'ec2:DescribeInstances', region, instanceId };
  try {
    const answer = await awsCall(ctx, async () => {
      try {
        return await aws
          .ec2(region, roleArn)
          .send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] }), { abortSignal: abort.signal });
      } catch (err) {
        if (abort.signal.aborted) throw Object.assign(new Error(`no answer within ${timeoutMs / 1000}s`), { name: 'TimeoutError' });
        throw err;
      }
    });
    const instance = (answer.Reservations ?? []).flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
    return instance ? { found: true, state: instance.State?.Name } : { found: false };
  } finally {
    clearTimeout(timer);
    for (const client of made) client.destroy();
  }
}
