import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { answersWhileStarting } from '../src/fleet-start.js';
import { GitHubAPICache, type FleetStarter } from '../src/github-api-cache.js';
import type { Fleet, FleetAnswer, FleetStats } from '../src/cache/ports.js';
import { CacheClosedError, CacheConfigError } from '../src/errors.js';
import { resolveOptions } from '../src/options.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { CapturingSink } from '../support/recording-logger.js';
import { waitFor } from '../support/wait.js';
import { freePort, removeTmpDirs, tmpCacheDir } from './support/p2p-fixtures.js';

const execFileAsync = promisify(execFile);

/**
 * Start-up with P2P on: the cache answers while its fleet's host is still starting (held back here by an
 * injected starter), waits for it only within `p2p.startWaitMs`, and a start that fails still surfaces.
 */

const SECRET = 'start-spec-shared-secret-0123456789';
const TOKEN = `ghp_${'s'.padEnd(36, 'T')}`;
const ROUTE = 'GET /repos/octo/hello';

/** A starter whose start completes (or fails) only when the spec says so. */
function heldStart(): { start: FleetStarter; calls: () => number; release: (fleet: Fleet) => void; fail: (err: unknown) => void } {
  let release!: (fleet: Fleet) => void;
  let fail!: (err: unknown) => void;
  const started = new Promise<Fleet>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  let calls = 0;
  return {
    start: () => {
      calls++;
      return started;
    },
    calls: () => calls,
    release,
    fail,
  };
}

/** A fleet that answers every ask with `answer` and counts what it is asked. */
class StubFleet implements Fleet {
  asked = 0;
  /** The peers it is in session with (a spec sets them with `inSession`, which tells the listeners). */
  peers: Array<{ id: string; scopes: number }> = [];
  stopped = 0;
  readonly #listeners = new Set<() => void>();
  /** Puts the stub in session with `ids`, as the protocol does when a peer's hello arrives. */
  inSession(...ids: string[]): void {
    this.peers = ids.map((id) => ({ id, scopes: 0 }));
    for (const listener of this.#listeners) listener();
  }
  onSessionsChanged(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  constructor(readonly answer: () => FleetAnswer = () => ({ kind: 'self' })) {}
  /** How many sessions it had at each ask. */
  sessionsAtAsk: number[] = [];
  async fetch(): Promise<FleetAnswer> {
    this.asked++;
    this.sessionsAtAsk.push(this.peers.length);
    return this.answer();
  }
  stats(): FleetStats {
    return {
      peerId: 'stub', listenAddrs: [], connectedPeers: this.peers.length, peers: this.peers, requestsSent: 0, entriesReceived: 0, requestsServed: 0,
      rejected: {}, timeouts: 0, disconnectedForAbuse: 0, boundPort: 1, portFallback: false, membership: 'handshake', handoffsSent: 0, handoffEntries: 0,
      invalidationsSent: 0, invalidationsReceived: 0, invalidationsDropped: 0, leasesGranted: 0, blindServed: 0, leasesTaken: 0,
    };
  }
  invalidate(): void {}
  async stop(): Promise<void> {
    this.stopped++;
  }
}

/**
 * Whether `promise` has settled, checked after the turns already queued have run, or after `windowMs` when given:
 * a request that should still wait is given time to go to GitHub and come back if it wrongly does not (a busy
 * machine can only make it look pending longer, never settle it wrongly).
 */
async function settled(promise: Promise<unknown>, windowMs = 0): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  if (!done && windowMs > 0) await Promise.race([promise.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, windowMs))]);
  return done;
}

