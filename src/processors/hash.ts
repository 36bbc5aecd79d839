/**
 * FNV-1a 64 in pure TypeScript (four 16-bit limbs, no BigInt), plus a
 * murmur3-style finalizer that turns it into a uniform number in [0, 1) for
 * sampling decisions. FNV-1a alone mixes its last bytes weakly into the high
 * bits; the finalizer makes every input bit affect the result.
 */

const encoder = new TextEncoder();

/** Offset basis 0xcbf29ce484222325 as 16-bit limbs, least significant first. */
const BASIS: readonly [number, number, number, number] = [0x2325, 0x8422, 0x9ce4, 0xcbf2];

/**
 * FNV-1a 64 over `prefix` then the UTF-8 bytes of `text`; returns
 * [high 32 bits, low 32 bits], unsigned.
 */
function fnv1a64(prefix: readonly number[], text: string): [number, number] {
  let [h0, h1, h2, h3] = BASIS;
  const step = (b: number): void => {
    h0 ^= b & 0xff;
    // × the FNV prime 0x100000001b3 = 2^40 + 0x1b3, mod 2^64.
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16);
    h3 = (h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16)) & 0xffff;
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
    h2 = t2 & 0xffff;
  };
  for (const b of prefix) step(b);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      step(c);
      continue;
    }
    // Non-ASCII: the UTF-8 bytes of the rest (rare in attribute values).
    for (const b of encoder.encode(text.slice(i))) step(b);
    break;
  }
  return [((h3 << 16) | h2) >>> 0, ((h1 << 16) | h0) >>> 0];
}

/** FNV-1a 64 of a string's UTF-8 bytes, as 16 hex digits. */
export function fnv1a64Hex(text: string): string {
  const [hi, lo] = fnv1a64([], text);
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function fmix32(x: number): number {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A uniform number in [0, 1) for `key`: FNV-1a 64 over the 4 little-endian
 * bytes of `seed` followed by the UTF-8 bytes of `key`, then finalized.
 * Stable across runs, processes and hosts.
 */
export function hashUnit(key: string, seed: number): number {
  const s = seed >>> 0;
  const [hi, lo] = fnv1a64([s & 0xff, (s >>> 8) & 0xff, (s >>> 16) & 0xff, s >>> 24], key);
  const a = fmix32(hi ^ fmix32(lo));
  const b = fmix32(lo ^ a);
  // 53 bits: 32 from a, 21 from b.
  return (a * 2 ** 21 + (b >>> 11)) / 2 ** 53;
}
