/**
 * The recorded api.github.com traffic of `@octokit/fixtures`, turned into exchanges a local server can replay
 * byte for byte.
 *
 * Guarantees: every exchange of every `scenarios/api.github.com/<name>/normalized-fixture.json` is loaded, in
 * recorded order, with its body as the bytes GitHub sent as far as the fixture allows: a JSON body is the
 * fixture's parsed value serialized compactly (GitHub's own format: the recorded `content-length` equals that
 * length for every exchange the normalizer did not rewrite), a text body is its UTF-8 bytes, a binary body
 * (`responseIsBinary`, stored as hex) is decoded from hex. Absolute URLs of the three recorded hosts
 * (`https://api.github.com`, `https://uploads.github.com`, `https://codeload.github.com`) are rewritten, in
 * text bodies and in every header, to the base URLs the caller serves them from, so that a plain client and
 * the cache see the same, self-consistent world. Nothing else is changed, with one documented exception: the
 * normalizer replaced every ETag by the same placeholder (`"000…0"`), which would make every recorded answer
 * "match" every other; such an ETag is replaced by a strong one derived from the answer's bytes and media
 * type, as GitHub's are. The response's `date` is set by the server at answer time (see server.ts).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The hosts the recordings talk to, by the name a replay server serves them under. */
export const RECORDED_ORIGINS = {
  api: 'https://api.github.com',
  uploads: 'https://uploads.github.com',
  codeload: 'https://codeload.github.com',
} as const;
export type RecordedHost = keyof typeof RECORDED_ORIGINS;

/** Where each recorded host is served: base URLs without a trailing slash. */
export type HostUrls = Record<RecordedHost, string>;

/** One recorded request and its answer, ready to serve. */
export interface RecordedExchange {
  /** The scenario's directory name, e.g. `paginate-issues`. */
  readonly scenario: string;
  /** Position in the scenario's recording (0-based). */
  readonly index: number;
  readonly host: RecordedHost;
  /** Uppercase. */
  readonly method: string;
  /** Path and query exactly as recorded, e.g. `/search/issues?q=sesame%20repo%3A…`. */
  readonly path: string;
  /** Request headers as recorded (lowercase names; `host`, `content-length` and `accept-encoding` dropped). */
  readonly requestHeaders: Readonly<Record<string, string>>;
  /** The request body as sent (JSON serialized compactly), undefined when there was none. */
  readonly requestBody: string | undefined;
  readonly status: number;
  /** Answer headers, lowercase names, URLs rewritten; no `connection`/`content-length` (the server computes it). */
  readonly headers: Readonly<Record<string, string>>;
  /** The answer's bytes, URLs rewritten (text bodies only). */
  readonly body: Buffer;
  /** Whether the recording marks the body as binary. */
  readonly binary: boolean;
}

interface FixtureEntry {
  scope: string;
  method: string;
  path: string;
  body?: unknown;
  status: number;
  response: unknown;
  reqheaders?: Record<string, unknown>;
  headers?: Record<string, unknown>;
  responseIsBinary?: boolean;
}

const PLACEHOLDER_ETAG = /^(W\/)?"0+"$/;
const DROPPED_REQUEST_HEADERS = new Set(['host', 'content-length', 'accept-encoding']);
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding']);

/** The directory holding one folder per recorded api.github.com scenario. */
export function scenariosDirectory(): string {
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve('@octokit/fixtures/package.json');
  return path.join(path.dirname(packageJson), 'scenarios', 'api.github.com');
}

/** The names of the recorded scenarios, sorted. */
export function scenarioNames(): string[] {
  return readdirSync(scenariosDirectory(), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/** Rewrites every recorded origin in `text` to the URL it is served from. */
export function rewriteOrigins(text: string, urls: HostUrls): string {
  let out = text;
  for (const host of Object.keys(RECORDED_ORIGINS) as RecordedHost[]) out = out.split(RECORDED_ORIGINS[host]).join(urls[host]);
  return out;
}

/** Which recorded host a fixture scope (`https://api.github.com:443`) names. */
function hostOf(scope: string): RecordedHost {
  const origin = new URL(scope).origin;
  for (const host of Object.keys(RECORDED_ORIGINS) as RecordedHost[]) if (RECORDED_ORIGINS[host] === origin) return host;
  throw new Error(`recorded scope ${scope} is not one of ${Object.values(RECORDED_ORIGINS).join(', ')}`);
}

/** The bytes of a recorded answer (before URL rewriting) and whether they are text. */
function bodyOf(entry: FixtureEntry): { bytes: Buffer; text: boolean } {
  const r = entry.response;
  if (entry.responseIsBinary === true && typeof r === 'string') return { bytes: Buffer.from(r, 'hex'), text: false };
  if (typeof r === 'string') return { bytes: Buffer.from(r, 'utf8'), text: true };
  if (r === undefined || r === null) return { bytes: Buffer.alloc(0), text: true };
  return { bytes: Buffer.from(JSON.stringify(r), 'utf8'), text: true };
}

/** A strong ETag from the answer's bytes and media type (GitHub's ETags differ per representation). */
function etagOf(body: Buffer, contentType: string | undefined): string {
  return `"${createHash('sha256').update(contentType ?? '').update('\0').update(body).digest('hex').slice(0, 32)}"`;
}

/** Loads one scenario, URLs rewritten to `urls`. */
export function loadScenario(name: string, urls: HostUrls): RecordedExchange[] {
  const file = path.join(scenariosDirectory(), name, 'normalized-fixture.json');
  const entries = JSON.parse(readFileSync(file, 'utf8')) as FixtureEntry[];
  return entries.map((entry, index) => {
    const { bytes, text } = bodyOf(entry);
    const body = text ? Buffer.from(rewriteOrigins(bytes.toString('utf8'), urls), 'utf8') : bytes;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(entry.headers ?? {})) {
      const lower = name.toLowerCase();
      if (!DROPPED_RESPONSE_HEADERS.has(lower)) headers[lower] = rewriteOrigins(String(value), urls);
    }
    if (headers.etag !== undefined && PLACEHOLDER_ETAG.test(headers.etag)) headers.etag = etagOf(body, headers['content-type']);
    const requestHeaders: Record<string, string> = {};
    for (const [name, value] of Object.entries(entry.reqheaders ?? {})) {
      const lower = name.toLowerCase();
      if (!DROPPED_REQUEST_HEADERS.has(lower)) requestHeaders[lower] = String(value);
    }
    const rawBody = entry.body;
    const requestBody = rawBody === undefined || rawBody === '' ? undefined : typeof rawBody === 'string' ? rawBody : JSON.stringify(rawBody);
    return {
      scenario: name,
      index,
      host: hostOf(entry.scope),
      method: entry.method.toUpperCase(),
      path: entry.path,
      requestHeaders,
      requestBody: requestBody === undefined ? undefined : rewriteOrigins(requestBody, urls),
      status: entry.status,
      headers,
      body,
      binary: !text,
    };
  });
}
