import { expect } from 'chai';
import { decode as cborgDecode, encode as cborgEncode } from 'cborg';
import { decodeDirect, decodeStrictCbor, encodeCbor, encodeDirect, NOT_DIRECT } from '../src/p2p/cbor.js';
import { STRICT_CBOR_DECODE } from '../src/p2p/strict-cbor.js';
import { sortsDuring } from '../support/sort-spy.js';
import { mulberry32 } from '../support/workload.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** cborg's strict decode as a comparable outcome: the value, or the error message. */
function cborgOutcome(bytes: Uint8Array): { value?: unknown; error?: string } {
  try {
    return { value: cborgDecode(bytes, STRICT_CBOR_DECODE) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function fastOutcome(bytes: Uint8Array): { value?: unknown; error?: string } {
  try {
    return { value: decodeStrictCbor(bytes) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const INTS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER, -1, -24, -25, -256, -257, -65_537, -0x1_0000_0001, -Number.MAX_SAFE_INTEGER, 1_732_000_000_000];
const STRINGS = ['', 'a', 'type', 'x'.repeat(23), 'x'.repeat(24), 'y'.repeat(255), 'z'.repeat(256), 'é', 'ünïcødé', '🚀 rocket', '\uFEFFbom', 'a\uD800b', '\uDC00', 'k'.repeat(70_000), '日本語'.repeat(30), '\u0000nul', 'line\nbreak'];

function randomValue(random: () => number, depth: number): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const kind = random();
  if (depth > 3 || kind < 0.25) return pick(INTS);
  if (kind < 0.5) return pick(STRINGS);
  if (kind < 0.6) return new Uint8Array(Math.floor(random() * 40)).map(() => Math.floor(random() * 256));
  if (kind < 0.65) return pick<unknown>([1.5, -0.25, Number.NaN, Infinity, undefined, null, true, false, 2 ** 60, BigInt(5), Buffer.from([1, 2]), new Uint16Array(2), new Map([['a', 1]])]);
  if (kind < 0.8) return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
  const record: Record<string, unknown> = {};
  const keys = Math.floor(random() * 7);
  for (let i = 0; i < keys; i++) record[pick(['type', 'id', 'key', 'proof', 'sealed', 'a', 'b', 'bb', 'ccc', 'é', 'z', '10', '2', 'headers', 'x'.repeat(30), '🚀'])] = randomValue(random, depth + 1);
  return record;
}

describe('CBOR of frames and payloads (cborg-compatible direct path)', () => {
  const frames = [
    { type: 'hello', version: 1, challenge: new Uint8Array(32).fill(7), addrs: ['/ip4/127.0.0.1/tcp/9100'], peers: [{ id: '12D3KooWAbc', addrs: ['/ip4/10.0.0.2/tcp/9100'] }] },
    { type: 'scopes', scopes: [{ id: 'anonymous', proof: new Uint8Array(32) }], peers: [] },
    { type: 'get', id: 0xffff_ffff, key: 'https://api.github.com/x GET anonymous application/json', proof: new Uint8Array(32).fill(9) },
    { type: 'entry', id: 5, sealed: new Uint8Array(5_000).fill(3) },
    { type: 'miss', id: 6, reason: 'busy' },
    { type: 'working', id: 7 },
    {
      key: 'k', body: '{"full_name":"octo/hello","description":"ünïcødé 🚀"}', digest: 'a'.repeat(64), storedAt: 1_732_000_000_000, expiresAt: 1_732_000_060_000,
      status: 200, headers: { 'content-type': 'application/json; charset=utf-8', etag: 'W/"x"', 'x-github-media-type': 'github.v3' }, etag: 'W/"x"',
    },
  ];

  it('encodes frames and entry payloads to exactly cborg\'s bytes, on the direct path', () => {
    for (const frame of frames) {
      expect(encodeDirect(frame)).to.not.equal(undefined);
      expect(hex(encodeCbor(frame))).to.equal(hex(cborgEncode(frame)));
    }
  });

  it('decodes frames and entry payloads on the direct path, to cborg\'s values', () => {
    for (const frame of frames) {
      const bytes = cborgEncode(frame);
      expect(decodeDirect(bytes)).to.not.equal(NOT_DIRECT);
      expect(decodeDirect(bytes)).to.deep.equal(cborgDecode(bytes, STRICT_CBOR_DECODE));
    }
  });

  it('encodes random values to exactly cborg\'s bytes (or throws where cborg throws)', () => {
    const random = mulberry32(4242);
    let direct = 0;
    for (let i = 0; i < 3_000; i++) {
      const value = randomValue(random, 0);
      let expected: string;
      try {
        expected = hex(cborgEncode(value));
      } catch (err) {
        expect(() => encodeCbor(value)).to.throw((err as Error).message);
        continue;
      }
      expect(hex(encodeCbor(value)), `value #${i}`).to.equal(expected);
      if (encodeDirect(value) !== undefined) direct++;
    }
    expect(direct).to.be.greaterThan(1_000);
  });

  it('decodes the header names api.github.com sends (read as known strings) and names one byte off them, in any order, as cborg does', () => {
    const names = ['connection', 'content-security-policy', 'date', 'strict-transport-security', 'x-content-type-options', 'x-frame-options',
      'x-github-request-id', 'x-xss-protection', 'access-control-allow-origin', 'access-control-expose-headers', 'referrer-policy',
      'x-github-media-type', 'x-oauth-scopes', 'x-accepted-oauth-scopes', 'content-length', 'content-type', 'cache-control', 'etag', 'vary',
      'server', 'x-github-api-version-selected', 'github-authentication-token-expiration', 'last-modified', 'location', 'accept-ranges',
      'transfer-encoding', 'link', 'content-encoding'];
    const near = names.flatMap((name) => [`${name.slice(0, -1)}${name.endsWith('z') ? 'y' : 'z'}`, `z${name.slice(1)}`, name.toUpperCase(), `${name}x`]);
    const random = mulberry32(11);
    for (let round = 0; round < 50; round++) {
      const pool = [...names, ...near].filter(() => random() < 0.4);
      const headers: Record<string, string> = {};
      for (const name of pool.sort(() => random() - 0.5)) headers[name] = `v-${name}`;
      const bytes = cborgEncode({ headers, id: round });
      const direct = decodeDirect(bytes);
      expect(direct).to.not.equal(NOT_DIRECT);
      expect(direct).to.deep.equal(cborgDecode(bytes, STRICT_CBOR_DECODE));
      expect(Object.keys((direct as { headers: object }).headers)).to.deep.equal(Object.keys(cborgDecode(bytes, STRICT_CBOR_DECODE).headers as object));
    }
  });

  it('orders map keys as cborg does for maps of 0 to 40 keys, in any insertion order, ASCII or not', () => {
    const random = mulberry32(777);
    const pool = ['a', 'b', 'z', 'aa', 'ab', 'ba', 'id', 'key', 'type', 'etag', 'body', 'status', 'headers', 'sealed', 'é', 'ée', 'zz', '🚀', 'x-a', 'x-b',
      'content-type', 'cache-control', 'x-github-request-id', 'vary', 'date', 'link', '10', '2', 'A', 'Z', '_', '~', 'q'.repeat(30), 'q'.repeat(29),
      'last-modified', 'lastModified', 'storedAt', 'expiresAt', 'digest', 'proof', 'ü', 'u'];
    for (let i = 0; i < 600; i++) {
      const shuffled = [...pool].sort(() => random() - 0.5);
      const ascii = random() < 0.5;
      const names = shuffled.filter((name) => !ascii || /^[\x00-\x7f]*$/.test(name)).slice(0, Math.floor(random() * 41));
      const record: Record<string, unknown> = {};
      for (const name of names) record[name] = Math.floor(random() * 1000);
      expect(encodeDirect(record), `map #${i}`).to.not.equal(undefined);
      expect(hex(encodeCbor(record)), `map #${i} (${names.length} keys)`).to.equal(hex(cborgEncode(record)));
    }
  });

  it('checks keys already in cborg\'s order in one pass, without sorting; out of order, equal lengths and non-ASCII still sort', () => {
    const counted = (value: unknown): number => sortsDuring(() => encodeCbor(value));
    expect(counted({ id: 1, key: 'k', type: 'get', proof: new Uint8Array(32) }), 'a get frame as asking.ts builds it').to.equal(0);
    expect(counted({ id: 1, type: 'entry', sealed: new Uint8Array(8) }), 'an entry frame as serving.ts builds it').to.equal(0);
    expect(counted({ a: 1, b: { x: 1, yy: 2 }, cc: [{ d: 1, ee: 2 }] }), 'nested, all in order').to.equal(0);
    expect(counted({ type: 'get', id: 1 }), 'out of order').to.be.greaterThan(0);
    expect(counted({ tag: 1, key: 2 }), 'equal lengths out of bytewise order').to.be.greaterThan(0);
    expect(counted({ a: 1, é: 2 }), 'a non-ASCII key').to.be.greaterThan(0);
    for (const record of [{ id: 1, key: 'k', type: 'get' }, { type: 'get', id: 1 }, { tag: 1, key: 2 }, { key: 2, tag: 1 }, { a: 1, é: 2 }, { é: 2, a: 1 }, { zz: 1, b: 2, aaa: 3 }]) {
      expect(hex(encodeCbor(record)), JSON.stringify(record)).to.equal(hex(cborgEncode(record)));
    }
  });

  it('decodes to cborg\'s values, and refuses what cborg refuses, for valid, mutated, truncated and random bytes', () => {
    const random = mulberry32(777);
    const inputs: Uint8Array[] = frames.map((f) => cborgEncode(f));
    for (let i = 0; i < 1_500; i++) {
      try {
        inputs.push(cborgEncode(randomValue(random, 0)));
      } catch {
        // not encodable: skip
      }
    }
    const cases: Uint8Array[] = [];
    for (const input of inputs) {
      cases.push(input);
      const flipped = input.slice();
      flipped[Math.floor(random() * flipped.byteLength)] = Math.floor(random() * 256);
      cases.push(flipped);
      cases.push(input.subarray(0, Math.floor(random() * input.byteLength)));
      cases.push(new Uint8Array([...input, 0x00]));
      cases.push(new Uint8Array(Math.floor(random() * 20)).map(() => Math.floor(random() * 256)));
    }
    const crafted = [
      [0x18, 0x05], [0x19, 0x00, 0x10], [0x1a, 0, 0, 0xff, 0xff], [0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], [0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0],
      [0x1b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x3b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], [0x3b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      [0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02], [0xa1, 0x01, 0x02], [0xa1, 0x69, ...Buffer.from('__proto__'), 0xa0], [0x63, 0xef, 0xbb, 0xbf], [0x64, 0xef, 0xbb, 0xbf, 0x61],
      [0x63, 0xff, 0x61, 0x62], [0x62, 0xc3, 0x28], [0x9f, 0x01, 0xff], [0xbf, 0xff], [0x5f, 0xff], [0xc1, 0x01], [0xf5], [0xf6], [0xf7], [0xfb, 0, 0, 0, 0, 0, 0, 0, 0],
      [0x78, 0x03, 0x61, 0x62, 0x63], [0x5a, 0xff, 0xff, 0xff, 0xff], [0x9a, 0xff, 0xff, 0xff, 0xff], [0xba, 0xff, 0xff, 0xff, 0xff], [0xa2, 0x62, 0x62, 0x62, 0x01, 0x61, 0x61, 0x02],
      [0x81, 0x81, 0x81, 0x81, 0x80], new Array(40).fill(0x81), [],
    ].map((bytes) => new Uint8Array(bytes));
    cases.push(...crafted);
    let direct = 0;
    cases.push(...cases.slice(0, 2_000).map((bytes) => Buffer.from(bytes)));
    for (const [i, bytes] of cases.entries()) {
      const expected = cborgOutcome(bytes);
      expect(fastOutcome(bytes), `case #${i}: ${hex(bytes).slice(0, 80)}`).to.deep.equal(expected);
      const value = decodeDirect(bytes);
      if (value !== NOT_DIRECT) {
        // the direct path never accepts what cborg refuses, and agrees with it on the value
        direct++;
        expect(expected.error, `case #${i}`).to.equal(undefined);
        expect(value, `case #${i}`).to.deep.equal(expected.value);
      }
    }
    expect(direct).to.be.greaterThan(1_000);
  });

  it('returns large byte strings as views of the input only when asked to', () => {
    const bytes = encodeCbor({ sealed: new Uint8Array(2_000).fill(4), proof: new Uint8Array(32).fill(5) });
    for (const input of [bytes, Buffer.from(bytes)]) {
      const viewed = decodeStrictCbor(input, { viewBytesFrom: 1024 }) as { sealed: Uint8Array; proof: Uint8Array };
      expect(viewed).to.deep.equal(cborgDecode(input, STRICT_CBOR_DECODE));
      expect(viewed.sealed.constructor).to.equal(Uint8Array);
      expect(viewed.sealed.buffer).to.equal(input.buffer);
      expect(viewed.proof.buffer).to.not.equal(input.buffer);
      const copied = decodeStrictCbor(input) as { sealed: Uint8Array };
      expect(copied.sealed.buffer).to.not.equal(input.buffer);
    }
  });

  it('copies byte strings out of the input into plain Uint8Arrays, as cborg does, from a Uint8Array or a Buffer', () => {
    for (const bytes of [encodeCbor({ sealed: new Uint8Array([1, 2, 3]) }), Buffer.from(encodeCbor({ sealed: new Uint8Array([1, 2, 3]) }))]) {
      const decoded = decodeStrictCbor(bytes) as { sealed: Uint8Array };
      expect(decoded).to.deep.equal(cborgDecode(bytes, STRICT_CBOR_DECODE));
      expect(decoded.sealed.constructor).to.equal(Uint8Array);
      bytes.fill(0);
      expect([...decoded.sealed]).to.deep.equal([1, 2, 3]);
    }
  });
});
