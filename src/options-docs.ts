/**
 * The configuration tables of README.md and docs/operations.md, generated from the options table
 * (src/options-table.ts). Each table sits between marker comments,
 * `<!-- options-table:start NAME ... -->` and `<!-- options-table:end NAME -->`; `npm run docs:options`
 * rewrites what is between them, and test/options-docs.spec.ts fails when a file differs from what this makes.
 */
import { OPTION_TABLE, typeText, valuesText, type OptionRow } from './options-table.js';

/** The files holding generated tables, relative to the package root. */
export const OPTION_DOC_FILES: readonly string[] = Object.freeze(['README.md', 'docs/operations.md']);

/** The tables there are: every option; the options with a flag; the options with neither flag nor variable. */
export type OptionTableName = 'library' | 'cache-flags' | 'library-only';

/** A table's markdown as a function of the rows. */
const TABLES: Readonly<Record<OptionTableName, () => string>> = Object.freeze({
  library: () => markdownTable(
    ['option', 'environment variable', 'CLI flag', 'type', 'valid values', 'default', 'what'],
    OPTION_TABLE.map((row) => [code(row.path), row.env === undefined ? '' : code(row.env), flagNames(row), typeText(row), row.accepts, row.defaultText, row.doc]),
  ),
  'cache-flags': () => markdownTable(
    ['flag', 'environment variable', 'library option', 'default', 'valid values', 'what'],
    OPTION_TABLE.filter((row) => row.flag !== undefined)
      .map((row) => [flagUsage(row), row.env === undefined ? '' : code(row.env), code(row.path), row.defaultText, valuesText(row), row.doc]),
  ),
  'library-only': () => markdownTable(
    ['option', 'type', 'default', 'valid values', 'what'],
    OPTION_TABLE.filter((row) => row.flag === undefined && row.env === undefined)
      .map((row) => [code(row.path), typeText(row), row.defaultText, row.accepts, row.doc]),
  ),
});

function code(text: string): string {
  return `\`${text}\``;
}

/** `--p2p` / `--no-p2p`, `--shared-secret` (warns), `--cache-dir`. */
function flagNames(row: OptionRow): string {
  if (row.flag === undefined) return '';
  const names = row.type === 'boolean' ? `${code(row.flag.name)} / ${code(row.flag.name.replace(/^--/, '--no-'))}` : code(row.flag.name);
  return row.flag.warning === undefined ? names : `${names} (warns)`;
}

/** As `flagNames`, with the value placeholder: `--cache-dir <dir>`. */
function flagUsage(row: OptionRow): string {
  if (row.flag?.value === undefined) return flagNames(row);
  const usage = code(`${row.flag.name} ${row.flag.value}`);
  return row.flag.warning === undefined ? usage : `${usage} (warns)`;
}

function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]) => `| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/** The markdown of the named table. */
export function renderOptionTable(name: OptionTableName): string {
  return TABLES[name]();
}

/** Thrown when a file's markers are malformed; names the file part and what to fix. */
export class OptionDocsError extends Error {}

const START = /<!-- options-table:start ([a-z-]+)[^>]*-->\n/g;

/** `markdown` with every marked table region rewritten from the options table. */
export function updateOptionTables(markdown: string): string {
  let out = '';
  let from = 0;
  for (const match of markdown.matchAll(START)) {
    const name = match[1]!;
    if (!Object.hasOwn(TABLES, name)) {
      throw new OptionDocsError(`unknown options table ${JSON.stringify(name)} at offset ${match.index}; expected one of ${Object.keys(TABLES).join(', ')}`);
    }
    const bodyStart = match.index + match[0].length;
    if (match.index < from) throw new OptionDocsError(`options table ${JSON.stringify(name)} starts inside another one`);
    const endMarker = `<!-- options-table:end ${name} -->`;
    const end = markdown.indexOf(endMarker, bodyStart);
    if (end === -1) throw new OptionDocsError(`options table ${JSON.stringify(name)} has no closing ${endMarker}`);
    out += markdown.slice(from, bodyStart) + renderOptionTable(name as OptionTableName) + '\n';
    from = end;
  }
  return out + markdown.slice(from);
}

/** The names of the tables marked in `markdown`, in order. */
export function markedOptionTables(markdown: string): string[] {
  return [...markdown.matchAll(START)].map((match) => match[1]!);
}
