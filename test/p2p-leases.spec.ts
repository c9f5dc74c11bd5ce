import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl } from '../src/cache/request-key.js';
import { entryKeyOf, scopeIdOf } from '../src/cache/scope.js';
import type { FleetStats } from '../src/cache/ports.js';
import { ENVELOPE_VERSION } from '../src/p2p/envelope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { keyTag, sealKey } from '../src/p2p/sealed-key.js';
import type { Frame } from '../src/p2p/wire.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FleetProcess } from '../support/fleet-process.js';
import { waitFor } from '../support/wait.js';
import { removeTmpDirs, SHARED_SECRET, tmpCacheDir } from './support/p2p-fixtures.js';
import { HostilePeer } from './support/p2p-hostile.js';

/**
 * Blind owners and leases: a key's owner by rendezvous that never holds the key's scope still coordinates it
 * (lease.ts): the first asker gets the lease and fetches, the others wait on the owner and get the sealed entry
 * the holder put. Real caches over libp2p on loopback, a child process killed with SIGKILL, a hand-made hostile
 * member. Every assertion is on counts (GitHub's, the fleet's counters), never on time.
 */

const TOKEN = `test_${'leases'.padEnd(36, 'L')}`;
const SCOPE = scopeIdOf(TOKEN);
const N = 24;

async function p2pOf(cache: GitHubAPICache): Promise<FleetStats> {
  return (await cache.getStats()).p2p!;
}

function addrOf(stats: FleetStats): string {
  return stats.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
}

async function member(github: FakeGitHub, bootstrapPeers: string[]): Promise<GitHubAPICache> {
  const cache = await GitHubAPICache.create({
    persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url,
    // startWaitMs 0: its reads ask the fleet as soon as the host is up (p2pReady), without waiting for sessions;
    // the specs wait for the sessions themselves, so no request of theirs skips the fleet.
    p2p: { enabled: true, sharedSecret: SHARED_SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers, startWaitMs: 0 },
  });
  await cache.p2pReady();
  return cache;
}

/** Caches that speak the protocol with `n - 1` peers each. */
async function meshed(caches: GitHubAPICache[], n: number): Promise<void> {
  await waitFor(async () => (await Promise.all(caches.map(p2pOf))).every((s) => s.peers.length >= n - 1), 'protocol sessions', 40_000, 20);
}

function keyOf(github: FakeGitHub, i: number): string {
  return formatRequestKey({ url: normalizeUrl(`${github.url}/repos/octo/r${i}`), method: 'GET', scopeId: SCOPE, accept: DEFAULT_ACCEPT });
}

/** The first `count` resources whose key `owner` owns among `ids`. */
function ownedBy(github: FakeGitHub, owner: string, ids: string[], count: number): number[] {
  const owned = Array.from({ length: 600 }, (_, i) => i).filter((i) => rendezvousOwner(keyOf(github, i), ids) === owner).slice(0, count);
  expect(owned).to.have.length(count);
  return owned;
}

function upstreamFor(github: FakeGitHub, resources: number[]): number {
  return resources.reduce((n, i) => n + (github.stats.byPath[`/repos/octo/r${i}`] ?? 0), 0);
}

