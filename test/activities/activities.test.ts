/**
 * The activities against a real AWS wire protocol: moto in server mode. Each test makes its own
 * instances; requests are recorded to check what moto ignores (encryption, KMS key, tokens).
 */
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { copyImage, copyClientToken, type CopyImageInput } from '../../src/activities/copyImage';
import { createImage } from '../../src/activities/createImage';
import { getImageState } from '../../src/activities/getImageState';
import { setSsmParam } from '../../src/activities/setSsmParam';
import { tagSnapshots } from '../../src/activities/tagSnapshots';
import { TAG_INSTANCE_ID, TAG_POLICY, TAG_RUN, TAG_SOURCE_IMAGE, amiName, backupTags } from '../../src/shared/naming';
import { seedInstances } from '../../scripts/seed';
import { startMoto, type Moto } from '../../scripts/stack';
import { createAwsClients } from '../../src/activities/aws';
import { awsError, failureOf, recordingAws, type TestAws, useMoto } from '../helpers/aws';
import { startRecordingProxy } from '../helpers/recordingProxy';

const SRC = 'us-east-1';
const DR = 'eu-west-1';
const POLICY = 'web-servers';

let moto: Moto;
let t: TestAws;
let ec2: EC2Client;
let ec2Dr: EC2Client;

beforeAll(async () => {
  moto = await startMoto();
  useMoto(moto.endpoint);
  ec2 = new EC2Client({ region: SRC });
  ec2Dr = new EC2Client({ region: DR });
});

afterAll(async () => {
  ec2?.destroy();
  ec2Dr?.destroy();
  await moto?.stop();
});

beforeEach(() => {
  t = recordingAws();
});

const tagsOf = (tags: { Key?: string; Value?: string }[] | undefined) => Object.fromEntries((tags ?? []).map((x) => [x.Key, x.Value]));

describe('createImage', () => {
  it('creates an image named for the run, tagged for the policy and instance, with NoReboot as asked', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' }, namePrefix: 'web' });
    const out = await createImage(t.aws, {
      policy: POLICY,
      region: SRC,
      instanceId: instanceId!,
      runId: '20261203T010203Z',
      noReboot: true,
    });

    expect(out).toMatchObject({ name: amiName(POLICY, instanceId!, '20261203T010203Z'), instanceName: 'web-1', reused: false });
    const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [out.imageId] }))).Images![0]!;
    expect(image.Name).toBe(out.name);
    expect(tagsOf(image.Tags)).toEqual({
      [TAG_POLICY]: POLICY,
      [TAG_INSTANCE_ID]: instanceId,
      [TAG_RUN]: '20261203T010203Z',
      Name: 'web-1',
    });
    const create = t.requests.find((r) => r.command === 'CreateImageCommand')!;
    expect(create.region).toBe(SRC);
    expect(create.body).toContain('NoReboot=true');
    expect(create.body).toContain(`InstanceId=${instanceId}`);
  });

  it('is idempotent: a retry of the same run returns the image the first attempt made', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    const input = { policy: POLICY, region: SRC, instanceId: instanceId!, runId: '20261203T020000Z', noReboot: false };
    const first = await createImage(t.aws, input);
    const second = await createImage(t.aws, input);

    expect(second).toMatchObject({ imageId: first.imageId, reused: true });
    const named = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [first.name] }] }));
    expect(named.Images).toHaveLength(1);
    expect(t.requests.filter((r) => r.command === 'CreateImageCommand')).toHaveLength(1);
    expect(t.requests.find((r) => r.command === 'CreateImageCommand')!.body).toContain('NoReboot=false');
  });

  it('answers InvalidAMIName.Duplicate with the existing image when the name look-up lagged behind', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    const input = { policy: POLICY, region: SRC, instanceId: instanceId!, runId: '20261203T031500Z', noReboot: true };
    const first = await createImage(t.aws, input);
    // EC2 is eventually consistent: the next attempt's look-up by name misses the image, and
    // CreateImage then refuses the name as a duplicate (moto does not enforce unique names).
    t.setFault((command) =>
      command === 'CreateImageCommand'
        ? awsError('InvalidAMIName.Duplicate', `AMI name ${first.name} is already in use by AMI ${first.imageId}`)
        : undefined,
    );
    const client = t.aws.ec2(SRC);
    const send = client.send.bind(client);
    let missed = false;
    client.send = ((command: { constructor: { name: string }; input: { Filters?: { Name: string }[] } }) => {
      if (!missed && command.constructor.name === 'DescribeImagesCommand' && command.input.Filters?.[0]?.Name === 'name') {
        missed = true;
        return Promise.resolve({ Images: [] });
      }
      return send(command as never);
    }) as typeof client.send;
    try {
      await expect(createImage(t.aws, input)).resolves.toMatchObject({ imageId: first.imageId, reused: true });
      expect(missed).toBe(true);
    } finally {
      client.send = send;
    }
  });

  it('fails at once, naming the instance and region, for an instance that does not exist', async () => {
    const failure = await failureOf(
      createImage(t.aws, { policy: POLICY, region: SRC, instanceId: 'i-0123456789abcdef0', runId: '20261203T040000Z', noReboot: true }),
    );
    expect(failure.nonRetryable).toBe(true);
    expect(failure.type).toMatch(/^InvalidInstanceID\./);
    expect(failure.message).toContain('i-0123456789abcdef0');
    expect(failure.message).toContain(SRC);
    expect(t.requests.filter((r) => r.command === 'CreateImageCommand')).toHaveLength(0);
  });

  it('refuses a terminated instance without creating anything', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId!] }));
    const failure = await failureOf(
      createImage(t.aws, { policy: POLICY, region: SRC, instanceId: instanceId!, runId: '20261203T050000Z', noReboot: true }),
    );
    expect(failure).toMatchObject({ type: 'InstanceTerminated', nonRetryable: true });
    expect(failure.message).toContain(instanceId);
    expect(t.requests.filter((r) => r.command === 'CreateImageCommand')).toHaveLength(0);
  });

  it('turns throttling into a retryable failure that keeps the AWS code', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    t.setFault((command) =>
      command === 'CreateImageCommand' ? awsError('RequestLimitExceeded', 'Request limit exceeded.', 503) : undefined,
    );
    const failure = await failureOf(
      createImage(t.aws, { policy: POLICY, region: SRC, instanceId: instanceId!, runId: '20261203T060000Z', noReboot: true }),
    );
    expect(failure).toMatchObject({ type: 'RequestLimitExceeded', nonRetryable: false });
  });
});

