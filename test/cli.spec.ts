import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Importing the CLI module also makes `tsc -p tsconfig.json` compile bin/ (tsconfig's include lists no bin/).
import { createProgram } from '../bin/cli.js';
import { p2pPort } from '../bin/commands/serve.js';
import { SERVICE_NODE_FLAGS } from '../bin/node-flags.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { makeTempDir } from '../support/temp-dir.js';
import { childEnv } from './support/child-env.js';

const CLI = fileURLToPath(new URL('../bin/cli.js', import.meta.url));
const TOKEN_A = 'test_cliAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}


const running = new Set<ChildProcess>();

function spawnCli(args: string[], env: Record<string, string>, nodeFlags: readonly string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeFlags, CLI, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Runs the CLI to completion. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return new Promise((resolve) => {
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('github-p2p-cache CLI', () => {
  let github: FakeGitHub;
  let temp: { dir: string; cleanup: () => void };
  let env: Record<string, string>;

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' } } });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello' });
    github.setResource('/repos/octo/secret', { id: 2, name: 'secret' }, { visibleTo: [TOKEN_A] });
    temp = makeTempDir();
    env = { CACHE_DIR: temp.dir, GITHUB_API_URL: github.url };
  });
  afterEach(async () => {
    await Promise.all([...running].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    })));
    await github.close();
    temp.cleanup();
  });

  it('has the commands serve, get, stats, peers and demo', () => {
    const program = createProgram();
    expect(program.commands.map((c) => c.name())).to.deep.equal(['serve', 'get', 'stats', 'peers', 'demo']);
    for (const command of program.commands) expect(command.description()).not.to.equal('');
  });

  describe('get', () => {
    it('prints {status, source, data} from GitHub, then from the disk cache in a new process, never the token', async () => {
      const first = await cli(['get', '/repos/octo/hello'], { ...env, GITHUB_TOKEN: TOKEN_A });
      expect(first.code, first.stderr).to.equal(0);
      expect(JSON.parse(first.stdout)).to.deep.equal({ status: 200, source: 'origin', data: { id: 1, name: 'hello' } });

      const second = await cli(['get', 'repos/octo/hello'], { ...env, GITHUB_TOKEN: TOKEN_A });
      expect(second.code, second.stderr).to.equal(0);
      expect(JSON.parse(second.stdout)).to.include({ status: 200, source: 'disk' });
      expect(github.stats.requests).to.equal(1);
      for (const run of [first, second]) expect(run.stdout + run.stderr).not.to.include(TOKEN_A);
    });

    it('takes the token from the variable named by --token-env, and fills route parameters', async () => {
      const run = await cli(['get', 'GET /repos/{owner}/{repo}', '-p', 'owner=octo', '-p', 'repo=secret', '--token-env', 'MY_TOKEN', '--persistence', 'off'],
        { ...env, MY_TOKEN: TOKEN_A });
      expect(run.code, run.stderr).to.equal(0);
      expect(JSON.parse(run.stdout)).to.deep.include({ status: 200, source: 'origin' });
      expect(run.stdout + run.stderr).not.to.include(TOKEN_A);
    });

    it('prints GitHub\'s error and exits 1 when GitHub refuses', async () => {
      const run = await cli(['get', '/repos/octo/secret', '--persistence', 'off'], env);
      expect(run.code).to.equal(1);
      expect(JSON.parse(run.stdout)).to.deep.include({ status: 404, source: 'origin' });
      expect(run.stderr).to.include('404');
    });

    it('exits 2 on a P2P listen address this machine does not have, naming the address, the port and the options to change', async () => {
      const run = await cli(['get', '/repos/octo/hello', '--p2p', '--listen-host', '10.123.45.67', '--listen-port', '9177', '--persistence', 'off'],
        { ...env, CACHE_P2P_SHARED_SECRET: 'cli-spec-shared-secret-0123456789' });
      expect(run.code, run.stderr).to.equal(2);
      expect(run.stderr).to.include('10.123.45.67:9177').and.to.include('--listen-host').and.to.include('--listen-port');
      expect(run.stderr).to.not.include('faultTolerance');
      expect(run.stderr).to.not.include('try again');
      expect(github.stats.requests).to.equal(0);
    });

    it('exits 2 when --token-env names a variable that is not set', async () => {
      const run = await cli(['get', '/repos/octo/hello', '--token-env', 'NOT_SET_ANYWHERE', '--persistence', 'off'], env);
      expect(run.code).to.equal(2);
      expect(run.stderr).to.include('NOT_SET_ANYWHERE');
      expect(github.stats.requests).to.equal(0);
    });
  });

  describe('stats and peers', () => {
    it('stats prints this process\'s cache statistics as JSON (entries on disk included), never the token', async () => {
      await cli(['get', '/repos/octo/hello'], { ...env, GITHUB_TOKEN: TOKEN_A });
      const run = await cli(['stats'], { ...env, GITHUB_TOKEN: TOKEN_A });
      expect(run.code, run.stderr).to.equal(0);
      const stats = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(stats).to.include({ persistence: 'sqlite', apiCallsMade: 0 });
      expect(stats['size']).to.be.at.least(1);
      expect(run.stdout + run.stderr).not.to.include(TOKEN_A);
    });

    it('stats --url and peers --url read a running proxy', async () => {
      const serve = spawnCli(['serve', '--port', '0', '--persistence', 'off'], env);
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        serve.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          const line = out.split('\n').find((l) => l.includes('"listening"'));
          if (line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
        });
        serve.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      await (await fetch(`${url}/repos/octo/hello`, { headers: { authorization: `token ${TOKEN_A}` } })).text();

      const stats = await cli(['stats', '--url', url]);
      expect(stats.code, stats.stderr).to.equal(0);
      const parsed = JSON.parse(stats.stdout) as { apiCallsMade: number; proxy: { requests: number } };
      expect(parsed.apiCallsMade).to.equal(1);
      expect(parsed.proxy.requests).to.equal(1);

      const peers = await cli(['peers', '--url', url]);
      expect(peers.code, peers.stderr).to.equal(0);
      expect(peers.stdout).to.match(/^P2P disabled/);
    });

    it('peers says "P2P disabled" when no P2P host runs', async () => {
      const run = await cli(['peers', '--persistence', 'off'], env);
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.match(/^P2P disabled/);
    });

    it('stats --url names the address it could not reach and exits 1', async () => {
      const run = await cli(['stats', '--url', 'http://127.0.0.1:1']);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.include('http://127.0.0.1:1/_cache/stats');
    });
  });

  describe('serve start-up', () => {
    /** Starts `serve` and resolves with its `listening` line, parsed. */
    async function listening(args: string[], extra: Record<string, string>): Promise<Record<string, unknown>> {
      return (await started(args, extra)).line;
    }

    /** Starts `serve` (node given `nodeFlags`) and resolves with its `listening` line, parsed, and what it wrote on stderr until then. */
    function started(args: string[], extra: Record<string, string>, nodeFlags: readonly string[] = []): Promise<{ line: Record<string, unknown>; stderr: string }> {
      const serve = spawnCli(['serve', '--port', '0', ...args], { ...env, ...extra }, nodeFlags);
      return new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        serve.stderr!.on('data', (chunk: Buffer) => { err += chunk.toString('utf8'); });
        serve.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          const line = out.split('\n').find((l) => l.includes('"listening"'));
          if (line !== undefined) resolve({ line: JSON.parse(line) as Record<string, unknown>, stderr: err });
        });
        serve.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
    }

    it('warns when a P2P member runs without the service\'s Node flags, naming them and how to start it; not with them, nor with P2P off', async () => {
      const p2pOn = { CACHE_P2P_SHARED_SECRET: 'a-test-secret-of-32-characters!!' };
      const p2pArgs = ['--persistence', 'off', '--listen-host', '127.0.0.1', '--listen-port', '0'];
      const without = await started(p2pArgs, p2pOn);
      expect(without.stderr).to.include('warning: Node was started without --min-semi-space-size=16 --heap-growing-percent=100')
        .and.to.include('"Node flags"').and.to.include(`node ${SERVICE_NODE_FLAGS.join(' ')} `);
      const withOne = await started(p2pArgs, p2pOn, ['--min-semi-space-size=16']);
      expect(withOne.stderr).to.include('warning: Node was started without --heap-growing-percent=100:');
      const withAll = await started(p2pArgs, p2pOn, SERVICE_NODE_FLAGS);
      expect(withAll.stderr).to.not.include('Node was started without');
      const p2pOff = await started(['--persistence', 'off'], {});
      expect(p2pOff.line['p2p']).to.equal(null);
      expect(p2pOff.stderr).to.not.include('Node was started without');
    });

    it('a port in use fails before the cache directory or the SQLite file is created', async () => {
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as net.AddressInfo).port;
      const cacheDir = path.join(temp.dir, 'not-yet');
      try {
        const run = await cli(['serve', '--host', '127.0.0.1', '--port', String(port)], { ...env, CACHE_DIR: cacheDir });
        expect(run.code).to.equal(1);
        expect(run.stderr).to.include(`Cannot listen on 127.0.0.1:${port}`).and.to.include('in use');
        expect(fs.existsSync(path.join(cacheDir, 'cache.sqlite')), 'cache.sqlite left behind').to.equal(false);
        expect(fs.existsSync(cacheDir), 'cache directory left behind').to.equal(false);
      } finally {
        await new Promise((resolve) => holder.close(resolve));
      }
    });

    it('--persistence off prints no cacheDir; SQLite prints it', async () => {
      expect((await listening(['--persistence', 'off'], {}))['cacheDir']).to.equal(null);
      expect((await listening([], {}))['cacheDir']).to.equal(temp.dir);
    });

    it('the listening line shows a P2P port fallback', async () => {
      const holder = net.createServer((socket) => socket.destroy()); // holds the port, never a P2P member
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as net.AddressInfo).port;
      try {
        const line = await listening(['--persistence', 'off', '--listen-host', '127.0.0.1', '--listen-port', String(port)],
          { CACHE_P2P_SHARED_SECRET: 'a-test-secret-of-32-characters!!' });
        const p2p = line['p2p'] as { requestedPort: number; boundPort: number; portFallback: boolean };
        expect(p2p.requestedPort).to.equal(port);
        expect(p2p.portFallback).to.equal(true);
        expect(p2p.boundPort).to.be.a('number').and.not.equal(port);
      } finally {
        await new Promise((resolve) => holder.close(resolve));
      }
    });

    it('`npm start --silent` prints exactly JSON lines on stdout (prestart builds quietly), as README says', async function () {
      this.timeout(120_000);
      const root = fileURLToPath(new URL('../..', import.meta.url));
      const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
      expect(readme, 'README tells scripts how to get only the JSON line').to.include(`node ${SERVICE_NODE_FLAGS.join(' ')} dist/bin/cli.js serve`).and.to.include('npm start --silent');
      const npm = spawn('npm', ['start', '--silent', '--', '--port', '0', '--persistence', 'off'], { cwd: root, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(npm);
      let out = '';
      let err = '';
      npm.stderr!.on('data', (chunk: Buffer) => { err += chunk.toString('utf8'); });
      const pid = await new Promise<number>((resolve, reject) => {
        npm.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          if (out.includes('\n')) {
            const first = out.split('\n')[0]!;
            try {
              resolve((JSON.parse(first) as { event: string; pid: number }).pid);
            } catch {
              reject(new Error(`stdout's first line is not JSON: ${JSON.stringify(first)}; stderr: ${err}`));
            }
          }
        });
        npm.once('exit', (code) => reject(new Error(`npm start exited ${code}: ${err}`)));
      });
      process.kill(pid, 'SIGTERM');
      await new Promise((resolve) => npm.once('close', resolve));
      const lines = out.trim().split('\n');
      for (const line of lines) expect(() => JSON.parse(line), `stdout line ${JSON.stringify(line)}`).to.not.throw();
      expect(lines.map((line) => (JSON.parse(line) as { event: string }).event)).to.deep.equal(['listening', 'stopped']);
    });

    it('p2pPort reads the bound port and the fallback from the stats', () => {
      expect(p2pPort({ p2p: { boundPort: 9100, portFallback: false } }, 9100)).to.deep.equal({ requestedPort: 9100, boundPort: 9100, portFallback: false });
      expect(p2pPort({ p2p: { boundPort: 41234 } }, 9100)).to.deep.equal({ requestedPort: 9100, boundPort: 41234, portFallback: true });
      expect(p2pPort({ p2p: { boundPort: 41234 } }, 0).portFallback).to.equal(false);
    });
  });

  describe('usage', () => {
    for (const command of [[], ['serve'], ['get'], ['stats'], ['peers'], ['demo']]) {
      it(`prints help for ${['github-p2p-cache', ...command].join(' ')} --help and exits 0`, async () => {
        const run = await cli([...command, '--help']);
        expect(run.code).to.equal(0);
        expect(run.stdout).to.include(`Usage: ${['github-p2p-cache', ...command].join(' ')}`);
      });
    }

    const bad: Array<{ args: string[]; env?: Record<string, string>; names: string }> = [
      { args: ['serve', '--port', 'abc'], names: '--port' },
      { args: ['serve', '--port', '70000'], names: '--port' },
      { args: ['get', '/x', '--default-ttl', 'soon'], names: '--default-ttl' },
      { args: ['stats', '--max-entries', '0'], names: 'Invalid --max-entries' },
      { args: ['stats', '--persistence', 'sometimes'], names: '--persistence' },
      { args: ['serve', '--bogus'], names: '--bogus' },
      { args: ['serve', '--p2p', '--port', '0'], names: 'Invalid --p2p' },
      { args: ['stats'], env: { CACHE_DEFAULT_TTL: 'soon' }, names: 'CACHE_DEFAULT_TTL' },
      { args: ['frobnicate'], names: 'frobnicate' },
      { args: ['stats', '--bootstrap-peers', 'not-a-multiaddr,/ip4/10.0.0.2/tcp/9100'], names: 'entry 1 of 2, "not-a-multiaddr", is not a multiaddr' },
      { args: ['stats'], env: { CACHE_BOOTSTRAP_PEERS: '/ip4/10.0.0.2/tcp/9100,/foo' }, names: 'entry 2 of 2, "/foo", is not a multiaddr' },
      { args: ['stats'], env: { CACHE_ENABLE_P2P: 'maybe' }, names: '1/true/yes/on or 0/false/no/off' },
    ];
    for (const { args, env: extra, names } of bad) {
      it(`exits 2 and names the problem for: ${args.join(' ')}${extra ? ` with ${Object.keys(extra).join(', ')}` : ''}`, async () => {
        const run = await cli(args, { CACHE_DIR: temp.dir, ...extra });
        expect(run.code, run.stderr).to.equal(2);
        expect(run.stderr).to.include(names);
      });
    }

    it('warns that --shared-secret shows in ps', async () => {
      const run = await cli(['stats', '--persistence', 'off', '--no-p2p', '--shared-secret', 'x'.repeat(32)], { CACHE_DIR: temp.dir });
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stderr).to.include('CACHE_P2P_SHARED_SECRET');
      expect(run.stderr).not.to.include('x'.repeat(32));
    });
  });
});
