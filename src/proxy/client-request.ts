import type { IncomingMessage } from 'node:http';

/**
 * What the proxy reads from a client request: the GitHub URL its target names (never one outside the
 * configured API: no other host, no path escaping the base), its body (never more than the limit held in
 * memory, kept as bytes).
 */

/** The client sent a body larger than the proxy accepts. */
export class BodyTooLargeError extends Error {}

/** The absolute GitHub URL of a request target, or undefined if it would leave the API base. */
export function upstreamUrl(githubApiUrl: string, target: string): string | undefined {
  let pathAndQuery: string;
  if (target.startsWith('/')) {
    pathAndQuery = target;
  } else {
    // Absolute form (a client using this server as an HTTP proxy): keep only the path and query.
    try {
      const parsed = new URL(target);
      pathAndQuery = parsed.pathname + parsed.search;
    } catch {
      return undefined;
    }
  }
  const hash = pathAndQuery.indexOf('#');
  if (hash !== -1) pathAndQuery = pathAndQuery.slice(0, hash);
  const base = githubApiUrl.replace(/\/+$/, '');
  let resolved: URL;
  try {
    resolved = new URL(base + pathAndQuery);
  } catch {
    return undefined;
  }
  const baseUrl = new URL(base);
  if (resolved.origin !== baseUrl.origin) return undefined;
  const basePath = baseUrl.pathname.replace(/\/+$/, '');
  if (basePath !== '' && resolved.pathname !== basePath && !resolved.pathname.startsWith(`${basePath}/`)) return undefined;
  return base + pathAndQuery;
}

export function pathOnly(target: string | undefined): string {
  const value = target ?? '/';
  const q = value.indexOf('?');
  return q === -1 ? value : value.slice(0, q);
}

/** The request body as bytes, refusing more than `limit` bytes (early, by Content-Length, when declared). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new BodyTooLargeError());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        req.resume();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks)); // the bytes as sent: an upload is never decoded
    });
    req.once('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}
