import { expect } from 'chai';
import { Container } from 'inversify';
import {
  cacheModule,
  configureCache,
  createCacheContainer,
  getCacheProvider,
  getGlobalCache,
  shutdownGlobalCache,
  TYPES,
} from '../providers/index.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { Octokit } from '@octokit/core';
import { githubCachePlugin } from '../index.js';
import { CacheShutDownError } from '../providers/cache-module.js';
import { CacheShutDownByCallerError, globalCacheForPlugin } from '../providers/global-cache.js';
import { CacheConfigError, CacheNotReadyError } from '../src/errors.js';
import type { CacheOptions } from '../src/options.js';
import { CapturingSink } from '../support/recording-logger.js';

const MEMORY_ONLY: CacheOptions = { persistence: 'off' };

describe('the process-wide cache (getGlobalCache, configureCache, cacheModule)', () => {
  beforeEach(async () => {
    await shutdownGlobalCache();
    getCacheProvider().useFactory((options) => GitHubAPICache.create(options));
    getCacheProvider().preferOptions(MEMORY_ONLY);
  });
  after(async () => {
    await shutdownGlobalCache();
  });

  for (const n of [10, 100, 10_000]) {
    it(`gives ${n} concurrent first callers, mixing getGlobalCache and getAsync from three containers, one instance from one factory call`, async () => {
      const containers = [createCacheContainer(), createCacheContainer(), new Container()];
      containers[2]!.load(cacheModule);
      const before = getCacheProvider().stats().factoryCalls;
      const calls = Array.from({ length: n }, (_, i) =>
        i % 4 === 0 ? getGlobalCache() : containers[i % 3]!.getAsync<GitHubAPICache>(TYPES.GitHubAPICache),
      );
      const instances = await Promise.all(calls);
      expect(new Set(instances).size).to.equal(1);
      expect(getCacheProvider().stats().factoryCalls - before).to.equal(1);
      for (const c of containers) expect(c.get(TYPES.GitHubAPICache)).to.equal(instances[0]);
    });
  }

  it('returns the instance from container.get synchronously once it exists', async () => {
    const container = createCacheContainer();
    const cache = await getGlobalCache();
    expect(container.get(TYPES.GitHubAPICache)).to.equal(cache);
  });

  it('tells the user to await getAsync or configureCache when container.get runs before the cache exists', () => {
    const container = createCacheContainer();
    const before = getCacheProvider().stats().factoryCalls;
    expect(() => container.get(TYPES.GitHubAPICache)).to.throw(CacheNotReadyError, /container\.getAsync.*configureCache/s);
    expect(getCacheProvider().stats().factoryCalls).to.equal(before, 'a synchronous get starts no creation');
  });

  it('binds TYPES.CacheOptions to the options in force, rebinding them on configureCache', async () => {
    const container = createCacheContainer();
    await configureCache({ persistence: 'off', defaultTtl: 42 });
    expect(container.get<CacheOptions>(TYPES.CacheOptions)).to.deep.include({ defaultTtl: 42 });
    await configureCache({ persistence: 'off', defaultTtl: 7 });
    expect(container.get<CacheOptions>(TYPES.CacheOptions)).to.deep.include({ defaultTtl: 7 });
    expect(container.get<GitHubAPICache>(TYPES.GitHubAPICache).options.defaultTtl).to.equal(7);
  });

  it('configureCache closes the old instance before the new one is created', async () => {
    const events: string[] = [];
    getCacheProvider().useFactory(async (options) => {
      events.push(`create ttl=${options.defaultTtl}`);
      const cache = await GitHubAPICache.create(options);
      const close = cache.close.bind(cache);
      cache.close = async () => {
        events.push(`close ttl=${options.defaultTtl}`);
        await close();
      };
      return cache;
    });
    const old = await configureCache({ persistence: 'off', defaultTtl: 1 });
    const fresh = await configureCache({ persistence: 'off', defaultTtl: 2 });
    expect(old.closed).to.equal(true);
    expect(fresh.closed).to.equal(false);
    expect(events).to.deep.equal(['create ttl=1', 'create ttl=2'].flatMap((e, i) => (i === 1 ? ['close ttl=1', e] : [e])));
  });

  for (const n of [5, 100]) {
    it(`applies ${n} concurrent configureCache calls interleaved with getGlobalCache: one open instance, last options, no closed instance handed out`, async () => {
      const created: GitHubAPICache[] = [];
      getCacheProvider().useFactory(async (options) => {
        const cache = await GitHubAPICache.create(options);
        created.push(cache);
        return cache;
      });
      await getGlobalCache();
      const handedClosed: GitHubAPICache[] = [];
      const watch = (p: Promise<GitHubAPICache>) =>
        p.then((c) => {
          if (c.closed) handedClosed.push(c);
          return c;
        });
      const calls: Promise<GitHubAPICache>[] = [];
      for (let i = 1; i <= n; i++) {
        calls.push(watch(getGlobalCache()));
        calls.push(watch(configureCache({ persistence: 'off', defaultTtl: i })));
        calls.push(watch(getGlobalCache()));
      }
      await Promise.all(calls);
      const open = created.filter((c) => !c.closed);
      expect(open).to.have.length(1);
      expect(open[0]!.options.defaultTtl).to.equal(n);
      expect(await getGlobalCache()).to.equal(open[0]);
      expect(handedClosed).to.have.length(0);
    });
  }

  it('warns once when getGlobalCache(options) is called while an instance exists, and returns that instance', async () => {
    const sink = new CapturingSink();
    const cache = await configureCache({ persistence: 'off', logSink: sink });
    expect(await getGlobalCache({ persistence: 'off', defaultTtl: 5 })).to.equal(cache);
    expect(await getGlobalCache({ persistence: 'off', defaultTtl: 6 })).to.equal(cache);
    const warnings = sink.warnings.filter((w) => w.includes('configureCache'));
    expect(warnings.length).to.be.at.most(1);
    expect(cache.options.defaultTtl).to.equal(300);
  });

  it('rejects invalid options with CacheConfigError and changes nothing', async () => {
    const cache = await getGlobalCache();
    const before = getCacheProvider().stats();
    for (const bad of [{ defaultTtl: -1 }, { p2p: { listenPort: 70_000 } }, { maxEntries: 'many' }]) {
      let error: unknown;
      await configureCache(bad as never).catch((err) => (error = err));
      expect(error).to.be.instanceOf(CacheConfigError);
    }
    expect(cache.closed).to.equal(false);
    expect(await getGlobalCache()).to.equal(cache);
    expect(getCacheProvider().stats().factoryCalls).to.equal(before.factoryCalls);
  });

  it('names the environment variable and value when the environment is invalid', async () => {
    const saved = process.env.CACHE_DEFAULT_TTL;
    process.env.CACHE_DEFAULT_TTL = 'abc';
    try {
      let error: unknown;
      await configureCache({ persistence: 'off' }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(CacheConfigError);
      expect((error as CacheConfigError).option).to.equal('CACHE_DEFAULT_TTL');
      expect((error as Error).message).to.include('"abc"');
    } finally {
      if (saved === undefined) delete process.env.CACHE_DEFAULT_TTL;
      else process.env.CACHE_DEFAULT_TTL = saved;
    }
  });

  it('shares one provider between two copies of the package loaded in one process', async () => {
    // A second copy of the built package (as when two dependencies each bring their own): its own classes,
    // its own module state, the same globalThis.
    const fs = await import('node:fs');
    const built = new URL('../', import.meta.url); // dist/
    const copyRoot = new URL('./test/.second-copy/', built);
    fs.rmSync(copyRoot, { recursive: true, force: true });
    for (const part of ['src', 'providers']) fs.cpSync(new URL(part, built), new URL(part, copyRoot), { recursive: true });
    fs.copyFileSync(new URL('index.js', built), new URL('index.js', copyRoot));
    const copy = (await import(new URL('index.js', copyRoot).href)) as typeof import('../index.js');
    expect(copy.GitHubAPICache).to.not.equal(GitHubAPICache, 'really a second copy');
    const [mine, theirs, viaContainer] = await Promise.all([
      getGlobalCache(),
      copy.getGlobalCache(),
      copy.createCacheContainer().getAsync(copy.TYPES.GitHubAPICache),
    ]);
    expect(theirs).to.equal(mine);
    expect(viaContainer).to.equal(mine);
    expect(copy.TYPES.GitHubAPICache).to.equal(TYPES.GitHubAPICache);
  });

  it('a synchronous container.get on a container of your own throws and leaves no creation running', async () => {
    const app = new Container();
    app.load(cacheModule);
    const before = getCacheProvider().stats().factoryCalls;
    expect(() => app.get(TYPES.GitHubAPICache)).to.throw(/asynchronous/);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(getCacheProvider().stats().factoryCalls).to.equal(before, 'no creation started behind the throw');
    expect(getCacheProvider().current).to.equal(undefined);
    const cache = await app.getAsync<GitHubAPICache>(TYPES.GitHubAPICache); // getAsync still creates it
    expect(cache.closed).to.equal(false);
    expect(getCacheProvider().stats().factoryCalls).to.equal(before + 1);
  });

  it('container.get after shutdownGlobalCache says the cache was shut down, not that it was never created', async () => {
    await getGlobalCache();
    await shutdownGlobalCache();
    const container = createCacheContainer();
    expect(() => container.get(TYPES.GitHubAPICache)).to.throw(CacheShutDownError, /was shut down \(shutdownGlobalCache\(\)\)/);
    expect(() => container.get(TYPES.GitHubAPICache)).to.throw(CacheNotReadyError); // same class family and code
    await getGlobalCache();
    expect(container.get(TYPES.GitHubAPICache)).to.be.instanceOf(GitHubAPICache);
  });

  it('after shutdownGlobalCache the Octokit plugin refuses, saying so, instead of silently creating a new cache', async () => {
    await getGlobalCache();
    await shutdownGlobalCache();
    const before = getCacheProvider().stats().factoryCalls;
    const CachedOctokit = Octokit.plugin(githubCachePlugin);
    const octokit = new CachedOctokit({ baseUrl: 'http://127.0.0.1:1', log: { debug() {}, info() {}, warn() {}, error() {} } });
    let error: Error | undefined;
    try {
      await octokit.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello', request: { retries: 0 } });
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/global cache was shut down \(shutdownGlobalCache\(\)\)/);
    expect(getCacheProvider().stats().factoryCalls).to.equal(before, 'no cache created');
    expect(getCacheProvider().current).to.equal(undefined);
    // Once the application creates one again, the plugin uses it.
    const cache = await getGlobalCache();
    expect(await globalCacheForPlugin()).to.equal(cache);
    await shutdownGlobalCache();
    const refused = await globalCacheForPlugin().then(() => undefined, (err: unknown) => err);
    expect(refused).to.be.instanceOf(CacheShutDownByCallerError);
    expect((refused as CacheShutDownByCallerError).code).to.equal('ERR_CACHE_CLOSED');
  });

  it('shutdownGlobalCache closes and forgets the instance; the next get creates a new one', async () => {
    const first = await getGlobalCache();
    await shutdownGlobalCache();
    expect(first.closed).to.equal(true);
    const second = await getGlobalCache();
    expect(second).to.not.equal(first);
    expect(second.closed).to.equal(false);
  });
});
