/**
 * An HTTP proxy between the AWS SDK and moto that records every request body: what the worker
 * really sent, for fields moto accepts but ignores (Encrypted, KmsKeyId, ClientToken).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The AWS action: the Query protocol's Action=, or the JSON protocol's X-Amz-Target. */
  action: string;
  region: string;
  /** The access key ID the request was signed with. */
  accessKeyId: string;
  body: string;
}

export interface RecordingProxy {
  endpoint: string;
  requests: ProxiedRequest[];
  stop(): Promise<void>;
}

function actionOf(body: string, target: string | undefined): string {
  if (target) return target.split('.').pop() ?? target;
  return new URLSearchParams(body).get('Action') ?? '';
}

export async function startRecordingProxy(upstream: string): Promise<RecordingProxy> {
  const requests: ProxiedRequest[] = [];
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8');
      const auth = String(req.headers.authorization ?? '');
      const [, accessKeyId = '', region = ''] = /Credential=([^/]+)\/\d{8}\/([a-z0-9-]+)\//.exec(auth) ?? [];
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        action: actionOf(text, req.headers['x-amz-target'] as string | undefined),
        region,
        accessKeyId,
        body: text,
      });
      const forward = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          upstreamRes.pipe(res);
        },
      );
      forward.on('error', (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
