/**
 * A server in a child process that announces itself with a JSON line `{"event":"listening","url":…}` on stdout
 * (the `serve` CLI, the bare floor server): started, waited for, and stopped. Guarantees: `startListening`
 * resolves with the URL once that line came, and otherwise rejects (the child exited first, or the deadline
 * passed) with the child stopped; stdout keeps being drained; `stopChild` ends the process (SIGTERM, SIGKILL after
 * 15 s) and resolves with its exit code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export async function startListening(command: string, args: string[], env: NodeJS.ProcessEnv, what: string, timeoutMs: number,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
      child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before listening`)));
      lines.on('line', (line) => {
        try {
          const event = JSON.parse(line) as { event?: string; url?: string };
          if (event.event === 'listening' && event.url !== undefined) {
            clearTimeout(timer);
            resolve(event.url);
          }
        } catch {
          // not JSON: ignore
        }
      });
    });
    lines.removeAllListeners('line');
    lines.on('line', () => undefined); // keep draining stdout
    return { child, url };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** SIGTERM, then SIGKILL after 15 s; resolves with the exit code (null when killed by a signal or already gone). */
export async function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}
