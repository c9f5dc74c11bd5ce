/**
 * The package as a user gets it: a clean clone (HEAD, no dist/, no node_modules) is packed with `npm pack`
 * (which must build it through `prepare`), the tarball is installed into a separate consumer project, and the
 * README's quick start is type-checked there (TypeScript strict, NodeNext) and run as the JavaScript it
 * compiles to, against a fake GitHub on loopback. Also: what the tarball holds, `require()` of the package,
 * and the installed CLI.
 *
 * No network: the consumer's dependencies come from the local npm cache (`npm ci --offline`), using a lockfile
 * made from this repository's package-lock.json (the same versions the repository is tested with). Install
 * scripts are not run there: better-sqlite3's native binary is copied from this repository's node_modules
 * (built for the Node running this spec) rather than compiled again for two CPU-minutes.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FakeGitHub } from '../support/fake-github/index.js';
import { makeTempDir } from '../support/temp-dir.js';
import { childEnv } from './support/child-env.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE_MODULES = fs.realpathSync(path.join(ROOT, 'node_modules'));
const TSC = path.join(NODE_MODULES, 'typescript/bin/tsc');

/** The ```ts block right after the README heading `### Plain` (the library quick start). */
export function readmeQuickStart(readme: string): string {
  const match = /^### Plain\s*\n+```ts\n([\s\S]*?)\n```/m.exec(readme);
  if (match?.[1] === undefined) throw new Error('README.md: no ```ts block after "### Plain"');
  return match[1];
}

