import { randomBytes } from 'node:crypto';
import type { AbortOptions, ConnectionProtector, Logger, MessageStream, MultiaddrConnection } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils';
import { sodiumWith } from './sodium.js';

/**
 * The fleet's private network: libp2p's pre-shared-key protocol (`@libp2p/pnet`: a 24-byte nonce each way, then
 * XSalsa20 over the whole connection), with the same bytes on the wire as plain pnet, so members with and
 * without this module talk to each other.
 *
 * Two ciphers, chosen once per process (`pnetCipher()`):
 * - `native` (default when the optional `sodium-native` package loads): libsodium's `crypto_stream_xor`, 4.5x
 *   faster than pnet's WebAssembly cipher on a 4.9 KB frame (2.1 µs against 9.5-14.7 µs; docs/p2p-protocol.md,
 *   "What pnet costs"), with per-connection state outside any shared memory. The nonce exchange is pnet's own
 *   (`protect()` of @libp2p/pnet 3.0.x, same timeout, same framing).
 * - `wasm` (fallback, or forced with `{ cipher: 'wasm' }`): pnet as shipped, its `xsalsa20` ciphers kept inside
 *   the bounds that make them safe in a long-running process. pnet 3.0.x XORs with a WebAssembly module whose
 *   one linear memory is shared by every cipher of the process (2 per connection). An `update()` longer than the
 *   free room (about 640 KiB at first; pnet hands it its whole queued write buffer after backpressure) grows that
 *   memory, and every other cipher keeps a view of the old, detached buffer: its next `update()` grows it again,
 *   until the 1000-page maximum makes `Memory.grow` throw inside the socket's listener, an uncaught exception
 *   that ends the process. pnet also never calls `finalize()`. See "Known upstream issues" there.
 *
 * Guarantees:
 * - Either cipher produces pnet's bytes: a stock `preSharedKey` node on the other end reads and writes them.
 * - The wasm cipher never sees more than CIPHER_CHUNK bytes in one `update()`, so its shared memory never grows;
 *   the native cipher has no shared memory to grow.
 * - Each connection's two ciphers are finalized when the connection closes (the keystream state is wiped, wasm
 *   slots go back to their pool); bytes that arrive or are sent after that are dropped, never ciphered.
 * - A bad pre-shared key fails at construction with a clear error; a nonce that does not arrive within the
 *   timeout (1 s by default) fails the connection, as in pnet.
 * - If pnet's connection no longer has the shape the wasm guard relies on (a future version), protecting fails
 *   loudly at the first connection instead of running unguarded.
 */

/** Largest input one wasm cipher call gets: far below the ~640 KiB the xsalsa20 memory starts with. */
export const CIPHER_CHUNK = 64 * 1024;

/** pnet's nonce length (key-generator.js of @libp2p/pnet); its key is 32 bytes, 64 hex digits in swarm.key. */
const NONCE_LENGTH = 24;
const DEFAULT_TIMEOUT_MS = 1000;

export type PnetCipher = 'native' | 'wasm';

export interface FleetPrivateNetworkOptions {
  /**
   * Which XSalsa20 to use: `auto` (default) takes `native` when the optional `sodium-native` package loads and
   * `wasm` otherwise; `native` throws at construction when it does not load; `wasm` is pnet's own cipher, guarded.
   */
  readonly cipher?: 'auto' | PnetCipher;
  /** How long the nonce exchange may take when libp2p gives no signal, in ms. Default 1000 (pnet's). */
  readonly timeoutMs?: number;
}

