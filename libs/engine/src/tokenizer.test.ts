import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type ChatMessage, ChatTemplateError, compileChatTemplate } from "./chat-template.ts";
import { loadTokenizer, TokenizerLoadError } from "./tokenizer.ts";

const FIXTURES = new URL("../fixtures/tokenizers/", import.meta.url).pathname;

interface Golden {
  encode: { text: string; ids: number[] }[];
  chat: {
    messages: ChatMessage[];
    add_generation_prompt: boolean;
    text?: string;
    ids?: number[];
    error?: string;
  }[];
  encode_special: { text: string; ids: number[] }[];
  decode: { ids: number[]; text: string }[];
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
}

describe("loadTokenizer (golden ids from transformers)", () => {
  for (const arch of ["llama", "qwen2", "qwen3", "mistral"]) {
    it(`tiny-${arch}: encode, decode and chat template match transformers`, async () => {
      const dir = join(FIXTURES, `tiny-${arch}`);
      const golden = JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as Golden;
      const tok = await loadTokenizer(dir);
      assert.ok(golden.encode.length >= 25);
      for (const e of golden.encode) {
        assert.deepEqual(
          tok.encode(e.text, { addSpecialTokens: false }),
          e.ids,
          JSON.stringify(e.text),
        );
      }
      for (const d of golden.decode) assert.equal(tok.decode(d.ids), d.text);
      for (const e of golden.encode_special) {
        assert.deepEqual(tok.encode(e.text), e.ids, JSON.stringify(e.text));
      }
      for (const c of golden.chat) {
        const opts = { addGenerationPrompt: c.add_generation_prompt };
        if (c.error !== undefined) {
          // The template refuses these messages (raise_exception), in transformers too.
          const message = c.error;
          assert.throws(
            () => tok.applyChatTemplate(c.messages, opts),
            (e: unknown) => e instanceof ChatTemplateError && e.message.includes(message),
          );
          continue;
        }
        const got = tok.applyChatTemplate(c.messages, opts);
        assert.equal(got.text, c.text);
        assert.deepEqual(got.ids, c.ids);
      }
      assert.equal(tok.eosTokenId ?? null, golden.eos_token_id);
      assert.equal(tok.bosTokenId ?? null, golden.bos_token_id);
      assert.equal(tok.padTokenId ?? null, golden.pad_token_id);
      assert.ok(tok.stopTokenIds.includes(golden.eos_token_id!));
      assert.equal(tok.specialTokens.get(arch === "mistral" ? "</s>" : "<|im_end|>"), 2);
    });
  }

  it("loads the same tokenizer from files held in memory, reading nothing from the folder", async () => {
    const dir = join(FIXTURES, "tiny-qwen2");
    const files = new Map<string, Uint8Array>();
    for (const name of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
      files.set(name, await readFile(join(dir, name)));
    const [disk, held] = [
      await loadTokenizer(dir),
      await loadTokenizer(join(dir, "not-there"), files),
    ];
    const golden = JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as Golden;
    for (const e of golden.encode) assert.deepEqual(held.encode(e.text), disk.encode(e.text));
    const chat = golden.chat.find((c) => c.error === undefined);
    assert.ok(chat);
    assert.deepEqual(held.applyChatTemplate(chat.messages), disk.applyChatTemplate(chat.messages));
    assert.equal(held.eosTokenId, disk.eosTokenId);
    // The held folder is the whole folder: a file it lacks is missing, even when on disk.
    files.delete("chat_template.jinja");
    const bare = await loadTokenizer(dir, files);
    assert.equal(bare.chatTemplate, undefined);
    files.set("tokenizer.json", new TextEncoder().encode("{"));
    await assert.rejects(loadTokenizer(join(dir, "not-there"), files), /not valid JSON/);
  });

  it("fails clearly on a folder without tokenizer.json or with a broken one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "abl-tok-"));
    try {
      await assert.rejects(loadTokenizer(dir), TokenizerLoadError);
      await writeFile(join(dir, "tokenizer.json"), "{not json");
      await assert.rejects(loadTokenizer(dir), /not valid JSON/);
      await writeFile(join(dir, "tokenizer.json"), "{}");
      await assert.rejects(loadTokenizer(dir), /no "model" section/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("compileChatTemplate", () => {
  it("passes special tokens and generation prompt, and reports template errors", () => {
    const t = compileChatTemplate(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
      { bos_token: "<s>" },
    );
    assert.equal(
      t.render([{ role: "user", content: "hi" }], { addGenerationPrompt: true }),
      "<s>[user]hi[assistant]",
    );
    assert.equal(t.render([{ role: "user", content: "hi" }]), "<s>[user]hi");
    const strict = compileChatTemplate(
      "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok",
    );
    assert.throws(
      () => strict.render([{ role: "system", content: "x" }]),
      /System role not supported/,
    );
    assert.throws(() => compileChatTemplate("{% for %}"), ChatTemplateError);
    assert.throws(
      () => t.render([{ role: "wizard" as "user", content: "x" }]),
      /unknown role "wizard"/,
    );
  });
});
