/**
 * An HTTP proxy between the AWS SDK and moto that records every exchange: what the worker really
 * sent (for fields moto accepts but ignores: Encrypted, KmsKeyId, ClientToken), when, and what
 * came back (to tell, for example, how many copies were in flight at once). It can also answer a
 * request itself instead of forwarding it (`inject`): an AWS error moto never gives, such as
 * ResourceLimitExceeded. `intercept` (which may take its time: a held or slow request) can do more:
 * answer, reset the connection, or forward and then drop the answer (faultProxy.ts builds the
 * reliability suite's faults on it).
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
  /** Date.now() when the request arrived / its response was complete. */
  sentAt: number;
  answeredAt?: number;
  status?: number;
  response?: string;
  /** True when `inject` or `intercept` answered it (it never reached moto). */
  injected?: boolean;
  /** The fault `intercept` applied to it ("throttle", "reset", "lost-response" …). */
  fault?: string;
  /** True when the client never got an answer (the connection was reset or dropped). */
  dropped?: boolean;
}

/** A response the proxy gives instead of forwarding the request. */
export interface InjectedResponse {
  status: number;
  body: string;
  contentType?: string;
}

/** What `intercept` does with a request (undefined: forward it as usual). */
export type ProxyAction =
  /** Answer in moto's place. */
  | { kind: 'respond'; response: InjectedResponse; fault?: string }
  /** Destroy the connection without forwarding: the client sees a reset socket. */
  | { kind: 'reset'; fault?: string }
  /** Forward to moto (AWS does the work), then destroy the connection instead of answering. */
  | { kind: 'drop-response'; fault?: string }
  /** Forward as usual, after `delayMs`. */
  | { kind: 'forward'; delayMs?: number; fault?: string };

export interface RecordingProxy {
  endpoint: string;
  requests: ProxiedRequest[];
  /** Consulted for every request; a response answers it in moto's place. */
  inject?: (request: ProxiedRequest) => InjectedResponse | undefined;
  /** Consulted after `inject`; may hold the request as long as it likes before saying what to do. */
  intercept?: (request: ProxiedRequest) => ProxyAction | undefined | Promise<ProxyAction | undefined>;
  /** Called with every exchange moto answered, once its response is complete (before the client gets it). */
  observe?: (request: ProxiedRequest) => void;
  stop(): Promise<void>;
}

/** An EC2 (Query protocol) error response, as AWS sends it. */
export function ec2ErrorResponse(code: string, message: string, status = 400): InjectedResponse {
  return {
    status,
    contentType: 'text/xml;charset=UTF-8',
    body:
      `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors>` +
      `<RequestID>proxy-${Date.now()}</RequestID></Response>`,
  };
}

function actionOf(body: string, target: string | undefined): string {
  if (target) return target.split('.').pop() ?? target;
  return new URLSearchParams(body).get('Action') ?? '';
}

export async function startRecordingProxy(upstream: string): Promise<RecordingProxy> {
  const target = new URL(upstream);
  const proxy: RecordingProxy = { endpoint: '', requests: [], stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8');
      const auth = String(req.headers.authorization ?? '');
      const [, accessKeyId = '', region = ''] = /Credential=([^/]+)\/\d{8}\/([a-z0-9-]+)\//.exec(auth) ?? [];
      const request: ProxiedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        action: actionOf(text, req.headers['x-amz-target'] as string | undefined),
        region,
        accessKeyId,
        body: text,
        sentAt: Date.now(),
      };
      proxy.requests.push(request);
      res.on('error', () => undefined); // the client may be gone (a killed worker, a reset)
      const answer = (injected: InjectedResponse) => {
        Object.assign(request, { injected: true, status: injected.status, response: injected.body, answeredAt: Date.now() });
        res.writeHead(injected.status, { 'content-type': injected.contentType ?? 'text/xml;charset=UTF-8' });
        res.end(injected.body);
      };
      const injected = proxy.inject?.(request);
      if (injected) {
        answer(injected);
        return;
      }
      const forward = (dropResponse: boolean) => {
        const upstreamReq = http.request(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
          (upstreamRes) => {
            const parts: Buffer[] = [];
            upstreamRes.on('data', (c: Buffer) => parts.push(c));
            upstreamRes.on('end', () => {
              const response = Buffer.concat(parts);
              Object.assign(request, { status: upstreamRes.statusCode, response: response.toString('utf8'), answeredAt: Date.now() });
              proxy.observe?.(request);
              if (dropResponse) {
                request.dropped = true;
                req.socket.destroy();
                return;
              }
              res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
              res.end(response);
            });
          },
        );
        upstreamReq.on('error', (err) => {
          res.writeHead(502);
          res.end(String(err));
        });
        upstreamReq.end(body);
      };
      const decided = proxy.intercept?.(request);
      if (!decided) {
        forward(false);
        return;
      }
      const act = async (): Promise<void> => {
        const action = await decided;
        if (action?.fault) request.fault = action.fault;
        switch (action?.kind) {
          case undefined:
            return forward(false);
          case 'respond':
            return answer(action.response);
          case 'reset':
            request.fault ??= 'reset';
            request.dropped = true;
            request.answeredAt = Date.now();
            req.socket.destroy();
            return;
          case 'drop-response':
            request.fault ??= 'lost-response';
            return forward(true);
          case 'forward':
            if (action.delayMs) await new Promise((r) => setTimeout(r, action.delayMs));
            return forward(false);
        }
      };
      act().catch((err: unknown) => {
        res.writeHead(500);
        res.end(`proxy interceptor failed: ${String(err)}`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  proxy.endpoint = `http://127.0.0.1:${port}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
