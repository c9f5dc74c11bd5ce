import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { formatRequestKey } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { waitFor } from '../support/wait.js';
import { removeTmpDirs, tmpCacheDir } from './support/p2p-fixtures.js';

/**
 * Hand-off on membership change: a member joining a warm fleet becomes the owner of about a quarter of the keys;
 * for those it lacks, it asks the key's previous holder before GitHub (asking.ts, serving.ts), both when a peer
 * asks it as owner and when its own callers read. Real caches over libp2p on loopback, one fake GitHub.
 */

const SECRET = 'handoff-spec-shared-secret-0123456789';
const TOKEN = `test_handoff${'A'.repeat(28)}`;
const KEYS = 40;

async function node(github: FakeGitHub, bootstrap: string[] = [], handoff?: boolean): Promise<GitHubAPICache> {
  const cache = await GitHubAPICache.create({
    persistence: 'off',
    cacheDir: tmpCacheDir(),
    githubApiUrl: github.url,
    p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers: bootstrap, ...(handoff === undefined ? {} : { handoff }) },
  });
  await cache.p2pReady();
  return cache;
}

async function p2pOf(cache: GitHubAPICache) {
  return (await cache.getStats()).p2p!;
}

async function addressOf(cache: GitHubAPICache): Promise<string> {
  return (await p2pOf(cache)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
}

/** Every node uses the token once (claiming its scope); resolves once each sees all others prove it. */
async function meshWithScope(nodes: GitHubAPICache[]): Promise<void> {
  await Promise.all(nodes.map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })));
  await waitFor(async () => (await Promise.all(nodes.map(p2pOf)))
    .every((s) => s.peers.length >= nodes.length - 1 && s.peers.every((p) => p.scopes >= 2)), 'a full mesh with scope claims', 40_000, 20);
}

function read(cache: GitHubAPICache, i: number) {
  return cache.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN });
}

describe('hand-off: a member joining a warm fleet', function () {
  this.timeout(60_000);
  let github: FakeGitHub;
  const open: GitHubAPICache[] = [];

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'A' } } });
    github.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < 2 * KEYS; i++) github.setResource(`/repos/octo/r${i}`, { i });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await github.close();
    removeTmpDirs();
  });

  /** Three warm members (the first read every key, so each key's owner holds it), then a fourth joins. */
  async function warmFleetAndJoiner(handoff?: boolean): Promise<{ nodes: GitHubAPICache[]; joiner: GitHubAPICache; joinerOwns: number[] }> {
    const first = await node(github, [], handoff);
    open.push(first);
    const addr = await addressOf(first);
    const others = await Promise.all([node(github, [addr], handoff), node(github, [addr], handoff)]);
    open.push(...others);
    const warm = [first, ...others];
    await meshWithScope(warm);
    for (let i = 0; i < KEYS; i++) await read(first, i);
    const joiner = await node(github, [addr], handoff);
    open.push(joiner);
    const nodes = [...warm, joiner];
    await meshWithScope(nodes);
    const ids = await Promise.all(nodes.map(async (c) => (await p2pOf(c)).peerId));
    const scope = scopeIdOf(TOKEN);
    const joinerOwns = Array.from({ length: KEYS }, (_, i) => i).filter((i) => {
      const key = formatRequestKey({ url: `${github.url}/repos/octo/r${i}`, method: 'GET', scopeId: scope, accept: 'application/vnd.github+json' });
      return rendezvousOwner(key, ids) === ids[3];
    });
    github.resetStats();
    return { nodes, joiner, joinerOwns };
  }

  it('spends no upstream request on keys the fleet holds fresh when all four members read every key after a join', async () => {
    const { nodes, joiner, joinerOwns } = await warmFleetAndJoiner();
    expect(joinerOwns.length, 'keys the joiner owns (the spec needs some)').to.be.greaterThan(0);
    // (Its /rate_limit read in meshWithScope may have been a peer answer: count from here.)
    const peerHitsBefore = (await joiner.getStats()).peerHits;
    // First a warm member reads every key: the joiner's keys reach it as owner for a peer (serving side).
    for (let i = 0; i < KEYS / 2; i++) await read(nodes[1]!, i);
    expect(github.stats.requests, 'upstream requests while a peer asks the joiner as owner').to.equal(0);
    // Entries it got by hand-off went to the asking peer, not to a caller of its own: no peer answer of its own.
    expect((await joiner.getStats()).peerHits - peerHitsBefore, 'peer answers counted on the joiner while it read nothing').to.equal(0);
    // Then the joiner's own callers, on keys nobody asked it for yet (its own reads).
    for (let i = KEYS / 2; i < KEYS; i++) await read(joiner, i);
    expect(github.stats.requests, 'upstream requests of the joiner\'s own reads').to.equal(0);
    // Then everyone reads everything, all at once.
    const results = await Promise.all(nodes.flatMap((c) => Array.from({ length: KEYS }, (_, i) => read(c, i))));
    results.forEach((r, n) => expect(r.data, `answer ${n}`).to.deep.equal({ i: n % KEYS }));
    expect(github.stats.requests, 'upstream requests after the join').to.equal(0);
    const stats = await p2pOf(joiner);
    expect(stats.handoffEntries, 'entries handed off to the joiner').to.be.at.least(joinerOwns.length);
    expect(stats.handoffEntries).to.be.at.most(stats.handoffsSent);
  });

  it('goes upstream for the joiner\'s keys without hand-off (p2p.handoff false: the behaviour before)', async () => {
    const { nodes, joiner, joinerOwns } = await warmFleetAndJoiner(false);
    expect(joinerOwns.length).to.be.greaterThan(0);
    await Promise.all(nodes.flatMap((c) => Array.from({ length: KEYS }, (_, i) => read(c, i))));
    expect(github.stats.requests, 'an upstream request per key the joiner owns').to.be.at.least(joinerOwns.length);
    expect((await p2pOf(joiner)).handoffsSent).to.equal(0);
  });

  it('never forwards a hand-off ask: a key nobody holds costs one upstream request, made by its new owner', async () => {
    const { nodes, joiner } = await warmFleetAndJoiner();
    const ids = await Promise.all(nodes.map(async (c) => (await p2pOf(c)).peerId));
    const scope = scopeIdOf(TOKEN);
    // A key no member has read, owned by the joiner.
    const cold = Array.from({ length: KEYS }, (_, n) => KEYS + n).find((i) => {
      const key = formatRequestKey({ url: `${github.url}/repos/octo/r${i}`, method: 'GET', scopeId: scope, accept: 'application/vnd.github+json' });
      return rendezvousOwner(key, ids) === ids[3];
    });
    expect(cold, 'a key the joiner owns among 40 (missing in (3/4)^40 of runs)').to.not.equal(undefined);
    const before = (await p2pOf(joiner)).handoffsSent;
    const results = await Promise.all(nodes.map((c) => read(c, cold!)));
    results.forEach((r) => expect(r.data).to.deep.equal({ i: cold }));
    expect(github.stats.requests, 'upstream requests for a key nobody held').to.equal(1);
    expect(github.stats.byPath[`/repos/octo/r${cold!}`]).to.equal(1);
    expect((await p2pOf(joiner)).handoffsSent - before, 'hand-off asks: one, by the new owner').to.equal(1);
  });
});
