import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { TAG_RUN } from '../shared/naming';
import type { AwsClients } from './aws';
import { awsCall, awsErrorCode, toFailure, type ErrorContext } from './errors';

export interface SetSsmParamInput {
  region: string;
  name: string;
  imageId: string;
  runId: string;
  instanceId: string;
  policy: string;
  roleArn?: string;
}

export interface SetSsmParamOutput {
  name: string;
  region: string;
  /** What the parameter holds afterwards. */
  value: string;
  previous?: string;
  /** 'written', 'unchanged' (already this image) or 'kept-newer' (a later run already wrote it). */
  outcome: 'written' | 'unchanged' | 'kept-newer';
}

/** The run that made an image, from its ami-backup:run tag; undefined when it is not ours or gone. */
async function runOfImage(aws: AwsClients, input: SetSsmParamInput, imageId: string): Promise<string | undefined> {
  try {
    const described = await aws.ec2(input.region, input.roleArn).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return described.Images?.[0]?.Tags?.find((t) => t.Key === TAG_RUN)?.Value;
  } catch (err) {
    if (awsErrorCode(err).startsWith('InvalidAMIID')) return undefined;
    throw toFailure(err, { operation: 'ec2:DescribeImages', region: input.region, imageId });
  }
}

/**
 * Points the SSM parameter at the new copy, the restore entry point in the DR region. Never
 * moves it back: when the stored image comes from a later run, it stays.
 */
export async function setSsmParam(aws: AwsClients, input: SetSsmParamInput): Promise<SetSsmParamOutput> {
  const ssm = aws.ssm(input.region, input.roleArn);
  const ctx: ErrorContext = { operation: 'ssm:PutParameter', region: input.region, instanceId: input.instanceId, parameter: input.name };
  let previous: string | undefined;
  try {
    const got = await ssm.send(new GetParameterCommand({ Name: input.name }));
    previous = got.Parameter?.Value;
  } catch (err) {
    if (awsErrorCode(err) !== 'ParameterNotFound') throw toFailure(err, { ...ctx, operation: 'ssm:GetParameter' });
  }
  const base = { name: input.name, region: input.region, previous };
  if (previous === input.imageId) return { ...base, value: input.imageId, outcome: 'unchanged' };
  if (previous) {
    const previousRun = await runOfImage(aws, input, previous);
    if (previousRun && previousRun > input.runId) return { ...base, value: previous, outcome: 'kept-newer' };
  }
  await awsCall(ctx, () =>
    ssm.send(
      new PutParameterCommand({
        Name: input.name,
        Value: input.imageId,
        Type: 'String',
        DataType: 'aws:ec2:image',
        Overwrite: true,
        Description: `Latest ami-backup copy of ${input.instanceId} (policy ${input.policy}, run ${input.runId})`,
      }),
    ),
  );
  return { ...base, value: input.imageId, outcome: 'written' };
}
