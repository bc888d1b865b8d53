/**
 * A prefix KV cache: the keys and values of token sequences the engine has already run, so a new
 * request that starts with one of them (an agent's next turn, or any request with the same long
 * system prompt) prefills only what follows. sglang's RadixAttention keeps the same information
 * in a radix tree over tokens (reference/infra.md §1); here the entries are whole sequences
 * matched by longest common prefix, which is as exact and simpler at the tens of entries a CPU
 * engine holds. Bounded by bytes, least recently used entries evicted first.
 */
import { EngineRequestError } from "./errors.ts";

/** Shape of the per-layer KV arrays an entry holds. */
export interface KvLayout {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/** One cached sequence: its tokens and, per layer, K and V as `[kvHeads, length, headDim]`. */
export interface PrefixEntry {
  readonly tokens: Int32Array;
  /** `2 * layers` arrays: K of layer 0, V of layer 0, K of layer 1, ... */
  readonly kv: readonly Float32Array[];
  lastUsed: number;
}

/** A cache hit: reuse the first `length` positions of `entry`. */
export interface PrefixHit {
  readonly entry: PrefixEntry;
  readonly length: number;
}

/** Counters of a {@link PrefixCache}. */
export interface PrefixCacheStats {
  readonly entries: number;
  readonly bytes: number;
  readonly lookups: number;
  /** Prompt tokens whose KV came from the cache. */
  readonly hitTokens: number;
  /** Prompt tokens looked up in all. */
  readonly lookupTokens: number;
  readonly evictions: number;
}

/**
 * Default block size: hits are whole blocks of this many positions, and prompts are prefilled
 * block by block whether or not anything is cached, so a position's K/V and logits come out of
 * the same computation either way (bitwise, not just within rounding: reruns of an evaluation
 * give the same numbers whatever the cache held). 128 keeps the matrix products wide enough to
 * be efficient and loses at most 127 reusable positions per hit.
 */
export const PREFIX_BLOCK_TOKENS = 128;

/** Longest common prefix of two token sequences. */
export function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A byte-bounded LRU cache of sequence KV, matched by longest common token prefix. */
export class PrefixCache {
  private readonly entries: PrefixEntry[] = [];
  private bytes = 0;
  private clock = 0;
  private lookups = 0;
  private hitTokens = 0;
  private lookupTokens = 0;
  private evictions = 0;

  constructor(
    readonly layout: KvLayout,
    /** Most bytes of K/V held; 0 turns the cache off. */
    readonly maxBytes: number,
    /** Hits are multiples of this many positions ({@link PREFIX_BLOCK_TOKENS}). */
    readonly block: number = PREFIX_BLOCK_TOKENS,
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new EngineRequestError(`prefix cache size must be a byte count >= 0, got ${maxBytes}`);
    if (!Number.isInteger(block) || block < 1)
      throw new EngineRequestError(`prefix block must be a positive integer, got ${block}`);
  }

  /** Bytes one cached token takes (K and V of every layer). */
  get bytesPerToken(): number {
    const { layers, kvHeads, headDim } = this.layout;
    return 2 * layers * kvHeads * headDim * 4;
  }

  /**
   * The entry sharing the longest prefix with `tokens`, at most `limit` positions of it (callers
   * pass `tokens.length - 1` so at least one token is run and yields logits), rounded down to
   * whole blocks. Undefined below one block.
   */
  lookup(tokens: readonly number[], limit: number): PrefixHit | undefined {
    if (this.maxBytes === 0) return undefined;
    this.lookups++;
    this.lookupTokens += tokens.length;
    let best: PrefixHit | undefined;
    for (const entry of this.entries) {
      const common = Math.min(commonPrefix(entry.tokens, tokens), limit);
      const length = Math.floor(common / this.block) * this.block;
      if (length > 0 && (!best || length > best.length)) best = { entry, length };
    }
    if (best) {
      best.entry.lastUsed = ++this.clock;
      this.hitTokens += best.length;
    }
    return best;
  }

  /**
   * Stores the KV of `tokens`. `fill(kv)` writes it into fresh `[kvHeads, length, headDim]`
   * arrays (called only when the entry is kept). Entries that are a prefix of the new one are
   * dropped (the new one answers every lookup they would); a sequence already covered by a
   * longer entry is not stored again. Evicts least recently used entries to stay within bytes.
   */
  insert(tokens: readonly number[], fill: (kv: Float32Array[]) => void): void {
    const n = tokens.length;
    const size = n * this.bytesPerToken;
    if (this.maxBytes === 0 || n < this.block || size > this.maxBytes) return;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i] as PrefixEntry;
      const common = commonPrefix(e.tokens, tokens);
      if (common === n) {
        e.lastUsed = ++this.clock;
        return;
      }
      if (common === e.tokens.length) this.remove(i);
    }
    while (this.bytes + size > this.maxBytes && this.entries.length > 0) {
      let lru = 0;
      for (let i = 1; i < this.entries.length; i++)
        if ((this.entries[i] as PrefixEntry).lastUsed < (this.entries[lru] as PrefixEntry).lastUsed)
          lru = i;
      this.remove(lru);
      this.evictions++;
    }
    const { layers, kvHeads, headDim } = this.layout;
    const kv = Array.from({ length: 2 * layers }, () => new Float32Array(kvHeads * n * headDim));
    fill(kv);
    this.entries.push({ tokens: Int32Array.from(tokens), kv, lastUsed: ++this.clock });
    this.bytes += size;
  }

  /** Current counters. */
  stats(): PrefixCacheStats {
    return {
      entries: this.entries.length,
      bytes: this.bytes,
      lookups: this.lookups,
      hitTokens: this.hitTokens,
      lookupTokens: this.lookupTokens,
      evictions: this.evictions,
    };
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.length = 0;
    this.bytes = 0;
  }

  private remove(i: number): void {
    const [e] = this.entries.splice(i, 1);
    if (e) this.bytes -= e.tokens.length * this.bytesPerToken;
  }
}
