import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  formatPath,
  formatProblems,
  loadPolicyFile,
  MAX_POLICY_BYTES,
  parsePolicyText,
  PolicyError,
  validatePolicy,
  type PolicyProblem,
  type PolicyResult,
} from '../../src/policy/load';
import { DEFAULT_SSM_PARAMETER, policySchema, type Policy } from '../../src/policy/schema';
import { durationMs } from '../../src/policy/duration';

const FIXTURES = join(__dirname, '..', 'fixtures', 'policies');
const fixture = (name: string) => join(FIXTURES, name);

// Policies are patched freely in the table below, so their shape is deliberately loose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = Record<string, any>;

/** A valid policy as a user would write it, before defaults. */
function basePolicy(): Raw {
  return {
    name: 'web-servers',
    sourceRegion: 'us-east-1',
    targets: { tags: { Backup: 'true' } },
    copies: [{ region: 'eu-west-1' }],
  };
}

function expectOk(result: PolicyResult): Policy {
  if (!result.ok) throw new Error(`expected a valid policy, got:\n${formatProblems(result.problems)}`);
  return result.policy;
}

function expectProblems(result: PolicyResult): PolicyProblem[] {
  if (result.ok) throw new Error(`expected problems, got a valid policy: ${JSON.stringify(result.policy)}`);
  expect(result.problems.length).toBeGreaterThan(0);
  return result.problems;
}

/** Runs `fn`, which must throw a PolicyError; returns it. */
function catchPolicyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError, nothing was thrown');
}

describe('good policies', () => {
  test('the minimal YAML policy gets every default', () => {
    const policy = loadPolicyFile(fixture('good/minimal.yaml'));
    expect(policy).toEqual({
      name: 'web-servers',
      sourceRegion: 'us-east-1',
      targets: { tags: { Backup: 'true' } },
      noReboot: true,
      copies: [{ region: 'eu-west-1' }],
      ssmParameter: '/ami-backup/{policy}/{instanceId}/latest',
      wait: { firstCheck: '60s', maxInterval: '3m', timeout: '4h' },
      maxConcurrent: 10,
      maxConcurrentCopies: 5,
    });
    expect(policy.ssmParameter).toBe(DEFAULT_SSM_PARAMETER);
    expect(policy.retention).toBeUndefined();
    expect(policy.roleArn).toBeUndefined();
    expect(durationMs(policy.wait.firstCheck)).toBe(60_000);
    expect(durationMs(policy.wait.maxInterval)).toBe(180_000);
    expect(durationMs(policy.wait.timeout)).toBe(4 * 3_600_000);
  });

  test('the full YAML policy sets every field and keeps every value as written', () => {
    const file = fixture('good/full.yaml');
    // The fixture really does use every field the schema knows, at the top level and in a copy.
    const raw = parse(readFileSync(file, 'utf8')) as Raw;
    expect(Object.keys(raw).sort()).toEqual(Object.keys(policySchema.shape).sort());
    expect(Object.keys(raw.copies[0]).sort()).toEqual(['kmsKeyId', 'region', 'retention']);

    expect(loadPolicyFile(file)).toEqual({
      name: 'web-servers',
      sourceRegion: 'us-east-1',
      targets: { tags: { Backup: 'true', Environment: 'production' } },
      noReboot: false,
      copies: [
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-backup', retention: { keepLast: 7, maxAge: '30d' } },
        {
          region: 'eu-central-1',
          kmsKeyId: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
          retention: { maxAge: '90d' },
        },
        { region: 'us-west-2', kmsKeyId: 'mrk-1234abcd12ab34cd56ef1234567890ab' },
      ],
      retention: { keepLast: 3 },
      ssmParameter: '/backups/{sourceRegion}/{policy}/{instanceId}/latest',
      roleArn: 'arn:aws:iam::123456789012:role/ami-backup',
      wait: { firstCheck: '30s', maxInterval: '5m', timeout: '6h' },
      maxConcurrent: 20,
      maxConcurrentCopies: 3,
    });
  });

  test('a JSON policy with instance IDs loads, and a partial wait block is completed with defaults', () => {
    const policy = loadPolicyFile(fixture('good/policy.json'));
    expect(policy.targets).toEqual({ instanceIds: ['i-0123456789abcdef0', 'i-0abcdef1'] });
    expect(policy.copies).toEqual([
      { region: 'eu-central-1', kmsKeyId: '1234abcd-12ab-34cd-56ef-1234567890ab', retention: { keepLast: 14 } },
    ]);
    expect(policy.wait).toEqual({ firstCheck: '60s', maxInterval: '3m', timeout: '8h' });
    expect(policy.noReboot).toBe(true);
    expect(policy.maxConcurrent).toBe(10);
    expect(policy.maxConcurrentCopies).toBe(5);
    expect(policy.ssmParameter).toBe('/ami-backup/{policy}/{instanceId}/latest');
  });

  test('YAML and JSON spellings of the same policy give the same result', () => {
    const yaml = expectOk(parsePolicyText(stringify(basePolicy())));
    const json = expectOk(parsePolicyText(JSON.stringify(basePolicy())));
    const object = expectOk(validatePolicy(basePolicy()));
    expect(json).toEqual(yaml);
    expect(object).toEqual(yaml);
  });

  test('explicit values win over defaults, including falsy ones', () => {
    const policy = expectOk(
      validatePolicy({ ...basePolicy(), noReboot: false, maxConcurrent: 1, maxConcurrentCopies: 50, wait: { maxInterval: '10m' } }),
    );
    expect(policy.noReboot).toBe(false);
    expect(policy.maxConcurrent).toBe(1);
    expect(policy.maxConcurrentCopies).toBe(50);
    expect(policy.wait).toEqual({ firstCheck: '60s', maxInterval: '10m', timeout: '4h' });
  });

  test.each([
    ['a one-character name', { name: 'a' }],
    ['a 64-character name', { name: 'a'.repeat(64) }],
    ['a GovCloud source region', { sourceRegion: 'us-gov-west-1' }],
    ['three copies', { copies: [{ region: 'eu-west-1' }, { region: 'eu-west-2' }, { region: 'ap-southeast-2' }] }],
    ['an alias ARN in the copy region', { copies: [{ region: 'eu-west-1', kmsKeyId: 'arn:aws:kms:eu-west-1:123456789012:alias/backup' }] }],
    ['retention by age only', { retention: { maxAge: '1h' } }],
    ['an 8-character instance ID', { targets: { instanceIds: ['i-0123abcd'] } }],
    ['maxConcurrent at its upper bound', { maxConcurrent: 200 }],
    ['a 7-day wait timeout', { wait: { timeout: '7d' } }],
    ['an SSM name with every placeholder', { ssmParameter: '/x/{sourceRegion}/{policy}/{instanceId}' }],
  ])('accepts %s', (_what, override) => {
    const policy = expectOk(validatePolicy({ ...basePolicy(), ...override }));
    for (const [key, value] of Object.entries(override)) {
      const actual = policy[key as keyof Policy];
      if (typeof value === 'object') expect(actual).toMatchObject(value);
      else expect(actual).toBe(value);
    }
  });
});

