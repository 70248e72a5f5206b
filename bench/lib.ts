/**
 * What every benchmark shares: statistics, timing, cleanup of what was started, sampling a child
 * process's memory and CPU from /proc, and the machine and versions the figures come from.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporalCliPath } from '../scripts/stack';

export const ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const now = (): number => performance.now();

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = now();
  const value = await fn();
  return { ms: now() - t0, value };
}

export const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Everything a benchmark started, stopped in reverse order: at the end, on failure and on Ctrl-C. */
export class Cleanup {
  private readonly steps: Array<{ what: string; stop: () => Promise<void> }> = [];

  add(what: string, stop: () => Promise<void>): () => Promise<void> {
    const step = { what, stop };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await stop();
    };
  }

  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.stop();
      } catch (err) {
        log(`could not stop ${step.what}: ${(err as Error).message}`);
      }
    }
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Peak resident memory (VmHWM) of a process, in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** CPU and peak memory of a child process over a stretch of time (the peak since the process started). */
export function processMeter(child: ChildProcess): () => { cpuSeconds: number; peakRssMb: number } {
  const pid = child.pid!;
  const cpu0 = cpuSeconds(pid);
  return () => ({ cpuSeconds: cpuSeconds(pid) - cpu0, peakRssMb: peakRssMb(pid) });
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 })
        .toString()
        .trim()
        .split('\n')[0] ?? 'unknown'
    );
  } catch {
    return 'unknown';
  }
}

function motoVersion(): string {
  const lib = path.join(ROOT, '.cache/venv/lib');
  try {
    for (const py of readdirSync(lib)) {
      const dist = readdirSync(path.join(lib, py, 'site-packages')).find((d) => /^moto-[\d.]+\.dist-info$/.test(d));
      if (dist) return dist.replace(/^moto-/, '').replace(/\.dist-info$/, '');
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]+)"?/m.exec(release)?.[1] ?? os.type();
  } catch {
    return os.type();
  }
}

export interface Machine {
  cpu: string;
  cores: number;
  ramGb: number;
  os: string;
  kernel: string;
  loadBefore: number[];
  versions: Record<string, string>;
}

export function machine(): Machine {
  const cli = temporalCliPath();
  const testServer = path.join(ROOT, '.cache/bin/temporal-test-server');
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    ramGb: os.totalmem() / 1024 ** 3,
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    loadBefore: os.loadavg(),
    versions: {
      Node: process.version,
      'Temporal CLI (dev server)': cli ? firstLine(cli, ['--version']) : 'not installed',
      'Temporal test server (time skipping)': existsSync(testServer)
        ? `.cache/bin/temporal-test-server (SDK ${versionOf('@temporalio/testing')})`
        : 'not installed',
      'Temporal TypeScript SDK': versionOf('@temporalio/worker'),
      'AWS SDK (client-ec2)': versionOf('@aws-sdk/client-ec2'),
      moto: motoVersion(),
    },
  };
}

/** Formats a number for a table: thousands separators, `digits` decimals. */
export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(head: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.map(String).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}
