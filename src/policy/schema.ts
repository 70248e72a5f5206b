/**
 * The policy file: the user's contract (see DESIGN.md). Validated strictly: unknown fields are
 * errors, every problem is reported with its field path, defaults are filled in.
 *
 * The validated policy keeps durations as the strings the user wrote, so the workflow input in
 * the Temporal UI reads like the file; `durationMs` turns them into numbers where needed.
 */
import { z } from 'zod';
import { DURATION_HELP, formatDuration, parseDuration } from './duration';

export const POLICY_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const REGION_RE = /^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$/;
export const INSTANCE_ID_RE = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const KMS_KEY_ID_RE = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
const KMS_ALIAS_RE = /^alias\/[a-zA-Z0-9/_-]{1,250}$/;
const KMS_ARN_RE = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(?:key\/[0-9a-zA-Z-]+|alias\/[a-zA-Z0-9/_-]+)$/;
const ROLE_ARN_RE = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const SSM_NAME_CHARS_RE = /^[a-zA-Z0-9_.\-/{}]+$/;
export const SSM_PLACEHOLDERS = ['policy', 'instanceId', 'sourceRegion'] as const;
export const DEFAULT_SSM_PARAMETER = '/ami-backup/{policy}/{instanceId}/latest';

const MIN_WAIT_MS = 1_000;

const duration = (what: string, minMs = 0) =>
  z.string({ error: `${what} must be a duration string: ${DURATION_HELP}` }).superRefine((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration: use ${DURATION_HELP}` });
    } else if (ms < minMs) {
      ctx.addIssue({ code: 'custom', message: `${what} must be at least ${formatDuration(minMs)}, got "${text}"` });
    }
  });

/** The area and direction parts of AWS region names (partitions' own areas included): typos fail here, not at copy time. */
export const REGION_AREAS = ['af', 'ap', 'ca', 'cn', 'eu', 'il', 'me', 'mx', 'sa', 'us'] as const;
export const REGION_DIRECTIONS = ['east', 'west', 'north', 'south', 'central', 'northeast', 'northwest', 'southeast', 'southwest'] as const;

const region = z
  .string({ error: 'a region name is required, such as "eu-west-1"' })
  .regex(REGION_RE, { error: (iss) => `"${String(iss.input)}" is not an AWS region name such as "eu-west-1"`, abort: true })
  .superRefine((name, ctx) => {
    const parts = name.split('-');
    const area = parts[0]!;
    const direction = parts[parts.length - 2]!;
    if (!(REGION_AREAS as readonly string[]).includes(area)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${name}" is not an AWS region: its area "${area}" is not one of ${REGION_AREAS.join(', ')}`,
      });
    } else if (!(REGION_DIRECTIONS as readonly string[]).includes(direction)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${name}" is not an AWS region: "${direction}" is not one of ${REGION_DIRECTIONS.join(', ')}`,
      });
    }
  });

const retention = z
  .strictObject(
    {
      keepLast: z
        .number({ error: 'keepLast must be a whole number of backups to keep (1 to 1000)' })
        .int('keepLast must be a whole number')
        .min(1, 'keepLast must be at least 1: the backup just made is always kept')
        .max(1000, 'keepLast must be at most 1000')
        .optional(),
      maxAge: duration('maxAge', 3_600_000).optional(),
    },
    { error: 'retention is a mapping with keepLast and/or maxAge, such as { keepLast: 7 } or { maxAge: 30d }' },
  )
  .refine((r) => r.keepLast !== undefined || r.maxAge !== undefined, {
    error: 'retention needs keepLast, maxAge, or both',
  });

const kmsKeyId = z
  .string({ error: 'kmsKeyId must be a string: a key ID, "alias/NAME", or a key or alias ARN' })
  .refine((k) => KMS_KEY_ID_RE.test(k) || KMS_ALIAS_RE.test(k) || KMS_ARN_RE.test(k), {
    error: (iss) => `"${String(iss.input)}" is not a KMS key: use a key ID, "alias/NAME", or a key or alias ARN in the copy's region`,
  });

