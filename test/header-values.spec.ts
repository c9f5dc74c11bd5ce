import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { sha256Hex } from '../src/cache/entry.js';
import { clearSharedHeaderValues, sharedHeaderValue, shareHeaderValues, sharedHeaderValueCount } from '../src/cache/header-values.js';
import { openPlainEntry } from '../src/p2p/envelope.js';
import { rowToEntry } from '../src/store/schema.js';

/**
 * Runs `code` (an ES module's body) in a fresh Node process and returns what it printed on stdout, parsed as JSON.
 * A fresh process, so that its heap snapshot holds that cache alone.
 */
function inChild(code: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    proc.once('error', reject);
    // 'close', not 'exit': stdout may still hold the last chunk when the process has exited.
    proc.once('close', (exitCode) => {
      if (exitCode !== 0) reject(new Error(`the child exited with ${exitCode}: ${out}`));
      else resolve(JSON.parse(out));
    });
  });
}

describe('header values shared between entries', () => {
  beforeEach(() => clearSharedHeaderValues());

  it('returns an equal string, keeps values that repeat, and leaves values specific to one answer out of its table', () => {
    const before = 0;
    const csp = `default-src 'none' ${'a'.repeat(8)}-${Math.random()}`;
    expect(sharedHeaderValue('content-security-policy', csp)).to.equal(csp);
    expect(sharedHeaderValueCount()).to.equal(before + 1);
    expect(sharedHeaderValue('content-security-policy', `${csp}`)).to.equal(csp);
    expect(sharedHeaderValueCount(), 'a repeated value is kept once').to.equal(before + 1);
    for (const name of ['date', 'etag', 'last-modified', 'x-github-request-id', 'x-ratelimit-remaining', 'link']) {
      expect(sharedHeaderValue(name, `${name}-${Math.random()}`)).to.match(new RegExp(`^${name}-`));
    }
    expect(sharedHeaderValueCount(), 'values that differ on every answer are not kept').to.equal(before + 1);
    const long = 'x'.repeat(2000);
    expect(sharedHeaderValue('x-long', long)).to.equal(long);
    expect(sharedHeaderValueCount(), 'a long value is not kept').to.equal(before + 1);
    const headers = { 'content-type': 'application/json; charset=utf-8', etag: 'W/"1"' };
    expect(shareHeaderValues(headers)).to.equal(headers);
    expect(headers).to.deep.equal({ 'content-type': 'application/json; charset=utf-8', etag: 'W/"1"' });
  });

  it('shares the values of entries read from SQLite and of entries a peer sent, not only of answers from GitHub', () => {
    const value = `public, max-age=60 ${Math.random()}`;
    const row = {
      digest: sha256Hex('{}'), body: Buffer.from('{}'), status: 200, headers: JSON.stringify({ 'cache-control': value, etag: 'W/"1"' }),
      etag: 'W/"1"', last_modified: null, stored_at: 1, expires_at: 2,
    };
    expect(rowToEntry(row).headers).to.deep.equal({ 'cache-control': value, etag: 'W/"1"' });
    expect(sharedHeaderValueCount(), 'SQLite: the repeated value is in the table, the etag is not').to.equal(1);
    const other = `application/json ${Math.random()}`;
    const body = Buffer.from('{"a":1}');
    const payload = {
      key: 'k', body, digest: sha256Hex(body), status: 200, headers: { 'content-type': other, 'x-github-request-id': 'A:B' },
      storedAt: Date.now(), expiresAt: Date.now() + 1000,
    };
    expect(openPlainEntry(payload, 'k', { maxEntryTtlSeconds: 60 }).headers).to.deep.equal({ 'content-type': other, 'x-github-request-id': 'A:B' });
    expect(sharedHeaderValueCount(), 'peer: the repeated value is in the table, the request id is not').to.equal(2);
  });

  it('holds a bounded table: a flood of distinct values never keeps more than 2,048 of them', () => {
    for (let i = 0; i < 10_000; i++) sharedHeaderValue('x-flood', `value ${i}`);
    expect(sharedHeaderValueCount()).to.be.at.most(2048);
  });

  it('keeps one copy of a header value GitHub repeats on every answer, not one per entry', async function () {
    this.timeout(60_000);
    // A cache filled with 60 answers of the fake GitHub, which sends the headers api.github.com puts on every
    // answer; then every string in the heap equal to one of those values is counted (a heap snapshot collects
    // garbage first). Each answer's headers are new strings as undici parses them: held as they came, each entry
    // kept its own (60 copies and more).
    const cacheUrl = new URL('../src/github-api-cache.js', import.meta.url).href;
    const fakeUrl = new URL('../support/fake-github/index.js', import.meta.url).href;
    const recordedUrl = new URL('../support/fake-github/recorded-headers.js', import.meta.url).href;
    const result = await inChild(`
      import v8 from 'node:v8';
      const { GitHubAPICache } = await import(${JSON.stringify(cacheUrl)});
      const { FakeGitHub } = await import(${JSON.stringify(fakeUrl)});
      const { recordedEveryAnswerHeaders } = await import(${JSON.stringify(recordedUrl)});
      const name = 'access-control-expose-headers';
      const value = recordedEveryAnswerHeaders().every[name];
      const repos = Array.from({ length: 60 }, (_, i) => 'r' + i);
      const fake = await FakeGitHub.start({ tokens: { t: {} } });
      for (const repo of repos) fake.setResource('/repos/o/' + repo, { name: repo });
      const cache = await GitHubAPICache.create({ persistence: 'off', githubApiUrl: fake.url });
      const answers = [];
      for (const repo of repos) answers.push(await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo }));
      const held = answers.filter((a) => a.headers[name] === value).length;
      answers.length = 0;
      let json = '';
      for await (const chunk of v8.getHeapSnapshot()) json += chunk;
      const snapshot = JSON.parse(json);
      // Strings are heap nodes whose name indexes the snapshot's table of distinct texts: count the nodes.
      const { node_fields: fields, node_types: [types] } = snapshot.snapshot.meta;
      const typeAt = fields.indexOf('type');
      const nameAt = fields.indexOf('name');
      const stringTypes = new Set(['string', 'concatenated string', 'sliced string'].map((t) => types.indexOf(t)));
      const textAt = snapshot.strings.indexOf(value);
      let copies = 0;
      for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
        if (snapshot.nodes[i + nameAt] === textAt && stringTypes.has(snapshot.nodes[i + typeAt])) copies++;
      }
      await cache.close();
      await fake.close();
      process.stdout.write(JSON.stringify({ held, copies }));
    `) as { held: number; copies: number };
    expect(result.held, 'every answer carries the header').to.equal(60);
    // The snapshot names each distinct string once per heap object: the fake's own, the shared one, a few in flight.
    expect(result.copies, `${result.copies} strings in the heap hold the value`).to.be.below(10);
  });
});
