/**
 * AWS clients, one per region (and role), created once and reused. Endpoints and credentials come
 * from the SDK's standard chain, so AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_SSM
 * point the worker at an emulator with no code change.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';

export interface AwsClients {
  ec2(region: string, roleArn?: string): EC2Client;
  ssm(region: string, roleArn?: string): SSMClient;
}

export interface AwsClientOptions {
  /** Called once for each client made: tests use it to record the requests sent. */
  onClient?: (client: EC2Client | SSMClient, service: 'ec2' | 'ssm', region: string) => void;
  /** SDK-level attempts per call before Temporal's retry policy takes over (default 3). */
  maxAttempts?: number;
}

export const ROLE_SESSION_NAME = 'ami-backup';

/** Credentials for a client: the policy's role assumed through STS, or the SDK's standard chain. */
export function credentialsFor(region: string, roleArn?: string) {
  return roleArn
    ? fromTemporaryCredentials({
        params: { RoleArn: roleArn, RoleSessionName: ROLE_SESSION_NAME, DurationSeconds: 3600 },
        clientConfig: { region },
      })
    : undefined;
}

export function createAwsClients(options: AwsClientOptions = {}): AwsClients {
  const cache = new Map<string, EC2Client | SSMClient>();

  function get<C extends EC2Client | SSMClient>(service: 'ec2' | 'ssm', region: string, roleArn: string | undefined, make: () => C): C {
    const key = `${service}|${region}|${roleArn ?? ''}`;
    let client = cache.get(key) as C | undefined;
    if (!client) {
      client = make();
      options.onClient?.(client, service, region);
      cache.set(key, client);
    }
    return client;
  }

  const maxAttempts = options.maxAttempts ?? 3;
  return {
    ec2: (region, roleArn) =>
      get('ec2', region, roleArn, () => new EC2Client({ region, maxAttempts, credentials: credentialsFor(region, roleArn) })),
    ssm: (region, roleArn) =>
      get('ssm', region, roleArn, () => new SSMClient({ region, maxAttempts, credentials: credentialsFor(region, roleArn) })),
  };
}
