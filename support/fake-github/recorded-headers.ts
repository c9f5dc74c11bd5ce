/**
 * The headers api.github.com puts on every answer that the fake does not send by itself, with the values
 * recorded in `@octokit/fixtures` (scenario get-repository, an authorized GET of a repository).
 *
 * Guarantees: only headers whose value does not depend on the answer (no `date`, `etag`, `last-modified`,
 * length, rate-limit counters or request id: the fake computes those); the OAuth-scope headers, which GitHub
 * sends only to a request made with a token, are apart so that anonymous answers go without them.
 */
import { loadScenario, RECORDED_ORIGINS } from '../recorded-github/scenarios.js';

/** Headers to add to every answer, and to answers to requests made with a token. */
export interface ExtraHeaders {
  readonly every: Readonly<Record<string, string>>;
  readonly authorized: Readonly<Record<string, string>>;
}

/** Computed by the fake for each answer, or set per resource: never copied from the recording. */
const PER_ANSWER = new Set([
  'date', 'etag', 'last-modified', 'content-length', 'connection', 'content-type', 'cache-control', 'vary',
  'x-github-request-id', 'x-github-media-type', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used',
  'x-ratelimit-reset', 'x-ratelimit-resource',
]);

const AUTHORIZED_ONLY = new Set(['x-oauth-scopes', 'x-accepted-oauth-scopes']);

let loaded: ExtraHeaders | undefined;

/** Read once from the installed fixtures; throws when the recording is missing or has none of them. */
export function recordedEveryAnswerHeaders(): ExtraHeaders {
  if (loaded !== undefined) return loaded;
  const [first] = loadScenario('get-repository', RECORDED_ORIGINS);
  const every: Record<string, string> = {};
  const authorized: Record<string, string> = {};
  for (const [name, value] of Object.entries(first?.headers ?? {})) {
    if (PER_ANSWER.has(name)) continue;
    (AUTHORIZED_ONLY.has(name) ? authorized : every)[name] = value;
  }
  if (Object.keys(every).length === 0) throw new Error('no headers to add in the get-repository recording');
  loaded = { every: Object.freeze(every), authorized: Object.freeze(authorized) };
  return loaded;
}
