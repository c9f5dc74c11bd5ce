import type { FleetHost } from '../cache/ports.js';
import { ANONYMOUS_SCOPE } from '../cache/scope.js';
import { proofKeyOf, scopeClaimProof, verifyScopeClaim } from './scope-proof.js';
import type { ClientSide, PeerSession } from './sessions.js';
import { WIRE_LIMITS, type Frame, type PeerRecord, type ScopeClaim, type ScopesFrame } from './wire.js';

/**
 * Which scopes this node holds and which scopes each peer proved it holds.
 *
 * Guarantee: a peer counts as holding a scope only if its claim carries a valid proof, under the challenge this
 * node sent on that peer's stream, made with the scope's key, by that peer (as the noise handshake authenticated
 * it) for this node, in the claim direction (acceptor to opener): a claim relayed from another holder or
 * reflected from this node's own claims fails. A claim is verified at most once per `scopes` frame
 * (the result is kept until the next one), and a claim that fails is reported once. Claims of scopes this node
 * does not hold are never verified nor counted (it cannot check them). Keys are derived from what the cache lends
 * (`FleetHost.scopes`) on use, so a token the cache gains later is seen at once.
 */

export interface ScopeKeyPair {
  readonly entryKey: Uint8Array;
  readonly proofKey: Uint8Array;
}

export interface ScopeClaimsInit {
  /** This node's peer id: the verifier of the claims it receives and the prover of those it sends. */
  readonly selfId: string;
  readonly scopes: FleetHost['scopes'];
  /** The anonymous scope's entry key (derived from the shared secret). */
  readonly anonymousKey: Uint8Array;
  readonly isBanned: (peerId: string) => boolean;
  /** Called once for each claim that fails verification. */
  readonly onBadClaim: (peerId: string, detail: string) => void;
}

export class ScopeClaims {
  readonly #init: ScopeClaimsInit;
  readonly #proofKeys = new Map<string, ScopeKeyPair>();

  constructor(init: ScopeClaimsInit) {
    this.#init = init;
  }

  /** Entry key and proof key of a scope this node holds; undefined when it does not. */
  keysOf(scopeId: string): ScopeKeyPair | undefined {
    const entryKey = scopeId === ANONYMOUS_SCOPE ? this.#init.anonymousKey : this.#init.scopes.entryKey(scopeId);
    if (entryKey === undefined) return undefined;
    const cached = this.#proofKeys.get(scopeId);
    if (cached !== undefined && Buffer.compare(cached.entryKey, entryKey) === 0) return cached;
    const keys = { entryKey, proofKey: proofKeyOf(entryKey) };
    this.#proofKeys.set(scopeId, keys);
    return keys;
  }

  /** The `scopes` frame for peer `peerId` whose challenge is `remoteChallenge`: each scope held, with its proof. */
  scopesFrame(peerId: string, remoteChallenge: Uint8Array, peers: PeerRecord[]): Frame {
    const claims: ScopeClaim[] = [];
    const parties = { prover: this.#init.selfId, verifier: peerId };
    for (const scopeId of this.#heldScopeIds()) {
      const keys = this.keysOf(scopeId);
      if (keys !== undefined) claims.push({ id: scopeId, proof: scopeClaimProof(keys.proofKey, remoteChallenge, scopeId, parties) });
    }
    return { type: 'scopes', scopes: claims, peers };
  }

  /** Takes a peer's `scopes` frame (replacing its earlier claims) and verifies at once the claims of scopes held here. */
  receive(session: PeerSession, client: ClientSide, frame: ScopesFrame): void {
    client.claims = new Map(frame.scopes.map((claim) => [claim.id, claim.proof]));
    client.verified = new Map();
    // Claims of scopes this node does not hold yet are verified if it comes to hold them.
    for (const scopeId of client.claims.keys()) this.proved(session, client, scopeId);
  }

  /** Whether the peer proved it holds `scopeId` (verified once per claim, on first use). */
  proved(session: PeerSession, client: ClientSide, scopeId: string): boolean {
    if (client.remoteChallenge === undefined || client.channel.closed || this.#init.isBanned(session.id)) return false;
    const cached = client.verified.get(scopeId);
    if (cached !== undefined) return cached;
    const proof = client.claims.get(scopeId);
    const keys = proof === undefined ? undefined : this.keysOf(scopeId);
    if (proof === undefined || keys === undefined) return false;
    const ok = verifyScopeClaim(keys.proofKey, client.challenge, scopeId, { prover: session.id, verifier: this.#init.selfId }, proof);
    client.verified.set(scopeId, ok);
    if (!ok) this.#init.onBadClaim(session.id, `a claim of scope ${scopeId.slice(0, 12)} without a valid proof`);
    return ok;
  }

  /** Scopes the peer proved that this node holds too. */
  provedCount(session: PeerSession, client: ClientSide): number {
    let scopes = 0;
    for (const scopeId of client.claims.keys()) if (this.proved(session, client, scopeId)) scopes++;
    return scopes;
  }

  #heldScopeIds(): string[] {
    const scopes = new Set<string>([ANONYMOUS_SCOPE, ...this.#init.scopes.heldScopes()]);
    return [...scopes].slice(0, WIRE_LIMITS.scopes);
  }
}
