import type { Stream } from '@libp2p/interface';
import type { Logger } from '../log.js';
import { varintLength } from './cbor.js';
import { decodeFrame, encodeLengthPrefixedFrame, WireFormatError, type Frame } from './wire.js';

/**
 * Frames over one libp2p stream: length-prefixed CBOR frames in, the same out.
 *
 * Guarantee: every frame handed to `onFrame` passed the strict validator (wire.ts); `onClose` is called exactly
 * once, when the stream ends for any reason, and says whether the peer broke the framing: a frame above
 * `maxFrameBytes` (refused from its length prefix, before its bytes are buffered), a length prefix longer than
 * such a length needs (an unterminated varint), a frame that is not a valid frame, or a frame cut short by the
 * peer closing its end of the stream ('truncated'). A violation closes this stream only (never the connection or
 * the node): the peer's other streams and every other peer are unaffected. A peer that does not read what we
 * send cannot make us buffer without bound: past `maxFrameBytes * 4` of unsent bytes the stream is closed.
 *
 * Framing: each frame is preceded by its length as an unsigned varint (what `lpStream` of @libp2p/utils reads and
 * writes). Frames are cut straight out of the chunks the stream delivers, in the stream's own 'message' event:
 * a frame that lies within one chunk is decoded in place (no copy, no await), and `onFrame` runs before the
 * event returns. At most one partial frame is ever held, in one buffer, never more than its announced length
 * (checked against `maxFrameBytes` as soon as its prefix is complete) nor more than twice what arrived, however
 * the peer chunks it (150,000 one-byte muxer frames hold about 150 KB, not a list of 150,000 views). Frames are
 * delivered in order and none is lost: what arrives while reading is briefly paused (see deferWindowUpdate) is
 * delivered when it resumes.
 *
 * Work per turn is bounded: a message of more than READ_SLICE_BYTES is read READ_SLICE_BYTES at a time, one slice
 * per macrotask, with reading paused until the last slice is read (so the muxer's flow control still bounds what
 * waits). The frames sent in answer to a slice (an owner's entries, or an asker's next gets) leave before the next
 * slice is read. Why: a muxer message holds whatever arrived while reading was paused, up to a whole receive window
 * (256 KiB: about 54 repository entries). Read at once, an asker settled all of its entries before any follow-up get left, and an
 * owner answered all of those gets in one burst: the two ends took turns, each idle while the other worked
 * (docs/benchmarks.md, "Peer hits under concurrency"). The receive window stays yamux's 256 KiB: a wider one
 * (1 MiB, granted with a window update) added little beside the slices and let an owner put four times as many
 * bytes of a large entry ahead of a small answer (docs/p2p-protocol.md, "Transport cost", item 4).
 *
 * Window updates (yamux): @chainsafe/libp2p-yamux 8 sends the peer a window update after every data frame it
 * delivers, however little of the window that frame used: one more encrypted muxer frame and one more write per
 * frame received, so a peer hit cost four writes where two carry its bytes. batchWindowUpdates (below) makes this
 * stream's window updates wait until half the window is consumed, as hashicorp/yamux (Go) and the yamux spec's
 * reference implementation do; flow control still holds (the peer never has less than half a window of credit
 * when its update leaves). docs/benchmarks.md, "Peer-hit transport", measures it; docs/p2p-protocol.md,
 * "Transport cost", has the upstream proposal.
 *
 * Size: one unit because reading, writing and the muxer's window (pausing, batched updates) act on the same
 * stream state and events; split, each half would have to reach into the other's.
 *
 * Why hand-written rather than @libp2p/utils' LengthPrefixedDecoder: docs/benchmarks.md, section "P2P codecs",
 * framing rows "receive entry, one frame a chunk" and "receive get, one frame a chunk" (the library 5.9x and 7x
 * slower: it reads the next length prefix from an emptied buffer and throws and catches a RangeError at the end
 * of every chunk) and "receive 16 gets in one chunk" (1.7x). bench/p2p-codec.ts measures it.
 */

/**
 * How a peer broke the framing: 'oversize' (length prefix above the limit or unreadable), 'frame' (invalid frame)
 * or 'truncated' (it closed its end of the stream in the middle of a frame).
 */
