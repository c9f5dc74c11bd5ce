import { expect } from 'chai';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { ANONYMOUS_SCOPE, scopeIdOf } from '../src/cache/scope.js';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { formatRequestKey } from '../src/cache/request-key.js';
import { encodeCbor } from '../src/p2p/cbor.js';
import { sealEntry } from '../src/p2p/envelope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { INVALIDATE_PROTOCOL, MAX_NOTICE_BYTES } from '../src/p2p/notice.js';
import type { FleetStats } from '../src/cache/ports.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { waitFor } from '../support/wait.js';
import { ANONYMOUS_KEY, HostilePeer } from './support/p2p-hostile.js';
import { removeTmpDirs, SHARED_SECRET, tmpCacheDir } from './support/p2p-fixtures.js';

/**
 * Fleet-wide invalidation (src/p2p/invalidation.ts): a write through one member drops the written resource, its
 * subtree and its collection on every member, in the scopes the writer proved; hostile notices change nothing
 * they may not. Real caches over libp2p on loopback, one fake GitHub.
 */

// The fixtures' secret: the hostile peer's anonymous claims and entries are made with its keys.
const SECRET = SHARED_SECRET;
// Built at run time: nothing in the source looks like a real token.
const TOKEN_A = `test_${'invalidate'.padEnd(36, 'A')}`;
const TOKEN_B = `test_${'invalidate'.padEnd(36, 'B')}`;
const ISSUE = '/repos/o/r/issues/1';
const LIST = '/repos/o/r/issues';

async function node(github: FakeGitHub, bootstrap: string[] = [], persistence: 'off' | 'required' = 'off'): Promise<GitHubAPICache> {
  const cache = await GitHubAPICache.create({
    persistence,
    cacheDir: tmpCacheDir(),
    githubApiUrl: github.url,
    p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers: bootstrap },
  });
  await cache.p2pReady();
  return cache;
}

async function p2pOf(cache: GitHubAPICache): Promise<FleetStats> {
  return (await cache.getStats()).p2p!;
}

async function addrOf(cache: GitHubAPICache): Promise<string> {
  return (await p2pOf(cache)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
}

/** Starts n caches bootstrapped to the first, waits for a full mesh of protocol sessions. */
async function fleet(github: FakeGitHub, n: number): Promise<GitHubAPICache[]> {
  const first = await node(github);
  const addr = await addrOf(first);
  const nodes = [first, ...(await Promise.all(Array.from({ length: n - 1 }, () => node(github, [addr]))))];
  await waitFor(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length >= n - 1), 'a full mesh', 40_000, 20);
  return nodes;
}

/** Each node uses the token once; waits until every peer proved it (the anonymous scope plus the token's). */
async function shareScope(nodes: GitHubAPICache[], token: string): Promise<void> {
  await Promise.all(nodes.map((c) => c.request('GET /rate_limit', {}, { token })));
  await waitFor(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length >= nodes.length - 1 && s.peers.every((p) => p.scopes >= 2)), 'scope claims', 40_000, 20);
}

