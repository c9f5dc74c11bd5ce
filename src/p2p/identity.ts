import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from '../log.js';

/**
 * The persistent libp2p identity of a node, one of several numbered slots in `<cacheDir>/p2p/`.
 *
 * Guarantee: no two live nodes (in any process or worker thread on this host) use the same identity at the
 * same time, and a node that restarts gets back the lowest free slot's identity, so a single node per cacheDir
 * keeps its `/p2p/<id>` address across restarts.
 *
 * How: slot N is `identity-N.key` (an Ed25519 private key, libp2p protobuf, mode 0600) guarded by
 * `identity-N.lock`, created with O_EXCL and holding `{pid, threadId, host, nonce}`. A node takes the first slot
 * whose lock it can create. A lock is stale when its process is dead (same host), or when it names this very
 * thread but this thread does not hold it (a node that was never stopped); a stale lock is removed under a
 * second O_EXCL file, `identity-N.reclaim`, after re-reading that it is still the same stale lock, so two
 * reclaimers never both win. Locks of other hosts (a shared network directory) and of other live threads of
 * this process are always respected: such a slot is skipped, never taken. Locks are removed on release and, as
 * a last resort, when the thread exits. The directory is created with mode 0700. When it cannot be created or
 * written, the identity is ephemeral (with a warning) and the node still starts.
 */

/** Slots tried before falling back to an ephemeral identity. */
export const MAX_IDENTITY_SLOTS = 64;

export interface PeerIdentity {
  readonly privateKey: PrivateKey;
  /** The peer id text (`12D3KooW…`). */
  readonly peerId: string;
  /** The slot number, or -1 for an ephemeral identity (no slot was free). */
  readonly slot: number;
  /** Frees the slot. Idempotent. */
  release(): void;
}

export interface AcquireIdentityOptions {
  /** The cache directory; identities live in `<cacheDir>/p2p/`. */
  cacheDir: string;
  /** Where warnings go. */
  logger: Logger;
  /** Slots tried. Default: MAX_IDENTITY_SLOTS. */
  maxSlots?: number;
  /** The P2P layer's clock, in ms since the epoch (lock ages, names of set-aside keys). Default: Date.now. */
  now?: () => number;
}

interface LockInfo {
  pid: number;
  threadId: number;
  host: string;
  nonce: string;
}

/** Lock files this thread holds, so a leftover lock naming this thread can be told from a live one. */
const heldByThisThread = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const lockPath of heldByThisThread) {
      try {
        fs.unlinkSync(lockPath);
      } catch {
        // best effort on the way out
      }
    }
  });
}

