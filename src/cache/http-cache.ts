import type { ResponseSource } from './counters.js';
import type { CacheEntry } from './entry.js';
import { deepFreeze } from './json-value.js';
import { decodeText, parseBody } from './http-policy.js';
import type { ReadOutcome, ReadThrough } from './read-through.js';
import { DEFAULT_ACCEPT, formatRequestKey, isKnownNormalUrl, normalizeAccept, normalizeApiVersion, normalizeUrl, type RequestKeyParts } from './request-key.js';
import type { Origin } from './ports.js';
import { TieredEntries, type MemoryItem } from './tiered-entries.js';
import type { TokenVault } from './token-vault.js';
import type { WriteThrough } from './write-through.js';

/**
 * HttpCache: one HTTP request in, one answer out. The token selects the scope (through the vault, the only
 * holder of tokens); GET and HEAD take the read path, keyed by normalized URL, method, scope and Accept;
 * every other method is a write. Answers carry GitHub's status and headers, the body exactly as stored, the
 * parsed `data` (deep-frozen; parsed when first read, once per memory item) and where they came from.
 */

/** What `cache.request` resolves with: GitHub's status, headers and parsed data, and where it came from. */
export interface CachedResponse<T = unknown> {
  status: number;
  /**
   * Lowercase header names. Cached answers carry the headers stored with the entry (ETag, Link, …, and the
   * x-github-request-id of the answer it came from) and the scope's current x-ratelimit-* as GitHub last sent them.
   */
  headers: Record<string, string>;
  /**
   * As Octokit builds it: the parsed JSON body (deep-frozen), the text of a textual body (decoded by its
   * charset), a Buffer of a binary body (an archive, an asset), or undefined for an empty one. An own, enumerable
   * property like the others, parsed when first read: an answer whose `data` is never read is never parsed.
   */
  data: T;
  /** The body as text, decoded by its declared charset (UTF-8 when none); '' for a binary body. For the exact bytes, read `bytes`. */
  body: string;
  /** The body exactly as GitHub sent it, byte for byte (what a proxy forwards). */
  bytes: Uint8Array;
  source: ResponseSource;
  /** The URL that answered, after redirects (the request URL when GitHub did not redirect). */
  url?: string | undefined;
}

/** Options of one `cache.request` call. */
export interface RequestOptions {
  /** The GitHub token of this call. It selects the cache scope and is sent upstream; it is never stored. */
  token?: string | undefined;
  /** How the token is sent: 'token' or 'bearer'. Default: Bearer for a JWT (a GitHub App's), else token. */
  authScheme?: 'token' | 'bearer' | undefined;
  /** Seconds the response stays fresh. Default: the response's `max-age` (GitHub sends 60), else defaultTtl. A `no-cache` answer is revalidated before every reuse whatever this says. */
  ttl?: number | undefined;
  /** Aborts waiting for this call (a shared upstream request goes on for its other callers). */
  signal?: AbortSignal | undefined;
  /** Extra request headers, e.g. `accept` for a media type or `x-github-api-version`. Conditional headers are managed by the cache. */
  headers?: Record<string, string> | undefined;
  /** A write's raw body (e.g. forwarded by a proxy). Default: the route's leftover params as JSON, as Octokit does. */
  body?: string | Uint8Array | undefined;
  /** 'follow' (default): redirects are followed, as Octokit does; 'manual': a 3xx is answered as GitHub sent it. */
  redirect?: 'follow' | 'manual' | undefined;
}

/** An HTTP request as built for GitHub (header names lowercase, no Authorization). */
export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array | undefined;
  /** True when `url` is already in normal form (saves normalizing it again). */
  readonly normal?: boolean;
}

export class HttpCache {
  readonly #reads: ReadThrough;
  readonly #tiers: TieredEntries;
  readonly #writes: WriteThrough;
  readonly #vault: TokenVault;
  readonly #origin: Origin;
  readonly #shutdown: AbortSignal;

  constructor(parts: { reads: ReadThrough; writes: WriteThrough; vault: TokenVault; origin: Origin; shutdown: AbortSignal; tiers: TieredEntries }) {
    this.#tiers = parts.tiers;
    this.#reads = parts.reads;
    this.#writes = parts.writes;
    this.#vault = parts.vault;
    this.#origin = parts.origin;
    this.#shutdown = parts.shutdown;
  }

