import { CacheValueError } from '../errors.js';
import type { CacheCounters } from './counters.js';
import { KV_PREFIX, sha256Hex, viewAsBuffer, type CacheEntry } from './entry.js';
import { checkJsonValue, deepFreeze } from './json-value.js';
import { TieredEntries } from './tiered-entries.js';

/**
 * KeyValues: the key/value side of the cache (`get`, `getStale`, `put`, `invalidate`). Only JSON values are
 * stored, and exactly: a value JSON cannot carry is refused with CacheValueError and nothing changes. Values
 * handed out are deep-frozen, so mutating one cannot corrupt the cache. Keys are opaque strings under their
 * own prefix: no key/value entry can collide with a GitHub answer.
 */

/** Options of `put`. */
export interface PutOptions {
  /** Seconds the value stays fresh. Default: the TTL of the key's operation, else `defaultTtl`. */
  ttl?: number;
}

export class KeyValues {
  readonly #p: { tiers: TieredEntries; counters: CacheCounters; now: () => number; ttlForKey: (key: string) => number };

  constructor(parts: { tiers: TieredEntries; counters: CacheCounters; now: () => number; ttlForKey: (key: string) => number }) {
    this.#p = parts;
  }

  get(key: string): unknown {
    const { tiers, counters, now } = this.#p;
    const found = tiers.read(KV_PREFIX + checkKey(key));
    if (found === undefined || now() >= found.entry.expiresAt) {
      counters.missed(found !== undefined);
      return undefined;
    }
    counters.answered('memory');
    return tiers.parsed(found.item, parseFrozen);
  }

  getStale(key: string): unknown {
    const found = this.#p.tiers.read(KV_PREFIX + checkKey(key));
    if (found === undefined) return undefined;
    if (this.#p.now() >= found.entry.expiresAt) this.#p.counters.staleServed++;
    return this.#p.tiers.parsed(found.item, parseFrozen);
  }

  put(key: string, value: unknown, options: PutOptions): void {
    checkKey(key);
    // put(key, value, 60) would otherwise ignore the 60: the TTL goes in an options object.
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : `a ${typeof options} (${String(options)})`;
      throw new CacheValueError(key, `the third argument of put must be an options object such as { ttl: 60 }, got ${got}`);
    }
    const ttl = options.ttl ?? this.#p.ttlForKey(key);
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
      throw new CacheValueError(key, `ttl must be a finite number of seconds >= 0, got ${String(ttl)}`);
    }
    const problem = checkJsonValue(value);
    if (problem !== undefined) throw new CacheValueError(key, `${problem}. Only JSON values can be cached.`);
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    const now = this.#p.now();
    const entry: CacheEntry = { body, digest: sha256Hex(body), storedAt: now, expiresAt: now + ttl * 1000, status: 200, headers: {} };
    this.#p.tiers.write(KV_PREFIX + key, entry);
  }

  invalidate(key: string): boolean {
    return this.#p.tiers.delete(KV_PREFIX + checkKey(key));
  }

  invalidatePattern(prefix: string): number {
    if (typeof prefix !== 'string') throw new CacheValueError(String(prefix), 'the prefix must be a string');
    return this.#p.tiers.deleteByPrefix(KV_PREFIX + prefix);
  }
}

function checkKey(key: string): string {
  if (typeof key !== 'string') throw new CacheValueError(String(key), `a key must be a string, got a ${typeof key}`);
  return key;
}

function parseFrozen(body: Uint8Array): unknown {
  return deepFreeze(JSON.parse(viewAsBuffer(body).toString('utf8')));
}