describe('unknown fields', () => {
  test('a misspelt field in a copy is rejected with its path', () => {
    const err = catchPolicyError(() => loadPolicyFile(fixture('bad/unknown-field.yaml')));
    expect(err.problems).toContainEqual({ path: 'copies[0].regoin', message: expect.stringContaining('unknown field') });
    // The copy also lacks its region now: both problems are reported.
    expect(err.problems).toContainEqual({ path: 'copies[0].region', message: expect.stringContaining('required field is missing') });
  });

  test.each([
    ['the top level', { schedule: 'daily' }, 'schedule'],
    ['targets', { targets: { tags: { Backup: 'true' }, filters: [] } }, 'targets.filters'],
    ['wait', { wait: { interval: '5m' } }, 'wait.interval'],
    ['retention', { retention: { keepLast: 3, keepFirst: 1 } }, 'retention.keepFirst'],
    ['a copy retention', { copies: [{ region: 'eu-west-1', retention: { maxAge: '30d', maxage: '31d' } }] }, 'copies[0].retention.maxage'],
  ])('in %s', (_where, override, path) => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), ...override }));
    expect(problems).toEqual([{ path, message: expect.stringContaining('unknown field') }]);
  });

  test('every unknown key in one object is reported separately', () => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), Name: 'x', region: 'y' }));
    expect(problems.map((p) => p.path).sort()).toEqual(['Name', 'region']);
  });
});

describe('every problem is reported at once', () => {
  test('a file with seven mistakes reports all seven, each with its field path', () => {
    const err = catchPolicyError(() => loadPolicyFile(fixture('bad/many-mistakes.yaml')));
    const paths = err.problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'name',
        'sourceRegion',
        'copies[0].regoin',
        'copies[1].kmsKeyId',
        'retention.keepLast',
        'wait.timeout',
        'maxConcurrent',
      ]),
    );
    expect(err.problems.length).toBeGreaterThanOrEqual(7);
    expect(err.source).toBe(fixture('bad/many-mistakes.yaml'));
    // The error message lists every problem, one per line, with its path.
    for (const p of err.problems) expect(err.message).toContain(`  - ${p.path}: ${p.message}`);
    expect(err.message.startsWith(`${fixture('bad/many-mistakes.yaml')} is not a valid policy:\n`)).toBe(true);
  });

  test('an empty mapping reports each required field', () => {
    const problems = expectProblems(parsePolicyText('{}'));
    expect(problems.map((p) => p.path)).toEqual(['name', 'sourceRegion', 'targets', 'copies']);
    for (const p of problems) expect(p.message).toMatch(/^required field is missing/);
  });

  test('cross-field checks still run when another field has a range error', () => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), copies: [{ region: 'us-east-1' }], maxConcurrent: 0 }));
    expect(problems.map((p) => p.path).sort()).toEqual(['copies[0].region', 'maxConcurrent']);
  });

  test('cross-field checks still run when the policy also has an unknown field', () => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), copies: [{ region: 'us-east-1' }], noRebot: true }));
    expect(problems).toContainEqual({ path: 'noRebot', message: expect.stringContaining('unknown field') });
    expect(problems).toContainEqual({ path: 'copies[0].region', message: expect.stringContaining('is the source region') });
  });

  // A user who fixes the first mistake should not discover the next one only on the second run.
  test('the source-region check still runs when another field has the wrong type', () => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), copies: [{ region: 'us-east-1' }], maxConcurrent: '10' }));
    expect(problems.map((p) => p.path).sort()).toEqual(['copies[0].region', 'maxConcurrent']);
  });

  test('the duplicate-copy-region check still runs when a copy has an unknown field', () => {
    const problems = expectProblems(
      validatePolicy({ ...basePolicy(), copies: [{ region: 'eu-west-1', regoin: 'x' }, { region: 'eu-west-1' }] }),
    );
    expect(problems).toContainEqual({ path: 'copies[0].regoin', message: expect.stringContaining('unknown field') });
    expect(problems).toContainEqual({ path: 'copies[1].region', message: expect.stringContaining('listed twice') });
  });

  test('the KMS key region check still runs when the same copy has a wrongly typed retention', () => {
    const problems = expectProblems(
      validatePolicy({
        ...basePolicy(),
        copies: [{ region: 'eu-west-1', kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/abc', retention: { keepLast: '7' } }],
      }),
    );
    expect(problems.map((p) => p.path).sort()).toEqual(['copies[0].kmsKeyId', 'copies[0].retention.keepLast']);
  });
});

