/**
 * The fake GitHub as a process of its own: `node dist/support/fake-github/standalone.js [config.json]`, or
 * with the config as JSON in the `FAKE_GITHUB_CONFIG` environment variable. It serves a
 * {@link FakeGitHubConfig}, prints one JSON line `{"url": ...}` (also sent over IPC when there is a channel),
 * and closes cleanly on SIGTERM, SIGINT or when its parent disconnects.
 */
import { readFileSync } from 'node:fs';
import { FakeGitHub, type FakeGitHubConfig } from './index.js';

async function main(): Promise<void> {
  const source = process.argv[2] !== undefined ? readFileSync(process.argv[2], 'utf8') : process.env['FAKE_GITHUB_CONFIG'] ?? '{}';
  const config = JSON.parse(source) as FakeGitHubConfig;
  const fake = await FakeGitHub.start(config);
  for (const { path, body, ...opts } of config.resources ?? []) fake.setResource(path, body, opts);
  for (const { path, items, ...opts } of config.collections ?? []) fake.setCollection(path, items, opts);
  const stop = (): void => {
    void fake.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.once('disconnect', stop);
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  process.send?.({ url: fake.url });
}

main().catch((error: unknown) => {
  process.stderr.write(`fake-github: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
