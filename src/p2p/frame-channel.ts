import type { Stream } from '@libp2p/interface';
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils';
import type { Logger } from '../log.js';
import { decodeFrame, encodeFrame, WireFormatError, type Frame } from './wire.js';

/**
 * Frames over one libp2p stream: length-prefixed CBOR frames in, the same out.
 *
 * Guarantee: every frame handed to `onFrame` passed the strict validator (wire.ts); `onClose` is called exactly
 * once, when the stream ends for any reason, and says whether the peer broke the framing: a frame above
 * `maxFrameBytes` (refused from its length prefix, before its bytes are buffered), a length prefix longer than
 * such a length needs (an unterminated varint), or a frame that is not a valid frame. A violation closes this stream only (never the connection or
 * the node): the peer's other streams and every other peer are unaffected. A peer that does not read what we
 * send cannot make us buffer without bound: past `maxFrameBytes * 4` of unsent bytes the stream is closed.
 */

/** How a peer broke the framing: 'oversize' (length prefix above the limit or unreadable) or 'frame' (invalid frame). */
export type FrameViolation = 'oversize' | 'frame';

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

const OVERSIZE_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'StreamBufferError']);

/** An unterminated or overlong length prefix. Named like lpStream's own error so it is classified the same way. */
class InvalidDataLengthLengthError extends Error {
  override name = 'InvalidDataLengthLengthError';
}

/**
 * A varint length decoder that gives up after `maxBytes` bytes. lpStream checks its maxLengthLength only once
 * a varint has decoded, so with its default decoder a peer sending 0xff bytes forever keeps a read waiting
 * while every byte is kept (and rescanned): this one throws as soon as the prefix is longer than any allowed
 * length needs. RangeError means "incomplete, read one more byte" to lpStream.
 */
function boundedVarintDecoder(maxBytes: number): (data: { byteLength: number; get(index: number): number }) => number {
  return (data) => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < data.byteLength; i++) {
      const byte = data.get(i);
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      if (i + 1 >= maxBytes) throw new InvalidDataLengthLengthError(`length prefix longer than ${maxBytes} bytes`);
      scale *= 128;
    }
    throw new RangeError('incomplete varint');
  };
}

function varintLength(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes++;
  }
  return bytes;
}

export class FrameChannel {
  readonly stream: Stream;
  private readonly lp: LengthPrefixedStream<Stream>;
  private readonly options: FrameChannelOptions;
  private ended = false;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;

  constructor(stream: Stream, options: FrameChannelOptions) {
    this.stream = stream;
    this.options = options;
    // Room for two whole frames: the read loop drains the buffer as frames complete, within the same turn.
    const maxLengthLength = varintLength(options.maxFrameBytes);
    this.lp = lpStream(stream, {
      maxDataLength: options.maxFrameBytes,
      maxLengthLength,
      lengthDecoder: boundedVarintDecoder(maxLengthLength),
      maxBufferSize: options.maxFrameBytes * 2 + 64 * 1024,
    });
    void this.readLoop();
  }

  /** Whether the stream has ended (no frame will be sent or delivered any more). */
  get closed(): boolean {
    return this.ended;
  }

  /**
   * Queues a frame for sending. false when the channel is closed (the frame was dropped). Frames queued in one
   * turn of the event loop leave in one write: one muxer frame, one encrypted message, one syscall for many
   * small answers, instead of one each.
   */
  send(frame: Frame): boolean {
    if (this.ended || this.stream.writeStatus !== 'writable') return false;
    const bytes = encodeFrame(frame);
    this.queuedBytes += bytes.byteLength;
    if (this.stream.writeBufferLength + this.queuedBytes > this.options.maxFrameBytes * 4) {
      this.close(new Error('the peer is not reading its stream'));
      return false;
    }
    this.queue.push(bytes);
    if (this.queue.length === 1) queueMicrotask(() => this.flush());
    return true;
  }

  private flush(): void {
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.ended || frames.length === 0) return;
    this.lp.writeV(frames).catch((err: unknown) => this.close(err instanceof Error ? err : new Error(String(err))));
  }

  /** Ends the channel at once (resets the stream). Idempotent. */
  close(error?: Error): void {
    this.finish(undefined, error ?? new Error('channel closed'));
  }

  private finish(violation: FrameViolation | undefined, error: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    if (this.stream.status === 'open') this.stream.abort(error ?? new Error('stream ended'));
    this.options.onClose(violation, error);
  }

  private async readLoop(): Promise<void> {
    while (!this.ended) {
      let data: Uint8Array;
      try {
        data = (await this.lp.read()).subarray();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.finish(OVERSIZE_ERRORS.has(error.name) ? 'oversize' : undefined, error);
        return;
      }
      let frame: Frame;
      try {
        frame = decodeFrame(data);
      } catch (err) {
        this.finish('frame', err instanceof WireFormatError ? err : new WireFormatError(String(err)));
        return;
      }
      try {
        this.options.onFrame(frame);
      } catch (err) {
        this.options.logger.error('frame handler failed', err);
        this.finish(undefined, err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  }
}
