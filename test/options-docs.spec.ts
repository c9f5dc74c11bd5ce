import { expect } from 'chai';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createProgram } from '../bin/cli.js';
import { resolveOptions } from '../src/options.js';
import { markedOptionTables, OPTION_DOC_FILES, OptionDocsError, updateOptionTables } from '../src/options-docs.js';
import { OPTION_TABLE, type OptionPath } from '../src/options-table.js';

const ROOT = new URL('../../', import.meta.url);

describe('options table', () => {
  for (const file of OPTION_DOC_FILES) {
    it(`generates the configuration tables of ${file}`, () => {
      const text = fs.readFileSync(fileURLToPath(new URL(file, ROOT)), 'utf8');
      expect(markedOptionTables(text), `${file} has no <!-- options-table:start NAME --> marker`).not.to.be.empty;
      const generated = updateOptionTables(text);
      if (generated !== text) {
        expect.fail(`${file}: a configuration table differs from what src/options-table.ts generates; run \`npm run docs:options\``);
      }
    });
  }

  it('rewrites only the marked region, and refuses unknown or unclosed tables', () => {
    const doc = 'before\n<!-- options-table:start library-only note -->\nstale\n<!-- options-table:end library-only -->\nafter\n';
    const updated = updateOptionTables(doc);
    expect(updated).to.match(/^before\n<!-- options-table:start library-only note -->\n\| option \|/);
    expect(updated).to.match(/\n<!-- options-table:end library-only -->\nafter\n$/);
    expect(updated).not.to.include('stale');
    expect(updateOptionTables(updated)).to.equal(updated);
    expect(() => updateOptionTables('<!-- options-table:start nope -->\n<!-- options-table:end nope -->')).to.throw(OptionDocsError, /nope/);
    expect(() => updateOptionTables('<!-- options-table:start library -->\n')).to.throw(OptionDocsError, /no closing/);
  });

  it('has one row per resolved option', () => {
    const resolved = resolveOptions({}, {});
    const paths = [
      ...Object.keys(resolved).filter((key) => key !== 'p2p'),
      ...Object.keys(resolved.p2p).map((key) => `p2p.${key}`),
    ].sort();
    expect(OPTION_TABLE.map((row) => row.path).sort()).to.deep.equal(paths);
  });

  it('declares each row\'s flag, with its doc and default, on every cache-opening command', () => {
    const program = createProgram();
    for (const name of ['serve', 'get', 'stats', 'peers']) {
      const command = program.commands.find((c) => c.name() === name)!;
      const help = command.helpInformation().replace(/\s+/g, ' ');
      for (const row of OPTION_TABLE) {
        if (row.flag === undefined) continue;
        const option = command.options.find((o) => o.long === row.flag!.name);
        expect(option, `${name} ${row.flag.name}`).not.to.equal(undefined);
        expect(help, `${name} --help`).to.include(row.doc.replaceAll('`', ''));
        expect(help, `${name} --help`).to.include(`(default: ${row.defaultText.replaceAll('`', '')}`);
      }
    }
  });

  it('reads each row\'s environment variable', () => {
    const samples: Partial<Record<OptionPath, [string, unknown]>> = {
      cacheDir: ['/tmp/options-docs', '/tmp/options-docs'],
      defaultTtl: ['12', 12],
      maxEntries: ['34', 34],
      maxEntryBytes: ['4096', 4096],
      githubApiUrl: ['http://127.0.0.1:1/api/', 'http://127.0.0.1:1/api'],
      githubUploadsUrl: ['http://127.0.0.1:2/up/', 'http://127.0.0.1:2/up'],
      'p2p.sharedSecret': ['0123456789abcdef0123', '0123456789abcdef0123'],
      'p2p.enabled': ['no', false],
      'p2p.listenPort': ['9999', 9999],
      'p2p.membership': ['pnet', 'pnet'],
      'p2p.bootstrapPeers': ['/ip4/10.0.0.2/tcp/9100', ['/ip4/10.0.0.2/tcp/9100']],
    };
    for (const row of OPTION_TABLE) {
      if (row.env === undefined) continue;
      const sample = samples[row.path];
      expect(sample, `a sample value for ${row.env}`).not.to.equal(undefined);
      const resolved = resolveOptions({}, { [row.env]: sample![0] }) as unknown as Record<string, unknown> & { p2p: Record<string, unknown> };
      const value = row.path.startsWith('p2p.') ? resolved.p2p[row.path.slice(4)] : resolved[row.path];
      expect(value, row.env).to.deep.equal(sample![1]);
    }
  });
});
