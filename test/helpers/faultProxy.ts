/**
 * Faults for the recording proxy (recordingProxy.ts `intercept`), between the worker's AWS SDK and
 * moto: AWS errors in each protocol's own shape, connection resets, slow and lost responses, EC2's
 * eventual consistency, and holding one request while a test kills the worker. The test's own
 * clients talk to moto directly and never meet them.
 *
 *   stack.proxy.intercept = firstOf(eventuallyConsistent(stack.proxy, 2), randomFaults({ rate: 0.3, seed: 7 }).intercept);
 */
import { mulberry32 as seeded } from '../../scripts/prng';
import { ec2ErrorResponse, type InjectedResponse, type ProxiedRequest, type ProxyAction, type RecordingProxy } from './recordingProxy';

export type Interceptor = NonNullable<RecordingProxy['intercept']>;

/** An SSM (JSON protocol) error response, as AWS sends it. */
export function jsonErrorResponse(type: string, message: string, status = 400): InjectedResponse {
  return { status, contentType: 'application/x-amz-json-1.1', body: JSON.stringify({ __type: type, message }) };
}

/** The SSM (JSON protocol) requests; the rest are EC2's Query protocol. */
export const isSsm = (r: ProxiedRequest) => r.path === '/' && r.body.startsWith('{');

export type FaultKind = 'throttle' | 'http500' | 'http503' | 'reset' | 'slow';
export const FAULT_KINDS: FaultKind[] = ['throttle', 'http500', 'http503', 'reset', 'slow'];

/** The interception a fault kind means for a request, in its service's protocol. */
export function faultFor(kind: FaultKind, request: ProxiedRequest, slowMs: number): ProxyAction {
  const ssm = isSsm(request);
  switch (kind) {
    case 'throttle':
      return {
        kind: 'respond',
        fault: kind,
        response: ssm
          ? jsonErrorResponse('ThrottlingException', 'Rate exceeded')
          : ec2ErrorResponse('RequestLimitExceeded', 'Request limit exceeded.', 503),
      };
    case 'http500':
      return {
        kind: 'respond',
        fault: kind,
        response: ssm
          ? jsonErrorResponse('InternalServerError', 'An internal error occurred (injected).', 500)
          : ec2ErrorResponse('InternalError', 'An internal error has occurred (injected).', 500),
      };
    case 'http503':
      return {
        kind: 'respond',
        fault: kind,
        response: ssm
          ? jsonErrorResponse('ServiceUnavailableException', 'Service unavailable (injected).', 503)
          : ec2ErrorResponse('Unavailable', 'The server is overloaded (injected).', 503),
      };
    case 'reset':
      return { kind: 'reset', fault: kind };
    case 'slow':
      return { kind: 'forward', delayMs: slowMs, fault: kind };
  }
}

export interface RandomFaults {
  intercept: Interceptor;
  /** Every fault given, in order. */
  given: Array<{ kind: FaultKind; action: string; region: string }>;
  counts(): Record<FaultKind, number>;
}

/**
 * Faults at `rate` (0..1), the kind drawn uniformly from `kinds`, for requests `match` accepts.
 * `maxConsecutive` caps the faults in a row for one action and region: a fault model of a bad
 * minute, not of an outage (an outage is the wait.timeout tests' business).
 */
export function randomFaults(opts: {
  rate: number;
  seed: number;
  kinds?: FaultKind[];
  slowMs?: number;
  maxConsecutive?: number;
  match?: (r: ProxiedRequest) => boolean;
}): RandomFaults {
  const random = seeded(opts.seed);
  const kinds = opts.kinds ?? FAULT_KINDS;
  const inARow = new Map<string, number>();
  const given: RandomFaults['given'] = [];
  const intercept: Interceptor = (request) => {
    if (opts.match && !opts.match(request)) return undefined;
    const key = `${request.action}|${request.region}`;
    const streak = inARow.get(key) ?? 0;
    const roll = random();
    const kind = kinds[Math.floor(random() * kinds.length)]!;
    if (roll >= opts.rate || streak >= (opts.maxConsecutive ?? Infinity)) {
      inARow.set(key, 0);
      return undefined;
    }
    // A slow answer is still an answer: it does not count towards the streak of failures.
    inARow.set(key, kind === 'slow' ? 0 : streak + 1);
    given.push({ kind, action: request.action, region: request.region });
    return faultFor(kind, request, opts.slowMs ?? 2_000);
  };
  const counts = () => Object.fromEntries(kinds.map((k) => [k, given.filter((g) => g.kind === k).length])) as Record<FaultKind, number>;
  return { intercept, given, counts };
}

/** The first interceptor that does something wins. */
export function firstOf(...interceptors: Interceptor[]): Interceptor {
  return (request) => {
    for (const i of interceptors) {
      const decided = i(request);
      if (decided) return decided;
    }
    return undefined;
  };
}

/** The image IDs EC2 gave in CreateImage / CopyImage answers the proxy saw (lost ones included). */
export function imagesCreated(requests: ProxiedRequest[]): Set<string> {
  const ids = new Set<string>();
  for (const r of requests) {
    if ((r.action === 'CreateImage' || r.action === 'CopyImage') && r.status === 200) {
      const id = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(r.response ?? '')?.[1];
      if (id) ids.add(id);
    }
  }
  return ids;
}

/**
 * EC2's eventual consistency: the first `times` DescribeImages by ID of each image made through
 * the proxy answer InvalidAMIID.NotFound, as EC2 may just after CreateImage / CopyImage.
 */
export function eventuallyConsistent(
  proxy: { requests: ProxiedRequest[] },
  times: number,
): { intercept: Interceptor; notFound: Map<string, number> } {
  const notFound = new Map<string, number>();
  const intercept: Interceptor = (request) => {
    if (request.action !== 'DescribeImages') return undefined;
    const imageId = new URLSearchParams(request.body).get('ImageId.1');
    if (!imageId || !imagesCreated(proxy.requests).has(imageId)) return undefined;
    const n = notFound.get(imageId) ?? 0;
    if (n >= times) return undefined;
    notFound.set(imageId, n + 1);
    return {
      kind: 'respond',
      fault: 'not-found',
      response: ec2ErrorResponse('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`),
    };
  };
  return { intercept, notFound };
}

export interface Hold {
  intercept: Interceptor;
  /** Resolves with the first request `match` accepted, now held. */
  seen: Promise<ProxiedRequest>;
  /** Lets the held request go on: forwarded (`forward`), forwarded with its answer lost, or reset. */
  release(how: 'forward' | 'drop-response' | 'reset'): void;
}

/** Holds the first request `match` accepts until `release`; every later one passes. */
export function holdFirst(match: (r: ProxiedRequest) => boolean): Hold {
  let resolveSeen!: (r: ProxiedRequest) => void;
  const seen = new Promise<ProxiedRequest>((r) => (resolveSeen = r));
  let release!: (a: ProxyAction) => void;
  const held = new Promise<ProxyAction>((r) => (release = r));
  let taken = false;
  return {
    seen,
    intercept: (request) => {
      if (taken || !match(request)) return undefined;
      taken = true;
      resolveSeen(request);
      return held;
    },
    release: (how) => release({ kind: how, fault: 'held' }),
  };
}
