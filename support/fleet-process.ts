/**
 * The parent's handle on one fleet member in a child process (support/fleet-node.ts), driven over IPC: ready
 * (with its peer id, listen addresses and pid), one request, a whole workload run, stats, stop. Guarantees that
 * `stop()` always ends the process (close asked politely, SIGKILL after 10 s) and that no reply is waited for
 * after the process exited (every pending call rejects). The member may run under a wrapper command (e.g. `ip
 * netns exec <ns>`, to put it in a network namespace of its own) and keep its stderr for the caller to read.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FleetStats } from '../src/cache/ports.js';

const SCRIPT = fileURLToPath(new URL('./fleet-node.js', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;

export interface FleetProcessReady {
  pid: number;
  startedMs: number;
  p2p: FleetStats;
}

export interface FleetRunResult {
  latenciesNs: number[];
  sources: Record<string, number>;
  errors: number;
  wallNs: number;
  /** Each request's source, in the order of `latenciesNs` (absent from builds before it was added). */
  perSource?: string[];
  /** Each request's index in the routes run, and its start in ms since the epoch (same order, same caveat). */
  perRoute?: number[];
  startedAtMs?: number[];
  /** The member's event-loop delay over the run, ms (absent from builds before it was added). */
  loopDelayMs?: { p50: number; p99: number; max: number };
}

export interface FleetProcessOptions {
  /** Another build's fleet-node.js to run (a benchmark comparing builds); default this build's. */
  readonly script?: string | undefined;
  /** A command and its arguments that run the member's `node <script>` inside them, e.g. `['ip', 'netns', 'exec', ns]`. */
  readonly wrap?: readonly string[];
  /** Keep the last 200 KB of the member's stderr in `stderr` (and in the error of a member that exits before ready) instead of passing it through. */
  readonly keepStderr?: boolean;
}

/** How much of a member's stderr `keepStderr` keeps. */
const STDERR_KEPT = 200_000;

interface Reply {
  type: string;
  id?: number;
  message?: string;
  [field: string]: unknown;
}

export class FleetProcess {
  readonly ready: Promise<FleetProcessReady>;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>();
  readonly #exited: Promise<void>;
  #nextId = 0;
  #gone = false;
  #stderr = '';

  /**
   * Starts a member; `env` holds its CACHE_* settings (CACHE_DIR, CACHE_LISTEN_PORT, CACHE_BOOTSTRAP_PEERS, …).
   * `options.script` runs another build's fleet-node.js (a benchmark comparing builds); default this build's.
   */
  constructor(env: Record<string, string>, options: FleetProcessOptions = {}) {
    // Only what the caller sets configures the member, never this process's own CACHE_* or GITHUB_* variables.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(CACHE_|GITHUB_|GH_TOKEN$)/.test(name)));
    const stdio = ['ignore', 'ignore', options.keepStderr === true ? 'pipe' : 'inherit', 'ipc'] as const;
    const [command, ...wrapArgs] = options.wrap ?? [];
    this.#child = command === undefined
      ? fork(options.script ?? SCRIPT, [], { env: { ...inherited, ...env }, stdio: [...stdio] })
      : spawn(command, [...wrapArgs, process.execPath, options.script ?? SCRIPT], { env: { ...inherited, ...env }, stdio: [...stdio] });
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr = (this.#stderr + chunk).slice(-STDERR_KEPT)));
    let onReady: (ready: FleetProcessReady) => void = () => undefined;
    let onFailed: (err: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      onReady = resolve;
      onFailed = reject;
    });
    this.ready.catch(() => undefined);
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#gone = true;
        const err = new Error(`fleet member exited (${signal ?? code})${this.#stderr === '' ? '' : `: ${this.#stderr.slice(-4000)}`}`);
        onFailed(err);
        for (const { reject } of this.#waiting.values()) reject(err);
        this.#waiting.clear();
        resolve();
      });
    });
    this.#child.on('message', (message: Reply) => {
      if (message.type === 'ready') onReady(message as unknown as FleetProcessReady);
      else if (message.type === 'failed') onFailed(new Error(`fleet member failed: ${String(message.message)}`));
      else if (message.id !== undefined) {
        this.#waiting.get(message.id)?.resolve(message);
        this.#waiting.delete(message.id);
      }
    });
  }

  /** The tail of the member's stderr, with `keepStderr` ('' without). */
  get stderr(): string {
    return this.#stderr;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#gone;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  request(route: string, token?: string): Promise<Reply> {
    return this.#ask({ type: 'request', route, token });
  }

  /** Requests every route, `inFlight` at a time, timed inside the member. */
  async run(routes: readonly string[], token: string | undefined, inFlight: number): Promise<FleetRunResult> {
    return (await this.#ask({ type: 'run', routes, token, inFlight })) as unknown as FleetRunResult;
  }

  async stats(): Promise<{ p2p: FleetStats; apiCallsMade: number }> {
    return (await this.#ask({ type: 'stats' })).stats as { p2p: FleetStats; apiCallsMade: number };
  }

  /** Closes the member's cache and waits for the process to exit; kills it after 10 s. Idempotent. */
  async stop(): Promise<void> {
    if (this.#gone) return;
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    if (this.#child.connected) this.#child.send({ type: 'close' });
    else this.#child.kill('SIGKILL');
    await this.#exited;
    clearTimeout(timer);
  }

  /** Kills the member at once (SIGKILL: no close, its connections reset) and waits for the process to exit. */
  async kill(): Promise<void> {
    if (!this.#gone) this.#child.kill('SIGKILL');
    await this.#exited;
  }

  #ask(message: object): Promise<Reply> {
    if (this.#gone) return Promise.reject(new Error('fleet member already exited'));
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#child.send({ ...message, id });
    });
  }
}