  /**
   * The answer: synchronously for a fresh local hit (no promise and no request object on the hot path), else a
   * promise. May throw synchronously (a malformed URL); callers that promise a rejection await it in a try.
   * `parse` false (HTTP front ends, which read `bytes` only): `data` is undefined and no parsed value is kept.
   */
  request<T>(request: HttpRequest, options: RequestOptions, parse = true): CachedResponse<T> | Promise<CachedResponse<T>> {
    const token = options.token === undefined || options.token === '' ? undefined : options.token;
    const scopeId = this.#vault.hold(token);
    const { method } = request;
    if (method !== 'GET' && method !== 'HEAD') return this.#write<T>(request, options, token, scopeId, parse);
    const parts = keyPartsOf(request, method, scopeId);
    if (method === 'HEAD') {
      // A HEAD is answered from a fresh GET of the same resource when one is held: the same status and headers.
      const get = this.#reads.peekFresh(formatRequestKey({ ...parts, method: 'GET' }));
      if (get !== undefined) return this.#answerOf<T>({ kind: 'entry', ...get }, parts, request.url, parse, true);
    }
    const key = formatRequestKey(parts);
    const fresh = this.#reads.readFresh(key);
    if (fresh !== undefined) return this.#answerOf<T>(fresh, parts, request.url, parse);
    return this.#load<T>(request, options, token, parts, key, parse);
  }

  /**
   * A GET that a fresh local entry answers, synchronously, for an HTTP front end that keeps its own form of
   * the answer on the memory item (`item.wire`, valid while `version` is the rate-limit version it was built at):
   * the entry, its tier (counted as a hit, as `request` counts it) and the answer headers `request` would give
   * (built on demand, a fresh object). Else undefined and nothing counted: `request` answers then.
   */
  freshGet(request: HttpRequest, token: string | undefined): FreshGet | undefined {
    const scopeId = this.#vault.hold(token);
    const parts = keyPartsOf(request, 'GET', scopeId);
    const found = this.#reads.peekFresh(formatRequestKey(parts));
    if (found === undefined) return undefined;
    return {
      entry: found.entry,
      source: found.source,
      item: found.item,
      version: this.#origin.rateLimitVersion,
      headers: () => this.#answerHeaders(found.entry.headers, parts, found.item),
    };
  }

  async #write<T>(request: HttpRequest, options: RequestOptions, token: string | undefined, scopeId: string, parse: boolean): Promise<CachedResponse<T>> {
    const signal = options.signal === undefined ? this.#shutdown : AbortSignal.any([options.signal, this.#shutdown]);
    const r = await this.#writes.write({
      method: request.method, url: request.url, headers: request.headers, body: request.body, token, scheme: options.authScheme, scopeId, signal,
      redirect: options.redirect,
    });
    return answer<T>(r.status, { ...r.headers }, parse ? parserOf(r.body, r.headers['content-type']) : undefined, r.body, 'origin', r.url ?? request.url);
  }

  async #load<T>(request: HttpRequest, options: RequestOptions, token: string | undefined, parts: RequestKeyParts, key: string,
    parse: boolean): Promise<CachedResponse<T>> {
    const outcome = await this.#reads.load({
      parts, key, url: request.url, headers: request.headers, token, scheme: options.authScheme,
      ttl: options.ttl, signal: options.signal, redirect: options.redirect,
    });
    return this.#answerOf<T>(outcome, parts, request.url, parse);
  }

  /**
   * The stored headers with the scope's current rate-limit headers over them, as a fresh object the caller owns.
   * Built once per memory item and rate-limit state as a fast-properties template (JSON round trip), then copied
   * per answer: copying an object built key by key (dictionary mode) cost about 7 µs per hit, a template ~0.1 µs.
   * The rate limit is looked up again only when the origin's rate-limit version moved.
   */
  #answerHeaders(stored: Readonly<Record<string, string>>, parts: RequestKeyParts, item: MemoryItem | undefined): Record<string, string> {
    // No memory item to keep a template on (a peer's entry, answered once as it arrives): one copy, no round trip.
    if (item === undefined) return { ...stored, ...this.#origin.rateLimitHeaders(parts.scopeId, parts.url) };
    const version = this.#origin.rateLimitVersion;
    let memo = item.answerHeaders;
    if (memo === undefined || memo.version !== version) {
      const rateLimit = this.#origin.rateLimitHeaders(parts.scopeId, parts.url);
      if (memo === undefined || memo.rateLimit !== rateLimit) {
        memo = { version, rateLimit, template: JSON.parse(JSON.stringify({ ...stored, ...rateLimit })) as Record<string, string> };
      } else {
        memo = { ...memo, version };
      }
      item.answerHeaders = memo;
    }
    return { ...memo.template };
  }

  /**
   * `parse` false: `data` is left undefined (an HTTP front end reads `bytes` only, and no parsed value is kept).
   * Else `data` is the memory item's kept parsed value when it has one, or is parsed when first read: a caller
   * that reads only `bytes`, `status` or `source` (the Octokit plugin's fetch, a check of where an answer came
   * from) never pays for a parse it does not use.
   */
  #answerOf<T>(outcome: ReadOutcome, parts: RequestKeyParts, url: string, parse: boolean, headOnly = false): CachedResponse<T> {
    if (outcome.kind === 'pass') {
      const r = outcome.response;
      return answer<T>(r.status, { ...r.headers }, parse ? parserOf(r.body, r.headers['content-type']) : undefined, r.body, outcome.source, r.url ?? url);
    }
    const { entry, item } = outcome;
    // GitHub's own headers when it answered just now; else the entry's, with the scope's current rate limit.
    const headers = outcome.headers !== undefined
      ? { ...outcome.headers }
      : this.#answerHeaders(entry.headers, parts, item);
    if (headOnly) return answer<T>(entry.status, headers, undefined, EMPTY, outcome.source, url);
    let data: Parsed | undefined;
    if (parse) {
      const kept = item === undefined ? undefined : this.#tiers.keptParsed(item);
      // A binary body's Buffer cannot be frozen: each caller gets its own copy.
      data = kept !== undefined ? (Buffer.isBuffer(kept.value) ? { value: Buffer.from(kept.value) } : kept) : () => copyBinary(this.#parse(item, entry));
    }
    return answer<T>(entry.status, headers, data, entry.body, outcome.source, outcome.url ?? url);
  }

  #parse(item: MemoryItem | undefined, entry: CacheEntry): unknown {
    const type = entry.headers['content-type'];
    const parse = (body: Uint8Array) => frozen(parseBody(body, type));
    return item !== undefined ? this.#tiers.parsed(item, parse) : parse(entry.body);
  }
}