describe('start-up with P2P on (the cache answers while its fleet starts)', function () {
  this.timeout(30_000);
  let github: FakeGitHub;
  const open: GitHubAPICache[] = [];

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'T' } } });
    github.setResource('/repos/octo/hello', { name: 'hello' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await github.close();
    removeTmpDirs();
  });

  const make = async (start: FleetStarter, p2p: { startWaitMs?: number; listenHost?: string; bootstrapPeers?: string[] } = {}, logSink?: CapturingSink) => {
    const cache = await GitHubAPICache.create({
      persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url, ...(logSink !== undefined ? { logSink } : {}),
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, ...p2p },
    }, { startFleet: start });
    open.push(cache);
    return cache;
  };

  it('answers a local hit and an origin request while the start is held back; the fleet is asked once it runs', async () => {
    const held = heldStart();
    const cache = await make(held.start);
    expect(held.calls()).to.equal(1);
    expect(await settled(cache.p2pReady())).to.equal(false);
    expect((await cache.getStats()).p2p).to.equal(undefined);

    const first = await cache.request(ROUTE, {}, { token: TOKEN });
    expect(first.source).to.equal('origin');
    expect((await cache.request(ROUTE, {}, { token: TOKEN })).source).to.equal('memory');
    await cache.put('k', { v: 1 });
    expect(await cache.get('k')).to.deep.equal({ v: 1 });
    expect(github.stats.requests).to.equal(1);

    const fleet = new StubFleet();
    held.release(fleet);
    await cache.p2pReady();
    expect((await cache.getStats()).p2p?.peerId).to.equal('stub');
    await cache.request('GET /repos/octo/other', {}, { token: TOKEN }).catch(() => undefined);
    expect(fleet.asked).to.equal(1);
  });

  it('with p2p.startWaitMs, a request that would go upstream waits for the starting fleet (a local hit does not)', async () => {
    const held = heldStart();
    const cache = await make(held.start, { startWaitMs: 600_000 });
    await cache.put('k', { v: 1 });
    expect(await cache.get('k')).to.deep.equal({ v: 1 });

    const answer = cache.request(ROUTE, {}, { token: TOKEN });
    expect(await settled(answer, 1_000)).to.equal(false);
    expect(github.stats.requests).to.equal(0);
    const fleet = new StubFleet();
    held.release(fleet);
    expect((await answer).source).to.equal('origin'); // the stub said 'self': this node fetches it
    expect(fleet.asked).to.equal(1);
    expect(github.stats.requests).to.equal(1);
  });

  it('with bootstrap peers, waits for sessions with them, not only for the host to listen (5 s by default)', async () => {
    const bootstrapPeers = ['/ip4/127.0.0.1/tcp/9', '/ip4/127.0.0.1/tcp/10'];
    const p2p = { enabled: true, sharedSecret: SECRET };
    expect(resolveOptions({ p2p: { ...p2p, bootstrapPeers } }, {}).p2p.startWaitMs, 'the default of a fleet member').to.equal(5_000);
    expect(resolveOptions({ p2p }, {}).p2p.startWaitMs, 'the default of a node alone').to.equal(0);

    const held = heldStart();
    const cache = await make(held.start, { bootstrapPeers, startWaitMs: 600_000 });
    const answer = cache.request(ROUTE, {}, { token: TOKEN });
    const fleet = new StubFleet();
    held.release(fleet);
    await cache.p2pReady(); // listening, in session with nobody yet
    fleet.inSession('a');
    expect(await settled(answer, 1_000), 'still waiting: one session of the two its list promises').to.equal(false);
    expect(github.stats.requests).to.equal(0);
    fleet.inSession('a', 'b');
    expect((await answer).source).to.equal('origin'); // the stub said 'self': this node fetches it
    expect(fleet.asked, 'the fleet was asked first').to.equal(1);
  });

  it('a waiting read asks the fleet in the turn its last session comes up (an event, not a poll tick)', async () => {
    const bootstrapPeers = ['/ip4/127.0.0.1/tcp/9', '/ip4/127.0.0.1/tcp/10'];
    const held = heldStart();
    const cache = await make(held.start, { bootstrapPeers, startWaitMs: 600_000 });
    const answer = cache.request(ROUTE, {}, { token: TOKEN });
    const fleet = new StubFleet();
    held.release(fleet);
    await cache.p2pReady();
    fleet.inSession('a');
    expect(await settled(answer, 200), 'one session of two').to.equal(false);
    fleet.inSession('a', 'b');
    // Only the turns already queued run before this check (no timer can fire before a setImmediate).
    await new Promise((resolve) => setImmediate(resolve));
    expect(fleet.asked, 'asked at once, on the session event').to.equal(1);
    expect((await answer).source).to.equal('origin'); // the stub said 'self'
    expect(github.stats.requests).to.equal(1);
  });

  it('a read waiting when p2p.startWaitMs ends asks the listening fleet with the sessions it has; it never skips it', async () => {
    // The clock is frozen: the wait ends by its timer alone, whatever the clock's reading (a late timer, a busy loop).
    const bootstrapPeers = ['/ip4/127.0.0.1/tcp/9', '/ip4/127.0.0.1/tcp/10'];
    const frozen = Date.now();
    const held = heldStart();
    const cache = await GitHubAPICache.create({
      persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url, now: () => frozen,
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers, startWaitMs: 300 },
    }, { startFleet: held.start });
    open.push(cache);
    const answers = [cache.request(ROUTE, {}, { token: TOKEN }), cache.request('GET /repos/octo/other', {}, { token: TOKEN }).catch(() => undefined)];
    const fleet = new StubFleet();
    held.release(fleet);
    await cache.p2pReady();
    fleet.inSession('a'); // one session of the two its list promises, through the end of the wait
    expect((await answers[0])?.source).to.equal('origin'); // the stub said 'self'
    await answers[1];
    expect(fleet.asked, 'both waiting reads asked the fleet').to.equal(2);
    await cache.request('GET /repos/octo/third', {}, { token: TOKEN }).catch(() => undefined);
    expect(fleet.asked, 'and a read after the wait').to.equal(3);
  });

  it('p2p.startWaitMs counts twice: for the host to listen, then from listening for the sessions (a slow libp2p start on a busy machine)', async () => {
    // The host listens 500 ms after creation (within the first 600 ms), its second session comes 400 ms later: after
    // 600 ms from creation, before 600 ms from listening. The read must wait for it, not ask with one session.
    const bootstrapPeers = ['/ip4/127.0.0.1/tcp/9', '/ip4/127.0.0.1/tcp/10'];
    const held = heldStart();
    const cache = await make(held.start, { bootstrapPeers, startWaitMs: 600 });
    const answer = cache.request(ROUTE, {}, { token: TOKEN });
    const fleet = new StubFleet();
    await new Promise((resolve) => setTimeout(resolve, 500));
    held.release(fleet);
    await cache.p2pReady();
    fleet.inSession('a');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(github.stats.requests, 'nothing went upstream while the sessions came up').to.equal(0);
    fleet.inSession('a', 'b');
    expect((await answer).source).to.equal('origin'); // the stub said 'self': this node fetches it
    expect(fleet.sessionsAtAsk, 'asked once, in session with both peers').to.deep.equal([2]);
  });

  it('real hosts: a read waiting when the wait ends asks the peer it is in session with (one bootstrap peer of two is down)', async function () {
    this.timeout(120_000);
    const real = (bootstrapPeers: string[], startWaitMs?: number) => GitHubAPICache.create({
      persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url,
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers, ...(startWaitMs !== undefined ? { startWaitMs } : {}) },
    }).then((c) => (open.push(c), c));
    const holder = await real([]);
    await holder.p2pReady();
    expect((await holder.request(ROUTE, {}, { token: TOKEN })).source).to.equal('origin');
    const holderAddr = (await holder.getStats()).p2p!.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    // The second bootstrap peer never answers: the member waits the whole p2p.startWaitMs for it.
    const member = await real([holderAddr, `/ip4/127.0.0.1/tcp/${await freePort()}`], 10_000);
    await member.p2pReady();
    await waitFor(async () => ((await member.getStats()).p2p?.peers.length ?? 0) >= 1, 'the member in session with the holder', 60_000);
    // Issued while the wait runs (or after it, if the session took longer: then it asks the fleet either way).
    const answer = await member.request(ROUTE, {}, { token: TOKEN });
    expect(answer.source, 'answered by the peer, not GitHub').to.equal('peer');
    expect(github.stats.requests).to.equal(1);
  });

  it('with p2p.startWaitMs, a request goes upstream once the bound passes while the start is still held back', async () => {
    const held = heldStart();
    const cache = await make(held.start, { startWaitMs: 50 });
    expect((await cache.request(ROUTE, {}, { token: TOKEN })).source).to.equal('origin');
    expect(await settled(cache.p2pReady())).to.equal(false);
    const fleet = new StubFleet();
    held.release(fleet);
    await cache.p2pReady();
    expect(fleet.asked).to.equal(0);
  });

  it('a start that fails surfaces: p2pReady rejects with the error, it is logged, and the cache answers without its fleet', async () => {
    const held = heldStart();
    const sink = new CapturingSink();
    const cache = await make(held.start, { startWaitMs: 600_000 }, sink);
    const waiting = cache.request(ROUTE, {}, { token: TOKEN });
    held.fail(new CacheConfigError('p2p.listenPort', 'cannot listen on 127.0.0.1:9 for P2P: the port is in use'));
    const err = await cache.p2pReady().then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(CacheConfigError);
    expect(sink.errors.join('\n')).to.include('did not start').and.include('127.0.0.1:9');
    expect((await waiting).source).to.equal('origin');
    expect((await cache.getStats()).p2p).to.equal(undefined);
  });

  it('a real host that cannot listen on its address rejects p2pReady with CacheConfigError, and nothing is left running', async () => {
    const sink = new CapturingSink();
    const cache = await GitHubAPICache.create({
      persistence: 'off', cacheDir: tmpCacheDir(), githubApiUrl: github.url, logSink: sink,
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '10.123.45.67', listenPort: 9177 },
    });
    open.push(cache);
    const err = await cache.p2pReady().then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(CacheConfigError);
    expect((err as Error).message).to.include('10.123.45.67:9177');
    expect(sink.errors.join('\n')).to.include('10.123.45.67:9177');
    expect((await cache.request(ROUTE, {}, { token: TOKEN })).source).to.equal('origin');
  });

  it('close() during the start stops the fleet once its start completes, and p2pReady rejects with CacheClosedError', async () => {
    const held = heldStart();
    const cache = await make(held.start);
    const closing = cache.close();
    const fleet = new StubFleet();
    held.release(fleet);
    await closing;
    expect(fleet.stopped).to.equal(1);
    expect(await cache.p2pReady().then(() => undefined, (e: unknown) => e)).to.be.instanceOf(CacheClosedError);
  });
});

