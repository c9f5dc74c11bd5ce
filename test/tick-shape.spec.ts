import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { heldTickObject, holdTickShape } from '../src/tick-shape.js';

/**
 * The tick shape (src/tick-shape.ts): once a cache is created, the process holds one spent tick object, and a tick
 * object made after full GCs, with no other tick object alive across them, still has the held one's hidden class
 * (the class V8 would otherwise clear and rebuild). Checked in a child process run with V8's natives syntax
 * (`%HaveSameMap`), which is not TypeScript: its script is written out as JavaScript.
 */

const LIBRARY = pathToFileURL(path.resolve(import.meta.dirname, '../src/github-api-cache.js')).href;
const TICK_SHAPE = pathToFileURL(path.resolve(import.meta.dirname, '../src/tick-shape.js')).href;

const CHILD = `
import { executionAsyncResource } from 'node:async_hooks';
const { GitHubAPICache } = await import(${JSON.stringify(LIBRARY)});
const { heldTickObject } = await import(${JSON.stringify(TICK_SHAPE)});
const turn = () => new Promise((resolve) => setImmediate(resolve));
const cache = await GitHubAPICache.create({ persistence: 'off' });
await cache.close();
for (let i = 0; i < 100; i++) process.nextTick(() => {});
await turn();
await turn();
globalThis.gc();
globalThis.gc();
await turn();
let fresh;
process.nextTick(() => { fresh = executionAsyncResource(); });
await turn();
const held = heldTickObject();
process.stdout.write(JSON.stringify({ held: typeof held, sameClass: held !== undefined && %HaveSameMap(held, fresh) }));
`;

function childReport(): { held: string; sameClass: boolean } {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-p2p-cache-tick-shape-'));
  try {
    const script = path.join(dir, 'child.mjs');
    writeFileSync(script, CHILD);
    const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', script], { encoding: 'utf8', timeout: 30_000 });
    if (run.status !== 0) throw new Error(`the child exited with ${run.status}: ${run.stderr.slice(0, 500)}`);
    return JSON.parse(run.stdout) as { held: string; sameClass: boolean };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the tick shape held for the process (tick-shape.ts)', function () {
  this.timeout(60_000);

  it('holds one spent tick object, once, however often it is asked', async () => {
    holdTickShape();
    await new Promise((resolve) => setImmediate(resolve));
    const held = heldTickObject();
    expect(held).to.be.an('object');
    expect(typeof (held as { callback?: unknown }).callback).to.equal('function');
    holdTickShape();
    await new Promise((resolve) => setImmediate(resolve));
    expect(heldTickObject()).to.equal(held);
  });

  it('keeps the tick objects\' hidden class through full GCs once a cache was created', () => {
    for (let run = 0; run < 3; run++) expect(childReport(), `run ${run + 1}`).to.deep.equal({ held: 'object', sameClass: true });
  });
});
