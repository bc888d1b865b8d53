import { CheckpointError } from "./errors.ts";

/** The fields of an HF `config.json` the patcher needs, read from `text_config` when nested. */
export interface ModelConfig {
  /** The whole parsed `config.json`. */
  readonly raw: Readonly<Record<string, unknown>>;
  /** `text_config` for multimodal wrappers, otherwise the top level. */
  readonly text: Readonly<Record<string, unknown>>;
  /** Text model's `model_type` (e.g. `gemma3_text` inside a `gemma3` wrapper). */
  readonly modelType: string;
  /** Top-level `model_type`. */
  readonly outerModelType: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  /** `tie_word_embeddings` when stated (top level wins, then text_config). */
  readonly tieWordEmbeddings: boolean | undefined;
}

function positiveInt(obj: Record<string, unknown>, key: string): number {
  const v = obj[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new CheckpointError(
      `config.json: ${key} = ${JSON.stringify(v)} is not a positive integer`,
    );
  }
  return v;
}

/** Parses `config.json`, following `text_config` for multimodal checkpoints. */
export function parseModelConfig(bytes: Uint8Array | string): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (err) {
    throw new CheckpointError("config.json is not valid JSON", { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new CheckpointError("config.json is not a JSON object");
  const top = raw as Record<string, unknown>;
  const nested = top.text_config;
  const text =
    typeof nested === "object" && nested !== null && !Array.isArray(nested)
      ? (nested as Record<string, unknown>)
      : top;
  const outerModelType = typeof top.model_type === "string" ? top.model_type : "";
  const modelType = typeof text.model_type === "string" ? text.model_type : outerModelType;
  if (modelType === "") throw new CheckpointError("config.json has no model_type");
  const tie =
    typeof top.tie_word_embeddings === "boolean"
      ? top.tie_word_embeddings
      : typeof text.tie_word_embeddings === "boolean"
        ? text.tie_word_embeddings
        : undefined;
  return {
    raw: top,
    text,
    modelType,
    outerModelType,
    hiddenSize: positiveInt(text, "hidden_size"),
    numLayers: positiveInt(text, "num_hidden_layers"),
    tieWordEmbeddings: tie,
  };
}

/**
 * `config.json` with the embeddings untied: `tie_word_embeddings` set to false wherever it is
 * stated (top level and `text_config`), and at the top level when stated nowhere.
 */
export function untieConfig(raw: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, tie_word_embeddings: false };
  const t = raw.text_config;
  if (typeof t === "object" && t !== null && !Array.isArray(t) && "tie_word_embeddings" in t) {
    out.text_config = { ...(t as Record<string, unknown>), tie_word_embeddings: false };
  }
  return out;
}
