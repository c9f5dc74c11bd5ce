import { expect } from 'chai';
import * as errors from '../src/errors.js';
import {
  CacheClosedError,
  CacheConfigError,
  CacheCreationError,
  CacheError,
  CacheNotReadyError,
  CacheValueError,
  RateLimitError,
  redactSecrets,
  UpstreamError,
  TokenHostError,
} from '../src/errors.js';
import { PeerEntryRejected } from '../src/p2p/envelope.js';
import { PeerNetworkStartError } from '../src/p2p/peer-network.js';
import { WireFormatError } from '../src/p2p/wire.js';
import { NoticeFormatError } from '../src/p2p/notice.js';
import { ProxyListenError } from '../src/proxy/proxy-server.js';
import { StoreError } from '../src/store/sqlite-store.js';

/** Credentials in the shapes they reach an error in: bare, in a URL, in a header value. */
const SECRETS = {
  classic: `ghp_${'R4nd0mLook1ngT0ken'}${'Value0123456789ab'}`,
  installation: `ghs_${'16C7e42F292c6912E77'}${'10c838347Ae178B4a'}`,
  fineGrained: `github_pat_${'11ABCDEFG0123456789'}_${'abcdefghijklmnopqrstuvwxyz'}${'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123'}`,
  jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyMzQ1fQ.c2lnbmF0dXJlLXBhcnQ',
};
/** Each secret as a caller might quote it by mistake. */
const LEAKS: Array<{ text: string; secret: string }> = Object.values(SECRETS).flatMap((secret) => [
  { text: secret, secret },
  { text: `https://x-access-token:${secret}@api.github.com/repos/o/r`, secret },
  { text: `https://api.github.com/repos/o/r?access_token=${secret}`, secret },
  { text: `authorization: token ${secret}`, secret },
  { text: `Bearer ${secret}`, secret },
]);

/**
 * Every error class the package exports, with its stable code and a way to build one whose every string
 * argument carries `leak`. A class missing here fails the first spec.
 */
const ERROR_CLASSES: Array<{ type: abstract new (...args: never[]) => Error; code: string; make: (leak: string) => Error }> = [
  { type: CacheClosedError, code: 'ERR_CACHE_CLOSED', make: (leak) => new CacheClosedError(`put ${leak}`) },
  { type: CacheConfigError, code: 'ERR_CACHE_CONFIG', make: (leak) => new CacheConfigError(`p2p.${leak}`, `got ${leak}`) },
  { type: CacheValueError, code: 'ERR_CACHE_VALUE', make: (leak) => new CacheValueError(leak, `value ${leak} is a Date`, { operation: `put ${leak}` }) },
  { type: CacheCreationError, code: 'ERR_CACHE_CREATION', make: (leak) => new CacheCreationError(new Error(`opening ${leak} failed`)) },
  { type: CacheNotReadyError, code: 'ERR_CACHE_NOT_READY', make: (leak) => new CacheNotReadyError({ cause: new Error(leak) }) },
  {
    type: RateLimitError,
    code: 'ERR_RATE_LIMITED',
    make: (leak) => new RateLimitError(leak, Date.UTC(2026, 0, 1), `API rate limit exceeded for ${leak}`, { status: 403, headers: {}, data: null }),
  },
  { type: TokenHostError, code: 'ERR_TOKEN_HOST', make: (leak) => new TokenHostError(`${leak}.example`, 'https://api.github.com') },
  { type: UpstreamError, code: 'ERR_UPSTREAM', make: (leak) => new UpstreamError(401, 'GET', `https://api.github.com/user?x=${leak}`, `Bad credentials ${leak}`) },
  { type: StoreError, code: 'ERR_STORE', make: (leak) => new StoreError('set', `cannot write ${leak}`) },
  { type: ProxyListenError, code: 'ERR_PROXY_LISTEN', make: (leak) => new ProxyListenError('127.0.0.1', 8787, new Error(`listen failed ${leak}`)) },
  { type: PeerNetworkStartError, code: 'ERR_P2P_START', make: (leak) => new PeerNetworkStartError(`bad key ${leak}`) },
  { type: WireFormatError, code: 'ERR_P2P_WIRE_FORMAT', make: (leak) => new WireFormatError(`field ${leak}`) },
  { type: NoticeFormatError, code: 'ERR_P2P_NOTICE_FORMAT', make: (leak) => new NoticeFormatError(`url ${leak}`) },
  { type: PeerEntryRejected, code: 'ERR_PEER_ENTRY_REJECTED', make: (leak) => new PeerEntryRejected('key', `key ${leak} does not match`) },
];