describe('roleArn', () => {
  it("assumes the policy's role through STS and signs the EC2 calls with the role's credentials", async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    const proxy = await startRecordingProxy(moto.endpoint);
    process.env.AWS_ENDPOINT_URL = proxy.endpoint;
    try {
      const aws = createAwsClients();
      const roleArn = 'arn:aws:iam::123456789012:role/ami-backup';
      const out = await createImage(aws, {
        policy: POLICY,
        region: SRC,
        instanceId: instanceId!,
        runId: '20261203T065000Z',
        noReboot: true,
        roleArn,
      });
      expect(out.reused).toBe(false);

      const assume = proxy.requests.filter((r) => r.action === 'AssumeRole');
      expect(assume).toHaveLength(1);
      expect(assume[0]!.body).toContain(`RoleArn=${encodeURIComponent(roleArn)}`);
      expect(assume[0]!.body).toContain('RoleSessionName=ami-backup');
      expect(assume[0]!.accessKeyId).toBe('testing');
      const create = proxy.requests.find((r) => r.action === 'CreateImage')!;
      expect(create.accessKeyId).not.toBe('testing');
      expect(create.accessKeyId).toMatch(/^ASIA/);
      // The same client (and its cached credentials) serves the next call: no second AssumeRole.
      await getImageState(aws, { region: SRC, imageId: out.imageId, roleArn });
      expect(proxy.requests.filter((r) => r.action === 'AssumeRole')).toHaveLength(1);
    } finally {
      process.env.AWS_ENDPOINT_URL = moto.endpoint;
      await proxy.stop();
    }
  });
});

describe('getImageState', () => {
  it('reports an available image', async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    const { imageId } = await createImage(t.aws, {
      policy: POLICY,
      region: SRC,
      instanceId: instanceId!,
      runId: '20261203T070000Z',
      noReboot: true,
    });
    await expect(getImageState(t.aws, { region: SRC, imageId })).resolves.toEqual({ imageId, state: 'available' });
  });

  it('treats an image EC2 does not know (yet) as pending, not as an error', async () => {
    await expect(getImageState(t.aws, { region: SRC, imageId: 'ami-0123456789abcdef0' })).resolves.toEqual({
      imageId: 'ami-0123456789abcdef0',
      state: 'pending',
      notFound: true,
    });
  });

  it('passes on the state reason of a failed image', async () => {
    const client = t.aws.ec2(SRC);
    const send = client.send.bind(client);
    client.send = (() =>
      Promise.resolve({
        Images: [
          {
            ImageId: 'ami-0aaaaaaaaaaaaaaaa',
            State: 'failed',
            StateReason: { Code: 'Server.InternalError', Message: 'Snapshot creation failed' },
          },
        ],
      })) as never;
    try {
      await expect(getImageState(t.aws, { region: SRC, imageId: 'ami-0aaaaaaaaaaaaaaaa' })).resolves.toEqual({
        imageId: 'ami-0aaaaaaaaaaaaaaaa',
        state: 'failed',
        reason: 'Snapshot creation failed',
      });
    } finally {
      client.send = send;
    }
  });
});

