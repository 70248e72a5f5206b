import {
  describeTargets,
  amiName,
  backupTags,
  instanceWorkflowId,
  isRunId,
  runIdFor,
  ssmParameterName,
  TAG_INSTANCE_ID,
  TAG_POLICY,
  TAG_RUN,
  TAG_SOURCE_IMAGE,
} from '../../src/shared/naming';
import { DEFAULT_SSM_PARAMETER, POLICY_NAME_RE } from '../../src/policy/schema';

const INSTANCE = 'i-0123456789abcdef0';

describe('runIdFor', () => {
  test('formats as yyyymmddThhmmssZ', () => {
    expect(runIdFor(new Date(Date.UTC(2024, 0, 2, 3, 4, 5)))).toBe('20240102T030405Z');
    expect(runIdFor(new Date(Date.UTC(2031, 11, 31, 23, 59, 59)))).toBe('20311231T235959Z');
  });

  test('uses UTC whatever the offset the date was written with', () => {
    expect(runIdFor(new Date('2024-06-01T12:30:00+02:00'))).toBe('20240601T103000Z');
    expect(runIdFor(new Date('2024-06-01T00:30:00-05:00'))).toBe('20240601T053000Z');
  });

  test('drops milliseconds rather than rounding them', () => {
    expect(runIdFor(new Date('2024-12-31T23:59:59.999Z'))).toBe('20241231T235959Z');
    expect(runIdFor(new Date('2024-03-10T10:00:00.500Z'))).toBe('20240310T100000Z');
    expect(runIdFor(new Date('2024-03-10T10:00:00.000Z'))).toBe('20240310T100000Z');
  });

  test('two instants in the same second give the same run ID', () => {
    expect(runIdFor(new Date(1_700_000_000_001))).toBe(runIdFor(new Date(1_700_000_000_999)));
    expect(runIdFor(new Date(1_700_000_000_999))).not.toBe(runIdFor(new Date(1_700_000_001_000)));
  });

  test('sorts in time order as a string', () => {
    const dates = [new Date('2024-01-09T23:00:00Z'), new Date('2024-01-10T01:00:00Z'), new Date('2025-01-01T00:00:00Z')];
    const ids = dates.map(runIdFor);
    expect([...ids].sort()).toEqual(ids);
  });

  test('every run ID it makes passes isRunId', () => {
    for (let ms = Date.UTC(2020, 0, 1); ms < Date.UTC(2030, 0, 1); ms += 86_400_000 * 37 + 3_723_456) {
      const id = runIdFor(new Date(ms));
      expect(id).toMatch(/^\d{8}T\d{6}Z$/);
      expect(isRunId(id)).toBe(true);
    }
  });
});

describe('isRunId', () => {
  test.each(['20240102T030405Z', '19991231T235959Z'])('accepts %s', (text) => {
    expect(isRunId(text)).toBe(true);
  });

  test.each([
    '',
    '2024-01-02T03:04:05Z',
    '20240102T030405',
    '20240102T030405.123Z',
    '20240102t030405z',
    '20240102 030405Z',
    '2024010T030405Z',
    ' 20240102T030405Z',
    '20240102T030405Z\n',
  ])('refuses %j', (text) => {
    expect(isRunId(text)).toBe(false);
  });
});

