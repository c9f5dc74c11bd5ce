import { createRequire } from 'node:module';

/**
 * The optional `sodium-native` package (libsodium's N-API binding), loaded once per process.
 *
 * Guarantee: `loadSodium()` returns the package's exports when it is installed and loads on this platform, else
 * null; it never throws, and it asks once per process. Each caller checks the functions it needs are there (an
 * old or partial build is treated as absent by that caller) and falls back to its own pure-JavaScript path.
 */

let loaded: Record<string, unknown> | null | undefined;

export function loadSodium(): Record<string, unknown> | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('sodium-native') as Record<string, unknown>;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}