describe('tagSnapshots', () => {
  it("puts the backup's tags on the image's snapshots", async () => {
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
    const runId = '20261203T080000Z';
    const { imageId } = await createImage(t.aws, { policy: POLICY, region: SRC, instanceId: instanceId!, runId, noReboot: true });
    const tags = backupTags({ policy: POLICY, instanceId: instanceId!, runId, instanceName: 'web-1' });
    const { snapshotIds } = await tagSnapshots(t.aws, { region: SRC, imageId, tags });

    expect(snapshotIds.length).toBeGreaterThan(0);
    const snaps = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }));
    for (const snap of snaps.Snapshots!)
      expect(tagsOf(snap.Tags)).toMatchObject({ [TAG_POLICY]: POLICY, [TAG_RUN]: runId, [TAG_INSTANCE_ID]: instanceId });
  });
});

/** A source image made by createImage, and the copyImage input for it. */
async function sourceImage(runId: string) {
  const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' } });
  const created = await createImage(t.aws, { policy: POLICY, region: SRC, instanceId: instanceId!, runId, noReboot: true });
  const tags = [...backupTags({ policy: POLICY, instanceId: instanceId!, runId }), { Key: TAG_SOURCE_IMAGE, Value: created.imageId }];
  const copyInput: CopyImageInput = {
    policy: POLICY,
    instanceId: instanceId!,
    runId,
    sourceRegion: SRC,
    sourceImageId: created.imageId,
    region: DR,
    name: created.name,
    tags,
  };
  return { instanceId: instanceId!, runId, tags, copyInput, ...created };
}

describe('copyImage', () => {
  it('copies into the DR region encrypted with the KMS key, a deterministic ClientToken and the tags', async () => {
    const src = await sourceImage('20261203T090000Z');
    const out = await copyImage(t.aws, { ...src.copyInput, kmsKeyId: 'alias/ami-backup' });

    expect(out.reused).toBe(false);
    const copy = (await ec2Dr.send(new DescribeImagesCommand({ ImageIds: [out.imageId] }))).Images![0]!;
    expect(tagsOf(copy.Tags)).toMatchObject({ [TAG_SOURCE_IMAGE]: src.imageId, [TAG_POLICY]: POLICY, [TAG_RUN]: src.runId });
    // moto ignores encryption: the request itself must carry it.
    const request = t.requests.find((r) => r.command === 'CopyImageCommand')!;
    expect(request.region).toBe(DR);
    expect(request.body).toContain('Encrypted=true');
    expect(request.body).toContain(`KmsKeyId=${encodeURIComponent('alias/ami-backup')}`);
    expect(request.body).toContain(`ClientToken=${copyClientToken(src.runId, src.imageId, DR)}`);
    expect(request.body).toContain(`SourceRegion=${SRC}`);
    expect(request.body).toContain('TagSpecification.1.ResourceType=image');
  });

  it('is idempotent: a retry returns the copy already made, and the token is stable', async () => {
    const src = await sourceImage('20261203T100000Z');
    const input = src.copyInput;
    const first = await copyImage(t.aws, input);
    const second = await copyImage(t.aws, input);
    expect(second).toEqual({ imageId: first.imageId, reused: true });
    expect(t.requests.filter((r) => r.command === 'CopyImageCommand')).toHaveLength(1);
    const copies = await ec2Dr.send(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: `tag:${TAG_SOURCE_IMAGE}`, Values: [src.imageId] }] }),
    );
    expect(copies.Images).toHaveLength(1);
    expect(copyClientToken(src.runId, src.imageId, DR)).toBe(copyClientToken(src.runId, src.imageId, DR));
    expect(copyClientToken(src.runId, src.imageId, DR)).not.toBe(copyClientToken(src.runId, src.imageId, 'eu-central-1'));
    expect(copyClientToken(src.runId, src.imageId, DR).length).toBeLessThanOrEqual(64);
  });

  it('sets the deprecation time on the copy when the policy asks (EnableImageDeprecation), also on a reused copy', async () => {
    const src = await sourceImage('20261203T101500Z');
    const deprecateAt = '2027-03-03T10:15:00.000Z';
    // moto does not implement EnableImageDeprecation: answer it here, after recording the request.
    t.setResponse((command) => (command === 'EnableImageDeprecationCommand' ? { Return: true } : undefined));
    const first = await copyImage(t.aws, { ...src.copyInput, deprecateAt });
    const again = await copyImage(t.aws, { ...src.copyInput, deprecateAt });

    expect(again).toEqual({ imageId: first.imageId, reused: true });
    const calls = t.requests.filter((r) => r.command === 'EnableImageDeprecationCommand');
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c.region).toBe(DR);
      expect(c.input).toMatchObject({ ImageId: first.imageId });
      expect((c.input.DeprecateAt as Date).toISOString()).toBe(deprecateAt);
    }
    // Without deprecateAt, no deprecation call at all.
    const plain = await sourceImage('20261203T102000Z');
    t.requests.length = 0;
    await copyImage(t.aws, plain.copyInput);
    expect(t.requests.some((r) => r.command === 'EnableImageDeprecationCommand')).toBe(false);
  });

  it('omits KmsKeyId when the policy names none (the account default EBS key)', async () => {
    const src = await sourceImage('20261203T103000Z');
    await copyImage(t.aws, { ...src.copyInput });
    const request = t.requests.find((r) => r.command === 'CopyImageCommand')!;
    expect(request.body).toContain('Encrypted=true');
    expect(request.body).not.toContain('KmsKeyId');
  });

  it('treats ResourceLimitExceeded as "wait and retry", never as a failure', async () => {
    const src = await sourceImage('20261203T110000Z');
    t.setFault((command) =>
      command === 'CopyImageCommand' ? awsError('ResourceLimitExceeded', 'Too many snapshot copies in progress.') : undefined,
    );
    const failure = await failureOf(copyImage(t.aws, { ...src.copyInput }));
    expect(failure.nonRetryable).toBe(false);
    expect(failure.type).toBe('ResourceLimitExceeded');
    expect(failure.nextRetryDelay).toBeDefined();
  });

  it('stops at once on a KMS key error and says what to check', async () => {
    const src = await sourceImage('20261203T120000Z');
    t.setFault((command) =>
      command === 'CopyImageCommand' ? awsError('InvalidKMSKey.NotFound', 'The KMS key alias/nope does not exist') : undefined,
    );
    const failure = await failureOf(copyImage(t.aws, { ...src.copyInput, kmsKeyId: 'alias/nope' }));
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('alias/nope');
    expect(failure.message).toContain(DR);
  });
});

