/**
 * A model's tokenizer and chat template, loaded from an HF checkpoint folder (`tokenizer.json`,
 * `tokenizer_config.json`, optional `generation_config.json` and `chat_template.jinja`).
 * Tokenization runs through `@huggingface/tokenizers`, templates through `@huggingface/jinja`;
 * the ids match transformers' fast tokenizer for the byte-level BPE families (golden tests).
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { FolderBytes } from "@abl/tensor";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  type ChatMessage,
  type ChatTemplate,
  type ChatTemplateOptions,
  compileChatTemplate,
} from "./chat-template.ts";

/** Largest tokenizer.json accepted: 256k-token vocabularies with merges are ~20 MiB. */
export const MAX_TOKENIZER_JSON_BYTES = 128 * 1024 * 1024;
/** Largest tokenizer_config.json / generation_config.json / chat_template.jinja accepted. */
export const MAX_TOKENIZER_CONFIG_BYTES = 16 * 1024 * 1024;

/** A tokenizer folder that cannot be loaded, or a chat that has no template to render with. */
export class TokenizerLoadError extends Error {
  override readonly name = "TokenizerLoadError";
}

/** Options of {@link LoadedTokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the post-processor (e.g. a BOS token), as transformers does by default (default true). */
  readonly addSpecialTokens?: boolean;
}

/** Options of {@link LoadedTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens from the text (default false). */
  readonly skipSpecialTokens?: boolean;
}

/** A rendered chat: the template's text and its token ids. */
export interface ChatEncoding {
  readonly text: string;
  readonly ids: number[];
}

/** A loaded tokenizer. */
export interface LoadedTokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /**
   * Renders `messages` with the model's chat template and tokenizes the text without adding
   * special tokens (the template writes them), as `apply_chat_template(tokenize=True)` does.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): ChatEncoding;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** Ids that end generation: the tokenizer's eos plus generation_config's eos_token_id(s). */
  readonly stopTokenIds: readonly number[];
  /** Special token strings → ids (added tokens marked special). */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Vocabulary size including added tokens. */
  readonly vocabSize: number;
  readonly chatTemplate: ChatTemplate | undefined;
}

/** A file of the folder: from `memory` when given (the whole folder), else from the disk. */
async function folderFile(
  dir: string,
  name: string,
  limit: number,
  memory: FolderBytes | undefined,
): Promise<string | undefined> {
  const path = join(dir, name);
  let size: number;
  if (memory) {
    const held = memory.get(name);
    if (!held) return undefined;
    size = held.byteLength;
  } else {
    try {
      size = (await stat(path)).size;
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new TokenizerLoadError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
    }
  }
  if (size > limit)
    throw new TokenizerLoadError(`${path} is ${size} bytes, over the ${limit}-byte limit`);
  const held = memory?.get(name);
  return held ? new TextDecoder().decode(held) : await readFile(path, "utf8");
}

async function readJsonCapped(
  dir: string,
  name: string,
  limit: number,
  required: boolean,
  memory: FolderBytes | undefined,
): Promise<unknown> {
  const path = join(dir, name);
  const text = await folderFile(dir, name, limit, memory);
  if (text === undefined) {
    if (!required) return undefined;
    throw new TokenizerLoadError(`cannot read ${path}: no such file`);
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new TokenizerLoadError(`${path} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** A special-token entry of tokenizer_config.json: a string, or `{ content }` in older files. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** `chat_template` of tokenizer_config.json: a string, or a list of named templates ("default" wins). */
function templateSource(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v as { name?: unknown; template?: unknown }[];
    const pick = named.find((t) => t.name === "default") ?? named[0];
    return typeof pick?.template === "string" ? pick.template : undefined;
  }
  return undefined;
}

/**
 * Loads the tokenizer and chat template of the HF checkpoint folder `dir`, or of `memory` when
 * given: the folder's files by name, held in memory (nothing is then read from the disk).
 */
export async function loadTokenizer(dir: string, memory?: FolderBytes): Promise<LoadedTokenizer> {
  const json = (name: string, limit: number, required: boolean) =>
    readJsonCapped(dir, name, limit, required, memory);
  const tokenizerJson = await json("tokenizer.json", MAX_TOKENIZER_JSON_BYTES, true);
  const config = ((await json("tokenizer_config.json", MAX_TOKENIZER_CONFIG_BYTES, false)) ??
    {}) as Record<string, unknown>;
  const generation = ((await json("generation_config.json", MAX_TOKENIZER_CONFIG_BYTES, false)) ??
    {}) as Record<string, unknown>;
  if (!tokenizerJson || typeof tokenizerJson !== "object" || !("model" in tokenizerJson)) {
    throw new TokenizerLoadError(`${join(dir, "tokenizer.json")} has no "model" section`);
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, config);
  } catch (cause) {
    throw new TokenizerLoadError(
      `cannot build the tokenizer of ${dir}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const idOf = (token: string | undefined): number | undefined =>
    token === undefined ? undefined : tok.token_to_id(token);
  const bosToken = tokenString(config.bos_token);
  const eosToken = tokenString(config.eos_token);
  const unkToken = tokenString(config.unk_token);
  const padToken = tokenString(config.pad_token);
  const bosTokenId = idOf(bosToken);
  const eosTokenId = idOf(eosToken);
  const padTokenId = idOf(padToken);
  const stop = new Set<number>();
  if (eosTokenId !== undefined) stop.add(eosTokenId);
  const genEos = generation.eos_token_id;
  for (const id of Array.isArray(genEos) ? genEos : [genEos])
    if (typeof id === "number") stop.add(id);

  let source = templateSource(config.chat_template);
  if (source === undefined) {
    source = await folderFile(dir, "chat_template.jinja", MAX_TOKENIZER_CONFIG_BYTES, memory);
  }
  const chatTemplate =
    source === undefined
      ? undefined
      : compileChatTemplate(source, {
          bos_token: bosToken,
          eos_token: eosToken,
          unk_token: unkToken,
          pad_token: padToken,
        });

  const specialTokens = new Map<string, number>();
  for (const [id, added] of tok.get_added_tokens_decoder())
    if (added.special) specialTokens.set(added.content, id);

  const encode = (text: string, options: EncodeOptions = {}): number[] =>
    tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;

  return {
    encode,
    // The library rejects an empty id list; an empty sequence decodes to "".
    decode: (ids, options = {}) =>
      ids.length === 0
        ? ""
        : tok.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false }),
    applyChatTemplate(messages, options = {}) {
      if (!chatTemplate)
        throw new TokenizerLoadError(
          `${dir} has no chat template (tokenizer_config.json chat_template)`,
        );
      const text = chatTemplate.render(messages, options);
      return { text, ids: encode(text, { addSpecialTokens: false }) };
    },
    bosTokenId,
    eosTokenId,
    padTokenId,
    stopTokenIds: [...stop],
    specialTokens,
    vocabSize: tok.get_vocab(true).size,
    chatTemplate,
  };
}
