/**
 * AWS clients pointed at moto, recording every request they send (the wire body and the
 * command's input), so tests can assert what reached AWS even where moto ignores a field.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import { createAwsClients, type AwsClients } from '../../src/activities/aws';

export interface RecordedRequest {
  service: 'ec2' | 'ssm';
  region: string;
  command: string;
  input: Record<string, unknown>;
  body: string;
}

export type Fault = (command: string, input: Record<string, unknown>, region: string) => Error | undefined;

export interface TestAws {
  aws: AwsClients;
  requests: RecordedRequest[];
  /** Makes the next calls fail before they leave the process, while `fault` returns an error. */
  setFault(fault: Fault | undefined): void;
  /** Answers calls without sending them (after recording them), while `respond` returns an output: for what moto lacks. */
  setResponse(respond: Respond | undefined): void;
}

export type Respond = (command: string, input: Record<string, unknown>, region: string) => Record<string, unknown> | undefined;

/** Points the AWS SDK at moto for this process, with test credentials. */
export function useMoto(endpoint: string): void {
  process.env.AWS_ENDPOINT_URL = endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'testing';
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  process.env.AWS_REGION = 'us-east-1';
  delete process.env.AWS_PROFILE;
}

export function recordingAws(): TestAws {
  const requests: RecordedRequest[] = [];
  let fault: Fault | undefined;
  let respond: Respond | undefined;
  const aws = createAwsClients({
    maxAttempts: 1,
    onClient: (client: EC2Client | SSMClient, service, region) => {
      const stack = client.middlewareStack as EC2Client['middlewareStack'];
      stack.add(
        (next, context) => async (args) => {
          const input = args.input as Record<string, unknown>;
          const injected = fault?.(context.commandName ?? '', input, region);
          if (injected) throw injected;
          return next(args);
        },
        { step: 'initialize', name: 'testFaults' },
      );
      stack.add(
        (next, context) => async (args) => {
          const request = args.request as { body?: unknown };
          requests.push({
            service,
            region,
            command: context.commandName ?? '',
            input: args.input as Record<string, unknown>,
            body: typeof request.body === 'string' ? request.body : '',
          });
          const answer = respond?.(context.commandName ?? '', args.input as Record<string, unknown>, region);
          if (answer) return { output: { $metadata: {}, ...answer }, response: {} } as Awaited<ReturnType<typeof next>>;
          return next(args);
        },
        { step: 'finalizeRequest', name: 'testRecorder' },
      );
    },
  });
  return { aws, requests, setFault: (f) => (fault = f), setResponse: (r) => (respond = r) };
}

/** An error shaped like one the AWS SDK throws for an error response. */
export function awsError(code: string, message: string, status = 400): Error {
  return Object.assign(new Error(message), {
    name: code,
    Code: code,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });
}

/** The ApplicationFailure an activity call rejects with (the test fails if it resolves or throws anything else). */
export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}
