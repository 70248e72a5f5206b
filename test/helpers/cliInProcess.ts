/**
 * The CLI run in this process (`main(argv)`), capturing what it prints: faster than spawning
 * dist/src/client.js, for tests of commands that need no separate process.
 */
import { main } from '../../src/client';

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `ami-backup ARGS` with `env` added to process.env for the call, and restores both after. */
export async function cliInProcess(args: string[], env: Record<string, string> = {}): Promise<InProcessResult> {
  const out: string[] = [];
  const err: string[] = [];
  const keep = (into: string[]) => (chunk: unknown) => {
    into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString());
    return true;
  };
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(keep(out) as typeof process.stdout.write),
    jest.spyOn(process.stderr, 'write').mockImplementation(keep(err) as typeof process.stderr.write),
    jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(`${a.join(' ')}\n`)),
    jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(`${a.join(' ')}\n`)),
  ];
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    for (const spy of spies) spy.mockRestore();
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}
