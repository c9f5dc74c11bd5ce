import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { DEFAULTS } from '../src/options-table.js';
import { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FleetProcess } from '../support/fleet-process.js';
import { waitFor } from '../support/wait.js';
import { removeTmpDirs, tmpCacheDir } from './support/p2p-fixtures.js';

/**
 * An owner that dies with asks in flight: its keys move to the members left, and the askers that lost it ask the
 * key's new owner instead of each going upstream. The victim is a real process killed with SIGKILL (its
 * connections close at once); the askers are caches in this process.
 */

const SECRET = 'owner-loss-spec-shared-secret-012345';
const TOKEN = `test_${'ownerLoss'.padEnd(36, 'L')}`;

describe('an owner lost with asks in flight', function () {
  this.timeout(90_000);
  let github: FakeGitHub;
  let victim: FleetProcess | undefined;
  const open: GitHubAPICache[] = [];

  before(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'T', rateLimit: 1_000_000 } } });
    github.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < 240; i++) github.setResource(`/repos/octo/r${i}`, { i });
  });
  after(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await victim?.stop();
    await github.close();
    removeTmpDirs();
  });

  it('has the askers of its keys fetch each of them once between them, not once each', async () => {
    victim = new FleetProcess({
      CACHE_DIR: tmpCacheDir(), GITHUB_API_URL: github.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SECRET,
      CACHE_BOOTSTRAP_PEERS: '', FLEET_NODE_LISTEN_HOST: '127.0.0.1',
    });
    const ready = await victim.ready;
    const victimAddr = ready.p2p.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    const node = async (bootstrapPeers: string[]) => {
      const cache = await GitHubAPICache.create({
        persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url,
        p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers },
      });
      await cache.p2pReady();
      return cache;
    };
    const first = await node([victimAddr]);
    const firstAddr = (await first.getStats()).p2p!.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    const askers = [first, await node([victimAddr, firstAddr])];
    open.push(...askers);
    const p2pOf = async (c: GitHubAPICache) => (await c.getStats()).p2p!;
    await waitFor(async () => (await Promise.all(askers.map(p2pOf))).every((s) => s.connectedPeers >= 2), 'a full mesh', 40_000, 20);
    // Everyone proves the scope first, so the victim is asked in the clear and serves at once.
    await Promise.all([...askers.map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })), victim.request('GET /rate_limit', TOKEN)]);
    await waitFor(async () => (await Promise.all(askers.map(p2pOf))).every((s) => s.peers.length >= 2 && s.peers.every((p) => p.scopes >= 2)),
      'scope proofs', 40_000, 20);

    const ids = [...(await Promise.all(askers.map(async (c) => (await p2pOf(c)).peerId))), ready.p2p.peerId];
    const keyOf = (i: number) => formatRequestKey({
      url: normalizeUrl(`${github.url}/repos/octo/r${i}`), method: 'GET', scopeId: scopeIdOf(TOKEN), accept: DEFAULT_ACCEPT,
    });
    const routes = Array.from({ length: 240 }, (_, i) => i);
    const lost = routes.filter((i) => rendezvousOwner(keyOf(i), ids) === ids[2]).slice(0, 30);
    expect(lost.length).to.be.greaterThan(10);
    // GitHub is slow for the victim's keys: they stay in flight at the victim, and at both askers waiting for it.
    const slow = new RegExp(`^/repos/octo/r(${lost.join('|')})$`);
    github.setLatency(1_500, { path: slow });
    const answered = new Set<number>();
    const asked = Promise.all(askers.flatMap((c) => lost.map(async (i) => {
      const answer = await c.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN });
      answered.add(i);
      return { i, data: answer.data as { i: number } };
    })));
    const upstreamForLost = () => lost.reduce((n, i) => n + (github.stats.byPath[`/repos/octo/r${i}`] ?? 0), 0);
    // The victim's first wave (its per-scope cap) has all reached GitHub: the next comes only after the slow answers,
    // so no request of the victim is still on its way when it dies and the count below is its own.
    const firstWave = Math.min(DEFAULTS.maxConcurrentPerScope, lost.length);
    await waitFor(async () => upstreamForLost() >= firstWave, 'the victim to fetch its first keys', 40_000, 10);
    const killed = victim.kill();
    const unanswered = lost.filter((i) => !answered.has(i)).length;
    const beforeDeath = upstreamForLost();
    await killed;
    const answers = await asked;
    for (const { i, data } of answers) expect(data.i).to.equal(i);
    expect(unanswered, 'keys of the victim not answered when it died').to.be.greaterThan(0);
    // After its death, one request per unanswered key at the key's new owner (both askers agree on it). Before:
    // one per asker.
    expect(upstreamForLost() - beforeDeath, `upstream requests after the victim died, for its ${unanswered} unanswered keys`)
      .to.be.at.most(unanswered);
  });
});
