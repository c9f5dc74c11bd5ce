/**
 * The shared pieces of the workload benchmarks: a seeded PRNG, a Zipf sampler, a worker pool, a GitHub-shaped
 * repository body, and the machine-load line every section prints. One copy, used by every bench.
 */
import os from 'node:os';

/** `concurrency` async workers pulling items from one list in order until it is empty. */
export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** A small seeded PRNG (mulberry32): the same seed gives the same workload on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ranks 0..n-1 with P(k) ∝ 1/(k+1)^s, by inverse CDF. */
export function zipfSampler(n: number, s: number, random: () => number): () => number {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf.push((sum += 1 / k ** s));
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Other work on the machine moves these numbers; say how busy it was. */
export function loadLine(): string {
  return `Load average at start: ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs.`;
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