function readLock(lockPath: string, now: () => number): { raw: string; info: LockInfo | undefined; ageMs: number } | undefined {
  try {
    const raw = fs.readFileSync(lockPath, 'utf8');
    const ageMs = now() - fs.statSync(lockPath).mtimeMs;
    let info: LockInfo | undefined;
    try {
      const parsed = JSON.parse(raw) as Partial<LockInfo>;
      if (Number.isInteger(parsed.pid) && Number.isInteger(parsed.threadId) && typeof parsed.host === 'string') info = parsed as LockInfo;
    } catch {
      info = undefined;
    }
    return { raw, info, ageMs };
  } catch {
    return undefined;
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isStale(lockPath: string, lock: { info: LockInfo | undefined; ageMs: number }): boolean {
  // A lock without valid content is a holder that died between creating and writing it (or is writing now).
  if (lock.info === undefined) return lock.ageMs > 10_000;
  const { info } = lock;
  if (info.host !== os.hostname()) return false;
  if (info.pid === process.pid) return info.threadId === threadId && !heldByThisThread.has(lockPath);
  return !processIsAlive(info.pid);
}

function createLock(lockPath: string, content: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeSync(fd, content);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Removes `lockPath` if it still holds `staleRaw`, under the slot's reclaim file. */
function reclaim(lockPath: string, reclaimPath: string, staleRaw: string, now: () => number): void {
  if (!createLock(reclaimPath, JSON.stringify({ pid: process.pid, threadId }))) return; // another reclaimer is at it
  try {
    const again = readLock(lockPath, now);
    if (again !== undefined && again.raw === staleRaw) fs.unlinkSync(lockPath);
  } finally {
    fs.unlinkSync(reclaimPath);
  }
}

async function loadOrCreateKey(keyPath: string, logger: Logger, now: () => number): Promise<PrivateKey> {
  if (fs.existsSync(keyPath)) {
    try {
      const mode = fs.statSync(keyPath).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        logger.warn(`peer identity ${keyPath} was readable by others (mode ${mode.toString(8)}); restricting it to 0600`);
        fs.chmodSync(keyPath, 0o600);
      }
      return privateKeyFromProtobuf(fs.readFileSync(keyPath));
    } catch (err) {
      const aside = `${keyPath}.corrupt-${now()}`;
      logger.warn(`peer identity ${keyPath} is unreadable (${(err as Error).message}); moved it to ${aside} and created a new one`);
      fs.renameSync(keyPath, aside);
    }
  }
  const key = await generateKeyPair('Ed25519');
  const tmp = `${keyPath}.${process.pid}-${threadId}-${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, keyPath);
  return key;
}

/**
 * Takes the lowest free identity slot (see the module guarantee). When `<cacheDir>/p2p/` cannot be made or
 * written (a read-only or unwritable cacheDir), it warns and returns an ephemeral identity instead of failing:
 * the node runs, and only its `/p2p/` address changes on restart.
 */
export async function acquirePeerIdentity(options: AcquireIdentityOptions): Promise<PeerIdentity> {
  const dir = path.join(options.cacheDir, 'p2p');
  try {
    return await acquireSlot(dir, options);
  } catch (err) {
    if (!isFileSystemError(err)) throw err;
    options.logger.warn(`cannot keep a peer identity in ${dir} (${(err as Error).message}); using an ephemeral identity (its /p2p/ address changes on restart)`);
    return ephemeralIdentity();
  }
}

function isFileSystemError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((err as NodeJS.ErrnoException).code!);
}

async function ephemeralIdentity(): Promise<PeerIdentity> {
  const privateKey = await generateKeyPair('Ed25519');
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), slot: -1, release() {} };
}

async function acquireSlot(dir: string, options: AcquireIdentityOptions): Promise<PeerIdentity> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const maxSlots = options.maxSlots ?? MAX_IDENTITY_SLOTS;
  const now = options.now ?? Date.now;
  for (let slot = 0; slot < maxSlots; slot++) {
    const lockPath = path.join(dir, `identity-${slot}.lock`);
    const content = JSON.stringify({ pid: process.pid, threadId, host: os.hostname(), nonce: randomBytes(8).toString('hex') } satisfies LockInfo);
    let held = createLock(lockPath, content);
    if (!held) {
      const existing = readLock(lockPath, now);
      if (existing !== undefined && isStale(lockPath, existing)) {
        reclaim(lockPath, path.join(dir, `identity-${slot}.reclaim`), existing.raw, now);
        held = createLock(lockPath, content);
      }
    }
    if (!held) continue;
    heldByThisThread.add(lockPath);
    installExitHook();
    let privateKey: PrivateKey;
    try {
      privateKey = await loadOrCreateKey(path.join(dir, `identity-${slot}.key`), options.logger, now);
    } catch (err) {
      heldByThisThread.delete(lockPath);
      fs.rmSync(lockPath, { force: true });
      throw err;
    }
    let released = false;
    return {
      privateKey,
      peerId: peerIdFromPrivateKey(privateKey).toString(),
      slot,
      release() {
        if (released) return;
        released = true;
        heldByThisThread.delete(lockPath);
        // Only remove the lock if it is still ours.
        const current = readLock(lockPath, now);
        if (current?.raw === content) fs.rmSync(lockPath, { force: true });
      },
    };
  }
  options.logger.warn(`all ${maxSlots} peer identity slots in ${dir} are in use; using an ephemeral identity (its /p2p/ address changes on restart)`);
  return ephemeralIdentity();
}