describe('setSsmParam', () => {
  const ssm = () => new SSMClient({ region: DR });

  async function copyFor(runId: string) {
    const src = await sourceImage(runId);
    const copy = await copyImage(t.aws, src.copyInput);
    return { instanceId: src.instanceId, imageId: copy.imageId };
  }

  it('writes the image ID as an aws:ec2:image parameter in the DR region', async () => {
    const { instanceId, imageId } = await copyFor('20261203T130000Z');
    const name = `/ami-backup/${POLICY}/${instanceId}/latest`;
    const out = await setSsmParam(t.aws, { region: DR, name, imageId, runId: '20261203T130000Z', instanceId, policy: POLICY });
    expect(out).toMatchObject({ outcome: 'written', value: imageId });
    const got = await ssm().send(new GetParameterCommand({ Name: name }));
    expect(got.Parameter).toMatchObject({ Value: imageId, DataType: 'aws:ec2:image' });
    const put = t.requests.find((r) => r.command === 'PutParameterCommand')!;
    expect(put.input).toMatchObject({ Overwrite: true, DataType: 'aws:ec2:image', Type: 'String' });
  });

  it('overwrites an older backup, leaves the same image alone, and never goes back to an older run', async () => {
    const older = await copyFor('20261201T000000Z');
    const name = `/ami-backup/${POLICY}/${older.instanceId}/latest`;
    const common = { region: DR, name, instanceId: older.instanceId, policy: POLICY };
    await setSsmParam(t.aws, { ...common, imageId: older.imageId, runId: '20261201T000000Z' });

    const newer = await copyFor('20261202T000000Z');
    await expect(setSsmParam(t.aws, { ...common, imageId: newer.imageId, runId: '20261202T000000Z' })).resolves.toMatchObject({
      outcome: 'written',
      previous: older.imageId,
    });
    await expect(setSsmParam(t.aws, { ...common, imageId: newer.imageId, runId: '20261202T000000Z' })).resolves.toMatchObject({
      outcome: 'unchanged',
    });
    // A late retry of the older run must not move the parameter back.
    await expect(setSsmParam(t.aws, { ...common, imageId: older.imageId, runId: '20261201T000000Z' })).resolves.toMatchObject({
      outcome: 'kept-newer',
      value: newer.imageId,
    });
    const got = await ssm().send(new GetParameterCommand({ Name: name }));
    expect(got.Parameter!.Value).toBe(newer.imageId);
  });
});
