/**
 * The command line of the offline demo (examples/p2p-demo.ts): its options, their defaults and bounds, and
 * the usage text. Guarantees every value it returns is within its documented range; anything else is a
 * UsageError naming the option.
 */
import { parseArgs } from 'node:util';

export interface DemoOptions {
  nodes: number;
  requests: number;
  concurrency: number;
  resources: number;
  latencyMs: number;
  zipfExponent: number;
  /** Most popular repositories asked for again after the idle time; 0 skips the phase. */
  revisit: number;
  idleMinutes: number;
  /** The fixed P2P port; default a free one. */
  port: number | undefined;
  /** p2p.requestTimeoutMs of the nodes (see --peer-timeout). */
  peerTimeoutMs: number;
  json: boolean;
  timeoutSeconds: number;
}

export const USAGE = `usage: node dist/examples/p2p-demo.js [options]
  --requests N       requests per node (default 1000)
  --concurrency N    clients in flight per node (default 50)
  --resources N      repositories at the fake GitHub (default 300)
  --latency MS       fake GitHub latency (default 20)
  --zipf S           Zipf exponent of the popularity of repositories (default 1.0)
  --revisit N        most popular repositories asked for again after the idle time, 0 to skip (default 100)
  --idle-minutes M   how far the clocks move on before the revisit (default 10)
  --port P           the fixed P2P port every node is given (default: a free one)
  --peer-timeout MS  how long a node waits for a key's owner before going upstream itself
                     (p2p.requestTimeoutMs; default 2000, the library's)
  --json             print one JSON line for machines instead of the tables
  --timeout S        give up (and exit 1) after S seconds (default 120)

A busy owner sends 'working' frames while it fetches, so askers keep waiting for it (up to 30 s) instead of
fetching the same key themselves.`;

/** The options of a command line; prints USAGE and exits on --help; throws UsageError on a bad value. */
export function parseOptions(argv: string[]): DemoOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      resources: { type: 'string' },
      latency: { type: 'string' },
      zipf: { type: 'string' },
      revisit: { type: 'string' },
      'idle-minutes': { type: 'string' },
      port: { type: 'string' },
      'peer-timeout': { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (value: string | undefined, name: string, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };
  const zipf = values.zipf === undefined ? 1 : Number(values.zipf);
  if (!Number.isFinite(zipf) || zipf < 0 || zipf > 5) throw new UsageError(`--zipf must be a number from 0 to 5, got ${JSON.stringify(values.zipf)}`);
  const resources = int(values.resources, 'resources', 300, 1, 100_000);
  return {
    nodes: 3,
    requests: int(values.requests, 'requests', 1000, 1, 1_000_000),
    concurrency: int(values.concurrency, 'concurrency', 50, 1, 10_000),
    resources,
    latencyMs: int(values.latency, 'latency', 20, 0, 10_000),
    zipfExponent: zipf,
    revisit: Math.min(resources, int(values.revisit, 'revisit', 100, 0, 100_000)),
    idleMinutes: int(values['idle-minutes'], 'idle-minutes', 10, 1, 24 * 60),
    port: values.port === undefined ? undefined : int(values.port, 'port', 0, 1, 65_535),
    peerTimeoutMs: int(values['peer-timeout'], 'peer-timeout', 2_000, 100, 120_000),
    json: values.json === true,
    timeoutSeconds: int(values.timeout, 'timeout', 120, 5, 3600),
  };
}

export class UsageError extends Error {}