/** A notice as it goes on the stream: its length (an unsigned varint), then its bytes. */
function framed(bytes: Uint8Array): Uint8Array {
  const prefix: number[] = [];
  let n = bytes.byteLength;
  while (n >= 128) {
    prefix.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  prefix.push(n);
  return Buffer.concat([Buffer.from(prefix), bytes]);
}

/** Sends `bytes` on a new notice stream to the cache at `addr` and closes its end. */
async function sendNotice(hostile: HostilePeer, addr: string, bytes: Uint8Array): Promise<void> {
  const stream: Stream = await hostile.node.dialProtocol(multiaddr(addr), INVALIDATE_PROTOCOL, { signal: AbortSignal.timeout(5_000) });
  stream.send(bytes);
  await stream.close({ signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
}

describe('fleet-wide invalidation (/github-cache/invalidate/1.0.0)', function () {
  this.timeout(60_000);
  let github: FakeGitHub;
  const open: GitHubAPICache[] = [];
  const hostiles: HostilePeer[] = [];

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' }, [TOKEN_B]: { label: 'B' } } });
    github.setResource('/rate_limit', { resources: {} });
    github.setCollection(LIST, [{ number: 1, title: 'old' }, { number: 2, title: 'other' }]);
  });
  afterEach(async () => {
    await Promise.all(hostiles.splice(0).map((h) => h.stop()));
    await Promise.all(open.splice(0).map((c) => c.close()));
    await github.close();
    removeTmpDirs();
  });

  it('a write through one member drops the resource and its collection on every member: the others read the new version', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    const [a, b, c] = nodes as [GitHubAPICache, GitHubAPICache, GitHubAPICache];
    await shareScope(nodes, TOKEN_A);
    // Every member holds the issue and the list, with the token and anonymously.
    for (const member of nodes) {
      await member.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
      await member.request(`GET ${LIST}`, {}, { token: TOKEN_A });
      await member.request(`GET ${ISSUE}`, {});
    }
    for (const member of [a, c]) {
      const cached = await member.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
      expect(cached.source).to.equal('memory');
      expect((cached.data as { title: string }).title).to.equal('old');
    }
    const received = await Promise.all([a, c].map(async (m) => (await p2pOf(m)).invalidationsReceived ?? 0));

    const written = await b.request(`PATCH ${ISSUE}`, { title: 'new' }, { token: TOKEN_A });
    expect(written.status).to.equal(200);
    // The notice reaches both other members (fire and forget: the write did not wait for it).
    await waitFor(async () => (await Promise.all([a, c].map(p2pOf))).every((s, i) => (s.invalidationsReceived ?? 0) > received[i]!), 'the notices', 15_000, 20);

    // (A member may answer from memory here: as the key's owner it fetched the new version for the other.)
    for (const member of [a, c]) {
      const issue = await member.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
      expect((issue.data as { title: string }).title, `the issue (${issue.source})`).to.equal('new');
      const list = await member.request(`GET ${LIST}`, {}, { token: TOKEN_A });
      expect((list.data as Array<{ title: string }>)[0]!.title, `the list (${list.source})`).to.equal('new');
      const anonymous = await member.request(`GET ${ISSUE}`, {});
      expect((anonymous.data as { title: string }).title, 'anonymous entries are dropped too').to.equal('new');
    }
    expect((await p2pOf(b)).invalidationsSent).to.be.at.least(2);
  });

  it('refuses (and counts) a notice for a scope its sender did not prove; any member may drop anonymous entries', async () => {
    // With SQLite: a notice drops the entries from disk as well as from memory.
    const victim = await node(github, [], 'required');
    open.push(victim);
    await victim.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
    await victim.request(`GET ${ISSUE}`, {});
    const hostile = await HostilePeer.start(SECRET);
    hostiles.push(hostile);
    hostile.answer = (get) => ({ type: 'miss', id: get.id, reason: 'no-entry' });
    const addr = await addrOf(victim);
    await hostile.connect(addr);
    const url = `${github.url}${ISSUE}`;

    await sendNotice(hostile, addr, framed(encodeCbor({ notices: [{ url, scopes: [scopeIdOf(TOKEN_A)] }] })));
    await waitFor(async () => ((await p2pOf(victim)).rejected['notice-scope'] ?? 0) >= 1, 'the refusal', 15_000, 20);
    const kept = await victim.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
    expect(kept.source, 'the entry of a scope the sender did not prove stays').to.equal('memory');
    expect((await p2pOf(victim)).disconnectedForAbuse).to.equal(0);

    await sendNotice(hostile, addr, framed(encodeCbor({ notices: [{ url, scopes: [ANONYMOUS_SCOPE] }] })));
    await waitFor(async () => ((await p2pOf(victim)).invalidationsReceived ?? 0) >= 2, 'the anonymous notice', 15_000, 20);
    const anonymous = await victim.request(`GET ${ISSUE}`, {});
    expect(anonymous.source, 'the anonymous entry was dropped').to.not.be.oneOf(['memory', 'disk']);
    expect((await victim.request(`GET ${ISSUE}`, {}, { token: TOKEN_A })).source).to.equal('memory');
  });

  it('strikes garbage, oversized, malformed and unfinished notices and invalidates nothing', async () => {
    const victim = await node(github);
    open.push(victim);
    await victim.request(`GET ${ISSUE}`, {});
    await victim.request(`GET ${LIST}`, {});
    const hostile = await HostilePeer.start(SECRET);
    hostiles.push(hostile);
    hostile.answer = (get) => ({ type: 'miss', id: get.id, reason: 'no-entry' });
    const addr = await addrOf(victim);
    await hostile.connect(addr);
    const url = `${github.url}${ISSUE}`;

    await sendNotice(hostile, addr, framed(new Uint8Array([0xff, 0x00, 0x13, 0x37])));
    await waitFor(async () => ((await p2pOf(victim)).rejected.notice ?? 0) >= 1, 'the garbage refused', 15_000, 20);
    // Refused from its length prefix, before its bytes are held.
    const big = encodeCbor({ notices: [{ url, scopes: [ANONYMOUS_SCOPE] }] });
    const oversized = new Uint8Array(MAX_NOTICE_BYTES + 1024);
    oversized.set(big);
    await sendNotice(hostile, addr, framed(oversized));
    await waitFor(async () => ((await p2pOf(victim)).rejected.notice ?? 0) >= 2, 'the oversized notice refused', 15_000, 20);
    // Well-formed CBOR, but a URL with a query (not a written resource) beside a good one: the whole notice goes.
    await sendNotice(hostile, addr, framed(encodeCbor({ notices: [{ url, scopes: [ANONYMOUS_SCOPE] }, { url: `${url}?x=1`, scopes: [ANONYMOUS_SCOPE] }] })));
    await waitFor(async () => ((await p2pOf(victim)).rejected.notice ?? 0) >= 3, 'the malformed notice refused', 15_000, 20);

    // A notice begun and never finished: refused once the victim stops waiting for it (p2p.dialTimeoutMs).
    const unfinished = await hostile.node.dialProtocol(multiaddr(addr), INVALIDATE_PROTOCOL, { signal: AbortSignal.timeout(5_000) });
    unfinished.send(framed(encodeCbor({ notices: [{ url, scopes: [ANONYMOUS_SCOPE] }] })).subarray(0, 20));
    await waitFor(async () => ((await p2pOf(victim)).rejected.notice ?? 0) >= 4, 'the unfinished notice refused', 15_000, 20);

    const stats = await p2pOf(victim);
    expect(stats.invalidationsReceived ?? 0, 'no notice applied').to.equal(0);
    expect((await victim.request(`GET ${ISSUE}`, {})).source).to.equal('memory');
    expect((await victim.request(`GET ${LIST}`, {})).source).to.equal('memory');
  });

  it('does not let a member that is gone or never reads hold the write: the others still get their notice', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    const [a, b, c] = nodes as [GitHubAPICache, GitHubAPICache, GitHubAPICache];
    await shareScope(nodes, TOKEN_A);
    // A member that accepts notice streams and never reads or closes them.
    const sink = await HostilePeer.start(SECRET);
    hostiles.push(sink);
    const held: Stream[] = [];
    await sink.node.handle(INVALIDATE_PROTOCOL, (stream) => {
      stream.pause();
      held.push(stream);
    }, { maxInboundStreams: 64 });
    await sink.connect(await addrOf(b));
    await waitFor(async () => (await p2pOf(b)).peers.some((p) => p.id === sink.peerId), 'the sink as a protocol peer of the writer', 15_000, 20);
    await a.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
    // One member leaves.
    await c.close();
    open.splice(open.indexOf(c), 1);

    const written = await b.request(`PATCH ${ISSUE}`, { title: 'new' }, { token: TOKEN_A });
    expect(written.status).to.equal(200);
    await waitFor(async () => ((await p2pOf(a)).invalidationsReceived ?? 0) >= 1, 'the notice to the member still there', 15_000, 20);
    const issue = await a.request(`GET ${ISSUE}`, {}, { token: TOKEN_A });
    expect((issue.data as { title: string }).title).to.equal('new');
  });

  it('does not take an entry stored before a peer\'s write from an owner that was not told of it yet', async () => {
    const nodes = await fleet(github, 2);
    open.push(...nodes);
    const [a, b] = nodes as [GitHubAPICache, GitHubAPICache];
    // An owner that has not got the notice (yet): it keeps answering the entry it stored before the write.
    const owner = await HostilePeer.start(SECRET);
    hostiles.push(owner);
    await owner.connect(await addrOf(a));
    // Its anonymous claim verified: it is asked with the key itself (not sealed, as an owner that has not proved the scope is).
    await waitFor(async () => { const { peers } = await p2pOf(a); return peers.length === 2 && peers.every((p) => p.scopes >= 1); }, 'the owner as a protocol peer', 15_000, 20);
    const ids = [(await p2pOf(a)).peerId, (await p2pOf(b)).peerId, owner.peerId];
    const items = Array.from({ length: 50 }, (_, i) => ({ number: i + 1, title: 'old' }));
    github.setCollection(LIST, items);
    const n = items.find(({ number }) => rendezvousOwner(formatRequestKey({
      url: `${github.url}${LIST}/${number}`, method: 'GET', scopeId: ANONYMOUS_SCOPE, accept: 'application/vnd.github+json',
    }), ids) === owner.peerId)!.number;
    const body = JSON.stringify({ number: n, title: 'old' });
    const storedAt = Date.now();
    const before: CacheEntry = { body: Buffer.from(body), digest: sha256Hex(body), storedAt, expiresAt: storedAt + 60_000, status: 200, headers: { 'content-type': 'application/json; charset=utf-8' } };
    owner.answer = (get) => ({ type: 'entry', id: get.id, sealed: sealEntry(before, get.key, ANONYMOUS_KEY) });
    const first = await a.request(`GET ${LIST}/${n}`, {});
    expect(first.source).to.equal('peer');

    await b.request(`PATCH ${LIST}/${n}`, { title: 'new' }, { token: TOKEN_A });
    await waitFor(async () => ((await p2pOf(a)).invalidationsReceived ?? 0) >= 1, 'the notice', 15_000, 20);
    const after = await a.request(`GET ${LIST}/${n}`, {});
    expect((after.data as { title: string }).title, `the answer (${after.source})`).to.equal('new');
    expect(owner.gets.length, 'the owner was asked again').to.equal(2);
  });
});
