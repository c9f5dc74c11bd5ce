import { expect } from 'chai';
import { plainUpstreamUrl, upstreamUrl } from '../src/proxy/client-request.js';

/**
 * plainUpstreamUrl is the hot path's shortcut for upstreamUrl: it must answer exactly what upstreamUrl answers
 * or nothing (then upstreamUrl is asked), and it must answer for the common targets and never for a dot segment.
 */

const BASES = ['https://api.github.com', 'https://ghe.example.com/api/v3', 'https://ghe.example.com/api/v3/'];

/** The check as it was written before it became one regular expression (the reference). */
const OLD_SEGMENT = "[A-Za-z0-9._~!$&'()*+,;=:@-]+";
const OLD_TARGET = new RegExp(`^/(?:${OLD_SEGMENT}(?:/${OLD_SEGMENT})*/?)?(?:\\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$`);
function oldPlain(target: string): boolean {
  return OLD_TARGET.test(target) && !/(?:^|\/)\.{1,2}(?:\/|\?|$)/.test(target.split('?', 1)[0]!);
}

/** Targets made of pieces that matter here: dot segments, near-dots, empty segments, escapes, queries, fragments. */
function* targets(): Generator<string> {
  const pieces = ['repos', 'o', '.', '..', '...', '.a', 'a.', '..a', '%2e', '%2E%2E', '', 'x y', 'issues', '~u', 'a:b'];
  const tails = ['', '/', '?', '?per_page=100', '?q=a/../b', '?x=.', '#frag', '?a#b', '/?', '//'];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 1000;
  for (let i = 0; i < 4000; i++) {
    const n = 1 + (next() % 4);
    const segments = Array.from({ length: n }, () => pieces[next() % pieces.length]!);
    yield `/${segments.join('/')}${tails[next() % tails.length]!}`;
  }
  yield* ['/', '/?', '/.', '/..', '/./', '/../x', '/a/./b', '/a/../b', '/a/.', '/a/..?x', '/a/..b', '/a/b.', '/repos/o/r?q=..'];
}

describe('plainUpstreamUrl, the hot path\'s upstream URL', () => {
  it('answers upstreamUrl\'s URL or nothing, and answers exactly where the two-step check did', () => {
    let answered = 0;
    for (const target of targets()) {
      for (const base of BASES) {
        const plain = plainUpstreamUrl(base, target);
        if (plain !== undefined) {
          answered++;
          expect(plain, target).to.equal(upstreamUrl(base, target));
        }
        expect(plain !== undefined, target).to.equal(oldPlain(target));
      }
    }
    expect(answered).to.be.greaterThan(1000);
  });

  it('answers for the common targets and never for a dot segment', () => {
    for (const target of ['/repos/octo/hello', '/repos/octo/hello/issues?state=open&per_page=100', '/user', '/search/issues?q=repo:o/r+is:open', '/repos/o/r/contents/a.b/c..d']) {
      expect(plainUpstreamUrl('https://api.github.com', target), target).to.equal(`https://api.github.com${target}`);
    }
    for (const target of ['/repos/./x', '/repos/../x', '/..', '/.', '/a/..?b', '/a/.?b', '/a/b/..']) {
      expect(plainUpstreamUrl('https://api.github.com', target), target).to.equal(undefined);
    }
  });
});
