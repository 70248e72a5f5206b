/**
 * `ami-backup latest --policy FILE --instance ID [--region R]`: the restore entry point. Reads the
 * AMI ID the instance's SSM parameter holds in each copy region (or in one region) and checks the
 * image with DescribeImages: does it exist, its state, its run and creation date. AWS is called
 * with the operator's own credentials (the policy's roleArn assumed as the worker does); nothing
 * is started or changed.
 *
 * With one region and no --json, stdout is ONLY the AMI ID, so it can be used in a script:
 *   aws ec2 run-instances --region eu-west-1 --image-id "$(ami-backup latest -p policy.yaml -i i-… --region eu-west-1)"
 * and the details go to stderr.
 *
 * The run writes the parameter in the copy regions only. Asked for the source region, where there
 * is normally no parameter, `latest` answers with the newest available backup image of the
 * instance there, found by its ownership tags (as retention finds them), and says so (`via: "tags"`).
 */
import { DescribeImagesCommand, type Image } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import type { Command } from 'commander';
import type { AwsClients } from '../activities/aws';
import { awsErrorCode, toFailure } from '../activities/errors';
import { listBackups } from '../activities/retention';
import { INSTANCE_ID_RE, loadPolicyFile, type Policy } from '../policy';
import { TAG_RUN, ssmParameterName } from '../shared/naming';
import { imageTimeMs } from '../shared/retention';
import { withOperatorAws } from './awsDirect';
import { EXIT_FAILED, EXIT_OK, UsageError, output } from './common';

export interface LatestRegion {
  region: string;
  imageId?: string;
  state?: string;
  runId?: string;
  /** EC2's CreationDate of the image. */
  created?: string;
  /** Why this region has no usable backup. */
  error?: string;
  /** Set when the image was found by its tags, not through the parameter (the source region). */
  via?: 'tags';
}

/** The object `latest --json` prints as the last line of stdout. */
export interface LatestReport {
  policy: string;
  instanceId: string;
  parameter: string;
  regions: LatestRegion[];
}

const PERMISSIONS = 'ssm:GetParameter and ec2:DescribeImages in each region asked';

interface Ctx {
  aws: AwsClients;
  policy: Policy;
  instanceId: string;
  parameter: string;
}

/** The parameter's value in `region`, or undefined when there is no such parameter. */
async function parameterValue(ctx: Ctx, region: string): Promise<string | undefined> {
  try {
    const got = await ctx.aws.ssm(region, ctx.policy.roleArn).send(new GetParameterCommand({ Name: ctx.parameter }));
    return got.Parameter?.Value || undefined;
  } catch (err) {
    if (awsErrorCode(err) === 'ParameterNotFound') return undefined;
    throw toFailure(err, { operation: 'ssm:GetParameter', region, instanceId: ctx.instanceId, parameter: ctx.parameter });
  }
}

/** The image, or undefined when EC2 does not know it (deregistered, or never an image ID). */
async function describeImage(ctx: Ctx, region: string, imageId: string): Promise<Image | undefined> {
  try {
    const got = await ctx.aws.ec2(region, ctx.policy.roleArn).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return got.Images?.find((i) => i.ImageId === imageId);
  } catch (err) {
    const code = awsErrorCode(err);
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Malformed' || code === 'InvalidAMIID.Unavailable') return undefined;
    throw toFailure(err, { operation: 'ec2:DescribeImages', region, instanceId: ctx.instanceId, imageId });
  }
}

function notReached(ctx: Ctx, region: string, extra = ''): string {
  return `no backup of ${ctx.instanceId} has reached ${region} yet (parameter ${ctx.parameter} not found${extra}): run a backup first`;
}

async function lookUp(ctx: Ctx, region: string): Promise<LatestRegion> {
  const imageId = await parameterValue(ctx, region);
  if (imageId === undefined) {
    if (region === ctx.policy.sourceRegion) return newestByTags(ctx, region);
    return { region, error: notReached(ctx, region) };
  }
  const image = await describeImage(ctx, region, imageId);
  if (!image) {
    return {
      region,
      imageId,
      error: `${imageId}, held by parameter ${ctx.parameter} in ${region}, does not exist (deregistered?): run a backup to make and publish a new one`,
    };
  }
  const found: LatestRegion = { region, imageId, state: image.State ?? 'unknown' };
  const runId = image.Tags?.find((t) => t.Key === TAG_RUN)?.Value;
  if (runId) found.runId = runId;
  if (image.CreationDate) found.created = image.CreationDate;
  if (found.state !== 'available') {
    found.error = `${imageId}, held by parameter ${ctx.parameter} in ${region}, is ${found.state}, not available: it cannot be launched; run a backup to publish a new one`;
  }
  return found;
}

