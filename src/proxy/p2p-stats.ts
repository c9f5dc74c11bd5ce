/**
 * A defensive view of `getStats().p2p`: the P2P layer's stats (peer id, listen addresses, connected peers,
 * peers speaking the protocol, counters). The proxy's /healthz and /metrics and the CLI's `peers` read it
 * through here, so they work whether the cache runs a P2P host or not, and whatever counters it adds.
 */

export interface P2PStatsView {
  peerId: string | undefined;
  /** How the shared secret admits members (`handshake` or `pnet`), when reported: the other mode never connects. */
  membership: string | undefined;
  listenAddrs: string[];
  connectedPeers: number;
  peers: Array<{ id: string; scopes?: number }>;
  /** Every other numeric field (requestsSent, entriesReceived, timeouts, ...), by name. */
  counters: Record<string, number>;
  /** Rejected data by reason, when reported. */
  rejected: Record<string, number>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Fields that are gauges or identities, not counters. */
const NOT_COUNTERS = new Set(['connectedPeers', 'boundPort']);

/** The P2P part of a stats snapshot, or undefined when the cache runs no P2P host. */
export function p2pStatsOf(stats: unknown): P2PStatsView | undefined {
  if (!isRecord(stats) || !isRecord(stats['p2p'])) return undefined;
  const p2p = stats['p2p'];
  const peers = Array.isArray(p2p['peers'])
    ? p2p['peers'].filter(isRecord).map((p) => ({
      id: String(p['id']),
      ...(typeof p['scopes'] === 'number' ? { scopes: p['scopes'] } : {}),
    }))
    : [];
  const counters: Record<string, number> = {};
  for (const [name, value] of Object.entries(p2p)) {
    if (typeof value === 'number' && Number.isFinite(value) && !NOT_COUNTERS.has(name)) counters[name] = value;
  }
  const rejected: Record<string, number> = {};
  if (isRecord(p2p['rejected'])) {
    for (const [reason, value] of Object.entries(p2p['rejected'])) if (typeof value === 'number') rejected[reason] = value;
  }
  return {
    peerId: typeof p2p['peerId'] === 'string' ? p2p['peerId'] : undefined,
    membership: typeof p2p['membership'] === 'string' ? p2p['membership'] : undefined,
    listenAddrs: Array.isArray(p2p['listenAddrs']) ? p2p['listenAddrs'].map(String) : [],
    connectedPeers: typeof p2p['connectedPeers'] === 'number' ? p2p['connectedPeers'] : peers.length,
    peers,
    counters,
    rejected,
  };
}
