/**
 * Reading and validating policy files (YAML or JSON). Used by the client and the worker; the
 * workflow receives the validated policy object, never a file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { policySchema, type Policy } from './schema';

export const MAX_POLICY_BYTES = 1024 * 1024;

export interface PolicyProblem {
  /** Field path such as "copies[0].region"; "" for the file as a whole. */
  path: string;
  message: string;
}

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; problems: PolicyProblem[] };

/** Raised by loadPolicyFile when the file is not a valid policy; `problems` lists every one. */
export class PolicyError extends Error {
  constructor(
    readonly source: string,
    readonly problems: PolicyProblem[],
  ) {
    super(`${source} is not a valid policy:\n${formatProblems(problems)}`);
    this.name = 'PolicyError';
  }
}

const PLAIN_KEY_RE = /^[A-Za-z_$][\w$-]*$/;

/** "copies[0].region"; keys that are not plain words are quoted: targets.tags["my key"]. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((p, i) => {
      if (typeof p === 'number') return `[${p}]`;
      const key = String(p);
      if (!PLAIN_KEY_RE.test(key)) return `[${JSON.stringify(key)}]`;
      return i === 0 ? key : `.${key}`;
    })
    .join('');
}

export function formatProblems(problems: PolicyProblem[]): string {
  return problems.map((p) => `  - ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n');
}

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function issueToProblems(issue: z.core.$ZodIssue, input: unknown): PolicyProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: 'unknown field (check its spelling and indentation; the README lists every policy field)',
    }));
  }
  if (issue.code === 'invalid_key') {
    // A bad record key (a tag key): the schema's own message sits in the nested issues.
    return issue.issues.map((inner) => ({ path: formatPath(issue.path), message: inner.message }));
  }
  if (issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined) {
    return [
      {
        path: formatPath(issue.path),
        message: `required field is missing${issue.message.startsWith('Invalid input') ? '' : `: ${issue.message}`}`,
      },
    ];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

/** Validates a parsed policy object; never throws. */
export function validatePolicy(input: unknown): PolicyResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ path: '', message: 'a policy is a mapping of fields (name, sourceRegion, targets, copies, …)' }] };
  }
  const parsed = policySchema.safeParse(input);
  if (parsed.success) return { ok: true, policy: parsed.data };
  return { ok: false, problems: parsed.error.issues.flatMap((issue) => issueToProblems(issue, input)) };
}

const NOT_TEXT =
  'the file is not text (a binary file, or text in an encoding other than UTF-8): a policy is a YAML or JSON text file in UTF-8';

/** Parses policy text (YAML or JSON) and validates it; never throws. */
export function parsePolicyText(text: string): PolicyResult {
  // NUL never occurs in text (loadPolicyFile refuses bytes that are not UTF-8 before this).
  if (text.includes('\0')) {
    return { ok: false, problems: [{ path: '', message: NOT_TEXT }] };
  }
  if (text.trim() === '') {
    return {
      ok: false,
      problems: [{ path: '', message: 'the file is empty: a policy needs at least name, sourceRegion, targets and copies' }],
    };
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ path: '', message: `not valid YAML or JSON: ${e.message.split('\n')[0]}` })),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Unresolved or runaway YAML aliases (*name).
    return { ok: false, problems: [{ path: '', message: `not a usable YAML document: ${(err as Error).message.split('\n')[0]}` }] };
  }
  return validatePolicy(value);
}

/** `size`: a regular file's size; undefined for a stream that went past the limit. */
const tooLarge = (size: number | undefined) =>
  `the file is ${size === undefined ? 'more than 1 MiB' : `${(size / 1024 / 1024).toFixed(1)} MiB`}; ` +
  'a policy file is at most 1 MiB (a policy is a few lines of YAML or JSON: is this the right file?)';

/**
 * The file's bytes, at most MAX_POLICY_BYTES of them: a larger regular file is refused from its
 * size before anything is read, and a pipe or device (`--policy /dev/stdin`) is read only until it
 * passes the limit. Throws PolicyError.
 */
function readBounded(file: string): Buffer {
  const unreadable = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(err);
    return new PolicyError(file, [{ path: '', message: `cannot read the policy file: ${why}` }]);
  };
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw unreadable(err);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw unreadable(Object.assign(new Error('directory'), { code: 'EISDIR' }));
    if (stat.isFile() && stat.size > MAX_POLICY_BYTES) throw new PolicyError(file, [{ path: '', message: tooLarge(stat.size) }]);
    const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_POLICY_BYTES) throw new PolicyError(file, [{ path: '', message: tooLarge(undefined) }]);
    }
    return buffer.subarray(0, length);
  } catch (err) {
    throw err instanceof PolicyError ? err : unreadable(err);
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates a policy file; throws PolicyError listing every problem. */
export function loadPolicyFile(file: string): Policy {
  const bytes = readBounded(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError(file, [{ path: '', message: NOT_TEXT }]);
  }
  const result = parsePolicyText(text);
  if (!result.ok) throw new PolicyError(file, result.problems);
  return result.policy;
}
