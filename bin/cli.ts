#!/usr/bin/env node
/**
 * The `github-p2p-cache` command: `serve` (the caching proxy, what `npm start` runs), `get <route>` (one call
 * through the cache), `stats`, `peers` and `demo`, one file each under bin/commands. The cache flags come from
 * the options table (src/options-table.ts, declared by bin/cache-flags.ts); a flag given on the command line
 * wins over its variable. Exit codes: 0 done, 1 failed, 2 bad usage or an invalid option, 130/143 a second
 * SIGINT/SIGTERM during shutdown.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { CacheConfigError, CacheCreationError, UpstreamError } from '../src/errors.js';
import { configMessage, environmentHelp } from './cache-flags.js';
import { EXIT, packageVersion, processStaysAlive, UsageError } from './cli-support.js';
import { registerDemo } from './commands/demo.js';
import { registerGet } from './commands/get.js';
import { registerPeers } from './commands/peers.js';
import { registerServe } from './commands/serve.js';
import { registerStats } from './commands/stats.js';

export { EXIT } from './cli-support.js';
export { cacheOptionsFromFlags } from './cache-flags.js';

/** The command-line program (exported for specs; `main` runs it). */
export function createProgram(): Command {
  const program = new Command();
  program
    .name('github-p2p-cache')
    .description('One process-wide cache of GitHub API responses, shared with peers over libp2p, as a local HTTP proxy and a CLI.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', `
Environment variables (a flag given on the command line wins):
${environmentHelp()}
  CACHE_PROXY_HOST, CACHE_PROXY_PORT   where \`serve\` listens
  GITHUB_TOKEN             token used by \`get\` (or the variable named by --token-env); never printed

Exit codes: 0 ok, 1 failed, 2 bad usage or invalid option, 130/143 forced by a second SIGINT/SIGTERM.`);

  // Subcommands are made with program.command() so they inherit exitOverride and the help-after-error setting.
  registerServe(program);
  registerGet(program);
  registerStats(program);
  registerPeers(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and exits the process. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    // One-shot commands exit now rather than wait for idle keep-alive sockets and libp2p timers to lapse.
    if (!processStaysAlive()) process.exit(EXIT.ok);
  } catch (caught) {
    // A one-shot command does not try again: a creation that failed on a bad option is that option's error.
    const err = caught instanceof CacheCreationError && caught.cause instanceof CacheConfigError ? caught.cause : caught;
    if (err instanceof CommanderError) {
      // commander printed the message or the help already.
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof CacheConfigError) {
      process.stderr.write(`error: ${configMessage(err)}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof UpstreamError && err.status === 0) {
      process.stderr.write(`error: GitHub API unreachable: ${err.upstreamMessage} (${err.message})\n`);
      process.exit(EXIT.failed);
    }
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failed);
  }
}

/** Whether this module is the program being run (also through npm's bin symlink), not imported. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) void main();