/** The error classes src/errors.ts exports (CacheError itself is the base, with no code of its own). */
function classesExportedByErrorsModule(): Array<[string, unknown]> {
  return Object.entries(errors).filter(([name, value]) =>
    typeof value === 'function' && value.prototype instanceof Error && name !== 'CacheError');
}

describe('errors', () => {
  it('lists every error class src/errors.ts exports (add a new one to ERROR_CLASSES with its code)', () => {
    const listed = new Set<unknown>(ERROR_CLASSES.map((c) => c.type));
    for (const [name, type] of classesExportedByErrorsModule()) expect(listed.has(type), name).to.equal(true);
  });

  it('gives every error class its own code', () => {
    const codes = ERROR_CLASSES.map((c) => c.code);
    expect(new Set(codes).size).to.equal(codes.length);
  });

  for (const { type, code, make } of ERROR_CLASSES) {
    describe(type.name, () => {
      const error = make('value');

      it(`has the stable code ${code}`, () => {
        expect((error as CacheError).code).to.equal(code);
      });

      it('is a CacheError and an Error, named after its class', () => {
        expect(error).to.be.instanceOf(CacheError).and.instanceOf(Error).and.instanceOf(type);
        expect(error.name).to.equal(type.name);
        expect(String(error)).to.match(new RegExp(`^${type.name}: `));
      });

      it('never holds a token-looking string it was given, in its message or its stack', () => {
        for (const { text, secret } of LEAKS) {
          const leaky = make(text);
          expect(leaky.message, text).to.not.include(secret);
          expect(leaky.stack ?? '', text).to.not.include(secret);
        }
      });
    });
  }

  describe('UpstreamError', () => {
    it('redacts tokens from upstreamMessage too, which callers log', () => {
      const error = new UpstreamError(0, 'GET', 'https://api.github.com/x', `connect failed with ${SECRETS.classic}`);
      expect(error.upstreamMessage).to.not.include(SECRETS.classic);
      expect(error.upstreamMessage).to.include('connect failed with');
    });
  });

  describe('CacheValueError', () => {
    it('has a message that fits any operation when none is named (not "Cannot store key")', () => {
      const error = new CacheValueError('GET /repos/{owner}/{repo}', 'a route is required');
      expect(error.message).to.equal('Invalid input for "GET /repos/{owner}/{repo}": a route is required');
      expect(error.message).to.not.match(/store/i);
      expect(error.operation).to.equal(undefined);
      expect(error.key).to.equal('GET /repos/{owner}/{repo}');
    });

    it('names the operation when the caller gives one', () => {
      const error = new CacheValueError('repo:octo/hello', 'ttl must be a finite number of seconds >= 0, got -1', { operation: 'put' });
      expect(error.message).to.equal('Cannot put "repo:octo/hello": ttl must be a finite number of seconds >= 0, got -1');
      expect(error.operation).to.equal('put');
    });

    it('keeps the cause it is given', () => {
      const cause = new TypeError('Do not know how to serialize a BigInt');
      expect(new CacheValueError('k', 'not JSON', { cause }).cause).to.equal(cause);
    });
  });

  describe('redactSecrets', () => {
    it('leaves ordinary text alone: commit SHAs, short names with a token prefix, the word token', () => {
      for (const text of [
        'No commit found for SHA: 0123456789abcdef0123456789abcdef01234567',
        'GET https://api.github.com/repos/octo/ghs_tools answered 404: Not Found',
        'this token\'s rate limit is exhausted',
        'GET https://api.github.com/search/code?q=token&page=2 answered 422',
      ]) {
        expect(redactSecrets(text)).to.equal(text);
      }
    });

    it('replaces each credential with [redacted] and keeps the text around it', () => {
      expect(redactSecrets(`Bad credentials: token ${SECRETS.classic}.`)).to.equal('Bad credentials: token [redacted].');
      expect(redactSecrets(`https://u:${SECRETS.installation}@h/x?access_token=${SECRETS.classic}&page=2`)).to.equal('https://[redacted]@h/x?access_token=[redacted]&page=2');
    });
  });
});