export type FrameViolation = 'oversize' | 'frame' | 'truncated';

export interface FrameChannelOptions {
  /** Largest frame accepted, in bytes (`p2p.maxFrameBytes`). */
  maxFrameBytes: number;
  /** Called for each valid frame, in arrival order. */
  onFrame(frame: Frame): void;
  /** Called once when the stream has ended; `violation` is set when the peer broke the framing. */
  onClose(violation: FrameViolation | undefined, error: Error | undefined): void;
  /** This component's logger. */
  logger: Logger;
}

/** An unterminated or overlong length prefix, or a length above maxFrameBytes. */
class FrameLengthError extends Error {
  override name = 'FrameLengthError';
}

/** The chunks of a stream message (a Uint8Array, or a Uint8ArrayList, which iterates over its chunks). */
type Chunks = Uint8Array | Iterable<Uint8Array>;

export class FrameChannel {
  readonly stream: Stream;
  readonly #options: FrameChannelOptions;
  readonly #maxLengthLength: number;
  #ended = false;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /**
   * The start of a frame whose bytes have not all arrived (its prefix included), in its first #partialBytes bytes:
   * one buffer, grown by doubling up to the frame's announced size, whatever the chunking.
   */
  #partial: Uint8Array = EMPTY;
  #partialBytes = 0;
  /** Bytes the partial frame needs in all (prefix + body); -1 while its prefix is incomplete. */
  #partialNeeds = -1;
  /** Inside the stream's 'message' event: closing the stream waits until it has returned. */
  #dispatching = false;
  /** Whether a frame was written yet (the muxer's stream is established once we have written to it). */
  #written = false;
  /** Reading is paused until the next macrotask (see deferWindowUpdate). */
  #resumeScheduled = false;
  /** Chunks of a delivered message not read yet (a message above READ_SLICE_BYTES), in order; reading is paused meanwhile. */
  #backlog: Uint8Array[] = [];
  /** The next slice of the backlog is read on the next macrotask. */
  #sliceScheduled = false;
  /** The muxer stream's receive window when its updates are batched (batchWindowUpdates); undefined otherwise. */
  readonly #window: MuxerWindow | undefined;

