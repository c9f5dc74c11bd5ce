import type { AbortOptions, ConnectionProtector, MessageStream } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';

/**
 * The fleet's private network: `@libp2p/pnet` (pre-shared key, XSalsa20 over the whole connection), with its
 * cipher kept inside the bounds that make it safe in a long-running process. Same bytes on the wire as plain
 * pnet: members with and without this guard talk to each other.
 *
 * Why: pnet 3.0.x XORs with the `xsalsa20` package, a WebAssembly module whose one linear memory is shared by
 * every cipher of the process (2 per connection). An `update()` longer than the free room (about 640 KiB at
 * first; pnet hands it its whole queued write buffer at once after backpressure) grows that memory, and every
 * other cipher keeps a view of the old, detached buffer: its next `update()`, however small, grows the memory
 * again. Each switch between ciphers then adds a page, until the 1000-page maximum makes `Memory.grow` throw a
 * RangeError, which pnet raises inside the socket's event listener: an uncaught exception that ends the process.
 * pnet also never calls `finalize()`, so each connection keeps two 64-byte slots of that memory for good.
 * See docs/p2p-protocol.md, "Known upstream issues".
 *
 * Guarantees:
 * - The cipher never sees more than CIPHER_CHUNK bytes in one `update()`, so the shared memory never grows:
 *   large bodies, backpressure and any number of connections leave it at its initial size.
 * - Each connection's two ciphers are finalized when the connection closes (their slots go back to the pool, the
 *   key is wiped); bytes that arrive after that are dropped, never deciphered.
 * - If pnet's connection no longer has the shape this relies on (a future version), protecting fails loudly at
 *   the first connection instead of running unguarded; upgrading pnet to a release with the upstream fix
 *   (libp2p/js-libp2p#3585) makes this module removable.
 */

/** Largest input one cipher call gets: far below the ~640 KiB the xsalsa20 memory starts with. */
export const CIPHER_CHUNK = 64 * 1024;

interface XorCipher {
  update(input: Uint8Array, output?: Uint8Array): Uint8Array;
  finalize(): void;
}

/** The fields of pnet 3.0.x's BoxMessageStream this guard replaces. */
interface BoxedStream extends MessageStream {
  inboundXor: XorCipher;
  outboundXor: XorCipher;
}

function isCipher(value: unknown): value is XorCipher {
  return typeof value === 'object' && value !== null
    && typeof (value as XorCipher).update === 'function' && typeof (value as XorCipher).finalize === 'function';
}

function isBoxed(stream: MessageStream): stream is BoxedStream {
  const fields = stream as Partial<BoxedStream>;
  return isCipher(fields.inboundXor) && isCipher(fields.outboundXor);
}

/** One direction of a connection's keystream, fed to the cipher in CIPHER_CHUNK pieces; finalized once. */
class ChunkedCipher implements XorCipher {
  readonly #cipher: XorCipher;
  #finalized = false;

  constructor(cipher: XorCipher) {
    this.#cipher = cipher;
  }

  update(input: Uint8Array, output: Uint8Array = new Uint8Array(input.byteLength)): Uint8Array {
    // After close the keystream is gone; such bytes have no reader (the stream is closed) and are dropped.
    if (this.#finalized) return output;
    for (let at = 0; at < input.byteLength; at += CIPHER_CHUNK) {
      const end = Math.min(at + CIPHER_CHUNK, input.byteLength);
      this.#cipher.update(input.subarray(at, end), output.subarray(at, end));
    }
    return output;
  }

  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#cipher.finalize();
  }
}

class GuardedProtector implements ConnectionProtector {
  readonly #inner: ConnectionProtector;

  constructor(inner: ConnectionProtector) {
    this.#inner = inner;
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const boxed = await this.#inner.protect(connection, options);
    if (!isBoxed(boxed)) {
      const changed = new Error('@libp2p/pnet changed shape: its ciphers cannot be bounded (see src/p2p/private-network.ts)');
      boxed.abort(changed);
      throw changed;
    }
    const inbound = new ChunkedCipher(boxed.inboundXor);
    const outbound = new ChunkedCipher(boxed.outboundXor);
    boxed.inboundXor = inbound;
    boxed.outboundXor = outbound;
    const finalize = (): void => {
      inbound.finalize();
      outbound.finalize();
    };
    // A connection that closed while it was being protected never fires 'close' again: finalize at once.
    if (boxed.status === 'closed') finalize();
    else boxed.addEventListener('close', finalize, { once: true });
    return boxed;
  }
}

/** `preSharedKey({ psk })` of `@libp2p/pnet`, with its ciphers bounded and finalized (see the header). */
export function fleetPrivateNetwork(psk: Uint8Array): () => ConnectionProtector {
  const make = preSharedKey({ psk });
  return () => new GuardedProtector(make());
}
