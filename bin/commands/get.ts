/**
 * `get <route>`: one GitHub REST call through the cache. Guarantees: prints `{status, source, data}` (plus
 * `headers` with --include-headers) as one JSON document on stdout and exits 0; when GitHub answers an error its
 * status and body are printed and it exits 1; exits 2 before any request on bad usage (an unset variable named
 * by --token-env, a malformed --param, an invalid option). The token is read from the environment only and is
 * never printed. The cache is closed before the process exits, so the answer is on disk for the next `get`.
 */
import type { Command } from 'commander';
import { RateLimitError, UpstreamError } from '../../src/errors.js';
import { getGlobalCache, shutdownGlobalCache } from '../../providers/global-cache.js';
import { addCacheOptions, cacheOptionsFromFlags, type CacheFlags } from '../cache-flags.js';
import { collect, CommandFailed, numberArg, printJson, UsageError } from '../cli-support.js';

type GetFlags = CacheFlags & {
  tokenEnv: string;
  param?: string[];
  accept?: string;
  ttl?: number;
  includeHeaders?: boolean;
};

async function get(route: string, flags: GetFlags): Promise<void> {
  const options = cacheOptionsFromFlags(flags);
  const tokenEnv = flags.tokenEnv;
  const explicitTokenEnv = tokenEnv !== 'GITHUB_TOKEN';
  const raw = process.env[tokenEnv];
  if (explicitTokenEnv && (raw === undefined || raw.trim() === '')) {
    throw new UsageError(`--token-env ${tokenEnv}: the environment variable ${tokenEnv} is not set (or empty)`);
  }
  const token = raw === undefined || raw.trim() === '' ? undefined : raw.trim();

  const params: Record<string, string> = {};
  for (const pair of flags.param ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${JSON.stringify(pair)}: expected key=value`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const trimmed = route.trim();
  const fullRoute = /^[A-Za-z]+\s+\S/.test(trimmed) ? trimmed : `GET ${trimmed.startsWith('/') || /^https?:/.test(trimmed) ? trimmed : `/${trimmed}`}`;

  const cache = await getGlobalCache(options);
  try {
    // One request, asked for with --p2p: it goes to the fleet, and a host that cannot start is an error (exit 2).
    await cache.p2pReady();
    const response = await cache.request(fullRoute, params, {
      token,
      ttl: flags.ttl,
      headers: flags.accept === undefined ? undefined : { accept: flags.accept },
    });
    await printJson({
      status: response.status,
      source: response.source,
      ...(flags.includeHeaders === true ? { headers: response.headers } : {}),
      data: response.data,
    });
  } catch (err) {
    if (err instanceof UpstreamError && err.status !== 0) {
      await printJson({ status: err.status, source: 'origin', data: err.response?.data });
      throw new CommandFailed(err.message);
    }
    if (err instanceof RateLimitError && err.response !== undefined) {
      await printJson({ status: err.response.status, source: 'origin', data: err.response.data });
    }
    throw err;
  } finally {
    await shutdownGlobalCache();
  }
}

/** Adds `get` to `program`. */
export function registerGet(program: Command): void {
  addCacheOptions(program.command('get')
    .description('make one GitHub REST call through the cache and print {status, source, data} as JSON')
    .argument('<route>', 'a path (/repos/octocat/hello-world), or a method and a route ("GET /repos/{owner}/{repo}" with --param)')
    .option('--token-env <name>', 'environment variable holding the token (there is no --token flag: arguments show in ps)', 'GITHUB_TOKEN')
    .option('-p, --param <key=value>', 'a route parameter or query parameter (repeatable)', collect)
    .option('--accept <media-type>', 'Accept header, e.g. application/vnd.github.raw+json')
    .option('--ttl <seconds>', 'seconds the answer stays fresh (default: GitHub\'s max-age)', numberArg('--ttl'))
    .option('--include-headers', 'include the response headers in the output'))
    .addHelpText('after', `
Uses the cache in --cache-dir, so a second \`get\` in a new process is answered from disk.
Exits 1 when GitHub answers an error (its status and message are printed) or cannot be reached.

Examples:
  GITHUB_TOKEN=... github-p2p-cache get /repos/octocat/hello-world
  github-p2p-cache get "GET /repos/{owner}/{repo}/issues" -p owner=octocat -p repo=hello-world -p state=open`)
    .action(async (route: string, flags: GetFlags) => get(route, flags));
}
