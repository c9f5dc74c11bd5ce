import '../src/polyfills.js';
import type { Stream } from '@libp2p/interface';
import { streamPair } from '@libp2p/utils';
import { expect } from 'chai';
import { encode as cborEncode } from 'cborg';
import { FrameChannel, READ_SLICE_BYTES, type FrameViolation } from '../src/p2p/frame-channel.js';
import { encodeFrame, type Frame } from '../src/p2p/wire.js';
import { waitFor } from './support/p2p-fixtures.js';
import { RecordingLogger } from '../support/recording-logger.js';

/** A varint length prefix, as lpStream writes it. */
function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return new Uint8Array([...varint(bytes.byteLength), ...bytes]);
}

interface Received {
  frames: Frame[];
  closes: Array<{ violation: FrameViolation | undefined; error: Error | undefined }>;
  channel: FrameChannel;
}

/** A FrameChannel on one end of an in-memory stream pair; the other end is written raw. */
async function channelPair(maxFrameBytes = 64 * 1024): Promise<{ raw: Stream; received: Received }> {
  const [raw, inner] = await streamPair({ delay: 0 });
  const received: Received = { frames: [], closes: [], channel: undefined as unknown as FrameChannel };
  received.channel = new FrameChannel(inner, {
    maxFrameBytes,
    logger: new RecordingLogger(),
    onFrame: (frame) => received.frames.push(frame),
    onClose: (violation, error) => received.closes.push({ violation, error }),
  });
  return { raw, received };
}


const proof = new Uint8Array(32).fill(3);
const frames: Frame[] = [
  { type: 'get', id: 1, key: 'k'.repeat(300), proof },
  { type: 'entry', id: 2, sealed: new Uint8Array(20_000).fill(5) },
  { type: 'working', id: 3 },
  { type: 'miss', id: 4, reason: 'busy' },
  { type: 'entry', id: 5, sealed: new Uint8Array(0) },
];

/** A sending and a receiving channel over a stream pair: the frames received, and the size of each write the sender's stream took. */
async function countedPair(): Promise<{ sender: FrameChannel; receiver: FrameChannel; got: Frame[]; writes: number[] }> {
  const [a, b] = await streamPair({ delay: 0 });
  const got: Frame[] = [];
  const writes: number[] = [];
  const send = a.send.bind(a);
  a.send = (data) => {
    writes.push(data.byteLength);
    return send(data);
  };
  const sender = new FrameChannel(a, { maxFrameBytes: 64 * 1024, logger: new RecordingLogger(), onFrame: () => undefined, onClose: () => undefined });
  const receiver = new FrameChannel(b, { maxFrameBytes: 64 * 1024, logger: new RecordingLogger(), onFrame: (f) => got.push(f), onClose: () => undefined });
  return { sender, receiver, got, writes };
}

