/**
 * Rebuilds a Hugging Face `tokenizer.json` + `tokenizer_config.json` from the `tokenizer.ggml.*`
 * metadata of a GGUF file (byte-level BPE vocabularies, `tokenizer.ggml.model = "gpt2"`).
 *
 * llama.cpp records the vocabulary in byte-level spelling, the merges in rank order, one type per
 * token (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte) and the name of the
 * pre-tokenizer regex family in `tokenizer.ggml.pre`. The pre-tokenizer is restored from that name
 * with the same split patterns llama.cpp uses for it (llama-vocab.cpp).
 */
import {
  GgufFormatError,
  type GgufHeader,
  type GgufValue,
  ggufOptionalString,
} from "./gguf-reader.ts";

/** A GGUF whose tokenizer cannot be rebuilt (a model or pre-tokenizer family not handled here). */
export class GgufTokenizerError extends Error {
  override readonly name = "GgufTokenizerError";
}

// Split patterns of the pre-tokenizer families (llama.cpp's llama-vocab.cpp names them by
// `tokenizer.ggml.pre`); GPT-2's own pattern is the one `ByteLevel` applies with `use_regex`.
const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const TEKKEN_SPLIT =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

type PreTokenizerKind = "gpt2" | "gpt2-digits" | "llama3" | "qwen2" | "tekken";

/**
 * `tokenizer.ggml.pre` values and the pre-tokenizer each stands for. "gpt2-digits" is llama.cpp's
 * pair of regexes `\p{N}` then GPT-2's, which HF writes as `Digits(individual)` + `ByteLevel`.
 */
const PRE_TOKENIZERS: Readonly<Record<string, PreTokenizerKind>> = {
  default: "gpt2",
  gpt2: "gpt2",
  "gpt-2": "gpt2",
  smollm: "gpt2-digits",
  starcoder: "gpt2-digits",
  refact: "gpt2-digits",
  "command-r": "gpt2-digits",
  codeshell: "gpt2-digits",
  "llama-bpe": "llama3",
  "llama-v3": "llama3",
  llama3: "llama3",
  "smaug-bpe": "llama3",
  dbrx: "llama3",
  falcon3: "llama3",
  pixtral: "llama3",
  qwen2: "qwen2",
  "deepseek-r1-qwen": "qwen2",
  megrez: "qwen2",
  tekken: "tekken",
};

/** The `tokenizer.ggml.pre` names this package can rebuild. */
export const GGUF_SUPPORTED_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});

function preTokenizer(kind: PreTokenizerKind): unknown {
  const split = (pattern: string) => ({
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
      byteLevel(false),
    ],
  });
  switch (kind) {
    case "gpt2":
      return byteLevel(true);
    case "gpt2-digits":
      return {
        type: "Sequence",
        pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)],
      };
    case "llama3":
      return split(LLAMA3_SPLIT);
    case "qwen2":
      return split(QWEN2_SPLIT);
    case "tekken":
      return split(TEKKEN_SPLIT);
  }
}

/** The files a rebuilt tokenizer consists of, as JSON-ready objects. */
export interface RebuiltTokenizer {
  readonly tokenizerJson: Record<string, unknown>;
  readonly tokenizerConfig: Record<string, unknown>;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
}

function stringArray(header: GgufHeader, key: string): string[] {
  const v = header.metadata.get(key);
  if (!Array.isArray(v) || !v.every((x: GgufValue) => typeof x === "string")) {
    throw new GgufFormatError(
      v === undefined
        ? `metadata "${key}" is missing`
        : `metadata "${key}" is not an array of strings`,
    );
  }
  return v as string[];
}

function tokenId(header: GgufHeader, key: string, vocabSize: number): number | undefined {
  const v = header.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= vocabSize) {
    throw new GgufFormatError(
      `metadata "${key}" = ${String(v)} is not a token id below the vocabulary size ${vocabSize}`,
    );
  }
  return v;
}

