/**
 * The Dockerfile: checked everywhere without Docker (what it copies exists and is not excluded by
 * .dockerignore, and its HEALTHCHECK command, run here with Node against a real `serve`, tells healthy from
 * not), and built and run (until Docker reports the container healthy) only where a Docker daemon answers.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir } from '../support/temp-dir.js';
import { childEnv } from './support/child-env.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/bin/cli.js');
const dockerfile = (): string => fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

/** The `node -e` script of the HEALTHCHECK's exec-form CMD. */
function healthcheckScript(text: string): string {
  const match = /^HEALTHCHECK[^\n]*(?:\\\n[^\n]*)*?CMD (\[.*\])\s*$/m.exec(text);
  if (match?.[1] === undefined) throw new Error('Dockerfile: no HEALTHCHECK ... CMD [...] line');
  const argv = JSON.parse(match[1]) as string[];
  expect(argv.slice(0, 2)).to.deep.equal(['node', '-e']);
  return argv[2]!;
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('Dockerfile', function () {
  this.timeout(120_000);

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    const sources = [...dockerfile().matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources.length).to.be.greaterThan(3);
    for (const source of sources) {
      expect(fs.existsSync(path.join(ROOT, source)), `${source} exists`).to.equal(true);
      expect(ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `${source} is not in .dockerignore`).to.equal(false);
    }
    expect(dockerfile()).to.match(/^ENTRYPOINT \["node", "--min-semi-space-size=16", "--heap-growing-percent=100", "dist\/bin\/cli\.js"\]$/m);
    expect(dockerfile()).to.match(/^USER node$/m);
  });

  it('has a HEALTHCHECK whose command passes while /healthz answers 200 and fails when nothing listens', async () => {
    const script = healthcheckScript(dockerfile());
    expect(script).to.contain('/healthz');
    const temp = makeTempDir();
    const serve = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--persistence', 'off'], { env: childEnv({ CACHE_DIR: temp.dir }), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        serve.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          const line = out.split('\n').find((l) => l.includes('"listening"'));
          if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
        });
        serve.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      const healthy = await run(process.execPath, ['-e', script], { env: childEnv({ CACHE_PROXY_PORT: String(port) }) }).then(() => 0, (err: { code?: number }) => err.code ?? 1);
      expect(healthy, 'healthy while serving').to.equal(0);
      serve.kill('SIGTERM');
      await exitCode(serve);
      const unhealthy = await run(process.execPath, ['-e', script], { env: childEnv({ CACHE_PROXY_PORT: String(port) }) }).then(() => 0, (err: { code?: number }) => err.code ?? 1);
      expect(unhealthy, 'unhealthy once stopped').to.equal(1);
    } finally {
      if (serve.exitCode === null && serve.signalCode === null) serve.kill('SIGKILL');
      temp.cleanup();
    }
  });

  it('builds and becomes healthy with `docker build` / `docker run` (only where a Docker daemon answers)', async function () {
    try {
      await run('docker', ['info'], { timeout: 15_000 });
    } catch (err) {
      const reason = (err as { code?: string }).code === 'ENOENT' ? 'no docker client' : 'no Docker daemon answers `docker info`';
      console.log(`      (skipped: ${reason}; the Dockerfile is checked statically above)`);
      this.skip();
    }
    this.timeout(900_000);
    const tag = `github-p2p-cache-spec:${process.pid}`;
    await run('docker', ['build', '-t', tag, ROOT], { maxBuffer: 64 * 1024 * 1024 });
    const { stdout } = await run('docker', ['run', '-d', '--health-interval', '1s', tag]);
    const id = stdout.trim();
    try {
      let status = '';
      for (let i = 0; i < 120 && status !== 'healthy'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        status = (await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', id])).stdout.trim();
        if (status === 'unhealthy') break;
      }
      expect(status).to.equal('healthy');
    } finally {
      await run('docker', ['rm', '-f', id]).catch(() => undefined);
      await run('docker', ['rmi', '-f', tag]).catch(() => undefined);
    }
  });
});
