import { expect } from 'chai';
import { formatRequestKey, isKnownNormalUrl, normalizeUrl, parseRequestKey } from '../src/cache/request-key.js';
import { mulberry32 } from '../support/workload.js';

/** What parseRequestKey decided before it had a fast path: the URL parsed twice. */
function slowlyNormal(url: string): boolean {
  try {
    return normalizeUrl(url) === url && /^https?:$/.test(new URL(url).protocol);
  } catch {
    return false;
  }
}

describe('request keys', () => {
  const known = [
    'https://api.github.com/repos/octo/hello-world',
    'https://api.github.com/repos/octo/hello.js/issues/42',
    'https://api.github.com/repos/o/r/issues?page=2&per_page=100&state=open',
    'https://api.github.com/repos/o/r/contents/a%20b/c%2Fd',
    'http://127.0.0.1:43210/repos/bench/repo-1',
    'http://10.0.0.255:8080/x',
    'https://ghe.example.com:8443/api/v3/repos/o/r',
    'https://api.github.com/search/issues?q=is-open&sort=created',
    'https://api.github.com/',
    'https://api.github.com/users/a_b~c',
    'https://api.github.com/x?a=1&a=2&b=',
  ];
  const notKnown = [
    'HTTPS://api.github.com/x', 'https://API.github.com/x', 'https://api.github.com', 'https://api.github.com:443/x', 'http://h:80/x',
    'https://api.github.com/x?b=1&a=2', 'https://api.github.com/x?a=2&a=1', 'https://api.github.com/x?a', 'https://api.github.com/x?',
    'https://api.github.com/x?a=%41', 'https://api.github.com/x?a=~', 'https://api.github.com/x#f', 'https://api.github.com/a/./b',
    'https://api.github.com/a/../b', 'https://api.github.com/a/%2e%2E/b', 'https://api.github.com/a/..', 'https://u:p@api.github.com/x',
    'https://127.1/x', 'https://127.000.0.1/x', 'https://[::1]/x', 'https://xn--nxasmq6b.example/x', 'https://api.github.com/a b',
    'https://api.github.com/a\\b', 'ftp://example.com/x', 'https://h:065535/x', 'https://h:65536/x', 'https://h:0/x', 'https://a..b/x',
    'https://api.github.com/x\'y', 'https://api.github.com/é', 'https://1.2.3.4.5/x',
  ];

  it('knows the usual GitHub URLs to be normal without parsing them', () => {
    for (const url of known) {
      expect(slowlyNormal(url), url).to.equal(true);
      expect(isKnownNormalUrl(url), url).to.equal(true);
    }
  });

  it('leaves every URL it is not sure of to the parser', () => {
    for (const url of notKnown) expect(isKnownNormalUrl(url), url).to.equal(false);
  });

  it('never calls normal a URL that normalizeUrl would change (random URLs from a hostile alphabet)', () => {
    const random = mulberry32(20_241_201);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const schemes = ['http://', 'https://', 'HTTP://', 'ftp://', 'http:/', ''];
    const hosts = ['api.github.com', '127.0.0.1', '127.1', '0x7f.0.0.1', '1.2.3.4', 'a.b', 'A.b', 'x-.y', 'ex--ample.com', 'xn--abc.com', 'h', '255.255.255.255', '256.1.1.1', '01.2.3.4', 'a.0x1', 'a.1'];
    const ports = ['', '', ':80', ':443', ':8080', ':0', ':08080', ':65535', ':99999', ':'];
    const safePathChars = ['a', 'Z', '0', '.', '..', '%41', '%2f', '~', '-', '_', '!', '$', '&', '(', ')', '*', '+', ',', ';', '=', ':', '@'];
    const pathChars = [...safePathChars, '/', '%2e', '%2E', '%zz', '%', '\'', ' ', '\\', '^', '`', '{', '}', '|', '[', ']', '"', '<', '>', 'é', '\t', '\n', '?', '#'];
    const safeQueryChars = ['a', 'b', 'B', '1', '=', '=', '&', '*', '.', '_', '-'];
    const queryChars = [...safeQueryChars, '~', '+', '%20', ' ', '?', '/', ':', '\'', '%'];
    let fast = 0;
    let normal = 0;
    for (let i = 0; i < 50_000; i++) {
      let url = pick(schemes) + pick(hosts) + pick(ports);
      const segments = Math.floor(random() * 4);
      for (let s = 0; s < segments; s++) {
        url += '/';
        const length = Math.floor(random() * 4);
        for (let c = 0; c < length; c++) url += pick(random() < 0.9 ? safePathChars : pathChars);
      }
      if (random() < 0.4) {
        url += '?';
        const length = Math.floor(random() * 8);
        for (let c = 0; c < length; c++) url += pick(random() < 0.9 ? safeQueryChars : queryChars);
      }
      if (random() < 0.05) url += '#frag';
      if (slowlyNormal(url)) normal++;
      if (isKnownNormalUrl(url)) {
        fast++;
        expect(slowlyNormal(url), url).to.equal(true);
      }
    }
    // The fast path recognises most of the normal URLs (the rest it leaves to the parser).
    expect(fast).to.be.greaterThan(normal / 2);
  });

  it('parseRequestKey answers as before, with or without the fast path', () => {
    for (const url of [...known, ...notKnown]) {
      const key = formatRequestKey({ url, method: 'GET', scopeId: 'anonymous', accept: 'application/vnd.github+json' });
      const parsed = parseRequestKey(key);
      if (slowlyNormal(url)) expect(parsed, url).to.deep.equal({ scopeId: 'anonymous', method: 'GET', url, accept: 'application/vnd.github+json' });
      else expect(parsed, url).to.equal(undefined);
    }
    expect(parseRequestKey('https://api.github.com/x GET nope application/json')).to.equal(undefined);
    expect(parseRequestKey('https://api.github.com/x POST anonymous application/json')).to.equal(undefined);
    expect(parseRequestKey('https://api.github.com/x GET anonymous ')).to.equal(undefined);
  });
});