describe('blind owners and leases', function () {
  this.timeout(120_000);
  let github: FakeGitHub;
  const open: GitHubAPICache[] = [];
  let child: FleetProcess | undefined;
  let hostile: HostilePeer | undefined;

  /** Two members in session: `asker` bootstrapped to `owner` (both closed after the spec). */
  async function ownerAndAsker(): Promise<{ owner: GitHubAPICache; asker: GitHubAPICache }> {
    const owner = await member(github, []);
    const asker = await member(github, [addrOf(await p2pOf(owner))]);
    open.push(owner, asker);
    await meshed([owner, asker], 2);
    return { owner, asker };
  }

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'T', rateLimit: 1_000_000 } } });
    for (let i = 0; i < 600; i++) github.setResource(`/repos/octo/r${i}`, { i, pad: 'x'.repeat(i % 7) });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await child?.stop();
    child = undefined;
    await hostile?.stop();
    hostile = undefined;
    await github.close();
    removeTmpDirs();
  });

  /** Three members: the owner O (never given the token) and two askers A and C. */
  async function three(): Promise<{ owner: GitHubAPICache; askers: GitHubAPICache[]; ids: string[] }> {
    const owner = await member(github, []);
    const ownerAddr = addrOf(await p2pOf(owner));
    const a = await member(github, [ownerAddr]);
    const c = await member(github, [ownerAddr, addrOf(await p2pOf(a))]);
    open.push(owner, a, c);
    await meshed([owner, a, c], 3);
    const ids = await Promise.all([owner, a, c].map(async (m) => (await p2pOf(m)).peerId));
    return { owner, askers: [a, c], ids };
  }

  it('has an owner without the scope coordinate its keys blind: one upstream request per key for two askers', async () => {
    const { owner, askers, ids } = await three();
    const keys = ownedBy(github, ids[0]!, ids, N);
    github.resetStats();
    github.setLatency(20);
    const results = await Promise.all(askers.flatMap((c) => keys.map(async (i) => ({ i, r: await c.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN }) }))));
    for (const { i, r } of results) expect(r.data, `r${i}`).to.deep.equal({ i, pad: 'x'.repeat(i % 7) });
    expect(upstreamFor(github, keys), `upstream requests for ${N} keys asked by two members`).to.equal(N);
    const o = await p2pOf(owner);
    expect(o.leasesGranted, 'leases the blind owner handed out').to.equal(N);
    expect(o.blindServed, 'sealed entries it answered unread').to.equal(N);
    expect(o.requestsServed, 'entries it served from a cache of its own').to.equal(0);
  });

  it('does not fetch a key twice when the owner gets the token just after a lease went out (a cold start)', async () => {
    const { owner, askers, ids } = await three();
    const keys = ownedBy(github, ids[0]!, ids, N);
    github.resetStats();
    // GitHub is slow for these keys: the leases are still out when the owner's own callers come.
    github.setLatency(1_000, { path: /^\/repos\/octo\/r\d+$/ });
    const early = Promise.all(keys.map((i) => askers[0]!.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN })));
    await github.waitFor((s) => s.requests >= N);
    const late = await Promise.all(keys.map((i) => owner.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN })));
    const first = await early;
    keys.forEach((i, n) => {
      expect(first[n]!.data).to.deep.equal({ i, pad: 'x'.repeat(i % 7) });
      expect(late[n]!.data).to.deep.equal({ i, pad: 'x'.repeat(i % 7) });
    });
    expect(upstreamFor(github, keys), `upstream requests for ${N} keys asked by a member, then by their owner`).to.equal(N);
  });

  it('passes a dead holder\'s lease to a waiter: the key is fetched once more, not once per waiter', async () => {
    const { owner, askers, ids } = await three();
    child = new FleetProcess({
      CACHE_DIR: tmpCacheDir(), GITHUB_API_URL: github.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SHARED_SECRET,
      CACHE_BOOTSTRAP_PEERS: addrOf(await p2pOf(owner)), FLEET_NODE_LISTEN_HOST: '127.0.0.1', FLEET_NODE_START_WAIT_MS: '0',
    });
    const ready = await child.ready;
    await meshed([owner, ...askers], 4);
    const all = [...ids, ready.p2p.peerId];
    const [i] = ownedBy(github, ids[0]!, all, 1) as [number];
    github.resetStats();
    // The child's fetch of the key never comes back: it holds the lease until it dies.
    github.hangNext(1, { path: `/repos/octo/r${i}` });
    const held = child.request(`GET /repos/octo/r${i}`, TOKEN).catch(() => undefined);
    await github.waitFor((s) => (s.byPath[`/repos/octo/r${i}`] ?? 0) >= 1);
    expect((await p2pOf(owner)).leasesGranted).to.equal(1);
    const waiting = Promise.all(askers.map((c) => c.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN })));
    // Both askers wait on the owner (it counts them as being served), then the holder dies.
    await waitFor(async () => (await Promise.all(askers.map(p2pOf))).every((s) => s.requestsSent >= 1), 'the askers to ask the owner', 40_000, 20);
    await child.kill();
    await held;
    for (const r of await waiting) expect(r.data).to.deep.equal({ i, pad: 'x'.repeat(i % 7) });
    expect(github.stats.byPath[`/repos/octo/r${i}`], 'upstream requests for the key: the dead holder\'s, then one waiter\'s').to.equal(2);
    expect((await p2pOf(owner)).leasesGranted, 'the lease, then the same lease passed on').to.equal(2);
  });

  it('keeps a slow holder\'s lease while its stream is open: the waiter goes upstream when the owner gives it up, the lease stays, the late put is not struck', async () => {
    const { owner, asker } = await ownerAndAsker();
    hostile = await HostilePeer.start();
    hostile.answer = (get) => ({ type: 'miss', id: get.id, reason: 'not-held' });
    const ownerStats = await p2pOf(owner);
    await hostile.connect(addrOf(ownerStats));
    await hostile.connect(addrOf(await p2pOf(asker)));
    await meshed([owner, asker], 3);
    const ids = [ownerStats.peerId, (await p2pOf(asker)).peerId, hostile.peerId];
    const [k] = ownedBy(github, ids[0]!, ids, 1) as [number];
    const entryKey = entryKeyOf(TOKEN);
    const h = await hostile.openAsker(addrOf(ownerStats));
    const tagged = (id: number): Frame => ({ ...h.validGet(id, sealKey(keyOf(github, k), SCOPE, entryKey)!), tag: keyTag(keyOf(github, k), entryKey) });
    // A holder whose GitHub call is slower than the askers' wait (it holds the token; its fetch is in flight).
    await h.send(tagged(1));
    const granted = await h.answerTo(1, 20_000);
    expect(granted.type).to.equal('lease');
    github.resetStats();
    expect((await asker.request(`GET /repos/octo/r${k}`, {}, { token: TOKEN })).data).to.deep.equal({ i: k, pad: 'x'.repeat(k % 7) });
    expect((await p2pOf(owner)).leasesGranted, 'the slow holder\'s lease, not passed to the waiter').to.equal(1);
    // Its put, late for the waiter: taken, not struck (the round trip after it shows the owner has read it).
    const sealed = new Uint8Array(80).fill(9);
    sealed[0] = ENVELOPE_VERSION;
    await h.send({ type: 'put', lease: (granted as Extract<Frame, { type: 'lease' }>).lease, sealed, ttlMs: 60_000 });
    await h.send(tagged(2));
    expect((await h.answerTo(2, 20_000)).type).to.equal('entry');
    expect((await p2pOf(owner)).rejected.request ?? 0, 'strikes for the put').to.equal(0);
  });

  it('lets every waiter of an answer that cannot be shared (a large entry) fetch it at once: the lease is not passed from one to the next', async () => {
    const { owner, askers, ids } = await three();
    const [i] = ownedBy(github, ids[0]!, ids, 1) as [number];
    const big = { i, pad: 'x'.repeat(400 * 1024) }; // sealed, above the 256 KiB a put may carry
    github.setResource(`/repos/octo/r${i}`, big);
    github.resetStats();
    github.pause(); // the holder's fetch stays in flight until the other asker waits on the owner (or asked it)
    const first = askers[0]!.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN });
    await github.waitFor((st) => (st.byPath[`/repos/octo/r${i}`] ?? 0) >= 1);
    const sent = (await p2pOf(askers[1]!)).requestsSent;
    const second = askers[1]!.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN });
    await waitFor(async () => (await p2pOf(askers[1]!)).requestsSent > sent, 'the other asker to ask the owner', 40_000, 20);
    github.resume();
    for (const r of await Promise.all([first, second])) expect(r.data).to.deep.equal(big);
    expect(github.stats.byPath[`/repos/octo/r${i}`], 'each asker fetched it').to.equal(2);
    expect((await p2pOf(owner)).leasesGranted, 'one lease: released as unshareable, it let the waiter go instead of passing to it').to.equal(1);
  });

  it('has an asker that refuses a relayed entry written since ask again with refresh: the owner drops it and leases the key out', async () => {
    const { owner, askers, ids } = await three();
    const [a, c] = askers as [GitHubAPICache, GitHubAPICache];
    const [i] = ownedBy(github, ids[0]!, ids, 1) as [number];
    expect((await a.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN })).data).to.deep.equal({ i, pad: 'x'.repeat(i % 7) });
    expect((await p2pOf(owner)).leasesGranted).to.equal(1);
    const received = (await p2pOf(a)).invalidationsReceived ?? 0;
    expect((await c.request(`PATCH /repos/octo/r${i}`, { title: 'new' }, { token: TOKEN })).status).to.equal(200);
    await waitFor(async () => ((await p2pOf(a)).invalidationsReceived ?? 0) > received, 'the notice', 15_000, 20);
    const after = await a.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN });
    expect((after.data as { title?: string }).title, `the resource (${after.source})`).to.equal('new');
    expect((await p2pOf(owner)).leasesGranted, 'the old copy dropped, the key leased out again (its fresh entry kept for the others)').to.equal(2);
  });

  it('does not take a silent blind owner for one without the scope, and tells a waiter it waits at once', async () => {
    const { owner, asker } = await ownerAndAsker();
    hostile = await HostilePeer.start();
    const ownerStats = await p2pOf(owner);
    const ids = [ownerStats.peerId, (await p2pOf(asker)).peerId, hostile.peerId];
    await hostile.connect(addrOf(await p2pOf(asker)));
    await meshed([asker], 3);
    // A blind owner that is alive but says nothing (CPU-starved): the ask times out.
    hostile.answer = () => undefined;
    const [h1, h2] = ownedBy(github, hostile.peerId, ids, 2) as [number, number];
    await asker.request(`GET /repos/octo/r${h1}`, {}, { token: TOKEN });
    await asker.request(`GET /repos/octo/r${h2}`, {}, { token: TOKEN });
    expect(hostile.gets.filter((g) => g.tag !== undefined), 'tagged gets: the second key still asked of the silent owner').to.have.length(2);

    // A waiter queued behind a lease hears `working` at once, before any later answer on its stream.
    await hostile.connect(addrOf(ownerStats));
    const entryKey = entryKeyOf(TOKEN);
    const h = await hostile.openAsker(addrOf(ownerStats));
    const [k1, k2] = ownedBy(github, ids[0]!, ids, 2) as [number, number];
    const tagged = (id: number, i: number): Frame => ({ ...h.validGet(id, sealKey(keyOf(github, i), SCOPE, entryKey)!), tag: keyTag(keyOf(github, i), entryKey) });
    await h.send(tagged(1, k1));
    expect((await h.answerTo(1, 20_000)).type).to.equal('lease');
    await h.send(tagged(2, k1)); // waits behind its own lease
    await h.send(tagged(3, k2)); // a lease at once
    const frames: Frame[] = [];
    while (frames.length < 2) {
      const frame = await h.next(20_000);
      if ('id' in frame) frames.push(frame); // not the owner's scopes frames
    }
    expect(frames.map((f) => `${f.type} ${'id' in f ? f.id : ''}`), 'the waiter told first').to.deep.equal(['working 2', 'lease 3']);
  });

  it('lets a hostile member neither feed waiters garbage nor learn what it coordinates', async () => {
    const { owner, asker } = await ownerAndAsker();
    hostile = await HostilePeer.start();
    const ownerStats = await p2pOf(owner);
    const ids = [ownerStats.peerId, (await p2pOf(asker)).peerId, hostile.peerId];
    await hostile.connect(addrOf(ownerStats));
    const askerStats = await p2pOf(asker);
    await hostile.connect(addrOf(askerStats));
    await meshed([owner, asker], 3);
    // Nothing learned: what the owner coordinates it gets as sealed keys and 32-byte tags, never a URL or a token.
    hostile.answer = (get) => (get.tag !== undefined ? { type: 'lease', id: get.id, lease: 7 } : { type: 'miss', id: get.id, reason: 'not-held' });
    const hostileOwned = ownedBy(github, hostile.peerId, ids, 1)[0]!;
    expect((await asker.request(`GET /repos/octo/r${hostileOwned}`, {}, { token: TOKEN })).data).to.deep.equal({ i: hostileOwned, pad: 'x'.repeat(hostileOwned % 7) });
    await waitFor(() => hostile!.frames.some((f) => f.type === 'put' || f.type === 'release'), 'the asker to end the lease', 40_000, 20);
    const seen = Buffer.concat(hostile.frames.map((f) => Buffer.from(JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v)))));
    expect(hostile.gets.length).to.be.greaterThan(0);
    for (const get of hostile.gets) expect(get.key.startsWith('sealed:')).to.equal(true);
    expect(seen.includes(`/repos/octo/r${hostileOwned}`), 'the path in what the hostile owner received').to.equal(false);
    expect(seen.includes(TOKEN), 'the token in what the hostile owner received').to.equal(false);
    expect(seen.includes(`"pad"`), 'the entry\'s body in the clear').to.equal(false);

    const [k1, k2, k3] = ownedBy(github, ids[0]!, ids, 3) as [number, number, number];
    const entryKey = entryKeyOf(TOKEN);
    const h = await hostile.openAsker(addrOf(ownerStats));
    // The hostile member holds the token (it can tag keys) and takes two keys' leases first.
    const lease = async (id: number, i: number): Promise<number> => {
      const key = keyOf(github, i);
      await h.send({ ...h.validGet(id, sealKey(key, SCOPE, entryKey)!), tag: keyTag(key, entryKey) });
      const answer = await h.answerTo(id, 20_000);
      expect(answer.type).to.equal('lease');
      return (answer as Extract<Frame, { type: 'lease' }>).lease;
    };
    const lease1 = await lease(1, k1);
    const lease2 = await lease(2, k2);
    github.resetStats();
    const sentBefore = (await p2pOf(asker)).requestsSent;
    const first = asker.request(`GET /repos/octo/r${k1}`, {}, { token: TOKEN });
    const second = asker.request(`GET /repos/octo/r${k2}`, {}, { token: TOKEN });
    await waitFor(async () => (await p2pOf(asker)).requestsSent >= sentBefore + 2, 'the asker to wait on the owner', 40_000, 20);
    // A put for a lease it does not hold, and one that is no sealed entry: struck, and never relayed.
    await h.send({ type: 'put', lease: 99_999, sealed: new Uint8Array(64), ttlMs: 60_000 });
    await h.send({ type: 'put', lease: lease1, sealed: new Uint8Array(64).fill(7), ttlMs: 60_000 });
    expect((await first).data).to.deep.equal({ i: k1, pad: 'x'.repeat(k1 % 7) });
    // Bytes shaped like a sealed entry that do not open: relayed unread, refused by the asker, which fetches itself.
    const forged = new Uint8Array(80).fill(9);
    forged[0] = ENVELOPE_VERSION;
    await h.send({ type: 'put', lease: lease2, sealed: forged, ttlMs: 60_000 });
    expect((await second).data).to.deep.equal({ i: k2, pad: 'x'.repeat(k2 % 7) });
    expect(upstreamFor(github, [k1, k2]), 'one fetch per key, by the honest asker').to.equal(2);
    expect((await p2pOf(owner)).rejected.request, 'puts struck at the owner').to.equal(2);
    expect((await p2pOf(asker)).rejected.decrypt, 'relayed bytes refused by the asker').to.equal(1);

    // An oversized put (above the owner's one-frame entry size) is struck too, and its lease passes on.
    const lease3 = await lease(3, k3);
    await h.send({ type: 'put', lease: lease3, sealed: new Uint8Array(300 * 1024).fill(1), ttlMs: 60_000 });
    await waitFor(async () => (await p2pOf(owner)).rejected.oversize === 1, 'the oversized put to be struck', 40_000, 20);
    expect((await asker.request(`GET /repos/octo/r${k3}`, {}, { token: TOKEN })).data).to.deep.equal({ i: k3, pad: 'x'.repeat(k3 % 7) });
  });
});
