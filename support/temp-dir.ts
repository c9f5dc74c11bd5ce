/**
 * Throwaway directories under the OS temp dir. Guarantees each is new and empty, and that its cleanup
 * removes it with everything inside, whether or not it still exists.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh directory under the OS temp dir, removed by the returned cleanup. */
export function makeTempDir(prefix = 'gh-p2p-cache-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Many temp dirs with one prefix, all removed by {@link TempDirs.removeAll}. */
export class TempDirs {
  readonly #prefix: string;
  readonly #cleanups: Array<() => void> = [];

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  make(): string {
    const { dir, cleanup } = makeTempDir(this.#prefix);
    this.#cleanups.push(cleanup);
    return dir;
  }

  removeAll(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }
}
