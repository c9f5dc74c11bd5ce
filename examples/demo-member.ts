/**
 * The offline demo's handle on one fleet member (examples/demo-node.ts) in a child process: fork, typed
 * request/reply over IPC (examples/demo-protocol.ts), and a close that always ends the process (asked
 * politely, SIGKILL after a timeout). Guarantees that every pending wait settles: a reply, a timeout, or the
 * member's failure or unexpected exit rejects it. The member's stdout and stderr are kept in `output` so the
 * demo can check them for secrets.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { NodeMessage, NodeReply } from './demo-protocol.js';

/** A node's reply of one type. */
export type Reply<T extends NodeReply['type']> = Extract<NodeReply, { type: T }>;

/** One node process and the conversation with it. */
export class DemoMember {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<{ type: string; resolve: (m: NodeReply) => void; reject: (e: Error) => void }> = [];
  #failure: Error | undefined;
  #closing = false;

  /**
   * Forks `script` with `env` (secrets reach the node through its environment, never its command line).
   * `onProgress` hears its progress replies; `onLine` each non-empty line it prints, already prefixed.
   */
  constructor(readonly name: string, script: string, env: NodeJS.ProcessEnv, onProgress: (m: Reply<'progress'>) => void,
    onLine: (line: string) => void) {
    this.child = fork(script, [], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.output.push(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') onLine(`[${name}] ${line}`);
      });
    }
    this.child.on('message', (message: NodeReply) => {
      if (message.type === 'progress') {
        onProgress(message);
        return;
      }
      if (message.type === 'failed') {
        this.#fail(new Error(`${name} failed: ${message.message}`));
        return;
      }
      const i = this.#waiters.findIndex((w) => w.type === message.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(message);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        if (!this.#closing || code !== 0) this.#fail(new Error(`${name} exited unexpectedly (code ${code}, signal ${signal})`));
        resolve({ code, signal });
      });
    });
    this.child.once('error', (e) => this.#fail(new Error(`${name}: ${e.message}`)));
  }

  /** The next reply of this type. */
  next<T extends NodeReply['type']>(type: T, timeoutMs: number): Promise<Reply<T>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<Reply<T>>((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: NodeReply) => {
          clearTimeout(timer);
          resolve(m as Reply<T>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no '${type}' within ${(timeoutMs / 1000).toFixed(1)} s`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Sends a message and waits for its reply. */
  ask<T extends NodeReply['type']>(message: NodeMessage, reply: T, timeoutMs: number): Promise<Reply<T>> {
    const answer = this.next(reply, timeoutMs);
    this.child.send(message);
    return answer;
  }

  async stats(): Promise<Reply<'stats'>> {
    return this.ask({ type: 'stats' }, 'stats', 10_000);
  }

  /** Asks the node to close its cache and exit; kills it if it does not within 8 s. */
  async close(): Promise<Reply<'closed'> | undefined> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return undefined;
    this.#closing = true;
    try {
      const closed = await this.ask({ type: 'close' }, 'closed', 8_000);
      const timer = setTimeout(() => this.kill(), 5_000);
      await this.exited;
      clearTimeout(timer);
      return closed;
    } catch {
      this.kill();
      await this.exited;
      return undefined;
    }
  }

  kill(): void {
    this.#closing = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }
}
