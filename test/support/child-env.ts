/** The environment of a child process: this one's, without anything that would configure the cache behind a spec's back. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(CACHE_|GITHUB_|GH_TOKEN$|DEBUG$)/.test(name)) env[name] = value;
  }
  return { ...env, ...extra };
}
