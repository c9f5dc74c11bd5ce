import { expect } from 'chai';
import { entryOf } from '../src/cache/http-policy.js';
import { encodeFrame } from '../src/p2p/wire.js';
import { entryPayload } from '../src/p2p/envelope.js';
import { loadScenario, RECORDED_ORIGINS } from '../support/recorded-github/scenarios.js';

/** The headers of api.github.com's answer to a repository GET, in the order GitHub sent them (@octokit/fixtures). */
function recordedHeaders(): Record<string, string> {
  return { ...loadScenario('get-repository', RECORDED_ORIGINS)[0]!.headers };
}

/** The order the fleet's CBOR puts a map's keys in: by length, then bytewise. */
const wireOrder = (names: string[]): string[] => [...names].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));

describe('http-policy: the entry of an origin answer', () => {
  it('keeps the headers of a recorded api.github.com answer, but the rate-limit counters, with their values', () => {
    const headers = recordedHeaders();
    const entry = entryOf({ status: 200, headers, body: Buffer.from('{}') }, 1_000, 60);
    const kept = Object.keys(headers).filter((name) => !name.startsWith('x-ratelimit-'));
    expect(Object.keys(entry.headers)).to.have.members(kept);
    for (const name of kept) expect(entry.headers[name]).to.equal(headers[name]);
    expect(entry).to.include({ status: 200, storedAt: 1_000, expiresAt: 61_000, etag: headers.etag, lastModified: headers['last-modified'] });
  });

  // An owner encodes an entry's headers as a CBOR map whose keys must be in canonical order: headers stored in
  // GitHub's order (20-odd of them on every answer) were sorted again for every answer an owner sent.
  it('stores the headers in the order the fleet encodes them, so that an owner sends them without sorting', () => {
    const headers = recordedHeaders();
    expect(Object.keys(headers)).to.not.deep.equal(wireOrder(Object.keys(headers)));
    const entry = entryOf({ status: 200, headers, body: Buffer.from('{}') }, 1_000, 60);
    expect(Object.keys(entry.headers)).to.deep.equal(wireOrder(Object.keys(entry.headers)));

    // The frame's bytes do not depend on the order the headers were stored in.
    const shuffled = { ...entry, headers: Object.fromEntries(Object.entries(entry.headers).reverse()) };
    const key = 'h:https://api.github.com/repos/octokit-fixture-org/hello-world';
    expect(Buffer.from(encodeFrame({ type: 'entry', id: 1, payload: entryPayload(entry, key) })))
      .to.deep.equal(Buffer.from(encodeFrame({ type: 'entry', id: 1, payload: entryPayload(shuffled, key) })));
  });
});
