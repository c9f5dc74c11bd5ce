import { expect } from 'chai';
import { StrikeBook } from '../src/p2p/strikes.js';

describe('StrikeBook (strikes within a window, bans on the injected clock)', () => {
  const limits = { maxStrikes: 3, strikeWindowMs: 1_000, banMs: 5_000 };

  function book(): { strikes: StrikeBook; advance(ms: number): void } {
    let clock = 1_700_000_000_000;
    return { strikes: new StrikeBook(limits, () => clock), advance: (ms) => { clock += ms; } };
  }

  it('bans a peer on its maxStrikes-th strike within the window, and says how many strikes did it', () => {
    const { strikes } = book();
    expect(strikes.strike('peer-a')).to.equal(undefined);
    expect(strikes.strike('peer-a')).to.equal(undefined);
    expect(strikes.isBanned('peer-a')).to.equal(false);
    expect(strikes.strike('peer-a')).to.equal(3);
    expect(strikes.isBanned('peer-a')).to.equal(true);
    expect(strikes.isBanned('peer-b')).to.equal(false);
  });

  it('forgets strikes older than the window', () => {
    const { strikes, advance } = book();
    strikes.strike('peer-a');
    strikes.strike('peer-a');
    advance(1_000);
    expect(strikes.strike('peer-a')).to.equal(undefined);
    expect(strikes.isBanned('peer-a')).to.equal(false);
  });

  it('keeps a ban for banMs, counts no strikes meanwhile, and starts from zero after it', () => {
    const { strikes, advance } = book();
    for (let i = 0; i < 3; i++) strikes.strike('peer-a');
    advance(4_999);
    expect(strikes.isBanned('peer-a')).to.equal(true);
    expect(strikes.strike('peer-a')).to.equal(undefined);
    advance(1);
    expect(strikes.isBanned('peer-a')).to.equal(false);
    expect(strikes.strike('peer-a')).to.equal(undefined);
    expect(strikes.strike('peer-a')).to.equal(undefined);
    expect(strikes.strike('peer-a')).to.equal(3);
  });
});
