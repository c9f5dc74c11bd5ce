import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A library does not keep its user's process alive by itself: a script that creates caches with P2P on,
 * meshes them, uses them and ends, exits on its own (p2p.keepAlive false, the default); with keepAlive the
 * host holds the process open, as a server wants.
 */

const entry = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.js');

function script(keepAlive: boolean): string {
  return `
    const { GitHubAPICache } = await import(${JSON.stringify(entry)});
    const p2p = { enabled: true, sharedSecret: 'keep-alive-spec-secret-0123456789', listenHost: '127.0.0.1', listenPort: 0, keepAlive: ${keepAlive} };
    const a = await GitHubAPICache.create({ persistence: 'off', p2p });
    await a.p2pReady();
    const addr = (await a.getStats()).p2p.listenAddrs[0];
    const b = await GitHubAPICache.create({ persistence: 'off', p2p: { ...p2p, bootstrapPeers: [addr] } });
    await b.p2pReady();
    for (let i = 0; i < 200 && (await a.getStats()).p2p.connectedPeers === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await a.put('k', 1);
    await b.get('k');
    console.log('connected=' + (await a.getStats()).p2p.connectedPeers);
  `;
}

/** Runs the script; resolves with how it ended: 'exited' by itself, or 'alive' when still running after `aliveAfterMs`. */
/** The script running now: killed after each spec, so a spec that fails (or times out) leaves no process behind. */
let current: ChildProcess | undefined;

function run(source: string, aliveAfterMs: number): Promise<{ ended: 'exited' | 'alive'; stdout: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
  current = child;
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const check = setInterval(() => {
      // Count from the script's own end (its output), not from the spawn: start-up time varies with load.
      if (timer === undefined && stdout.includes('connected=')) {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve({ ended: 'alive', stdout });
        }, aliveAfterMs);
      }
    }, 20);
    child.once('exit', () => {
      clearInterval(check);
      clearTimeout(timer);
      resolve({ ended: 'exited', stdout });
    });
  });
}

describe('the P2P host and the life of the process', function () {
  afterEach(() => {
    current?.kill('SIGKILL');
    current = undefined;
  });
  this.timeout(60_000);

  it('lets a script with P2P on end when its own work does (keepAlive off, the default)', async () => {
    const result = await run(script(false), 15_000);
    expect(result.stdout).to.include('connected=1');
    expect(result.ended).to.equal('exited');
  });

  it('holds the process open with keepAlive on, as a server wants', async () => {
    const result = await run(script(true), 3_000);
    expect(result.stdout).to.include('connected=1');
    expect(result.ended).to.equal('alive');
  });
});
