/**
 * A fast path for the common request: `GET /repos/{owner}/{repo}` with only path parameters whose values
 * need no encoding. Such a route expands to exactly the URL @octokit/endpoint would build (and that
 * normalizeUrl would keep), at a fraction of the cost; anything else returns undefined and takes the general
 * path. Compiled templates are kept per route string.
 */

interface CompiledRoute {
  readonly method: 'GET' | 'HEAD';
  /** Literal path parts and parameter names, alternating: [literal, name, literal, name, literal]. */
  readonly parts: readonly string[];
  readonly names: readonly string[];
}

const SIMPLE_ROUTE = /^(GET|HEAD) (\/[A-Za-z0-9._~\-/]*(?:\{[A-Za-z_][A-Za-z0-9_]*\}[A-Za-z0-9._~\-/]*)*)$/;
/** Values that URL encoding and path normalization leave exactly as they are. */
const SAFE_VALUE = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;
const MAX_ROUTES = 1_000;

export class RouteTemplates {
  readonly #compiled = new Map<string, CompiledRoute | null>();

  /** The absolute URL, or undefined when the route or its params need the general path. */
  expand(route: string, params: Record<string, unknown>, baseUrl: string): { method: 'GET' | 'HEAD'; url: string } | undefined {
    let compiled = this.#compiled.get(route);
    if (compiled === undefined) {
      compiled = compile(route);
      if (this.#compiled.size >= MAX_ROUTES) this.#compiled.clear();
      this.#compiled.set(route, compiled);
    }
    if (compiled === null) return undefined;
    const { names, parts } = compiled;
    let count = 0;
    for (const name in params) {
      if (params[name] === undefined) continue;
      if (!names.includes(name)) return undefined; // leftover params become a query: general path
      count++;
    }
    if (count !== names.length) return undefined;
    let path = parts[0]!;
    for (let i = 0; i < names.length; i++) {
      const value = params[names[i]!];
      const text = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
      if (typeof text !== 'string' || !SAFE_VALUE.test(text) || text === '..') return undefined;
      path += text + parts[i + 1]!;
    }
    if (path.includes('//') || path.includes('/./') || path.includes('/../') || path.endsWith('/.') || path.endsWith('/..')) return undefined;
    return { method: compiled.method, url: baseUrl + path };
  }
}

function compile(route: string): CompiledRoute | null {
  const match = SIMPLE_ROUTE.exec(route);
  if (match === null) return null;
  const parts: string[] = [];
  const names: string[] = [];
  const pattern = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
  const path = match[2]!;
  let last = 0;
  for (let m = pattern.exec(path); m !== null; m = pattern.exec(path)) {
    parts.push(path.slice(last, m.index));
    names.push(m[1]!);
    last = m.index + m[0].length;
  }
  parts.push(path.slice(last));
  if (new Set(names).size !== names.length) return null;
  return { method: match[1] as 'GET' | 'HEAD', parts, names };
}