const copy = z
  .strictObject(
    {
      region,
      kmsKeyId: kmsKeyId.optional(),
      retention: retention.optional(),
      /** EnableImageDeprecation on the copy: it stops showing in launch wizards after this long (it stays usable). */
      deprecateAfter: duration('deprecateAfter', 3_600_000).optional(),
    },
    { error: 'each copy is a mapping with a region, such as { region: eu-west-1, kmsKeyId: alias/ami-backup }' },
  )
  .superRefine(
    (c, ctx) => {
      // Runs even when another field of this copy failed; the values may be malformed here.
      const arnRegion = typeof c.kmsKeyId === 'string' ? KMS_ARN_RE.exec(c.kmsKeyId)?.[1] : undefined;
      if (arnRegion && typeof c.region === 'string' && arnRegion !== c.region) {
        ctx.addIssue({
          code: 'custom',
          path: ['kmsKeyId'],
          message: `the KMS key is in ${arnRegion} but the copy goes to ${c.region}: a copy is encrypted with a key of its own region`,
        });
      }
    },
    { when: () => true },
  );

const tags = z
  .record(
    z.string().min(1, 'a tag key cannot be empty').max(128, 'a tag key has at most 128 characters'),
    z.string({ error: 'tag values must be strings: quote them, e.g. Backup: "true"' }).max(256, 'a tag value has at most 256 characters'),
    { error: 'targets.tags must be a mapping of tag keys to values, such as { Backup: "true" }' },
  )
  .refine((t) => Object.keys(t).length > 0, { error: 'targets.tags needs at least one tag' })
  .refine((t) => Object.keys(t).length <= 50, { error: 'targets.tags has at most 50 tags' });

const instanceIds = z
  .array(
    z.string({ error: 'an instance ID is a string such as "i-0123456789abcdef0"' }).regex(INSTANCE_ID_RE, {
      error: (iss) => `"${String(iss.input)}" is not an EC2 instance ID such as "i-0123456789abcdef0"`,
    }),
    { error: 'targets.instanceIds must be a list of instance IDs, such as [i-0123456789abcdef0]' },
  )
  .min(1, 'targets.instanceIds needs at least one instance ID')
  .max(1000, 'targets.instanceIds lists at most 1000 instances: use tags for larger fleets')
  .superRefine((ids, ctx) => {
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [i], message: `${id} is listed twice` });
      seen.add(id);
    });
  });

const targets = z
  .strictObject(
    { tags: tags.optional(), instanceIds: instanceIds.optional() },
    { error: 'targets is a mapping with exactly one of "tags" or "instanceIds", such as { tags: { Backup: "true" } }' },
  )
  .refine((t) => (t.tags === undefined) !== (t.instanceIds === undefined), {
    error: 'targets needs exactly one of "tags" or "instanceIds"',
  });

const ssmParameter = z
  .string({ error: `ssmParameter must be a string: an SSM parameter name such as "${DEFAULT_SSM_PARAMETER}"` })
  .min(1, { error: `ssmParameter cannot be empty: leave it out for the default "${DEFAULT_SSM_PARAMETER}"`, abort: true })
  .max(1011, 'an SSM parameter name has at most 1011 characters')
  .superRefine((name, ctx) => {
    const problem = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (!name.startsWith('/')) problem(`"${name}" must start with "/" (a hierarchical SSM parameter name)`);
    if (!SSM_NAME_CHARS_RE.test(name)) problem(`"${name}" may only contain letters, digits, _ . - / and {placeholders}`);
    if (/^\/(aws|ssm)(\/|$)/i.test(name)) problem(`"${name}" starts with a prefix AWS reserves ("/aws" or "/ssm")`);
    if (name.includes('//')) problem(`"${name}" has an empty path segment ("//")`);
    for (const m of name.matchAll(/\{([^{}]*)\}/g)) {
      if (!(SSM_PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
        problem(`unknown placeholder {${m[1]}}: use ${SSM_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`);
      }
    }
    if (/[{}]/.test(name.replace(/\{[^{}]*\}/g, ''))) {
      problem(`"${name}" has a "{" or "}" that is not part of a placeholder: SSM refuses braces in names`);
    }
    // The longest name the template can make: a policy name of 64, an instance ID of 19, a region of 16.
    const longest = name
      .replace(/\{policy\}/g, 'p'.repeat(64))
      .replace(/\{instanceId\}/g, 'i'.repeat(19))
      .replace(/\{sourceRegion\}/g, 'r'.repeat(16));
    if (longest.length > 1011) problem(`with its placeholders filled in, "${name}" can be ${longest.length} characters: SSM allows 1011`);
    if (!name.includes('{instanceId}')) {
      problem(`"${name}" must contain {instanceId}, or every instance would overwrite the same parameter`);
    }
  });

const wait = z
  .strictObject(
    {
      firstCheck: duration('wait.firstCheck', MIN_WAIT_MS).default('60s'),
      maxInterval: duration('wait.maxInterval', MIN_WAIT_MS).default('3m'),
      timeout: duration('wait.timeout', MIN_WAIT_MS).default('4h'),
    },
    { error: 'wait is a mapping such as { firstCheck: 60s, maxInterval: 3m, timeout: 4h }' },
  )
  .superRefine((w, ctx) => {
    const first = parseDuration(w.firstCheck);
    const max = parseDuration(w.maxInterval);
    const timeout = parseDuration(w.timeout);
    if (first !== undefined && max !== undefined && max < first) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxInterval'],
        message: `maxInterval (${w.maxInterval}) is shorter than firstCheck (${w.firstCheck})`,
      });
    }
    if (first !== undefined && timeout !== undefined && timeout <= first) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeout'],
        message: `timeout (${w.timeout}) must be longer than firstCheck (${w.firstCheck})`,
      });
    }
    if (timeout !== undefined && timeout > 7 * 86_400_000) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeout'],
        message: `timeout (${w.timeout}) is longer than 7d: an AMI that takes that long has failed`,
      });
    }
  });

