/**
 * deploy/kubernetes: the manifests are valid Kubernetes objects (scripts/check-kubernetes.sh:
 * kubernetes-validate --strict against bundled schemas, and `kubectl kustomize` for the
 * kustomization), and they agree with the worker: every variable they set is one the worker (or
 * Temporal's envconfig, or Node) reads, the probes and the Prometheus annotations point at the
 * ports the worker is told to serve, and the pod's termination grace outlasts the worker's own.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseDuration } from '../../src/policy/duration';

const ROOT = path.resolve(__dirname, '../..');
const DIR = path.join(ROOT, 'deploy/kubernetes');

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are checked field by field below. */
type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const manifests = files.filter((f) => f !== 'kustomization.yaml');

function parse(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8'));
  for (const doc of docs) if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS());
}

const objects = manifests.flatMap((f) => parse(f) as K8sObject[]);
const find = (kind: string, name?: string): K8sObject => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
};

const deployment = find('Deployment');
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c: any) => c.name === 'worker');
const configMap = find('ConfigMap', container.envFrom.find((e: any) => e.configMapRef).configMapRef.name);
const config = configMap.data as Record<string, string>;

/** Variables the worker process reads (this issue's worker settings and the existing ones). */
const WORKER_ENV = [
  'AMI_BACKUP_TASK_QUEUE',
  'AMI_BACKUP_LOG_FORMAT',
  'AMI_BACKUP_LOG_LEVEL',
  'AMI_BACKUP_METRICS_PORT',
  'AMI_BACKUP_HEALTH_PORT',
  'AMI_BACKUP_SHUTDOWN_GRACE',
  'AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES',
  'AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS',
  'AMI_BACKUP_MAX_CACHED_WORKFLOWS',
];
/** Temporal's environment configuration (@temporalio/envconfig), read through src/temporal/config.ts. */
const TEMPORAL_ENV = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_PROFILE',
];
/** Read by Node itself. */
const NODE_ENV = ['NODE_OPTIONS'];

/** Every environment variable name the pod gets: env, and the keys of the ConfigMaps and Secrets in envFrom. */
function envNames(): string[] {
  const names: string[] = (container.env ?? []).map((e: any) => e.name);
  names.push(...Object.keys(config));
  const secretRef = container.envFrom.find((e: any) => e.secretRef)?.secretRef;
  if (secretRef) {
    const example = (parse('secret.example.yaml') as K8sObject[]).find((o) => o.metadata.name === secretRef.name);
    if (!example) throw new Error(`secret.example.yaml has no Secret ${secretRef.name}, which the Deployment reads`);
    names.push(...Object.keys(example.stringData ?? {}));
  }
  return names;
}

const portNumber = (port: string | number): number =>
  typeof port === 'number' ? port : container.ports.find((p: any) => p.name === port)?.containerPort;

describe('deploy/kubernetes', () => {
  test('scripts/check-kubernetes.sh validates every manifest (strict schemas) and the kustomize build', () => {
    const out = execFileSync('bash', [path.join(ROOT, 'scripts/check-kubernetes.sh')], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
    expect(out).toContain(`ok: ${manifests.length} manifests valid (strict)`);
    // kubectl (with its built-in kustomize) comes with this project's machines; without it the
    // script says so instead of building.
    expect(out).toMatch(/ok: kustomization.yaml builds|kubectl not found/);
  }, 600_000);

  test('every manifest parses as YAML, names no namespace, and kustomization.yaml lists them (but not the Secret example)', () => {
    for (const o of objects) {
      expect(o.apiVersion).toBeTruthy();
      expect(o.metadata.namespace).toBeUndefined();
    }
    const [kustomization] = parse('kustomization.yaml') as Array<{ resources: string[] }>;
    expect([...kustomization!.resources].sort()).toEqual(manifests.filter((f) => f !== 'secret.example.yaml').sort());
  });

  test('the Deployment runs 2 replicas as the ServiceAccount, which has an IRSA role annotation', () => {
    expect(deployment.spec.replicas).toBe(2);
    const account = find('ServiceAccount', pod.serviceAccountName);
    expect(account.metadata.annotations['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\/.+$/);
    // The selector picks the pods the template makes.
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) expect(deployment.spec.template.metadata.labels[k]).toBe(v);
  });

  test('every variable the pod gets is one the worker, Temporal envconfig or Node reads', () => {
    const known = new Set([...WORKER_ENV, ...TEMPORAL_ENV, ...NODE_ENV]);
    expect(envNames().filter((n) => !known.has(n))).toEqual([]);
    // And the worker really reads the AMI_BACKUP_* ones this file sets (the list above is not a wish).
    const sources = readdirSync(path.join(ROOT, 'src/temporal'))
      .map((f) => readFileSync(path.join(ROOT, 'src/temporal', f), 'utf8'))
      .join('\n');
    expect(envNames().filter((n) => n.startsWith('AMI_BACKUP_') && !sources.includes(n))).toEqual([]);
  });

  test('liveness probes /healthz and readiness /readyz on the health port; Prometheus scrapes the metrics port', () => {
    const health = Number(config.AMI_BACKUP_HEALTH_PORT);
    const metrics = Number(config.AMI_BACKUP_METRICS_PORT);
    expect([health, metrics]).toEqual([8081, 9464]);
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portNumber(container.livenessProbe.httpGet.port)).toBe(health);
    expect(portNumber(container.readinessProbe.httpGet.port)).toBe(health);
    const annotations = deployment.spec.template.metadata.annotations;
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(metrics);
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect(portNumber('metrics')).toBe(metrics);
  });

  test('terminationGracePeriodSeconds outlasts AMI_BACKUP_SHUTDOWN_GRACE', () => {
    const graceMs = parseDuration(config.AMI_BACKUP_SHUTDOWN_GRACE ?? '30s');
    expect(graceMs).toBeDefined();
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs!);
    expect(container.lifecycle?.preStop).toBeUndefined();
  });

  test('non-root (uid 1000), read-only root filesystem with an emptyDir /tmp, no privilege escalation, resources set', () => {
    expect(pod.securityContext).toEqual(expect.objectContaining({ runAsNonRoot: true, runAsUser: 1000 }));
    expect(container.securityContext).toEqual(
      expect.objectContaining({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
    );
    const tmp = container.volumeMounts.find((m: any) => m.mountPath === '/tmp');
    expect(pod.volumes.find((v: any) => v.name === tmp?.name)?.emptyDir).toBeDefined();
    for (const kind of ['requests', 'limits']) expect(Object.keys(container.resources[kind]).sort()).toEqual(['cpu', 'memory']);
    // Node's heap cap stays under the memory limit.
    const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(config.NODE_OPTIONS ?? '')?.[1]);
    expect(heapMiB).toBeLessThan(Number(/^(\d+)Mi$/.exec(container.resources.limits.memory)?.[1]));
  });

  test("the PodDisruptionBudget keeps one worker up and selects the Deployment's pods", () => {
    const pdb = find('PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
  });

  test('the Temporal Secrets are optional and the example holds placeholders only', () => {
    const secretRef = container.envFrom.find((e: any) => e.secretRef).secretRef;
    expect(secretRef.optional).toBe(true);
    const tls = pod.volumes.find((v: any) => v.secret);
    expect(tls.secret.optional).toBe(true);
    const examples = parse('secret.example.yaml') as K8sObject[];
    expect(examples.map((o) => o.metadata.name).sort()).toEqual([secretRef.name, tls.secret.secretName].sort());
    for (const o of examples)
      for (const v of Object.values(o.stringData as Record<string, string>)) expect(v).toMatch(/PLACEHOLDER|REPLACE/);
  });
});
