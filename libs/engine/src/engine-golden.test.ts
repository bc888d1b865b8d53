import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSafetensors } from "@abl/tensor";
import { drain, type Engine, loadModel } from "./engine.ts";

/** Golden fixtures written by scripts/make-golden.py from HF transformers (f32, eager attention). */
const FIXTURES = join(import.meta.dirname, "..", "fixtures", "golden");
const MODELS = ["llama3", "mistral", "qwen2", "qwen3", "llama-yarn"] as const;
/** The brief's tolerance: within 1e-4 relative to the largest magnitude of the tensor compared. */
const REL_TOL = 1e-4;

interface Golden {
  ids: number[][];
  hidden: Float32Array[];
  logits: Float32Array[];
  greedy: number[][];
}

async function readGolden(dir: string): Promise<Golden> {
  const f = await readSafetensors(join(dir, "golden.safetensors"));
  try {
    const ints = async (name: string) =>
      Array.from(new BigInt64Array((await f.bytes(name)).slice().buffer), Number);
    const g: Golden = { ids: [], hidden: [], logits: [], greedy: [] };
    for (let i = 0; f.names.includes(`input_ids_${i}`); i++) {
      g.ids.push(await ints(`input_ids_${i}`));
      g.greedy.push(await ints(`greedy_${i}`));
      g.hidden.push(await f.tensor(`hidden_${i}`));
      g.logits.push(await f.tensor(`logits_${i}`));
    }
    return g;
  } finally {
    await f.close();
  }
}

/** max |a-b| / max |b| */
function relErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "length");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff / scale;
}

for (const name of MODELS) {
  describe(`golden ${name}`, () => {
    let engine: Engine;
    let golden: Golden;
    before(async () => {
      const dir = join(FIXTURES, name);
      engine = await loadModel(dir, { maxPositions: 128 });
      golden = await readGolden(dir);
    });
    after(async () => engine.dispose());

    for (const padding of ["left", "right"] as const) {
      it(`hidden states and logits match transformers (batched, ${padding} padding)`, async () => {
        const res = await engine.forward(golden.ids, { padding });
        res.forEach((r, i) => {
          const eh = relErr(r.hidden, golden.hidden[i] as Float32Array);
          const el = relErr(r.logits, golden.logits[i] as Float32Array);
          assert.ok(eh <= REL_TOL, `prompt ${i} hidden rel err ${eh}`);
          assert.ok(el <= REL_TOL, `prompt ${i} logits rel err ${el}`);
        });
      });
    }

    it("greedy tokens with the KV cache are identical (batched)", async () => {
      const seqs = await drain(
        engine.generate({ prompts: golden.ids, maxTokens: 20, stopTokenIds: [] }),
      );
      // The model's eos (2) may end a sequence early; compare the prefix it generated.
      seqs.forEach((s, i) => {
        const want = golden.greedy[i] as number[];
        assert.ok(s.tokens.length > 0);
        assert.deepEqual(s.tokens, want.slice(0, s.tokens.length), `prompt ${i}`);
        if (s.finishReason === "length") assert.equal(s.tokens.length, 20);
        else assert.equal(s.tokens[s.tokens.length - 1], 2);
      });
    });
  });
}

describe("loading from files held in memory", () => {
  it("reads nothing from the folder and computes what loading from disk computes", async () => {
    const dir = join(FIXTURES, "qwen2");
    const files = new Map<string, Uint8Array>();
    for (const name of await readdir(dir))
      if (name !== "golden.safetensors") files.set(name, await readFile(join(dir, name)));
    const golden = await readGolden(dir);
    const held = await loadModel(join(dir, "not-there"), { maxPositions: 128, files });
    const disk = await loadModel(dir, { maxPositions: 128 });
    try {
      const [a, b] = [await held.forward(golden.ids), await disk.forward(golden.ids)];
      a.forEach((r, i) => {
        assert.deepEqual(r.logits, b[i]?.logits, `prompt ${i} logits`);
        assert.deepEqual(r.hidden, b[i]?.hidden, `prompt ${i} hidden`);
      });
      assert.equal(held.tokenizer !== undefined, disk.tokenizer !== undefined);
    } finally {
      await held.dispose();
      await disk.dispose();
    }
  });
});