/** Rebuilds the HF tokenizer files from the GGUF's `tokenizer.*` metadata. */
export function rebuildGgufTokenizer(header: GgufHeader, contextLength?: number): RebuiltTokenizer {
  const model = ggufOptionalString(header, "tokenizer.ggml.model");
  if (model !== "gpt2") {
    throw new GgufTokenizerError(
      `tokenizer.ggml.model "${model ?? "(missing)"}" is not supported: only byte-level BPE ("gpt2") vocabularies can be rebuilt`,
    );
  }
  const pre = ggufOptionalString(header, "tokenizer.ggml.pre") ?? "default";
  const kind = PRE_TOKENIZERS[pre];
  if (!kind) {
    throw new GgufTokenizerError(
      `tokenizer.ggml.pre "${pre}" is not supported (supported: ${GGUF_SUPPORTED_PRE_TOKENIZERS.join(", ")})`,
    );
  }
  const tokens = stringArray(header, "tokenizer.ggml.tokens");
  const merges = stringArray(header, "tokenizer.ggml.merges");
  const typesValue = header.metadata.get("tokenizer.ggml.token_type");
  const types = Array.isArray(typesValue) ? (typesValue as number[]) : [];
  if (types.length !== 0 && types.length !== tokens.length) {
    throw new GgufFormatError(
      `tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  }
  const vocab: Record<string, number> = {};
  for (let i = 0; i < tokens.length; i++) {
    // On a duplicate spelling the later id wins, as in the dict transformers builds in id order.
    vocab[tokens[i]!] = i;
  }
  const mergePairs = merges.map((m, i) => {
    const sp = m.indexOf(" ");
    if (sp <= 0 || sp === m.length - 1 || m.indexOf(" ", sp + 1) !== -1) {
      throw new GgufFormatError(
        `tokenizer.ggml.merges[${i}] "${m}" is not two tokens separated by one space`,
      );
    }
    return [m.slice(0, sp), m.slice(sp + 1)];
  });
  const added: Record<string, unknown>[] = [];
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    if (t !== 3 && t !== 4) continue; // 3 control (special), 4 user-defined (added, not special)
    added.push({
      id: i,
      content: tokens[i],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t === 3,
    });
  }
  const bosTokenId = tokenId(header, "tokenizer.ggml.bos_token_id", tokens.length);
  const eosTokenId = tokenId(header, "tokenizer.ggml.eos_token_id", tokens.length);
  const unkTokenId = tokenId(header, "tokenizer.ggml.unknown_token_id", tokens.length);
  const padTokenId = tokenId(header, "tokenizer.ggml.padding_token_id", tokens.length);
  const addBos = header.metadata.get("tokenizer.ggml.add_bos_token") === true;
  const addEos = header.metadata.get("tokenizer.ggml.add_eos_token") === true;
  const postProcessor =
    (addBos && bosTokenId !== undefined) || (addEos && eosTokenId !== undefined)
      ? templateProcessing(tokens, addBos ? bosTokenId : undefined, addEos ? eosTokenId : undefined)
      : { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true };
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer(kind),
    post_processor: postProcessor,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: mergePairs,
    },
  };
  const name = (id: number | undefined) => (id === undefined ? null : tokens[id]);
  const addedDecoder: Record<string, unknown> = {};
  for (const a of added) {
    const { id, ...rest } = a;
    addedDecoder[String(id)] = rest;
  }
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: "PreTrainedTokenizerFast",
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: name(bosTokenId),
    eos_token: name(eosTokenId),
    unk_token: name(unkTokenId),
    pad_token: name(padTokenId),
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: addedDecoder,
  };
  if (contextLength !== undefined) tokenizerConfig.model_max_length = contextLength;
  const chatTemplate = ggufOptionalString(header, "tokenizer.chat_template");
  if (chatTemplate !== undefined) tokenizerConfig.chat_template = chatTemplate;
  return { tokenizerJson, tokenizerConfig, bosTokenId, eosTokenId, padTokenId };
}

function templateProcessing(
  tokens: readonly string[],
  bos: number | undefined,
  eos: number | undefined,
): unknown {
  const pre = bos === undefined ? [] : [{ SpecialToken: { id: tokens[bos], type_id: 0 } }];
  const post = eos === undefined ? [] : [{ SpecialToken: { id: tokens[eos], type_id: 0 } }];
  const special: Record<string, unknown> = {};
  for (const id of [bos, eos]) {
    if (id !== undefined)
      special[tokens[id]!] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  }
  return {
    type: "TemplateProcessing",
    single: [...pre, { Sequence: { id: "A", type_id: 0 } }, ...post],
    pair: [
      ...pre,
      { Sequence: { id: "A", type_id: 0 } },
      ...post,
      ...pre,
      { Sequence: { id: "B", type_id: 1 } },
      ...post,
    ],
    special_tokens: special,
  };
}
