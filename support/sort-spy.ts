/**
 * How many times `fn` calls Array.prototype.sort (on any array), counted by wrapping it for the call only: specs
 * that prove a path sorts nothing (the CBOR encoder on keys already in order).
 */
export function sortsDuring(fn: () => void): number {
  const sort = Array.prototype.sort;
  let sorts = 0;
  Array.prototype.sort = function (this: unknown[], ...args: Parameters<typeof sort>) {
    sorts++;
    return sort.apply(this, args);
  } as typeof sort;
  try {
    fn();
  } finally {
    Array.prototype.sort = sort;
  }
  return sorts;
}
