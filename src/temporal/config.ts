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

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const loaded = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
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
