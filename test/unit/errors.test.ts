import { ApplicationFailure } from '@temporalio/common';
import {
  awsCall,
  awsErrorCode,
  classifyAwsError,
  COPY_LIMIT_RETRY_DELAY,
  toFailure,
  type ErrorContext,
  type ErrorKind,
} from '../../src/activities/errors';

/** An error shaped as the AWS SDK v3 throws them. */
function awsError(code: string, status: number, message = `${code} happened`): Error {
  return Object.assign(new Error(message), {
    name: code,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, requestId: 'req-1', attempts: 3 },
  });
}

function networkError(code: string, message = 'socket hang up'): Error {
  return Object.assign(new Error(message), { code });
}

const INSTANCE = 'i-0123456789abcdef0';
const CREATE: ErrorContext = { operation: 'CreateImage', region: 'us-east-1', instanceId: INSTANCE };
const COPY: ErrorContext = {
  operation: 'CopyImage',
  region: 'eu-west-1',
  instanceId: INSTANCE,
  imageId: 'ami-0123456789abcdef0',
  kmsKeyId: 'alias/ami-backup',
};

describe('classifyAwsError', () => {
  test.each([
    ['Throttling', 400],
    ['ThrottlingException', 400],
    ['RequestLimitExceeded', 503],
    ['RequestThrottled', 400],
    ['TooManyRequestsException', 429],
    ['SlowDown', 503],
    ['TooManyUpdates', 400],
  ])('throttling: %s (%i) is retryable', (code, status) => {
    expect(classifyAwsError(awsError(code, status))).toEqual({ kind: 'retryable', code, message: `${code} happened` });
  });

  test.each([
    ['InternalError', 500],
    ['InternalFailure', 500],
    ['ServiceUnavailable', 503],
    ['Unavailable', 503],
    ['RequestTimeout', 408],
    ['IncorrectInstanceState', 400],
  ])('transient: %s (%i) is retryable', (code, status) => {
    expect(classifyAwsError(awsError(code, status)).kind).toBe('retryable');
  });

  test.each([500, 502, 503, 504])('a %i with a code nobody knows is retryable', (status) => {
    expect(classifyAwsError(awsError('SomethingNobodyHasSeen', status))).toEqual({
      kind: 'retryable',
      code: 'SomethingNobodyHasSeen',
      message: 'SomethingNobodyHasSeen happened',
    });
  });

  test.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET'])(
    'a network error %s is retryable and keeps its code',
    (code) => {
      expect(classifyAwsError(networkError(code))).toEqual({ kind: 'retryable', code, message: 'socket hang up' });
    },
  );

  test('a network error wrapped as the cause (as fetch does) is retryable', () => {
    const err = new Error('fetch failed', { cause: networkError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:4566') });
    expect(classifyAwsError(err)).toEqual({ kind: 'retryable', code: 'ECONNREFUSED', message: 'fetch failed' });
  });

  test('an SDK TimeoutError is retryable', () => {
    const err = Object.assign(new Error('Connection timed out after 1000 ms'), { name: 'TimeoutError' });
    expect(classifyAwsError(err).kind).toBe('retryable');
  });

  test('a 4xx the SDK flags as $retryable is retryable', () => {
    const err = Object.assign(awsError('Whatever', 400), { $retryable: { throttling: false } });
    expect(classifyAwsError(err).kind).toBe('retryable');
  });

  test('ResourceLimitExceeded means too many copies in flight', () => {
    expect(classifyAwsError(awsError('ResourceLimitExceeded', 400))).toEqual({
      kind: 'copy-limit',
      code: 'ResourceLimitExceeded',
      message: 'ResourceLimitExceeded happened',
    });
  });

  test.each<[string, number]>([
    ['AuthFailure', 401],
    ['UnauthorizedOperation', 403],
    ['AccessDenied', 403],
    ['OptInRequired', 401],
    ['ExpiredToken', 400],
    ['InvalidInstanceID.NotFound', 400],
    ['InvalidInstanceID.Malformed', 400],
    ['InvalidAMIID.NotFound', 400],
    ['InvalidParameterValue', 400],
    ['InvalidParameterCombination', 400],
    ['InvalidAMIName.Duplicate', 400],
    ['KMSKeyNotAccessibleFault', 400],
    ['KMS.DisabledException', 400],
    ['InvalidKMSKey.InvalidState', 400],
    ['ParameterLimitExceeded', 400],
    ['InstanceTerminated', 400],
  ])('%s (%i) is non-retryable', (code, status) => {
    expect(classifyAwsError(awsError(code, status))).toEqual({ kind: 'non-retryable', code, message: `${code} happened` });
  });

  test('a KMS error is non-retryable even when it comes back as a 500', () => {
    expect(classifyAwsError(awsError('KMSKeyNotAccessibleFault', 500)).kind).toBe('non-retryable');
  });

  test.each([400, 403, 404, 409])('an unknown %i is non-retryable', (status) => {
    expect(classifyAwsError(awsError('BrandNewClientError', status)).kind).toBe('non-retryable');
  });

  test('a thrown string keeps its text as the message', () => {
    expect(classifyAwsError('something odd')).toEqual({ kind: 'retryable', code: 'UnknownError', message: 'something odd' });
  });

  test('awsErrorCode reads the code the same way', () => {
    expect(awsErrorCode(awsError('AuthFailure', 401))).toBe('AuthFailure');
    expect(awsErrorCode(networkError('ECONNRESET'))).toBe('ECONNRESET');
    expect(awsErrorCode(Object.assign(new Error('x'), { Code: 'InvalidAMIID.NotFound' }))).toBe('InvalidAMIID.NotFound');
    expect(awsErrorCode(undefined)).toBe('UnknownError');
  });
});

describe('toFailure', () => {
  test.each<[string, Error, ErrorKind]>([
    ['throttling', awsError('RequestLimitExceeded', 503), 'retryable'],
    ['network', networkError('ECONNRESET'), 'retryable'],
    ['copy limit', awsError('ResourceLimitExceeded', 400), 'copy-limit'],
    ['auth', awsError('AuthFailure', 401), 'non-retryable'],
    ['unknown 4xx', awsError('BrandNewClientError', 400), 'non-retryable'],
  ])('%s: an ApplicationFailure typed with the code, retryable as classified', (_what, err, kind) => {
    const failure = toFailure(err, COPY);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe(classifyAwsError(err).code);
    expect(failure.nonRetryable).toBe(kind === 'non-retryable');
    if (kind === 'copy-limit') expect(failure.nextRetryDelay).toBe(COPY_LIMIT_RETRY_DELAY);
    else expect(failure.nextRetryDelay).toBeUndefined();
  });

  test('a non-retryable failure names the operation, instance, region, AWS message and what to do', () => {
    const failure = toFailure(awsError('UnauthorizedOperation', 403, 'You are not authorized to perform this operation'), CREATE);
    expect(failure.type).toBe('UnauthorizedOperation');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toBe(
      'CreateImage failed (instance i-0123456789abcdef0, region us-east-1): UnauthorizedOperation: ' +
        'You are not authorized to perform this operation. ' +
        "Allow CreateImage in us-east-1 for the worker's AWS identity (or the policy's roleArn), then run the backup again.",
    );
  });

  // EC2 messages end with a full stop ("You are not authorized to perform this operation.").
  test.each<[string, Error]>([
    ['non-retryable', awsError('UnauthorizedOperation', 403, 'You are not authorized to perform this operation.')],
    ['retryable', awsError('RequestLimitExceeded', 503, 'Request limit exceeded.')],
    ['copy limit', awsError('ResourceLimitExceeded', 400, 'You have reached the limit of concurrent copies.')],
  ])('%s: an AWS message ending with a full stop does not give ".." in the failure message', (_what, err) => {
    expect(toFailure(err, CREATE).message).not.toContain('..');
  });

  test('AuthFailure advice', () => {
    const failure = toFailure(awsError('AuthFailure', 401), CREATE);
    expect(failure.message).toContain("Allow CreateImage in us-east-1 for the worker's AWS identity");
  });

  test('InvalidInstanceID.NotFound advice names the instance', () => {
    const failure = toFailure(awsError('InvalidInstanceID.NotFound', 400, "The instance ID 'i-0123456789abcdef0' does not exist"), CREATE);
    expect(failure.type).toBe('InvalidInstanceID.NotFound');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('CreateImage failed (instance i-0123456789abcdef0, region us-east-1)');
    expect(failure.message).toContain(
      "Check the instance ID i-0123456789abcdef0 exists in us-east-1, and the policy's targets and sourceRegion.",
    );
  });

  test('a KMS error names the key and the region', () => {
    const failure = toFailure(awsError('KMSKeyNotAccessibleFault', 400, 'The key is disabled'), COPY);
    expect(failure.type).toBe('KMSKeyNotAccessibleFault');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('CopyImage failed (instance i-0123456789abcdef0, image ami-0123456789abcdef0, region eu-west-1)');
    expect(failure.message).toContain('The key is disabled');
    expect(failure.message).toContain('Check that KMS key alias/ami-backup exists and is enabled in eu-west-1');
    expect(failure.message).toContain('kms:CreateGrant');
  });

  test('a KMS error without a key in the context mentions the account default', () => {
    const failure = toFailure(awsError('KMS.NotFoundException', 400), { operation: 'CopyImage', region: 'eu-west-1' });
    expect(failure.message).toContain('Check that KMS key (account default) exists and is enabled in eu-west-1');
  });

  test('InvalidParameterValue gets the generic advice', () => {
    const failure = toFailure(awsError('InvalidParameterValue', 400, 'Value (x) for parameter name is invalid'), CREATE);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('Value (x) for parameter name is invalid');
    expect(failure.message).toContain('fix its cause and run the backup again');
  });

  test('expired credentials say to refresh them', () => {
    const failure = toFailure(awsError('ExpiredToken', 400), CREATE);
    expect(failure.message).toContain("The worker's AWS credentials are invalid or expired");
  });

  test('OptInRequired names the region', () => {
    const failure = toFailure(awsError('OptInRequired', 401), COPY);
    expect(failure.message).toContain('Region eu-west-1 is not enabled for this account');
  });

  test('an SSM parameter error names the parameter', () => {
    const failure = toFailure(awsError('ParameterLimitExceeded', 400), {
      operation: 'PutParameter',
      region: 'eu-west-1',
      parameter: '/ami-backup/web/i-0123456789abcdef0/latest',
    });
    expect(failure.message).toContain('PutParameter failed (region eu-west-1)');
    expect(failure.message).toContain(
      "Check the policy's ssmParameter template and the SSM parameter /ami-backup/web/i-0123456789abcdef0/latest in eu-west-1.",
    );
  });

  test('a missing image without an image ID in the context has no double space', () => {
    const failure = toFailure(awsError('InvalidAMIID.NotFound', 400), { operation: 'DescribeImages', region: 'eu-west-1' });
    expect(failure.message).toContain('Image does not exist in eu-west-1');
    expect(failure.message).not.toContain('  ');
  });

  test('copy limit: retryable, with a longer delay, and says why', () => {
    const failure = toFailure(awsError('ResourceLimitExceeded', 400, 'You have reached the limit of concurrent copies'), COPY);
    expect(failure.type).toBe('ResourceLimitExceeded');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.nextRetryDelay).toBe('1 minute');
    expect(failure.message).toContain('CopyImage failed (instance i-0123456789abcdef0, image ami-0123456789abcdef0, region eu-west-1)');
    expect(failure.message).toContain('Too many copies in flight in eu-west-1; waiting 1 minute before trying again.');
  });

  test('retryable: keeps the code as the type and says it will retry', () => {
    const failure = toFailure(networkError('ECONNRESET'), CREATE);
    expect(failure.type).toBe('ECONNRESET');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toBe(
      'CreateImage failed (instance i-0123456789abcdef0, region us-east-1): ECONNRESET: socket hang up. Will retry.',
    );
  });

  test('an ApplicationFailure passes through unchanged', () => {
    const original = ApplicationFailure.nonRetryable('already decided', 'Custom');
    expect(toFailure(original, CREATE)).toBe(original);
  });
});

describe('awsCall', () => {
  test('returns the result of a call that succeeds', async () => {
    await expect(awsCall(CREATE, async () => 42)).resolves.toBe(42);
  });

  test('turns a failing call into the ApplicationFailure toFailure makes', async () => {
    const rejection = awsCall(CREATE, async () => {
      throw awsError('AuthFailure', 401);
    });
    await expect(rejection).rejects.toBeInstanceOf(ApplicationFailure);
    await expect(rejection).rejects.toMatchObject({ type: 'AuthFailure', nonRetryable: true });
  });
});
