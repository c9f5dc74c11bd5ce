/**
 * The one CBOR decoding policy for everything a peer sends: canonical-enough input only (no indefinite
 * lengths, no undefined/NaN/Infinity/BigInt, no duplicate map keys), decoded to plain objects. Anything else
 * is refused by cborg before a validator ever sees it.
 */
export const STRICT_CBOR_DECODE = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const;
