#!/usr/bin/env node
/**
 * `npm run check:size` (part of `npm test`): no source file under src/, providers/ or bin/ is longer than
 * 400 lines unless its header comment says why, on a line starting `Size:` followed by the reason:
 *
 *   /**
 *    * PeerNetwork: …
 *    * Size: one state machine per stream; splitting it would scatter the protocol's invariants.
 *    *\/
 *
 * A long file is usually several units that want to be separate modules; the `Size:` line makes keeping
 * one a decision someone wrote down rather than drift. The header comment is every comment before the
 * file's first line of code other than its imports. Prints each offender with its line count and exits 1
 * when there is one.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_LINES = 400;
const CHECKED_DIRECTORIES = ['src', 'providers', 'bin'];
const SOURCE_FILE = /\.(ts|mts|cts|js|mjs|cjs)$/;
const DECLARATION_FILE = /\.d\.(ts|mts|cts)$/;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Source files under `directory` (relative to the package root), depth first, sorted. */
async function sourceFiles(directory) {
  let entries;
  try {
    entries = await readdir(path.join(root, directory), { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  const files = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const relative = path.posix.join(directory, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(relative)));
    else if (entry.isFile() && SOURCE_FILE.test(entry.name) && !DECLARATION_FILE.test(entry.name)) files.push(relative);
  }
  return files;
}

/** Lines of `text` as an editor numbers them (a final newline does not start another line). */
function lineCount(text) {
  if (text === '') return 0;
  const lines = text.split(/\r?\n/).length;
  return text.endsWith('\n') ? lines - 1 : lines;
}

/**
 * The text of the comments before the first line of code that is not part of an import (or a shebang),
 * one entry per line with comment markers removed.
 */
export function headerCommentLines(text) {
  const out = [];
  let inBlock = false;
  let inImport = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (inBlock) {
      const end = line.indexOf('*/');
      out.push(stripMarkers(end === -1 ? line : line.slice(0, end)));
      if (end !== -1) inBlock = false;
      continue;
    }
    if (inImport) {
      if (/\bfrom\s*['"]|^['"].*['"];?$|;\s*$/.test(line)) inImport = false;
      continue;
    }
    if (line === '' || line.startsWith('#!')) continue;
    if (line.startsWith('//')) {
      out.push(stripMarkers(line.slice(2)));
      continue;
    }
    if (line.startsWith('/*')) {
      const end = line.indexOf('*/', 2);
      out.push(stripMarkers(end === -1 ? line.slice(2) : line.slice(2, end)));
      if (end === -1) inBlock = true;
      continue;
    }
    if (/^import\b/.test(line)) {
      // A multi-line import runs until its `from '…'` (or a side-effect import's string) closes it.
      if (!/\bfrom\s*['"]|^import\s*['"]|;\s*(\/\/.*)?$/.test(line)) inImport = true;
      continue;
    }
    break;
  }
  return out;
}

function stripMarkers(line) {
  return line.replace(/^\s*\*+\s?/, '').trim();
}

/** The reason given on the header comment's `Size:` line, or undefined when there is none. */
export function sizeReason(text) {
  for (const line of headerCommentLines(text)) {
    const match = /^Size:\s*(\S.*)$/.exec(line);
    if (match) return match[1];
  }
  return undefined;
}

async function main() {
  const offenders = [];
  let checked = 0;
  for (const directory of CHECKED_DIRECTORIES) {
    for (const file of await sourceFiles(directory)) {
      checked++;
      const text = await readFile(path.join(root, file), 'utf8');
      const lines = lineCount(text);
      if (lines > MAX_LINES && sizeReason(text) === undefined) offenders.push({ file, lines });
    }
  }
  if (offenders.length === 0) {
    console.log(`check:size: ${checked} source files under ${CHECKED_DIRECTORIES.join('/, ')}/ are within ${MAX_LINES} lines or say why not.`);
    return;
  }
  console.error(`check:size: ${offenders.length} source file(s) over ${MAX_LINES} lines without a \`Size:\` line in the header comment:`);
  const width = Math.max(...offenders.map((o) => o.file.length));
  for (const { file, lines } of offenders.sort((a, b) => b.lines - a.lines)) {
    console.error(`  ${file.padEnd(width)}  ${String(lines).padStart(5)} lines`);
  }
  console.error('Split the file, or add a line starting `Size:` to its header comment saying why it is one unit.');
  process.exitCode = 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
