import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ContinuousBatch, FinishedSequence } from "./continuous-batch.ts";
import { KV_SLOT_CHUNK } from "./continuous-batch.ts";
import { type Engine, loadModel } from "./engine.ts";

/** Tiny random checkpoints from scripts/make-golden.py (f32). */
const FIXTURES = join(import.meta.dirname, "..", "fixtures", "golden");
/** The brief's tolerance: max |a - b| within 1e-4 of the largest |b|. */
const REL_TOL = 1e-4;
/** Prefill block (and cache hit granularity), small so the test prompts span several. */
const BLOCK = 16;
/** Longer than the fixtures' configs so slot capacity grows and shrinks (RoPE tables extend). */
const MAX_POSITIONS = 512;

/** Deterministic token ids in 3..vocab-1 (an LCG), avoiding the fixtures' eos id 2. */
function ids(n: number, seed: number, vocab = 256): number[] {
  let x = seed >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return 3 + (x % (vocab - 3));
  });
}

function relErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff / scale;
}

interface Run {
  readonly seq: FinishedSequence;
  readonly logits: Float32Array[];
}

/**
 * Runs prompts greedily through a continuous batch; `joinAt[i]` is the step before which prompt
 * i is added (0 = from the start), so sequences join a batch that is already decoding.
 */
async function runBatch(
  batch: ContinuousBatch,
  prompts: readonly (readonly number[])[],
  maxTokens: readonly number[],
  joinAt: readonly number[] = prompts.map(() => 0),
): Promise<Run[]> {
  const out: { seq?: FinishedSequence; logits: Float32Array[] }[] = prompts.map(() => ({
    logits: [],
  }));
  let step = 0;
  const added = new Set<number>();
  for (;;) {
    prompts.forEach((prompt, i) => {
      if (added.has(i) || (joinAt[i] as number) > step) return;
      added.add(i);
      const o = out[i] as { seq?: FinishedSequence; logits: Float32Array[] };
      batch.add({
        prompt,
        maxTokens: maxTokens[i] as number,
        sampling: { temperature: 0 },
        onLogits: (l) => o.logits.push(l.slice()),
        onFinish: (s) => {
          o.seq = s;
        },
      });
    });
    if (batch.size === 0 && added.size === prompts.length) break;
    await batch.step();
    step++;
  }
  return out.map((o) => ({ seq: o.seq as FinishedSequence, logits: o.logits }));
}

function assertSame(got: readonly Run[], want: readonly Run[], what: string): void {
  got.forEach((g, i) => {
    const w = want[i] as Run;
    assert.deepEqual(g.seq.tokens, w.seq.tokens, `${what}: prompt ${i} tokens`);
    assert.equal(g.logits.length, w.logits.length);
    g.logits.forEach((l, t) => {
      const e = relErr(l, w.logits[t] as Float32Array);
      assert.ok(e <= REL_TOL, `${what}: prompt ${i} token ${t} logits rel err ${e}`);
    });
  });
}

for (const name of ["llama3", "qwen2", "mistral"] as const) {
  describe(`prefix cache and continuous batching are exact (${name})`, () => {
    let cached: Engine;
    let plain: Engine;
    before(async () => {
      const dir = join(FIXTURES, name);
      cached = await loadModel(dir, { maxPositions: MAX_POSITIONS, prefixBlockTokens: BLOCK });
      plain = await loadModel(dir, {
        maxPositions: MAX_POSITIONS,
        prefixBlockTokens: BLOCK,
        prefixCacheBytes: 0,
      });
    });
    after(async () => {
      await cached.dispose();
      await plain.dispose();
    });

    it("greedy tokens and logits with the prefix cache are bitwise those without it", async () => {
      const system = ids(90, 7);
      const turn1 = [system.concat(ids(20, 11)), system.concat(ids(35, 12))];
      const stop = { stopTokenIds: new Set<number>() };
      const first = await runBatch(plain.createBatch(stop), turn1, [12, 12]);
      // An agent's next turn: the previous prompt, the answer, a new message.
      const turn2 = turn1.map((p, i) => p.concat((first[i] as Run).seq.tokens, ids(25, 20 + i)));
      const prompts = [...turn1, ...turn2, system.concat(ids(5, 30))];
      const maxTokens = prompts.map(() => 10);
      const want = await runBatch(plain.createBatch(stop), prompts, maxTokens, [0, 0, 1, 1, 2]);
      const batch = cached.createBatch(stop);
      const got = await runBatch(batch, prompts, maxTokens, [0, 0, 1, 1, 2]);
      assertSame(got, want, "cache on vs off");
      // Bitwise: the same blocks are computed either way, so reruns give the same numbers
      // whatever the cache held (a resumed sweep reproduces its refusal/KL report exactly).
      got.forEach((g, i) => {
        g.logits.forEach((l, t) => {
          assert.deepEqual(l, (want[i] as Run).logits[t], `prompt ${i} token ${t} logits bitwise`);
        });
      });
      // The cache was used: the shared system prompt, then each turn's whole history.
      assert.ok(
        batch.stats.cachedTokens >= system.length + 2 * (turn1[0] as number[]).length,
        `only ${batch.stats.cachedTokens} prompt tokens came from the cache`,
      );
      assert.equal(plain.prefixCacheStats().hitTokens, 0);
      // And Engine.generate gives the same tokens with the cache warm.
      const again: number[][] = prompts.map(() => []);
      for await (const e of cached.generate({
        prompts,
        maxTokens: 10,
        stopTokenIds: [],
        ignoreEos: true,
      }))
        if (e.type === "tokens")
          for (const t of e.tokens) (again[t.index] as number[]).push(t.token);
      again.forEach((t, i) => {
        assert.deepEqual(t, (want[i] as Run).seq.tokens, `generate, prompt ${i}`);
      });
    });

    it("a sequence joining a running batch decodes as it would alone, across slot re-layouts", async () => {
      const stop = { stopTokenIds: new Set<number>() };
      // Long enough that slot capacity grows past several chunks, then shrinks when the long
      // prompt leaves while the short ones keep decoding.
      const long = ids(3 * KV_SLOT_CHUNK + 10, 41);
      const prompts = [ids(9, 42), long, ids(17, 43), ids(4, 44)];
      const maxTokens = [KV_SLOT_CHUNK + 20, 3, KV_SLOT_CHUNK, 30];
      const alone: Run[] = [];
      for (let i = 0; i < prompts.length; i++)
        alone.push(
          ...(await runBatch(
            plain.createBatch(stop),
            [prompts[i] as number[]],
            [maxTokens[i] as number],
          )),
        );
      const together = await runBatch(plain.createBatch(stop), prompts, maxTokens, [0, 2, 5, 40]);
      assertSame(together, alone, "joined vs alone");
      together.forEach((r, i) => {
        assert.equal(r.seq.tokens.length, maxTokens[i]);
        assert.equal(r.seq.finishReason, "length");
      });
    });
  });
}
