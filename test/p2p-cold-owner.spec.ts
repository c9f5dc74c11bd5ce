import { expect } from 'chai';
import { formatRequestKey } from '../src/cache/request-key.js';
import { ANONYMOUS_SCOPE, entryKeyOf, scopeIdOf } from '../src/cache/scope.js';
import { ScopeAbsence, ScopeGrace } from '../src/p2p/cold-owner.js';
import { isSealedKey, openSealedKey, sealedScopeOf, sealKey } from '../src/p2p/sealed-key.js';
import { parseRequestKey } from '../src/cache/request-key.js';

/** Cold owners: keys sealed for an owner that has not proved the scope, the owner's grace, the asker's memory. */

const TOKEN_A = 'test_coldOwnerAAAAAAAAAAAAAAAAAAAAAAAAAA';
const TOKEN_B = 'test_coldOwnerBBBBBBBBBBBBBBBBBBBBBBBBBB';
const scopeA = scopeIdOf(TOKEN_A);
const keyA = formatRequestKey({ url: 'https://api.github.com/repos/private-org/secret-repo', method: 'GET', scopeId: scopeA, accept: 'application/vnd.github+json' });

describe('sealed keys (a get for an owner that has not proved the scope)', () => {
  it('shows the scope id and nothing of the URL, and opens only under the scope\'s key', () => {
    const sealed = sealKey(keyA, scopeA, entryKeyOf(TOKEN_A))!;
    expect(isSealedKey(sealed)).to.equal(true);
    expect(parseRequestKey(sealed)).to.equal(undefined);
    expect(sealed).to.not.include('private-org').and.not.include('secret-repo');
    expect(sealedScopeOf(sealed)).to.equal(scopeA);
    expect(openSealedKey(sealed, entryKeyOf(TOKEN_A))).to.equal(keyA);
    expect(openSealedKey(sealed, entryKeyOf(TOKEN_B))).to.equal(undefined);
    // two seals of one key differ (random nonce)
    expect(sealKey(keyA, scopeA, entryKeyOf(TOKEN_A))).to.not.equal(sealed);
  });

  it('refuses a sealed key moved to another scope id, tampered with, malformed, or holding a key of another scope', () => {
    const entryKey = entryKeyOf(TOKEN_A);
    const sealed = sealKey(keyA, scopeA, entryKey)!;
    const body = sealed.slice(sealed.lastIndexOf(':') + 1);
    expect(openSealedKey(`sealed:${scopeIdOf(TOKEN_B)}:${body}`, entryKey)).to.equal(undefined);
    const flipped = Buffer.from(body, 'base64url');
    flipped[flipped.byteLength - 1]! ^= 1;
    expect(openSealedKey(`sealed:${scopeA}:${flipped.toString('base64url')}`, entryKey)).to.equal(undefined);
    for (const bad of ['sealed:', `sealed:${scopeA}:`, `sealed:${scopeA}:AAAA`, 'sealed:nope:AAAA', `sealed:${scopeA}:a+b/`]) {
      expect(openSealedKey(bad, entryKey), bad).to.equal(undefined);
    }
    expect(sealedScopeOf('sealed:nope:AAAA')).to.equal(undefined);
    // sealed under A's key, but the key inside is of the anonymous scope: refused
    const anonymousKey = formatRequestKey({ url: 'https://api.github.com/x', method: 'GET', scopeId: ANONYMOUS_SCOPE, accept: 'application/json' });
    expect(openSealedKey(sealKey(anonymousKey, scopeA, entryKey)!, entryKey)).to.equal(undefined);
  });

  it('does not seal a key that would not fit a get frame', () => {
    const long = formatRequestKey({ url: `https://api.github.com/${'a'.repeat(7_000)}`, method: 'GET', scopeId: scopeA, accept: 'application/json' });
    expect(sealKey(long, scopeA, entryKeyOf(TOKEN_A))).to.equal(undefined);
  });
});

describe('ScopeGrace (an owner asked for a scope it does not hold yet)', () => {
  it('lets waiters go on once the scope is held, each exactly once', async () => {
    const grace = new ScopeGrace(10_000);
    const ended: boolean[] = [];
    grace.wait(scopeA, (held) => ended.push(held));
    grace.wait(scopeA, (held) => ended.push(held));
    grace.wait('other', (held) => ended.push(held));
    expect(grace.waiting).to.equal(3);
    grace.held(scopeA);
    grace.held(scopeA);
    expect(ended).to.deep.equal([true, true]);
    expect(grace.waiting).to.equal(1);
    grace.stop();
    expect(grace.waiting).to.equal(0);
    expect(ended).to.deep.equal([true, true]);
  });

  it('ends the grace without the scope, then refuses the scope at once until it is held', async () => {
    const grace = new ScopeGrace(20);
    expect(grace.refuses(scopeA)).to.equal(false);
    const ended = await new Promise<boolean>((resolve) => grace.wait(scopeA, resolve));
    expect(ended).to.equal(false);
    expect(grace.refuses(scopeA)).to.equal(true);
    expect(grace.refuses('other')).to.equal(false);
    grace.held(scopeA);
    expect(grace.refuses(scopeA)).to.equal(false);
    grace.stop();
  });
});

describe('ScopeAbsence (owners an asker knows do not hold a scope)', () => {
  it('remembers per stream and scope, for a while', () => {
    let clock = 1_000;
    const absence = new ScopeAbsence(() => clock, 500);
    const stream = {};
    const other = {};
    absence.mark(stream, scopeA);
    expect(absence.lacks(stream, scopeA)).to.equal(true);
    expect(absence.lacks(stream, 'other')).to.equal(false);
    expect(absence.lacks(other, scopeA)).to.equal(false);
    clock += 500;
    expect(absence.lacks(stream, scopeA)).to.equal(false);
  });

  it('keeps at most 1024 scopes per stream, the oldest dropped first', () => {
    const absence = new ScopeAbsence(() => 0);
    const stream = {};
    for (let i = 0; i < 1025; i++) absence.mark(stream, `s${i}`);
    expect(absence.lacks(stream, 's0')).to.equal(false);
    expect(absence.lacks(stream, 's1')).to.equal(true);
    expect(absence.lacks(stream, 's1024')).to.equal(true);
  });
});
