/**
 * Did a process write a secret to disk? Reads every regular file under the given directories (cache dirs,
 * SQLite with its -wal/-shm, peer identities, cacache index and content) and looks for the secret's bytes.
 * Never prints a secret: findings name the file, relative to the directory scanned, and the form found.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface LeakReport {
  files: number;
  bytes: number;
  /** Relative paths of the files holding the token in some form, with the form. */
  found: Array<{ file: string; form: 'raw' | 'base64' | 'hex' }>;
}

/** Every regular file under `dir` with its content; nothing when `dir` does not exist. */
function* filesUnder(dir: string): Generator<{ file: string; content: Buffer }> {
  if (!fs.existsSync(dir)) return;
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    yield { file, content: fs.readFileSync(file) };
  }
}

/** Files under `dirs` holding `token` as is, in base64 (a Basic header) or in hex. */
export function scanForToken(dirs: readonly string[], token: string): LeakReport {
  const needles = [
    { form: 'raw' as const, bytes: Buffer.from(token, 'utf8') },
    { form: 'base64' as const, bytes: Buffer.from(Buffer.from(token, 'utf8').toString('base64'), 'utf8') },
    { form: 'hex' as const, bytes: Buffer.from(Buffer.from(token, 'utf8').toString('hex'), 'utf8') },
  ];
  const report: LeakReport = { files: 0, bytes: 0, found: [] };
  for (const dir of dirs) {
    for (const { file, content } of filesUnder(dir)) {
      report.files++;
      report.bytes += content.length;
      for (const needle of needles) {
        if (content.includes(needle.bytes)) report.found.push({ file: path.relative(dir, file), form: needle.form });
      }
    }
  }
  return report;
}

/** Every file under `dir` (absolute paths) that holds one of `secrets` as is. */
export function filesContaining(dir: string, secrets: readonly string[]): string[] {
  const needles = secrets.map((secret) => Buffer.from(secret, 'utf8'));
  const found: string[] = [];
  for (const { file, content } of filesUnder(dir)) {
    if (needles.some((needle) => content.includes(needle))) found.push(file);
  }
  return found;
}
