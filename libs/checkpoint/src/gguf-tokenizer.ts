/**
 * Rebuilds a Hugging Face `tokenizer.json` + `tokenizer_config.json` from the `tokenizer.ggml.*`
 * metadata of a GGUF file: byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) and
 * sentencepiece BPE ones with byte fallback (`"llama"`: Llama 2, Mistral 7B), whose merges are
 * recovered from the token scores.
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

/** Numbers of a GGUF array (scores, token types); throws naming the key when it is not one. */
function numberArray(
  header: GgufHeader,
  key: string,
  length: number,
  required: boolean,
): number[] | undefined {
  const v = header.metadata.get(key);
  if (v === undefined && !required) return undefined;
  if (!Array.isArray(v) || !v.every((x: GgufValue) => typeof x === "number")) {
    throw new GgufFormatError(
      v === undefined
        ? `metadata "${key}" is missing`
        : `metadata "${key}" is not an array of numbers`,
    );
  }
  if (v.length !== length)
    throw new GgufFormatError(`metadata "${key}" has ${v.length} entries for ${length} tokens`);
  return v as number[];
}

/**
 * BPE merges implied by a sentencepiece vocabulary (GGUF stores scores, not merges): every split
 * of a token into two vocabulary tokens is a merge ranked by the token's score, best first; ties
 * keep shorter left then right parts last, as transformers' `generate_merges` orders them (a
 * stable descending sort on score, left length, right length; splits of one token by their ids).
 */
export function mergesFromScores(
  tokens: readonly string[],
  scores: readonly number[],
): [string, string][] {
  const vocab = new Map<string, number>();
  const score = new Map<string, number>();
  tokens.forEach((t, i) => {
    vocab.set(t, i);
    score.set(t, scores[i]!);
  });
  type Cand = { l: string; r: string; s: number; ll: number; rl: number };
  const all: Cand[] = [];
  for (const [token, s] of score) {
    const cps = Array.from(token);
    const local: Cand[] = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join("");
      const r = cps.slice(i).join("");
      if (vocab.has(l) && vocab.has(r)) local.push({ l, r, s, ll: i, rl: cps.length - i });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    all.push(...local);
  }
  all.sort((a, b) => b.s - a.s || b.ll - a.ll || b.rl - a.rl);
  return all.map((c) => [c.l, c.r]);
}

/** Rebuilds the HF tokenizer files from the GGUF's `tokenizer.*` metadata. */
export function rebuildGgufTokenizer(header: GgufHeader, contextLength?: number): RebuiltTokenizer {
  const model = ggufOptionalString(header, "tokenizer.ggml.model");
  if (model !== "gpt2" && model !== "llama") {
    throw new GgufTokenizerError(
      `tokenizer.ggml.model "${model ?? "(missing)"}" is not supported (supported: "gpt2" byte-level BPE, "llama" sentencepiece BPE)`,
    );
  }
  const sentencepiece = model === "llama";
  const pre = ggufOptionalString(header, "tokenizer.ggml.pre") ?? "default";
  const kind = PRE_TOKENIZERS[pre];
  if (!sentencepiece && !kind) {
    throw new GgufTokenizerError(
      `tokenizer.ggml.pre "${pre}" is not supported (supported: ${GGUF_SUPPORTED_PRE_TOKENIZERS.join(", ")})`,
    );
  }
  const tokens = stringArray(header, "tokenizer.ggml.tokens");
  const types = numberArray(header, "tokenizer.ggml.token_type", tokens.length, false) ?? [];
  const vocab: Record<string, number> = {};
  for (let i = 0; i < tokens.length; i++) {
    // On a duplicate spelling the later id wins, as in the dict transformers builds in id order.
    vocab[tokens[i]!] = i;
  }
  let mergePairs: string[][];
  if (sentencepiece) {
    mergePairs = mergesFromScores(
      tokens,
      numberArray(header, "tokenizer.ggml.scores", tokens.length, true)!,
    );
  } else {
    mergePairs = stringArray(header, "tokenizer.ggml.merges").map((m, i) => {
      const sp = m.indexOf(" ");
      if (sp <= 0 || sp === m.length - 1 || m.indexOf(" ", sp + 1) !== -1) {
        throw new GgufFormatError(
          `tokenizer.ggml.merges[${i}] "${m}" is not two tokens separated by one space`,
        );
      }
      return [m.slice(0, sp), m.slice(sp + 1)];
    });
  }
  const added: Record<string, unknown>[] = [];
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    // 3 control and (sentencepiece) 2 unknown are special; 4 user-defined is added, not special.
    const special = t === 3 || (sentencepiece && t === 2);
    if (!special && t !== 4) continue;
    added.push({
      id: i,
      content: tokens[i],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special,
    });
  }
  const bosTokenId = tokenId(header, "tokenizer.ggml.bos_token_id", tokens.length);
  const eosTokenId = tokenId(header, "tokenizer.ggml.eos_token_id", tokens.length);
  const unkTokenId = tokenId(header, "tokenizer.ggml.unknown_token_id", tokens.length);
  const padTokenId = tokenId(header, "tokenizer.ggml.padding_token_id", tokens.length);
  // llama.cpp adds a BOS to sentencepiece vocabularies unless told otherwise.
  const addBosValue = header.metadata.get("tokenizer.ggml.add_bos_token");
  const addBos = addBosValue === undefined ? sentencepiece : addBosValue === true;
  const addEos = header.metadata.get("tokenizer.ggml.add_eos_token") === true;
  const withTemplate = (addBos && bosTokenId !== undefined) || (addEos && eosTokenId !== undefined);
  const template = () =>
    templateProcessing(tokens, addBos ? bosTokenId : undefined, addEos ? eosTokenId : undefined);
  let parts: Record<string, unknown>;
  if (sentencepiece) {
    const addSpacePrefix = header.metadata.get("tokenizer.ggml.add_space_prefix") !== false;
    parts = {
      normalizer: null,
      pre_tokenizer: {
        type: "Metaspace",
        replacement: "\u2581",
        prepend_scheme: addSpacePrefix ? "first" : "never",
        split: false,
      },
      post_processor: withTemplate ? template() : null,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          ...(addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
    };
  } else {
    parts = {
      normalizer: null,
      pre_tokenizer: preTokenizer(kind!),
      post_processor: withTemplate
        ? template()
        : { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    };
  }
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    ...parts,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: sentencepiece ? null : "",
      end_of_word_suffix: sentencepiece ? null : "",
      fuse_unk: sentencepiece,
      byte_fallback: sentencepiece,
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
