/**
 * Did a client write the token to disk? Reads every file under its directories (cache dirs, SQLite with its
 * -wal/-shm, cacache index and content) and looks for the token's bytes: as is, base64 (a Basic header) and
 * hex. Never prints the token; reports where it was found by file path relative to the directory.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface LeakReport {
  files: number;
  bytes: number;
  /** Relative paths of the files holding the token in some form, with the form. */
  found: Array<{ file: string; form: 'raw' | 'base64' | 'hex' }>;
}

export function scanForToken(dirs: readonly string[], token: string): LeakReport {
  const needles = [
    { form: 'raw' as const, bytes: Buffer.from(token, 'utf8') },
    { form: 'base64' as const, bytes: Buffer.from(Buffer.from(token, 'utf8').toString('base64'), 'utf8') },
    { form: 'hex' as const, bytes: Buffer.from(Buffer.from(token, 'utf8').toString('hex'), 'utf8') },
  ];
  const report: LeakReport = { files: 0, bytes: 0, found: [] };
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      const content = fs.readFileSync(file);
      report.files++;
      report.bytes += content.length;
      for (const needle of needles) {
        if (content.includes(needle.bytes)) report.found.push({ file: path.relative(dir, file), form: needle.form });
      }
    }
  }
  return report;
}