describe('amiName', () => {
  test('is {policy}-{instanceId}-{runId}', () => {
    expect(amiName('web-servers', INSTANCE, '20240102T030405Z')).toBe('web-servers-i-0123456789abcdef0-20240102T030405Z');
  });

  test('the longest policy name still gives a valid AMI name (3 to 128 allowed characters)', () => {
    const policy = 'p'.repeat(64);
    expect(POLICY_NAME_RE.test(policy)).toBe(true);
    const name = amiName(policy, INSTANCE, '20240102T030405Z');
    expect(name.length).toBeLessThanOrEqual(128);
    expect(name).toMatch(/^[a-zA-Z0-9()[\] ./\-'@_]{3,128}$/);
  });

  test('is deterministic and differs per run', () => {
    expect(amiName('web', INSTANCE, '20240102T030405Z')).toBe(amiName('web', INSTANCE, '20240102T030405Z'));
    expect(amiName('web', INSTANCE, '20240102T030405Z')).not.toBe(amiName('web', INSTANCE, '20240102T030406Z'));
  });
});

describe('instanceWorkflowId', () => {
  test('is ami-backup/{policy}/{instanceId}', () => {
    expect(instanceWorkflowId('web-servers', INSTANCE)).toBe('ami-backup/web-servers/i-0123456789abcdef0');
  });

  test('does not depend on the run', () => {
    expect(instanceWorkflowId('db', 'i-0abcdef1')).toBe('ami-backup/db/i-0abcdef1');
    expect(instanceWorkflowId('db', 'i-0abcdef1')).not.toBe(instanceWorkflowId('web', 'i-0abcdef1'));
  });
});

describe('ssmParameterName', () => {
  const vars = { policy: 'web-servers', instanceId: INSTANCE, sourceRegion: 'us-east-1' };

  test('the default template', () => {
    expect(ssmParameterName(DEFAULT_SSM_PARAMETER, vars)).toBe('/ami-backup/web-servers/i-0123456789abcdef0/latest');
  });

  test('every placeholder, each used more than once', () => {
    expect(ssmParameterName('/b/{sourceRegion}/{policy}/{instanceId}/{policy}-{instanceId}-{sourceRegion}', vars)).toBe(
      '/b/us-east-1/web-servers/i-0123456789abcdef0/web-servers-i-0123456789abcdef0-us-east-1',
    );
  });

  test('a template without placeholders is returned as is', () => {
    expect(ssmParameterName('/fixed/name', vars)).toBe('/fixed/name');
  });

  test('text that only looks like a placeholder is left alone', () => {
    expect(ssmParameterName('/b/{Policy}/{instanceid}/{instanceId}', vars)).toBe('/b/{Policy}/{instanceid}/i-0123456789abcdef0');
  });

  test('values are inserted literally, without replacement patterns', () => {
    expect(ssmParameterName('/b/{policy}', { ...vars, policy: "$&-$1-$'" })).toBe("/b/$&-$1-$'");
  });
});

describe('backupTags', () => {
  const base = { policy: 'web-servers', instanceId: INSTANCE, runId: '20240102T030405Z' };

  test('the tag keys are the ones DESIGN.md names', () => {
    expect([TAG_POLICY, TAG_INSTANCE_ID, TAG_RUN, TAG_SOURCE_IMAGE]).toEqual([
      'ami-backup:policy',
      'ami-backup:instance-id',
      'ami-backup:run',
      'ami-backup:source-image',
    ]);
  });

  test('without a Name or a source image: the three identifying tags only', () => {
    expect(backupTags(base)).toEqual([
      { Key: 'ami-backup:policy', Value: 'web-servers' },
      { Key: 'ami-backup:instance-id', Value: INSTANCE },
      { Key: 'ami-backup:run', Value: '20240102T030405Z' },
    ]);
  });

  test('with the instance Name', () => {
    expect(backupTags({ ...base, instanceName: 'web-1' })).toEqual([
      { Key: 'ami-backup:policy', Value: 'web-servers' },
      { Key: 'ami-backup:instance-id', Value: INSTANCE },
      { Key: 'ami-backup:run', Value: '20240102T030405Z' },
      { Key: 'Name', Value: 'web-1' },
    ]);
  });

  test('on a copy: with the source image and the Name', () => {
    expect(backupTags({ ...base, instanceName: 'web-1', sourceImageId: 'ami-0123456789abcdef0' })).toEqual([
      { Key: 'ami-backup:policy', Value: 'web-servers' },
      { Key: 'ami-backup:instance-id', Value: INSTANCE },
      { Key: 'ami-backup:run', Value: '20240102T030405Z' },
      { Key: 'ami-backup:source-image', Value: 'ami-0123456789abcdef0' },
      { Key: 'Name', Value: 'web-1' },
    ]);
  });

  test('on a copy of an instance without a Name', () => {
    const tags = backupTags({ ...base, sourceImageId: 'ami-0123456789abcdef0' });
    expect(tags).toContainEqual({ Key: 'ami-backup:source-image', Value: 'ami-0123456789abcdef0' });
    expect(tags.map((t) => t.Key)).not.toContain('Name');
    expect(tags).toHaveLength(4);
  });

  test('an empty Name is not written as an empty tag', () => {
    expect(backupTags({ ...base, instanceName: '' }).map((t) => t.Key)).not.toContain('Name');
  });

  test('every key is unique', () => {
    const keys = backupTags({ ...base, instanceName: 'web-1', sourceImageId: 'ami-0123456789abcdef0' }).map((t) => t.Key);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('describeTargets', () => {
  it('names the tags, or counts the listed instances', () => {
    expect(describeTargets({ tags: { Backup: 'true', Env: 'prod' } })).toBe('instances tagged Backup=true, Env=prod');
    expect(describeTargets({ instanceIds: ['i-0123456789abcdef0'] })).toBe('1 listed instance');
    expect(describeTargets({ instanceIds: ['i-0123456789abcdef0', 'i-0123456789abcdef1'] })).toBe('2 listed instances');
  });
});
