import { expect } from 'chai';
import type { CacheEntry } from '../src/cache/entry.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { forwarder, type Forwarder } from './support/forwarder.js';
import { entryFor, fullyConnected, RecordingLogger, removeTmpDirs, requestKey, startNode, UpstreamCounter, waitFor, type SpecNode } from './support/p2p-fixtures.js';

/**
 * A session survives its connection being closed as surplus (one-connection.ts, cache-protocol.ts): two members
 * that dialled each other both ways keep one connection, and the asker's stream moves to it before the other
 * closes, so asks in flight at the swap are answered by their owner and nobody fetches an owner's key itself.
 *
 * The order is forced, not left to load: the higher peer id dials first (through a forwarder that holds dials),
 * both sessions come up on that connection, the higher one asks keys the lower one owns (held upstream), and only
 * then the lower id's dial passes: its connection is the one both ends keep, so the first one is the surplus. The
 * owner's upstream is released once the asker's stream moved to the kept connection (its debug log says so), or,
 * were the session to drop, once the asker went upstream itself.
 */

const TOKEN = `test_swap${'S'.repeat(32)}`;
const SCOPE = scopeIdOf(TOKEN);

/** A logger that keeps the debug lines too (formatted loosely: the format and its arguments). */
class DebugRecorder extends RecordingLogger {
  readonly debugs: string[] = [];
  override debug(message: string, ...args: unknown[]): void {
    this.debugs.push([message, ...args.map(String)].join(' '));
  }
}

/** An upstream that counts each call and answers none until released. */
class HeldUpstream extends UpstreamCounter {
  #release: () => void = () => undefined;
  readonly #held = new Promise<void>((resolve) => {
    this.#release = resolve;
  });

  release(): void {
    this.#release();
  }

  override async fetch(key: string): Promise<CacheEntry> {
    this.calls++;
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    await this.#held;
    return entryFor(key);
  }
}

describe('a session across a surplus connection swap', function () {
  this.timeout(120_000);
  const nodes: SpecNode[] = [];
  const forwarders: Forwarder[] = [];

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.network.stop()));
    for (const f of forwarders.splice(0)) f.close();
    removeTmpDirs();
  });

  it('asks in flight when the surplus connection closes are answered by their owner, not fetched by the asker', async () => {
    const [toA, toB] = [await forwarder(), await forwarder()];
    forwarders.push(toA, toB);
    const upstreams = [new HeldUpstream(), new HeldUpstream()];
    const loggers = [new DebugRecorder(), new DebugRecorder()];
    // Each dials the other through the other's forwarder; a long dial timeout, since the forwarders hold them.
    const started = await Promise.all([toB, toA].map((to, i) => startNode({
      upstream: upstreams[i]!, logger: loggers[i]!, tokens: [TOKEN], p2p: { dialTimeoutMs: 60_000, bootstrapPeers: [`/ip4/127.0.0.1/tcp/${to.port}`] },
    })));
    nodes.push(...started);
    const [a, b] = started as [SpecNode, SpecNode];
    const aLow = a.network.peerId < b.network.peerId;
    const [low, high] = aLow ? [a, b] : [b, a];
    const [toLow, toHigh] = aLow ? [toA, toB] : [toB, toA];
    const [lowUpstream, highUpstream] = (aLow ? upstreams : [upstreams[1], upstreams[0]]) as [HeldUpstream, HeldUpstream];
    const highLog = (aLow ? loggers[1] : loggers[0])!;
    highUpstream.release(); // only the owner's upstream is held

    // The higher id's dial first: the sessions come up on the connection that is to be the surplus.
    toLow.release(low.network.stats().boundPort);
    await waitFor(() => fullyConnected([low, high], 1), 'both in session on the first connection', 60_000);

    const ids = [low.network.peerId, high.network.peerId];
    const keys: string[] = [];
    for (let n = 0; keys.length < 8; n++) {
      const key = requestKey(SCOPE, `swap-${n}`);
      if (rendezvousOwner(key, ids) === low.network.peerId) keys.push(key);
    }
    const asks = keys.map((key) => high.backend.get(key, SCOPE));
    await waitFor(() => lowUpstream.calls === keys.length, 'the owner fetching every key asked', 60_000);

    // The lower id's dial passes: both ends keep it, and the first connection goes once nothing is left on it.
    toHigh.release(high.network.stats().boundPort);
    await waitFor(() => highLog.debugs.some((d) => d.startsWith('moved my stream to')) || highUpstream.calls > 0,
      'the asker\'s stream on the kept connection (or the asker fetching itself)', 60_000);
    lowUpstream.release();
    await Promise.all(asks);
    await waitFor(() => toHigh.live === 1 && toLow.live === 0, 'one connection left, the one the lower id dialled', 60_000);

    expect(highUpstream.calls, 'keys the asker fetched itself').to.equal(0);
    expect(high.backend.sources.peer, 'asks answered by the owner').to.equal(keys.length);
    expect(lowUpstream.calls, 'the owner fetched each key once').to.equal(keys.length);
    expect(fullyConnected([low, high], 1), 'both still in session').to.equal(true);
  });
});