export const policySchema = z
  .strictObject({
    name: z.string({ error: 'name must be a string of 1 to 64 lower-case letters, digits and "-"' }).regex(POLICY_NAME_RE, {
      error: (iss) =>
        `"${String(iss.input)}" is not a policy name: 1 to 64 lower-case letters, digits and "-", not starting or ending with "-"`,
    }),
    sourceRegion: region,
    targets,
    noReboot: z.boolean({ error: 'noReboot must be true or false' }).default(true),
    copies: z
      .array(copy, { error: 'copies must be a list of 1 to 3 disaster-recovery regions' })
      .min(1, 'copies needs at least one disaster-recovery region')
      .max(3, 'copies has at most 3 regions (as AWS DLM)'),
    retention: retention.optional(),
    ssmParameter: ssmParameter.default(DEFAULT_SSM_PARAMETER),
    roleArn: z
      .string({ error: 'roleArn must be a string: an IAM role ARN such as "arn:aws:iam::123456789012:role/ami-backup"' })
      .regex(ROLE_ARN_RE, {
        error: (iss) => `"${String(iss.input)}" is not an IAM role ARN such as "arn:aws:iam::123456789012:role/ami-backup"`,
      })
      .optional(),
    wait: wait.default({ firstCheck: '60s', maxInterval: '3m', timeout: '4h' }),
    maxConcurrent: z
      .number({ error: 'maxConcurrent must be a whole number from 1 to 200' })
      .int('maxConcurrent must be a whole number')
      .min(1, 'maxConcurrent must be at least 1')
      .max(200, 'maxConcurrent must be at most 200')
      .default(10),
    maxConcurrentCopies: z
      .number({ error: 'maxConcurrentCopies must be a whole number from 1 to 50' })
      .int('maxConcurrentCopies must be a whole number')
      .min(1, 'maxConcurrentCopies must be at least 1')
      .max(50, 'maxConcurrentCopies must be at most 50')
      .default(5),
  })
  .superRefine(
    (p, ctx) => {
      // Runs even when other fields failed (so every problem is reported at once): the values
      // may be malformed here, hence the guards.
      if (!Array.isArray(p.copies)) return;
      const seen = new Set<string>();
      p.copies.forEach((c, i) => {
        if (typeof c !== 'object' || c === null || typeof c.region !== 'string') return;
        if (c.region === p.sourceRegion) {
          ctx.addIssue({
            code: 'custom',
            path: ['copies', i, 'region'],
            message: `${c.region} is the source region: a disaster-recovery copy must go to another region`,
          });
        }
        if (seen.has(c.region)) {
          ctx.addIssue({ code: 'custom', path: ['copies', i, 'region'], message: `${c.region} is listed twice in copies` });
        }
        seen.add(c.region);
      });
    },
    { when: () => true },
  );

/** A validated policy with its defaults filled in. */
export type Policy = z.output<typeof policySchema>;
/** What a user may write (defaults not yet applied). */
export type PolicyInput = z.input<typeof policySchema>;
export type CopyTarget = Policy['copies'][number];
