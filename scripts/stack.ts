/**
 * The local stack: the Temporal CLI dev server and moto (the AWS emulator) as child processes on
 * free loopback ports. Used by the test harness and by `make demo`; stopped by whoever started it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The Temporal CLI installed by scripts/install-temporal.sh, or undefined (the SDK may download one). */
export function temporalCliPath(): string | undefined {
  const candidates = [process.env.TEMPORAL_CLI_PATH, onPath('temporal'), path.join(ROOT, '.cache/bin/temporal')];
  return candidates.find((c): c is string => Boolean(c) && existsSync(c!));
}

export function motoServerPath(): string {
  const candidates = [process.env.MOTO_SERVER_PATH, path.join(ROOT, '.cache/venv/bin/moto_server'), onPath('moto_server')];
  const found = candidates.find((c): c is string => Boolean(c) && existsSync(c!));
  if (!found) throw new Error('moto_server not found: run `bash scripts/install-moto.sh` (or `make setup`) first');
  return found;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Service {
  stop(): Promise<void>;
  /** The server process (for a benchmark that reads its CPU and memory from /proc). */
  pid?: number;
}

/** Stops a child process: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function waitFor(
  what: string,
  child: ChildProcess,
  check: () => Promise<boolean>,
  timeoutMs: number,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} while starting:\n${log()}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopProcess(child);
  throw new Error(`${what} did not become ready within ${timeoutMs} ms:\n${log()}`);
}

function captureOutput(child: ChildProcess): () => string {
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => out;
}

export interface Moto extends Service {
  endpoint: string;
  port: number;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
}

/**
 * One moto server on a free loopback port; it serves every region (taken from each request's
 * signature). `defaultAmis: false` starts it without the ~1,300 public images moto lists in every
 * region: each DescribeImages scans them all, which dominates moto's time in a benchmark.
 */
export async function startMoto(opts: { defaultAmis?: boolean } = {}): Promise<Moto> {
  const port = await freePort();
  const child = spawn(motoServerPath(), ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      MOTO_ALLOW_NONEXISTENT_REGION: 'false',
      ...(opts.defaultAmis === false ? { MOTO_EC2_LOAD_DEFAULT_AMIS: 'false' } : {}),
    },
  });
  const log = captureOutput(child);
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor('moto', child, async () => (await fetch(`${endpoint}/moto-api/data.json`)).ok, 30_000, log);
  return {
    endpoint,
    port,
    reset: async () => {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    stop: () => stopProcess(child),
    pid: child.pid,
  };
}

export interface DevServer extends Service {
  address: string;
  uiUrl: string;
}

/** `temporal server start-dev` with its Web UI, for the demo (tests use @temporalio/testing). */
export async function startDevServer(
  opts: { port?: number; uiPort?: number; dbFile?: string; searchAttributes?: string[] } = {},
): Promise<DevServer> {
  const cli = temporalCliPath();
  if (!cli) throw new Error('the Temporal CLI is not installed: run `bash scripts/install-temporal.sh` (or `make setup`) first');
  const port = opts.port ?? (await freePort());
  const uiPort = opts.uiPort ?? (await freePort());
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--log-level', 'warn'];
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  for (const sa of opts.searchAttributes ?? []) args.push('--search-attribute', sa);
  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = captureOutput(child);
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  await waitFor('temporal dev server', child, async () => (await fetch(uiUrl)).ok, 60_000, log);
  return { address: `127.0.0.1:${port}`, uiUrl, stop: () => stopProcess(child, 10_000), pid: child.pid };
}
