/**
 * `demo [args...]`: runs the offline demo (dist/examples/p2p-demo.js, else the concurrent-server example) as a
 * child process with the arguments passed through, and exits with the child's exit code (130/143 if a
 * SIGINT/SIGTERM ended it, 1 if none is found or it cannot start). Signals sent to this process reach the child.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CLI_DIR, CommandFailed, EXIT, info } from '../cli-support.js';

async function demo(args: string[]): Promise<void> {
  const candidates = [path.join(CLI_DIR, '../examples/p2p-demo.js'), path.join(CLI_DIR, '../examples/concurrent-server.js')];
  const script = candidates.find((file) => fs.existsSync(file));
  if (script === undefined) throw new CommandFailed(`no demo found (looked for ${candidates.join(', ')}); run \`npm run build\` first`);
  info(`running ${path.relative(process.cwd(), script) || script}`);
  const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' });
  // The terminal's Ctrl-C reaches the child too; a kill aimed at this process is passed on.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal === 'SIGINT' ? EXIT.sigint : signal === 'SIGTERM' ? EXIT.sigterm : EXIT.failed)));
    child.once('error', (err) => {
      info(`cannot run the demo: ${err.message}`);
      resolve(EXIT.failed);
    });
  });
  process.exit(code);
}

/** Adds `demo` to `program`. */
export function registerDemo(program: Command): void {
  program.command('demo')
    .description('run the offline demo (dist/examples/p2p-demo.js, or the concurrent-server example when it is absent)')
    .argument('[args...]', 'arguments passed to the demo')
    .allowUnknownOption()
    .action(async (args: string[]) => demo(args));
}
