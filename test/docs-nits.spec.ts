/**
 * Drift checks on prose that once was wrong: headings that named internal issue numbers, a "Fixed:" item among
 * security.md's known limits, the claim that the database file is not chmod'ed (it is set to 0600), and the
 * unexplained proxy p50 in the benchmark comparison.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

describe('documentation nits stay fixed', () => {
  it('no heading in README.md or docs/ names an internal issue number', () => {
    const files = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const bad = files.flatMap((file) => read(file).split('\n').filter((line) => /^#+ .*\bissue #?\d+/i.test(line)).map((line) => `${file}: ${line}`));
    expect(bad).to.deep.equal([]);
  });

  it('security.md: known limits are limits (no "Fixed:" item), and the database files are said to be 0600', () => {
    const text = read('docs/security.md');
    const limits = text.slice(text.indexOf('## Known limits'));
    expect(limits.split('\n').filter((line) => /^\d+\. \*\*Fixed/.test(line))).to.deep.equal([]);
    expect(text).to.not.match(/database file is not chmod/);
    expect(fs.readFileSync(path.join(ROOT, 'src/store/connection.ts'), 'utf8'), 'the code still forces 0600').to.contain('0o600');
  });

  it('README\'s requirements agree with engines, the version script, and say what to do about the native build', () => {
    const readme = read('README.md');
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const minimum = /^>=(\d+\.\d+)(?:\.0)?$/.exec(engines)?.[1];
    expect(minimum, `engines.node ${engines} is a plain >= range`).to.be.a('string');
    expect(readme).to.include(`**Node.js ${minimum} or later** (\`engines.node\` \`${engines}\`)`);
    const defaults = /versions=\((\d+(?: \d+)*)\)/.exec(read('scripts/test-node-versions.sh'))?.[1];
    expect(defaults, 'the default majors of scripts/test-node-versions.sh').to.be.a('string');
    expect(readme).to.include(`Node ${defaults!.split(' ').join(' and ')} are tested`);
    for (const phrase of ['builds from source with node-gyp', 'allowScripts', 'npm rebuild better-sqlite3', 'python3']) expect(readme).to.include(phrase);
  });

  it('operations.md covers GitHub Enterprise Server, outbound proxies, upgrading (with the current schema version), systemd and containers', () => {
    const text = read('docs/operations.md');
    for (const heading of ['## GitHub Enterprise Server', '## Outbound proxy', '## Upgrading', '## Running under systemd', '## Running in a container']) {
      expect(text).to.include(heading);
    }
    const schema = /export const SCHEMA_VERSION = (\d+);/.exec(read('src/store/schema.ts'))?.[1];
    expect(text).to.include(`\`PRAGMA user_version\` (${schema} today`);
    expect(text).to.include('/api/v3');
    expect(text).to.include('HTTPS_PROXY');
  });

  it('benchmarks.md explains why the proxy\'s p50 in the comparison matches no cache\'s', () => {
    const text = read('docs/benchmarks.md');
    if (!text.includes('this library: proxy')) return; // no comparison table to explain
    expect(text).to.match(/Why the proxy's p50/);
  });
});
