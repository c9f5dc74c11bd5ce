import { expect } from 'chai';
import { fork, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { configureCache, getCacheProvider, shutdownGlobalCache } from '../providers/index.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { formatRequestKey } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { waitFor } from '../support/wait.js';
import { freePort, removeTmpDirs, tmpCacheDir } from './support/p2p-fixtures.js';

/**
 * The fleet, end to end: real caches (and real processes and worker threads) sharing over libp2p on
 * loopback, against one fake GitHub.
 */

const SECRET = 'fleet-spec-shared-secret-0123456789';
const TOKEN_A = 'test_fleetAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const TOKEN_B = 'test_fleetBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

async function node(github: FakeGitHub, bootstrap: string[] = [], extra: { listenPort?: number; requestTimeoutMs?: number } = {}): Promise<GitHubAPICache> {
  return listening(GitHubAPICache.create({
    persistence: 'off',
    cacheDir: tmpCacheDir(),
    githubApiUrl: github.url,
    p2p: {
      enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: extra.listenPort ?? 0, bootstrapPeers: bootstrap,
      ...(extra.requestTimeoutMs !== undefined ? { requestTimeoutMs: extra.requestTimeoutMs } : {}),
    },
  }));
}

/** The cache once its P2P host listens (create() resolves before that). */
async function listening(created: Promise<GitHubAPICache>): Promise<GitHubAPICache> {
  const cache = await created;
  await cache.p2pReady();
  return cache;
}

async function p2pOf(cache: GitHubAPICache) {
  return (await cache.getStats()).p2p!;
}

/** Starts n caches, the others bootstrapped to the first, and waits for a full mesh. */
async function fleet(github: FakeGitHub, n: number, extra: { requestTimeoutMs?: number } = {}): Promise<GitHubAPICache[]> {
  const first = await node(github, [], extra);
  const addr = (await p2pOf(first)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
  const nodes = [first, ...(await Promise.all(Array.from({ length: n - 1 }, () => node(github, [addr], extra))))];
  await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.connectedPeers >= n - 1), 'a full mesh');
  return nodes;
}

/** Each node uses the token once (announcing its scope); waits until every peer proved it holds it. */
async function shareScope(nodes: GitHubAPICache[], token: string, scopes = 2): Promise<void> {
  await Promise.all(nodes.map((c) => c.request('GET /rate_limit', {}, { token })));
  await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length >= nodes.length - 1 && s.peers.every((p) => p.scopes >= scopes)), 'scope claims');
}

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(condition, what, timeoutMs, 20);
}

