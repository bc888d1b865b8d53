import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EngineRequestError } from "./errors.ts";
import { commonPrefix, PrefixCache } from "./prefix-cache.ts";

const layout = { layers: 2, kvHeads: 1, headDim: 2 };
/** Hits are whole blocks of this many positions. */
const BLOCK = 5;
/** 2 layers × K,V × 1 head × 2 dims × 4 bytes */
const BYTES_PER_TOKEN = 32;

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
/** Fills every K/V value with the token id it belongs to, so reads can be checked. */
const fillWith = (tokens: readonly number[]) => (kv: Float32Array[]) => {
  for (const a of kv)
    tokens.forEach((t, i) => {
      a.fill(t, i * 2, i * 2 + 2);
    });
};

describe("PrefixCache", () => {
  it("finds the longest common prefix in whole blocks, capped by the caller's limit", () => {
    const c = new PrefixCache(layout, 1 << 20, BLOCK);
    const a = range(100, 40);
    const b = [...range(100, 20), ...range(500, 30)];
    c.insert(a, fillWith(a));
    c.insert(b, fillWith(b));
    const q = [...range(100, 32), 7];
    const hit = c.lookup(q, q.length - 1);
    assert.equal(hit?.length, 30, "32 shared positions are 6 whole blocks");
    assert.deepEqual(Array.from(hit?.entry.tokens ?? []), a);
    assert.equal(hit?.entry.kv[3]?.[2 * 29], 129);
    assert.equal(c.lookup(a, 27)?.length, 25);
    // Less than one block shared: no hit.
    assert.equal(c.lookup([...range(100, BLOCK - 1), 1], 99), undefined);
    const s = c.stats();
    assert.equal(s.entries, 2);
    assert.equal(s.bytes, (40 + 50) * BYTES_PER_TOKEN);
    assert.equal(s.hitTokens, 55);
  });

  it("drops entries the new one extends and skips sequences already covered", () => {
    const c = new PrefixCache(layout, 1 << 20, BLOCK);
    const turn1 = range(1, 30);
    const turn2 = [...turn1, ...range(900, 20)];
    c.insert(turn1, fillWith(turn1));
    c.insert(turn2, fillWith(turn2));
    assert.equal(c.stats().entries, 1);
    let filled = false;
    c.insert(range(1, 25), () => {
      filled = true;
    });
    assert.equal(filled, false, "a prefix of a cached sequence is not stored again");
    assert.equal(c.stats().bytes, 50 * BYTES_PER_TOKEN);
  });

  it("evicts the least recently used entries to stay within its byte limit", () => {
    const c = new PrefixCache(layout, 100 * BYTES_PER_TOKEN, BLOCK);
    const x = range(1000, 40);
    const y = range(2000, 40);
    const z = range(3000, 40);
    c.insert(x, fillWith(x));
    c.insert(y, fillWith(y));
    assert.ok(c.lookup(x, 39)); // x is now more recent than y
    c.insert(z, fillWith(z));
    assert.equal(c.stats().entries, 2);
    assert.equal(c.stats().evictions, 1);
    assert.ok(c.lookup(x, 39));
    assert.equal(c.lookup(y, 39), undefined);
    assert.ok(c.lookup(z, 39));
    assert.ok(c.stats().bytes <= 100 * BYTES_PER_TOKEN);
    // A sequence larger than the whole cache is not stored.
    c.insert(range(1, 101), fillWith(range(1, 101)));
    assert.equal(c.stats().entries, 2);
  });

  it("is off at 0 bytes and rejects a bad size", () => {
    const c = new PrefixCache(layout, 0);
    c.insert(range(1, 40), fillWith(range(1, 40)));
    assert.equal(c.lookup(range(1, 40), 39), undefined);
    assert.throws(() => new PrefixCache(layout, -1), EngineRequestError);
    assert.throws(() => new PrefixCache(layout, 1.5), /byte count/);
  });

  it("commonPrefix", () => {
    assert.equal(commonPrefix([1, 2, 3], [1, 2, 4]), 2);
    assert.equal(commonPrefix([1, 2], [1, 2, 3]), 2);
    assert.equal(commonPrefix([], [1]), 0);
  });
});