/** Source region: the newest available backup of the instance there, by its ownership tags. */
async function newestByTags(ctx: Ctx, region: string): Promise<LatestRegion> {
  const images = await listBackups(ctx.aws, { policy: ctx.policy.name, instanceId: ctx.instanceId, region, roleArn: ctx.policy.roleArn });
  const newest = images
    .filter((i) => i.state === 'available')
    .map((image) => ({ image, time: imageTimeMs(image) ?? -Infinity }))
    .sort((a, b) => b.time - a.time || (a.image.imageId < b.image.imageId ? -1 : 1))[0]?.image;
  if (!newest) {
    return {
      region,
      error: notReached(
        ctx,
        region,
        `; the run writes it in the copy regions only, and no available image of ${ctx.instanceId} is tagged for policy ${ctx.policy.name} here`,
      ),
    };
  }
  const found: LatestRegion = { region, imageId: newest.imageId, state: newest.state, via: 'tags' };
  if (newest.runId) found.runId = newest.runId;
  if (newest.creationDate) found.created = newest.creationDate;
  return found;
}

function detailText(r: LatestRegion, parameter: string): string {
  const parts = [r.state, r.runId && `run ${r.runId}`, r.created && `created ${r.created}`].filter(Boolean).join(', ');
  const from =
    r.via === 'tags' ? 'the newest backup image in the source region (by its tags; no parameter there)' : `parameter ${parameter}`;
  return `${r.region}: ${r.imageId}${parts ? ` (${parts})` : ''} from ${from}`;
}

export async function latestCommand(opts: { policy: string; instance: string; region?: string; json?: boolean }): Promise<number> {
  const out = output(Boolean(opts.json));
  const policy = loadPolicyFile(opts.policy);
  if (!INSTANCE_ID_RE.test(opts.instance)) {
    throw new UsageError(`--instance "${opts.instance}" is not an EC2 instance ID such as i-0123456789abcdef0`);
  }
  const copyRegions = policy.copies.map((c) => c.region);
  const allowed = [...copyRegions, policy.sourceRegion];
  if (opts.region !== undefined && !allowed.includes(opts.region)) {
    throw new UsageError(
      `--region ${opts.region} is not a region of policy ${policy.name}: use one of its copy regions (${copyRegions.join(', ')}) or its source region (${policy.sourceRegion})`,
    );
  }
  const regions = opts.region !== undefined ? [opts.region] : copyRegions;
  const instanceId = opts.instance;
  const parameter = ssmParameterName(policy.ssmParameter, { policy: policy.name, instanceId, sourceRegion: policy.sourceRegion });

  return withOperatorAws('latest', policy.roleArn, PERMISSIONS, async (aws) => {
    const ctx: Ctx = { aws, policy, instanceId, parameter };
    const found = await Promise.all(regions.map((region) => lookUp(ctx, region)));
    const report: LatestReport = { policy: policy.name, instanceId, parameter, regions: found };
    const failed = found.filter((r) => r.error !== undefined);

    if (regions.length === 1 && !out.json) {
      // Scriptable: the AMI ID alone on stdout, only when it can be launched; the rest on stderr.
      const only = found[0]!;
      if (only.error === undefined) {
        process.stderr.write(`${detailText(only, parameter)}\n`);
        process.stdout.write(`${only.imageId}\n`);
      }
    } else {
      out.info(`Latest backup of ${instanceId} (policy ${policy.name}), parameter ${parameter}:`);
      for (const r of found) {
        if (r.imageId === undefined) out.info(`  ${r.region}: none`);
        else out.info(`  ${detailText(r, parameter)}`);
      }
    }
    for (const r of failed) console.error(`ami-backup: ${r.error}`);
    if (out.json) console.log(JSON.stringify(report));
    return failed.length > 0 ? EXIT_FAILED : EXIT_OK;
  });
}

export function registerLatestCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('latest')
    .description("Print the latest backup AMI of an instance in each copy region: the restore entry point (the SSM parameter's value).")
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON)')
    .requiredOption('-i, --instance <id>', 'the EC2 instance whose backup to look up')
    .option('-r, --region <region>', "only this region: one of the policy's copy regions, or its source region")
    .option('--json', 'print one JSON object on the last line of stdout')
    .addHelpText(
      'after',
      `
Reads the SSM parameter (the policy's ssmParameter, placeholders filled for the instance) in each
copy region and checks the image it holds with DescribeImages. With one --region and no --json,
stdout is only the AMI ID (details on stderr). In the source region, where the run writes no
parameter, it names the newest available backup image of the instance found by its tags.
Uses your own AWS credentials (the standard AWS SDK chain; the policy's roleArn is assumed).
Changes nothing.

Examples:
  ami-backup latest --policy policy.yaml --instance i-0123456789abcdef0
  aws ec2 run-instances --region eu-west-1 --instance-type t3.micro \\
    --image-id "$(ami-backup latest --policy policy.yaml --instance i-0123456789abcdef0 --region eu-west-1)"
  ami-backup latest --policy policy.yaml --instance i-0123456789abcdef0 --json | tail -1 | jq -r '.regions[].imageId'

Exit codes: 0 every region asked holds an available image, 1 a region has no backup yet, its image
is gone or not available, or AWS failed, 2 bad input (bad policy, instance ID or region).`,
    )
    .action(async (opts) => setExit(await latestCommand(opts)));
}
