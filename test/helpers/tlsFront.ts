/**
 * A TLS front for the Temporal dev server, which speaks only plaintext gRPC: `temporal server
 * start-dev` has no TLS options. gRPC is HTTP/2, so a Node HTTP/2 server terminates TLS (and, for
 * mTLS, requires and verifies a client certificate signed by the test CA), checks
 * `authorization: Bearer <key>` when an API key is set, and forwards every stream (headers, data,
 * trailers, resets) to the dev server over plaintext HTTP/2. The worker and the CLI then connect
 * exactly as they would to a TLS-terminated Temporal cluster or Temporal Cloud.
 *
 * `makePki(dir)` makes the certificates with `openssl`: a CA, a server certificate for
 * 127.0.0.1 / localhost and a client certificate, all signed by that CA, plus a client
 * certificate from another CA (which an mTLS front must refuse).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http2, {
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface Pki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate (and key) signed by a CA the front does not trust. */
  strangerCert: string;
  strangerKey: string;
}

/** True when `openssl` runs here. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, extensions: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and client certificates, as PEM files in `dir`. */
export function makePki(dir: string): Pki {
  const leaf = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  makeCa(dir, 'ca');
  makeCa(dir, 'stranger-ca');
  makeLeaf(dir, 'server', 'ca', 'localhost', `${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n`);
  makeLeaf(dir, 'client', 'ca', 'ami-backup-worker', `${leaf}extendedKeyUsage=clientAuth\n`);
  makeLeaf(dir, 'stranger', 'stranger-ca', 'ami-backup-worker', `${leaf}extendedKeyUsage=clientAuth\n`);
  const file = (name: string) => path.join(dir, name);
  return {
    caCert: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
    strangerCert: file('stranger.crt'),
    strangerKey: file('stranger.key'),
  };
}

export interface TlsFrontOptions {
  /** The dev server's plaintext gRPC address (host:port). */
  upstream: string;
  pki: Pki;
  /** mTLS: refuse any client without a certificate signed by the test CA. */
  requireClientCert?: boolean;
  /** Refuse (gRPC UNAUTHENTICATED) any call without `authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

export interface FrontStream {
  /** The gRPC method, e.g. /temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue. */
  path: string;
  /** The client certificate's CN, when the client presented one. */
  clientCn?: string;
  /** False when the API key check refused it. */
  forwarded: boolean;
}

export interface TlsFront {
  /** host:port to give TEMPORAL_ADDRESS. */
  address: string;
  /** Every gRPC call that reached the front through TLS. */
  streams: FrontStream[];
  /** TLS handshakes the front refused (no or unknown client certificate, wrong CA …). */
  tlsErrors: string[];
  stop(): Promise<void>;
}

// Connection-specific headers HTTP/2 forbids forwarding, and pseudo-headers the client session sets.
const NOT_FORWARDED = new Set([':scheme', ':authority', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function forwardable(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [key, value] of Object.entries(headers)) if (!NOT_FORWARDED.has(key) && value !== undefined) out[key] = value;
  return out;
}

export async function startTlsFront(opts: TlsFrontOptions): Promise<TlsFront> {
  const { pki } = opts;
  const server = http2.createSecureServer({
    key: readFileSync(pki.serverKey),
    cert: readFileSync(pki.serverCert),
    ...(opts.requireClientCert ? { ca: readFileSync(pki.caCert), requestCert: true, rejectUnauthorized: true } : {}),
    allowHTTP1: false,
  });
  const streams: FrontStream[] = [];
  const tlsErrors: string[] = [];
  const sessions = new Set<ServerHttp2Session>();
  let upstream: ClientHttp2Session | undefined;
  const upstreamSession = (): ClientHttp2Session => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = http2.connect(`http://${opts.upstream}`);
      upstream.on('error', () => undefined);
    }
    return upstream;
  };

  server.on('tlsClientError', (err) => tlsErrors.push(err.message));
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate?.();
    const record: FrontStream = { path: String(headers[':path'] ?? ''), forwarded: true };
    if (peer?.subject?.CN) record.clientCn = String(peer.subject.CN);
    streams.push(record);
    if (opts.apiKey !== undefined && headers.authorization !== `Bearer ${opts.apiKey}`) {
      record.forwarded = false;
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '16',
          'grpc-message': encodeURIComponent('invalid API key'),
        },
        { endStream: true },
      );
      return;
    }
    const up = upstreamSession().request(forwardable(headers));
    let trailers: IncomingHttpHeaders | undefined;
    up.on('error', () => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    up.on('response', (response, flags) => {
      if (stream.closed) return;
      if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
        // A trailers-only answer (a gRPC error): status and message are in these headers.
        stream.respond(response, { endStream: true });
        return;
      }
      stream.respond(response, { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on('trailers', (t) => (trailers = t));
    stream.on('wantTrailers', () => stream.sendTrailers(forwardable(trailers ?? {})));
    stream.pipe(up);
    // A call cancelled on either side is cancelled on the other.
    stream.on('close', () => {
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    up.on('close', () => {
      if (!stream.closed && up.rstCode !== undefined && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR) stream.close(up.rstCode);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    streams,
    tlsErrors,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.destroy();
      upstream?.destroy();
      await closed;
    },
  };
}
