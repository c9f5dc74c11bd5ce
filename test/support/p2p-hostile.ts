import '../../src/polyfills.js';
import { randomBytes } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import type { Connection, Libp2p, Stream } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { ANONYMOUS_SCOPE } from '../../src/cache/scope.js';
import { anonymousEntryKeyOf, handshakePrologueOf } from '../../src/p2p/fleet-keys.js';
import { CHALLENGE_BYTES, getProof, proofKeyOf, scopeClaimProof, type ProofParties } from '../../src/p2p/scope-proof.js';
import { decodeFrame, encodeFrame, PROTOCOL, WIRE_VERSION, type Frame, type GetFrame, type ScopeClaim, type ScopesFrame } from '../../src/p2p/wire.js';
import { SHARED_SECRET } from './p2p-fixtures.js';

/**
 * A hostile member of the fleet for specs: a raw libp2p node with the fleet's pre-shared key (so it gets in)
 * that speaks /github-cache/1.5.0 by hand, and can send anything: garbage, oversized frames, bad entries.
 */

export const ANONYMOUS_KEY = anonymousEntryKeyOf(SHARED_SECRET);
export const ANONYMOUS_PROOF_KEY = proofKeyOf(ANONYMOUS_KEY);

/** What the hostile owner answers to a `get`: a frame, or raw bytes written as one length-prefixed frame. */
export type HostileAnswer = (get: GetFrame) => Frame | Uint8Array | undefined;

export class HostilePeer {
  /** Gets received while acting as owner. */
  readonly gets: GetFrame[] = [];
  /** Every frame received while acting as owner (gets, puts, releases, hellos). */
  readonly frames: Frame[] = [];
  /** How it answers gets (settable per test). */
  answer: HostileAnswer = () => undefined;
  /**
   * The scopes it claims to a victim, given the victim's challenge and peer id (may wait: a relay fetches them
   * from someone else). Default: the anonymous scope, validly.
   */
  claims: (challenge: Uint8Array, victimId: string) => ScopeClaim[] | Promise<ScopeClaim[]> = (challenge, victimId) => this.anonymousClaims(challenge, victimId);
  /** The challenge of its `hello` on a stream a victim opened (may wait). Default: random bytes. */
  ownerChallenge: (victimId: string) => Uint8Array | Promise<Uint8Array> = () => new Uint8Array(randomBytes(CHALLENGE_BYTES));
  /** The owner side of the streams the victims opened to it, by victim peer id: to send frames unasked. */
  readonly ownerStreams = new Map<string, LengthPrefixedStream<Stream>>();
  /** The challenge each victim sent on the stream it opened to it, by victim peer id. */
  readonly victimChallenges = new Map<string, Uint8Array>();

  private constructor(readonly node: Libp2p) {}