describe('FrameChannel: length-prefixed frames over a libp2p stream', () => {
  it('delivers every frame, in order, however the bytes are cut into chunks', async () => {
    const bytes = new Uint8Array(Buffer.concat(frames.map((f) => lengthPrefixed(encodeFrame(f)))));
    for (const cut of [1, 2, 3, 7, 128, 4_096, bytes.byteLength]) {
      const { raw, received } = await channelPair();
      for (let at = 0; at < bytes.byteLength; at += cut) raw.send(bytes.slice(at, at + cut));
      await waitFor(() => received.frames.length === frames.length, `${frames.length} frames cut every ${cut} bytes`);
      expect(received.frames, `cut every ${cut} bytes`).to.deep.equal(frames);
      expect(received.closes).to.deep.equal([]);
      received.channel.close();
      raw.abort(new Error('done'));
    }
  });

  it('delivers everything that arrives while reading is paused to defer the window update, and resumes reading', async () => {
    const { raw, received } = await channelPair();
    received.channel.send({ type: 'working', id: 1 }); // written once: from now on each message pauses reading until the next turn
    await new Promise((resolve) => setTimeout(resolve, 5));
    const bytes = new Uint8Array(Buffer.concat(frames.map((f) => lengthPrefixed(encodeFrame(f)))));
    for (let at = 0; at < bytes.byteLength; at += 97) raw.send(bytes.slice(at, at + 97));
    await waitFor(() => received.frames.length === frames.length, 'every frame');
    expect(received.frames).to.deep.equal(frames);
    await new Promise((resolve) => setImmediate(resolve));
    expect(received.channel.stream.readStatus).to.equal('readable');
    received.channel.close();
  });

  it('sends frames queued in one turn as one write that the other end reads back', async () => {
    const { sender, receiver, got, writes } = await countedPair();
    for (const frame of frames) expect(sender.send(frame)).to.equal(true);
    await waitFor(() => got.length === frames.length, 'the frames');
    expect(got).to.deep.equal(frames);
    expect(writes).to.have.length(1);
    sender.close();
    receiver.close();
  });

  it('writes a frame sent alone at once, before the microtasks already queued; one sent behind a waiting frame, or not alone, waits for the turn\'s write', async () => {
    const { sender, receiver, got, writes } = await countedPair();
    const seenByQueuedMicrotask: number[] = [];
    queueMicrotask(() => seenByQueuedMicrotask.push(writes.length));
    expect(sender.send(frames[0]!, true)).to.equal(true);
    expect(writes, 'written in the call').to.have.length(1);
    // A frame waits in the queue: one sent alone after it waits too, and both leave in the turn's one write.
    expect(sender.send(frames[1]!)).to.equal(true);
    expect(sender.send(frames[2]!, true)).to.equal(true);
    expect(writes).to.have.length(1);
    await waitFor(() => got.length === 3, 'the frames');
    expect(got).to.deep.equal(frames.slice(0, 3));
    expect(writes).to.have.length(2);
    expect(seenByQueuedMicrotask).to.deep.equal([1]);
    // Without `alone`, a frame waits for the microtasks queued before it.
    const before: number[] = [];
    queueMicrotask(() => before.push(writes.length));
    expect(sender.send(frames[3]!)).to.equal(true);
    await waitFor(() => got.length === 4, 'the fourth frame');
    expect(before).to.deep.equal([2]);
    sender.close();
    receiver.close();
  });

  it('refuses a frame above maxFrameBytes from its prefix alone, and an unterminated prefix, as oversize', async () => {
    for (const prefix of [varint(64 * 1024 + 1), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [0x80, 0x80, 0x80, 0x80]]) {
      const { raw, received } = await channelPair(64 * 1024);
      raw.send(new Uint8Array([...lengthPrefixed(encodeFrame(frames[2]!)), ...prefix]));
      await waitFor(() => received.closes.length > 0, 'the channel to close');
      expect(received.frames).to.deep.equal([frames[2]]);
      expect(received.closes).to.have.length(1);
      expect(received.closes[0]!.violation, prefix.join(',')).to.equal('oversize');
      expect(received.channel.closed).to.equal(true);
    }
  });

  it('accepts a frame of exactly maxFrameBytes', async () => {
    const frame: Frame = { type: 'entry', id: 9, sealed: new Uint8Array(1000) };
    const { raw, received } = await channelPair(encodeFrame(frame).byteLength);
    raw.send(lengthPrefixed(encodeFrame(frame)));
    await waitFor(() => received.frames.length === 1, 'the frame');
    expect(received.closes).to.deep.equal([]);
    received.channel.close();
  });

  it('closes on an invalid frame as a frame violation, and delivers nothing after it', async () => {
    const { raw, received } = await channelPair();
    raw.send(new Uint8Array([
      ...lengthPrefixed(encodeFrame(frames[3]!)),
      ...lengthPrefixed(cborEncode({ type: 'gimme', id: 1 })),
      ...lengthPrefixed(encodeFrame(frames[2]!)),
    ]));
    await waitFor(() => received.closes.length > 0, 'the channel to close');
    expect(received.frames).to.deep.equal([frames[3]]);
    expect(received.closes.map((c) => c.violation)).to.deep.equal(['frame']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received.frames).to.have.length(1);
    expect(received.closes).to.have.length(1);
  });

  it('reports the end of the stream once, without a violation, when the other end goes away mid-frame', async () => {
    const { raw, received } = await channelPair();
    raw.send(lengthPrefixed(encodeFrame(frames[1]!)).subarray(0, 100));
    await new Promise((resolve) => setTimeout(resolve, 10));
    raw.abort(new Error('gone'));
    await waitFor(() => received.closes.length > 0, 'the channel to close');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(received.frames).to.deep.equal([]);
    expect(received.closes).to.have.length(1);
    expect(received.closes[0]!.violation).to.equal(undefined);
  });

  it('delivers the frames sent before the other end closed its writing side, then ends', async () => {
    for (const writtenFirst of [false, true]) {
      const { raw, received } = await channelPair();
      if (writtenFirst) {
        received.channel.send({ type: 'working', id: 1 });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      raw.send(lengthPrefixed(encodeFrame(frames[0]!)));
      raw.send(lengthPrefixed(encodeFrame(frames[3]!)));
      await raw.close();
      await waitFor(() => received.closes.length > 0, 'the channel to close');
      expect(received.frames, `written first: ${writtenFirst}`).to.deep.equal([frames[0], frames[3]]);
      expect(received.closes.map((c) => c.violation)).to.deep.equal([undefined]);
    }
  });

  it('reads a message of many frames in slices, and what it sends in answer to a slice leaves before the next is read', async () => {
    const [raw, inner] = await streamPair({ delay: 0 });
    let writes = 0;
    const send = inner.send.bind(inner);
    inner.send = (data) => {
      writes++;
      return send(data);
    };
    const seen: Array<{ id: number; writesBefore: number }> = [];
    const channel: FrameChannel = new FrameChannel(inner, {
      maxFrameBytes: 64 * 1024, logger: new RecordingLogger(), onClose: () => undefined,
      onFrame: (frame) => {
        const id = 'id' in frame ? frame.id : -1;
        seen.push({ id, writesBefore: writes });
        channel.send({ type: 'miss', id, reason: 'busy' });
      },
    });
    // 48 entries of 8 KiB (about 390 KB) held back, then delivered as one message, as a muxer delivers what
    // arrived while reading was paused.
    inner.pause();
    const sealed = new Uint8Array(8 * 1024).fill(7);
    let sent = 0;
    for (let id = 1; id <= 48; id++) {
      const bytes = lengthPrefixed(encodeFrame({ type: 'entry', id, sealed }));
      sent += bytes.byteLength;
      raw.send(bytes);
    }
    await waitFor(() => inner.readBufferLength === sent, 'every byte held while reading is paused');
    inner.resume();
    await waitFor(() => seen.length === 48, 'all 48 frames');
    expect(seen.map((s) => s.id), 'in order').to.deep.equal(Array.from({ length: 48 }, (_, i) => i + 1));
    const firstSlice = seen.filter((s) => s.writesBefore === 0).length;
    expect(firstSlice, 'frames read before anything was answered').to.be.at.most(Math.ceil(READ_SLICE_BYTES / (8 * 1024)));
    expect(seen.at(-1)!.writesBefore, 'answers written before the last frame was read').to.be.at.least(3);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inner.readStatus, 'reading resumes after the last slice').to.equal('readable');
    channel.close();
    raw.abort(new Error('done'));
  });

  it('reads every frame of a backlog being read in slices before it ends on the other end closing its writing side', async () => {
    const [raw, inner] = await streamPair({ delay: 0 });
    const ids: number[] = [];
    const closes: Array<FrameViolation | undefined> = [];
    new FrameChannel(inner, {
      maxFrameBytes: 64 * 1024, logger: new RecordingLogger(),
      onFrame: (frame) => ids.push('id' in frame ? frame.id : -1),
      onClose: (violation) => closes.push(violation),
    });
    inner.pause();
    const sealed = new Uint8Array(16 * 1024).fill(1);
    let sent = 0;
    for (let id = 1; id <= 20; id++) {
      const bytes = lengthPrefixed(encodeFrame({ type: 'entry', id, sealed }));
      sent += bytes.byteLength;
      raw.send(bytes);
    }
    await waitFor(() => inner.readBufferLength === sent, 'every byte held while reading is paused');
    inner.resume();
    await raw.close();
    await waitFor(() => closes.length > 0, 'the channel to end');
    expect(ids).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(closes).to.deep.equal([undefined]);
  });
});

