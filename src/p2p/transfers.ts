import type { FrameViolation } from './frame-channel.js';
import type { PartFrame } from './wire.js';

/**
 * Large answers received in pieces (`part` frames, wire.ts) on one outbound stream, put back together.
 *
 * Guarantees:
 * - An answer is handed on ('done') only once all of its `size` bytes arrived, in order, with the same `size` in
 *   every piece; the caller then opens and verifies the whole sealed entry (envelope.ts: Poly1305 tag, digest), so no
 *   byte of an incomplete or altered answer is ever used.
 * - Memory is bounded: one buffer per answer, of its announced size, at most `maxEntryBytes`; all answers being
 *   received from this peer at most `maxBytes` together (an answer that would exceed it is given up: 'over-budget',
 *   the caller goes upstream). Pieces of a request no longer in flight (timed out, aborted, answered otherwise) are
 *   ignored and free their buffer; `clear` frees all.
 * - A piece that breaks the rules (a first piece not at offset 0, a size above `maxEntryBytes`, a size that
 *   changes, a gap or an overlap) is 'refused' with the violation to strike the peer for, and its answer dropped.
 */

export type PartOutcome =
  | { readonly kind: 'pending' }
  | { readonly kind: 'done'; readonly sealed: Uint8Array }
  | { readonly kind: 'ignored' }
  | { readonly kind: 'over-budget' }
  | { readonly kind: 'refused'; readonly violation: FrameViolation; readonly detail: string };

interface InProgress {
  readonly buffer: Uint8Array;
  received: number;
}

export class PartedAnswers {
  readonly #maxEntryBytes: number;
  readonly #maxBytes: number;
  readonly #inProgress = new Map<number, InProgress>();
  #bytes = 0;

  constructor(maxEntryBytes: number, maxBytes: number) {
    this.#maxEntryBytes = maxEntryBytes;
    this.#maxBytes = maxBytes;
  }

  /** Takes one piece; `inFlight(id)` says whether request `id` still waits for its answer. */
  receive(frame: PartFrame, inFlight: (id: number) => boolean): PartOutcome {
    const { id, size, offset, bytes } = frame;
    let current = this.#inProgress.get(id);
    if (!inFlight(id)) {
      if (current !== undefined) this.drop(id);
      return { kind: 'ignored' };
    }
    if (current === undefined) {
      if (offset !== 0) return { kind: 'refused', violation: 'frame', detail: `the first part of answer ${id} starts at ${offset}, not 0` };
      if (size > this.#maxEntryBytes) return { kind: 'refused', violation: 'oversize', detail: `an answer of ${size} bytes announced, above the limit of ${this.#maxEntryBytes}` };
      for (const held of [...this.#inProgress.keys()]) if (!inFlight(held)) this.drop(held);
      if (this.#bytes + size > this.#maxBytes) return { kind: 'over-budget' };
      current = { buffer: new Uint8Array(size), received: 0 };
      this.#inProgress.set(id, current);
      this.#bytes += size;
    } else if (size !== current.buffer.byteLength || offset !== current.received) {
      this.drop(id);
      return { kind: 'refused', violation: 'frame', detail: `a part of answer ${id} at ${offset} of ${size} bytes, expected ${current.received} of ${current.buffer.byteLength}` };
    }
    current.buffer.set(bytes, offset);
    current.received += bytes.byteLength;
    if (current.received < size) return { kind: 'pending' };
    this.#inProgress.delete(id);
    this.#bytes -= size;
    return { kind: 'done', sealed: current.buffer };
  }

  /** Forgets the answer of request `id` being received, if any. */
  drop(id: number): void {
    const current = this.#inProgress.get(id);
    if (current === undefined) return;
    this.#inProgress.delete(id);
    this.#bytes -= current.buffer.byteLength;
  }

  /** Forgets every answer being received (the stream closed). */
  clear(): void {
    this.#inProgress.clear();
    this.#bytes = 0;
  }
}
