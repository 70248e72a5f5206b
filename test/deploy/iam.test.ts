/**
 * deploy/*.json, the IAM documents users copy: well-formed, least privilege, and complete for the
 * code as it is. The actions are found in the source (awsActions.ts), so an activity that starts
 * calling a new AWS API fails this test until the worker policy allows it.
 *
 * What this cannot do offline: evaluate the policies as AWS does. There is no IAM policy simulator
 * here (it is an AWS API, iam:SimulateCustomPolicy); these checks are structural. The resource
 * types below come from the Service Authorization Reference for EC2 and SSM.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_SSM_PARAMETER } from '../../src/policy/schema';
import { TAG_INSTANCE_ID, TAG_POLICY, backupTags, ssmParameterName } from '../../src/shared/naming';
import { awsActionsReachableFrom, type FoundAction } from './awsActions';

const ROOT = path.resolve(__dirname, '../..');

type Values = string | string[];
interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: Record<string, Values> | '*';
  Action?: Values;
  NotAction?: Values;
  Resource?: Values;
  NotResource?: Values;
  Condition?: Record<string, Record<string, Values>>;
}
interface PolicyDocument {
  Version: string;
  Statement: Statement[];
}

const load = (name: string): PolicyDocument => JSON.parse(readFileSync(path.join(ROOT, 'deploy', name), 'utf8')) as PolicyDocument;
const worker = load('iam-policy.json');
const operator = load('operator-policy.json');
const trust = load('trust-policy.json');
const DOCUMENTS: Array<[string, PolicyDocument]> = [
  ['iam-policy.json', worker],
  ['operator-policy.json', operator],
  ['trust-policy.json', trust],
];

const list = (v: Values | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** IAM wildcards: `*` any run of characters, `?` one character. Actions compare case-insensitively. */
function wildcard(pattern: string, value: string, ignoreCase = false): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, ignoreCase ? 'i' : '').test(value);
}

const allowing = (policy: PolicyDocument, action: string) =>
  policy.Statement.filter((s) => s.Effect === 'Allow' && list(s.Action).some((a) => wildcard(a, action, true)));

/** A condition on `key` (any operator), as [operator, values] pairs; keys compare case-insensitively. */
function conditionsOn(statement: Statement, key: string): Array<[string, string[]]> {
  const found: Array<[string, string[]]> = [];
  for (const [operator, block] of Object.entries(statement.Condition ?? {})) {
    for (const [k, v] of Object.entries(block)) if (k.toLowerCase() === key.toLowerCase()) found.push([operator, list(v)]);
  }
  return found;
}

/** The condition makes the key mandatory: StringEquals/StringLike (never …IfExists) or Null "false". */
function requiresKey(statement: Statement, key: string): boolean {
  return conditionsOn(statement, key).some(
    ([operator, values]) =>
      (['StringEquals', 'StringLike'].includes(operator) && values.length > 0 && values.every((v) => v !== '')) ||
      (operator === 'Null' && values.every((v) => v === 'false')),
  );
}

/** Sample ARNs of the resource types the code acts on. */
const SAMPLE_ARN = {
  instance: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0',
  image: 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0',
  snapshot: 'arn:aws:ec2:eu-west-1::snapshot/snap-0123456789abcdef0',
  // The parameter the default ssmParameter template names (its leading "/" is not repeated in the ARN).
  parameter: `arn:aws:ssm:eu-west-1:111122223333:parameter${ssmParameterName(DEFAULT_SSM_PARAMETER, {
    policy: 'web-servers',
    instanceId: 'i-0123456789abcdef0',
    sourceRegion: 'us-east-1',
  })}`,
};
type ResourceType = keyof typeof SAMPLE_ARN;

/**
 * The resource types each action needs a permission on (Service Authorization Reference: CreateImage
 * needs the instance, the new image and its snapshots; CopyImage the images and snapshots). An
 * action the code calls that is in neither table fails the test: decide how to scope it, then add it.
 */
