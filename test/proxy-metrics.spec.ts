import { expect } from 'chai';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { ProxyMetrics } from '../src/proxy/proxy-metrics.js';
import { startProxy, type ProxyServer } from '../src/proxy/proxy-server.js';
import { FakeGitHub } from '../support/fake-github/index.js';

/**
 * The proxy counts requests in plain integers and hands them to prom-client at scrape time. These specs hold
 * that to what prom-client's own inc/observe/set show (the exposition, byte for byte) and check the counts a
 * scrape shows after N requests through a real proxy, hot path and general path alike.
 */

const TOKEN = `test_${'m'.padEnd(36, 'M')}`;
const REQUESTS = 'github_cache_proxy_requests_total';
const DURATION = 'github_cache_proxy_request_duration_seconds';
const IN_FLIGHT = 'github_cache_proxy_in_flight_requests';
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The proxy's request metrics as they were recorded before: straight into prom-client, per request. */
function reference() {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({ name: REQUESTS, help: 'x', labelNames: ['source', 'status'], registers });
  const duration = new Histogram({ name: DURATION, help: 'x', labelNames: ['source'], buckets: BUCKETS, registers });
  const inFlight = new Gauge({ name: IN_FLIGHT, help: 'x', registers });
  return {
    registry,
    started: () => inFlight.inc(),
    answered: (source: string, status: number, seconds: number) => {
      requests.inc({ source, status: String(status) });
      duration.observe({ source }, seconds);
    },
    abandoned: () => inFlight.dec(),
  };
}

/** The value lines of one metric (HELP lines differ: the reference's help is a placeholder). */
async function valueLines(registry: Registry, name: string): Promise<string> {
  return (await registry.getSingleMetricAsString(name)).split('\n').filter((line) => !line.startsWith('# HELP')).join('\n');
}

describe('the proxy\'s request metrics', function () {
  this.timeout(60_000);

  it('show on a scrape exactly what prom-client\'s own counter, histogram and gauge show for the same requests', async () => {
    const metrics = new ProxyMetrics({ processMetrics: false });
    const ref = reference();
    // Sources and statuses interleaved (so first-seen order matters), durations on bounds, between them, 0, above 10 s.
    const durations = [0, 0.0001, 0.00009, 0.0003, 0.001, 0.0011, 0.02, 0.7, 1, 3, 10, 12.5, 1e-7, 0.049999];
    const sources = ['memory', 'origin', 'memory', 'proxy', 'revalidated', 'memory', 'stale'];
    const statuses = [200, 200, 304, 404, 200, 200, 502, 429];
    for (let i = 0; i < 500; i++) {
      const source = sources[i % sources.length]!;
      const status = statuses[(i * 3) % statuses.length]!;
      const exact = durations[(i * 5) % durations.length]!;
      const seconds = i % 3 === 0 ? exact : exact * (1 + (i % 7) / 1000);
      if (i % 4 === 0) {
        metrics.requestStarted();
        ref.started();
        if (i % 12 === 0) {
          metrics.requestAbandoned();
          ref.abandoned();
        } else if (i % 8 !== 0) {
          metrics.requestFinished(source, status, seconds);
          ref.answered(source, status, seconds);
          ref.abandoned(); // requestFinished leaves in flight too
        }
      } else {
        metrics.requestAnswered(source, status, seconds);
        ref.answered(source, status, seconds);
      }
      if (i === 250) {
        // A scrape halfway changes nothing for the next one.
        for (const name of [REQUESTS, DURATION, IN_FLIGHT]) expect(await valueLines(metrics.registry, name)).to.equal(await valueLines(ref.registry, name));
      }
    }
    for (const name of [REQUESTS, DURATION, IN_FLIGHT]) {
      const ours = await valueLines(metrics.registry, name);
      expect(ours).to.equal(await valueLines(ref.registry, name));
      expect(ours).to.equal(await valueLines(metrics.registry, name)); // a second scrape: the same
    }
    expect(await valueLines(metrics.registry, IN_FLIGHT)).to.match(/^github_cache_proxy_in_flight_requests [1-9]\d*$/m);
    const { body } = await metrics.render(undefined);
    expect(body).to.include('# TYPE github_cache_proxy_requests_total counter');
    expect(body).to.include('# TYPE github_cache_proxy_request_duration_seconds histogram');
    expect(body).to.include('# TYPE github_cache_proxy_in_flight_requests gauge');
  });

  it('a scrape after N requests through a proxy counts each of them (memory hits, an origin fetch, a 404, in flight back to 0)', async () => {
    const github = await FakeGitHub.start({ tokens: { [TOKEN]: {} } });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello' });
    let cache: GitHubAPICache | undefined;
    let proxy: ProxyServer | undefined;
    try {
      cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off' });
      proxy = await startProxy({ cache, port: 0, processMetrics: false });
      const headers = { authorization: `token ${TOKEN}` };
      const HITS = 37;
      for (let i = 0; i <= HITS; i++) {
        const response = await fetch(`${proxy.url}/repos/octo/hello`, { headers });
        await response.arrayBuffer();
        expect(response.headers.get('x-cache-source')).to.equal(i === 0 ? 'origin' : 'memory');
      }
      const missing = await fetch(`${proxy.url}/repos/octo/nope`, { headers });
      await missing.arrayBuffer();
      expect(missing.status).to.equal(404);

      const text = await (await fetch(`${proxy.url}/metrics`)).text();
      expect(text).to.match(/^github_cache_proxy_requests_total\{source="origin",status="200"\} 1$/m);
      expect(text).to.match(new RegExp(`^github_cache_proxy_requests_total\\{source="memory",status="200"\\} ${HITS}$`, 'm'));
      expect(text).to.match(/^github_cache_proxy_requests_total\{source="origin",status="404"\} 1$/m);
      expect(text).to.match(new RegExp(`^github_cache_proxy_request_duration_seconds_count\\{source="memory"\\} ${HITS}$`, 'm'));
      expect(text).to.match(new RegExp(`^github_cache_proxy_request_duration_seconds_bucket\\{le="\\+Inf",source="memory"\\} ${HITS}$`, 'm'));
      expect(text).to.match(/^github_cache_proxy_request_duration_seconds_count\{source="origin"\} 2$/m);
      expect(text).to.match(/^github_cache_proxy_in_flight_requests 0$/m);
      expect(proxy.counters).to.deep.include({ requests: HITS + 2, inFlight: 0 });
      expect(proxy.counters.bySource).to.deep.equal({ origin: 2, memory: HITS });
    } finally {
      await proxy?.close();
      await cache?.close();
      await github.close();
    }
  });
});
