/**
 * The parent's handle on one client process (bench/compare/member.ts): fork, typed request/reply over IPC,
 * and a stop that always ends the process (close asked politely, SIGKILL after a timeout).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientConfig, Command, MemoryReport, Ready, Reply, Request, RunResult } from './protocol.js';

const SCRIPT = fileURLToPath(new URL('./member.js', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;
/** Environment the library would read: the benchmark sets every option itself. */
const STRIPPED_ENV = /^(CACHE_|GITHUB_)/;

export class MemberProcess {
  readonly label: string;
  readonly ready: Promise<Ready>;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  readonly #exited: Promise<void>;
  #nextId = 0;
  #exitCode: number | null = null;

  private constructor(label: string, client: ClientConfig, token: string, owner: string) {
    this.label = label;
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !STRIPPED_ENV.test(name)));
    this.#child = fork(SCRIPT, [], {
      env,
      execArgv: ['--expose-gc'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exitCode = code ?? (signal !== null ? 128 : 0);
        for (const { reject } of this.#waiting.values()) reject(new Error(`${label}: process exited (${signal ?? code})`));
        this.#waiting.clear();
        resolve();
      });
    });
    this.#child.on('message', (message: Reply) => {
      const waiter = this.#waiting.get(message.id);
      if (waiter === undefined) return;
      this.#waiting.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(`${label}: ${message.error}`));
    });
    this.ready = this.call<Ready>({ type: 'setup', client, token, owner });
  }

  /** Forks a member and resolves once its client is built. */
  static async start(label: string, client: ClientConfig, token: string, owner: string, registry: Set<MemberProcess>): Promise<MemberProcess> {
    const member = new MemberProcess(label, client, token, owner);
    registry.add(member);
    await member.ready;
    return member;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  call<T>(command: Command): Promise<T> {
    if (this.#exitCode !== null) return Promise.reject(new Error(`${this.label}: process already exited`));
    const id = ++this.#nextId;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#child.send({ ...command, id } satisfies Request);
    });
  }

  run(repos: string[], inFlight: number): Promise<RunResult> {
    return this.call({ type: 'run', repos, inFlight });
  }

  memory(): Promise<MemoryReport> {
    return this.call({ type: 'memory' });
  }

  setClock(offsetMs: number): Promise<unknown> {
    return this.call({ type: 'clock', offsetMs });
  }

  /** Closes the client and waits for the process to exit; kills it if it does not within 10 s. Idempotent. */
  async stop(): Promise<MemoryReport | undefined> {
    let report: MemoryReport | undefined;
    if (this.#exitCode === null) {
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      try {
        report = await this.call<MemoryReport>({ type: 'close' });
      } catch {
        this.#child.kill('SIGKILL');
      }
      await this.#exited;
      clearTimeout(timer);
    }
    return report;
  }
}
