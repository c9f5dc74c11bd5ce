/**
 * What the offline demo (examples/p2p-demo.ts) concludes from a run: a row per node process, fleet totals,
 * and the invariants that decide its exit code. Pure: it reads the measurements the demo collected and
 * starts, prints and changes nothing, so every invariant is computed from the same numbers the report shows.
 */
import type { SingletonProviderStats } from '../index.js';
import type { DemoGitHubStats } from './demo-github.js';
import type { Reply } from './demo-member.js';
import type { DemoOptions } from './demo-options.js';
import { SOURCES, type PhaseResult, type PhaseWork, type SourceCounts } from './demo-protocol.js';

export interface Invariant {
  name: string;
  ok: boolean;
  detail: string;
}

export interface NodeRow {
  name: string;
  pid: number;
  startedMs: number;
  firstCallers: number;
  instancesCreated: number;
  factoryCalls: number;
  distinctInstancesSeen: number;
  p2pHosts: number;
  peerId: string;
  port: { fixed: number; bound: number; fellBack: boolean };
  connectedPeers: number;
  /** The P2P protocol's counters over the whole run: asks sent to owners, entries received, asks served as owner, asks that timed out, data rejected. */
  p2pTraffic: { asked: number; received: number; servedAsOwner: number; timeouts: number; rejected: number };
  served: number;
  upstream: number;
  notModified: number;
  charged: number;
  unitsSaved: number;
  sources: SourceCounts;
  via: PhaseResult['via'];
  errors: number;
  wrong: number;
  main: PhaseResult;
  revisit: PhaseResult | undefined;
  closedCleanly: boolean;
}

export interface DemoSummary {
  ok: boolean;
  invariants: Invariant[];
  options: Omit<DemoOptions, 'json' | 'port'> & { port: number };
  nodes: Array<Omit<NodeRow, 'main' | 'revisit'> & { mainP50Ms: number; mainP99Ms: number; mainMaxMs: number }>;
  totals: {
    requestsServed: number;
    mainRequests: number;
    revisitRequests: number;
    distinctResources: number;
    distinctRevisited: number;
    /** Σ per node of the distinct resources it touched: what three unshared caches would fetch at least. */
    unsharedMinimum: number;
    warmupRequests: number;
    upstream: { main: number; revisit: number; total: number; notModified: number };
    rateLimitUnits: { spent: number; uncachedBaseline: number; saved: number; revisitCharged: number };
    fake: Omit<DemoGitHubStats, 'byPath'> & { distinctPaths: number };
  };
  timingsMs: Record<string, number>;
}

/** Everything the demo measured during one run. Arrays of nodes are in node order. */
export interface DemoMeasurements {
  options: DemoOptions;
  /** The fixed P2P port every node was given. */
  port: number;
  names: string[];
  ready: Array<Reply<'ready'>>;
  /** Each node's stats just before the main phase (there is no warm-up: the fleet starts cold). */
  before: Array<Reply<'stats'>>;
  /** Each node's stats after the last phase, before closing. */
  final: Array<Reply<'stats'>>;
  main: PhaseResult[];
  revisit: PhaseResult[] | undefined;
  plans: PhaseWork[];
  revisitPlan: number[];
  /** Requests the fake GitHub received before the main phase (0: no warm-up). */
  warmupRequests: number;
  afterMain: DemoGitHubStats;
  afterAll: DemoGitHubStats;
  /** The nodes' answers to close (undefined: killed). */
  closed: Array<Reply<'closed'> | undefined>;
  exits: Array<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Files the nodes wrote that hold a secret, relative to the demo's temp dir. */
  leakedFiles: string[];
  /** Everything the demo and the nodes printed so far. */
  printed: string;
  secrets: string[];
  timings: Record<string, number>;
}

export function sumSources(list: SourceCounts[]): SourceCounts {
  const total = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
  for (const s of list) for (const k of SOURCES) total[k] += s[k];
  return total;
}

