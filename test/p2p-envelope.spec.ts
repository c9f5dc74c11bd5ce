import { createCipheriv, randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { expect } from 'chai';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { ANONYMOUS_SCOPE, entryKeyOf } from '../src/cache/scope.js';
import { entryPayload, openEntry, openPlainEntry, payloadBytesBound, PeerEntryRejected, sealEntry, sealPayload, type OpenEntryOptions } from '../src/p2p/envelope.js';
import { decodeStrictCbor, encodeCbor } from '../src/p2p/cbor.js';
import { anonymousEntryKeyOf, handshakePrologueOf, swarmKeyOf } from '../src/p2p/fleet-keys.js';
import { decodeFrame, encodeFrame, PROTOCOL } from '../src/p2p/wire.js';
import { requestKey } from './support/p2p-fixtures.js';
import { sortsDuring } from '../support/sort-spy.js';

describe('envelope (sealed entries on the wire)', () => {
  const NOW = 1_700_000_000_000;
  const aesKey = entryKeyOf('test_envelope_spec_token_000000000000000');
  const key = requestKey(ANONYMOUS_SCOPE, 'envelope');
  const body = JSON.stringify({ full_name: 'octo/repo', stars: 42 });
  const entry: CacheEntry = {
    body: Buffer.from(body), digest: sha256Hex(body), storedAt: NOW - 1_000, expiresAt: NOW + 59_000, status: 200,
    headers: { 'content-type': 'application/json', etag: '"abc"' }, etag: '"abc"', lastModified: 'Tue, 14 Nov 2023 22:13:20 GMT',
  };
  const options: OpenEntryOptions = { maxEntryTtlSeconds: 3600, now: () => NOW };

  function payload(changes: Record<string, unknown> = {}): Record<string, unknown> {
    return { key, body: Buffer.from(body), digest: entry.digest, storedAt: entry.storedAt, expiresAt: entry.expiresAt, status: 200, headers: {}, ...changes };
  }

  function rejection(open: () => unknown): string {
    try {
      open();
    } catch (err) {
      expect(err).to.be.instanceOf(PeerEntryRejected);
      return (err as PeerEntryRejected).reason;
    }
    throw new Error('expected a PeerEntryRejected');
  }

  it('seals as version 2: a 24-byte nonce, then XChaCha20-Poly1305 under the entry key, the protocol and key as additional data', () => {
    // Protocol 1.5.0's layout, read here with @noble/ciphers' own XChaCha20-Poly1305: the format is plain XChaCha20-Poly1305.
    const sealed = Buffer.from(sealEntry(entry, key, aesKey));
    expect(sealed[0]).to.equal(2);
    const nonce = sealed.subarray(1, 25);
    const plaintext = xchacha20poly1305(aesKey, nonce, Buffer.from(`${PROTOCOL} entry v2\0${key}`, 'utf8')).decrypt(sealed.subarray(25));
    expect(decodeStrictCbor(plaintext)).to.have.property('key', key);
  });

  it('builds the payload in canonical CBOR order, so sealing sorts only headers that are out of order', () => {
    // Headers already in canonical order ('etag' is shorter than 'content-type'): nothing to sort.
    expect(sortsDuring(() => sealEntry({ ...entry, headers: { etag: '"abc"', 'content-type': 'application/json' } }, key, aesKey))).to.equal(0);
    expect(sortsDuring(() => sealEntry({ ...entry, headers: {}, etag: undefined }, key, aesKey))).to.equal(0);
    // With or without validators the fields open as they were.
    for (const variant of [entry, { ...entry, etag: undefined }, { ...entry, lastModified: undefined }, { ...entry, etag: undefined, lastModified: undefined }]) {
      const clean = JSON.parse(JSON.stringify({ ...variant, body: undefined })) as Record<string, unknown>;
      const opened = openEntry(sealEntry(variant as CacheEntry, key, aesKey), key, aesKey, options);
      expect(JSON.parse(JSON.stringify({ ...opened, body: undefined }))).to.deep.equal(clean);
    }
  });

  it('round-trips every CacheEntry field', () => {
    expect(openEntry(sealEntry(entry, key, aesKey), key, aesKey, options)).to.deep.equal(entry);
  });

  it('sends an entry\'s own headers when every one passes the schema (no copy made), and a trimmed copy otherwise', () => {
    const headers = Object.freeze({ 'content-type': 'application/json', etag: '"abc"', 'x-ratelimit-remaining': '4999' });
    expect(entryPayload({ ...entry, headers }, key).headers).to.equal(headers);
    // The schema as docs/p2p-protocol.md states it.
    const passes = (name: string, value: unknown): boolean =>
      /^[!#$%&'*+\-.^_`|~0-9a-z]{1,256}$/.test(name) && typeof value === 'string' && value.length <= 16 * 1024 && !/[\r\n\0]/.test(value);
    const many: Record<string, string> = {};
    for (let i = 0; i < 257; i++) many[`x-h-${i}`] = String(i);
    for (const odd of [{ ...headers, 'x-lines': 'a\nb' }, { ...headers, 'X-Upper': 'v' }, { ...headers, 'x-nul': 'a\0' }, many]) {
      const sent = entryPayload({ ...entry, headers: odd }, key).headers as Record<string, string>;
      expect(sent).to.not.equal(odd);
      expect(sent).to.deep.equal(Object.fromEntries(Object.entries(odd).filter(([name, value]) => passes(name, value)).slice(0, 256)));
    }
  });

  it('opens an entry frozen (its headers too), without the inner key, validators only when sealed with them; any body size', () => {
    const opened = openEntry(sealEntry(entry, key, aesKey), key, aesKey, options);
    expect(Object.isFrozen(opened) && Object.isFrozen(opened.headers)).to.equal(true);
    expect(Object.keys(opened).sort()).to.deep.equal(['body', 'digest', 'etag', 'expiresAt', 'headers', 'lastModified', 'status', 'storedAt']);
    expect(Buffer.isBuffer(opened.body)).to.equal(true);
    const bare: CacheEntry = { ...entry, etag: undefined, lastModified: undefined };
    expect(Object.keys(openEntry(sealEntry(bare, key, aesKey), key, aesKey, options)).sort()).to.deep.equal(['body', 'digest', 'expiresAt', 'headers', 'status', 'storedAt']);
    // Small bodies are copied out of the decrypted payload, large ones (64 KiB and up) kept as views of it.
    for (const size of [0, 1, 64 * 1024 - 1, 64 * 1024, 300 * 1024]) {
      const bytes = randomBytes(size);
      const sized: CacheEntry = { ...entry, body: bytes, digest: sha256Hex(bytes) };
      const got = openEntry(sealEntry(sized, key, aesKey), key, aesKey, options);
      expect(Buffer.isBuffer(got.body) && Buffer.compare(got.body, bytes) === 0, `${size} bytes`).to.equal(true);
      expect(got.body.byteLength).to.equal(size);
    }
  });

  it('trims what an asker\'s schema refuses before sealing: headers beyond 256, bad names or values, validators over 1 KiB', () => {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'X-Upper': 'v', 'x-lines': 'a\nb', 'x-huge': 'v'.repeat(16 * 1024 + 1) };
    for (let i = 0; i < 300; i++) headers[`x-h-${i}`] = String(i);
    const odd: CacheEntry = { ...entry, headers, etag: `"${'e'.repeat(1_100)}"`, lastModified: 'x'.repeat(1_025) };
    const opened = openEntry(sealEntry(odd, key, aesKey), key, aesKey, options);
    expect(Object.keys(opened.headers)).to.have.length(256);
    expect(opened.headers['content-type']).to.equal('application/json');
    for (const dropped of ['X-Upper', 'x-lines', 'x-huge']) expect(opened.headers).to.not.have.property(dropped);
    expect(opened.etag).to.equal(undefined);
    expect(opened.lastModified).to.equal(undefined);
    expect(Buffer.compare(opened.body, entry.body)).to.equal(0);
  });

  it('uses a fresh nonce each time: sealing twice gives different bytes', () => {
    expect(Buffer.from(sealEntry(entry, key, aesKey)).equals(Buffer.from(sealEntry(entry, key, aesKey)))).to.equal(false);
  });

  describe('openEntry rejects', () => {
    it("with 'decrypt' an entry sealed under another scope's key", () => {
      expect(rejection(() => openEntry(sealEntry(entry, key, entryKeyOf('test_other_token_000000000000000000000')), key, aesKey, options))).to.equal('decrypt');
    });

    it("with 'decrypt' an entry sealed for another cache key (the key is authenticated data)", () => {
      expect(rejection(() => openEntry(sealEntry(entry, requestKey(ANONYMOUS_SCOPE, 'other'), aesKey), key, aesKey, options))).to.equal('decrypt');
    });

    it("with 'decrypt' a tampered ciphertext, a truncated envelope, garbage and an unknown version", () => {
      const sealed = sealEntry(entry, key, aesKey);
      const tampered = new Uint8Array(sealed);
      tampered[20] = tampered[20]! ^ 1;
      const otherVersion = new Uint8Array(sealed);
      otherVersion[0] = 3;
      for (const bytes of [tampered, sealed.subarray(0, 20), new Uint8Array(randomBytes(100)), otherVersion, new Uint8Array()]) {
        expect(rejection(() => openEntry(bytes, key, aesKey, options))).to.equal('decrypt');
      }
    });

    it("with 'decrypt' an entry sealed as protocol 1.4.0 sealed it (version 1, AES-256-GCM), refused at its version byte", () => {
      const plaintext = encodeCbor(payload());
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: 16 });
      cipher.setAAD(Buffer.from(`/github-cache/1.4.0 entry v1\0${key}`, 'utf8'));
      const old = Buffer.concat([Buffer.from([1]), nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      expect(rejection(() => openEntry(old, key, aesKey, options))).to.equal('decrypt');
      expect(() => openEntry(old, key, aesKey, options)).to.throw(PeerEntryRejected, /unknown envelope version 1/);
      // With its version byte changed to 2 it does not authenticate as ChaCha20-Poly1305 either.
      old[0] = 2;
      expect(rejection(() => openEntry(old, key, aesKey, options))).to.equal('decrypt');
    });

    it("with 'schema' a payload that is not exactly a CacheEntry", () => {
      const bad = [
        'not a map',
        payload({ status: '200' }),
        payload({ storedAt: 1.5 }),
        payload({ digest: 'ABC' }),
        payload({ headers: { 'Content-Type': 'x' } }),
        payload({ headers: { 'x-evil': 'a\r\nb' } }),
        payload({ extra: true }),
        payload({ etag: 42 }),
        (() => {
          const p = payload();
          delete p.body;
          return p;
        })(),
      ];
      for (const p of bad) expect(rejection(() => openEntry(sealPayload(p, key, aesKey), key, aesKey, options)), JSON.stringify(p)).to.equal('schema');
    });

    it("with 'digest' a body that does not match its sha256", () => {
      expect(rejection(() => openEntry(sealPayload(payload({ body: Buffer.from('tampered') }), key, aesKey), key, aesKey, options))).to.equal('digest');
    });

    it("with 'key' an entry whose inner key is not the key asked", () => {
      expect(rejection(() => openEntry(sealPayload(payload({ key: requestKey(ANONYMOUS_SCOPE, 'other') }), key, aesKey), key, aesKey, options))).to.equal('key');
    });

    it("with 'future' a storedAt beyond the allowed clock skew (30 s by default), and accepts one within it", () => {
      const within = payload({ storedAt: NOW + 29_000, expiresAt: NOW + 89_000 });
      expect(openEntry(sealPayload(within, key, aesKey), key, aesKey, options).storedAt).to.equal(NOW + 29_000);
      const beyond = payload({ storedAt: NOW + 31_000, expiresAt: NOW + 91_000 });
      expect(rejection(() => openEntry(sealPayload(beyond, key, aesKey), key, aesKey, options))).to.equal('future');
      expect(rejection(() => openEntry(sealPayload(within, key, aesKey), key, aesKey, { ...options, maxClockSkewMs: 1_000 }))).to.equal('future');
    });

    it("with 'ttl' an entry that lives longer than maxEntryTtl, or expires before it was stored", () => {
      const long = payload({ storedAt: NOW, expiresAt: NOW + 3_601_000 });
      expect(rejection(() => openEntry(sealPayload(long, key, aesKey), key, aesKey, options))).to.equal('ttl');
      const backwards = payload({ storedAt: NOW, expiresAt: NOW - 1 });
      expect(rejection(() => openEntry(sealPayload(backwards, key, aesKey), key, aesKey, options))).to.equal('ttl');
      const exact = payload({ storedAt: NOW, expiresAt: NOW + 3_600_000 });
      expect(openEntry(sealPayload(exact, key, aesKey), key, aesKey, options).expiresAt).to.equal(NOW + 3_600_000);
    });

    it('in the documented order: a payload failing several checks names the first', () => {
      const many = payload({ body: Buffer.from('tampered'), key: 'other', storedAt: NOW + 999_999, expiresAt: NOW + 999_999_999 });
      expect(rejection(() => openEntry(sealPayload(many, key, aesKey), key, aesKey, options))).to.equal('digest');
      const keyAndFuture = payload({ key: 'other', storedAt: NOW + 999_999, expiresAt: NOW + 999_999_999 });
      expect(rejection(() => openEntry(sealPayload(keyAndFuture, key, aesKey), key, aesKey, options))).to.equal('key');
    });
  });

  describe('unsealed (openPlainEntry: the payload of an entry frame, to a get that asked for it)', () => {
    /** The payload as an asker receives it: encoded in an entry frame and decoded with it (byte strings as views). */
    function received(p: Record<string, unknown>): Record<string, unknown> {
      const frame = decodeFrame(encodeFrame({ type: 'entry', id: 1, payload: p }));
      if (!('payload' in frame)) throw new Error('not an unsealed entry');
      return frame.payload as Record<string, unknown>;
    }

    it('opens what entryPayload gives: every field, frozen, the body a copy that holds none of the received frame', () => {
      const wire = received(entryPayload(entry, key));
      const opened = openPlainEntry(wire, key, options);
      expect(opened).to.deep.equal(entry);
      expect(Object.isFrozen(opened)).to.equal(true);
      expect(Object.isFrozen(opened.headers)).to.equal(true);
      const view = wire.body as Uint8Array;
      expect(opened.body.buffer).to.not.equal(view.buffer);
      expect(opened.body.byteLength).to.equal(opened.body.buffer.byteLength);
      view.fill(0);
      expect(Buffer.from(opened.body).toString()).to.equal(body);
    });

    it('bounds its encoded size from above without encoding it', () => {
      const headers: Record<string, string> = {};
      for (let i = 0; i < 40; i++) headers[`x-h-${i}`] = 'é'.repeat(i * 7);
      for (const e of [entry, { ...entry, headers }, { ...entry, body: Buffer.alloc(70_000), etag: undefined, lastModified: undefined }]) {
        const encoded = encodeFrame({ type: 'entry', id: 2 ** 32 - 1, payload: entryPayload(e, key) }).byteLength;
        expect(payloadBytesBound(e, key)).to.be.at.least(encoded);
      }
    });

    it("rejects as openEntry does: 'schema', 'digest', 'key', 'future', 'ttl', in the documented order", () => {
      expect(rejection(() => openPlainEntry('not a map', key, options))).to.equal('schema');
      expect(rejection(() => openPlainEntry(received(payload({ status: '200' })), key, options))).to.equal('schema');
      expect(rejection(() => openPlainEntry(received(payload({ headers: { 'x-evil': 'a\r\nb' } })), key, options))).to.equal('schema');
      expect(rejection(() => openPlainEntry(received(payload({ extra: true })), key, options))).to.equal('schema');
      expect(rejection(() => openPlainEntry(received(payload({ body: Buffer.from('tampered') })), key, options))).to.equal('digest');
      expect(rejection(() => openPlainEntry(received(payload({ key: requestKey(ANONYMOUS_SCOPE, 'other') })), key, options))).to.equal('key');
      expect(rejection(() => openPlainEntry(received(payload({ storedAt: NOW + 31_000, expiresAt: NOW + 91_000 })), key, options))).to.equal('future');
      expect(rejection(() => openPlainEntry(received(payload({ storedAt: NOW, expiresAt: NOW + 3_601_000 })), key, options))).to.equal('ttl');
      const many = payload({ body: Buffer.from('tampered'), key: 'other', storedAt: NOW + 999_999, expiresAt: NOW + 999_999_999 });
      expect(rejection(() => openPlainEntry(received(many), key, options))).to.equal('digest');
    });
  });

  it('gives a typed error whose message names the reason and what happens next', () => {
    try {
      openEntry(new Uint8Array(10), key, aesKey, options);
      expect.fail('expected a rejection');
    } catch (err) {
      expect(err).to.be.instanceOf(PeerEntryRejected).with.property('code', 'ERR_PEER_ENTRY_REJECTED');
      expect((err as Error).message).to.match(/\(decrypt\).*upstream/);
    }
  });
});

describe('fleet keys (derived from the shared secret)', () => {
  it('give a pnet swarm key in the swarm.key format, different per secret', () => {
    const text = new TextDecoder().decode(swarmKeyOf('0123456789abcdef-secret'));
    expect(text).to.match(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/);
    expect(swarmKeyOf('another-secret-0123456789')).to.not.deep.equal(swarmKeyOf('0123456789abcdef-secret'));
  });

  it('give an anonymous entry key unrelated to the swarm key', () => {
    const secret = '0123456789abcdef-secret';
    const anonymous = Buffer.from(anonymousEntryKeyOf(secret)).toString('hex');
    expect(anonymous).to.have.length(64);
    expect(new TextDecoder().decode(swarmKeyOf(secret))).to.not.include(anonymous);
  });

  it('give a noise prologue: a label and 32 key bytes, different per secret, holding neither the secret nor another key', () => {
    const secret = '0123456789abcdef-secret';
    const prologue = Buffer.from(handshakePrologueOf(secret));
    const label = 'github-p2p-cache fleet membership v1\n';
    expect(prologue.subarray(0, label.length).toString('utf8')).to.equal(label);
    expect(prologue.byteLength).to.equal(label.length + 32);
    expect(Buffer.from(handshakePrologueOf('another-secret-0123456789'))).to.not.deep.equal(prologue);
    expect(handshakePrologueOf(secret)).to.deep.equal(handshakePrologueOf(secret));
    const key = prologue.subarray(label.length);
    expect(prologue.toString('latin1')).to.not.include(secret);
    expect(key.toString('hex')).to.not.equal(Buffer.from(anonymousEntryKeyOf(secret)).toString('hex'));
    expect(new TextDecoder().decode(swarmKeyOf(secret))).to.not.include(key.toString('hex'));
  });
});
