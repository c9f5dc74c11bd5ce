/**
 * The cache flags that `serve`, `get`, `stats` and `peers` take, declared from the options table
 * (src/options-table.ts): one flag per row that has one, its help made of the row's doc, valid values,
 * variable and default. A flag given wins over its variable; a flag not given stays unset, so the environment
 * and the defaults apply exactly as in the library.
 */
import { Option, type Command } from 'commander';
import { CacheConfigError } from '../src/errors.js';
import { resolveOptions, type CacheOptions } from '../src/options.js';
import { OPTION_TABLE, optionRow, valuesText, type OptionFlag, type OptionRow } from '../src/options-table.js';
import { numberArg, portArg, warn } from './cli-support.js';

/** What commander hands an action for the cache flags, keyed by each flag's camel-cased name. */
export type CacheFlags = Readonly<Record<string, unknown>>;

/** The rows that have a flag. */
const FLAG_ROWS = OPTION_TABLE.filter((row): row is OptionRow & { flag: OptionFlag } => row.flag !== undefined);

/** Markdown code spans as plain text, for the terminal. */
export function plainText(markdown: string): string {
  return markdown.replaceAll('`', '');
}

/** The key commander stores a flag's value under: `--max-peer-entry-ttl` -> `maxPeerEntryTtl`. */
function flagKey(flag: OptionFlag): string {
  return flag.name.replace(/^--/, '').replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** A flag's help line: what it does, its valid values, its default and its variable (as commander shows them). */
export function flagHelp(row: OptionRow): string {
  const values = row.type === 'choice' || row.type === 'boolean' ? '' : `; ${plainText(valuesText(row))}`;
  const variable = row.env === undefined ? '' : `, env: ${row.env}`;
  return `${plainText(row.doc)}${values} (default: ${plainText(row.defaultText)}${variable})`;
}

function flagOption(row: OptionRow & { flag: OptionFlag }): Option {
  const { flag } = row;
  const option = new Option(flag.value === undefined ? flag.name : `${flag.name} ${flag.value}`, flagHelp(row));
  if (row.choices !== undefined) return option.choices(row.choices);
  if (row.type === 'port') return option.argParser(portArg);
  if (row.type === 'integer' || row.type === 'number') return option.argParser(numberArg(flag.name));
  return option;
}

/** Adds the cache flags to `command`. */
export function addCacheOptions(command: Command): Command {
  for (const row of FLAG_ROWS) {
    command.addOption(flagOption(row));
    if (row.type === 'boolean') {
      command.addOption(new Option(`--no-${row.flag.name.replace(/^--/, '')}`, `turn ${row.flag.name} off, whatever ${row.env ?? 'the default'} says`));
    }
  }
  return command;
}

/** Library options from the flags; flags not given stay undefined so the environment and defaults apply. */
export function cacheOptionsFromFlags(flags: CacheFlags): CacheOptions {
  const options: Record<string, unknown> = {};
  const p2p: Record<string, unknown> = {};
  for (const row of FLAG_ROWS) {
    const given = flags[flagKey(row.flag)];
    if (given === undefined) continue;
    const value = row.type === 'multiaddrs' && typeof given === 'string'
      ? given.split(',').map((s) => s.trim()).filter((s) => s !== '')
      : given;
    if (row.path.startsWith('p2p.')) p2p[row.path.slice('p2p.'.length)] = value;
    else options[row.path] = value;
    if (row.flag.warning !== undefined) warn(`${row.flag.name} ${row.flag.warning}`);
  }
  if (Object.keys(p2p).length > 0) options['p2p'] = p2p;
  // Validate now, so a bad option exits 2 before anything starts.
  resolveOptions(options as CacheOptions);
  return options as CacheOptions;
}

/** A CacheConfigError's message with the option named as the flag the user typed. */
export function configMessage(err: CacheConfigError): string {
  const flag = optionRow(err.option)?.flag;
  return flag === undefined ? err.message : err.message.replace(`Invalid ${err.option}:`, `Invalid ${flag.name}:`);
}

/** The environment variables of the options, for the program's help. */
export function environmentHelp(): string {
  return OPTION_TABLE.filter((row) => row.env !== undefined)
    .map((row) => `  ${row.env!.padEnd(25)}${row.path}`)
    .join('\n');
}