describe('loading the P2P layer (fleet-start.ts)', function () {
  this.timeout(30_000);

  it('loads libp2p\'s graph one package per turn of the event loop, so what is answered meanwhile is not held up', async () => {
    // A fresh process: in this one libp2p is loaded already. A ticker that re-arms itself with setImmediate counts
    // the turns the event loop takes while loadP2pInStages runs; one synchronous import of the graph allows none.
    const script = `
      const { loadP2pInStages, P2P_LOAD_STAGES } = await import(${JSON.stringify(new URL('../src/fleet-start.js', import.meta.url).href)});
      let turns = 0, loading = true;
      const tick = () => { if (loading) { turns++; setImmediate(tick); } };
      setImmediate(tick);
      await loadP2pInStages();
      loading = false;
      process.stdout.write(JSON.stringify({ turns, stages: P2P_LOAD_STAGES.length }));
    `;
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], { cwd: path.dirname(fileURLToPath(import.meta.url)) });
    const { turns, stages } = JSON.parse(stdout) as { turns: number; stages: number };
    expect(stages).to.be.at.least(10);
    expect(turns, 'turns of the event loop during the load').to.be.at.least(stages - 1);
  });

  it('loads in stages only where the node answers while its host starts: alone, or with p2p.startWaitMs 0', () => {
    const peers = ['/ip4/10.0.0.2/tcp/9100'];
    expect(answersWhileStarting({ bootstrapPeers: [], startWaitMs: 0 })).to.equal(true);
    expect(answersWhileStarting({ bootstrapPeers: [], startWaitMs: 3_000 })).to.equal(true);
    expect(answersWhileStarting({ bootstrapPeers: peers, startWaitMs: 0 })).to.equal(true);
    expect(answersWhileStarting({ bootstrapPeers: peers, startWaitMs: 5_000 })).to.equal(false);
  });
});
