/**
 * The container files, checked on a machine with no Docker engine.
 *
 * - docker-compose.yml: `docker-compose config -q` (Debian's docker-compose, or pip's, from
 *   scripts/install-checkers.sh) with each profile, plus what the stack relies on;
 * - Dockerfile: hadolint;
 * - the image's build and start, replayed outside Docker from the Dockerfile itself: its COPY
 *   sources (from the repository, which must be in the .dockerignore allowlist), RUN commands and
 *   ENV of each stage run in a temporary directory per stage; then the final stage's CMD starts
 *   the worker from that production-only tree (as an unprivileged user when the test runs as
 *   root) against the Temporal dev server and moto, the CLI from the same tree backs up one
 *   instance, the HEALTHCHECK command, /healthz, /readyz and /metrics answer, and SIGTERM stops it
 *   cleanly with exit code 0.
 *
 * One shortcut, for time: the build stage's full `npm ci` (~40 s) is replaced by a link to the
 * repository's node_modules, installed from the same lockfile. The runtime stage's production
 * install runs for real (from the npm cache: npm_config_prefer_offline), since it is what ships.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { freePort, startMoto, stopProcess, type Moto } from '../../scripts/stack';
import { seedInstances } from '../../scripts/seed';
import { loadPolicyFile } from '../../src/policy';
import { lastJson } from '../helpers/e2e';
import { startTemporal, uniqueTaskQueue } from '../helpers/temporal';

const ROOT = path.resolve(__dirname, '../..');
const DOCKERFILE = path.join(ROOT, 'Dockerfile');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

// ---------------------------------------------------------------------------------------------
// The checkers

interface Checkers {
  compose: string;
  hadolint: string;
}

let checkers: Checkers | undefined;
function installCheckers(): Checkers {
  if (checkers) return checkers;
  const out = execFileSync('bash', [path.join(ROOT, 'scripts/install-checkers.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pathOf = (name: string) => {
    const line = out.split('\n').find((l) => l.startsWith(`${name}: `));
    if (!line) throw new Error(`install-checkers.sh printed no ${name} path:\n${out}`);
    return line.slice(name.length + 2).trim();
  };
  checkers = { compose: pathOf('docker-compose'), hadolint: pathOf('hadolint') };
  return checkers;
}

/** A plain environment for the checkers: no variable of this process leaks into the compose file. */
const plainEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' });

function compose(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(installCheckers().compose, ['-f', COMPOSE_FILE, ...args], { cwd: ROOT, env: plainEnv(), encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ComposeService {
  image?: string;
  build?: unknown;
  profiles?: string[];
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string | null>;
  ports?: Array<string | { published?: string | number; target: number; host_ip?: string }>;
  volumes?: Array<string | { source?: string; target: string; read_only?: boolean }>;
  stop_grace_period?: string;
  entrypoint?: string[];
  command?: string[];
}

function resolvedCompose(profiles: string[]): Record<string, ComposeService> {
  const r = compose([...profiles.flatMap((p) => ['--profile', p]), 'config']);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  return (parseYaml(r.stdout) as { services: Record<string, ComposeService> }).services;
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile, replayed

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** The Dockerfile's instructions: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (!pending && trimmed === '')) return;
    const continues = /\\\s*$/.test(raw);
    const piece = continues ? raw.replace(/\\\s*$/, '') : raw;
    pending = pending ? { text: `${pending.text} ${piece.trim()}`, line: pending.line } : { text: piece.trim(), line: i + 1 };
    if (!continues) {
      const [, op, args] = /^(\S+)\s*([\s\S]*)$/.exec(pending.text)!;
      out.push({ op: op!.toUpperCase(), args: args!.trim(), line: pending.line });
      pending = undefined;
    }
  });
  return out;
}

/** `KEY=value KEY2="a b"` */
function parseEnv(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g))
    env[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  return env;
}

/** Leading `--name=value` flags, and the rest. */
function flags(args: string): { flags: Record<string, string>; rest: string } {
  const found: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
    found[m[1]!] = m[2] ?? '';
    rest = rest.slice(m[0].length);
  }
  return { flags: found, rest };
}

interface Stage {
  name: string;
  /** This stage's WORKDIR, on this machine. */
  dir: string;
  workdir?: string;
  env: Record<string, string>;
  user?: string;
  expose: string[];
  stopSignal?: string;
  healthcheck?: string[];
  cmd?: string[];
}

