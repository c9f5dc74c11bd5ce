import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { expect } from 'chai';
import { createLibp2p } from 'libp2p';
import type { CacheEntry } from '../src/cache/entry.js';
import { parseRequestKey } from '../src/cache/request-key.js';
import { ANONYMOUS_SCOPE, scopeIdOf } from '../src/cache/scope.js';
import type { ResolvedP2POptions } from '../src/options.js';
import { handshakePrologueOf } from '../src/p2p/fleet-keys.js';
import { PeerNetwork, type PeerNetworkLimits } from '../src/p2p/peer-network.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import {
  addressOf, entryFor, freePort, fullyConnected, p2pOptions, RecordingLogger, removeTmpDirs, requestKey, startNode, tmpCacheDir, UpstreamCounter, waitFor,
  MemoryBackend, SHARED_SECRET, type SpecNode,
} from './support/p2p-fixtures.js';

describe('PeerNetwork', function () {
  this.timeout(20_000);
  let nodes: SpecNode[] = [];

  afterEach(async () => {
    await Promise.all(nodes.map((node) => node.network.stop()));
    nodes = [];
    removeTmpDirs();
  });

  /** Starts `count` nodes that bootstrap from the first, and waits until each sees every other with `scopes` shared scopes. */
  async function startFleet(count: number, upstream: UpstreamCounter, options: {
    tokensOf?: (i: number) => string[]; p2p?: Partial<ResolvedP2POptions>; scopes?: number; limits?: Partial<PeerNetworkLimits>;
  } = {}): Promise<SpecNode[]> {
    const tokensOf = options.tokensOf ?? (() => []);
    const limits = options.limits === undefined ? {} : { limits: options.limits };
    const first = await startNode({ upstream, tokens: tokensOf(0), p2p: options.p2p ?? {}, ...limits });
    nodes.push(first);
    const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => startNode({
      upstream, tokens: tokensOf(i + 1), p2p: { ...options.p2p, bootstrapPeers: [addressOf(first)] }, ...limits,
    })));
    nodes.push(...rest);
    await waitFor(() => fullyConnected([first, ...rest], options.scopes ?? 1), 'a fully connected fleet');
    return [first, ...rest];
  }

  describe('three nodes on loopback', () => {
    it('make each key\'s owner serve it: 300 concurrent fetches of 100 keys cost 100 upstream calls', async () => {
      const upstream = new UpstreamCounter();
      const fleet = await startFleet(3, upstream);
      const keys = Array.from({ length: 100 }, (_, i) => requestKey(ANONYMOUS_SCOPE, i));
      const entries = await Promise.all(fleet.flatMap((node) => keys.map((key) => node.backend.get(key, ANONYMOUS_SCOPE))));
      expect(entries).to.have.length(300);
      expect(upstream.calls).to.equal(100);
      for (const key of keys) expect(upstream.perKey.get(key)).to.equal(1);
      // Each node got the keys it does not own from their owner, verified.
      const ids = fleet.map((node) => node.network.peerId);
      for (const node of fleet) {
        const notOwned = keys.filter((key) => rendezvousOwner(key, ids) !== node.network.peerId).length;
        expect(node.backend.sources.peer).to.equal(notOwned);
        expect(node.network.stats().entriesReceived).to.equal(notOwned);
        expect(node.network.stats().rejected).to.deep.equal({});
      }
      expect(fleet.reduce((sum, node) => sum + node.network.stats().requestsServed, 0)).to.equal(200);
    });

    it('keep waiting for an owner that is slow but alive (working frames), instead of fetching the key again', async () => {
      const upstream = new UpstreamCounter();
      upstream.delayMs = 1_500; // GitHub is slow: five request timeouts long
      const fleet = await startFleet(2, upstream, { p2p: { requestTimeoutMs: 300 } });
      const ids = fleet.map((node) => node.network.peerId);
      const [a, b] = fleet;
      const key = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `slow-${i}`)).find((k) => rendezvousOwner(k, ids) === b!.network.peerId)!;
      const answer = await a!.network.fetch(key, ANONYMOUS_SCOPE);
      expect(answer.kind).to.equal('entry');
      expect(a!.network.stats().timeouts).to.equal(0);
      expect(upstream.calls).to.equal(1);
    });

    it('give up on a slow upstream before maxOwnerWaitMs: the honest owner answers error (the asker goes upstream) and is not struck', async () => {
      const upstream = new UpstreamCounter();
      upstream.delayMs = 20_000;
      // The owner gives up at maxOwnerWaitMs - requestTimeoutMs (2 s): a full second before the asker's limit,
      // so a busy machine does not turn the honest owner's error into a timeout.
      const fleet = await startFleet(2, upstream, { p2p: { requestTimeoutMs: 1_000 }, limits: { maxOwnerWaitMs: 3_000 } });
      const ids = fleet.map((node) => node.network.peerId);
      const [a, b] = fleet;
      const key = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `stuck-${i}`)).find((k) => rendezvousOwner(k, ids) === b!.network.peerId)!;
      const answer = await a!.network.fetch(key, ANONYMOUS_SCOPE);
      expect(answer).to.deep.equal({ kind: 'unavailable', reason: 'owner error: the owner gave up waiting for its upstream answer' });
      expect(a!.network.stats().timeouts).to.equal(0);
      expect(a!.network.stats().rejected).to.deep.equal({});
    });

    it('answer \'self\' for the keys a node owns, so the caller goes upstream', async () => {
      const fleet = await startFleet(3, new UpstreamCounter());
      const ids = fleet.map((node) => node.network.peerId);
      const [a] = fleet;
      const key = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, i)).find((k) => rendezvousOwner(k, ids) === a!.network.peerId)!;
      expect(await a!.network.fetch(key, ANONYMOUS_SCOPE)).to.deep.equal({ kind: 'self' });
    });

    it('take the parts a caller made the key from instead of parsing it again, and still refuse parts of another scope', async () => {
      const upstream = new UpstreamCounter();
      const fleet = await startFleet(2, upstream);
      const ids = fleet.map((node) => node.network.peerId);
      const [a, b] = fleet;
      const keys = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `parts-${i}`)).filter((k) => rendezvousOwner(k, ids) === b!.network.peerId);
      const parts = parseRequestKey(keys[0]!)!;
      expect((await a!.network.fetch(keys[0]!, ANONYMOUS_SCOPE, undefined, { parts })).kind).to.equal('entry');
      // The parts decide (the key is not parsed again): parts naming another scope are refused, nothing is sent.
      const sent = a!.network.stats().requestsSent;
      expect(await a!.network.fetch(keys[1]!, ANONYMOUS_SCOPE, undefined, { parts: { ...parseRequestKey(keys[1]!)!, scopeId: 'another-scope' } }))
        .to.deep.equal({ kind: 'unavailable', reason: 'not a request key of this scope' });
      expect(a!.network.stats().requestsSent).to.equal(sent);
      expect(upstream.calls).to.equal(1);
    });

    it('move on at once when the owner stops mid-run: askers ask the new owner (no timeout) and every request is answered', async () => {
      const upstream = new UpstreamCounter();
      // requestTimeoutMs is far above this spec's timeout: only a prompt failure lets it pass.
      const fleet = await startFleet(3, upstream, { p2p: { requestTimeoutMs: 120_000 } });
      const [a, b, c] = fleet as [SpecNode, SpecNode, SpecNode];
      // c holds every request it gets as owner until it is stopped.
      let held = 0;
      c.backend.serveAsOwner = (_key: string, signal?: AbortSignal) => new Promise<CacheEntry | undefined>((_, reject) => {
        held++;
        signal!.addEventListener('abort', () => reject(signal!.reason), { once: true });
      });
      const ids = fleet.map((node) => node.network.peerId);
      const keys = Array.from({ length: 60 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `mid-${i}`));
      const ownedByC = keys.filter((key) => rendezvousOwner(key, ids) === c.network.peerId);
      expect(ownedByC.length).to.be.greaterThan(5);

      const asks = [a, b].flatMap((node) => ownedByC.map((key) => node.network.fetch(key, ANONYMOUS_SCOPE)));
      await waitFor(() => held === ownedByC.length * 2, 'the owner to hold every request');
      await c.network.stop();
      const answers = await Promise.all(asks);
      // Each ask goes on to the key's new owner among the two left: an entry from the other one, or 'self'.
      for (const answer of answers) expect(answer.kind).to.be.oneOf(['entry', 'self']);
      expect(a.network.stats().timeouts + b.network.stats().timeouts).to.equal(0);

      // Ownership moves to the remaining nodes; every key is answered, each fetched upstream once.
      await waitFor(() => a.network.stats().peers.length === 1 && b.network.stats().peers.length === 1, 'the survivors to drop the owner');
      const entries = await Promise.all([a, b].flatMap((node) => keys.map((key) => node.backend.get(key, ANONYMOUS_SCOPE))));
      expect(entries).to.have.length(keys.length * 2);
      expect(upstream.calls).to.equal(keys.length);
    });
  });

  describe('entries', () => {
    it('are shortened by the owner to maxEntryTtl rather than sent with a TTL askers refuse', async () => {
      const fleet = await startFleet(2, new UpstreamCounter());
      const [a, b] = fleet as [SpecNode, SpecNode];
      const key = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `ttl-${i}`)).find((k) => rendezvousOwner(k, [a.network.peerId, b.network.peerId]) === b.network.peerId)!;
      const stored = entryFor(key, Date.now(), 7_200_000);
      b.backend.store.set(key, stored);
      const answer = await a.network.fetch(key, ANONYMOUS_SCOPE);
      expect(answer.kind).to.equal('entry');
      if (answer.kind !== 'entry') return;
      expect(Buffer.compare(answer.entry.body, stored.body)).to.equal(0);
      expect(answer.entry.expiresAt - answer.entry.storedAt).to.equal(3_600_000);
      expect(a.network.stats().rejected).to.deep.equal({});
    });
  });

  describe('scopes', () => {
    it('never give a node entries of a scope it does not hold; the holders share the scope among themselves', async () => {
      const upstream = new UpstreamCounter();
      const [tokenA, tokenB] = ['test_spec_token_of_team_a_000000000000', 'test_spec_token_of_team_b_000000000000'];
      const scopeA = scopeIdOf(tokenA);
      // nodes 0 and 1 hold team A's token; node 2 only team B's
      const fleet = await startFleet(3, upstream, { tokensOf: (i) => (i < 2 ? [tokenA] : [tokenB]) });
      const [a0, a1, b] = fleet as [SpecNode, SpecNode, SpecNode];
      // Both directions: each of team A's nodes takes the other for a holder of scope A only once it has checked the
      // other's proof; until then it owns every key of the scope itself (and fetches it upstream).
      const sees = (node: SpecNode, other: SpecNode) => node.network.stats().peers.find((p) => p.id === other.network.peerId)?.scopes === 2;
      await waitFor(() => sees(a0, a1) && sees(a1, a0), 'team A\'s nodes to prove scope A to each other');

      // b sees a0 and a1 share only the anonymous scope with it
      for (const peer of b.network.stats().peers) expect(peer.scopes).to.equal(1);
      for (const peer of a0.network.stats().peers) expect(peer.scopes).to.equal(peer.id === a1.network.peerId ? 2 : 1);

      const keys = Array.from({ length: 40 }, (_, i) => requestKey(scopeA, i));
      for (const key of keys) {
        expect(await b.network.fetch(key, scopeA)).to.deep.equal({ kind: 'unavailable', reason: 'this node does not hold the scope' });
      }
      expect(b.network.stats().requestsSent).to.equal(0);

      // Team A's nodes share the scope between the two of them only: each key is fetched upstream once.
      await Promise.all([a0, a1].flatMap((node) => keys.map((key) => node.backend.get(key, scopeA))));
      expect(upstream.calls).to.equal(keys.length);
      const ownersSeen = new Set(keys.map((key) => rendezvousOwner(key, [a0.network.peerId, a1.network.peerId])));
      expect(ownersSeen.size).to.equal(2);
      expect(b.network.stats().requestsServed).to.equal(0);
      expect(b.network.stats().entriesReceived).to.equal(0);
    });

    it('announceScopes() tells peers about a token gained later', async () => {
      const token = 'test_spec_token_gained_later_00000000000';
      const fleet = await startFleet(2, new UpstreamCounter());
      const [a, b] = fleet as [SpecNode, SpecNode];
      expect(a.network.stats().peers[0]!.scopes).to.equal(1);
      for (const node of fleet) {
        node.backend.tokens.set(scopeIdOf(token), token);
        node.network.announceScopes();
      }
      await waitFor(() => a.network.stats().peers[0]?.scopes === 2 && b.network.stats().peers[0]?.scopes === 2, 'the new scope to be proved');
    });
  });

  describe('membership (the shared secret)', () => {
    /** A stock libp2p node (TCP, noise, yamux; no pnet), noise's prologue set as given. */
    async function stockNode(prologueBytes?: Uint8Array): Promise<Libp2p> {
      const node = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()],
        connectionEncrypters: [noise(prologueBytes === undefined ? {} : { prologueBytes })], streamMuxers: [yamux()],
      });
      stock.push(node);
      return node;
    }
    let stock: Libp2p[] = [];
    afterEach(async () => {
      await Promise.all(stock.map((node) => node.stop()));
      stock = [];
    });

    it('refuses a node with another shared secret at the handshake, and the dialler\'s warning names the cause', async () => {
      const member = await startNode();
      nodes.push(member);
      // dialTimeoutMs far above a handshake: the dial fails because the handshake does, not because it timed out.
      const outsider = await startNode({ p2p: { sharedSecret: 'another-secret-entirely-0123456789', bootstrapPeers: [addressOf(member)], dialTimeoutMs: 15_000 } });
      nodes.push(outsider);
      await waitFor(() => outsider.logger.warnings.some((w) => w.startsWith('could not reach bootstrap peer')), 'the outsider to give up', 15_000);
      const warning = outsider.logger.warnings.find((w) => w.startsWith('could not reach bootstrap peer'))!;
      expect(warning).to.include('the noise handshake failed').and.to.include('p2p.sharedSecret').and.to.include('p2p.membership');
      expect(warning).to.not.include(SHARED_SECRET).and.to.not.include('another-secret-entirely');
      expect(member.network.stats().peers).to.deep.equal([]);
      expect(outsider.network.stats().peers).to.deep.equal([]);
      expect(outsider.network.stats().connectedPeers).to.equal(0);
    });

    it('binds the secret into noise\'s handshake over plain TCP: a stock node with the fleet\'s prologue connects, one without it does not', async () => {
      const member = await startNode();
      nodes.push(member);
      const withPrologue = await stockNode(handshakePrologueOf(SHARED_SECRET));
      const connection = await withPrologue.dial(multiaddr(addressOf(member)), { signal: AbortSignal.timeout(15_000) });
      expect(connection.remotePeer.toString()).to.equal(member.network.peerId);
      const without = await stockNode();
      let refused: unknown;
      await without.dial(multiaddr(addressOf(member)), { signal: AbortSignal.timeout(15_000) }).catch((err: unknown) => { refused = err; });
      expect(refused).to.be.instanceOf(Error);
      expect((refused as Error).name).to.equal('EncryptionFailedError');
      const otherSecret = await stockNode(handshakePrologueOf('another-secret-entirely-0123456789'));
      refused = undefined;
      await otherSecret.dial(multiaddr(addressOf(member)), { signal: AbortSignal.timeout(15_000) }).catch((err: unknown) => { refused = err; });
      expect((refused as Error | undefined)?.name).to.equal('EncryptionFailedError');
      await waitFor(() => member.network.stats().connectedPeers === 1, 'only the node with the prologue to stay connected');
    });

    it('with p2p.membership \'pnet\', members connect to each other and not to members of the default mode', async () => {
      const upstream = new UpstreamCounter();
      const [a, b] = await startFleet(2, upstream, { p2p: { membership: 'pnet' } }) as [SpecNode, SpecNode];
      const ids = [a.network.peerId, b.network.peerId];
      const key = Array.from({ length: 50 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `pnet-${i}`)).find((k) => rendezvousOwner(k, ids) === b.network.peerId)!;
      expect((await a.network.fetch(key, ANONYMOUS_SCOPE)).kind).to.equal('entry');
      expect(upstream.calls).to.equal(1);
      const other = await startNode({ p2p: { bootstrapPeers: [addressOf(a)], dialTimeoutMs: 15_000 } });
      nodes.push(other);
      await waitFor(() => other.logger.warnings.some((w) => w.startsWith('could not reach bootstrap peer')), 'the other mode\'s dial to fail', 15_000);
      expect(other.network.stats().connectedPeers).to.equal(0);
      // Each says its mode in its stats (getStats().p2p, the proxy's /_cache/stats): what an operator compares.
      expect([a.network.stats().membership, other.network.stats().membership]).to.deep.equal(['pnet', 'handshake']);
      expect(a.network.stats().peers.map((p) => p.id)).to.deep.equal([b.network.peerId]);
    });
  });

  describe('the listen port', () => {
    it('falls back to an ephemeral port when the port is taken by a member, and joins the holder', async () => {
      const port = await freePort();
      const holder = await startNode({ p2p: { listenPort: port } });
      nodes.push(holder);
      const second = await startNode({ p2p: { listenPort: port } });
      nodes.push(second);
      expect(holder.network.stats()).to.include({ boundPort: port, portFallback: false });
      expect(second.network.stats().portFallback).to.equal(true);
      expect(second.network.stats().boundPort).to.not.equal(port);
      await waitFor(() => fullyConnected([holder, second]), 'the second node to join the holder');
    });

    it('runs alone, and says why, when the port is held by something that is not a member', async () => {
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      try {
        const alone = await startNode({ p2p: { listenPort: port, dialTimeoutMs: 300 } });
        nodes.push(alone);
        expect(alone.network.stats().portFallback).to.equal(true);
        expect(alone.logger.warnings.some((w) => w.includes(`port ${port} is taken by a process that is not a member`))).to.equal(true);
        expect(alone.network.stats().connectedPeers).to.equal(0);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it('brings four nodes started at once on one fixed port to one holder and a full mesh', async () => {
      const port = await freePort();
      const four = await Promise.all(Array.from({ length: 4 }, () => startNode({ p2p: { listenPort: port } })));
      nodes.push(...four);
      expect(four.filter((node) => !node.network.stats().portFallback)).to.have.length(1);
      await waitFor(() => fullyConnected(four), 'four nodes to connect to each other');
    });

    it('is released by stop(): a new node binds the same port right after', async () => {
      const port = await freePort();
      const first = await startNode({ p2p: { listenPort: port } });
      await first.network.stop();
      const next = await startNode({ p2p: { listenPort: port } });
      nodes.push(next);
      expect(next.network.stats()).to.include({ boundPort: port, portFallback: false });
      await first.network.stop(); // idempotent
    });
  });

  describe('identity', () => {
    it('persists in cacheDir: the same peer id after a restart, key file 0600 in a 0700 directory', async () => {
      const cacheDir = tmpCacheDir();
      const first = await startNode({ cacheDir });
      const id = first.network.peerId;
      await first.network.stop();
      const again = await startNode({ cacheDir });
      nodes.push(again);
      expect(again.network.peerId).to.equal(id);
      expect(fs.statSync(path.join(cacheDir, 'p2p')).mode & 0o777).to.equal(0o700);
      expect(fs.statSync(path.join(cacheDir, 'p2p', 'identity-0.key')).mode & 0o777).to.equal(0o600);
    });

    it('never gives two live nodes sharing a cacheDir the same identity', async () => {
      const cacheDir = tmpCacheDir();
      const pair = await Promise.all([startNode({ cacheDir }), startNode({ cacheDir })]);
      nodes.push(...pair);
      expect(pair[0].network.peerId).to.not.equal(pair[1].network.peerId);
    });
  });

  describe('stop()', () => {
    it('settles fetches after stop as unavailable and throws nothing', async () => {
      const node = await startNode();
      await node.network.stop();
      expect(await node.network.fetch(requestKey(ANONYMOUS_SCOPE, 1), ANONYMOUS_SCOPE)).to.deep.equal({ kind: 'unavailable', reason: 'the P2P host is stopped' });
    });

    it('fails clearly at start without a shared secret', async () => {
      const backend = new MemoryBackend(new UpstreamCounter());
      let error: unknown;
      try {
        await PeerNetwork.start({ p2p: p2pOptions({ sharedSecret: undefined }), cacheDir: tmpCacheDir(), host: backend, logger: new RecordingLogger() });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(Error).with.property('code', 'ERR_P2P_START');
    });
  });
});
