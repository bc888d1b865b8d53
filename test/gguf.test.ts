/**
 * GGUF import end to end: the tiny GGUF fixtures go through `abl convert gguf` (a real child
 * process) or the library, and the converted folder's tokenizer must give exactly the ids
 * transformers gives for the same GGUF (golden files of libs/engine/fixtures/tokenizers).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { convertGgufToHf } from "@abl/checkpoint";
import { type ChatMessage, loadTokenizer } from "@abl/engine";

const ROOT = new URL("../", import.meta.url).pathname;
const GGUF = join(ROOT, "libs/checkpoint/fixtures/gguf");
const GOLDEN = join(ROOT, "libs/engine/fixtures/tokenizers");

interface Golden {
  encode: { text: string; ids: number[] }[];
  encode_special: { text: string; ids: number[] }[];
  decode: { ids: number[]; text: string }[];
  chat: {
    messages: ChatMessage[];
    add_generation_prompt: boolean;
    text?: string;
    ids?: number[];
    error?: string;
  }[];
}

function abl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(ROOT, "cli/src/main.ts"), ...args],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-gguf-e2e-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function checkTokenizer(folder: string, arch: string): Promise<void> {
  const golden = JSON.parse(
    await readFile(join(GOLDEN, `tiny-${arch}`, "expected.json"), "utf8"),
  ) as Golden;
  const tok = await loadTokenizer(folder);
  for (const e of golden.encode) {
    assert.deepEqual(
      tok.encode(e.text, { addSpecialTokens: false }),
      e.ids,
      `${arch}: ${JSON.stringify(e.text)}`,
    );
  }
  for (const e of golden.encode_special) {
    assert.deepEqual(
      tok.encode(e.text),
      e.ids,
      `${arch} with special tokens: ${JSON.stringify(e.text)}`,
    );
  }
  for (const c of golden.chat) {
    const opts = { addGenerationPrompt: c.add_generation_prompt };
    if (c.error !== undefined) {
      const message = c.error;
      assert.throws(
        () => tok.applyChatTemplate(c.messages, opts),
        (e: unknown) => e instanceof Error && e.message.includes(message),
      );
      continue;
    }
    const got = tok.applyChatTemplate(c.messages, opts);
    assert.equal(got.text, c.text);
    assert.deepEqual(got.ids, c.ids);
  }
  for (const d of golden.decode) assert.equal(tok.decode(d.ids), d.text, `${arch} decode`);
}

describe("abl convert gguf", () => {
  it("converts tiny llama through the CLI; its rebuilt tokenizer matches transformers", async () => {
    const out = join(dir, "cli-llama");
    const r = await abl([
      "convert",
      "gguf",
      join(GGUF, "tiny-llama.gguf"),
      "--out",
      out,
      "--quiet",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /converted llama \(\d+ tensors, f32\)/);
    assert.deepEqual((await readdir(out)).sort(), [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    await checkTokenizer(out, "llama");
  });

  for (const arch of ["qwen2", "qwen3", "mistral"]) {
    it(`rebuilds the ${arch} tokenizer (qwen2 split, user-defined tokens, sentencepiece) with transformers' ids`, async () => {
      const out = join(dir, `lib-${arch}`);
      await convertGgufToHf(join(GGUF, `tiny-${arch}.gguf`), out);
      await checkTokenizer(out, arch);
    });
  }

  it("reports bad input clearly and exits non-zero", async () => {
    const corrupt = join(dir, "corrupt.gguf");
    const bytes = Buffer.from(await readFile(join(GGUF, "tiny-llama.gguf")));
    bytes.write("XXXX", 0, "latin1");
    await writeFile(corrupt, bytes);
    const bad = await abl(["convert", "gguf", corrupt, "--out", join(dir, "never")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad magic 0x58585858: not a GGUF file/);
    const usage = await abl(["convert", "gguf", corrupt]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--out DIR is required/);
    const dtype = await abl(["convert", "gguf", corrupt, "--out", join(dir, "x"), "--dtype", "q8"]);
    assert.equal(dtype.code, 2);
    assert.match(dtype.stderr, /--dtype must be one of f32, bf16, f16/);
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.includes("never")),
      [],
    );
  });
});