/** The .dockerignore allowlist (`*`, then `!path` entries), as a predicate over context paths. */
function contextAllows(): (p: string) => boolean {
  const lines = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  expect(lines[0]).toBe('*');
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  return (p) => allowed.includes(p.replace(/^\.\//, '').replace(/\/$/, ''));
}

/** The image's base environment: the official node image sets PATH and HOME; `node` is this test's. */
function baseEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}`, HOME: home, LANG: 'C.UTF-8' };
}

/**
 * Replays the Dockerfile in `workspace`: one directory per stage standing for its WORKDIR.
 * Returns the stages, the last one being the image.
 */
function replayDockerfile(workspace: string, log: (line: string) => void): Stage[] {
  const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const allows = contextAllows();
  const stages: Stage[] = [];
  // RUN steps run as root in `docker build`, with root's HOME: here the npm cache is that of this
  // machine (filled by `make setup`), standing for the Dockerfile's cache mount on /root/.npm.
  const home = process.env.HOME ?? os.homedir();
  const lastFrom = instructions.map((i) => i.op).lastIndexOf('FROM');
  let stage: Stage | undefined;
  const current = (i: Instruction): Stage => {
    if (!stage) throw new Error(`Dockerfile:${i.line}: ${i.op} before FROM`);
    return stage;
  };
  const inStage = (s: Stage, dest: string, i: Instruction): string => {
    if (path.isAbsolute(dest)) {
      if (!s.workdir || !(dest === s.workdir || dest.startsWith(`${s.workdir}/`)))
        throw new Error(`Dockerfile:${i.line}: ${dest} is outside WORKDIR ${s.workdir}: this replay only knows WORKDIR`);
      return path.join(s.dir, path.relative(s.workdir, dest));
    }
    return path.join(s.dir, dest);
  };

  instructions.forEach((i, index) => {
    switch (i.op) {
      case 'ARG':
        return;
      case 'FROM': {
        const name = /\bAS\s+(\S+)/i.exec(i.args)?.[1] ?? `stage${stages.length}`;
        const dir = path.join(workspace, name);
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o755);
        stage = { name, dir, env: {}, expose: [] };
        stages.push(stage);
        return;
      }
      case 'WORKDIR': {
        const s = current(i);
        if (s.workdir) throw new Error(`Dockerfile:${i.line}: a second WORKDIR in a stage is not replayed`);
        s.workdir = i.args;
        return;
      }
      case 'ENV':
        Object.assign(current(i).env, parseEnv(i.args));
        return;
      case 'COPY': {
        const s = current(i);
        const { flags: f, rest } = flags(i.args);
        const parts = rest.split(/\s+/);
        const dest = parts.pop()!;
        for (const src of parts) {
          let from: string;
          if (f.from !== undefined) {
            const other = stages.find((x) => x.name === f.from);
            if (!other) throw new Error(`Dockerfile:${i.line}: no stage ${f.from}`);
            from = inStage(other, src, i);
          } else {
            if (!allows(src)) throw new Error(`Dockerfile:${i.line}: COPY ${src}, but .dockerignore keeps it out of the build context`);
            from = path.join(ROOT, src);
          }
          const target = dest.endsWith('/') || parts.length > 1 ? path.join(inStage(s, dest, i), path.basename(from)) : inStage(s, dest, i);
          log(`[${s.name}] COPY ${src} ${dest}`);
          cpSync(from, target, { recursive: true });
        }
        return;
      }
      case 'RUN': {
        const s = current(i);
        const { rest: command } = flags(i.args);
        if (index < lastFrom && /^npm ci\b/.test(command) && !command.includes('--omit=dev')) {
          log(`[${s.name}] RUN ${command}  (replaced: a link to the repository's node_modules)`);
          symlinkSync(path.join(ROOT, 'node_modules'), path.join(s.dir, 'node_modules'), 'dir');
          return;
        }
        log(`[${s.name}] RUN ${command}`);
        const started = Date.now();
        const r = spawnSync('/bin/sh', ['-c', command], {
          cwd: s.dir,
          env: { ...baseEnv(home), ...s.env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        });
        if (r.status !== 0) throw new Error(`Dockerfile:${i.line}: RUN failed (${r.status}): ${command}\n${r.stdout}\n${r.stderr}`);
        log(`[${s.name}]   done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
        return;
      }
      case 'USER':
        current(i).user = i.args;
        return;
      case 'EXPOSE':
        current(i).expose.push(...i.args.split(/\s+/));
        return;
      case 'STOPSIGNAL':
        current(i).stopSignal = i.args;
        return;
      case 'HEALTHCHECK': {
        const { rest } = flags(i.args);
        const m = /^CMD\s+(\[[\s\S]*\])$/.exec(rest);
        if (!m) throw new Error(`Dockerfile:${i.line}: HEALTHCHECK must use the exec form (CMD [...])`);
        current(i).healthcheck = JSON.parse(m[1]!) as string[];
        return;
      }
      case 'CMD':
        current(i).cmd = JSON.parse(i.args) as string[];
        return;
      case 'LABEL':
        return;
      default:
        throw new Error(`Dockerfile:${i.line}: ${i.op} is not replayed by this test; teach it`);
    }
  });
  return stages;
}

// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  beforeAll(() => installCheckers(), 300_000);

  test.each([[[]], [['demo']], [['aws']], [['demo', 'aws']]])('docker-compose config -q passes with profiles %j', (profiles) => {
    const r = compose([...profiles.flatMap((p) => ['--profile', p]), 'config', '-q']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('the stack: pinned images, Temporal set up before the worker, the UI on 8080, the demo on moto only', () => {
    // (docker-compose 1.29's `config` lists every service whatever the profiles: read them instead.)
    const all = resolvedCompose(['demo', 'aws']);
    const inProfile = (profile: string | undefined) =>
      Object.keys(all)
        .filter((name) => (profile ? all[name]!.profiles?.includes(profile) : !all[name]!.profiles?.length))
        .sort();
    expect(inProfile(undefined)).toEqual(['postgres', 'temporal', 'temporal-schema', 'temporal-setup', 'temporal-ui']);
    expect(inProfile('aws')).toEqual(['worker']);
    expect(inProfile('demo')).toEqual(['demo-worker', 'moto', 'seed']);

    // Every pulled image carries an exact version (no `latest`, no bare major).
    for (const [name, s] of Object.entries(all)) {
      if (s.build) continue;
      expect([name, s.image]).toEqual([name, expect.stringMatching(/^[\w./-]+:\d+\.\d+(\.\d+)?$/)]);
    }
    expect(all.temporal!.image).toMatch(/^temporalio\/server:/);
    expect(all['temporal-schema']!.image).toBe(all['temporal-setup']!.image);
    expect(all['temporal-schema']!.image!.split(':')[1]).toBe(all.temporal!.image!.split(':')[1]);
    expect(all.moto!.image).toMatch(/^motoserver\/moto:5\./);

    // Schema before the server, the namespace and search attributes before any worker.
    expect(all.temporal!.depends_on).toMatchObject({ 'temporal-schema': { condition: 'service_completed_successfully' } });
    const setupScript = readFileSync(path.join(ROOT, 'deploy/compose/setup-namespace.sh'), 'utf8');
    for (const name of ['AmiBackupPolicy', 'AmiBackupInstanceId']) expect(setupScript).toContain(name);
    expect(setupScript).toContain('--type Keyword');
    for (const w of ['worker', 'demo-worker'])
      expect(all[w]!.depends_on).toMatchObject({
        temporal: { condition: 'service_healthy' },
        'temporal-setup': { condition: 'service_completed_successfully' },
      });

    // The Web UI on the host's port 8080.
    expect(JSON.stringify(all['temporal-ui']!.ports)).toMatch(/8080/);

    // The real worker never points at an emulator; the demo worker talks to moto, with demo keys only.
    expect(all.worker!.environment?.AWS_ENDPOINT_URL).toBeUndefined();
    expect(all['demo-worker']!.environment).toMatchObject({ AWS_ENDPOINT_URL: 'http://moto:5000', AWS_ACCESS_KEY_ID: 'demo' });
    expect(all['demo-worker']!.environment?.AWS_PROFILE).toBeUndefined();
    expect(all.seed!.command).toEqual(['node', 'dist/scripts/seed-demo.js']);
    expect(existsSync(path.join(ROOT, 'scripts/seed-demo.ts'))).toBe(true);

    // Running activities get the worker's 30 s shutdown grace before Docker's SIGKILL.
    for (const w of ['worker', 'demo-worker']) {
      expect(all[w]!.environment?.AMI_BACKUP_SHUTDOWN_GRACE).toBe('30s');
      const grace = /^(\d+)s$/.exec(all[w]!.stop_grace_period ?? '');
      expect(Number(grace?.[1])).toBeGreaterThan(30);
    }
  });

  test('the policies the stack mounts at /policies are valid, the demo one included', () => {
    const services = resolvedCompose(['demo']);
    const mount = JSON.stringify(services['demo-worker']!.volumes);
    expect(mount).toContain('/policies');
    const demo = loadPolicyFile(path.join(ROOT, 'examples/demo.yaml'));
    expect(demo.targets).toEqual({ tags: { Backup: 'true', Team: 'demo' } });
    expect(demo.copies[0]).toMatchObject({ region: 'eu-west-1', kmsKeyId: 'alias/ami-backup-dr' });
    loadPolicyFile(path.join(ROOT, 'examples/policy.yaml'));
  });
});

describe('Dockerfile', () => {
  test('hadolint passes', () => {
    const { hadolint } = installCheckers();
    const r = spawnSync(hadolint, ['--no-color', 'Dockerfile'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 300_000);
});

describe('the image, built and started outside Docker', () => {
  const log: string[] = [];
  let workspace: string;
  let stages: Stage[];
  let image: Stage;
  let env: TestWorkflowEnvironment | undefined;
  let moto: Moto | undefined;
  let ec2: EC2Client | undefined;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  let workerEnv: NodeJS.ProcessEnv;
  let healthPort: number;
  let metricsPort: number;
  // The image runs as a non-root user: so do the worker and the CLI here, when this test runs as
  // root (as `nobody`, if that user can run this Node binary; else as root, and it says so).
  let asUser: { uid?: number; gid?: number } = {};

  beforeAll(() => {
    workspace = mkdtempSync(path.join(os.tmpdir(), 'ami-backup-image-'));
    chmodSync(workspace, 0o755);
    if (process.getuid?.() === 0) {
      const nobody = { uid: 65534, gid: 65534 };
      const probe = spawnSync(process.execPath, ['--version'], { cwd: workspace, ...nobody });
      if (probe.status === 0) asUser = nobody;
      else console.warn(`the worker runs as root here: uid 65534 cannot run ${process.execPath} (${probe.error?.message ?? probe.status})`);
    }
  });

  afterAll(async () => {
    if (worker) await stopProcess(worker, 40_000);
    ec2?.destroy();
    await moto?.stop();
    await env?.teardown();
    if (workspace) rmSync(workspace, { recursive: true, force: true });
  }, 120_000);

  test("the Dockerfile's build steps run: a production-only tree with dist/ and the prebuilt workflow bundle", () => {
    stages = replayDockerfile(workspace, (line) => log.push(line));
    image = stages[stages.length - 1]!;
    const tree = image.dir;

    expect(existsSync(path.join(tree, 'dist/src/worker.js'))).toBe(true);
    expect(existsSync(path.join(tree, 'dist/src/client.js'))).toBe(true);
    expect(existsSync(path.join(tree, 'dist/src/workflow-bundle.js'))).toBe(true);
    expect(existsSync(path.join(tree, 'dist/scripts/seed-demo.js'))).toBe(true);
    // Production dependencies only.
    for (const dev of ['typescript', 'jest', 'eslint', 'prettier', '@temporalio/testing'])
      expect([dev, existsSync(path.join(tree, 'node_modules', dev))]).toEqual([dev, false]);
    // The native bridge of this platform only.
    const releases = readdirSync(path.join(tree, 'node_modules/@temporalio/core-bridge/releases'));
    expect(releases).toHaveLength(1);
    expect(existsSync(path.join(tree, 'node_modules/@temporalio/core-bridge/releases', releases[0]!, 'index.node'))).toBe(true);

    expect(image.workdir).toBe('/app');
    expect(image.user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(image.env).toMatchObject({
      NODE_ENV: 'production',
      AMI_BACKUP_LOG_FORMAT: 'json',
      AMI_BACKUP_METRICS_PORT: '9464',
      AMI_BACKUP_HEALTH_PORT: '8081',
    });
    expect(image.expose.sort()).toEqual(['8081', '9464']);
    expect(image.stopSignal).toBe('SIGTERM');
    expect(image.cmd).toEqual(['node', 'dist/src/worker.js']);
    expect(image.healthcheck?.[0]).toBe('node');
    console.log(`Dockerfile replayed in ${workspace}:\n${log.join('\n')}`);
  }, 600_000);

  test('the image starts the worker; it answers its health, readiness and metrics endpoints', async () => {
    expect(image?.cmd).toBeDefined();
    [env, moto] = await Promise.all([startTemporal(), startMoto()]);
    [healthPort, metricsPort] = [await freePort(), await freePort()];
    const home = mkdtempSync(path.join(workspace, 'home-'));
    chmodSync(home, 0o755);
    workerEnv = {
      ...baseEnv(home),
      ...image.env,
      // Free ports here instead of the image's 9464 and 8081, which a container has to itself.
      AMI_BACKUP_HEALTH_PORT: String(healthPort),
      AMI_BACKUP_METRICS_PORT: String(metricsPort),
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: 'default',
      AMI_BACKUP_TASK_QUEUE: uniqueTaskQueue('image'),
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: 'image-test',
      AWS_SECRET_ACCESS_KEY: 'image-test',
      AWS_REGION: 'us-east-1',
    };

    const [command, ...args] = image.cmd!;
    worker = spawn(command === 'node' ? process.execPath : command!, args, {
      cwd: image.dir,
      env: workerEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...asUser,
    });
    worker.stdout!.on('data', (c: Buffer) => (workerLog += c.toString()));
    worker.stderr!.on('data', (c: Buffer) => (workerLog += c.toString()));

    // Ready: /readyz answers 200 once the worker polls.
    const deadline = Date.now() + 60_000;
    let ready = false;
    while (!ready && Date.now() < deadline) {
      if (worker.exitCode !== null) throw new Error(`the worker exited with ${worker.exitCode}:\n${workerLog}`);
      ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 250));
    }
    if (!ready) throw new Error(`/readyz on port ${healthPort} did not answer 200 within 60 s. Worker output:\n${workerLog}`);

    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^temporal_\w+/m);

    // The image's HEALTHCHECK command, as Docker runs it inside the container.
    const [hcCommand, ...hcArgs] = image.healthcheck!;
    const hc = spawnSync(hcCommand === 'node' ? process.execPath : hcCommand!, hcArgs, {
      cwd: image.dir,
      env: workerEnv,
      encoding: 'utf8',
      timeout: 10_000,
      ...asUser,
    });
    expect(hc.stderr).toBe('');
    expect(hc.status).toBe(0);
  }, 180_000);

  test("the image's CLI backs up an instance through the image's worker", async () => {
    expect(worker?.exitCode).toBeNull();
    ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto!.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const [instanceId] = await seedInstances(ec2, { count: 1, tags: { Backup: 'true' }, namePrefix: 'image' });
    const policy = path.join(workspace, 'policy.json');
    writeFileSync(
      policy,
      JSON.stringify({
        name: 'image',
        sourceRegion: 'us-east-1',
        targets: { tags: { Backup: 'true' } },
        copies: [{ region: 'eu-west-1', kmsKeyId: 'alias/ami-backup-dr' }],
        wait: { firstCheck: '1s', maxInterval: '2s', timeout: '2m' },
      }),
    );
    chmodSync(policy, 0o644);

    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const cli = spawn(
        process.execPath,
        ['dist/src/client.js', 'run', '--policy', policy, '--instance', instanceId!, '--wait', '--json', '--poll-interval', '300'],
        { cwd: image.dir, env: workerEnv, stdio: ['ignore', 'pipe', 'pipe'], ...asUser },
      );
      let stdout = '';
      let stderr = '';
      cli.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      cli.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      cli.on('error', reject);
      cli.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    if (run.code !== 0) throw new Error(`the CLI exited with ${run.code}:\n${run.stdout}\n${run.stderr}\nworker:\n${workerLog}`);
    const report = lastJson(run.stdout);
    expect(report).toMatchObject({ status: 'succeeded', instances: [{ instanceId, status: 'succeeded' }] });
    expect(report.instances[0]!.sourceImageId).toMatch(/^ami-/);
    expect(report.instances[0]!.copies).toEqual([{ region: 'eu-west-1', imageId: expect.stringMatching(/^ami-/) }]);

    // AMI_BACKUP_LOG_FORMAT=json from the image: the worker's log lines are JSON objects.
    const activityLines = workerLog
      .split('\n')
      .filter((l) => l.includes('createImage'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      });
    expect(activityLines.length).toBeGreaterThan(0);
    expect(activityLines.every((l) => l && typeof l.msg === 'string' && typeof l.level === 'string')).toBe(true);
  }, 180_000);

  test('SIGTERM (the image STOPSIGNAL) stops the worker cleanly, with exit code 0', async () => {
    expect(worker?.exitCode).toBeNull();
    const exited = new Promise<number | null>((resolve) => worker!.once('exit', (code) => resolve(code)));
    worker!.kill(image.stopSignal as NodeJS.Signals);
    expect(await exited).toBe(0);
    expect(workerLog).toContain('stopped cleanly');
  }, 60_000);
});
