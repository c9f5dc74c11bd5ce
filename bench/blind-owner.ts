/**
 * `blind-owner`: a cold wave where a third of the keys' owner never holds the token. Three members, each a
 * process (support/fleet-node.ts): the owner O never uses the token; A and C request the same 120 distinct
 * resources at once (16 in flight each, 20 ms upstream), none of them seen before. Reported: upstream requests
 * over distinct keys (1.00 = each key fetched once by the whole fleet), the keys O owned blind (leases), and the
 * wave's wall time (the slower asker's).
 *
 * Each variant runs with the members' CPU quiet and contended: one busy sibling (`node -e 'for(;;){}'`) per member,
 * started before the members and killed after the wave. Rounds interleave the variants.
 *
 * "Before" is a build of another tree (the main branch before blind owners): set BENCH_BEFORE_DIST to its
 * `dist/` (e.g. `git archive main | tar -x -C /tmp/before`, link node_modules, `npx tsc -p /tmp/before`); without
 * it only this build's rows are measured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FakeGitHub } from '../support/fake-github/index.js';
import type { FleetProcess as FleetProcessType } from '../support/fleet-process.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { fmt, machineLine, median, table, writeSection } from './report.js';
import { loadLine } from './workload.js';

const TOKEN = `test_${'blindOwnerBench'.padEnd(36, 'B')}`;
const SECRET = 'blind-owner-bench-shared-secret-0123';
const KEYS = 120;
const ROUNDS = 3;
const IN_FLIGHT = 16;
/** p2p.startWaitMs of a member with bootstrap peers (the default). */
const START_WAIT_MS = 5_000;

type FleetProcessClass = typeof FleetProcessType;
interface Build { label: string; FleetProcess: FleetProcessClass }
interface Sample { upstream: number; leases: number; timeouts: number; wallMs: number }

async function builds(): Promise<Build[]> {
  const own = (await import('../support/fleet-process.js')).FleetProcess;
  const list: Build[] = [];
  const before = process.env.BENCH_BEFORE_DIST;
  if (before !== undefined && before !== '') {
    const url = pathToFileURL(path.join(path.resolve(before), 'support', 'fleet-process.js')).href;
    list.push({ label: 'before (grace, then not-held)', FleetProcess: (await import(url) as { FleetProcess: FleetProcessClass }).FleetProcess });
  }
  list.push({ label: 'after (blind owner, leases)', FleetProcess: own });
  return list;
}

function busySiblings(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
}

async function sample(build: Build, contended: boolean, temp: TempDirs): Promise<Sample> {
  const github = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: 20 });
  for (let i = 0; i < KEYS; i++) github.setResource(`/repos/octo/r${i}`, { i });
  const busy = contended ? busySiblings(3) : [];
  const members: FleetProcessType[] = [];
  try {
    const env = (bootstrap: string[]): Record<string, string> => ({
      CACHE_DIR: temp.make(), GITHUB_API_URL: github.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SECRET,
      CACHE_BOOTSTRAP_PEERS: bootstrap.join(','), FLEET_NODE_LISTEN_HOST: '127.0.0.1',
    });
    const owner = new build.FleetProcess(env([]));
    members.push(owner);
    const ownerAddr = (await owner.ready).p2p.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    const a = new build.FleetProcess(env([ownerAddr]));
    members.push(a);
    const aAddr = (await a.ready).p2p.listenAddrs.find((x) => x.includes('/127.0.0.1/'))!;
    const c = new build.FleetProcess(env([ownerAddr, aAddr]));
    members.push(c);
    await c.ready;
    const created = Date.now();
    await waitFor(async () => (await Promise.all(members.map((m) => m.stats()))).every((s) => s.p2p.peers.length >= 2), 'protocol sessions', 120_000, 50);
    // A member's reads use the fleet once it is meshed or its start-up wait (p2p.startWaitMs, 5 s for a member with
    // bootstrap peers) is over (a baseline build notices it by a 20 ms poll, this one by a session event): let both
    // pass, so the wave measures ownership, not start-up.
    await new Promise((resolve) => setTimeout(resolve, Math.max(1_000, created + START_WAIT_MS + 1_000 - Date.now())));
    github.resetStats();
    const routes = Array.from({ length: KEYS }, (_, i) => `GET /repos/octo/r${i}`);
    const runs = await Promise.all([a, c].map((m) => m.run(routes, TOKEN, IN_FLIGHT)));
    const stats = await Promise.all(members.map((m) => m.stats()));
    return {
      upstream: github.stats.requests,
      leases: (stats[0]!.p2p as { leasesGranted?: number }).leasesGranted ?? 0,
      timeouts: stats.reduce((n, s) => n + s.p2p.timeouts, 0),
      wallMs: Math.max(...runs.map((r) => r.wallNs / 1e6)),
    };
  } finally {
    for (const child of busy) child.kill('SIGKILL');
    await Promise.all(members.map((m) => m.stop()));
    await github.close();
  }
}

export async function benchBlindOwner(): Promise<string> {
  const load = loadLine();
  const temp = new TempDirs('blind-owner-bench');
  const variants = (await builds()).flatMap((build) => [false, true].map((contended) => ({ build, contended })));
  const samples = new Map(variants.map((v) => [v, [] as Sample[]]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < variants.length; k++) {
        const variant = variants[(round + k) % variants.length]!;
        samples.get(variant)!.push(await sample(variant.build, variant.contended, temp));
      }
    }
  } finally {
    temp.removeAll();
  }
  const rows = variants.map((v) => {
    const s = samples.get(v)!;
    return [
      v.build.label, v.contended ? 'a busy sibling per member' : 'quiet',
      fmt(median(s.map((x) => x.upstream / KEYS)), 2), s.map((x) => x.upstream).join(', '),
      fmt(median(s.map((x) => x.leases)), 0), fmt(median(s.map((x) => x.timeouts)), 0),
      fmt(median(s.map((x) => x.wallMs)) / 1000, 2),
    ];
  });
  const markdown = [
    '## A cold wave whose owner never holds the token (blind owners)',
    '',
    `Three member processes; the owner of about a third of the keys never uses the token; the other two request the same ${KEYS} new resources at once (${IN_FLIGHT} in flight each, 20 ms upstream). Upstream over distinct keys: 1.00 is one fetch per key for the fleet. ${ROUNDS} rounds, variants interleaved. \`npm run bench -- blind-owner\` (bench/blind-owner.ts).`,
    '',
    table(['build', 'CPU', 'upstream / distinct keys (median)', 'upstream requests per round', 'leases by the owner (median)', 'peer timeouts (median)', 'wave wall time, s (median)'], rows),
    '',
    machineLine(),
    load,
  ].join('\n');
  writeSection('blind-owner', markdown);
  return markdown;
}