/** What `freshGet` found. */
export interface FreshGet {
  readonly entry: CacheEntry;
  readonly source: ResponseSource;
  readonly item: MemoryItem;
  /** The rate-limit version the answer headers hold for. */
  readonly version: number;
  /** The answer headers (the entry's, with the scope's current rate limit): a fresh object the caller owns. */
  headers(): Record<string, string>;
}

/** The parts of a GET or HEAD's key: the URL in normal form, the scope, the Accept and API version asked for. */
function keyPartsOf(request: HttpRequest, method: string, scopeId: string): RequestKeyParts {
  const normal = request.normal === true || knownNormal(request.url) ? request.url : normalizeUrl(request.url);
  const givenVersion = request.headers['x-github-api-version'];
  const apiVersion = givenVersion === undefined ? undefined : normalizeApiVersion(givenVersion);
  const given = request.headers.accept;
  const accept = given === DEFAULT_ACCEPT ? DEFAULT_ACCEPT : normalizeAccept(given);
  return apiVersion === undefined
    ? { url: normal, method: method as 'GET' | 'HEAD', scopeId, accept }
    : { url: normal, method: method as 'GET' | 'HEAD', scopeId, accept, apiVersion };
}

/** URLs isKnownNormalUrl said yes to: a hash lookup instead of its regular expression on a repeat (bounded). */
const KNOWN_NORMAL = new Set<string>();
const MAX_KNOWN_NORMAL = 10_000;

function knownNormal(url: string): boolean {
  if (KNOWN_NORMAL.has(url)) return true;
  if (!isKnownNormalUrl(url)) return false;
  if (KNOWN_NORMAL.size >= MAX_KNOWN_NORMAL) KNOWN_NORMAL.clear();
  KNOWN_NORMAL.add(url);
  return true;
}

const EMPTY = new Uint8Array(0);

/** Deep-freezes parsed data; a binary body's Buffer is copied instead (a Buffer cannot be frozen). */
function frozen(data: unknown): unknown {
  return Buffer.isBuffer(data) ? Buffer.from(data) : deepFreeze(data);
}

/** An answer's data: already at hand (`{ value }`), or a parser run when `data` is first read. */
type Parsed = { readonly value: unknown } | (() => unknown);

/** The parser of a body that is not kept anywhere (an origin's pass-through answer, a write's). */
function parserOf(body: Uint8Array, contentType: string | undefined): Parsed {
  return () => frozen(parseBody(body, contentType));
}

function copyBinary(data: unknown): unknown {
  return Buffer.isBuffer(data) ? Buffer.from(data) : data;
}

/**
 * An answer whose `body` text is decoded only when read (most callers read `data`): a getter on the prototype
 * keeps creating an answer as cheap as a plain object (a getter in an object literal made every hit slower).
 * `toJSON` includes `body`, so a logged or serialized answer shows it.
 */
