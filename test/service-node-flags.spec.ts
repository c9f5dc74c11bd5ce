import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { SERVICE_NODE_FLAGS } from '../bin/node-flags.js';

/**
 * The service starts Node with SERVICE_NODE_FLAGS wherever this project starts it: `npm start`, the Docker image
 * and the systemd unit in docs/operations.md (bin/node-flags.ts says why). A start that drops them
 * runs a member whose CPU per peer hit can triple after it was idle, or that runs a full GC every few hundred ms
 * while it serves one peer hit at a time.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');
const flags = SERVICE_NODE_FLAGS.join(' ');

describe('the service\'s Node flags', () => {
  it('are the ones the benchmarks start members with, and Node accepts them', () => {
    expect(SERVICE_NODE_FLAGS).to.deep.equal(['--min-semi-space-size=16', '--heap-growing-percent=100']);
    // An unknown or malformed flag would make node exit with "bad option".
    const out = execFileSync(process.execPath, [...SERVICE_NODE_FLAGS, '-e', 'process.stdout.write(String(require("node:v8").getHeapSpaceStatistics().length > 0))'], { encoding: 'utf8' });
    expect(out).to.equal('true');
  });

  it('npm start runs node with them', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).to.equal(`node ${flags} dist/bin/cli.js serve`);
  });

  it('the Docker image\'s ENTRYPOINT runs node with them', () => {
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'));
    expect(entry, 'an ENTRYPOINT line').to.not.equal(null);
    expect(JSON.parse(entry![1]!)).to.deep.equal(['node', ...SERVICE_NODE_FLAGS, 'dist/bin/cli.js']);
  });

  it('the systemd unit and the production advice in docs/operations.md run node with them', () => {
    const ops = read('docs/operations.md');
    expect(ops).to.include(`ExecStart=/usr/bin/node ${flags} /opt/github-p2p-cache/dist/bin/cli.js serve`);
    expect(ops).to.include(`\`node ${flags} dist/bin/cli.js serve\``);
    expect(ops).to.not.match(/ExecStart=\/usr\/bin\/node \/opt/);
  });
});
