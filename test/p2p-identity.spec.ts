import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { expect } from 'chai';
import { acquirePeerIdentity } from '../src/p2p/identity.js';
import { RecordingLogger, removeTmpDirs, startNode, tmpCacheDir } from './support/p2p-fixtures.js';

describe('acquirePeerIdentity (persistent identity slots in cacheDir)', () => {
  afterEach(() => removeTmpDirs());

  function writeLock(cacheDir: string, slot: number, info: Record<string, unknown>): void {
    fs.mkdirSync(path.join(cacheDir, 'p2p'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(cacheDir, 'p2p', `identity-${slot}.lock`), JSON.stringify(info));
  }

  it('gives back the same identity after release, and a different one while it is held', async () => {
    const cacheDir = tmpCacheDir();
    const logger = new RecordingLogger();
    const first = await acquirePeerIdentity({ cacheDir, logger });
    const second = await acquirePeerIdentity({ cacheDir, logger });
    expect([first.slot, second.slot]).to.deep.equal([0, 1]);
    expect(second.peerId).to.not.equal(first.peerId);
    first.release();
    first.release(); // idempotent
    const again = await acquirePeerIdentity({ cacheDir, logger });
    expect(again.slot).to.equal(0);
    expect(again.peerId).to.equal(first.peerId);
    second.release();
    again.release();
    expect(fs.readdirSync(path.join(cacheDir, 'p2p')).filter((f) => f.endsWith('.lock'))).to.deep.equal([]);
  });

  it('reclaims the slot of a dead process', async () => {
    const cacheDir = tmpCacheDir();
    const original = await acquirePeerIdentity({ cacheDir, logger: new RecordingLogger() });
    original.release();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeLock(cacheDir, 0, { pid: dead, threadId: 0, host: os.hostname(), nonce: 'x' });
    const identity = await acquirePeerIdentity({ cacheDir, logger: new RecordingLogger() });
    expect(identity.slot).to.equal(0);
    expect(identity.peerId).to.equal(original.peerId);
    identity.release();
  });

  it('reclaims a lock left by this very thread that it no longer holds (a node never stopped)', async () => {
    const cacheDir = tmpCacheDir();
    writeLock(cacheDir, 0, { pid: process.pid, threadId, host: os.hostname(), nonce: 'leftover' });
    const identity = await acquirePeerIdentity({ cacheDir, logger: new RecordingLogger() });
    expect(identity.slot).to.equal(0);
    identity.release();
  });

  it('respects the locks of live processes, other threads of this process and other hosts', async () => {
    const cacheDir = tmpCacheDir();
    writeLock(cacheDir, 0, { pid: process.ppid, threadId: 0, host: os.hostname(), nonce: 'a' });
    writeLock(cacheDir, 1, { pid: process.pid, threadId: threadId + 1, host: os.hostname(), nonce: 'b' });
    writeLock(cacheDir, 2, { pid: 1_999_999, threadId: 0, host: 'another-host.example', nonce: 'c' });
    const identity = await acquirePeerIdentity({ cacheDir, logger: new RecordingLogger() });
    expect(identity.slot).to.equal(3);
    identity.release();
  });

  it('falls back to an ephemeral identity, with a warning, when every slot is taken', async () => {
    const cacheDir = tmpCacheDir();
    const logger = new RecordingLogger();
    const held = [await acquirePeerIdentity({ cacheDir, logger, maxSlots: 2 }), await acquirePeerIdentity({ cacheDir, logger, maxSlots: 2 })];
    const extra = await acquirePeerIdentity({ cacheDir, logger, maxSlots: 2 });
    expect(extra.slot).to.equal(-1);
    expect(logger.warnings.join('\n')).to.include('ephemeral identity');
    for (const identity of held) identity.release();
  });

  it('stores the key with mode 0600, restores that mode if loosened, and replaces a corrupt key with a warning', async () => {
    const cacheDir = tmpCacheDir();
    const logger = new RecordingLogger();
    const keyPath = path.join(cacheDir, 'p2p', 'identity-0.key');
    const first = await acquirePeerIdentity({ cacheDir, logger });
    first.release();
    expect(fs.statSync(keyPath).mode & 0o777).to.equal(0o600);
    fs.chmodSync(keyPath, 0o644);
    const loosened = await acquirePeerIdentity({ cacheDir, logger });
    loosened.release();
    expect(loosened.peerId).to.equal(first.peerId);
    expect(fs.statSync(keyPath).mode & 0o777).to.equal(0o600);
    expect(logger.warnings.some((w) => w.includes('readable by others'))).to.equal(true);
    fs.writeFileSync(keyPath, 'garbage', { mode: 0o600 });
    const replaced = await acquirePeerIdentity({ cacheDir, logger });
    replaced.release();
    expect(replaced.peerId).to.not.equal(first.peerId);
    expect(logger.warnings.some((w) => w.includes('is unreadable'))).to.equal(true);
  });
  it('falls back to an ephemeral identity, with a warning, when cacheDir cannot be written (the node still starts)', async () => {
    // A path under a regular file: no directory can be made there, whatever the user (root ignores modes).
    const parent = tmpCacheDir();
    const blocker = path.join(parent, 'not-a-directory');
    fs.writeFileSync(blocker, 'x');
    const cacheDir = path.join(blocker, 'cache');
    const logger = new RecordingLogger();
    const identity = await acquirePeerIdentity({ cacheDir, logger });
    expect(identity.slot).to.equal(-1);
    expect(identity.peerId).to.match(/^12D3KooW/);
    expect(logger.warnings.some((w) => w.includes('ephemeral') && w.includes(cacheDir))).to.equal(true);
    identity.release();
    const node = await startNode({ cacheDir });
    try {
      expect(node.network.stats().boundPort).to.be.above(0);
      expect(node.logger.warnings.some((w) => w.includes('ephemeral'))).to.equal(true);
    } finally {
      await node.network.stop();
    }
  });
});
