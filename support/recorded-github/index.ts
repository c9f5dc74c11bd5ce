/**
 * A loopback GitHub that replays the api.github.com traffic recorded in `@octokit/fixtures`.
 *
 * Guarantees: each recorded host (api.github.com, uploads.github.com, codeload.github.com) is served on its own
 * 127.0.0.1 port, so that, as on GitHub, an upload URL or an archive redirect leaves the API's origin; the
 * recorded absolute URLs in bodies and headers point at these ports (see scenarios.ts). A request gets the
 * recorded status, headers and body bytes of the exchange it matches (see matching.ts), with `content-length`
 * computed from the bytes sent and `date` the time of the answer. A matching conditional GET/HEAD gets a
 * 304 with the recorded headers and no body, as GitHub answers it (free). Requests to the API and uploads
 * hosts must carry the recorded token (`token` or `Bearer` scheme), else 401 as on GitHub; codeload serves
 * without one (cross-origin redirects drop `Authorization`). A request the recording does not hold gets
 * 404 (or 415 for an unrecorded representation) with GitHub's error shape and an `x-replay-miss` header
 * saying why. Every request is logged (host, method, path and query as received, headers, body bytes,
 * status) so a spec can see exactly what reached "GitHub". `close()` destroys every connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { matchExchange, notModified, tokenOf } from './matching.js';
import { loadScenario, scenarioNames, type HostUrls, type RecordedExchange, type RecordedHost } from './scenarios.js';

export { representationOf } from './matching.js';
export { RECORDED_ORIGINS, scenarioNames, type HostUrls, type RecordedExchange, type RecordedHost } from './scenarios.js';

/** One request that reached the replay. */
export interface ReplayLogEntry {
  readonly host: RecordedHost;
  readonly method: string;
  /** Path and query exactly as received. */
  readonly url: string;
  /** Lowercase names; repeated headers joined with ', '. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly status: number;
  /** The recorded exchange that answered, if any. */
  readonly exchange: RecordedExchange | undefined;
}

export interface RecordedGitHubOptions {
  /** Scenario names to load; default all of them. */
  scenarios?: readonly string[];
}

const HOSTS: readonly RecordedHost[] = ['api', 'uploads', 'codeload'];
const NO_BODY_STATUSES = new Set([204, 304]);
const NOT_IN_304 = new Set(['content-type', 'content-disposition', 'content-length']);
const DOCS = 'https://docs.github.com/rest';

export class RecordedGitHub {
  /** Base URLs (no trailing slash) of each recorded host; `urls.api` is the GitHub API URL to configure. */
  readonly urls: HostUrls;
  /** The loaded exchanges, by scenario, in recorded order. */
  readonly scenarios: ReadonlyMap<string, readonly RecordedExchange[]>;

  readonly #servers: Server[];
  readonly #sockets = new Set<Socket>();
  #all: RecordedExchange[] = [];
  #log: ReplayLogEntry[] = [];
  #scenario: string | undefined;
  #position: number | undefined;

  private constructor(servers: Server[], urls: HostUrls, scenarios: Map<string, RecordedExchange[]>) {
    this.#servers = servers;
    this.urls = urls;
    this.scenarios = scenarios;
    this.#all = [...scenarios.values()].flat();
  }

  /** Listen on three ephemeral 127.0.0.1 ports (api, uploads, codeload) and load the scenarios. */
  static async start(options: RecordedGitHubOptions = {}): Promise<RecordedGitHub> {
    const servers = HOSTS.map(() => createServer({ keepAlive: true }));
    await Promise.all(servers.map((server) => new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    })));
    const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const urls: HostUrls = { api: urlOf(servers[0]!), uploads: urlOf(servers[1]!), codeload: urlOf(servers[2]!) };
    const scenarios = new Map<string, RecordedExchange[]>();
    for (const name of options.scenarios ?? scenarioNames()) scenarios.set(name, loadScenario(name, urls));
    const replay = new RecordedGitHub(servers, urls, scenarios);
    servers.forEach((server, i) => {
      server.on('connection', (socket: Socket) => {
        replay.#sockets.add(socket);
        socket.once('close', () => replay.#sockets.delete(socket));
      });
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        replay.#handle(HOSTS[i]!, req, res).catch((error: unknown) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`replay failed: ${String(error)}`);
        });
      });
    });
    return replay;
  }

  /**
   * Serve `scenario` as it was just before its exchange `index` was recorded: only its exchanges answer, and
   * of repeated requests the one at or after `index` wins (see matching.ts). Without arguments: every
   * scenario, earliest match first.
   */
  at(scenario?: string, index = 0): void {
    if (scenario !== undefined && !this.scenarios.has(scenario)) throw new Error(`unknown scenario ${scenario}`);
    this.#scenario = scenario;
    this.#position = scenario === undefined ? undefined : index;
  }

  /** The requests received since the start or the last {@link resetLog}, oldest first (a copy). */
  get log(): ReplayLogEntry[] {
    return [...this.#log];
  }

  /** How many requests reached `host` (default api) with this path (the part before `?`), any method and query. */
  requestsTo(path: string, host: RecordedHost = 'api'): number {
    return this.#log.filter((e) => e.host === host && e.url.split('?')[0] === path).length;
  }

  resetLog(): void {
    this.#log = [];
  }

  /** Stop listening and destroy every connection. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all(this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  async #handle(host: RecordedHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const pool = this.#scenario === undefined ? this.#all : this.scenarios.get(this.#scenario)!;
    const result = matchExchange(pool, { host, method, url, headers }, this.#position);
    const record = (status: number, exchange?: RecordedExchange) => this.#log.push({ host, method, url, headers, body, status, exchange });

    if (result.kind === 'miss') {
      record(result.status);
      sendJson(res, result.status, { message: result.status === 404 ? 'Not Found' : 'Unsupported \'Accept\' header', documentation_url: DOCS }, result.reason);
      return;
    }
    const { exchange } = result;
    const expected = tokenOf(exchange.requestHeaders.authorization);
    if (host !== 'codeload' && expected !== undefined) {
      const given = headers.authorization;
      if (given === undefined || tokenOf(given) !== expected) {
        record(401, exchange);
        sendJson(res, 401, { message: given === undefined ? 'Requires authentication' : 'Bad credentials', documentation_url: DOCS }, 'not the recorded token');
        return;
      }
    }
    const date = new Date().toUTCString();
    if ((method === 'GET' || method === 'HEAD') && notModified(exchange, headers)) {
      record(304, exchange);
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(exchange.headers)) if (!NOT_IN_304.has(name)) out[name] = value;
      res.writeHead(304, { ...out, date });
      res.end();
      return;
    }
    record(exchange.status, exchange);
    const out: Record<string, string> = { ...exchange.headers, date };
    if (!NO_BODY_STATUSES.has(exchange.status)) out['content-length'] = String(exchange.body.length);
    res.writeHead(exchange.status, out);
    res.end(method === 'HEAD' || NO_BODY_STATUSES.has(exchange.status) ? undefined : exchange.body);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, reason: string): void {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(bytes.length), 'x-replay-miss': reason });
  res.end(bytes);
}
