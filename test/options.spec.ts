import { expect } from 'chai';
import { CacheConfigError } from '../src/errors.js';
import { DEFAULTS, resolveOptions, ttlForKey } from '../src/options.js';

const SECRET = 'a-long-enough-fleet-secret-0123456789';

describe('resolveOptions', () => {
  it('uses documented defaults with an empty environment', () => {
    const o = resolveOptions({}, {});
    expect(o).to.include({ defaultTtl: 300, maxEntries: 10_000, persistence: 'auto', githubApiUrl: 'https://api.github.com', maxConcurrentPerScope: 10, maxRateLimitWait: 0 });
    expect(o.p2p).to.include({ enabled: false, listenPort: 9100, listenHost: '0.0.0.0', requestTimeoutMs: DEFAULTS.requestTimeoutMs, membership: 'handshake' });
    expect(o.cacheDir).to.match(/github-p2p-cache$/);
  });

  it('reads every documented environment variable', () => {
    const o = resolveOptions({}, {
      CACHE_DIR: '/tmp/x',
      CACHE_DEFAULT_TTL: '42',
      CACHE_MAX_ENTRIES: '7',
      CACHE_ENABLE_P2P: 'true',
      CACHE_LISTEN_PORT: '9200',
      CACHE_BOOTSTRAP_PEERS: '/ip4/127.0.0.1/tcp/9100/p2p/12D3KooWA, /ip4/127.0.0.2/tcp/9100',
      CACHE_P2P_SHARED_SECRET: SECRET,
      CACHE_P2P_MEMBERSHIP: 'pnet',
      GITHUB_API_URL: 'http://127.0.0.1:3000/api/v3/',
    });
    expect(o).to.include({ cacheDir: '/tmp/x', defaultTtl: 42, maxEntries: 7, githubApiUrl: 'http://127.0.0.1:3000/api/v3' });
    expect(o.p2p).to.include({ enabled: true, listenPort: 9200, sharedSecret: SECRET, membership: 'pnet' });
    expect(o.p2p.bootstrapPeers).to.deep.equal(['/ip4/127.0.0.1/tcp/9100/p2p/12D3KooWA', '/ip4/127.0.0.2/tcp/9100']);
  });

  it('lets explicit options win over the environment', () => {
    const o = resolveOptions({ defaultTtl: 5, p2p: { listenPort: 0 } }, { CACHE_DEFAULT_TTL: '42', CACHE_LISTEN_PORT: '9200' });
    expect(o.defaultTtl).to.equal(5);
    expect(o.p2p.listenPort).to.equal(0);
  });

  const invalid: Array<[string, () => unknown, string, RegExp]> = [
    ['a negative TTL', () => resolveOptions({ defaultTtl: -1 }, {}), 'defaultTtl', /-1/],
    ['a port of 70000', () => resolveOptions({ p2p: { listenPort: 70000 } }, {}), 'p2p.listenPort', /70000/],
    ['CACHE_DEFAULT_TTL=abc', () => resolveOptions({}, { CACHE_DEFAULT_TTL: 'abc' }), 'CACHE_DEFAULT_TTL', /"abc"/],
    ['CACHE_LISTEN_PORT=99999', () => resolveOptions({}, { CACHE_LISTEN_PORT: '99999' }), 'CACHE_LISTEN_PORT', /99999/],
    ['CACHE_MAX_ENTRIES=1.5', () => resolveOptions({}, { CACHE_MAX_ENTRIES: '1.5' }), 'CACHE_MAX_ENTRIES', /1\.5/],
    ['CACHE_ENABLE_P2P=maybe', () => resolveOptions({}, { CACHE_ENABLE_P2P: 'maybe', CACHE_P2P_SHARED_SECRET: SECRET }), 'CACHE_ENABLE_P2P', /maybe/],
    ['a string where a number belongs', () => resolveOptions({ maxEntries: '5' as never }, {}), 'maxEntries', /"5"/],
    ['an unknown option', () => resolveOptions({ ttl: 5 } as never, {}), 'ttl', /unknown/],
    ['a bad GitHub URL', () => resolveOptions({}, { GITHUB_API_URL: 'not a url' }), 'GITHUB_API_URL', /not a url/],
    ['a membership mode that does not exist', () => resolveOptions({ p2p: { membership: 'none' as never } }, {}), 'p2p.membership', /"none"/],
    ['CACHE_P2P_MEMBERSHIP=PNET', () => resolveOptions({}, { CACHE_P2P_MEMBERSHIP: 'PNET' }), 'CACHE_P2P_MEMBERSHIP', /"PNET"/],
    ['bootstrap peers that are not multiaddrs', () => resolveOptions({}, { CACHE_BOOTSTRAP_PEERS: 'host:9100' }), 'CACHE_BOOTSTRAP_PEERS', /host:9100/],
  ];
  for (const [name, fn, option, value] of invalid) {
    it(`refuses ${name} with CacheConfigError naming ${option} and the value`, () => {
      let error: unknown;
      try {
        fn();
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(CacheConfigError);
      expect((error as CacheConfigError).option).to.equal(option);
      expect((error as Error).message).to.match(value);
    });
  }

  it('refuses P2P without a shared secret: an open network would let anyone in', () => {
    expect(() => resolveOptions({ p2p: { enabled: true } }, {})).to.throw(CacheConfigError, /shared secret/);
    expect(() => resolveOptions({}, { CACHE_ENABLE_P2P: '1' })).to.throw(CacheConfigError, /CACHE_ENABLE_P2P/);
  });

  it('never echoes the shared secret in an error', () => {
    const secret = 'short-secret';
    let message = '';
    try {
      resolveOptions({ p2p: { sharedSecret: secret } }, {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).to.match(/at least 16/);
    expect(message).to.not.include(secret);
  });

  it('enables P2P by default when a shared secret is set', () => {
    expect(resolveOptions({ p2p: { sharedSecret: SECRET } }, {}).p2p.enabled).to.equal(true);
  });
});

describe('ttlForKey', () => {
  const o = resolveOptions({ ttlByOperation: { custom_op: 12 } }, {});
  it('takes the operation from the part before the first colon', () => {
    expect(ttlForKey('list_runners:octo:extra', o)).to.equal(30);
    expect(ttlForKey('custom_op:x', o)).to.equal(12);
    expect(ttlForKey('unknown:x', o)).to.equal(300);
    expect(ttlForKey('toString:x', o)).to.equal(300);
  });
});