/** The rows, totals and invariants of a run. */
export function summarize(measured: DemoMeasurements): DemoSummary {
  const {
    options, port, names, ready, before, final, main, revisit, plans, revisitPlan, warmupRequests, afterMain, afterAll,
    closed, exits, leakedFiles, printed, secrets, timings,
  } = measured;
  const rows: NodeRow[] = names.map((name, i) => {
    const r = ready[i]!;
    const f = final[i]!.stats;
    const b = before[i]!.stats;
    const p2p = f.p2p;
    const results = [main[i]!, ...(revisit !== undefined ? [revisit[i]!] : [])];
    const served = results.reduce((a, x) => a + x.answered, 0);
    const upstream = f.apiCallsMade - b.apiCallsMade;
    const notModified = f.notModified - b.notModified;
    const charged = upstream - notModified;
    const provider: SingletonProviderStats = final[i]!.provider;
    return {
      name,
      pid: r.pid,
      startedMs: r.startedMs,
      firstCallers: r.firstCallers,
      instancesCreated: provider.created,
      factoryCalls: provider.factoryCalls,
      distinctInstancesSeen: final[i]!.distinctInstancesSeen,
      // One host per instance (the cache owns it); the fleet-wide peer-id check below catches a second one.
      p2pHosts: p2p !== undefined ? provider.created : 0,
      peerId: p2p?.peerId ?? '',
      port: { fixed: port, bound: p2p?.boundPort ?? 0, fellBack: p2p?.portFallback ?? false },
      connectedPeers: p2p?.connectedPeers ?? 0,
      p2pTraffic: {
        asked: p2p?.requestsSent ?? 0,
        received: p2p?.entriesReceived ?? 0,
        servedAsOwner: p2p?.requestsServed ?? 0,
        timeouts: p2p?.timeouts ?? 0,
        rejected: Object.values(p2p?.rejected ?? {}).reduce((a, n) => a + n, 0),
      },
      served,
      upstream,
      notModified,
      charged,
      unitsSaved: served - charged,
      sources: sumSources(results.map((x) => x.sources)),
      via: { getGlobalCache: results.reduce((a, x) => a + x.via.getGlobalCache, 0), 'container.getAsync': results.reduce((a, x) => a + x.via['container.getAsync'], 0) },
      errors: results.reduce((a, x) => a + x.errors, 0),
      wrong: results.reduce((a, x) => a + x.wrong, 0),
      main: main[i]!,
      revisit: revisit?.[i],
      closedCleanly: closed[i] !== undefined && closed[i]!.provider.hasInstance === false && exits[i]!.code === 0,
    };
  });

  const distinctMain = new Set(plans.flatMap((p) => p.indices)).size;
  const unsharedMinimum = main.reduce((a, x) => a + x.distinctResources, 0);
  const mainRequests = main.reduce((a, x) => a + x.requests, 0);
  const revisitRequests = revisit?.reduce((a, x) => a + x.requests, 0) ?? 0;
  const upstreamMain = afterMain.requests - warmupRequests;
  const upstreamRevisit = afterAll.requests - afterMain.requests;
  const revisitNotModified = afterAll.notModified - afterMain.notModified;
  const revisitCharged = afterAll.charged - afterMain.charged;
  const served = rows.reduce((a, r) => a + r.served, 0);
  const totalRequests = mainRequests + revisitRequests;
  const nodeUpstream = rows.reduce((a, r) => a + r.upstream, 0);
  const peerIds = new Set(rows.map((r) => r.peerId).filter((id) => id !== ''));
  const binders = rows.filter((r) => !r.port.fellBack && r.port.bound === port);
  const fallers = rows.filter((r) => r.port.fellBack && r.port.bound !== port && r.port.bound > 0);
  const mainLimit = Math.floor(1.1 * distinctMain);
  const revisitLimit = Math.floor(1.1 * revisitPlan.length);
  // What the clients saw (source of each answer) against what each cache counted over the same requests.
  const sourceChecks = rows.map((r, i) => {
    const f = final[i]!.stats;
    const b = before[i]!.stats;
    const pairs: Array<[string, number, number]> = [
      ['memory+disk/hits', r.sources.memory + r.sources.disk, f.hits - b.hits],
      ['peer/peerHits', r.sources.peer, f.peerHits - b.peerHits],
      ['coalesced/coalesced', r.sources.coalesced, f.coalesced - b.coalesced],
      ['stale/staleServed', r.sources.stale, f.staleServed - b.staleServed],
    ];
    const bad = pairs.filter(([, seen, counted]) => seen !== counted);
    return {
      ok: bad.length === 0,
      text: bad.length === 0 ? `${r.name}: hits, peerHits, coalesced, staleServed match`
        : `${r.name}: ${bad.map(([what, seen, counted]) => `${what} ${seen} vs ${counted}`).join(', ')}`,
    };
  });
  const errorSamples = rows.flatMap((r) => [...r.main.errorSamples, ...(r.revisit?.errorSamples ?? [])]).slice(0, 3);

  const invariants: Invariant[] = [
    {
      name: 'one cache instance per process',
      ok: rows.every((r) => r.instancesCreated === 1 && r.factoryCalls === 1 && r.distinctInstancesSeen === 1),
      detail: `created / factory calls / distinct instances seen: ${rows.map((r) => `${r.name} ${r.instancesCreated}/${r.factoryCalls}/${r.distinctInstancesSeen}`).join(', ')} ` +
        `(${options.concurrency} concurrent first callers per node; ${rows.reduce((a, r) => a + r.via.getGlobalCache, 0)} getGlobalCache + ` +
        `${rows.reduce((a, r) => a + r.via['container.getAsync'], 0)} container.getAsync resolutions in all)`,
    },
    {
      name: 'one P2P host per process',
      ok: rows.every((r) => r.p2pHosts === 1 && r.connectedPeers === options.nodes - 1) && peerIds.size === options.nodes,
      detail: `${peerIds.size} distinct peer ids for ${options.nodes} processes; peers connected per node: ${rows.map((r) => r.connectedPeers).join(', ')}`,
    },
    {
      name: `exactly one process bound the fixed port ${port}`,
      ok: binders.length === 1 && fallers.length === options.nodes - 1,
      detail: `${binders.map((r) => r.name).join(', ') || 'none'} bound it; ${fallers.map((r) => `${r.name} fell back to ${r.port.bound}`).join(', ') || 'none fell back'}`,
    },
    {
      name: 'every request answered with the right data',
      ok: served === totalRequests && rows.every((r) => r.errors === 0 && r.wrong === 0),
      detail: `${served} of ${totalRequests} answered, ${rows.reduce((a, r) => a + r.errors, 0)} errors, ${rows.reduce((a, r) => a + r.wrong, 0)} wrong` +
        (errorSamples.length > 0 ? ` (first: ${errorSamples.join(' | ')})` : ''),
    },
    {
      name: 'fleet upstream requests <= 1.1 x distinct resources, from a cold start (no warm-up)',
      ok: upstreamMain + warmupRequests <= mainLimit,
      detail: `${upstreamMain} + ${warmupRequests} before the main phase <= ${mainLimit} (distinct repositories touched: ${distinctMain})`,
    },
    ...(revisit !== undefined
      ? [{
        name: 'after idle, only free revalidations (304s)',
        ok: revisitCharged === 0 && upstreamRevisit <= revisitLimit && revisitNotModified === upstreamRevisit,
        detail: `${upstreamRevisit} upstream requests for ${revisitPlan.length} expired repositories (limit ${revisitLimit}), ${revisitNotModified} answered 304, ${revisitCharged} charged`,
      }]
      : []),
    {
      name: "the nodes' upstream counts match the fake GitHub's",
      ok: nodeUpstream === upstreamMain + upstreamRevisit,
      detail: `nodes counted ${nodeUpstream}, the fake received ${upstreamMain + upstreamRevisit} (whole run)`,
    },
    {
      name: "answers' sources agree with the caches' own counters",
      ok: sourceChecks.every((c) => c.ok),
      detail: sourceChecks.map((c) => c.text).join('; '),
    },
    {
      name: 'no token or shared secret in any file the nodes wrote',
      ok: leakedFiles.length === 0,
      detail: leakedFiles.length === 0 ? `scanned ${options.nodes} cache directories (SQLite, peer identity)` : `found in ${leakedFiles.join(', ')}`,
    },
    {
      name: 'every node closed cleanly',
      ok: rows.every((r) => r.closedCleanly),
      detail: rows.map((r, i) => `${r.name}: ${r.closedCleanly ? 'closed, exit 0' : `exit ${exits[i]!.code ?? exits[i]!.signal}`}`).join('; '),
    },
  ];

  // Last: nothing printed so far, by the demo or a node, may contain the token or the secret.
  const leakedOutput = secrets.some((s) => printed.includes(s));
  invariants.push({
    name: 'no token or shared secret in any output',
    ok: !leakedOutput,
    detail: leakedOutput ? 'found in the output' : `checked ${printed.length} characters of this process's and the nodes' stdout/stderr`,
  });

  return {
    ok: invariants.every((i) => i.ok),
    invariants,
    options: (({ json: _json, port: _port, ...rest }) => ({ ...rest, port }))(options),
    nodes: rows.map(({ main: m, revisit: _r, ...rest }) => ({ ...rest, mainP50Ms: m.p50Ms, mainP99Ms: m.p99Ms, mainMaxMs: m.maxMs })),
    totals: {
      requestsServed: served,
      mainRequests,
      revisitRequests,
      distinctResources: distinctMain,
      distinctRevisited: revisitPlan.length,
      unsharedMinimum,
      warmupRequests,
      upstream: { main: upstreamMain, revisit: upstreamRevisit, total: afterAll.requests, notModified: afterAll.notModified },
      rateLimitUnits: { spent: afterAll.charged, uncachedBaseline: served, saved: served - afterAll.charged, revisitCharged },
      fake: (({ byPath, ...rest }) => ({ ...rest, distinctPaths: Object.keys(byPath).length }))(afterAll),
    },
    timingsMs: timings,
  };
}