interface BadCase {
  what: string;
  /** Changes a valid policy; or `text`, the whole file. */
  patch?: (p: Raw) => void;
  text?: string;
  path: string;
  message: string;
}

const BAD: BadCase[] = [
  // names
  { what: 'a name with upper case and _', patch: (p) => (p.name = 'Web_Servers'), path: 'name', message: 'is not a policy name' },
  { what: 'a name starting with -', patch: (p) => (p.name = '-web'), path: 'name', message: 'not starting or ending with "-"' },
  { what: 'a name ending with -', patch: (p) => (p.name = 'web-'), path: 'name', message: 'is not a policy name' },
  { what: 'a 65-character name', patch: (p) => (p.name = 'a'.repeat(65)), path: 'name', message: '1 to 64 lower-case letters' },
  { what: 'an empty name', patch: (p) => (p.name = ''), path: 'name', message: 'is not a policy name' },
  { what: 'no name', patch: (p) => delete p.name, path: 'name', message: 'required field is missing' },
  // regions
  {
    what: 'a source region without number',
    patch: (p) => (p.sourceRegion = 'us-east'),
    path: 'sourceRegion',
    message: 'not an AWS region name',
  },
  {
    what: 'an upper-case source region',
    patch: (p) => (p.sourceRegion = 'US-EAST-1'),
    path: 'sourceRegion',
    message: 'not an AWS region name',
  },
  { what: 'no source region', patch: (p) => delete p.sourceRegion, path: 'sourceRegion', message: 'a region name is required' },
  {
    what: 'a copy region spelt as in GCP',
    patch: (p) => (p.copies[0].region = 'europe-west1'),
    path: 'copies[0].region',
    message: '"europe-west1" is not an AWS region name',
  },
  { what: 'a copy without region', patch: (p) => (p.copies[0] = {}), path: 'copies[0].region', message: 'required field is missing' },
  {
    what: 'an unknown field in a copy',
    patch: (p) => (p.copies[0].kms = 'alias/x'),
    path: 'copies[0].kms',
    message: 'unknown field',
  },
  {
    what: 'a copy region listed twice',
    patch: (p) => p.copies.push({ region: 'eu-west-1' }),
    path: 'copies[1].region',
    message: 'eu-west-1 is listed twice in copies',
  },
  {
    what: 'a copy to the source region',
    patch: (p) => (p.copies[0].region = 'us-east-1'),
    path: 'copies[0].region',
    message: 'us-east-1 is the source region',
  },
  {
    what: 'four copies',
    patch: (p) => (p.copies = ['eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-north-1'].map((region) => ({ region }))),
    path: 'copies',
    message: 'at most 3 regions',
  },
  { what: 'zero copies', patch: (p) => (p.copies = []), path: 'copies', message: 'at least one disaster-recovery region' },
  { what: 'copies as a mapping', patch: (p) => (p.copies = { region: 'eu-west-1' }), path: 'copies', message: 'must be a list' },
  // KMS keys
  {
    what: 'a KMS key that is a bare name',
    patch: (p) => (p.copies[0].kmsKeyId = 'ami-backup'),
    path: 'copies[0].kmsKeyId',
    message: '"ami-backup" is not a KMS key',
  },
  {
    what: 'an upper-case ALIAS/',
    patch: (p) => (p.copies[0].kmsKeyId = 'ALIAS/backup'),
    path: 'copies[0].kmsKeyId',
    message: 'is not a KMS key',
  },
  { what: 'an empty alias', patch: (p) => (p.copies[0].kmsKeyId = 'alias/'), path: 'copies[0].kmsKeyId', message: 'is not a KMS key' },
  {
    what: 'a truncated key ID',
    patch: (p) => (p.copies[0].kmsKeyId = '1234abcd-12ab-34cd-56ef'),
    path: 'copies[0].kmsKeyId',
    message: 'is not a KMS key',
  },
  {
    what: 'a key ARN with a short account',
    patch: (p) => (p.copies[0].kmsKeyId = 'arn:aws:kms:eu-west-1:1234:key/1234abcd-12ab-34cd-56ef-1234567890ab'),
    path: 'copies[0].kmsKeyId',
    message: 'is not a KMS key',
  },
  {
    what: 'a key ARN in another region',
    patch: (p) => (p.copies[0].kmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'),
    path: 'copies[0].kmsKeyId',
    message: 'the KMS key is in us-east-1 but the copy goes to eu-west-1',
  },
  // SSM parameter
  {
    what: 'an SSM name without {instanceId}',
    patch: (p) => (p.ssmParameter = '/ami-backup/{policy}/latest'),
    path: 'ssmParameter',
    message: 'must contain {instanceId}',
  },
  {
    what: 'an unknown placeholder',
    patch: (p) => (p.ssmParameter = '/ami-backup/{region}/{instanceId}'),
    path: 'ssmParameter',
    message: 'unknown placeholder {region}',
  },
  {
    what: 'an empty placeholder',
    patch: (p) => (p.ssmParameter = '/ami-backup/{}/{instanceId}'),
    path: 'ssmParameter',
    message: 'unknown placeholder {}',
  },
  {
    what: 'the reserved /aws prefix',
    patch: (p) => (p.ssmParameter = '/aws/backup/{instanceId}'),
    path: 'ssmParameter',
    message: 'prefix AWS reserves',
  },
  {
    what: 'the reserved /SSM prefix in capitals',
    patch: (p) => (p.ssmParameter = '/SSM/{instanceId}'),
    path: 'ssmParameter',
    message: 'prefix AWS reserves',
  },
  {
    what: 'an SSM name without leading /',
    patch: (p) => (p.ssmParameter = 'ami-backup/{instanceId}'),
    path: 'ssmParameter',
    message: 'must start with "/"',
  },
  {
    what: 'an SSM name with //',
    patch: (p) => (p.ssmParameter = '/ami-backup//{instanceId}'),
    path: 'ssmParameter',
    message: 'empty path segment',
  },
  {
    what: 'an SSM name with a space',
    patch: (p) => (p.ssmParameter = '/ami backup/{instanceId}'),
    path: 'ssmParameter',
    message: 'may only contain letters, digits',
  },
  {
    what: 'an SSM name over 1011 characters',
    patch: (p) => (p.ssmParameter = `/${'a'.repeat(1000)}/{instanceId}`),
    path: 'ssmParameter',
    message: 'at most 1011 characters',
  },
  // durations
  {
    what: 'a duration in words',
    patch: (p) => (p.wait = { firstCheck: '5 minutes' }),
    path: 'wait.firstCheck',
    message: '"5 minutes" is not a duration',
  },
  { what: 'a fractional duration', patch: (p) => (p.wait = { timeout: '1.5h' }), path: 'wait.timeout', message: 'is not a duration' },
  { what: 'a zero firstCheck', patch: (p) => (p.wait = { firstCheck: '0s' }), path: 'wait.firstCheck', message: 'must be at least 1s' },
  { what: 'a 500ms firstCheck', patch: (p) => (p.wait = { firstCheck: '500ms' }), path: 'wait.firstCheck', message: 'at least 1s' },
  {
    what: 'firstCheck longer than maxInterval',
    patch: (p) => (p.wait = { firstCheck: '5m', maxInterval: '2m' }),
    path: 'wait.maxInterval',
    message: 'maxInterval (2m) is shorter than firstCheck (5m)',
  },
  {
    what: 'firstCheck longer than the default maxInterval',
    patch: (p) => (p.wait = { firstCheck: '5m' }),
    path: 'wait.maxInterval',
    message: 'maxInterval (3m) is shorter than firstCheck (5m)',
  },
  {
    what: 'a timeout not longer than firstCheck',
    patch: (p) => (p.wait = { firstCheck: '1m', maxInterval: '1m', timeout: '60s' }),
    path: 'wait.timeout',
    message: 'must be longer than firstCheck',
  },
  { what: 'a timeout over 7 days', patch: (p) => (p.wait = { timeout: '8d' }), path: 'wait.timeout', message: 'longer than 7d' },
  { what: 'a timeout of 169h', patch: (p) => (p.wait = { timeout: '169h' }), path: 'wait.timeout', message: 'longer than 7d' },
  {
    what: 'a duration as a number',
    patch: (p) => (p.wait = { timeout: 3600 }),
    path: 'wait.timeout',
    message: 'must be a duration string',
  },
  {
    what: 'a maxAge under an hour',
    patch: (p) => (p.retention = { maxAge: '30m' }),
    path: 'retention.maxAge',
    message: 'maxAge must be at least 1h, got',
  },
  // targets
  {
    what: 'an unquoted YAML boolean tag value',
    text: 'name: web-servers\nsourceRegion: us-east-1\ntargets:\n  tags:\n    Backup: true\ncopies:\n  - region: eu-west-1\n',
    path: 'targets.tags.Backup',
    message: 'tag values must be strings: quote them',
  },
  {
    what: 'a numeric tag value',
    patch: (p) => (p.targets.tags = { Tier: 1 }),
    path: 'targets.tags.Tier',
    message: 'tag values must be strings',
  },
  { what: 'an empty tags map', patch: (p) => (p.targets.tags = {}), path: 'targets.tags', message: 'needs at least one tag' },
  {
    what: 'a tag value over 256 characters',
    patch: (p) => (p.targets.tags = { Backup: 'x'.repeat(257) }),
    path: 'targets.tags.Backup',
    message: 'at most 256 characters',
  },
  {
    what: 'both tags and instanceIds',
    patch: (p) => (p.targets.instanceIds = ['i-0123456789abcdef0']),
    path: 'targets',
    message: 'exactly one of "tags" or "instanceIds"',
  },
  {
    what: 'neither tags nor instanceIds',
    patch: (p) => (p.targets = {}),
    path: 'targets',
    message: 'exactly one of "tags" or "instanceIds"',
  },
  { what: 'no targets', patch: (p) => delete p.targets, path: 'targets', message: 'required field is missing' },
  {
    what: 'a short instance ID',
    patch: (p) => (p.targets = { instanceIds: ['i-123'] }),
    path: 'targets.instanceIds[0]',
    message: '"i-123" is not an EC2 instance ID',
  },
  {
    what: 'an upper-case instance ID',
    patch: (p) => (p.targets = { instanceIds: ['i-0123456789abcdef0', 'i-0123456789ABCDEF0'] }),
    path: 'targets.instanceIds[1]',
    message: 'is not an EC2 instance ID',
  },
  {
    what: 'an AMI ID instead of an instance ID',
    patch: (p) => (p.targets = { instanceIds: ['ami-0123456789abcdef0'] }),
    path: 'targets.instanceIds[0]',
    message: 'is not an EC2 instance ID',
  },
  {
    what: 'an instance ID listed twice',
    patch: (p) => (p.targets = { instanceIds: ['i-0123456789abcdef0', 'i-0abcdef1', 'i-0123456789abcdef0'] }),
    path: 'targets.instanceIds[2]',
    message: 'i-0123456789abcdef0 is listed twice',
  },
  {
    what: 'an empty instance ID list',
    patch: (p) => (p.targets = { instanceIds: [] }),
    path: 'targets.instanceIds',
    message: 'needs at least one instance ID',
  },
  // retention
  { what: 'keepLast 0', patch: (p) => (p.retention = { keepLast: 0 }), path: 'retention.keepLast', message: 'keepLast must be at least 1' },
  { what: 'keepLast negative', patch: (p) => (p.retention = { keepLast: -3 }), path: 'retention.keepLast', message: 'at least 1' },
  { what: 'keepLast 1.5', patch: (p) => (p.retention = { keepLast: 1.5 }), path: 'retention.keepLast', message: 'whole number' },
  { what: 'keepLast 1001', patch: (p) => (p.retention = { keepLast: 1001 }), path: 'retention.keepLast', message: 'at most 1000' },
  {
    what: 'retention with neither keepLast nor maxAge',
    patch: (p) => (p.retention = {}),
    path: 'retention',
    message: 'retention needs keepLast, maxAge, or both',
  },
  {
    what: 'copy retention with neither keepLast nor maxAge',
    patch: (p) => (p.copies[0].retention = {}),
    path: 'copies[0].retention',
    message: 'retention needs keepLast, maxAge, or both',
  },
  // concurrency, role, noReboot
  { what: 'maxConcurrent 0', patch: (p) => (p.maxConcurrent = 0), path: 'maxConcurrent', message: 'maxConcurrent must be at least 1' },
  {
    what: 'maxConcurrent 10000',
    patch: (p) => (p.maxConcurrent = 10000),
    path: 'maxConcurrent',
    message: 'maxConcurrent must be at most 200',
  },
  { what: 'maxConcurrent 2.5', patch: (p) => (p.maxConcurrent = 2.5), path: 'maxConcurrent', message: 'whole number' },
  {
    what: 'maxConcurrentCopies 51',
    patch: (p) => (p.maxConcurrentCopies = 51),
    path: 'maxConcurrentCopies',
    message: 'maxConcurrentCopies must be at most 50',
  },
  {
    what: 'maxConcurrentCopies 0',
    patch: (p) => (p.maxConcurrentCopies = 0),
    path: 'maxConcurrentCopies',
    message: 'maxConcurrentCopies must be at least 1',
  },
  {
    what: 'a role ARN with a short account',
    patch: (p) => (p.roleArn = 'arn:aws:iam::1234:role/ami-backup'),
    path: 'roleArn',
    message: 'is not an IAM role ARN',
  },
  {
    what: 'a user ARN as roleArn',
    patch: (p) => (p.roleArn = 'arn:aws:iam::123456789012:user/bob'),
    path: 'roleArn',
    message: 'is not an IAM role ARN',
  },
  {
    what: 'a role name as roleArn',
    patch: (p) => (p.roleArn = 'ami-backup'),
    path: 'roleArn',
    message: '"ami-backup" is not an IAM role ARN',
  },
  { what: 'noReboot as a string', patch: (p) => (p.noReboot = 'yes'), path: 'noReboot', message: 'noReboot must be true or false' },
  // well-formed names that are no AWS region
  {
    what: 'a region in an area AWS does not have',
    patch: (p) => (p.sourceRegion = 'xx-east-1'),
    path: 'sourceRegion',
    message: 'its area "xx" is not one of af, ap',
  },
  {
    what: 'a copy region with a misspelt direction',
    patch: (p) => (p.copies[0].region = 'eu-wset-1'),
    path: 'copies[0].region',
    message: '"wset" is not one of east, west',
  },
  // present, but of the wrong type: the message says what is allowed
  {
    what: 'maxConcurrent as a string',
    patch: (p) => (p.maxConcurrent = '10'),
    path: 'maxConcurrent',
    message: 'maxConcurrent must be a whole number from 1 to 200',
  },
  {
    what: 'maxConcurrentCopies as a boolean',
    patch: (p) => (p.maxConcurrentCopies = true),
    path: 'maxConcurrentCopies',
    message: 'from 1 to 50',
  },
  { what: 'ssmParameter as a number', patch: (p) => (p.ssmParameter = 5), path: 'ssmParameter', message: 'must be a string' },
  { what: 'an empty ssmParameter', patch: (p) => (p.ssmParameter = ''), path: 'ssmParameter', message: 'ssmParameter cannot be empty' },
  { what: 'kmsKeyId as a number', patch: (p) => (p.copies[0].kmsKeyId = 5), path: 'copies[0].kmsKeyId', message: 'alias/NAME' },
  { what: 'tags as a string', patch: (p) => (p.targets.tags = 'Backup=true'), path: 'targets.tags', message: 'must be a mapping' },
  { what: 'tags as a list', patch: (p) => (p.targets.tags = ['Backup']), path: 'targets.tags', message: 'must be a mapping' },
  { what: 'targets as a string', patch: (p) => (p.targets = 'all'), path: 'targets', message: 'targets is a mapping' },
  { what: 'a copy as a string', patch: (p) => (p.copies = ['eu-west-1']), path: 'copies[0]', message: 'each copy is a mapping' },
  { what: 'retention as a number', patch: (p) => (p.retention = 7), path: 'retention', message: '{ keepLast: 7 }' },
  { what: 'wait as a string', patch: (p) => (p.wait = '5m'), path: 'wait', message: 'wait is a mapping' },
  { what: 'roleArn as a number', patch: (p) => (p.roleArn = 1), path: 'roleArn', message: 'an IAM role ARN such as' },
  {
    what: 'instanceIds as a string',
    patch: (p) => (p.targets = { instanceIds: 'i-0123456789abcdef0' }),
    path: 'targets.instanceIds',
    message: 'must be a list of instance IDs',
  },
  {
    what: 'an instance ID as a number',
    patch: (p) => (p.targets = { instanceIds: [5] }),
    path: 'targets.instanceIds[0]',
    message: 'an instance ID is a string',
  },
  { what: 'a numeric name', patch: (p) => (p.name = 12), path: 'name', message: 'name must be a string of 1 to 64' },
];

describe('bad policies', () => {
  test('the table is large enough', () => {
    expect(BAD.length).toBeGreaterThanOrEqual(25);
    expect(new Set(BAD.map((c) => c.what)).size).toBe(BAD.length);
  });

  test.each(BAD)('$what → $path', ({ patch, text, path, message }) => {
    let source = text;
    if (source === undefined) {
      const raw = basePolicy();
      patch!(raw);
      source = stringify(raw);
    }
    const problems = expectProblems(parsePolicyText(source));
    expect(problems).toContainEqual({ path, message: expect.stringContaining(message) });
    // The mistake is reported where it is, and nowhere else.
    for (const p of problems) expect(p.path).toBe(path);
  });
});

describe('messages for a field that is present but of the wrong type', () => {
  const NAME = 'name: web-servers\n';
  const REST = 'sourceRegion: us-east-1\ncopies:\n  - region: eu-west-1\n';
  const TAGS = 'targets:\n  tags:\n    Backup: "true"\n';
  // A value the user did write must not be reported as missing.
  test.each([
    ['an unquoted boolean tag value', NAME + REST + 'targets:\n  tags:\n    Backup: true\n', 'targets.tags.Backup'],
    ['a numeric name', 'name: 123\n' + REST + TAGS, 'name'],
    ['keepLast 1.5', NAME + REST + TAGS + 'retention: { keepLast: 1.5 }\n', 'retention.keepLast'],
    ['maxConcurrent as a string', NAME + REST + TAGS + 'maxConcurrent: "10"\n', 'maxConcurrent'],
    ['noReboot yes (a string in YAML 1.2)', NAME + REST + TAGS + 'noReboot: yes\n', 'noReboot'],
  ])('%s', (_what, text, path) => {
    const problems = expectProblems(parsePolicyText(text));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe(path);
    expect(problems[0]!.message).not.toMatch(/required field is missing/);
  });
});

describe('tag keys', () => {
  test.each([
    ['an empty tag key', '', 'a tag key cannot be empty'],
    ['a tag key over 128 characters', 'k'.repeat(129), 'a tag key has at most 128 characters'],
  ])('%s is reported with the schema message', (_what, key, message) => {
    const problems = expectProblems(validatePolicy({ ...basePolicy(), targets: { tags: { [key]: 'x' } } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toMatch(/^targets\.tags/);
    expect(problems[0]!.message).toContain(message);
  });
});

describe('SSM parameter names that SSM itself would refuse', () => {
  test.each(['/ami-backup/{instanceId}}', '/ami-backup/{instanceId}/{', '/ami-backup/{instanceId}/latest}'])(
    'rejects the stray brace in %s',
    (ssmParameter) => {
      const problems = expectProblems(validatePolicy({ ...basePolicy(), ssmParameter }));
      expect(problems.map((p) => p.path)).toContain('ssmParameter');
    },
  );
});

describe('parsePolicyText on text that is not a policy', () => {
  test.each([
    ['empty text', '', 'the file is empty'],
    ['whitespace only', ' \n\t\n  \r\n', 'the file is empty'],
    ['a comment only', '# nothing here\n', 'a policy is a mapping of fields'],
    ['broken YAML', 'name: [web-servers\n  sourceRegion: }\n', 'not valid YAML or JSON'],
    ['broken JSON', '{"name": "web-servers",', 'not valid YAML or JSON'],
    ['a YAML list', '- name: web-servers\n- sourceRegion: us-east-1\n', 'a policy is a mapping of fields'],
    ['a plain string', 'just some words', 'a policy is a mapping of fields'],
    ['a number', '42', 'a policy is a mapping of fields'],
    ['duplicate keys', 'name: web\nsourceRegion: us-east-1\nname: db\n', 'Map keys must be unique'],
    ['duplicate JSON keys', '{"name": "web", "name": "db"}', 'Map keys must be unique'],
    ['two YAML documents', 'name: web\n---\nname: db\n', 'multiple documents'],
    ['text with a NUL byte', 'name: web\0servers\n', 'the file is not text'],
  ])('%s', (_what, text, message) => {
    const problems = expectProblems(parsePolicyText(text));
    expect(problems).toContainEqual({ path: '', message: expect.stringContaining(message) });
    for (const p of problems) expect(p.path).toBe('');
  });

  test('a YAML error names the line', () => {
    const problems = expectProblems(parsePolicyText('name: web\nname: db\n'));
    expect(problems[0]!.message).toMatch(/line 2/);
    // Only the first line of the YAML library's pretty error: no multi-line source excerpt.
    expect(problems[0]!.message).not.toContain('\n');
  });

  test('a byte-order mark at the start is accepted', () => {
    expect(expectOk(parsePolicyText(`\uFEFF${stringify(basePolicy())}`)).name).toBe('web-servers');
  });

  test('YAML anchors and aliases within limits work', () => {
    const text = 'name: &n web-servers\nsourceRegion: us-east-1\ntargets: { tags: { Policy: *n } }\ncopies: [{ region: eu-west-1 }]\n';
    expect(expectOk(parsePolicyText(text)).targets).toEqual({ tags: { Policy: 'web-servers' } });
  });

  test('an alias to an anchor that does not exist is a problem, not an exception', () => {
    const result = parsePolicyText('name: *nope\n');
    expect(result.ok).toBe(false);
  });

  test('an alias bomb is a problem, not an exception', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');
    const result = parsePolicyText(bomb);
    expect(result.ok).toBe(false);
  });

  test('validatePolicy refuses values that are not a mapping', () => {
    for (const input of [null, undefined, 'web', 3, ['a'], true]) {
      expect(expectProblems(validatePolicy(input))).toEqual([{ path: '', message: expect.stringContaining('a policy is a mapping') }]);
    }
  });
});

describe('loadPolicyFile', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ami-backup-policy-test-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('a missing file', () => {
    const file = join(dir, 'does-not-exist.yaml');
    const err = catchPolicyError(() => loadPolicyFile(file));
    expect(err.source).toBe(file);
    expect(err.problems).toEqual([{ path: '', message: 'cannot read the policy file: no such file' }]);
    expect(err.name).toBe('PolicyError');
    expect(err.message).toContain(file);
  });

  test('a file larger than 1 MiB is refused before it is read', () => {
    const file = join(dir, 'huge.yaml');
    try {
      writeFileSync(file, `${stringify(basePolicy())}# ${'x'.repeat(MAX_POLICY_BYTES)}\n`);
      const err = catchPolicyError(() => loadPolicyFile(file));
      expect(err.problems).toEqual([{ path: '', message: expect.stringContaining('a policy file is at most 1 MiB') }]);
      expect(err.problems[0]!.message).toMatch(/the file is 1\.0 MiB/);
    } finally {
      rmSync(file, { force: true });
    }
  });

  test('a 10 MB file is refused from its size at once, not read', () => {
    const file = join(dir, 'ten-mb.yaml');
    try {
      writeFileSync(file, Buffer.alloc(10 * 1024 * 1024, 'a: b\n'));
      const started = Date.now();
      const err = catchPolicyError(() => loadPolicyFile(file));
      expect(Date.now() - started).toBeLessThan(200);
      expect(err.problems).toEqual([
        { path: '', message: expect.stringMatching(/^the file is 10\.0 MiB; a policy file is at most 1 MiB/) },
      ]);
    } finally {
      rmSync(file, { force: true });
    }
  });

  test('a stream with no end (a device) is read only up to the limit', () => {
    const err = catchPolicyError(() => loadPolicyFile('/dev/zero'));
    expect(err.problems).toEqual([{ path: '', message: expect.stringContaining('the file is more than 1 MiB') }]);
  });

  test.each([
    ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256))],
    ['Latin-1 text (not UTF-8)', Buffer.from('name: caf\xe9\n', 'latin1')],
    ['UTF-16 text', Buffer.from('\ufeffname: web\n', 'utf16le')],
    ['a gzip header', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03])],
  ])('%s: "not text", before any YAML parsing', (what, bytes) => {
    const file = join(dir, `${what.replace(/\W/g, '-')}.bin`);
    writeFileSync(file, bytes);
    const err = catchPolicyError(() => loadPolicyFile(file));
    expect(err.problems).toEqual([{ path: '', message: expect.stringContaining('the file is not text') }]);
  });

  test('UTF-8 text with a byte-order mark and non-ASCII tag values is read', () => {
    const file = join(dir, 'utf8.yaml');
    writeFileSync(file, `\ufeff${stringify({ ...basePolicy(), targets: { tags: { Équipe: 'café' } } })}`);
    expect(loadPolicyFile(file).targets).toEqual({ tags: { Équipe: 'café' } });
  });

  test('a file of exactly 1 MiB is still read', () => {
    const file = join(dir, 'exactly.yaml');
    try {
      const head = `${stringify(basePolicy())}# `;
      writeFileSync(file, head + 'x'.repeat(MAX_POLICY_BYTES - head.length - 1) + '\n');
      expect(loadPolicyFile(file).name).toBe('web-servers');
    } finally {
      rmSync(file, { force: true });
    }
  });

  test.each([
    ['empty', '', 'the file is empty'],
    ['whitespace', '\n\n   \n', 'the file is empty'],
    ['not YAML', 'name: [web\n  x: }\n', 'not valid YAML or JSON'],
    ['a list', '- a\n- b\n', 'a policy is a mapping'],
    ['duplicate keys', 'name: a\nname: b\n', 'Map keys must be unique'],
    ['binary', 'name: a\0\n', 'the file is not text'],
  ])('a file that is %s', (what, text, message) => {
    const file = join(dir, `${what.replace(/\W/g, '-')}.yaml`);
    writeFileSync(file, text);
    const err = catchPolicyError(() => loadPolicyFile(file));
    expect(err.problems).toContainEqual({ path: '', message: expect.stringContaining(message) });
  });

  test.each([
    ['empty.yaml', 'the file is empty'],
    ['list.yaml', 'a policy is a mapping'],
    ['duplicate-keys.yaml', 'not valid YAML or JSON: Map keys must be unique at line 7'],
    ['not-yaml.txt', 'not valid YAML or JSON'],
  ])('fixture bad/%s', (name, message) => {
    const err = catchPolicyError(() => loadPolicyFile(fixture(`bad/${name}`)));
    expect(err.problems).toContainEqual({ path: '', message: expect.stringContaining(message) });
    for (const p of err.problems) expect(p.path).toBe('');
  });

  test('fixture bad/unquoted-boolean-tag.yaml', () => {
    const err = catchPolicyError(() => loadPolicyFile(fixture('bad/unquoted-boolean-tag.yaml')));
    expect(err.problems).toEqual([{ path: 'targets.tags.Backup', message: expect.stringContaining('quote them, e.g. Backup: "true"') }]);
  });

  test('a directory is reported as a PolicyError', () => {
    const err = catchPolicyError(() => loadPolicyFile(dir));
    expect(err.problems).toEqual([{ path: '', message: expect.stringContaining('cannot read the policy file') }]);
  });

  test('a file with an alias bomb is reported as a PolicyError', () => {
    const file = join(dir, 'bomb.yaml');
    const line = (anchor: string, alias: string) => `${anchor}: &${anchor} [${Array(10).fill(`*${alias}`).join(', ')}]`;
    writeFileSync(file, ['a: &a [x, x, x, x, x, x, x, x, x, x]', line('b', 'a'), line('c', 'b'), line('d', 'c')].join('\n'));
    catchPolicyError(() => loadPolicyFile(file));
  });
});

describe('formatting helpers', () => {
  test('formatPath', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['name'])).toBe('name');
    expect(formatPath(['copies', 0, 'region'])).toBe('copies[0].region');
    expect(formatPath(['targets', 'instanceIds', 12])).toBe('targets.instanceIds[12]');
    expect(formatPath(['copies', 2, 'retention', 'keepLast'])).toBe('copies[2].retention.keepLast');
  });

  test('formatProblems indents each problem and omits an empty path', () => {
    expect(
      formatProblems([
        { path: '', message: 'the file is empty' },
        { path: 'copies[0].region', message: 'bad' },
      ]),
    ).toBe('  - the file is empty\n  - copies[0].region: bad');
  });
});
