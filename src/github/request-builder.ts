import { endpoint } from '@octokit/endpoint';
import { CacheValueError } from '../errors.js';
import { RouteTemplates } from './route-template.js';

/**
 * RequestBuilder: an Octokit-style call (`'GET /repos/{owner}/{repo}'`, params, headers, body) becomes the
 * exact HTTP request Octokit would send, built by @octokit/endpoint against the configured GitHub API; simple
 * GET routes take RouteTemplates' fast path, which builds the same URL already in normal form. The cache
 * manages conditional headers and the token travels apart, so neither is ever among the headers built here.
 */

/** A request ready for the cache. Header names are lowercase. */
export interface BuiltRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array | undefined;
  /** True when `url` is already in normal form (normalizeUrl would return it unchanged). */
  readonly normal: boolean;
}

/**
 * A CacheValueError (code ERR_CACHE_VALUE) about a request rather than a stored key: `request()` without a
 * route, or a route whose path needs a parameter that was not given. `key` holds the route.
 */
export class RequestValueError extends CacheValueError {
  constructor(route: string, message: string) {
    super(route, message);
    this.message = `Cannot send request ${JSON.stringify(route)}: ${message}`;
  }
}

/**
 * The `{name}` placeholders of the route's path (before any `?`; RFC 6570 operators such as `{?since}` or
 * `{/id}` are optional) whose parameter is absent, undefined or null. Query parameters are never required.
 */
export function missingPathParameters(route: string, params: Record<string, unknown>): string[] {
  const path = route.replace(/^[A-Za-z]+\s+/, '').split('?')[0]!;
  const missing: string[] = [];
  for (const match of path.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
    const name = match[1]!;
    if ((params[name] === undefined || params[name] === null) && !missing.includes(name)) missing.push(name);
  }
  return missing;
}

const DEFAULT_ACCEPT = 'application/vnd.github+json';
const SKIPPED_REQUEST_HEADERS = new Set(['authorization', 'if-none-match', 'if-modified-since', 'host', 'content-length']);

export class RequestBuilder {
  readonly #apiUrl: string;
  readonly #endpoint: typeof endpoint;
  readonly #routes = new RouteTemplates();

  constructor(options: { githubApiUrl: string; userAgent?: string }) {
    this.#apiUrl = options.githubApiUrl;
    this.#endpoint = endpoint.defaults({ baseUrl: options.githubApiUrl, headers: { 'user-agent': options.userAgent ?? 'github-p2p-cache' } });
  }

  build(route: string, params: Record<string, unknown> = {},
    options: { headers?: Record<string, string> | undefined; body?: string | Uint8Array | undefined } = {}): BuiltRequest {
    if (options.headers === undefined && options.body === undefined) {
      const simple = this.#routes.expand(route, params, this.#apiUrl);
      if (simple !== undefined) return { method: simple.method, url: simple.url, headers: { accept: DEFAULT_ACCEPT }, body: undefined, normal: true };
    }
    if (typeof route !== 'string' || route.trim() === '') {
      throw new RequestValueError(String(route), `a route such as "GET /repos/{owner}/{repo}" is required, got ${route === '' ? 'an empty string' : typeof route === 'string' ? 'blank text' : String(route)}`);
    }
    const missing = missingPathParameters(route, params);
    if (missing.length > 0) {
      throw new RequestValueError(route, `${missing.length === 1 ? 'parameter' : 'parameters'} ${missing.map((name) => `"${name}"`).join(', ')} ` +
        `${missing.length === 1 ? 'is' : 'are'} missing (the route's path needs ${missing.map((name) => `{${name}}`).join(', ')}); nothing was sent`);
    }
    const requested: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      const lower = name.toLowerCase();
      if (!SKIPPED_REQUEST_HEADERS.has(lower)) requested[lower] = value;
    }
    const ep = this.#endpoint(route, { ...params, headers: requested }) as {
      method: string; url: string; headers: Record<string, string>; body?: unknown;
    };
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(ep.headers)) if (!SKIPPED_REQUEST_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = String(value);
    if (headers.accept === 'application/vnd.github.v3+json') headers.accept = DEFAULT_ACCEPT;
    const body = options.body !== undefined ? options.body
      : ep.body === undefined ? undefined : typeof ep.body === 'string' ? ep.body : JSON.stringify(ep.body);
    return { method: ep.method.toUpperCase(), url: ep.url, headers, body, normal: false };
  }
}
