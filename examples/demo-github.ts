/**
 * A small loopback stand-in for the GitHub REST API, for the offline demo (examples/p2p-demo.ts).
 *
 * It follows the GitHub rules a cache's numbers depend on, and nothing more:
 * - `GET /repos/{owner}/{repo}` answers a repository's JSON (404 for an unknown one), `GET /rate_limit` the
 *   token's window (free of rate limit, as on GitHub);
 * - `cache-control: private, max-age=60`, `vary`, and an ETag that differs per token (as GitHub's do);
 * - an authorized request whose `If-None-Match` matches is answered 304 and costs nothing ("a 304 … does not
 *   count against your primary rate limit if … made while correctly authorized"); every other answer to a
 *   known token costs one unit of its hourly window, reported in `x-ratelimit-*` headers;
 * - an unknown token gets 401 Bad credentials; anonymous callers share a 60-request window;
 * - a fixed latency before every answer, and a clock that can be moved on (`advance`).
 *
 * Everything is counted (requests, charged units, 304s, distinct paths, most in flight at once) so the demo
 * can compare what the fleet spent with what it served. Tokens are secrets even here: they are never printed
 * and the counters name a token by its label.
 *
 * The specs and benches use a fuller fake (support/fake-github/: pagination, writes, faults); the demo keeps
 * this small one, whose counters (ok/other, a clock moved by `advance`) its report is built on.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { OffsetClock } from '../support/clock.js';

export interface DemoGitHubOptions {
  /** token → label (the name used in counters). */
  tokens: Record<string, string>;
  /** Repositories served at /repos/{owner}/{name}. */
  repos: Array<{ owner: string; name: string; body: Record<string, unknown> }>;
  /** Latency before every answer, in ms. Default 20. */
  latencyMs?: number;
  /** Hourly limit per token. Default 5000. */
  rateLimit?: number;
}

export interface DemoGitHubStats {
  /** Every request received. */
  requests: number;
  /** Rate-limit units spent, over all tokens. */
  charged: number;
  /** 304 answers (free). */
  notModified: number;
  /** 200 answers. */
  ok: number;
  /** Answers with another status. */
  other: number;
  /** Requests per path. */
  byPath: Record<string, number>;
  /** Requests per token label (`anonymous`, `invalid` besides the configured labels). */
  byToken: Record<string, number>;
  /** The most requests in flight at once. */
  maxConcurrent: number;
}

interface Window {
  label: string;
  used: number;
  resetAt: number;
}

const WINDOW_MS = 3_600_000;

export class DemoGitHub {
  readonly url: string;
  #stats: DemoGitHubStats = DemoGitHub.#empty();
  #inFlight = 0;
  readonly #clock = new OffsetClock();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #windows = new Map<string, Window>();
  readonly #anonymous: Window;
  readonly #repos = new Map<string, string>();
  readonly #latencyMs: number;
  readonly #limit: number;

  private constructor(server: Server, url: string, options: DemoGitHubOptions) {
    this.#server = server;
    this.url = url;
    this.#latencyMs = options.latencyMs ?? 20;
    this.#limit = options.rateLimit ?? 5000;
    for (const [token, label] of Object.entries(options.tokens)) this.#windows.set(token, { label, used: 0, resetAt: 0 });
    this.#anonymous = { label: 'anonymous', used: 0, resetAt: 0 };
    for (const repo of options.repos) this.#repos.set(`/repos/${repo.owner}/${repo.name}`, JSON.stringify(repo.body));
  }

