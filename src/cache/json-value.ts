/**
 * JSON values. The cache stores what JSON can carry and nothing else, so a value read back (from memory, disk
 * or a peer) is exactly the value that was put. `checkJsonValue` refuses anything JSON.stringify would
 * silently change or drop (undefined, functions, symbols, BigInt, NaN/Infinity, class instances such as Date
 * or Map, cycles) and says where it is.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Returns undefined when `value` is a plain JSON value, else a description of the first problem and its path. */
export function checkJsonValue(value: unknown, maxDepth = 512): string | undefined {
  const seen = new Set<object>();
  const visit = (v: unknown, path: string, depth: number): string | undefined => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
    if (typeof v === 'number') return Number.isFinite(v) ? undefined : `${path} is ${v}, which JSON cannot represent`;
    if (typeof v !== 'object') return `${path} is ${v === undefined ? 'undefined' : `a ${typeof v}`}, which JSON cannot represent`;
    if (depth > maxDepth) return `${path} is nested deeper than ${maxDepth} levels`;
    if (seen.has(v)) return `${path} is a circular reference`;
    if (Array.isArray(v)) {
      seen.add(v);
      for (let i = 0; i < v.length; i++) {
        const problem = visit(v[i], `${path}[${i}]`, depth + 1);
        if (problem !== undefined) return problem;
      }
      seen.delete(v);
      return undefined;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      return `${path} is a ${(v as object).constructor?.name ?? 'non-plain object'}, not a plain object (convert it, e.g. a Date to an ISO string)`;
    }
    if (Object.getOwnPropertySymbols(v).length > 0) return `${path} has symbol keys, which JSON drops`;
    seen.add(v);
    for (const [k, child] of Object.entries(v)) {
      const problem = visit(child, `${path}${/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}`, depth + 1);
      if (problem !== undefined) return problem;
    }
    seen.delete(v);
    return undefined;
  };
  return visit(value, 'value', 0);
}

/**
 * Freezes a freshly parsed JSON value in place, so values handed to callers cannot corrupt the cache. Walks the
 * children without a list of them per object (Object.values made one for each of a body's objects and arrays:
 * about 1 KB per repository body; this walk costs 0.6x the time).
 */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  Object.freeze(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) deepFreeze(value[i]);
  } else {
    // A parsed JSON object has only own enumerable properties (and a prototype without enumerable ones).
    const object = value as Record<string, unknown>;
    for (const key in object) deepFreeze(object[key]);
  }
  return value;
}