describe('the P2P fleet (caches sharing over libp2p on loopback)', function () {
  this.timeout(60_000);
  let github: FakeGitHub;
  const open: GitHubAPICache[] = [];

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' }, [TOKEN_B]: { label: 'B' } } });
    github.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < 300; i++) github.setResource(`/repos/octo/r${i}`, { i });
    github.setResource('/repos/octo/secret', { secret: true }, { visibleTo: [TOKEN_A] });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await github.close();
    removeTmpDirs();
  });

  it('spends about one upstream request per resource when three nodes issue the same 200 requests at once', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    await shareScope(nodes, TOKEN_A);
    const peerHitsBefore = (await Promise.all(nodes.map((c) => c.getStats()))).reduce((sum, s) => sum + s.peerHits, 0);
    github.resetStats();
    github.setLatency(5);
    const routes = Array.from({ length: 200 }, (_, i) => `GET /repos/octo/r${i}`);
    const results = await Promise.all(nodes.flatMap((c) => routes.map((route) => c.request(route, {}, { token: TOKEN_A }))));
    expect(results).to.have.length(600);
    expect(github.stats.requests, 'upstream requests for 600 calls over 200 resources').to.be.within(200, 210);
    const sources = results.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.source]: (acc[r.source] ?? 0) + 1 }), {});
    expect(sources.peer ?? 0).to.be.greaterThan(300);
    const stats = await Promise.all(nodes.map((c) => c.getStats()));
    expect(stats.reduce((sum, s) => sum + s.peerHits, 0) - peerHitsBefore).to.equal(sources.peer);
  });

  it('spends about one upstream request per resource from a cold start: three nodes, a token none has seen, the same 200 requests at once', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    // Every node speaks the protocol with the others; none has used TOKEN_A, so none has claimed its scope.
    await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length === 2 && s.peers.every((p) => p.scopes === 1)), 'protocol sessions');
    github.resetStats();
    github.setLatency(5);
    const routes = Array.from({ length: 200 }, (_, i) => `GET /repos/octo/r${i}`);
    const results = await Promise.all(nodes.flatMap((c) => routes.map((route) => c.request(route, {}, { token: TOKEN_A }))));
    expect(results).to.have.length(600);
    results.forEach((r, n) => expect(r.data, `answer ${n}`).to.deep.equal({ i: n % 200 }));
    expect(github.stats.requests, 'upstream requests for 600 cold calls over 200 resources').to.be.at.most(220);
  });

  it('has an owner that does not hold the scope yet coordinate its keys (blind, then as holder) when its own callers bring the token later', async () => {
    // The owner coordinates blind until its callers bring the token, so no timer is needed for this; a long
    // request timeout keeps a busy machine's silences from being taken for a dead owner in the meantime.
    const nodes = await fleet(github, 3, { requestTimeoutMs: 8_000 });
    open.push(...nodes);
    await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length === 2), 'protocol sessions');
    const [a0, a1, late] = nodes as [GitHubAPICache, GitHubAPICache, GitHubAPICache];
    github.resetStats();
    github.setLatency(5);
    const routes = Array.from({ length: 200 }, (_, i) => `GET /repos/octo/r${i}`);
    const early = Promise.all([a0, a1].flatMap((c) => routes.map((route) => c.request(route, {}, { token: TOKEN_A }))));
    // The third member's callers start once the others' keys are under way: the asks for its keys wait for it.
    await github.waitFor((s) => s.requests >= 30);
    expect((await p2pOf(late)).requestsServed).to.equal(0);
    const lateResults = Promise.all(routes.map((route) => late.request(route, {}, { token: TOKEN_A })));
    const results = [...(await early), ...(await lateResults)];
    results.forEach((r, n) => expect(r.data, `answer ${n}`).to.deep.equal({ i: n % 200 }));
    expect(github.stats.requests, 'upstream requests for 600 calls over 200 resources').to.be.at.most(220);
    // It coordinated its keys blind (leases) until its callers brought the token, then served them itself.
    const lateStats = await p2pOf(late);
    expect(lateStats.leasesGranted + lateStats.requestsServed, 'asks the late member coordinated as owner').to.be.greaterThan(40);
  });

  it('shares a cold scope between its holders only, when a member never holds it (mixed tokens)', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.peers.length === 2), 'protocol sessions');
    const [a0, a1, b] = nodes as [GitHubAPICache, GitHubAPICache, GitHubAPICache];
    await b.request('GET /rate_limit', {}, { token: TOKEN_B });
    github.resetStats();
    const routes = Array.from({ length: 200 }, (_, i) => `GET /repos/octo/r${i}`);
    // A third of the keys are owned by the member that never holds token A: it coordinates them blind (one
    // lease per key, the other asker waits on it), never reading one.
    const results = await Promise.all([a0, a1].flatMap((c) => routes.map((route) => c.request(route, {}, { token: TOKEN_A }))));
    results.forEach((r, n) => expect(r.data, `answer ${n}`).to.deep.equal({ i: n % 200 }));
    expect(github.stats.requests, 'upstream requests for 400 cold calls over 200 resources').to.be.at.most(220);
    const third = await p2pOf(b);
    expect(third.requestsServed, 'entries served by the member without token A').to.equal(0);
    expect(third.entriesReceived).to.equal(0);
    expect(third.leasesGranted, 'leases handed out by the member without token A').to.be.greaterThan(0);
    // A second wave of new keys: still one upstream request per key.
    github.resetStats();
    const more = Array.from({ length: 60 }, (_, i) => `GET /repos/octo/r${200 + i}`);
    const second = await Promise.all([a0, a1].flatMap((c) => more.map((route) => c.request(route, {}, { token: TOKEN_A }))));
    second.forEach((r, n) => expect(r.data).to.deep.equal({ i: 200 + (n % 60) }));
    expect(github.stats.requests).to.be.at.most(66);
  });

  it('waits for a live but slow owner through a stall of its own event loop instead of fetching the key twice', async () => {
    // CPU contention, made certain: this process's event loop (both nodes' and the fake's) stalls for three
    // request timeouts while the owner waits for a slow GitHub. Only counts are asserted, never durations.
    const make = (bootstrapPeers: string[]) => listening(GitHubAPICache.create({
      persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url,
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers, requestTimeoutMs: 500 },
    }));
    const owner = await make([]);
    open.push(owner);
    const asker = await make([(await p2pOf(owner)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!]);
    open.push(asker);
    await shareScope([asker, owner], TOKEN_A);
    const ids = [(await p2pOf(asker)).peerId, (await p2pOf(owner)).peerId];
    const scope = scopeIdOf(TOKEN_A);
    const owned = Array.from({ length: 300 }, (_, i) => i).filter((i) => {
      const key = formatRequestKey({ url: `${github.url}/repos/octo/r${i}`, method: 'GET', scopeId: scope, accept: 'application/vnd.github+json' });
      return rendezvousOwner(key, ids) === ids[1];
    }).slice(0, 10);
    github.resetStats();
    github.setLatency(2_000);
    const asks = owned.map((i) => asker.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN_A }));
    await github.waitFor((s) => s.requests >= owned.length);
    const stallUntil = Date.now() + 1_500;
    while (Date.now() < stallUntil) {
      // busy: no timer, no socket is serviced
    }
    const results = await Promise.all(asks);
    results.forEach((r, n) => expect(r.data).to.deep.equal({ i: owned[n] }));
    expect(github.stats.requests, 'upstream requests: the owner\'s only').to.equal(owned.length);
    expect(results.map((r) => r.source)).to.deep.equal(owned.map(() => 'peer'));
    expect((await p2pOf(asker)).timeouts).to.equal(0);
  });

  it('still answers every request when the owner of a third of the keys dies mid-run', async () => {
    const nodes = await fleet(github, 3);
    open.push(nodes[0]!, nodes[1]!);
    await shareScope(nodes, TOKEN_A);
    github.setLatency(3);
    const routes = Array.from({ length: 300 }, (_, i) => `GET /repos/octo/r${i}`);
    const asks = [nodes[0]!, nodes[1]!].flatMap((c) => routes.map((route) => c.request(route, {}, { token: TOKEN_A })));
    setTimeout(() => void nodes[2]!.close(), 15);
    const results = await Promise.allSettled(asks);
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed, JSON.stringify(failed.slice(0, 3))).to.have.length(0);
    expect(results.every((r) => r.status === 'fulfilled' && (r.value.data as { i: number }).i >= 0)).to.equal(true);
  });

  it('never hands a node that holds only token B the data fetched with token A', async () => {
    const nodes = await fleet(github, 3);
    open.push(...nodes);
    const [idA0, idA1] = [(await p2pOf(nodes[0]!)).peerId, (await p2pOf(nodes[1]!)).peerId];
    await Promise.all([nodes[0]!, nodes[1]!].map((c) => c.request('GET /rate_limit', {}, { token: TOKEN_A })));
    await nodes[2]!.request('GET /rate_limit', {}, { token: TOKEN_B });
    await waitUntil(async () => {
      const [s0, s1] = await Promise.all([p2pOf(nodes[0]!), p2pOf(nodes[1]!)]);
      return (s0.peers.find((p) => p.id === idA1)?.scopes ?? 0) >= 2 && (s1.peers.find((p) => p.id === idA0)?.scopes ?? 0) >= 2;
    }, 'scope A shared by the first two nodes');
    const a = await nodes[0]!.request('GET /repos/octo/secret', {}, { token: TOKEN_A });
    expect(a.data).to.deep.equal({ secret: true });
    await nodes[1]!.request('GET /repos/octo/secret', {}, { token: TOKEN_A });
    let error: unknown;
    await nodes[2]!.request('GET /repos/octo/secret', {}, { token: TOKEN_B }).catch((err) => (error = err));
    expect((error as { status?: number }).status).to.equal(404);
    const third = await p2pOf(nodes[2]!);
    expect(third.entriesReceived).to.equal(0);
    // The nodes holding A see the node holding only B as a peer without scope A (only the anonymous scope).
    for (const holder of nodes.slice(0, 2)) {
      const view = (await p2pOf(holder)).peers.find((p) => p.id === third.peerId);
      expect(view?.scopes).to.equal(1);
    }
  });

  it('reads its own writes: after a write, a node does not take the pre-write entry from the owner', async () => {
    const nodes = await fleet(github, 2);
    open.push(...nodes);
    await shareScope(nodes, TOKEN_A);
    github.setCollection('/repos/octo/hello/issues', [{ number: 1, title: 'one' }]);
    const route = 'GET /repos/octo/hello/issues';
    await Promise.all(nodes.map((c) => c.request(route, {}, { token: TOKEN_A })));
    for (const writer of nodes) {
      await writer.request('POST /repos/octo/hello/issues', { title: `by ${writer === nodes[0] ? 'first' : 'second'}` }, { token: TOKEN_A });
      const after = await writer.request(route, {}, { token: TOKEN_A });
      expect(after.source).to.equal('origin');
      expect((after.data as unknown[]).length).to.equal(writer === nodes[0] ? 2 : 3);
    }
  });

  describe('configureCache with P2P on', () => {
    afterEach(async () => {
      await shutdownGlobalCache();
      getCacheProvider().useFactory((options) => GitHubAPICache.create(options));
    });

    it('stops the old host before the new one binds the same port', async () => {
      const port = await freePort();
      const options = (ttl: number) => ({
        persistence: 'off' as const, defaultTtl: ttl, cacheDir: tmpCacheDir(), githubApiUrl: github.url,
        p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: port },
      });
      const first = await listening(configureCache(options(1)));
      expect((await p2pOf(first)).boundPort).to.equal(port);
      const second = await listening(configureCache(options(2)));
      expect(first.closed).to.equal(true);
      const p2p = await p2pOf(second);
      expect(p2p.boundPort).to.equal(port);
      expect(p2p.portFallback).to.equal(false);
    });
  });

  describe('four members on one machine and one fixed port', () => {
    type Member = {
      send: (message: object) => void;
      ready: Promise<{ p2p: { peerId: string; boundPort: number; portFallback: boolean }; startedMs: number }>;
      next: (type: string, id?: number) => Promise<Record<string, unknown>>;
      stop: () => Promise<void>;
    };
    const script = new URL('../support/fleet-node.js', import.meta.url);

    function wire(on: (listener: (m: Record<string, unknown>) => void) => void, send: (m: object) => void, stop: () => Promise<void>): Member {
      const waiting: Array<{ type: string; id?: number | undefined; resolve: (m: Record<string, unknown>) => void }> = [];
      on((message) => {
        const i = waiting.findIndex((w) => (w.type === message.type || (message.type === 'error' && w.type === 'response')) && (w.id === undefined || w.id === message.id));
        if (i >= 0) waiting.splice(i, 1)[0]!.resolve(message);
      });
      const next = (type: string, id?: number) => new Promise<Record<string, unknown>>((resolve) => waiting.push({ type, id, resolve }));
      const ready = Promise.race([
        next('ready'),
        next('failed').then((m) => {
          throw new Error(`member failed: ${String(m.message)}`);
        }),
      ]) as Member['ready'];
      return { send, ready, next, stop };
    }

    function env(port: number): Record<string, string> {
      return { CACHE_DIR: tmpCacheDir(), GITHUB_API_URL: github.url, CACHE_LISTEN_PORT: String(port), CACHE_P2P_SHARED_SECRET: SECRET };
    }

    function childMember(port: number): Member {
      const child: ChildProcess = fork(script, [], { env: { ...process.env, ...env(port) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      return wire((l) => child.on('message', l as never), (m) => child.send(m), async () => {
        if (child.exitCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.send({ type: 'close' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      });
    }

    function workerMember(port: number): Member {
      const worker = new Worker(script, { workerData: { env: env(port) } });
      return wire((l) => worker.on('message', l), (m) => worker.postMessage(m), async () => {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.postMessage({ type: 'close' });
        const timer = setTimeout(() => void worker.terminate(), 5_000);
        await exited;
        clearTimeout(timer);
      });
    }

    for (const [kind, make] of [['child processes', childMember], ['worker threads', workerMember]] as const) {
      it(`has exactly one of four ${kind} bind the port, all up within 10 s and connected, sharing a request`, async () => {
        const port = await freePort();
        const members = Array.from({ length: 4 }, () => make(port));
        try {
          const ready = await Promise.all(members.map((m) => m.ready));
          for (const r of ready) expect(r.startedMs).to.be.below(10_000);
          expect(ready.filter((r) => !r.p2p.portFallback && r.p2p.boundPort === port)).to.have.length(1);
          let id = 0;
          const ask = async (m: Member, message: object) => {
            const myId = ++id;
            const reply = m.next((message as { type: string }).type === 'stats' ? 'stats' : 'response', myId);
            m.send({ ...message, id: myId });
            return reply;
          };
          const statsOf = async (m: Member) => (await ask(m, { type: 'stats' })).stats as { p2p: { connectedPeers: number; peers: Array<{ scopes: number }> } };
          await waitUntil(async () => (await Promise.all(members.map(statsOf))).every((s) => s.p2p.connectedPeers === 3), 'all four connected');
          for (const m of members) await ask(m, { type: 'request', route: 'GET /rate_limit', token: TOKEN_A });
          await waitUntil(async () => (await Promise.all(members.map(statsOf))).every((s) => s.p2p.peers.length === 3 && s.p2p.peers.every((p) => p.scopes >= 2)), 'scopes shared');

          // A resource owned by neither asker, so the second asker is answered by the owner from the fleet.
          const ids = ready.map((r) => r.p2p.peerId);
          const scope = scopeIdOf(TOKEN_A);
          const index = Array.from({ length: 300 }, (_, i) => i).find((i) => {
            const key = formatRequestKey({ url: `${github.url}/repos/octo/r${i}`, method: 'GET', scopeId: scope, accept: 'application/vnd.github+json' });
            const owner = rendezvousOwner(key, ids);
            return owner !== ids[1] && owner !== ids[2];
          })!;
          const before = github.stats.requests;
          const first = await ask(members[1]!, { type: 'request', route: `GET /repos/octo/r${index}`, token: TOKEN_A });
          const second = await ask(members[2]!, { type: 'request', route: `GET /repos/octo/r${index}`, token: TOKEN_A });
          expect(first.source).to.equal('peer');
          expect(second.source).to.equal('peer');
          expect(second.data).to.deep.equal({ i: index });
          expect(github.stats.requests - before).to.equal(1);
        } finally {
          await Promise.all(members.map((m) => m.stop()));
        }
      });
    }
  });
});