class CachedAnswer<T> implements CachedResponse<T> {
  #text: string | undefined;
  /** The parser of `data` while it has not been read, then `{ value }` (see `answer`). */
  #parse: Parsed | undefined;
  declare status: number;
  declare headers: Record<string, string>;
  declare data: T;
  declare bytes: Uint8Array;
  declare source: ResponseSource;
  declare url: string | undefined;

  /**
   * With `parse`, `data` is made the accessor (UNPARSED_DATA) in its place among the fields, never a field first:
   * turning a field into an accessor afterwards left each answer in dictionary mode (0.4-0.5 µs to make, and every
   * read of its fields slower), where an accessor added in order keeps one shared shape (0.1-0.2 µs).
   */
  constructor(status: number, headers: Record<string, string>, data: T, bytes: Uint8Array, source: ResponseSource, url: string | undefined,
    parse?: () => unknown) {
    this.status = status;
    this.headers = headers;
    if (parse === undefined) this.data = data;
    else Object.defineProperty(this, 'data', UNPARSED_DATA);
    this.bytes = bytes;
    this.source = source;
    this.url = url;
    this.#parse = parse;
  }

  get body(): string {
    this.#text ??= textOf(this.data, this.bytes, this.headers['content-type']);
    return this.#text;
  }

  toJSON(): Record<string, unknown> {
    return { status: this.status, headers: this.headers, data: this.data, body: this.body, source: this.source, url: this.url };
  }

  /** An unparsed answer's `data`: parsed on the first call, the same value after it. */
  static parsedData(answer: CachedAnswer<unknown>): unknown {
    let parse = answer.#parse;
    if (typeof parse === 'function') {
      parse = { value: parse() };
      answer.#parse = parse;
    }
    return parse?.value;
  }

  /** Drops an unparsed answer's parser (its `data` was assigned before it was read). */
  static dropParser(answer: CachedAnswer<unknown>): void {
    answer.#parse = undefined;
  }

  /** `data` assigned to an answer sealed meanwhile (its accessor stays): the accessor answers `value` from now on. */
  static assignData(answer: CachedAnswer<unknown>, value: unknown): void {
    answer.#parse = { value };
  }
}

/**
 * `data` as a plain own field from now on. False when the answer was frozen or sealed meanwhile (immer and
 * Redux Toolkit freeze what they hold): its accessor then stays, answering the value parsed once.
 */
function settleData(target: object, value: unknown): boolean {
  return Reflect.defineProperty(target, 'data', { value, writable: true, enumerable: true, configurable: true });
}

/** One descriptor for every unparsed answer's `data` (the same accessor pair keeps their shapes shared). */
const UNPARSED_DATA: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: CachedAnswer<unknown>): unknown {
    const value = CachedAnswer.parsedData(this);
    settleData(this, value);
    return value;
  },
  set(this: CachedAnswer<unknown>, value: unknown) {
    if (settleData(this, value)) {
      CachedAnswer.dropParser(this);
      return;
    }
    // As for a frozen plain object in strict code: assigning to a frozen answer's data is a TypeError. A sealed
    // plain object takes the assignment: so does a sealed answer (its accessor answers the assigned value).
    if (Object.isFrozen(this)) throw new TypeError("Cannot assign to read only property 'data' of a frozen answer");
    CachedAnswer.assignData(this, value);
  },
};

/**
 * The answer. `data` at hand (`{ value }`) is a plain field; a parser makes `data` an own, enumerable accessor
 * that parses on its first read (or is replaced by an assignment) and then turns into the plain field it would
 * have been: a caller that reads only `status`, `bytes` or `source` (the Octokit plugin's fetch, a check of where
 * an answer came from) pays no parse (JSON.parse of a 4 KB body and its deep freeze were ~15 µs of a peer hit's
 * ~150 µs; the accessor costs ~0.5 µs), and one that spreads, clones or walks the keys of an answer still finds
 * `data` among them.
 */
function answer<T>(status: number, headers: Record<string, string>, data: Parsed | undefined, bytes: Uint8Array, source: ResponseSource,
  url: string | undefined): CachedResponse<T> {
  if (typeof data !== 'function') return new CachedAnswer<T>(status, headers, data?.value as T, bytes, source, url);
  return new CachedAnswer<T>(status, headers, undefined as T, bytes, source, url, data);
}

/** The body as text: the decoded text when the data is text, '' for a binary body, else decoded by charset. */
function textOf(data: unknown, bytes: Uint8Array, contentType: string | undefined): string {
  if (typeof data === 'string') return data;
  if (Buffer.isBuffer(data)) return '';
  return decodeText(bytes, contentType);
}

