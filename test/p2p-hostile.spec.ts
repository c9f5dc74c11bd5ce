import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { encode as cborEncode } from 'cborg';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { ANONYMOUS_SCOPE, entryKeyOf, scopeIdOf } from '../src/cache/scope.js';
import { sealEntry, sealPayload } from '../src/p2p/envelope.js';
import { sealKey } from '../src/p2p/sealed-key.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { encodeFrame, type Frame } from '../src/p2p/wire.js';
import { addressOf, entryFor, removeTmpDirs, requestKey, startNode, waitFor, type SpecNode } from './support/p2p-fixtures.js';
import { ANONYMOUS_KEY, HostilePeer } from './support/p2p-hostile.js';

/** A varint length prefix, as lpStream writes it. */
function varint(value: number): Uint8Array {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return new Uint8Array(out);
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return new Uint8Array([...varint(bytes.byteLength), ...bytes]);
}

describe('PeerNetwork against a hostile member of the fleet', function () {
  this.timeout(20_000);
  const TOKEN = 'test_spec_token_of_the_victim_0000000000';
  let victim: SpecNode;
  let good: SpecNode;
  let hostile: HostilePeer;

  async function setUp(limits: { maxStrikes?: number } = {}): Promise<void> {
    victim = await startNode({ tokens: [TOKEN], limits });
    good = await startNode({ p2p: { bootstrapPeers: [addressOf(victim)] } });
    hostile = await HostilePeer.start();
    await hostile.connect(addressOf(victim));
    await waitFor(() => victim.network.stats().peers.filter((p) => p.scopes === 1).length === 2, 'the victim to see the good and the hostile peer');
  }

  afterEach(async () => {
    await Promise.all([victim?.network.stop(), good?.network.stop(), hostile?.stop()]);
    removeTmpDirs();
  });

  /** Keys of the anonymous scope that `owner` owns among the victim, the good peer and the hostile one. */
  function keysOwnedBy(owner: string, count: number, tag: string): string[] {
    const ids = [victim.network.peerId, good.network.peerId, hostile.peerId];
    const keys: string[] = [];
    for (let i = 0; keys.length < count; i++) {
      const key = requestKey(ANONYMOUS_SCOPE, `${tag}-${i}`);
      if (rendezvousOwner(key, ids) === owner) keys.push(key);
    }
    return keys;
  }

  async function goodPeerIsServed(tag: string): Promise<void> {
    const [key] = keysOwnedBy(victim.network.peerId, 1, tag);
    const answer = await good.network.fetch(key!, ANONYMOUS_SCOPE);
    expect(answer.kind).to.equal('entry');
  }

  it('rejects and counts entries with a wrong digest, a future timestamp, a huge TTL, another key, a bad schema or garbage', async () => {
    await setUp({ maxStrikes: 100 });
    const now = Date.now();
    const payload = (key: string, changes: Record<string, unknown>): Record<string, unknown> => {
      const entry = entryFor(key, now);
      return { key, body: entry.body, digest: entry.digest, storedAt: entry.storedAt, expiresAt: entry.expiresAt, status: 200, headers: {}, ...changes };
    };
    const cases: Array<{ reason: string; seal: (key: string) => Uint8Array }> = [
      { reason: 'digest', seal: (key) => sealPayload(payload(key, { digest: sha256Hex('something else') }), key, ANONYMOUS_KEY) },
      { reason: 'future', seal: (key) => sealPayload(payload(key, { storedAt: now + 600_000, expiresAt: now + 660_000 }), key, ANONYMOUS_KEY) },
      { reason: 'ttl', seal: (key) => sealPayload(payload(key, { expiresAt: now + 100 * 86_400_000 }), key, ANONYMOUS_KEY) },
      { reason: 'key', seal: (key) => sealPayload(payload(key, { key: requestKey(ANONYMOUS_SCOPE, 'another') }), key, ANONYMOUS_KEY) },
      { reason: 'decrypt', seal: (key) => sealEntry(entryFor(key), requestKey(ANONYMOUS_SCOPE, 'another'), ANONYMOUS_KEY) },
      { reason: 'decrypt', seal: () => new Uint8Array(randomBytes(200)) },
      { reason: 'schema', seal: (key) => sealPayload({ ...payload(key, {}), status: 'ok' }, key, ANONYMOUS_KEY) },
    ];
    const keys = keysOwnedBy(hostile.peerId, cases.length, 'bad');
    for (const [i, { reason, seal }] of cases.entries()) {
      hostile.answer = (get) => ({ type: 'entry', id: get.id, sealed: seal(get.key) });
      const answer = await victim.network.fetch(keys[i]!, ANONYMOUS_SCOPE);
      expect(answer, reason).to.deep.equal({ kind: 'unavailable', reason: `rejected the owner's entry (${reason})` });
    }
    expect(victim.network.stats().rejected).to.deep.equal({ digest: 1, future: 1, ttl: 1, key: 1, decrypt: 2, schema: 1 });
    expect(victim.network.stats().entriesReceived).to.equal(0);
    await goodPeerIsServed('after-bad-entries');
  });

  it('closes only the stream of a garbage frame, an unknown type, a wrongly typed field or a 64 MiB length prefix, and keeps serving', async () => {
    await setUp({ maxStrikes: 100 });
    const attacks: Array<{ kind: string; bytes: Uint8Array }> = [
      { kind: 'frame', bytes: lengthPrefixed(new Uint8Array(randomBytes(64))) },
      { kind: 'frame', bytes: lengthPrefixed(cborEncode({ type: 'gimme', id: 1 })) },
      { kind: 'frame', bytes: lengthPrefixed(cborEncode({ type: 'get', id: 'one', key: 'k', proof: new Uint8Array(32) })) },
      { kind: 'frame', bytes: lengthPrefixed(cborEncode({ type: 'get', id: 1, key: 'k'.repeat(100_000), proof: new Uint8Array(32) })) },
      { kind: 'oversize', bytes: new Uint8Array([...varint(64 * 1024 * 1024), ...randomBytes(1024)]) },
      { kind: 'oversize', bytes: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) },
    ];
    for (const attack of attacks) {
      const asker = await hostile.openAsker(addressOf(victim));
      await asker.writeRaw(attack.bytes);
      try {
        await asker.closedByVictim();
      } catch (err) {
        throw new Error(`${attack.kind} ${Buffer.from(attack.bytes.subarray(0, 40)).toString('hex')}: ${(err as Error).message}`);
      }
    }
    expect(victim.network.stats().rejected).to.deep.equal({ frame: 4, oversize: 2 });
    expect(victim.network.stats().disconnectedForAbuse).to.equal(0);
    await goodPeerIsServed('after-garbage');
  });

  it('disconnects a peer after 5 bad frames and refuses it for a while, while the good peer is still served', async () => {
    await setUp();
    for (let i = 0; i < 5; i++) {
      const asker = await hostile.openAsker(addressOf(victim));
      await asker.writeRaw(lengthPrefixed(new Uint8Array(randomBytes(16))));
      await asker.closedByVictim();
    }
    await waitFor(() => hostile.node.getConnections().length === 0, 'the victim to hang up');
    expect(victim.network.stats().disconnectedForAbuse).to.equal(1);
    expect(victim.network.stats().peers.map((p) => p.id)).to.deep.equal([good.network.peerId]);
    let reconnected = true;
    try {
      await hostile.openAsker(addressOf(victim));
    } catch {
      reconnected = false;
    }
    expect(reconnected).to.equal(false);
    await goodPeerIsServed('after-ban');
  });

  it('serves a get only with a valid proof of its scope, for a scope it holds, for a well-formed key', async () => {
    await setUp({ maxStrikes: 100 });
    const asker = await hostile.openAsker(addressOf(victim));
    const victimScope = scopeIdOf(TOKEN);
    const asks: Array<{ frame: Frame; reason: string }> = [
      // the hostile peer does not hold the victim's token: it cannot make a proof for its scope
      { frame: { type: 'get', id: 1, key: requestKey(victimScope, 1), proof: new Uint8Array(randomBytes(32)) }, reason: 'bad-proof' },
      // a valid proof for another key does not do either
      { frame: { ...asker.validGet(2, requestKey(ANONYMOUS_SCOPE, 'x')), key: requestKey(ANONYMOUS_SCOPE, 'y') }, reason: 'bad-proof' },
      { frame: { type: 'get', id: 3, key: requestKey(scopeIdOf('test_nobody_holds_this_token_000000000'), 1), proof: new Uint8Array(32) }, reason: 'not-held' },
      { frame: asker.validGet(4, 'not a request key'), reason: 'bad-key' },
    ];
    for (const { frame, reason } of asks) {
      await asker.send(frame);
      expect(await asker.answerTo((frame as { id: number }).id)).to.deep.equal({ type: 'miss', id: (frame as { id: number }).id, reason });
    }
    // with a valid proof of the anonymous scope (fleet members hold it) it is served
    const key = requestKey(ANONYMOUS_SCOPE, 'served');
    await asker.send(asker.validGet(5, key));
    expect(await asker.answerTo(5)).to.have.property('type', 'entry');
    expect(victim.network.stats().rejected).to.deep.equal({ proof: 2, request: 1 });
  });

  it('serves a sealed get only once the key opens under a scope it holds and the proof is valid; waits a grace for a scope it lacks', async () => {
    await setUp({ maxStrikes: 100 });
    const asker = await hostile.openAsker(addressOf(victim));
    const victimScope = scopeIdOf(TOKEN);
    const nobody = 'test_nobody_holds_this_token_000000000';
    const asks: Array<{ frame: Frame; reason: string }> = [
      // a key sealed under the victim's scope (as only a holder can), with a proof the hostile peer cannot make
      { frame: { type: 'get', id: 1, key: sealKey(requestKey(victimScope, 1), victimScope, entryKeyOf(TOKEN))!, proof: new Uint8Array(randomBytes(32)) }, reason: 'bad-proof' },
      // a sealed key that does not open under the scope it names
      { frame: { type: 'get', id: 2, key: `sealed:${victimScope}:${Buffer.from(randomBytes(64)).toString('base64url')}`, proof: new Uint8Array(32) }, reason: 'bad-proof' },
      { frame: { type: 'get', id: 3, key: 'sealed:not-a-scope:AAAA', proof: new Uint8Array(32) }, reason: 'bad-key' },
    ];
    for (const { frame, reason } of asks) {
      await asker.send(frame);
      expect(await asker.answerTo((frame as { id: number }).id)).to.deep.equal({ type: 'miss', id: (frame as { id: number }).id, reason });
    }
    expect(victim.network.stats().rejected).to.deep.equal({ proof: 2, request: 1 });
    // A scope the victim does not hold: held for the grace (working frames meanwhile), then not-held; the next
    // sealed get of that scope is refused at once, without a second grace.
    const sealedNobody = (id: number): Frame => ({ type: 'get', id, key: sealKey(requestKey(scopeIdOf(nobody), id), scopeIdOf(nobody), entryKeyOf(nobody))!, proof: new Uint8Array(32) });
    await asker.send(sealedNobody(4));
    const seen: Frame[] = [];
    do seen.push(await asker.answerTo(4, 15_000));
    while (seen.at(-1)!.type === 'working');
    expect(seen.at(-1)).to.deep.equal({ type: 'miss', id: 4, reason: 'not-held' });
    expect(seen.length, 'working frames during the grace').to.be.greaterThan(1);
    await asker.send(sealedNobody(5));
    expect(await asker.answerTo(5)).to.deep.equal({ type: 'miss', id: 5, reason: 'not-held' });
    expect(victim.network.stats().requestsServed).to.equal(0);
    await goodPeerIsServed('after-sealed');
  });

  it('never makes a peer that claims a scope without proof a candidate owner of it', async () => {
    victim = await startNode({ tokens: [TOKEN], limits: { maxStrikes: 100 } });
    good = await startNode({ tokens: [TOKEN], p2p: { bootstrapPeers: [addressOf(victim)] } });
    hostile = await HostilePeer.start();
    const victimScope = scopeIdOf(TOKEN);
    hostile.claims = () => [{ id: victimScope, proof: new Uint8Array(randomBytes(32)) }];
    await hostile.connect(addressOf(victim));
    await waitFor(() => victim.network.stats().peers.length === 2 && victim.network.stats().rejected.proof === 1, 'the victim to see both peers and check the claim');
    const hostileView = victim.network.stats().peers.find((p) => p.id === hostile.peerId);
    expect(hostileView?.scopes).to.equal(0);
    expect(victim.network.stats().rejected).to.deep.equal({ proof: 1 });
    const keys = Array.from({ length: 30 }, (_, i) => requestKey(victimScope, i));
    await Promise.all(keys.map((key) => victim.network.fetch(key, victimScope)));
    expect(hostile.gets).to.deep.equal([]);
  });

  it('answers a flood of gets beyond 256 in flight with miss busy, and serves the rest', async () => {
    await setUp();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = 0;
    const serve = victim.backend.serveAsOwner.bind(victim.backend);
    victim.backend.serveAsOwner = async (key: string): Promise<CacheEntry | undefined> => {
      held++;
      await gate;
      return serve(key);
    };
    const asker = await hostile.openAsker(addressOf(victim));
    const ids = Array.from({ length: 400 }, (_, i) => i + 1);
    await asker.writeRaw(new Uint8Array(Buffer.concat(ids.map((id) => lengthPrefixed(encodeFrame(asker.validGet(id, requestKey(ANONYMOUS_SCOPE, `flood-${id}`))))))));
    const answers = new Map<number, Frame>();
    await waitFor(() => held === 256, '256 requests in flight');
    release();
    for (const id of ids) answers.set(id, await asker.answerTo(id));
    const kinds = [...answers.values()].map((f) => (f.type === 'miss' ? `miss ${f.reason}` : f.type));
    expect(kinds.filter((k) => k === 'entry')).to.have.length(256);
    expect(kinds.filter((k) => k === 'miss busy')).to.have.length(144);
    await goodPeerIsServed('after-flood');
  });
});
