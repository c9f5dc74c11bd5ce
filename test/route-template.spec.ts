import { endpoint } from '@octokit/endpoint';
import { expect } from 'chai';
import { normalizeUrl } from '../src/cache/request-key.js';
import { RouteTemplates } from '../src/github/route-template.js';

describe('RouteTemplates (the fast path of simple GET routes)', () => {
  const base = 'https://api.github.com';
  const general = endpoint.defaults({ baseUrl: base });
  const templates = new RouteTemplates();

  const same: Array<[string, Record<string, unknown>]> = [
    ['GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello-world' }],
    ['GET /repos/{owner}/{repo}/issues/{issue_number}', { owner: 'o', repo: 'r.js', issue_number: 42 }],
    ['HEAD /users/{username}', { username: 'a_b~c' }],
    ['GET /rate_limit', {}],
    ['GET /repos/{owner}/{repo}/actions/runs', { owner: 'O', repo: 'R', extra: undefined }],
  ];
  for (const [route, params] of same) {
    it(`expands ${route} exactly as @octokit/endpoint and normalizeUrl do`, () => {
      const fast = templates.expand(route, params, base);
      const slow = general(route, params as never);
      expect(fast).to.not.equal(undefined);
      expect(fast!.url).to.equal(normalizeUrl(slow.url));
      expect(fast!.method).to.equal(slow.method);
    });
  }

  const declined: Array<[string, string, Record<string, unknown>]> = [
    ['a leftover param (a query)', 'GET /repos/{owner}/{repo}/issues', { owner: 'o', repo: 'r', per_page: 5 }],
    ['a value that needs encoding', 'GET /repos/{owner}/{repo}', { owner: 'a b', repo: 'r' }],
    ['a dot-segment value', 'GET /repos/{owner}/{repo}', { owner: '..', repo: 'r' }],
    ['a missing param', 'GET /repos/{owner}/{repo}', { owner: 'o' }],
    ['a write', 'POST /repos/{owner}/{repo}/issues', { owner: 'o', repo: 'r' }],
    ['a query in the route', 'GET /repos/o/r?per_page=1', {}],
    ['a reserved expansion', 'GET /repos/{owner}/{repo}/contents/{+path}', { owner: 'o', repo: 'r', path: 'a/b' }],
    ['an absolute URL', 'GET https://example.com/x', {}],
    ['a non-integer number', 'GET /repos/{owner}/{repo}', { owner: 1.5, repo: 'r' }],
  ];
  for (const [name, route, params] of declined) {
    it(`leaves ${name} to the general path`, () => {
      expect(templates.expand(route, params, base)).to.equal(undefined);
    });
  }
});
