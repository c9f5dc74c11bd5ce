import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { ScriptedGitHub } from '../support/scripted-github.js';
import { waitFor } from '../support/wait.js';
import { removeTmpDirs, tmpCacheDir } from './support/p2p-fixtures.js';

/** Bodies travel as bytes over the fleet too: an archive or a non-UTF-8 text is shared, byte for byte. */

const SECRET = 'bytes-spec-shared-secret-0123456789';
// Built at run time: a literal of a token's shape in the source would look like a leaked secret.
const TOKEN = `ghp_${'bytes'.padEnd(36, 'A')}`;

describe('the fleet shares bodies as bytes', function () {
  this.timeout(60_000);
  const open: GitHubAPICache[] = [];
  let github: ScriptedGitHub;
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await github?.close();
    removeTmpDirs();
  });

  it('answers a binary body and an invalid UTF-8 text from a peer with the exact bytes GitHub sent', async () => {
    const archive = randomBytes(5000);
    const log = Buffer.concat([Buffer.from('line 1\n'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('\nline 2\n')]);
    github = await ScriptedGitHub.start((r) => (r.url.endsWith('.tgz')
      ? { status: 200, headers: { 'content-type': 'application/x-gzip', 'cache-control': 'private, max-age=60' }, body: archive }
      : { status: 200, headers: { 'content-type': 'text/plain', 'cache-control': 'private, max-age=60' }, body: log }));
    const make = async (bootstrap: string[]) => {
      const cache = await GitHubAPICache.create({
        persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url,
        p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers: bootstrap },
      });
      await cache.p2pReady();
      return cache;
    };
    const a = await make([]);
    open.push(a);
    const addr = (await a.getStats()).p2p!.listenAddrs.find((x) => x.includes('/127.0.0.1/'))!;
    const b = await make([addr]);
    open.push(b);
    await Promise.all([a, b].map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })));
    await waitFor(async () => (await Promise.all([a, b].map((c) => c.getStats()))).every((s) => s.p2p!.peers.some((p) => p.scopes >= 2)), 'the scope claims', 40_000, 20);

    // Every path is fetched once by whichever member owns it; the other member gets it from that peer.
    const paths = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? `/repos/o/r/tarball/v${i}.tgz` : `/repos/o/r/actions/jobs/${i}/logs`));
    for (const path of paths) {
      const first = await a.request(`GET ${path}`, {}, { token: TOKEN });
      const second = await b.request(`GET ${path}`, {}, { token: TOKEN });
      const expected = path.endsWith('.tgz') ? archive : log;
      expect(Buffer.compare(Buffer.from(first.bytes), expected), `${path} on a`).to.equal(0);
      expect(Buffer.compare(Buffer.from(second.bytes), expected), `${path} on b`).to.equal(0);
    }
    const requested = github.requests.filter((r) => r.url !== '/rate_limit').length;
    expect(requested, 'one upstream request per path').to.equal(paths.length);
    const peerHits = (await a.getStats()).peerHits + (await b.getStats()).peerHits;
    expect(peerHits, 'answers that came from the other member').to.be.greaterThan(0);
  });
});
