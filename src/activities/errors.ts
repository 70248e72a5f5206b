/**
 * The one place that decides what an AWS error means for a backup: retry it, wait longer for it,
 * or stop and tell a person. Activities wrap every AWS call with `toFailure`.
 */
import { ApplicationFailure, type Duration } from '@temporalio/common';

export type ErrorKind = 'retryable' | 'copy-limit' | 'non-retryable';

export interface Classified {
  kind: ErrorKind;
  /** The AWS error code ("RequestLimitExceeded"), or a network code ("ECONNRESET"). */
  code: string;
  message: string;
}

/** Where the error happened, for the message a person reads. */
export interface ErrorContext {
  operation: string;
  region: string;
  instanceId?: string;
  imageId?: string;
  kmsKeyId?: string;
  parameter?: string;
}

const RETRYABLE_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'TooManyUpdates',
  'SlowDown',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'Unavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'RequestExpired',
  'PriorRequestNotComplete',
  'IncorrectInstanceState',
  'IncorrectState',
  'ConcurrentTagAccess',
  'InsufficientInstanceCapacity',
  'TimeoutError',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const NON_RETRYABLE_CODES = new Set([
  'AuthFailure',
  'UnauthorizedOperation',
  'AccessDenied',
  'AccessDeniedException',
  'OptInRequired',
  'Blocked',
  'SignatureDoesNotMatch',
  'InvalidClientTokenId',
  'ExpiredToken',
  'ExpiredTokenException',
  'UnrecognizedClientException',
  'InvalidParameter',
  'InvalidParameterValue',
  'InvalidParameterCombination',
  'MissingParameter',
  'UnknownParameter',
  'ValidationException',
  'ValidationError',
  'UnsupportedOperation',
  'IdempotentParameterMismatch',
  'InvalidAMIName.Malformed',
  'InvalidAMIName.Duplicate',
  'InvalidKeyId',
  'ParameterMaxVersionLimitExceeded',
  'ParameterLimitExceeded',
  'HierarchyLevelLimitExceededException',
  'HierarchyTypeMismatchException',
  'UnsupportedParameterType',
  'InvalidAllowedPatternException',
  'ParameterPatternMismatchException',
  'InstanceTerminated',
]);

