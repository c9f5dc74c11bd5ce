import { createRequire } from 'node:module';

/**
 * The optional `sodium-native` package (libsodium's N-API binding), loaded once per process.
 *
 * Guarantee: `loadSodium()` returns the package's exports when it is installed and loads on this platform, else
 * null; it never throws, and it asks once per process. Each caller asks for the functions it needs (`sodiumWith`: an
 * old or partial build is treated as absent by that caller) and falls back to its own path without it.
 */

/**
 * Messages below this many bytes are enciphered by libsodium, from it up by OpenSSL (node:crypto), by the modules
 * that have both (noise-crypto.ts, entry-aead.ts): libsodium has no per-call setup, OpenSSL's ChaCha20 is the faster
 * per byte on long messages (the figures in noise-crypto.ts).
 */
export const SODIUM_BELOW = 16 * 1024;

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

/**
 * sodium-native's exports when it loads and has every one of `names` (functions, or numbers for its constants), else
 * null: how a module asks for the part of libsodium it calls.
 */
export function sodiumWith<T>(...names: string[]): T | null {
  const lib = loadSodium();
  return lib !== null && names.every((name) => typeof lib[name] === 'function' || typeof lib[name] === 'number') ? lib as unknown as T : null;
}

/** Which implementation a module with a libsodium path and a fallback runs: 'auto' (its own rule), or one forced. */
export type Implementation = 'auto' | 'sodium' | 'node';

/** A module's implementation choice, 'auto' unless tests or benchmarks force one (production never does). */
export class ImplementationChoice {
  #current: Implementation = 'auto';
  readonly #sodiumLoads: () => boolean;

  constructor(sodiumLoads: () => boolean) {
    this.#sodiumLoads = sodiumLoads;
  }

  get current(): Implementation {
    return this.#current;
  }

  /** Forces `implementation` ('sodium' throws where sodium-native does not load); returns the previous one. */
  use(implementation: Implementation): Implementation {
    if (implementation === 'sodium' && !this.#sodiumLoads()) throw new Error('sodium-native does not load here');
    const previous = this.#current;
    this.#current = implementation;
    return previous;
  }
}