  /** Listens on 127.0.0.1, on an ephemeral port. */
  static async start(options: DemoGitHubOptions): Promise<DemoGitHub> {
    const server = createServer({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const fake = new DemoGitHub(server, `http://127.0.0.1:${port}`, options);
    server.on('connection', (socket: Socket) => {
      fake.#sockets.add(socket);
      socket.once('close', () => fake.#sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      fake.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    return fake;
  }

  /** The clock: real time plus what `advance` added. */
  now(): number {
    return this.#clock.now();
  }

  /** Moves the clock on (rate-limit windows and `date` follow it). */
  advance(ms: number): void {
    this.#clock.advance(ms);
  }

  /** A copy of the counters. */
  get stats(): DemoGitHubStats {
    return structuredClone(this.#stats);
  }

  /** Destroys every socket and timer; idempotent. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  static #empty(): DemoGitHubStats {
    return { requests: 0, charged: 0, notModified: 0, ok: 0, other: 0, byPath: {}, byToken: {}, maxConcurrent: 0 };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const s = this.#stats;
    s.requests++;
    this.#inFlight++;
    s.maxConcurrent = Math.max(s.maxConcurrent, this.#inFlight);
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          resolve();
        }, this.#latencyMs);
        this.#timers.add(timer);
      });
      if (res.destroyed) return;
      const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
      s.byPath[path] = (s.byPath[path] ?? 0) + 1;

      const auth = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const token = auth?.[1];
      const window = token === undefined ? this.#anonymous : this.#windows.get(token);
      const label = window?.label ?? 'invalid';
      s.byToken[label] = (s.byToken[label] ?? 0) + 1;
      if (window === undefined) {
        this.#send(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
        return;
      }
      const now = this.now();
      if (now >= window.resetAt) {
        window.used = 0;
        window.resetAt = now + WINDOW_MS;
      }
      const limit = token === undefined ? 60 : this.#limit;
      const rateHeaders = (): Record<string, string> => ({
        'x-ratelimit-limit': String(limit),
        'x-ratelimit-remaining': String(Math.max(0, limit - window.used)),
        'x-ratelimit-used': String(window.used),
        'x-ratelimit-reset': String(Math.ceil(window.resetAt / 1000)),
        'x-ratelimit-resource': 'core',
      });

      if (req.method !== 'GET' && req.method !== 'HEAD') {
        this.#send(res, 404, { message: 'Not Found' }, rateHeaders());
        return;
      }
      if (path === '/rate_limit') {
        // Free on GitHub too.
        const core = { limit, remaining: limit - window.used, used: window.used, reset: Math.ceil(window.resetAt / 1000) };
        this.#send(res, 200, { resources: { core }, rate: core }, { ...rateHeaders(), 'cache-control': 'no-cache' });
        return;
      }
      if (window.used >= limit) {
        this.#send(res, 403, { message: 'API rate limit exceeded' }, rateHeaders());
        return;
      }
      const body = this.#repos.get(path);
      if (body === undefined) {
        window.used++;
        s.charged++;
        this.#send(res, 404, { message: 'Not Found' }, rateHeaders());
        return;
      }
      const etag = `W/"${createHash('sha256').update(label).update('\0').update(body).digest('hex').slice(0, 32)}"`;
      const common = {
        'cache-control': 'private, max-age=60, s-maxage=60',
        vary: 'Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding',
        etag,
      };
      const conditional = req.headers['if-none-match'];
      if (conditional !== undefined && conditional.split(',').some((t) => t.trim().replace(/^W\//, '') === etag.slice(2))) {
        if (token === undefined) {
          window.used++;
          s.charged++;
        }
        s.notModified++;
        res.writeHead(304, { ...common, ...rateHeaders(), date: new Date(now).toUTCString() });
        res.end();
        return;
      }
      window.used++;
      s.charged++;
      this.#sendRaw(res, 200, body, { ...common, ...rateHeaders() });
    } finally {
      this.#inFlight--;
    }
  }

  #send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.#sendRaw(res, status, JSON.stringify(body), headers);
  }

  #sendRaw(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
    if (status === 200) this.#stats.ok++;
    else this.#stats.other++;
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      date: new Date(this.now()).toUTCString(),
      ...headers,
    });
    res.end(body);
  }
}
