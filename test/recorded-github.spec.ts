import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { RECORDED_ORIGINS, RecordedGitHub, representationOf } from '../support/recorded-github/index.js';
import { loadScenario, scenariosDirectory } from '../support/recorded-github/scenarios.js';

/** The replay of @octokit/fixtures is only as useful as it is faithful: what it serves is what was recorded. */
describe('RecordedGitHub (replay of recorded api.github.com traffic)', () => {
  const AUTH = { authorization: 'token 0000000000000000000000000000000000000001' };
  let replay: RecordedGitHub;

  before(async () => {
    replay = await RecordedGitHub.start();
  });
  after(async () => {
    await replay.close();
  });
  beforeEach(() => replay.resetLog());

  it('serves the bytes GitHub sent: with GitHub\'s own URLs, every body has the recorded content-length', () => {
    let checked = 0;
    for (const name of replay.scenarios.keys()) {
      const raw = JSON.parse(readFileSync(path.join(scenariosDirectory(), name, 'normalized-fixture.json'), 'utf8')) as Array<{ headers: Record<string, unknown> }>;
      loadScenario(name, RECORDED_ORIGINS).forEach((x, i) => {
        const recordedLength = raw[i]!.headers['content-length'];
        // The recorder rewrote ids inside these bodies after measuring them (see its normalized-fixture.json).
        if (recordedLength === undefined || name === 'search-issues' || (name === 'rename-repository' && x.status >= 300)) return;
        expect(x.body.length, `${name} #${i}`).to.equal(Number(recordedLength));
        checked++;
      });
    }
    expect(checked).to.be.greaterThan(50);
  });

  it('answers with the recorded status, headers and bytes, URLs pointing at itself, and a free 304 for the ETag', async () => {
    replay.at('paginate-issues', 0);
    const url = `${replay.urls.api}/repos/octokit-fixture-org/paginate-issues/issues?per_page=3`;
    const first = await fetch(url, { headers: AUTH });
    const body = Buffer.from(await first.arrayBuffer());
    const recorded = replay.scenarios.get('paginate-issues')![0]!;
    expect(first.status).to.equal(200);
    expect(Buffer.compare(body, recorded.body)).to.equal(0);
    expect(first.headers.get('content-length')).to.equal(String(body.length));
    expect(first.headers.get('link')).to.equal(`<${replay.urls.api}/repositories/1000/issues?per_page=3&page=2>; rel="next", <${replay.urls.api}/repositories/1000/issues?per_page=3&page=5>; rel="last"`);
    expect(first.headers.get('etag')).to.match(/^"[0-9a-f]{32}"$/);
    const again = await fetch(url, { headers: { ...AUTH, 'if-none-match': first.headers.get('etag')! } });
    expect(again.status).to.equal(304);
    expect((await again.arrayBuffer()).byteLength).to.equal(0);
    expect(again.headers.get('etag')).to.equal(first.headers.get('etag'));
    expect(replay.requestsTo('/repos/octokit-fixture-org/paginate-issues/issues')).to.equal(2);
  });

  it('serves the archive redirect and the binary archive from codeload\'s own port', async () => {
    replay.at('get-archive', 0);
    const res = await fetch(`${replay.urls.api}/repos/octokit-fixture-org/get-archive/tarball/main`, { headers: AUTH });
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.url.startsWith(replay.urls.codeload)).to.equal(true);
    expect(res.headers.get('content-type')).to.equal('application/x-gzip');
    expect(bytes.subarray(0, 2).toString('hex')).to.equal('1f8b'); // gzip magic
    expect(replay.log.map((e) => `${e.host} ${e.status}`)).to.deep.equal(['api 302', 'codeload 200']);
  });

  it('picks the representation Accept selects, and the state of the resource at the scenario\'s position', async () => {
    replay.at('get-content', 0);
    const raw = await fetch(`${replay.urls.api}/repos/octokit-fixture-org/hello-world/contents/README.md`, { headers: { ...AUTH, accept: 'application/vnd.github.raw+json' } });
    expect(await raw.text()).to.equal('# hello-world');
    const json = await fetch(`${replay.urls.api}/repos/octokit-fixture-org/hello-world/contents/README.md`, { headers: AUTH });
    expect(json.status).to.equal(415);
    expect(representationOf('application/vnd.github.v3+json')).to.equal(representationOf(undefined));

    const refs = `${replay.urls.api}/repos/octokit-fixture-org/git-refs/git/refs/`;
    replay.at('git-refs', 0);
    const before = Buffer.from(await (await fetch(refs, { headers: AUTH })).arrayBuffer());
    replay.at('git-refs', 3);
    const after = Buffer.from(await (await fetch(refs, { headers: AUTH })).arrayBuffer());
    expect(after.length).to.be.greaterThan(before.length);
  });

  it('refuses a request without the recorded token, and one it holds no recording of', async () => {
    replay.at('get-root', 0);
    expect((await fetch(`${replay.urls.api}/`)).status).to.equal(401);
    expect((await fetch(`${replay.urls.api}/`, { headers: { authorization: 'token nope' } })).status).to.equal(401);
    expect((await fetch(`${replay.urls.api}/`, { headers: { authorization: 'Bearer 0000000000000000000000000000000000000001' } })).status).to.equal(200);
    const missing = await fetch(`${replay.urls.api}/nowhere`, { headers: AUTH });
    expect(missing.status).to.equal(404);
    expect(missing.headers.get('x-replay-miss')).to.match(/no recording/);
  });
});
