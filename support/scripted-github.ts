import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * ScriptedGitHub: an HTTP server on 127.0.0.1 that answers exactly what a spec scripts, byte for byte, and
 * records every request it received (method, URL as sent, headers, body bytes). For specs of HTTP rules where
 * the answer's exact bytes and headers matter; the behaviour-rich fake lives in support/fake-github/.
 */

/** One request as the server received it. Header names lowercase. */
export interface ReceivedRequest {
  readonly method: string;
  /** The request target as sent (path and query, in the sender's order). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** What the server answers. A string body is sent as UTF-8; a Buffer as it is. */
export interface ScriptedAnswer {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string | undefined>>;
  readonly body?: string | Buffer;
}

export type Script = (request: ReceivedRequest) => ScriptedAnswer;

export class ScriptedGitHub {
  readonly requests: ReceivedRequest[] = [];
  #script: Script;
  readonly #server: Server;

  private constructor(script: Script) {
    this.#script = script;
    this.#server = createServer((req, res) => {
      void readAll(req).then((body) => {
        const received: ReceivedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers }, body };
        this.requests.push(received);
        const answer = this.#script(received);
        const bytes = answer.body === undefined ? Buffer.alloc(0) : typeof answer.body === 'string' ? Buffer.from(answer.body, 'utf8') : answer.body;
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers ?? {})) if (value !== undefined) headers[name] = value;
        res.writeHead(answer.status, { ...headers, 'content-length': String(bytes.length) });
        res.end(req.method === 'HEAD' || answer.status === 304 ? undefined : bytes);
      });
    });
  }

  /** Starts on a free loopback port. */
  static async start(script: Script): Promise<ScriptedGitHub> {
    const server = new ScriptedGitHub(script);
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  /** The base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Replaces the script (for a second phase of a spec). */
  set script(script: Script) {
    this.#script = script;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