/** The AWS error code of an SDK error ("InvalidAMIID.NotFound"), or its network code. */
export function awsErrorCode(err: unknown): string {
  const e = err as { name?: string; code?: string; Code?: string; cause?: { code?: string } };
  return e?.code ?? e?.Code ?? e?.cause?.code ?? e?.name ?? 'UnknownError';
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

export function classifyAwsError(err: unknown): Classified {
  const code = awsErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ResourceLimitExceeded') return { kind: 'copy-limit', code, message };
  if (RETRYABLE_CODES.has(code) || NETWORK_CODES.has(code) || /throttl/i.test(code)) return { kind: 'retryable', code, message };
  if (/kms/i.test(code)) return { kind: 'non-retryable', code, message };
  if (NON_RETRYABLE_CODES.has(code)) return { kind: 'non-retryable', code, message };
  if (/\.(NotFound|Malformed)$/.test(code) || code.startsWith('InvalidInstanceID')) {
    return { kind: 'non-retryable', code, message };
  }
  const status = httpStatus(err);
  if (status !== undefined && status >= 500) return { kind: 'retryable', code, message };
  if ((err as { $retryable?: unknown })?.$retryable) return { kind: 'retryable', code, message };
  // A 4xx we do not know: a person has to look at it; retrying an invalid request changes nothing.
  if (status !== undefined && status >= 400) return { kind: 'non-retryable', code, message };
  // A programming error in this code, not an answer from AWS: retrying cannot help.
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const systemCode = e?.code ?? e?.cause?.code;
  if (
    !systemCode &&
    (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError)
  ) {
    return { kind: 'non-retryable', code, message };
  }
  // No HTTP answer at all (a socket error with an unusual code): the network, so try again.
  return { kind: 'retryable', code, message };
}

/** What a person should do about an error, in one sentence. */
export function adviceFor(code: string, ctx: ErrorContext): string {
  if (['AuthFailure', 'UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException'].includes(code)) {
    return `Allow ${ctx.operation} in ${ctx.region} for the worker's AWS identity (or the policy's roleArn), then run the backup again.`;
  }
  if (
    ['ExpiredToken', 'ExpiredTokenException', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException'].includes(code)
  ) {
    return "The worker's AWS credentials are invalid or expired: refresh them and restart the worker.";
  }
  if (code === 'OptInRequired') return `Region ${ctx.region} is not enabled for this account: enable it or remove it from the policy.`;
  if (code.startsWith('InvalidInstanceID')) {
    return `Check the instance ID${ctx.instanceId ? ` ${ctx.instanceId}` : ''} exists in ${ctx.region}, and the policy's targets and sourceRegion.`;
  }
  if (code === 'InstanceTerminated') return 'A terminated instance cannot be backed up: remove it from the policy targets.';
  if (/kms/i.test(code) || (ctx.kmsKeyId && /key/i.test(code))) {
    return `Check that KMS key ${ctx.kmsKeyId ?? '(account default)'} exists and is enabled in ${ctx.region}, and that the worker may use it (kms:CreateGrant, kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey*, kms:DescribeKey).`;
  }
  if (code.startsWith('InvalidAMIID')) {
    const image = ctx.imageId ? `Image ${ctx.imageId}` : 'Image';
    return `${image} does not exist in ${ctx.region} (deregistered by someone else?). Run the backup again.`;
  }
  if (code.startsWith('Parameter') || code.startsWith('Hierarchy') || code === 'InvalidKeyId') {
    const parameter = ctx.parameter ? `the SSM parameter ${ctx.parameter}` : 'the SSM parameter';
    return `Check the policy's ssmParameter template and ${parameter} in ${ctx.region}.`;
  }
  return 'See the AWS error above; fix its cause and run the backup again.';
}

function where(ctx: ErrorContext): string {
  const parts = [ctx.instanceId && `instance ${ctx.instanceId}`, ctx.imageId && `image ${ctx.imageId}`, `region ${ctx.region}`];
  return parts.filter(Boolean).join(', ');
}

/**
 * How long to wait before trying a copy again when the destination region has too many in flight
 * (AMI_BACKUP_COPY_LIMIT_RETRY_DELAY on the worker overrides it, e.g. "30s").
 */
export const COPY_LIMIT_RETRY_DELAY = '1 minute';

function copyLimitRetryDelay(): Duration {
  return (process.env.AMI_BACKUP_COPY_LIMIT_RETRY_DELAY || COPY_LIMIT_RETRY_DELAY) as Duration;
}

/**
 * Turns any error from an AWS call into the failure Temporal should see: retryable errors keep
 * their code as the failure type (visible in the UI), non-retryable ones stop the retries and
 * say what to do.
 */
export function toFailure(err: unknown, ctx: ErrorContext): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const c = classifyAwsError(err);
  const base = `${ctx.operation} failed (${where(ctx)}): ${c.code}: ${c.message.trim().replace(/\.+$/, '')}`;
  switch (c.kind) {
    case 'copy-limit':
      return ApplicationFailure.create({
        message: `${base}. Too many copies in flight in ${ctx.region}; waiting ${copyLimitRetryDelay()} before trying again.`,
        type: c.code,
        nextRetryDelay: copyLimitRetryDelay(),
      });
    case 'retryable':
      return ApplicationFailure.retryable(`${base}. Will retry.`, c.code);
    case 'non-retryable':
      return ApplicationFailure.nonRetryable(`${base}. ${adviceFor(c.code, ctx)}`, c.code);
  }
}

/** Runs one AWS call; any error comes out as the failure `toFailure` makes of it. */
export async function awsCall<T>(ctx: ErrorContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toFailure(err, ctx);
  }
}