  constructor(stream: Stream, options: FrameChannelOptions) {
    this.stream = stream;
    this.#options = options;
    this.#window = batchWindowUpdates(stream);
    this.#maxLengthLength = varintLength(options.maxFrameBytes);
    stream.addEventListener('message', (event) => this.#onMessage(event.data));
    stream.addEventListener('close', (event) => this.#finish(undefined, event.error ?? new Error('stream closed')));
    stream.addEventListener('remoteCloseWrite', () => {
      // What arrived while reading was paused is delivered now; data in the frame that carries the remote's FIN
      // is delivered right after this event: read both before ending.
      if (this.#resumeScheduled) this.#resumeReading();
      queueMicrotask(() => {
        // Every frame the peer sent before its FIN is read before the channel ends.
        if (this.#backlog.length > 0) this.#readSlice(Number.POSITIVE_INFINITY);
        // An honest peer closes its end only between frames (it resets the stream to abandon one).
        if (this.#partialBytes > 0) {
          const announced = this.#partialNeeds < 0 ? 'an unfinished length prefix' : `${this.#partialNeeds} bytes announced`;
          this.#finish('truncated', new Error(`the peer closed its end in the middle of a frame (${this.#partialBytes} bytes of ${announced})`));
        } else {
          this.#finish(undefined, new Error('the peer closed its end of the stream'));
        }
      });
    });
    if (stream.status !== 'open' || stream.remoteWriteStatus !== 'writable') {
      queueMicrotask(() => this.#finish(undefined, new Error('stream closed')));
    }
  }

  /** Whether the stream has ended (no frame will be sent or delivered any more). */
  get closed(): boolean {
    return this.#ended;
  }

  /**
   * Queues a frame for sending. false when the channel is closed (the frame was dropped). Frames queued in one
   * turn of the event loop leave in one write: one muxer frame, one encrypted message, one syscall for many
   * small answers, instead of one each. Frames queued while this channel delivers a message (answers to it)
   * leave as soon as that message has been handled.
   *
   * `alone`: the sender has nothing else to send with it (a request made while none other is in flight): when no
   * frame waits and no message is being delivered, it is written now rather than after this turn's microtasks, so
   * the work they hold (what the previous answer's callers do next) runs while the peer handles it, not before.
   */
  send(frame: Frame, alone = false): boolean {
    if (this.#ended || this.stream.writeStatus !== 'writable') return false;
    const bytes = encodeLengthPrefixedFrame(frame);
    this.#queuedBytes += bytes.byteLength;
    if (this.stream.writeBufferLength + this.#queuedBytes > this.#options.maxFrameBytes * 4) {
      this.close(new Error('the peer is not reading its stream'));
      return false;
    }
    this.#queue.push(bytes);
    if (this.#queue.length > 1) return true;
    if (alone && !this.#dispatching) this.#flush();
    else queueMicrotask(() => this.#flush());
    return true;
  }

  #flush(): void {
    const frames = this.#queue;
    if (this.#ended || frames.length === 0) return;
    this.#queue = [];
    this.#queuedBytes = 0;
    let out: Uint8Array;
    if (frames.length === 1) {
      out = frames[0]!;
    } else {
      let total = 0;
      for (const frame of frames) total += frame.byteLength;
      out = new Uint8Array(total);
      let offset = 0;
      for (const frame of frames) {
        out.set(frame, offset);
        offset += frame.byteLength;
      }
    }
    try {
      // false only means the stream's buffer is above its mark; the bytes are queued, and send() bounds the queue.
      this.stream.send(out);
      this.#written = true;
    } catch (err) {
      this.close(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * Resolves on a later turn once at most `mark` bytes wait to be sent on this stream (queued here or in the
   * stream's buffer), or once the channel has closed: a sender of bulk data (a large answer in parts) waits on it
   * before each piece, so what others queue meanwhile (small answers) leaves after one piece at most.
   */
  async whenWritable(mark: number): Promise<void> {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#ended || this.stream.writeBufferLength + this.#queuedBytes <= mark) return;
      // The stream emits 'drain' once its buffer empties after it refused more; re-check now and then regardless.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.stream.removeEventListener('drain', done);
          this.stream.removeEventListener('close', done);
          resolve();
        };
        const timer = setTimeout(done, DRAIN_RECHECK_MS);
        this.stream.addEventListener('drain', done);
        this.stream.addEventListener('close', done);
      });
    }
  }

  /** Ends the channel at once (resets the stream). Idempotent. */
  close(error?: Error): void {
    this.#finish(undefined, error ?? new Error('channel closed'));
  }

  #finish(violation: FrameViolation | undefined, error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#partial = EMPTY;
    this.#partialBytes = 0;
    this.#backlog = [];
    const abort = (): void => {
      if (this.stream.status === 'open') this.stream.abort(error ?? new Error('stream ended'));
    };
    // Not from inside the stream's own event: the muxer is still handling the data it delivered.
    if (this.#dispatching) queueMicrotask(abort);
    else abort();
    this.#options.onClose(violation, error);
  }

  #onMessage(data: Chunks): void {
    if (this.#ended) return;
    if (data instanceof Uint8Array) this.#backlog.push(data);
    else for (const chunk of data) this.#backlog.push(chunk);
    // A message delivered while a backlog waits (reading is paused, but the muxer may still deliver what it held)
    // is read after it, in order.
    if (this.#sliceScheduled) return;
    this.#deferWindowUpdate();
    this.#readSlice(READ_SLICE_BYTES);
  }

  /** Reads up to `budget` bytes of the backlog; what is left is read on the next macrotask, reading paused until then. */
  #readSlice(budget: number): void {
    this.#dispatching = true;
    try {
      while (budget > 0 && this.#backlog.length > 0 && !this.#ended) {
        let chunk = this.#backlog[0]!;
        if (chunk.byteLength > budget) {
          this.#backlog[0] = chunk.subarray(budget);
          chunk = chunk.subarray(0, budget);
        } else {
          this.#backlog.shift();
        }
        budget -= chunk.byteLength;
        this.#receive(chunk);
      }
    } catch (err) {
      // Never let an exception escape into the stream's event dispatch.
      this.#finish(undefined, err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.#dispatching = false;
    }
    // Answers to the frames of this slice leave now, in one write, ahead of what the muxer sends after
    // delivering its message (its window update), rather than in a later microtask.
    if (this.#queue.length > 0) this.#flush();
    if (this.#backlog.length === 0 || this.#ended || this.#sliceScheduled) return;
    try {
      this.stream.pause();
    } catch {
      // closing: the rest is read on the next turn all the same (or dropped by #finish)
    }
    this.#sliceScheduled = true;
    setImmediate(() => {
      this.#sliceScheduled = false;
      if (this.#ended) return;
      this.#readSlice(READ_SLICE_BYTES);
      if (!this.#sliceScheduled && !this.#resumeScheduled) this.#resume();
    });
  }

  /**
   * Right after delivering a message, the muxer (yamux) sends the peer a window update: an encrypted write of
   * its own, which would otherwise come before anything that awaits the frames of this message (an asker's
   * entry). Pausing reading while the message is handled makes the muxer skip it; resuming on the next
   * macrotask, after the work this message started, sends it then (and delivers anything that arrived in
   * between). Flow control is unchanged: the window is only acknowledged one turn later.
   */
  #deferWindowUpdate(): void {
    if (this.#resumeScheduled || !this.#written) return;
    // Batched updates: only a message that uses up half the window is followed by one.
    if (this.#window !== undefined && !updateDue(this.#window)) return;
    try {
      this.stream.pause();
    } catch {
      return; // closing: nothing to defer
    }
    this.#resumeScheduled = true;
    setImmediate(() => this.#resumeReading());
  }

  #resumeReading(): void {
    if (!this.#resumeScheduled) return;
    this.#resumeScheduled = false;
    // A backlog still being read in slices keeps reading paused; its last slice resumes it.
    if (this.#ended || this.#sliceScheduled) return;
    this.#resume();
  }

  #resume(): void {
    try {
      this.stream.resume();
    } catch {
      // the stream closed meanwhile
    }
  }

  /** Consumes one chunk: completes the partial frame, then cuts every whole frame out of the chunk in place. */
  #receive(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (this.#partialBytes > 0) {
      if (this.#partialNeeds < 0) {
        // The prefix itself was split (at most maxLengthLength bytes are held): join it to this chunk.
        chunk = concat([this.#partial.subarray(0, this.#partialBytes), chunk], this.#partialBytes + chunk.byteLength);
        this.#partial = EMPTY;
        this.#partialBytes = 0;
      } else {
        const missing = this.#partialNeeds - this.#partialBytes;
        if (chunk.byteLength < missing) {
          this.#append(chunk);
          return;
        }
        this.#append(chunk.subarray(0, missing));
        const whole = this.#partial.subarray(0, this.#partialNeeds);
        this.#partial = EMPTY;
        this.#partialBytes = 0;
        this.#partialNeeds = -1;
        this.#deliver(whole.subarray(this.#prefixOf(whole)));
        if (this.#ended) return;
        chunk = chunk.subarray(missing);
      }
    }
    let offset = 0;
    const end = chunk.byteLength;
    while (offset < end && !this.#ended) {
      // The length prefix: an unsigned varint of at most maxLengthLength bytes.
      let length = 0;
      let scale = 1;
      let at = offset;
      let complete = false;
      while (at < end) {
        const byte = chunk[at++]!;
        length += (byte & 0x7f) * scale;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        if (at - offset >= this.#maxLengthLength) return this.#violation(new FrameLengthError(`length prefix longer than ${this.#maxLengthLength} bytes`));
        scale *= 128;
      }
      if (!complete) {
        this.#hold(chunk.subarray(offset), -1);
        return;
      }
      if (length > this.#options.maxFrameBytes) {
        return this.#violation(new FrameLengthError(`frame of ${length} bytes announced, above the limit of ${this.#options.maxFrameBytes}`));
      }
      const frameEnd = at + length;
      if (frameEnd > end) {
        this.#hold(chunk.subarray(offset), frameEnd - offset);
        return;
      }
      this.#deliver(chunk.subarray(at, frameEnd));
      offset = frameEnd;
    }
  }

  /** Bytes of the (complete, already checked) length prefix at the start of `frame`. */
  #prefixOf(frame: Uint8Array): number {
    let at = 0;
    while ((frame[at++]! & 0x80) !== 0);
    return at;
  }

  #hold(bytes: Uint8Array, needs: number): void {
    // Copied: the tail of a chunk must not keep the whole chunk's memory alive while the rest arrives.
    const capacity = needs < 0 ? this.#maxLengthLength : Math.min(needs, Math.max(bytes.byteLength * 2, FIRST_PARTIAL_BYTES));
    this.#partial = new Uint8Array(capacity);
    this.#partial.set(bytes);
    this.#partialBytes = bytes.byteLength;
    this.#partialNeeds = needs;
  }

  /**
   * Adds bytes of the partial frame (never past its announced size). Memory stays within twice what arrived and
   * within the announced size (at most maxFrameBytes), and each byte is copied a bounded number of times on
   * average, however small the chunks: a peer cannot make a chunk cost more than its bytes.
   */
  #append(bytes: Uint8Array): void {
    const total = this.#partialBytes + bytes.byteLength;
    if (total > this.#partial.byteLength) {
      const grown = new Uint8Array(Math.min(this.#partialNeeds, Math.max(total, this.#partial.byteLength * 2)));
      grown.set(this.#partial.subarray(0, this.#partialBytes));
      this.#partial = grown;
    }
    this.#partial.set(bytes, this.#partialBytes);
    this.#partialBytes = total;
  }

  #violation(error: Error): void {
    this.#finish('oversize', error);
  }

  #deliver(data: Uint8Array): void {
    let frame: Frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this.#finish('frame', err instanceof WireFormatError ? err : new WireFormatError(String(err)));
      return;
    }
    try {
      this.#options.onFrame(frame);
    } catch (err) {
      this.#options.logger.error('frame handler failed', err);
      this.#finish(undefined, err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/**
 * The receive-window state of a @chainsafe/libp2p-yamux stream (fields of its YamuxStream; state 3 is Established).
 * Read only where present with these types: another muxer, or a yamux whose internals changed, is left as it is.
 */
interface MuxerWindow {
  state: number;
  recvWindow: number;
  recvWindowCapacity: number;
  sendWindowUpdate(): void;
}

const YAMUX_ESTABLISHED = 3;

function isMuxerWindow(stream: unknown): stream is MuxerWindow {
  const s = stream as Partial<MuxerWindow>;
  return typeof s.sendWindowUpdate === 'function' && typeof s.state === 'number'
    && typeof s.recvWindow === 'number' && typeof s.recvWindowCapacity === 'number';
}

/** Whether the next window update of an established stream would be sent: half its window is used. */
function updateDue(window: MuxerWindow): boolean {
  return window.state !== YAMUX_ESTABLISHED || window.recvWindow - window.recvWindowCapacity >= window.recvWindow / 2;
}

/**
 * Makes a yamux stream send its window updates only once half its receive window is consumed (or when it has
 * flags to send: opening, pausing and resuming behave as before). Returns the stream's window state when it did,
 * undefined when the stream is not a yamux stream of the known shape (then nothing is changed). Exported for the
 * transport benchmark, which measures it on a bare libp2p stream.
 */
export function batchWindowUpdates(stream: Stream): MuxerWindow | undefined {
  if (!isMuxerWindow(stream)) return undefined;
  const window = stream;
  const send = window.sendWindowUpdate;
  window.sendWindowUpdate = function sendWindowUpdateBatched(this: MuxerWindow): void {
    if (!updateDue(window)) return;
    send.call(this);
  };
  return window;
}

const EMPTY = new Uint8Array(0);
/** Bytes of a delivered message read per macrotask (about 13 repository-sized entries); see the header. */
export const READ_SLICE_BYTES = 64 * 1024;
/** How often whenWritable looks again while the stream's buffer stays above its mark without a 'drain'. */
const DRAIN_RECHECK_MS = 5;
/** The first buffer of a partial frame, at least: small frames split across chunks need no regrowth. */
const FIRST_PARTIAL_BYTES = 4096;

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
