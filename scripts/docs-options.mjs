// Rewrites the configuration tables of README.md and docs/operations.md from the options table
// (src/options-table.ts). Run through `npm run docs:options`, which builds first.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OPTION_DOC_FILES, markedOptionTables, updateOptionTables } from '../dist/src/options-docs.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
let failed = false;
for (const file of OPTION_DOC_FILES) {
  const target = path.join(root, file);
  const before = fs.readFileSync(target, 'utf8');
  const tables = markedOptionTables(before);
  if (tables.length === 0) {
    process.stderr.write(`${file}: no <!-- options-table:start NAME --> marker; add one where the table belongs\n`);
    failed = true;
    continue;
  }
  const after = updateOptionTables(before);
  if (after === before) {
    process.stdout.write(`${file}: up to date (${tables.join(', ')})\n`);
  } else {
    fs.writeFileSync(target, after);
    process.stdout.write(`${file}: rewrote ${tables.join(', ')}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