/** The part of sodium-native this module calls. */
interface Sodium {
  readonly crypto_stream_xor_STATEBYTES: number;
  crypto_stream_xor_init(state: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  crypto_stream_xor_update(state: Uint8Array, output: Uint8Array, input: Uint8Array): void;
  crypto_stream_xor_final(state: Uint8Array): void;
}

/** sodium-native when it is installed, loads on this platform and has the stream cipher, else null. */
function sodium(): Sodium | null {
  return sodiumWith<Sodium>('crypto_stream_xor_update');
}

/** The cipher `fleetPrivateNetwork` uses on this machine with `cipher: 'auto'`. */
export function pnetCipher(): PnetCipher {
  return sodium() === null ? 'wasm' : 'native';
}

export class PrivateNetworkError extends Error {
  override readonly name = 'PrivateNetworkError';
}

/** The 32-byte key of a swarm.key text (`/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>`), as pnet's decodeV1PSK reads it. */
export function decodeSwarmKey(swarmKey: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(swarmKey).split(/\r\n|\r|\n/);
  const hex = lines[2] ?? '';
  if (lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new PrivateNetworkError('the private-network key is not a swarm.key text with a 32-byte base16 key');
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

// ---- native: the protocol of @libp2p/pnet 3.0.x with libsodium's XSalsa20 ----

/** A Uint8ArrayList as seen here: its chunks and their total length. */
type Chunks = Uint8Array | (Iterable<Uint8Array> & { readonly byteLength: number });

/** One direction's keystream in libsodium; wiped by `finalize()`, after which it ciphers nothing. */
class NativeKeystream {
  readonly #sodium: Sodium;
  readonly #state: Uint8Array;
  #finalized = false;

  constructor(lib: Sodium, nonce: Uint8Array, key: Uint8Array) {
    this.#sodium = lib;
    this.#state = Buffer.alloc(lib.crypto_stream_xor_STATEBYTES);
    lib.crypto_stream_xor_init(this.#state, nonce, key);
  }

  get finalized(): boolean {
    return this.#finalized;
  }

  /** XORs every chunk of `data` into one new buffer (a list is ciphered piece by piece, never concatenated first). */
  update(data: Chunks): Uint8Array {
    const output = Buffer.allocUnsafe(data.byteLength);
    if (data instanceof Uint8Array) {
      this.#sodium.crypto_stream_xor_update(this.#state, output, data);
      return output;
    }
    let at = 0;
    for (const chunk of data) {
      this.#sodium.crypto_stream_xor_update(this.#state, output.subarray(at, at + chunk.byteLength), chunk);
      at += chunk.byteLength;
    }
    return output;
  }

  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#sodium.crypto_stream_xor_final(this.#state);
  }
}

interface NativeBoxInit {
  readonly maConn: MultiaddrConnection;
  readonly inbound: NativeKeystream;
  readonly outbound: NativeKeystream;
  readonly log: Logger;
}

/** pnet's BoxMessageStream (crypto.js of @libp2p/pnet 3.0.x) over native keystreams, finalized on close. */
class NativeBoxStream extends AbstractMultiaddrConnection {
  readonly #maConn: MultiaddrConnection;
  readonly #inbound: NativeKeystream;
  readonly #outbound: NativeKeystream;

  constructor(init: NativeBoxInit) {
    super({ log: init.log, remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction });
    this.#maConn = init.maConn;
    this.#inbound = init.inbound;
    this.#outbound = init.outbound;
    this.addEventListener('close', () => this.#finalize(), { once: true });
    this.#maConn.addEventListener('message', (evt) => {
      // After close the keystream is gone; such bytes have no reader and are dropped.
      if (this.#inbound.finalized) return;
      this.onData(this.#inbound.update(evt.data));
    });
    this.#maConn.addEventListener('drain', () => this.onMuxerDrain());
    this.#maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error);
        else this.onRemoteReset();
      } else {
        this.onTransportClosed();
      }
    });
    // A connection that closed while it was being protected never fires 'close' again.
    if (this.#maConn.status === 'closed') this.#finalize();
  }

  #finalize(): void {
    this.#inbound.finalize();
    this.#outbound.finalize();
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.#maConn.close(options);
  }

  sendData(data: Chunks): { sentBytes: number; canSendMore: boolean } {
    if (this.#outbound.finalized) return { sentBytes: data.byteLength, canSendMore: true };
    return { sentBytes: data.byteLength, canSendMore: this.#maConn.send(this.#outbound.update(data)) };
  }

  sendReset(err: Error): void {
    this.#maConn.abort(err);
  }

  sendPause(): void {
    this.#maConn.pause();
  }

  sendResume(): void {
    this.#maConn.resume();
  }
}

class NativeProtector implements ConnectionProtector {
  readonly #sodium: Sodium;
  readonly #key: Uint8Array;
  readonly #timeoutMs: number;

  constructor(lib: Sodium, key: Uint8Array, timeoutMs: number) {
    this.#sodium = lib;
    this.#key = key;
    this.#timeoutMs = timeoutMs;
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const log = connection.log.newScope('pnet');
    log('protecting the connection (native xsalsa20)');
    const localNonce = randomBytes(NONCE_LENGTH);
    const opts = options ?? { signal: AbortSignal.timeout(this.#timeoutMs) };
    const bytes = byteStream(connection);
    const [remote] = await Promise.all([
      bytes.read({ bytes: NONCE_LENGTH, ...opts }),
      bytes.write(localNonce, opts),
    ]);
    const remoteNonce = remote.subarray();
    log('exchanged nonces');
    return new NativeBoxStream({
      maConn: bytes.unwrap() as MultiaddrConnection,
      inbound: new NativeKeystream(this.#sodium, remoteNonce, this.#key),
      outbound: new NativeKeystream(this.#sodium, localNonce, this.#key),
      log,
    });
  }
}

// ---- wasm: pnet as shipped, its xsalsa20 bounded and finalized ----

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
      const changed = new PrivateNetworkError('@libp2p/pnet changed shape: its ciphers cannot be bounded (see src/p2p/private-network.ts)');
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

/**
 * The fleet's connection protector for a swarm.key text (`swarmKeyOf`): pnet's protocol, with libsodium's cipher
 * when it loads and pnet's own cipher, guarded, otherwise (see the header).
 */
export function fleetPrivateNetwork(swarmKey: Uint8Array, options: FleetPrivateNetworkOptions = {}): () => ConnectionProtector {
  const key = decodeSwarmKey(swarmKey);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new PrivateNetworkError(`timeoutMs must be a positive integer of milliseconds, got ${String(options.timeoutMs)}`);
  }
  const wanted = options.cipher ?? 'auto';
  if (wanted !== 'auto' && wanted !== 'native' && wanted !== 'wasm') {
    throw new PrivateNetworkError(`cipher must be 'auto', 'native' or 'wasm', got ${String(wanted)}`);
  }
  const lib = wanted === 'wasm' ? null : sodium();
  if (wanted === 'native' && lib === null) {
    throw new PrivateNetworkError("cipher 'native' needs the optional dependency sodium-native, which did not load here");
  }
  if (lib !== null) return () => new NativeProtector(lib, key, timeoutMs);
  const make = preSharedKey({ psk: swarmKey, timeout: timeoutMs });
  return () => new GuardedProtector(make());
}
