/**
 * P2P sharing over libp2p: the fleet's host and the `/github-cache/1.0.0` protocol (docs/p2p-protocol.md).
 * `PeerNetwork` composes the small modules re-exported here; each states its own guarantee.
 */
export {
  PeerNetwork, PeerNetworkStartError, DEFAULT_PEER_NETWORK_LIMITS,
  type PeerBackend, type PeerFetchResult, type PeerNetworkLimits, type PeerNetworkStartOptions, type PeerNetworkStats,
} from './peer-network.js';
export { PeerEntryRejected, type PeerEntryRejectionReason } from './envelope.js';
export { PROTOCOL, WireFormatError } from './wire.js';
export { rendezvousOwner } from './rendezvous.js';
