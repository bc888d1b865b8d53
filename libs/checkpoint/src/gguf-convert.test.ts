import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openShardedSafetensors, readSafetensors } from "@abl/tensor";
import {
  convertGgufToHf,
  GgufConvertError,
  ggufTensorNameToHf,
  inferLlama3RopeScaling,
  unpermuteRows,
} from "./gguf-convert.ts";

const FIXTURES = new URL("../fixtures/gguf/", import.meta.url).pathname;

interface Expected {
  config: Record<string, unknown> & { rope_parameters: { rope_theta: number } };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-gguf-convert-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bitsEqual(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let diff = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) diff++;
  return diff;
}

describe("convertGgufToHf", () => {
  for (const arch of ["llama", "qwen2", "qwen3", "mistral"]) {
    it(`converts tiny ${arch} to exactly the weights and config transformers loads`, async () => {
      const out = join(dir, `tiny-${arch}`);
      const events: string[] = [];
      const result = await convertGgufToHf(join(FIXTURES, `tiny-${arch}.gguf`), out, {
        onEvent: (e) => events.push(e.name),
      });
      // A Mistral 7B GGUF is a llama-architecture file with a sentencepiece vocabulary.
      assert.equal(result.architecture, arch === "mistral" ? "llama" : arch);
      assert.equal(events.length, result.tensorCount);
      const expected = JSON.parse(
        await readFile(join(FIXTURES, `tiny-${arch}.expected.json`), "utf8"),
      ) as Expected;
      const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<
        string,
        unknown
      >;
      for (const key of [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "rms_norm_eps",
        "vocab_size",
        "max_position_embeddings",
        "tie_word_embeddings",
        "head_dim",
        "model_type",
      ]) {
        // Qwen2Config has no head_dim field; every other key must match.
        if (key in expected.config)
          assert.deepEqual(config[key], expected.config[key], `config.${key}`);
      }
      assert.equal(config.rope_theta, expected.config.rope_parameters.rope_theta);
      assert.equal(config.torch_dtype, "float32");

      const got = await readSafetensors(join(out, "model.safetensors"));
      const want = await readSafetensors(join(FIXTURES, `tiny-${arch}.expected.safetensors`));
      try {
        assert.deepEqual([...got.names].sort(), [...want.names].sort());
        for (const name of want.names) {
          assert.deepEqual(got.info(name).shape, want.info(name).shape, `${name} shape`);
          const d = bitsEqual(await got.tensor(name), await want.tensor(name));
          assert.equal(d, 0, `${name}: ${d} values differ from transformers`);
        }
      } finally {
        await got.close();
        await want.close();
      }
      const tok = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")) as {
        model: { type: string };
      };
      assert.equal(tok.model.type, "BPE");
      const tcfg = JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8")) as Record<
        string,
        unknown
      >;
      assert.match(String(tcfg.chat_template), arch === "mistral" ? /\[INST\]/ : /<\|im_start\|>/);
      assert.equal(tcfg.eos_token, arch === "mistral" ? "</s>" : "<|im_end|>");
      const gen = JSON.parse(await readFile(join(out, "generation_config.json"), "utf8")) as Record<
        string,
        unknown
      >;
      assert.equal(gen.eos_token_id, 2);
    });
  }

  it("stores bf16 on request and shards with an index", async () => {
    const out = join(dir, "bf16");
    const result = await convertGgufToHf(join(FIXTURES, "tiny-llama.gguf"), out, {
      dtype: "bf16",
      maxShardBytes: 60_000,
    });
    assert.ok(result.files.includes("model.safetensors.index.json"));
    const ckpt = await openShardedSafetensors(out);
    try {
      assert.ok(ckpt.files.length > 1, `expected several shards, got ${ckpt.files.length}`);
      const want = await readSafetensors(join(FIXTURES, "tiny-llama.expected.safetensors"));
      try {
        const name = "model.layers.0.self_attn.q_proj.weight";
        const [a, b] = [await ckpt.tensor(name), await want.tensor(name)];
        let maxRel = 0;
        for (let i = 0; i < a.length; i++)
          maxRel = Math.max(maxRel, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + 1e-6));
        assert.ok(maxRel <= 2 ** -8, `bf16 relative error ${maxRel}`);
        assert.equal(ckpt.tensors.get(name)?.info.dtype, "BF16");
      } finally {
        await want.close();
      }
    } finally {
      for (const f of ckpt.files) await ckpt.shard(f).close();
    }
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(config.torch_dtype, "bfloat16");
  });

  it("refuses an existing output folder and leaves no temporary folder on failure", async () => {
    const out = join(dir, "tiny-llama-again");
    await convertGgufToHf(join(FIXTURES, "tiny-llama.gguf"), out);
    await assert.rejects(convertGgufToHf(join(FIXTURES, "tiny-llama.gguf"), out), GgufConvertError);
    const bad = join(dir, "from-all-types");
    // all-types.gguf has tensors with no HF names: the conversion fails before publishing.
    await assert.rejects(
      convertGgufToHf(join(FIXTURES, "all-types.gguf"), bad),
      /embedding_length|no Hugging Face/,
    );
    const left = (await readdir(dir)).filter((n) => n.includes("from-all-types"));
    assert.deepEqual(left, []);
  });

  it("stops when aborted, publishing nothing", async () => {
    const ac = new AbortController();
    const out = join(dir, "aborted");
    let n = 0;
    await assert.rejects(
      convertGgufToHf(join(FIXTURES, "tiny-qwen2.gguf"), out, {
        signal: ac.signal,
        onEvent: () => {
          if (++n === 3) ac.abort(new Error("stop here"));
        },
      }),
      /stop here/,
    );
    const left = (await readdir(dir)).filter((x) => x.includes("aborted"));
    assert.deepEqual(left, []);
  });

  it("recovers llama3 rope scaling from rope_freqs and drops that tensor", async () => {
    const out = join(dir, "llama3-rope");
    await convertGgufToHf(join(FIXTURES, "tiny-llama3-rope.gguf"), out);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.deepEqual(config.rope_scaling, {
      rope_type: "llama3",
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    assert.equal(config.max_position_embeddings, 131072);
    const st = await readSafetensors(join(out, "model.safetensors"));
    try {
      assert.ok(!st.names.some((n) => n.includes("rope")), st.names.join());
      assert.equal(st.names.length, 11);
    } finally {
      await st.close();
    }
    // Divisors no known parameter set produces are refused, naming the factor.
    const odd = new Float32Array(8).fill(1);
    odd[7] = 3;
    odd[6] = 2.5;
    assert.throws(
      () => inferLlama3RopeScaling(odd, 500000, 16),
      /matches no known llama3 rope scaling \(factor 3;/,
    );
  });

  it("maps names and unpermutes rows", () => {
    assert.equal(
      ggufTensorNameToHf("blk.12.ffn_down.weight"),
      "model.layers.12.mlp.down_proj.weight",
    );
    assert.equal(ggufTensorNameToHf("output.weight"), "lm_head.weight");
    assert.throws(() => ggufTensorNameToHf("blk.0.ssm_a"), /no Hugging Face counterpart/);
    // One head of 4 rows, 1 column: GGUF rows [r0 r2 r1 r3] (interleaved) -> HF [r0 r1 r2 r3].
    assert.deepEqual([...unpermuteRows(new Float32Array([0, 2, 1, 3]), 4, 1, 1)], [0, 1, 2, 3]);
  });
});
