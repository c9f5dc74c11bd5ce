import { expect } from 'chai';
import { GitHubAPICache, TokenHostError } from '../index.js';
import { ScriptedGitHub } from '../support/scripted-github.js';

/** A token goes to the configured GitHub API and nowhere else, whatever the route or its parameters name. */

// Built at run time: a literal of a token's shape in the source would look like a leaked secret.
const TOKEN = `ghp_${'hosts'.padEnd(36, 'A')}`;
const JSON_TYPE = 'application/json; charset=utf-8';

describe('the token goes only to the configured GitHub API', () => {
  let github: ScriptedGitHub;
  let elsewhere: ScriptedGitHub;
  let cache: GitHubAPICache;
  beforeEach(async () => {
    elsewhere = await ScriptedGitHub.start(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"stolen":false}' }));
    github = await ScriptedGitHub.start((r) => (r.url === '/redirect'
      ? { status: 302, headers: { location: `${elsewhere.url}/landing` } }
      : { status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' }));
    cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off' });
  });
  afterEach(async () => {
    await cache.close();
    await github.close();
    await elsewhere.close();
  });

  async function refused(call: Promise<unknown>): Promise<TokenHostError> {
    try {
      await call;
    } catch (err) {
      expect(err).to.be.instanceOf(TokenHostError);
      expect((err as Error).message).to.not.contain(TOKEN);
      return err as TokenHostError;
    }
    throw new Error('expected TokenHostError');
  }

  it('refuses, before sending a byte, a route, a baseUrl or a url parameter naming another host', async () => {
    await refused(cache.request(`GET ${elsewhere.url}/x`, {}, { token: TOKEN }));
    await refused(cache.request('GET /x', { baseUrl: elsewhere.url }, { token: TOKEN }));
    await refused(cache.request('GET {+url}', { url: `${elsewhere.url}/x` }, { token: TOKEN }));
    await refused(cache.request(`POST ${elsewhere.url}/x`, { a: 1 }, { token: TOKEN }));
    expect(elsewhere.requests).to.have.length(0);
    expect((await cache.getStats()).apiCallsMade).to.equal(0);
  });

  it('still lets a request without a token reach another host', async () => {
    const answer = await cache.request(`GET ${elsewhere.url}/public`);
    expect(answer.data).to.deep.equal({ stolen: false });
    expect(elsewhere.requests[0]!.headers.authorization).to.equal(undefined);
  });

  it('follows a redirect to another host without the token', async () => {
    const answer = await cache.request('GET /redirect', {}, { token: TOKEN });
    expect(answer.status).to.equal(200);
    expect(github.requests[0]!.headers.authorization).to.equal(`token ${TOKEN}`);
    expect(elsewhere.requests[0]!.headers.authorization).to.equal(undefined);
  });
});