const RESOURCE_TYPES: Record<string, ResourceType[]> = {
  'ec2:CreateImage': ['instance', 'image', 'snapshot'],
  'ec2:CopyImage': ['image', 'snapshot'],
  'ec2:CreateTags': ['image', 'snapshot'],
  'ec2:EnableImageDeprecation': ['image'],
  'ec2:DeregisterImage': ['image'],
  'ec2:DeleteSnapshot': ['snapshot'],
  'ssm:GetParameter': ['parameter'],
  'ssm:GetParameters': ['parameter'],
  'ssm:PutParameter': ['parameter'],
};
/** Actions with no resource-level permissions: only Resource "*" grants them. */
const UNSCOPED = new Set(['ec2:DescribeInstances', 'ec2:DescribeImages', 'ec2:DescribeSnapshots']);
/** Scoped to the resources named in the policy (a role, KMS keys): never "*". */
const NAMED_RESOURCES = /^(sts:AssumeRole|kms:.+)$/;

const tsFiles = (dir: string) =>
  readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(ROOT, dir, f));

/**
 * The worker's identity runs the activities and `ami-backup check` (which proves the worker's
 * permissions with DryRun calls: a DryRun needs the very permission it tests, so check belongs
 * to the worker policy, not the read-only operator one).
 */
const CHECK = path.join(ROOT, 'src/cli/check.ts');
const workerEntries = [...tsFiles('src/activities'), ...(existsSync(CHECK) ? [CHECK] : [])];
const operatorEntries = ['src/cli/plan.ts', 'src/cli/latest.ts'].map((f) => path.join(ROOT, f));

let workerActions: FoundAction[];
let operatorActions: FoundAction[];
beforeAll(() => {
  workerActions = awsActionsReachableFrom(ROOT, workerEntries);
  operatorActions = awsActionsReachableFrom(ROOT, operatorEntries);
});

const missingFrom = (policy: PolicyDocument, actions: FoundAction[]) =>
  actions.filter((a) => allowing(policy, a.action).length === 0).map((a) => `${a.action} (called at ${a.at})`);

