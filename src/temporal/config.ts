/**
 * Where Temporal is: one reading of the environment shared by the worker and the client.
 * Temporal's own environment configuration (@temporalio/envconfig) supplies the address,
 * namespace, TLS / mTLS and API key (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS_*, TEMPORAL_PROFILE and the TOML config file), so the same settings reach
 * a local dev server, a self-hosted cluster or Temporal Cloud.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_TASK_QUEUE = 'ami-backup';
export const DEFAULT_UI_URL = 'http://localhost:8233';

export interface TemporalSettings {
  connection: NativeConnectionOptions & { address: string };
  namespace: string;
  taskQueue: string;
  /** The Temporal Web UI, for links printed by the CLI (TEMPORAL_UI_URL). */
  uiUrl: string;
}

/** Temporal's connection settings cannot be read (a TLS file that is missing, a bad config file or profile). */
export class TemporalConfigError extends Error {}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  } catch (err) {
    throw new TemporalConfigError(
      `cannot read the Temporal connection settings: ${(err as Error).message}\n` +
        'Check the files TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH name, ' +
        'and TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE.',
    );
  }
  return {
    connection: { ...loaded.connectionOptions, address: loaded.connectionOptions.address ?? DEFAULT_ADDRESS },
    namespace: loaded.namespace ?? DEFAULT_NAMESPACE,
    taskQueue: env.AMI_BACKUP_TASK_QUEUE || DEFAULT_TASK_QUEUE,
    uiUrl: (env.TEMPORAL_UI_URL || DEFAULT_UI_URL).replace(/\/+$/, ''),
  };
}

export function workflowUiLink(settings: Pick<TemporalSettings, 'uiUrl' | 'namespace'>, workflowId: string, runId?: string): string {
  const base = `${settings.uiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}

/** An error and its causes, outermost first, without repeats (the SDKs wrap the gRPC error that says what happened). */
function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const text = (e instanceof Error ? e.message : String(e)).trim();
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
  }
  return parts.join(': ');
}

/**
 * Why the worker or the CLI could not connect to Temporal, for a person: where (address,
 * namespace), the error with its causes, and what to check, by the kind of failure: refused
 * credentials (API key), a TLS handshake that failed (CA, server name, client certificate), or
 * no answer at all. Never prints the API key or key material.
 */
export function connectErrorMessage(err: unknown, settings: Pick<TemporalSettings, 'connection' | 'namespace'>): string {
  const detail = messageChain(err);
  const where = `cannot reach Temporal at ${settings.connection.address} (namespace ${settings.namespace}): ${detail}`;
  const tls = settings.connection.tls !== undefined && settings.connection.tls !== false;
  if (/UNAUTHENTICATED|authentication credentials|invalid api key|unauthori[sz]ed/i.test(detail)) {
    return `${where}\nTemporal refused the credentials: check TEMPORAL_API_KEY (or the client certificate) for namespace ${settings.namespace}.`;
  }
  if (/PERMISSION_DENIED|permission denied|not authorized/i.test(detail)) {
    return `${where}\nThe credentials are valid but not allowed in namespace ${settings.namespace}: check TEMPORAL_NAMESPACE and the key's or certificate's access.`;
  }
  if (/certificate|handshake|alert|\btls\b|ssl|wrong version number|UnknownIssuer|InvalidCertificate|self[- ]signed/i.test(detail)) {
    return (
      `${where}\nThe TLS handshake failed: check TEMPORAL_TLS_SERVER_CA_CERT_PATH (the CA that signed the server's certificate), ` +
      'TEMPORAL_TLS_SERVER_NAME, and for mutual TLS TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH.'
    );
  }
  if (tls) {
    return (
      `${where}\nIs Temporal listening there? With TLS on, also check TEMPORAL_TLS_SERVER_CA_CERT_PATH and TEMPORAL_TLS_SERVER_NAME, ` +
      'and whether the server wants a client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH).'
    );
  }
  return (
    `${where}\nStart a Temporal server (make dev-server) or set TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY / TEMPORAL_TLS_* ` +
    '(TEMPORAL_TLS=true when the server speaks TLS).'
  );
}
