import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh directory under the OS temp dir, removed by the returned cleanup. */
export function makeTempDir(prefix = 'gh-p2p-cache-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A controllable clock for TTL specs. */
export class FakeClock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** Collects warnings and errors instead of printing them. */
export class CapturingSink {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  warn(component: string, message: string): void {
    this.warnings.push(`${component}: ${message}`);
  }
  error(component: string, message: string): void {
    this.errors.push(`${component}: ${message}`);
  }
}
