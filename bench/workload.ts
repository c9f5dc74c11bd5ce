/**
 * The bench-only pieces of the workload benchmarks: a GitHub-shaped repository body, the machine-load line
 * every section prints, and a mean. The seeded PRNG, the Zipf sampler and the worker pool are shared with
 * the specs and examples in support/workload.ts.
 */
import fs from 'node:fs';
import os from 'node:os';

/** Other work on the machine moves these numbers; say how busy it was. */
export function loadLine(): string {
  return `Load average at start: ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs.`;
}

/**
 * How this machine's idle CPUs wait, where Linux says: a guest whose cpuidle driver is `haltpoll` with
 * `guest_halt_poll_ns` 0 halts an idle vCPU at once, so every wake-up of a process that slept costs an exit to the
 * host; the kernel's default (200,000 ns) polls first. Peer hits at 1 in flight measured on one and the other differ
 * (docs/benchmarks.md, "Where the 1-in-flight gap lives"). Empty where the files are missing.
 */
export function cpuIdleLine(): string {
  const read = (file: string): string | undefined => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const driver = read('/sys/devices/system/cpu/cpuidle/current_driver');
  if (driver === undefined) return '';
  const pollNs = driver === 'haltpoll' ? read('/sys/module/haltpoll/parameters/guest_halt_poll_ns') : undefined;
  return `CPU idle driver: ${driver}${pollNs === undefined ? '' : `, guest_halt_poll_ns ${Number(pollNs).toLocaleString('en-US')}`}.`;
}

export function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Shaped like GitHub's `GET /repos/{owner}/{repo}` (the URL templates are most of its size). */
export function repoBody(owner: string, name: string, id: number): Record<string, unknown> {
  const api = `https://api.github.com/repos/${owner}/${name}`;
  const ownerApi = `https://api.github.com/users/${owner}`;
  const urls: Record<string, string> = {};
  for (const rel of ['forks', 'keys{/key_id}', 'collaborators{/collaborator}', 'teams', 'hooks', 'issue_events{/number}', 'events',
    'assignees{/user}', 'branches{/branch}', 'tags', 'blobs{/sha}', 'git_tags{/sha}', 'git_refs{/sha}', 'trees{/sha}', 'statuses/{sha}',
    'languages', 'stargazers', 'contributors', 'subscribers', 'subscription', 'commits{/sha}', 'git_commits{/sha}', 'comments{/number}',
    'issue_comment{/number}', 'contents/{+path}', 'compare/{base}...{head}', 'merges', '{archive_format}{/ref}', 'downloads',
    'issues{/number}', 'pulls{/number}', 'milestones{/number}', 'notifications{?since,all,participating}', 'labels{/name}',
    'releases{/id}', 'deployments']) {
    urls[`${rel.replace(/[{/].*$/, '').replace(/^$/, 'archive')}_url`] = `${api}/${rel}`;
  }
  return {
    id: 1_000_000 + id,
    node_id: `R_kgDO${id.toString(36).padStart(6, '0')}`,
    name,
    full_name: `${owner}/${name}`,
    private: false,
    owner: {
      login: owner, id: 42, node_id: 'MDQ6VXNlcjQy', avatar_url: 'https://avatars.githubusercontent.com/u/42?v=4', gravatar_id: '',
      url: ownerApi, html_url: `https://github.com/${owner}`, followers_url: `${ownerApi}/followers`, repos_url: `${ownerApi}/repos`,
      type: 'Organization', site_admin: false,
    },
    html_url: `https://github.com/${owner}/${name}`,
    description: `Benchmark repository number ${id}`,
    fork: false,
    url: api,
    ...urls,
    created_at: '2020-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    pushed_at: '2026-01-01T00:00:00Z',
    git_url: `git://github.com/${owner}/${name}.git`,
    clone_url: `https://github.com/${owner}/${name}.git`,
    homepage: null,
    size: 1024 + id,
    stargazers_count: (id * 7919) % 5000,
    watchers_count: (id * 7919) % 5000,
    language: 'TypeScript',
    has_issues: true,
    has_projects: true,
    has_wiki: false,
    forks_count: id % 97,
    archived: false,
    disabled: false,
    open_issues_count: id % 31,
    license: { key: 'mit', name: 'MIT License', spdx_id: 'MIT', url: 'https://api.github.com/licenses/mit', node_id: 'MDc6TGljZW5zZTEz' },
    topics: ['github', 'cache', 'benchmark'],
    visibility: 'public',
    default_branch: 'main',
    permissions: { admin: false, maintain: false, push: false, triage: false, pull: true },
  };
}

/** Fields of a schedstat file: on-CPU ns, ns runnable but waiting for a CPU, time slices. */
export function schedstat(file: string): number[] {
  return fs.readFileSync(file, 'utf8').split(' ').map(Number);
}

/**
 * On-CPU ms of the calling thread (the event loop's): `process.threadCpuUsage()` (getrusage of the thread, exact to
 * the microsecond; Node 22.19 and later), else /proc/thread-self/schedstat (which can lag by the scheduler tick the
 * thread is in), else the whole process's CPU. Helper threads (V8's concurrent marking, the checkpointer) run beside
 * the loop without stalling it, yet count in the process's CPU. `loopCpuSource` names the one in use.
 */
const [loopCpuNow, loopCpuSourceName] = ((): [() => number, string] => {
  const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
  if (typeof threadCpuUsage === 'function') {
    return [() => { const u = threadCpuUsage.call(process); return (u.user + u.system) / 1000; }, 'process.threadCpuUsage()'];
  }
  try {
    if (schedstat('/proc/thread-self/schedstat')[0]! > 0) return [() => schedstat('/proc/thread-self/schedstat')[0]! / 1e6, 'Linux schedstat'];
  } catch {
    // Not Linux: the process's CPU below.
  }
  return [() => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }, 'the whole process (no per-thread clock here)'];
})();

/** Where `longestStall`'s `loopCpu` comes from, for the tables' prose. */
export const loopCpuSource = loopCpuSourceName;

/**
 * The longest gap between two turns of the event loop over `ms` (a timer probe), `during()` called on the first
 * turn: in wall ms, in CPU ms of the whole process, and in on-CPU ms of the event loop's own thread (`loopCpu`).
 */
export async function longestStall(ms: number, during: () => void): Promise<{ wall: number; cpu: number; loopCpu: number }> {
  let wall = 0;
  let cpu = 0;
  let loopCpu = 0;
  const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  let last = performance.now();
  let lastCpu = cpuNow();
  let lastLoopCpu = loopCpuNow();
  const end = last + ms;
  let started = false;
  await new Promise<void>((resolve) => {
    const probe = () => {
      const t = performance.now();
      const c = cpuNow();
      const l = loopCpuNow();
      wall = Math.max(wall, t - last);
      cpu = Math.max(cpu, c - lastCpu);
      loopCpu = Math.max(loopCpu, l - lastLoopCpu);
      last = t;
      lastCpu = c;
      lastLoopCpu = l;
      if (!started) {
        started = true;
        during();
      }
      if (t >= end) resolve();
      else setTimeout(probe, 0);
    };
    setImmediate(probe);
  });
  return { wall, cpu, loopCpu };
}
