import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { encode as cborEncode } from 'cborg';
import { decodeFrame, encodeFrame, WIRE_LIMITS, WireFormatError, type Frame } from '../src/p2p/wire.js';

describe('wire frames of /github-cache/1.5.0', () => {
  const challenge = new Uint8Array(32).fill(7);
  const proof = new Uint8Array(32).fill(9);
  const valid: Frame[] = [
    { type: 'hello', version: 1, challenge, addrs: ['/ip4/127.0.0.1/tcp/9100'], peers: [{ id: '12D3KooWAbc', addrs: ['/ip4/10.0.0.2/tcp/9100'] }] },
    { type: 'scopes', scopes: [{ id: 'anonymous', proof }, { id: '0123456789abcdef0123456789abcdef', proof }], peers: [] },
    { type: 'get', id: 0, key: 'anonymous GET https://api.github.com/x application/json', proof },
    { type: 'get', id: WIRE_LIMITS.maxId, key: 'k', proof },
    { type: 'get', id: 3, key: 'k', proof, handoff: 1 },
    { type: 'entry', id: 5, sealed: new Uint8Array([1, 2, 3]) },
    { type: 'part', id: 5, size: 10, offset: 7, bytes: new Uint8Array([1, 2, 3]) },
    { type: 'miss', id: 6, reason: 'busy' },
    { type: 'error', id: 7, message: 'upstream failed' },
    { type: 'get', id: 8, key: 'sealed:anonymous:AAAA', proof, tag: new Uint8Array(32).fill(3) },
    { type: 'get', id: 8, key: 'k', proof, handoff: 1, tag: new Uint8Array(32).fill(3) },
    { type: 'lease', id: 9, lease: WIRE_LIMITS.maxId },
    { type: 'put', lease: 0, sealed: new Uint8Array([1, 2, 3]), ttlMs: 60_000 },
    { type: 'release', lease: 4 },
    { type: 'release', lease: 5, unshareable: 1 },
    { type: 'get', id: 9, key: 'sealed:anonymous:AAAA', proof, tag: new Uint8Array(32).fill(3), refresh: 1 },
    { type: 'get', id: 10, key: 'k', plain: 1, proof },
    { type: 'get', id: 11, key: 'k', plain: 1, proof, handoff: 1 },
    { type: 'entry', id: 12, payload: { key: 'k', body: new Uint8Array([1, 2, 3]), headers: { etag: '"a"' }, status: 200 } },
  ];

  function reject(bytes: Uint8Array): string {
    try {
      decodeFrame(bytes);
    } catch (err) {
      expect(err).to.be.instanceOf(WireFormatError);
      expect(err).to.have.property('code', 'ERR_P2P_WIRE_FORMAT');
      return (err as Error).message;
    }
    throw new Error('expected a WireFormatError');
  }

  it('round-trips every frame type', () => {
    for (const frame of valid) expect(decodeFrame(encodeFrame(frame))).to.deep.equal(frame);
  });

  it('rejects bytes that are not CBOR, not canonical, or have trailing data', () => {
    expect(reject(new Uint8Array([0xff, 0x00, 0x13]))).to.include('not canonical CBOR');
    expect(reject(new Uint8Array())).to.include('not canonical CBOR');
    const withTrailing = new Uint8Array([...encodeFrame(valid[5]!), 0x00]);
    reject(withTrailing);
    for (let i = 0; i < 200; i++) {
      try {
        decodeFrame(new Uint8Array(randomBytes(1 + (i % 64))));
      } catch (err) {
        expect(err).to.be.instanceOf(WireFormatError);
      }
    }
  });

  it('rejects an absurdly nested value without crashing', () => {
    const nested = new Uint8Array(100_000).fill(0x81); // arrays of one array of ...
    expect(reject(nested)).to.be.a('string');
  });

  it('rejects an unknown type, a missing field and an extra field', () => {
    expect(reject(cborEncode({ type: 'gimme', id: 1 }))).to.include('unknown frame type "gimme"');
    expect(reject(cborEncode({ id: 1 }))).to.include('unknown frame type');
    expect(reject(cborEncode([1, 2]))).to.include('must be a CBOR map');
    expect(reject(cborEncode({ type: 'miss', id: 1 }))).to.include('missing field reason');
    expect(reject(cborEncode({ type: 'miss', id: 1, reason: 'busy', extra: 1 }))).to.include('unexpected field "extra"');
  });

  it('takes a part only within its size: a piece that is empty or runs past it, an offset at or past it, a size out of range', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    expect(reject(cborEncode({ type: 'part', id: 1, size: 10, offset: 8, bytes }))).to.include('runs past size');
    expect(reject(cborEncode({ type: 'part', id: 1, size: 10, offset: 0, bytes: new Uint8Array(0) }))).to.include('empty');
    expect(reject(cborEncode({ type: 'part', id: 1, size: 10, offset: 10, bytes }))).to.include('offset');
    expect(reject(cborEncode({ type: 'part', id: 1, size: 10, offset: -1, bytes }))).to.include('offset');
    expect(reject(cborEncode({ type: 'part', id: 1, size: 0, offset: 0, bytes }))).to.include('size');
    expect(reject(cborEncode({ type: 'part', id: 1, size: WIRE_LIMITS.maxPartedBytes + 1, offset: 0, bytes }))).to.include('size');
    expect(reject(cborEncode({ type: 'part', id: 1, size: 10, offset: 0 }))).to.include('missing field bytes');
  });

  it('takes a get\'s hand-off mark only as 1, and only on a get', () => {
    expect(decodeFrame(cborEncode({ type: 'get', id: 1, key: 'k', proof, handoff: 1 }))).to.have.property('handoff', 1);
    expect(decodeFrame(cborEncode({ type: 'get', id: 1, key: 'k', proof }))).to.not.have.property('handoff');
    for (const handoff of [0, 2, true, 'yes', null]) expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, handoff }))).to.include('handoff');
    expect(reject(cborEncode({ type: 'miss', id: 1, reason: 'busy', handoff: 1 }))).to.include('unexpected field "handoff"');
  });

  it('takes a get\'s plain mark only as 1 and never with a tag, and an entry with exactly one of sealed and a payload map', () => {
    expect(decodeFrame(cborEncode({ type: 'get', id: 1, key: 'k', proof, plain: 1 }))).to.have.property('plain', 1);
    for (const plain of [0, 2, true, 'yes', null]) expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, plain }))).to.include('plain is not 1');
    expect(reject(cborEncode({ type: 'get', id: 1, key: 'sealed:anonymous:AAAA', proof, tag: new Uint8Array(32), plain: 1 }))).to.include('plain with a sealed key');
    expect(reject(cborEncode({ type: 'miss', id: 1, reason: 'busy', plain: 1 }))).to.include('unexpected field "plain"');
    expect(reject(cborEncode({ type: 'entry', id: 1 }))).to.include('exactly one of sealed and payload');
    expect(reject(cborEncode({ type: 'entry', id: 1, sealed: new Uint8Array(3), payload: {} }))).to.include('exactly one of sealed and payload');
    for (const payload of ['x', 3, [1], new Uint8Array(3), null]) expect(reject(cborEncode({ type: 'entry', id: 1, payload }))).to.include('payload is not a map');
    expect(reject(cborEncode({ type: 'put', lease: 1, payload: {}, ttlMs: 1 }))).to.include('unexpected field "payload"');
  });

  it('takes a get\'s tag only as 32 bytes, a lease number only as a request id, a put\'s ttlMs only as a non-negative integer', () => {
    expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, tag: new Uint8Array(31) }))).to.include('tag is not 32 bytes');
    expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, tag: 'x' }))).to.include('tag is not a byte string');
    expect(reject(cborEncode({ type: 'lease', id: 1, lease: -1 }))).to.include('id is not an integer');
    expect(reject(cborEncode({ type: 'lease', id: 1 }))).to.include('missing field lease');
    expect(reject(cborEncode({ type: 'put', lease: 1, sealed: new Uint8Array(3), ttlMs: -5 }))).to.include('ttlMs');
    expect(reject(cborEncode({ type: 'put', lease: 1, sealed: new Uint8Array(3), ttlMs: 1.5 }))).to.include('ttlMs');
    expect(reject(cborEncode({ type: 'put', lease: 1, sealed: 'abc', ttlMs: 1 }))).to.include('sealed is not a byte string');
    expect(reject(cborEncode({ type: 'release', lease: 1, id: 2 }))).to.include('unexpected field "id"');
  });

  it('takes a release\'s unshareable mark and a get\'s refresh mark only as 1, and refresh only with a tag', () => {
    const tag = new Uint8Array(32).fill(3);
    for (const mark of [0, 2, true, null]) {
      expect(reject(cborEncode({ type: 'release', lease: 1, unshareable: mark }))).to.include('unshareable');
      expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, tag, refresh: mark }))).to.include('refresh');
    }
    expect(reject(cborEncode({ type: 'get', id: 1, key: 'k', proof, refresh: 1 }))).to.include('refresh without tag');
    expect(reject(cborEncode({ type: 'put', lease: 1, sealed: new Uint8Array(3), ttlMs: 1, unshareable: 1 }))).to.include('unexpected field');
  });

  it('rejects wrongly typed fields', () => {
    const cases: Array<Record<string, unknown>> = [
      { type: 'get', id: '1', key: 'k', proof },
      { type: 'get', id: -1, key: 'k', proof },
      { type: 'get', id: 1.5, key: 'k', proof },
      { type: 'get', id: WIRE_LIMITS.maxId + 1, key: 'k', proof },
      { type: 'get', id: 1, key: 42, proof },
      { type: 'get', id: 1, key: 'k', proof: 'not bytes' },
      { type: 'get', id: 1, key: 'k', proof: new Uint8Array(31) },
      { type: 'entry', id: 1, sealed: 'text' },
      { type: 'miss', id: 1, reason: 'because' },
      { type: 'hello', version: 2, challenge, addrs: [], peers: [] },
      { type: 'hello', version: 1, challenge: new Uint8Array(8), addrs: [], peers: [] },
      { type: 'hello', version: 1, challenge, addrs: ['not-a-multiaddr'], peers: [] },
      { type: 'hello', version: 1, challenge, addrs: [], peers: [{ id: 'bad id!', addrs: [] }] },
      { type: 'hello', version: 1, challenge, addrs: [], peers: [{ id: 'abc', addrs: [], more: 1 }] },
      { type: 'scopes', scopes: ['anonymous'], peers: [] },
      { type: 'scopes', scopes: [{ id: 'test_looks_like_a_token', proof }], peers: [] },
    ];
    for (const value of cases) expect(reject(cborEncode(value)), JSON.stringify(value)).to.be.a('string');
  });

  it('rejects fields above their size limits', () => {
    expect(reject(cborEncode({ type: 'get', id: 1, key: 'k'.repeat(WIRE_LIMITS.keyLength + 1), proof }))).to.include('key is longer');
    expect(reject(cborEncode({ type: 'error', id: 1, message: 'm'.repeat(WIRE_LIMITS.messageLength + 1) }))).to.include('message is longer');
    const manyScopes = Array.from({ length: WIRE_LIMITS.scopes + 1 }, () => ({ id: 'anonymous', proof }));
    expect(reject(cborEncode({ type: 'scopes', scopes: manyScopes, peers: [] }))).to.include('more than');
    const manyAddrs = Array.from({ length: WIRE_LIMITS.addrs + 1 }, () => '/ip4/1.2.3.4/tcp/1');
    expect(reject(cborEncode({ type: 'hello', version: 1, challenge, addrs: manyAddrs, peers: [] }))).to.include('more than');
    const manyPeers = Array.from({ length: WIRE_LIMITS.peers + 1 }, () => ({ id: 'abc', addrs: [] }));
    expect(reject(cborEncode({ type: 'hello', version: 1, challenge, addrs: [], peers: manyPeers }))).to.include('more than');
  });

  it('rejects duplicate map keys and non-string map keys', () => {
    // {"type": "miss", "type": "miss", ...} written by hand: cborg will not encode duplicates
    const dup = new Uint8Array([0xa3, 0x64, ...Buffer.from('type'), 0x64, ...Buffer.from('miss'), 0x64, ...Buffer.from('type'), 0x64, ...Buffer.from('miss'), 0x62, ...Buffer.from('id'), 0x01]);
    reject(dup);
    reject(new Uint8Array([0xa1, 0x01, 0x02]));
  });
});
