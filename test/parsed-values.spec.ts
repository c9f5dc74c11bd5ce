import v8 from 'node:v8';
import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { FakeGitHub } from '../support/fake-github/index.js';

/**
 * Which reads parse a body and keep the parsed value: `cache.request` (its `data`) keeps it for the
 * `maxParsedValues` entries read most recently; `exchange` (the proxy and the Octokit plugin) reads bytes only,
 * so a body it carries is never parsed. Parses are counted by watching JSON.parse for the body's own text.
 */

const TOKEN = `test_${'parsed'.padEnd(36, 'P')}`;
const MARK = 'parsed-values-spec-marker';

describe('parsed values (what a read parses and keeps)', () => {
  let github: FakeGitHub;
  const realParse = JSON.parse;
  let parses = 0;

  before(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'P' } } });
    for (let i = 0; i < 4; i++) github.setResource(`/repos/o/r${i}`, { i, mark: MARK });
    JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      if (typeof text === 'string' && text.includes(MARK)) parses++;
      return realParse(text, reviver);
    }) as typeof JSON.parse;
  });
  after(async () => {
    JSON.parse = realParse;
    await github.close();
  });
  beforeEach(() => {
    parses = 0;
  });

  const exchange = (cache: GitHubAPICache, i: number) => cache.exchange({
    method: 'GET', url: `${github.url}/repos/o/r${i}`, headers: { authorization: `token ${TOKEN}`, accept: 'application/vnd.github+json' },
  });
  const request = async (cache: GitHubAPICache, i: number) => (await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: `r${i}` }, { token: TOKEN })).data;

  it('exchange never parses a body: a miss and a hit carry bytes only', async () => {
    const cache = await GitHubAPICache.create({ persistence: 'off', githubApiUrl: github.url });
    try {
      const miss = await exchange(cache, 0);
      const hit = await exchange(cache, 0);
      expect([miss.source, hit.source]).to.deep.equal(['origin', 'memory']);
      expect(JSON.parse(Buffer.from(hit.body as Uint8Array).toString('utf8'))).to.deep.equal({ i: 0, mark: MARK });
      expect(parses, 'parses by the cache (the one above is this spec\'s own)').to.equal(1);
    } finally {
      await cache.close();
    }
  });

  it('cache.request parses an entry once and reuses it; past maxParsedValues the least recently read parses again', async () => {
    const cache = await GitHubAPICache.create({ persistence: 'off', githubApiUrl: github.url, maxParsedValues: 2 });
    try {
      for (const i of [0, 1, 2]) await request(cache, i); // misses: each parsed once, none kept (not yet in memory)
      expect(parses).to.equal(3);
      for (const i of [0, 1]) await request(cache, i); // hits: parsed and kept (0, 1)
      await request(cache, 0); // kept: no parse
      expect(parses).to.equal(5);
      await request(cache, 2); // a third kept value: 1, the least recently read, drops its own
      await request(cache, 0);
      expect(parses).to.equal(6);
      expect(await request(cache, 1)).to.deep.equal({ i: 1, mark: MARK });
      expect(parses).to.equal(7);
    } finally {
      await cache.close();
    }
  });

  it('cache.request parses only when data is read: a caller of status, bytes or source pays no parse; data, once read, stays the same value', async () => {
    const cache = await GitHubAPICache.create({ persistence: 'off', githubApiUrl: github.url });
    try {
      const miss = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r3' }, { token: TOKEN });
      const hit = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r3' }, { token: TOKEN });
      expect([miss.status, miss.source, hit.source, Buffer.from(hit.bytes).byteLength > 0]).to.deep.equal([200, 'origin', 'memory', true]);
      expect(parses, 'nothing read data yet').to.equal(0);
      const data = hit.data as { i: number };
      expect(data).to.deep.equal({ i: 3, mark: MARK });
      expect(Object.isFrozen(data)).to.equal(true);
      expect(hit.data, 'the same value on a second read').to.equal(data);
      expect(parses).to.equal(1);
      // data is still an own, enumerable property, as on a plain object: spread, keys and clones carry it.
      for (const repo of ['r0', 'r1']) {
        const unparsed = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo }, { token: TOKEN }); // a miss: not parsed yet
        const before = parses;
        expect(Object.keys(unparsed), 'keys').to.include('data');
        expect(parses, 'listing the keys parses nothing').to.equal(before);
        const carried = repo === 'r0' ? { ...unparsed }.data : structuredClone({ ...unparsed, bytes: undefined }).data;
        expect(carried, 'a spread or a clone carries data').to.deep.equal({ i: Number(repo.slice(1)), mark: MARK });
        const parsedOnce = parses;
        const kept = unparsed.data;
        expect(unparsed.data, 'the same value on every read').to.equal(kept);
        if (repo === 'r0') expect(kept, 'the very value the spread read').to.equal(carried);
        expect(parses, 'the value the spread or clone read is kept, not parsed again').to.equal(parsedOnce);
      }
      expect(JSON.parse(JSON.stringify(miss)).data, 'toJSON shows data').to.deep.equal({ i: 3, mark: MARK });
      expect(miss.body).to.equal(JSON.stringify({ i: 3, mark: MARK }));
      const unread = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r2' }, { token: TOKEN });
      const parsesBefore = parses;
      unread.data = { replaced: true };
      expect(unread.data, 'data stays assignable, and an assignment parses nothing').to.deep.equal({ replaced: true });
      expect(parses).to.equal(parsesBefore);
      miss.data = { replaced: true };
      expect(miss.data).to.deep.equal({ replaced: true });
      // Frozen before data is read (immer and Redux Toolkit freeze what they hold): data still reads, once parsed.
      const frozen = Object.freeze(await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r0', per_page: 1 }, { token: TOKEN }));
      const parsesAtFreeze = parses;
      expect(frozen.data).to.deep.equal({ i: 0, mark: MARK });
      expect(frozen.data, 'the same value on a second read').to.equal(frozen.data);
      expect(parses).to.equal(parsesAtFreeze + 1);
      expect(() => { (frozen as { data: unknown }).data = 1; }).to.throw(TypeError);
      // Sealed (not frozen) before data is read: an assignment is taken, as by a sealed plain object, and parses nothing.
      const unsealed = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r0', per_page: 2 }, { token: TOKEN });
      expect(Object.getOwnPropertyDescriptor(unsealed, 'data')?.get, 'data not read yet: still the accessor').to.be.a('function');
      const sealed = Object.seal(unsealed);
      const parsesAtSeal = parses;
      const plain = Object.seal({ data: { i: 0 } as unknown });
      plain.data = { assigned: true };
      sealed.data = { assigned: true };
      expect(sealed.data).to.deep.equal(plain.data);
      expect(parses, 'an assignment to a sealed answer parses nothing').to.equal(parsesAtSeal);
      expect(Object.keys(sealed)).to.include('data');
      // A sealed answer read first, then assigned: the read value is replaced.
      const readFirstUnsealed = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r0', per_page: 3 }, { token: TOKEN });
      expect(Object.getOwnPropertyDescriptor(readFirstUnsealed, 'data')?.get).to.be.a('function');
      const readFirst = Object.seal(readFirstUnsealed);
      expect(readFirst.data).to.deep.equal({ i: 0, mark: MARK });
      readFirst.data = 7;
      expect(readFirst.data).to.equal(7);
    } finally {
      await cache.close();
    }
  });

  it('an answer whose data is not read yet keeps fast properties, one shape for all such answers (its accessor added in place)', async () => {
    // V8's own check of an object's representation: dictionary-mode answers were slower to make and to read.
    v8.setFlagsFromString('--allow-natives-syntax');
    const hasFastProperties = new Function('object', 'return %HasFastProperties(object)') as (object: object) => boolean;
    const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const cache = await GitHubAPICache.create({ persistence: 'off', githubApiUrl: github.url, maxParsedValues: 0 });
    try {
      const ask = (repo: string) => cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo }, { token: TOKEN });
      const [a, b] = [await ask('r1'), await ask('r2')];
      const [c, d] = [await ask('r1'), await ask('r2')]; // memory hits, not parsed (maxParsedValues 0)
      for (const answer of [a, b, c, d]) {
        expect(Object.getOwnPropertyDescriptor(answer, 'data')?.get, 'data not read yet: the accessor').to.be.a('function');
        expect(hasFastProperties(answer), `${answer.source} answer in dictionary mode`).to.equal(true);
      }
      expect(haveSameMap(a, b) && haveSameMap(c, d) && haveSameMap(a, c), 'one shape').to.equal(true);
      expect(Object.keys(a)).to.deep.equal(['status', 'headers', 'data', 'bytes', 'source', 'url']);
      expect(a.data).to.deep.equal({ i: 1, mark: MARK });
    } finally {
      await cache.close();
    }
  });

  it('rejects a negative or fractional maxParsedValues with a clear error', async () => {
    for (const bad of [-1, 1.5]) {
      let error: unknown;
      try {
        await GitHubAPICache.create({ persistence: 'off', maxParsedValues: bad });
      } catch (err) {
        error = err;
      }
      expect(String(error)).to.match(/maxParsedValues/);
    }
  });
});