describe('deploy/*.json IAM documents', () => {
  test.each(DOCUMENTS)('%s is a policy document: Version 2012-10-17, statements with unique Sids', (_name, doc) => {
    expect(doc.Version).toBe('2012-10-17');
    expect(Array.isArray(doc.Statement) && doc.Statement.length > 0).toBe(true);
    const sids = doc.Statement.map((s) => s.Sid);
    for (const s of doc.Statement) {
      expect(s.Sid).toMatch(/^[A-Za-z0-9]+$/);
      expect(['Allow', 'Deny']).toContain(s.Effect);
      expect(list(s.Action).length).toBeGreaterThan(0);
      expect(s.NotAction).toBeUndefined();
      expect(s.NotResource).toBeUndefined();
    }
    expect(new Set(sids).size).toBe(sids.length);
  });

  test.each(DOCUMENTS)('%s grants no "*" action and no whole service ("ec2:*")', (_name, doc) => {
    const actions = doc.Statement.flatMap((s) => list(s.Action));
    expect(actions.filter((a) => a === '*' || /^[a-z0-9-]+:\*$/i.test(a))).toEqual([]);
  });

  test('the scan finds the calls it must (a scan that finds nothing would prove nothing)', () => {
    const worker = workerActions.map((a) => a.action);
    for (const a of ['ec2:CreateImage', 'ec2:CopyImage', 'ec2:CreateTags', 'ec2:DeregisterImage', 'ssm:PutParameter', 'sts:AssumeRole']) {
      expect(worker).toContain(a);
    }
    const operator = operatorActions.map((a) => a.action);
    expect(operator).toEqual(
      expect.arrayContaining(['ec2:DescribeInstances', 'ec2:DescribeImages', 'ssm:GetParameters', 'sts:AssumeRole']),
    );
    // plan imports helpers from activities/retention.ts, not its DeregisterImage / DeleteSnapshot.
    expect(operator.filter((a) => !/^(ec2:Describe|ssm:Get|sts:AssumeRole$)/.test(a))).toEqual([]);
  });

  test('the worker policy allows every AWS action the activities (and `check`) call', () => {
    expect(missingFrom(worker, workerActions)).toEqual([]);
  });

  test('the operator policy allows every AWS action `plan` and `latest` call, and only reads', () => {
    expect(missingFrom(operator, operatorActions)).toEqual([]);
    const granted = operator.Statement.flatMap((s) => list(s.Action));
    expect(granted.filter((a) => !/^(ec2:Describe[A-Za-z]+|ssm:Get[A-Za-z]+|sts:AssumeRole)$/.test(a))).toEqual([]);
  });

  test.each([
    ['iam-policy.json', worker],
    ['operator-policy.json', operator],
  ] as const)(
    '%s: each action is allowed on every resource type it needs, and "*" only where EC2 has no resource-level permissions',
    (_n, doc) => {
      const problems: string[] = [];
      for (const action of new Set(doc.Statement.flatMap((s) => list(s.Action)))) {
        const statements = allowing(doc, action);
        const types = RESOURCE_TYPES[action];
        if (UNSCOPED.has(action)) {
          if (!statements.some((s) => list(s.Resource).includes('*'))) problems.push(`${action} needs Resource "*"`);
        } else if (types) {
          for (const type of types) {
            if (!statements.some((s) => list(s.Resource).some((r) => wildcard(r, SAMPLE_ARN[type])))) {
              problems.push(`${action} is not allowed on ${type} (${SAMPLE_ARN[type]})`);
            }
          }
        } else if (!NAMED_RESOURCES.test(action)) {
          problems.push(`${action}: say in this test which resources it acts on`);
        }
        for (const s of statements) {
          if (!UNSCOPED.has(action) && list(s.Resource).includes('*')) problems.push(`${s.Sid}: ${action} on Resource "*"`);
        }
      }
      expect(problems).toEqual([]);
    },
  );

  test('CreateImage: on instances only with the backup tag (aws:ResourceTag)', () => {
    const onInstances = allowing(worker, 'ec2:CreateImage').filter((s) => list(s.Resource).some((r) => wildcard(r, SAMPLE_ARN.instance)));
    expect(onInstances.length).toBeGreaterThan(0);
    for (const s of onInstances) {
      const tagConditions = Object.values(s.Condition ?? {}).flatMap((block) => Object.keys(block));
      expect(tagConditions.some((k) => k.startsWith('aws:ResourceTag/'))).toBe(true);
    }
  });

  test('CreateTags: at creation (ec2:CreateAction), or only with ami-backup tag keys and the ami-backup:policy tag in the request', () => {
    const keysTheCodeWrites = backupTags({ policy: 'p', instanceId: 'i-1', runId: 'r', instanceName: 'n', sourceImageId: 'ami-1' }).map(
      (t) => t.Key,
    );
    const statements = allowing(worker, 'ec2:CreateTags');
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) {
      const createAction = conditionsOn(s, 'ec2:CreateAction');
      if (createAction.length > 0) {
        expect(createAction.flatMap(([, v]) => v).sort()).toEqual(['CopyImage', 'CreateImage']);
        continue;
      }
      expect(requiresKey(s, `aws:RequestTag/${TAG_POLICY}`)).toBe(true);
      const tagKeys = conditionsOn(s, 'aws:TagKeys');
      expect(tagKeys.map(([op]) => op)).toEqual(['ForAllValues:StringEquals']);
      const allowed = tagKeys[0]![1];
      expect(allowed.every((k) => k.startsWith('ami-backup:') || k === 'Name')).toBe(true);
      expect(allowed).toEqual(expect.arrayContaining(keysTheCodeWrites));
    }
    // Tagging after creation by ID (copyImage re-tags its copy, tagSnapshots tags snapshots): images
    // only when they already carry the tool's tag; snapshots also when they carry none yet.
    const images = statements.filter(
      (s) => conditionsOn(s, 'ec2:CreateAction').length === 0 && list(s.Resource).some((r) => wildcard(r, SAMPLE_ARN.image)),
    );
    for (const s of images) expect(requiresKey(s, `aws:ResourceTag/${TAG_POLICY}`)).toBe(true);
  });

  test('Delete*, Deregister* and EnableImageDeprecation only on resources tagged ami-backup:policy (aws:ResourceTag, never …IfExists)', () => {
    const destructive = worker.Statement.filter((s) =>
      list(s.Action).some((a) => /^ec2:(Delete|Deregister)/i.test(a) || a === 'ec2:EnableImageDeprecation'),
    );
    expect(destructive.length).toBeGreaterThanOrEqual(3);
    for (const s of destructive) {
      expect(s.Effect).toBe('Allow');
      expect(requiresKey(s, `aws:ResourceTag/${TAG_POLICY}`)).toBe(true);
      expect(requiresKey(s, `aws:ResourceTag/${TAG_INSTANCE_ID}`)).toBe(true);
      expect(Object.keys(s.Condition ?? {}).filter((op) => op.endsWith('IfExists'))).toEqual([]);
    }
  });

  test.each([
    ['iam-policy.json', worker],
    ['operator-policy.json', operator],
  ] as const)('%s: SSM only under parameter/ami-backup/, where the default ssmParameter is', (_n, doc) => {
    const ssm = doc.Statement.filter((s) => list(s.Action).some((a) => a.startsWith('ssm:')));
    expect(ssm.length).toBeGreaterThan(0);
    for (const s of ssm) {
      for (const r of list(s.Resource)) expect(r).toMatch(/^arn:aws:ssm:[^:]*:[^:]*:parameter\/ami-backup\//);
      expect(list(s.Resource).some((r) => wildcard(r, SAMPLE_ARN.parameter))).toBe(true);
    }
  });

  test('KMS: grants only for AWS resources, key use only through EC2, on named keys', () => {
    const kms = worker.Statement.filter((s) => list(s.Action).some((a) => a.startsWith('kms:')));
    expect(kms.flatMap((s) => list(s.Action)).sort()).toEqual(
      ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'].sort(),
    );
    // Keys are named; only DescribeKey (metadata, what `check` reads) covers every key of the account,
    // since the default EBS key (alias/aws/ebs) has no ARN known in advance.
    for (const s of kms) {
      const pattern =
        list(s.Action).join() === 'kms:DescribeKey'
          ? /^arn:aws:kms:\*:\d{12}:key\/\*$/
          : /^arn:aws:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/;
      for (const r of list(s.Resource)) expect(r).toMatch(pattern);
    }
    for (const s of allowing(worker, 'kms:CreateGrant')) expect(conditionsOn(s, 'kms:GrantIsForAWSResource')).toEqual([['Bool', ['true']]]);
    for (const s of allowing(worker, 'kms:Decrypt'))
      expect(conditionsOn(s, 'kms:ViaService')).toEqual([['StringLike', ['ec2.*.amazonaws.com']]]);
  });

  test("sts:AssumeRole names the role (the policy's roleArn), and the trust policy lets the worker assume it with an ExternalId", () => {
    for (const doc of [worker, operator]) {
      for (const s of allowing(doc, 'sts:AssumeRole'))
        for (const r of list(s.Resource)) expect(r).toMatch(/^arn:aws:iam::\d{12}:role\/.+$/);
    }
    const [statement, ...rest] = trust.Statement;
    expect(rest).toEqual([]);
    expect(statement!.Effect).toBe('Allow');
    expect(list(statement!.Action)).toEqual(['sts:AssumeRole']);
    expect(statement!.Principal).toEqual({ AWS: expect.stringMatching(/^arn:aws:iam::\d{12}:role\/.+$/) });
    expect(requiresKey(statement!, 'sts:ExternalId')).toBe(true);
  });
});
