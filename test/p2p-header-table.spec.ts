import { expect } from 'chai';
import { decodeStrictCbor, encodeCbor } from '../src/p2p/cbor.js';
import { HeaderTableError, HeaderTableReader, HeaderTableWriter, isResolvedHeaders, MAX_PAIRS } from '../src/p2p/header-table.js';

/** Headers as api.github.com sends them on a repository (the shape @octokit/fixtures recorded; values shortened). */
function githubHeaders(n: number): Record<string, string> {
  return {
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining',
    'cache-control': 'private, max-age=60, s-maxage=60',
    'content-security-policy': "default-src 'none'",
    'content-type': 'application/json; charset=utf-8',
    date: `Wed, 02 Dec 2026 10:00:${String(n % 60).padStart(2, '0')} GMT`,
    etag: `W/"${n.toString(16).padStart(40, '0')}"`,
    'referrer-policy': 'origin-when-cross-origin, strict-origin-when-cross-origin',
    server: 'GitHub.com',
    'strict-transport-security': 'max-age=31536000; includeSubdomains; preload',
    vary: 'Accept, Authorization, Cookie, X-GitHub-OTP',
    'x-github-media-type': 'github.v3; format=json',
    'x-github-request-id': `C0DE:${n}:1A2B3C:4D5E6F:0000${n}`,
    'x-ratelimit-limit': '5000',
    'x-ratelimit-remaining': String(4999 - n),
    'x-ratelimit-resource': 'core',
  };
}

describe('header pairs sent once per stream (header-table)', () => {
  it('resolves every answer to the headers encoded, in order, and sends a repeated pair as its index from the second answer on', () => {
    const writer = new HeaderTableWriter();
    const reader = new HeaderTableReader();
    const sizes: number[] = [];
    for (let n = 0; n < 5; n++) {
      const headers = githubHeaders(n);
      const encoded = writer.encode(headers);
      sizes.push(encodeCbor(encoded).byteLength);
      const resolved = reader.resolve(encodeAndDecode(encoded));
      expect(Object.entries(resolved)).to.deep.equal(Object.entries(headers));
      expect(isResolvedHeaders(resolved)).to.equal(true);
      if (n > 0) {
        // Only the values that differ on every answer go as pairs: date, etag, request id, remaining.
        expect(encoded.filter((element) => typeof element !== 'number').map((pair) => (pair as string[])[0])).to.deep.equal(['date', 'etag', 'x-github-request-id', 'x-ratelimit-remaining']);
      }
    }
    expect(writer.size).to.equal(12);
    expect(reader.size).to.equal(12);
    expect(sizes[1]!).to.be.below(sizes[0]! / 3);
    expect(isResolvedHeaders({ ...githubHeaders(0) })).to.equal(false);
  });

  it('refuses an index not defined on the stream, a pair the schema refuses, a name twice, a bad mark, and definitions past the bound', () => {
    const cases: Array<[string, unknown[]]> = [
      ['undefined index', [0]],
      ['negative index', [-1]],
      ['fractional index', [0.5]],
      ['a header name in capitals', [['Content-Type', 'x']]],
      ['a value on two lines', [['x-a', 'one\r\ntwo']]],
      ['a value that is not a string', [['x-a', 5]]],
      ['__proto__', [['__proto__', 'x', 1]]],
      ['a name twice', [['x-a', 'one'], ['x-a', 'two']]],
      ['a third item other than 1', [['x-a', 'one', 2]]],
      ['a pair of one item', [['x-a']]],
      ['a map', [{ 'x-a': 'one' }]],
      ['too many headers', Array.from({ length: 257 }, (_, i) => [`x-${i}`, 'v'])],
    ];
    for (const [what, encoded] of cases) {
      expect(() => new HeaderTableReader().resolve(encoded), what).to.throw(HeaderTableError);
    }
    const reader = new HeaderTableReader();
    for (let i = 0; i < MAX_PAIRS; i++) reader.resolve([[`x-${i}`, 'v', 1]]);
    expect(() => reader.resolve([['x-one-more', 'v', 1]])).to.throw(HeaderTableError, /bound/);
    expect(reader.resolve([MAX_PAIRS - 1])).to.deep.equal({ [`x-${MAX_PAIRS - 1}`]: 'v' });
  });

  it('keeps answering once its table is full: new pairs go as they are, and the reader follows', () => {
    const writer = new HeaderTableWriter();
    const reader = new HeaderTableReader();
    for (let i = 0; i < MAX_PAIRS + 10; i++) {
      const headers = { 'content-type': 'application/json', [`x-route-${i}`]: `value-${i}` };
      expect(reader.resolve(encodeAndDecode(writer.encode(headers)))).to.deep.equal(headers);
    }
    expect(writer.size).to.equal(MAX_PAIRS);
    expect(reader.size).to.equal(MAX_PAIRS);
  });

  it('leaves out what the entry schema refuses, as an owner sending a map does', () => {
    const writer = new HeaderTableWriter();
    const encoded = writer.encode({ 'x-good': 'yes', 'X-Bad': 'name', 'x-bad-value': 'a\nb' });
    expect(new HeaderTableReader().resolve(encoded)).to.deep.equal({ 'x-good': 'yes' });
  });
});

/** What crosses the wire: the array through canonical CBOR and the asker's strict decoder. */
function encodeAndDecode(encoded: unknown[]): unknown[] {
  return decodeStrictCbor(encodeCbor(encoded)) as unknown[];
}