/** Two libp2p hosts on 127.0.0.1 as the fleet builds them (TCP, noise, yamux), and one stream between them. */
async function yamuxPair(protocol: string, onServerStream: (stream: Stream) => void): Promise<{ client: Stream; stop(): Promise<void> }> {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'),
  ]);
  const host = () => createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
  const [a, b] = await Promise.all([host(), host()]);
  const stop = async (): Promise<void> => {
    await Promise.all([a.stop(), b.stop()]);
  };
  try {
    await a.handle(protocol, onServerStream);
    const client = await b.dialProtocol(a.getMultiaddrs()[0]!, protocol);
    return { client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Counts the yamux window updates a stream sends (frame type 1, with a length). */
function countWindowUpdates(stream: Stream): { count: number } {
  const counted = { count: 0 };
  const muxed = stream as unknown as { sendFrame(header: { type: number; length: number }, data?: unknown): boolean };
  const send = muxed.sendFrame;
  expect(send, 'a yamux stream').to.be.a('function');
  muxed.sendFrame = (header, data) => {
    if (header.type === 1 && header.length > 0) counted.count++;
    return send(header, data);
  };
  return counted;
}

describe('FrameChannel over yamux: window updates', function () {
  this.timeout(60_000);

  it('sends no window update per small frame received, only once half the window is used, and large transfers still flow', async () => {
    const logger = new RecordingLogger();
    const atServer: Frame[] = [];
    const atClient: Frame[] = [];
    let updates = { count: 0 };
    let server: FrameChannel | undefined;
    const pair = await yamuxPair('/github-cache-spec/frames/1', (stream) => {
      updates = countWindowUpdates(stream);
      server = new FrameChannel(stream, {
        maxFrameBytes: 128 * 1024, logger, onClose: () => undefined,
        onFrame: (frame) => {
          atServer.push(frame);
          server!.send({ type: 'miss', id: 'id' in frame ? frame.id : 0, reason: 'busy' });
        },
      });
    });
    try {
      const client = new FrameChannel(pair.client, { maxFrameBytes: 128 * 1024, logger, onFrame: (f) => atClient.push(f), onClose: () => undefined });
      // 200 round trips of a ~350 B request: 70 KB, well under half of yamux's 256 KiB window.
      for (let id = 1; id <= 200; id++) {
        expect(client.send({ type: 'get', id, key: 'k'.repeat(300), proof })).to.equal(true);
        await waitFor(() => atClient.length === id, `answer ${id}`);
      }
      expect(updates.count, 'window updates for 200 small frames').to.be.at.most(1);
      // 40 frames of 64 KiB: ten initial windows' worth, which only arrives if the updates are still sent.
      const big = new Uint8Array(64 * 1024).fill(9);
      for (let id = 1_000; id < 1_040; id++) {
        await client.whenWritable(256 * 1024);
        expect(client.send({ type: 'entry', id, sealed: big })).to.equal(true);
      }
      await waitFor(() => atServer.length === 240, 'ten windows of data');
      expect(updates.count, 'updates for 2.5 MiB through a 256 KiB window').to.be.at.least(2);
      expect(server!.closed || client.closed).to.equal(false);
      server!.close();
      client.close();
    } finally {
      await pair.stop();
    }
  });
});
