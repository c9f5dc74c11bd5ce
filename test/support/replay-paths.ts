/**
 * The four ways the fidelity replay sends one recorded request, and what each one saw, in one shape.
 *
 * - `viaFetch`: a plain HTTP client (Node's fetch, redirects not followed): the reference for the proxy.
 * - `viaOctokit`: plain Octokit (`@octokit/core`), which follows redirects: the reference for the plugin and
 *   `cache.request`. Its fetch is wrapped to keep the raw bytes of the final answer.
 * - `viaCacheRequest`: `cache.request('<METHOD> <path>', {}, { token, headers, body })`; GitHub's refusals
 *   come as UpstreamError and are turned into the same shape (their body is the parsed data, serialized).
 * - Octokit with the plugin goes through `viaOctokit` with another Octokit class; its body is what Octokit's
 *   `data` holds, as bytes (see dataBytes): the plugin's answer reaches Octokit as a Response that only
 *   Octokit reads.
 */
import { Octokit } from '@octokit/core';
import { RequestError } from '@octokit/request-error';
import type { GitHubAPICache } from '../../src/github-api-cache.js';
import { UpstreamError } from '../../src/errors.js';
import type { RecordedExchange } from '../../support/recorded-github/index.js';

/** What one client saw of one answer. */
export interface Seen {
  status: number;
  /** Lowercase names. */
  headers: Record<string, string>;
  /** The answer's bytes (for Octokit paths: `data` as bytes, see dataBytes). */
  body: Buffer;
  /** The final URL (Octokit paths). */
  url?: string;
  /** x-cache-source, or cache.request's `source`. */
  source?: string;
  /** Raw bytes of the final answer when the client exposes them (plain Octokit's wrapped fetch). */
  raw?: Buffer;
}

/** Octokit's request log prints every error answer; the replay provokes them on purpose. */
export const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The token the recording used, and the request headers a client sends for this exchange. */
export function recordedRequest(x: RecordedExchange): { token: string | undefined; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const name of ['accept', 'content-type'] as const) {
    const value = x.requestHeaders[name];
    if (value !== undefined) headers[name] = value;
  }
  const match = /^\s*\S+\s+(\S+)/.exec(x.requestHeaders.authorization ?? '');
  return { token: match?.[1], headers };
}

/** `data` as Octokit hands it, as bytes: text as UTF-8, an ArrayBuffer as is, JSON serialized compactly. */
export function dataBytes(data: unknown): Buffer {
  if (data === undefined || data === null || data === '') return Buffer.alloc(0);
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(JSON.stringify(data), 'utf8');
}

function headersOf(headers: Headers | Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  if (headers instanceof Headers) headers.forEach((value, name) => (out[name] = value));
  else for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name.toLowerCase()] = String(value);
  return out;
}

/** Changes to the recorded request: another method (HEAD), extra headers (conditionals). */
export interface Variation {
  method?: string;
  headers?: Record<string, string>;
}

/** A plain HTTP client: the recorded request to `base`, redirects not followed. */
export async function viaFetch(base: string, x: RecordedExchange, variation: Variation = {}): Promise<Seen> {
  const { token, headers } = recordedRequest(x);
  const res = await fetch(base + x.path, {
    method: variation.method ?? x.method,
    headers: { ...headers, ...(token === undefined ? {} : { authorization: `token ${token}` }), ...variation.headers },
    body: x.requestBody,
    redirect: 'manual',
  });
  const out = headersOf(res.headers);
  return { status: res.status, headers: out, body: Buffer.from(await res.arrayBuffer()), source: out['x-cache-source'] };
}

/** Plain Octokit whose fetch keeps the raw bytes of the last answer it received. */
export function plainOctokit(baseUrl: string): { octokit: Octokit; lastRaw: () => Buffer | undefined } {
  let raw: Buffer | undefined;
  const fetchKeepingBytes = async (url: string, init: RequestInit): Promise<Response> => {
    const res = await fetch(url, init);
    raw = Buffer.from(await res.clone().arrayBuffer());
    return res;
  };
  return { octokit: new Octokit({ baseUrl, log: quiet, request: { fetch: fetchKeepingBytes } }), lastRaw: () => raw };
}

/** The recorded request through an Octokit (plain or with the plugin); `url` absolute for another host. */
export async function viaOctokit(octokit: Octokit, url: string, x: RecordedExchange, token: string | undefined, variation: Variation = {}): Promise<Seen> {
  const { headers } = recordedRequest(x);
  const options: Record<string, unknown> = {
    method: variation.method ?? x.method,
    url,
    headers: { ...headers, ...(token === undefined ? {} : { authorization: `token ${token}` }), ...variation.headers },
  };
  if (x.requestBody !== undefined) options.data = x.requestBody;
  try {
    const r = await octokit.request(options as never) as { status: number; headers: Record<string, unknown>; data: unknown; url: string };
    const out = headersOf(r.headers);
    return { status: r.status, headers: out, body: dataBytes(r.data), url: r.url, source: out['x-cache-source'] };
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    const out = headersOf(err.response?.headers as Record<string, unknown> | undefined);
    return { status: err.status, headers: out, body: dataBytes(err.response?.data), url: err.response?.url, source: out['x-cache-source'] };
  }
}

/** The recorded request through `cache.request`; `route` is `<METHOD> <path or absolute URL>`. */
export async function viaCacheRequest(cache: GitHubAPICache, route: string, x: RecordedExchange): Promise<Seen> {
  const { token, headers } = recordedRequest(x);
  try {
    const r = await cache.request(route, {}, { token, headers, body: x.requestBody });
    const bytes = Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.body, 'utf8');
    return { status: r.status, headers: { ...r.headers }, body: bytes, source: r.source };
  } catch (err) {
    if (!(err instanceof UpstreamError) || err.status === 0) throw err;
    return { status: err.status, headers: { ...(err.response?.headers ?? {}) }, body: dataBytes(err.response?.data), source: 'origin' };
  }
}
