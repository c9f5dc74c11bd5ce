/**
 * A separate process for specs: opens a cache on CACHE_DIR against GITHUB_API_URL, makes one request with
 * the token in REQUEST_TOKEN, prints `{"source":…,"status":…,"data":…}` as one JSON line, closes, exits.
 *
 *   REQUEST_ROUTE='GET /repos/o/r' node dist/test/support/request-once.js
 */
import { GitHubAPICache } from '../../src/github-api-cache.js';

const cache = await GitHubAPICache.create({ now: process.env.REQUEST_NOW_MS ? () => Number(process.env.REQUEST_NOW_MS) : Date.now });
try {
  const response = await cache.request(process.env.REQUEST_ROUTE ?? 'GET /', {}, { token: process.env.REQUEST_TOKEN });
  process.stdout.write(`${JSON.stringify({ source: response.source, status: response.status, data: response.data })}\n`);
} finally {
  await cache.close();
}
