/**
 * Every ```ts block of README.md and docs/*.md is type-checked (TypeScript strict, NodeNext, the decorator
 * settings README asks for) against this package, as a consumer would write it: each block is a module of its
 * own in a temp project whose `github-p2p-cache` resolves to this repository's built declarations (dist/index.d.ts). A block that is not
 * meant to stand alone is marked with `<!-- snippet: fragment -->` on the line before it, and skipped.
 *
 * Also a drift check on prose: inline code must not use `getStats()` as if it returned the stats (it returns a
 * Promise), in the documents this check owns.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir } from '../support/temp-dir.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE_MODULES = fs.realpathSync(path.join(ROOT, 'node_modules'));
const TSC = path.join(NODE_MODULES, 'typescript/bin/tsc');
const FRAGMENT = '<!-- snippet: fragment -->';

export interface Snippet {
  file: string;
  line: number;
  code: string;
  fragment: boolean;
}

/** The ```ts (or ```typescript) blocks of a Markdown text, with the line each starts on. */
export function tsBlocks(file: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const previous = lines.slice(0, start).reverse().find((l) => l.trim() !== '') ?? '';
    out.push({ file, line: start + 1, code: body.join('\n'), fragment: previous.trim() === FRAGMENT });
  }
  return out;
}

function documents(): string[] {
  const docs = fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

describe('code snippets in README.md and docs/', function () {
  this.timeout(120_000);

  it('finds the README quick starts, and a marked fragment is skipped', () => {
    const snippets = documents().flatMap((file) => tsBlocks(file, fs.readFileSync(path.join(ROOT, file), 'utf8')));
    expect(snippets.filter((s) => s.file === 'README.md').length).to.be.at.least(3);
    const marked = tsBlocks('x.md', `text\n\n${FRAGMENT}\n\`\`\`ts\nfoo;\n\`\`\`\n\`\`\`ts\nbar;\n\`\`\`\n`);
    expect(marked.map((s) => [s.code, s.fragment])).to.deep.equal([['foo;', true], ['bar;', false]]);
  });

  it('type-checks every ```ts block (strict, NodeNext) against the package', async () => {
    const snippets = documents().flatMap((file) => tsBlocks(file, fs.readFileSync(path.join(ROOT, file), 'utf8'))).filter((s) => !s.fragment);
    const temp = makeTempDir('gh-p2p-cache-snippets-');
    try {
      const dir = temp.dir;
      fs.symlinkSync(NODE_MODULES, path.join(dir, 'node_modules'), 'dir');
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'snippets', private: true, type: 'module' }));
      const names = snippets.map((s, i) => {
        const name = `${s.file.replace(/[^\w]+/g, '-')}-line-${s.line}-${i}.ts`;
        // `export {}` makes every block a module (top-level await, no shared globals between blocks).
        fs.writeFileSync(path.join(dir, name), `${s.code}\nexport {};\n`);
        return name;
      });
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true,
          experimentalDecorators: true, emitDecoratorMetadata: true, types: ['node'],
          paths: { 'github-p2p-cache': [path.join(ROOT, 'dist/index.d.ts')] }, // the declarations `npm run build` made
        },
        files: names,
      }));
      try {
        await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
      } catch (err) {
        const output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
        // Name the document and line of each failing block rather than the temp file.
        const named = output.replace(/([\w-]+)-line-(\d+)-\d+\.ts\((\d+),(\d+)\)/g, (_m, file: string, line: string, row: string, col: string) =>
          `${file.replace(/-md$/, '.md').replace(/^docs-/, 'docs/')} (block at line ${line}), snippet line ${row}:${col}`);
        expect.fail(`documentation snippets do not type-check:\n${named}`);
      }
    } finally {
      temp.cleanup();
    }
  });

  it('never shows getStats() as synchronous in README.md, operations.md or security.md', () => {
    for (const file of ['README.md', 'docs/operations.md', 'docs/security.md']) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      const bad = text.split('\n').map((line, i) => ({ line, n: i + 1 })).filter(({ line }) => /(?<!await [\w.]*)\bgetStats\(\)\s*\./.test(line));
      expect(bad.map(({ line, n }) => `${file}:${n}: ${line.trim()}`)).to.deep.equal([]);
    }
  });
});
