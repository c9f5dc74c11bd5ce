/**
 * What the commands share: exit codes, the errors that choose them, output that is flushed before the process
 * exits, and the parsers of flag values. Nothing here opens a cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from 'commander';

/** Exit codes. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, sigint: 130, sigterm: 143 });

/** A usage error: printed as `error: <message>`, exit code 2. */
export class UsageError extends Error {}

/** The command ran and failed (its output already explains what); exit code 1. */
export class CommandFailed extends Error {}

/** Whether a command asked the process to live on after its action returns (`serve`: the server holds it). */
let stayAlive = false;

export function keepProcessAlive(): void {
  stayAlive = true;
}

export function processStaysAlive(): boolean {
  return stayAlive;
}

export function warn(message: string): void {
  process.stderr.write(`github-p2p-cache: warning: ${message}\n`);
}

export function info(message: string): void {
  process.stderr.write(`github-p2p-cache: ${message}\n`);
}

/** Writes to stdout and waits for it (so a process.exit right after loses nothing). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve) => {
    process.stdout.write(text, () => resolve());
  });
}

export function printJson(value: unknown): Promise<void> {
  return writeOut(`${JSON.stringify(value, null, process.stdout.isTTY ? 2 : undefined)}\n`);
}

/** A flag value parser for a decimal number; the range is checked where the value is used. */
export function numberArg(name: string): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) throw new InvalidArgumentError(`${name} must be a number, got ${JSON.stringify(value)}.`);
    return Number(trimmed);
  };
}

export function portArg(value: string): number {
  const n = numberArg('the port')(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError(`expected an integer from 0 to 65535, got ${JSON.stringify(value)}.`);
  return n;
}

/** A flag value parser for a repeatable flag. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The directory of the compiled CLI (dist/bin), to find the package and the examples from. */
export const CLI_DIR = path.dirname(fileURLToPath(import.meta.url));

export function packageVersion(): string {
  for (const candidate of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(CLI_DIR, candidate), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'github-p2p-cache' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next
    }
  }
  return '0.0.0';
}
