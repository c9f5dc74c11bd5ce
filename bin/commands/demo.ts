/**
 * `demo [args...]`: runs the offline demo (dist/examples/p2p-demo.js, else the concurrent-server example) as a
 * child process with the arguments passed through, and exits with the child's exit code (130/143 if a
 * SIGINT/SIGTERM ended it, 1 if none is found or it cannot start). Signals sent to this process reach the child.
 *
 * The examples are not part of the published package: in an installed package the command is hidden from the
 * help and, if run anyway, says that the demo runs from a clone of the repository.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CLI_DIR, CommandFailed, EXIT, info } from '../cli-support.js';

const CANDIDATES = [path.join(CLI_DIR, '../examples/p2p-demo.js'), path.join(CLI_DIR, '../examples/concurrent-server.js')];
const SOURCE_CHECKOUT = fs.existsSync(path.join(CLI_DIR, '../../examples'));

async function demo(args: string[]): Promise<void> {
  const script = CANDIDATES.find((file) => fs.existsSync(file));
  if (script === undefined) {
    if (!SOURCE_CHECKOUT) {
      throw new CommandFailed('the demo is not part of the installed package: it runs from a clone of the repository ' +
        '(there: npm ci && npm run demo)');
    }
    throw new CommandFailed(`no demo found (looked for ${CANDIDATES.join(', ')}); run \`npm run build\` first`);
  }
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
  program.command('demo', { hidden: !SOURCE_CHECKOUT })
    .description('run the offline demo (dist/examples/p2p-demo.js, or the concurrent-server example when it is absent)')
    .argument('[args...]', 'arguments passed to the demo')
    .allowUnknownOption()
    .action(async (args: string[]) => demo(args));
}
