import type { IncomingMessage } from 'node:http';

/**
 * What the proxy reads from a client request: the GitHub URL its target names (never one outside the
 * configured API: no other host, no path escaping the base), its body (never more than the limit held in
 * memory, kept as bytes).
 */

/** The client sent a body larger than the proxy accepts. */
export class BodyTooLargeError extends Error {}

/** The absolute GitHub URL of a request target, or undefined if it would leave the API base. */
export function upstreamUrl(githubApiUrl: string, target: string): string | undefined {
  let pathAndQuery: string;
  if (target.startsWith('/')) {
    pathAndQuery = target;
  } else {
    // Absolute form (a client using this server as an HTTP proxy): keep only the path and query.
    try {
      const parsed = new URL(target);
      pathAndQuery = parsed.pathname + parsed.search;
    } catch {
      return undefined;
    }
  }
  const hash = pathAndQuery.indexOf('#');
  if (hash !== -1) pathAndQuery = pathAndQuery.slice(0, hash);
  const base = githubApiUrl.replace(/\/+$/, '');
  let resolved: URL;
  try {
    resolved = new URL(base + pathAndQuery);
  } catch {
    return undefined;
  }
  const baseUrl = new URL(base);
  if (resolved.origin !== baseUrl.origin) return undefined;
  const basePath = baseUrl.pathname.replace(/\/+$/, '');
  if (basePath !== '' && resolved.pathname !== basePath && !resolved.pathname.startsWith(`${basePath}/`)) return undefined;
  return base + pathAndQuery;
}

/**
 * Paths and queries whose upstream URL is their text after the API base, as upstreamUrl would make it: plain
 * segments, none of them `.` or `..` (the lookahead at each segment's start). Linear: each segment after the first
 * starts with its one '/', so no text matches two ways (no backtracking blow-up).
 */
const SEGMENT = "(?!\\.\\.?(?:/|\\?|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+";
const PLAIN_TARGET = new RegExp(`^/(?:${SEGMENT}(?:/${SEGMENT})*/?)?(?:\\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$`);

/**
 * upstreamUrl's answer, cheaply (one regular expression test), for the common target: a path of plain segments
 * (no dot segment, no empty segment, no escape) and an optional query, no fragment; undefined for anything else
 * (ask upstreamUrl).
 */
export function plainUpstreamUrl(githubApiUrl: string, target: string): string | undefined {
  if (!PLAIN_TARGET.test(target)) return undefined;
  const base = githubApiUrl.endsWith('/') ? githubApiUrl.replace(/\/+$/, '') : githubApiUrl;
  return base + target;
}

/** The base URL the client used to reach the proxy (its Host header), else the proxy's own URL. */
export function publicUrlOf(req: IncomingMessage, ownUrl: string): string {
  const host = req.headers.host;
  return host !== undefined && /^[A-Za-z0-9.\-:[\]]{1,300}$/.test(host) ? `http://${host}` : ownUrl;
}

export function pathOnly(target: string | undefined): string {
  const value = target ?? '/';
  const q = value.indexOf('?');
  return q === -1 ? value : value.slice(0, q);
}

/** The proxy holds too many request bodies at once; this one was refused (503, retry shortly). */
export class BodyBudgetError extends Error {}

/**
 * BodyBudget: the bytes of request bodies held at once, across all requests, never exceed `maxBytes`: a
 * body is reserved (by its Content-Length up front, else chunk by chunk) before it is kept, and released
 * once its exchange is over.
 */
export class BodyBudget {
  #held = 0;
  readonly #max: number;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  reserve(bytes: number): boolean {
    if (this.#held + bytes > this.#max) return false;
    this.#held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
  }
}

/**
 * The request body as bytes, refusing more than `limit` bytes (early, by Content-Length, when declared) and
 * more than the budget has room for. Resolves with the bytes and how many were reserved (release them once
 * the exchange is over); on a refusal nothing stays reserved.
 */
export function readBody(req: IncomingMessage, limit: number, budget: BodyBudget): Promise<{ body: Buffer; reserved: number }> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new BodyTooLargeError());
  }
  let reserved = 0;
  if (Number.isFinite(declared) && declared > 0) {
    if (!budget.reserve(declared)) {
      req.resume();
      return Promise.reject(new BodyBudgetError());
    }
    reserved = declared;
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (err: Error) => {
      done = true;
      chunks.length = 0;
      budget.release(reserved);
      reserved = 0;
      req.resume();
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) return fail(new BodyTooLargeError());
      if (size > reserved) {
        if (!budget.reserve(size - reserved)) return fail(new BodyBudgetError());
        reserved = size;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve({ body: Buffer.concat(chunks), reserved }); // the bytes as sent: an upload is never decoded
    });
    req.once('error', (err) => {
      if (done) return;
      fail(err);
    });
  });
}