/** Runs a command to completion without a shell; rejects with its output when it exits non-zero. */
async function sh(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** Runs `node args` asynchronously (the fake GitHub lives in this process), resolving with its exit and output. */
function node(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A clean copy of the repository: `git clone` of HEAD, or (outside a git checkout) its files without dist/ and node_modules. */
async function cleanCheckout(target: string): Promise<string> {
  let isGit = true;
  try {
    await run('git', ['-C', ROOT, 'rev-parse', '--is-inside-work-tree'], { cwd: ROOT });
  } catch {
    isGit = false;
  }
  if (isGit) {
    await sh('git', ['clone', '--quiet', '--no-hardlinks', ROOT, target], ROOT);
  } else {
    fs.cpSync(ROOT, target, {
      recursive: true,
      filter: (src) => !/(^|[\\/])(node_modules|dist|\.git)$/.test(path.relative(ROOT, src)),
    });
  }
  return target;
}

describe('the packed package, installed in a consumer project', function () {
  this.timeout(240_000);

  let temp: { dir: string; cleanup: () => void };
  let github: FakeGitHub;
  let files: string[];
  let consumer: string;

  before(async () => {
    temp = makeTempDir('gh-p2p-cache-package-');
    github = await FakeGitHub.start();
    github.setResource('/repos/octocat/hello-world', { id: 1, full_name: 'octocat/hello-world' });

    // 1. A clean clone packs: `prepare` builds dist/ (there is none in git).
    const clone = await cleanCheckout(path.join(temp.dir, 'clone'));
    expect(fs.existsSync(path.join(clone, 'dist')), 'the clean clone has no dist/').to.equal(false);
    fs.symlinkSync(NODE_MODULES, path.join(clone, 'node_modules'), 'dir');
    const packDir = path.join(temp.dir, 'pack');
    fs.mkdirSync(packDir);
    const packed = await sh('npm', ['pack', '--json', '--pack-destination', packDir, '--loglevel=error'], clone);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = info!.files.map((f) => f.path);
    const tarball = path.join(packDir, path.basename(info!.filename));

    // 2. A consumer project installs the tarball, its dependencies from the local npm cache.
    consumer = path.join(temp.dir, 'consumer');
    fs.mkdirSync(consumer);
    const spec = `file:${tarball}`;
    const pkg = JSON.parse(fs.readFileSync(path.join(clone, 'package.json'), 'utf8')) as Record<string, unknown>;
    const repoLock = JSON.parse(fs.readFileSync(path.join(clone, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
    const lock = {
      name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        '': { name: 'consumer', version: '1.0.0', dependencies: { 'github-p2p-cache': spec } },
        'node_modules/github-p2p-cache': {
          version: pkg['version'], resolved: spec, license: pkg['license'], dependencies: pkg['dependencies'],
          peerDependencies: pkg['peerDependencies'], peerDependenciesMeta: pkg['peerDependenciesMeta'], bin: pkg['bin'], engines: pkg['engines'],
        },
        ...Object.fromEntries(Object.entries(repoLock.packages).filter(([key, entry]) => key !== '' && entry.dev !== true && entry.link !== true)),
      },
    };
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { 'github-p2p-cache': spec } }));
    fs.writeFileSync(path.join(consumer, 'package-lock.json'), JSON.stringify(lock));
    await sh('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], consumer);
    const binary = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
    fs.mkdirSync(path.dirname(path.join(consumer, binary)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, binary), path.join(consumer, binary));
  });

  after(async () => {
    await github?.close();
    temp?.cleanup();
  });

  it('ships the built library, its types, the CLI, LICENSE and CHANGELOG; no tests, sources or source maps', () => {
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/bin/cli.js', 'cjs/index.cjs', 'LICENSE', 'CHANGELOG.md', 'README.md', 'package.json']) {
      expect(files, file).to.include(file);
    }
    expect(files.filter((f) => f.endsWith('.map')), 'source maps').to.deep.equal([]);
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), '.ts sources').to.deep.equal([]);
    expect(files.filter((f) => /^dist\/(test|bench|examples|support)\//.test(f)), 'tests, benchmarks, examples').to.deep.equal([]);
  });

  it('runs the README quick start as ESM JavaScript against the installed package', async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    fs.writeFileSync(path.join(consumer, 'quick-start.ts'), readmeQuickStart(readme) + '\n');
    fs.writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, // as `tsc --init` sets it; without it, consumers need @octokit/core's types installed
        types: ['node'], typeRoots: [path.join(NODE_MODULES, '@types')], outDir: 'out',
      },
      files: ['quick-start.ts'],
    }));
    // TypeScript strict, NodeNext: type-checks the quick start against the installed declarations, emits JS.
    await sh(process.execPath, [TSC, '-p', 'tsconfig.json'], consumer);
    const env = childEnv({ GITHUB_API_URL: github.url, CACHE_DIR: path.join(temp.dir, 'cache') });
    const result = await node(['out/quick-start.js'], consumer, env);
    expect(result.stderr).to.not.match(/Error/);
    expect(result.code).to.equal(0);
    expect(result.stdout).to.contain('200 origin octocat/hello-world');
  });

  it('imports from plain ESM JavaScript and answers require() with a clear ESM-only error', async () => {
    fs.writeFileSync(path.join(consumer, 'plain.mjs'), `
      import { getGlobalCache, shutdownGlobalCache, githubCachePlugin, startProxy } from 'github-p2p-cache';
      const cache = await getGlobalCache({ persistence: 'off' });
      await cache.put('get_repo_info:octo/hello', { stars: 3 }, { ttl: 60 });
      const value = await cache.get('get_repo_info:octo/hello');
      await shutdownGlobalCache();
      console.log(JSON.stringify({ value, plugin: typeof githubCachePlugin, proxy: typeof startProxy }));
    `);
    const esm = await node(['plain.mjs'], consumer, childEnv({}));
    expect(esm.code, esm.stderr).to.equal(0);
    expect(JSON.parse(esm.stdout)).to.deep.equal({ value: { stars: 3 }, plugin: 'function', proxy: 'function' });

    fs.writeFileSync(path.join(consumer, 'plain.cjs'), `
      try { require('github-p2p-cache'); console.log('loaded'); }
      catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }
    `);
    const cjs = await node(['plain.cjs'], consumer, childEnv({}));
    expect(cjs.code, cjs.stderr).to.equal(0);
    const error = JSON.parse(cjs.stdout) as { code: string; message: string };
    expect(error.message).to.contain('ESM only').and.to.contain('import(');
  });

  it('runs the installed CLI; `demo`, which needs the repository, says so', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/github-p2p-cache');
    const help = await node([bin, '--help'], consumer, childEnv({}));
    expect(help.code, help.stderr).to.equal(0);
    expect(help.stdout).to.contain('serve');
    expect(help.stdout, 'demo is not listed in the installed CLI').to.not.match(/^\s+demo\b/m);
    const demo = await node([bin, 'demo'], consumer, childEnv({}));
    expect(demo.code).to.equal(1);
    expect(demo.stderr).to.contain('clone of the repository');
  });
});