  static async start(secret = SHARED_SECRET): Promise<HostilePeer> {
    const node = await createLibp2p({
      start: false,
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      // Admitted as the fleet's members are by default (p2p.membership 'handshake'): the secret's noise prologue.
      connectionEncrypters: [noise({ prologueBytes: handshakePrologueOf(secret) })],
      streamMuxers: [yamux()],
      services: { identify: identify() },
    });
    const peer = new HostilePeer(node);
    await node.handle(PROTOCOL, (stream, connection) => void peer.actAsOwner(stream, connection), { maxInboundStreams: 64, maxOutboundStreams: 64 });
    await node.start();
    return peer;
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  /** A valid claim of the anonymous scope (fleet members hold it) for `victimId`, under its `challenge`. */
  anonymousClaims(challenge: Uint8Array, victimId: string): ScopeClaim[] {
    return [{ id: ANONYMOUS_SCOPE, proof: scopeClaimProof(ANONYMOUS_PROOF_KEY, challenge, ANONYMOUS_SCOPE, { prover: this.peerId, verifier: victimId }) }];
  }

  /** The victim opened its asking stream to us: claim the anonymous scope (validly) and answer its gets. */
  private async actAsOwner(stream: Stream, connection: Connection): Promise<void> {
    const victimId = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: 64 * 1024 * 1024 });
    this.ownerStreams.set(victimId, lp);
    try {
      await lp.write(encodeFrame({ type: 'hello', version: WIRE_VERSION, challenge: await this.ownerChallenge(victimId), addrs: [], peers: [] }));
      while (true) {
        const frame = decodeFrame((await lp.read()).subarray());
        this.frames.push(frame);
        if (frame.type === 'hello') {
          this.victimChallenges.set(victimId, frame.challenge);
          await lp.write(encodeFrame({ type: 'scopes', scopes: await this.claims(frame.challenge, victimId), peers: [] }));
        } else if (frame.type === 'get') {
          this.gets.push(frame);
          const answer = this.answer(frame);
          if (answer instanceof Uint8Array) await lp.write(answer);
          else if (answer !== undefined) await lp.write(encodeFrame(answer));
        }
      }
    } catch {
      // the victim closed the stream
    }
  }

  /** Connects to the victim (by multiaddr with /p2p/). */
  async connect(addr: string): Promise<void> {
    await this.node.dial(multiaddr(addr), { signal: AbortSignal.timeout(2_000) });
  }

  /** Sends `frame` on the owner side of the stream `victimId` opened to it. */
  async sendAsOwner(victimId: string, frame: Frame): Promise<void> {
    const lp = this.ownerStreams.get(victimId);
    if (lp === undefined) throw new Error(`no stream from ${victimId}`);
    await lp.write(encodeFrame(frame));
  }

  /**
   * Opens an asking stream to the victim with `challenge` in its hello (random by default); returns a raw frame
   * reader/writer and the victim's challenge.
   */
  async openAsker(addr: string, challenge: Uint8Array = new Uint8Array(randomBytes(CHALLENGE_BYTES))): Promise<HostileAsker> {
    const stream = await this.node.dialProtocol(multiaddr(addr), PROTOCOL, { signal: AbortSignal.timeout(2_000) });
    const lp = lpStream(stream, { maxDataLength: 64 * 1024 * 1024 });
    await lp.write(encodeFrame({ type: 'hello', version: WIRE_VERSION, challenge, addrs: [], peers: [] }));
    const hello = decodeFrame((await lp.read({ signal: AbortSignal.timeout(2_000) })).subarray());
    if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
    const victimId = multiaddr(addr).getComponents().findLast((c) => c.name === 'p2p')?.value ?? '';
    return new HostileAsker(stream, lp, hello.challenge, { prover: this.peerId, verifier: victimId });
  }

  async stop(): Promise<void> {
    await this.node.stop();
  }
}

export class HostileAsker {
  constructor(readonly stream: Stream, readonly lp: LengthPrefixedStream<Stream>, readonly challenge: Uint8Array, readonly parties: ProofParties) {}

  /** Writes raw bytes to the stream (no length prefix added). */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    this.stream.send(bytes);
  }

  async send(frame: Frame): Promise<void> {
    await this.lp.write(encodeFrame(frame));
  }

  /** A get for an anonymous-scope key with a valid proof (the hostile peer knows the shared secret). */
  validGet(id: number, key: string): GetFrame {
    return { type: 'get', id, key, proof: getProof(ANONYMOUS_PROOF_KEY, this.challenge, id, key, this.parties) };
  }

  private readonly answers = new Map<number, Frame>();
  private scopes: ScopesFrame | undefined;

  /** The victim's first `scopes` frame on this stream (its claims, under the challenge this asker sent). */
  async scopesFrame(timeoutMs = 3_000): Promise<ScopesFrame> {
    const signal = AbortSignal.timeout(timeoutMs);
    while (this.scopes === undefined) this.keep(decodeFrame((await this.lp.read({ signal })).subarray()));
    return this.scopes;
  }

  private keep(frame: Frame): void {
    if ('id' in frame) this.answers.set(frame.id, frame);
    else if (frame.type === 'scopes') this.scopes ??= frame;
  }

  /** The next frame the victim sends on this stream, whatever it is. */
  async next(timeoutMs = 3_000): Promise<Frame> {
    return decodeFrame((await this.lp.read({ signal: AbortSignal.timeout(timeoutMs) })).subarray());
  }

  /** The answer to request `id`, reading (and keeping) other frames until it arrives. */
  async answerTo(id: number, timeoutMs = 3_000): Promise<Frame> {
    const signal = AbortSignal.timeout(timeoutMs);
    while (!this.answers.has(id)) this.keep(decodeFrame((await this.lp.read({ signal })).subarray()));
    const answer = this.answers.get(id)!;
    this.answers.delete(id);
    return answer;
  }

  /** Resolves when the victim has closed (reset) this stream. */
  async closedByVictim(timeoutMs = 3_000): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      while (true) await this.lp.read({ signal });
    } catch (err) {
      if (signal.aborted) throw new Error('the victim did not close the stream');
    }
  }
}
