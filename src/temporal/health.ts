/**
 * The worker's health endpoints, for container HEALTHCHECKs and Kubernetes probes:
 *
 *   GET /healthz  200 while the process is up and the worker has not failed (liveness)
 *   GET /readyz   200 while the worker is RUNNING, polling its task queue (readiness);
 *                 503 while starting, draining on shutdown, or failed
 *
 * Both answer a small JSON body with the worker's state.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { State } from '@temporalio/worker';

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(port: number, state: () => State | 'STARTING', host = '0.0.0.0'): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const now = state();
    const path = (req.url ?? '/').split('?')[0];
    let ok: boolean;
    if (path === '/healthz') ok = now !== 'FAILED';
    else if (path === '/readyz') ok = now === 'RUNNING';
    else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found: use /healthz or /readyz' }));
      return;
    }
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok, state: now }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
