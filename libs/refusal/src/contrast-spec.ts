/**
 * Contrast-set specs (YAML or JSON):
 *
 * ```yaml
 * name: my-set
 * preset: harmful-harmless        # optional: start from a shipped set
 * seed: 1                         # split seed
 * splits: { fit: 0.6, select: 0.2, eval: 0.2 }
 * system: "You are a helpful assistant."   # optional, for sources without their own
 * refuse:
 *   - { path: ./harmful.jsonl, column: goal, limit: 200 }
 *   - { hf: mlabonne/harmful_behaviors, file: data/train.parquet, revision: main, column: text }
 * comply:
 *   - { url: https://example.org/harmless.txt }
 * ```
 */
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import type { ContrastPrompt, ContrastSet } from "./contrast-set.ts";
import { ContrastSetError } from "./errors.ts";
import { isPresetName, PRESET_NAMES, type PresetName, presetContrastSet } from "./presets/index.ts";
import {
  describeLocation,
  readPromptSource,
  type SourceContext,
  type SourceFormat,
  type SourceLocation,
} from "./prompt-sources.ts";
import { DEFAULT_SPLIT_FRACTIONS, type SplitFractions } from "./splits.ts";

/** One source of prompts for a bucket. */
export interface PromptSourceSpec {
  readonly location: SourceLocation;
  readonly format?: SourceFormat;
  readonly column?: string;
  /** Keep at most this many prompts (the first ones). */
  readonly limit?: number;
  /** System prompt for this source's prompts. */
  readonly system?: string;
}

/** A validated contrast-set spec. */
export interface ContrastSpec {
  readonly name: string;
  readonly preset?: PresetName;
  readonly seed: number;
  readonly splits: SplitFractions;
  readonly system?: string;
  readonly refuse: readonly PromptSourceSpec[];
  readonly comply: readonly PromptSourceSpec[];
}

const TOP_KEYS = new Set(["name", "preset", "seed", "splits", "system", "refuse", "comply"]);
const SOURCE_KEYS = new Set([
  "path",
  "url",
  "hf",
  "file",
  "revision",
  "format",
  "column",
  "limit",
  "system",
]);
const FORMATS: readonly SourceFormat[] = ["jsonl", "csv", "txt", "parquet"];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "")
    throw new ContrastSetError(`${where}.${key} must be a non-empty string`);
  return v;
}

function parseSource(raw: unknown, where: string): PromptSourceSpec {
  if (typeof raw === "string")
    return {
      location: raw.includes("://") ? { type: "url", url: raw } : { type: "path", path: raw },
    };
  if (!isObject(raw)) throw new ContrastSetError(`${where} must be a path string or an object`);
  for (const k of Object.keys(raw))
    if (!SOURCE_KEYS.has(k)) throw new ContrastSetError(`${where} has unknown key "${k}"`);
  const path = optString(raw, "path", where);
  const url = optString(raw, "url", where);
  const hf = optString(raw, "hf", where);
  if ([path, url, hf].filter((x) => x !== undefined).length !== 1)
    throw new ContrastSetError(`${where} needs exactly one of path, url, hf`);
  let location: SourceLocation;
  if (path !== undefined) location = { type: "path", path };
  else if (url !== undefined) {
    if (!/^https?:\/\//.test(url))
      throw new ContrastSetError(`${where}.url "${url}" is not http(s)`);
    location = { type: "url", url };
  } else {
    const file = optString(raw, "file", where);
    if (file === undefined)
      throw new ContrastSetError(`${where}.hf needs file (the path inside the dataset repository)`);
    location = {
      type: "hf",
      repo: hf as string,
      file,
      revision: optString(raw, "revision", where) ?? "main",
    };
  }
  const format = optString(raw, "format", where);
  if (format !== undefined && !FORMATS.includes(format as SourceFormat)) {
    throw new ContrastSetError(`${where}.format "${format}" is not one of ${FORMATS.join(", ")}`);
  }
  const limit = raw.limit;
  if (limit !== undefined && (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1)) {
    throw new ContrastSetError(
      `${where}.limit must be a positive integer, got ${JSON.stringify(limit)}`,
    );
  }
  const column = optString(raw, "column", where);
  const system = optString(raw, "system", where);
  return {
    location,
    ...(format !== undefined ? { format: format as SourceFormat } : {}),
    ...(column !== undefined ? { column } : {}),
    ...(limit !== undefined ? { limit: limit as number } : {}),
    ...(system !== undefined ? { system } : {}),
  };
}

function parseFractions(raw: unknown): SplitFractions {
  if (raw === undefined) return DEFAULT_SPLIT_FRACTIONS;
  if (!isObject(raw)) throw new ContrastSetError("splits must be an object { fit, select, eval }");
  const out: Record<string, number> = {};
  for (const k of ["fit", "select", "eval"]) {
    const v = raw[k];
    if (typeof v !== "number" || !(v > 0) || v >= 1)
      throw new ContrastSetError(
        `splits.${k} must be a number in (0, 1), got ${JSON.stringify(v)}`,
      );
    out[k] = v;
  }
  const sum = (out.fit as number) + (out.select as number) + (out.eval as number);
  if (Math.abs(sum - 1) > 1e-9)
    throw new ContrastSetError(`splits must sum to 1, got ${Number(sum.toFixed(6))}`);
  return { fit: out.fit as number, select: out.select as number, eval: out.eval as number };
}

/** Parses and validates a spec from YAML or JSON text (JSON is valid YAML). */
export function parseContrastSpec(text: string): ContrastSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ContrastSetError("contrast-set spec is neither valid YAML nor JSON", { cause });
  }
  return validateContrastSpec(raw);
}

/** Validates an already parsed spec object, naming the first bad key. */
export function validateContrastSpec(raw: unknown): ContrastSpec {
  if (!isObject(raw)) throw new ContrastSetError("contrast-set spec must be a mapping");
  for (const k of Object.keys(raw))
    if (!TOP_KEYS.has(k)) throw new ContrastSetError(`contrast-set spec has unknown key "${k}"`);
  const preset = optString(raw, "preset", "spec");
  if (preset !== undefined && !isPresetName(preset))
    throw new ContrastSetError(`preset "${preset}" is not one of ${PRESET_NAMES.join(", ")}`);
  const seed = raw.seed ?? 0;
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0)
    throw new ContrastSetError(`seed must be a non-negative integer, got ${JSON.stringify(seed)}`);
  const lists: Record<"refuse" | "comply", PromptSourceSpec[]> = { refuse: [], comply: [] };
  for (const b of ["refuse", "comply"] as const) {
    const v = raw[b];
    if (v === undefined) continue;
    if (!Array.isArray(v)) throw new ContrastSetError(`${b} must be a list of sources`);
    lists[b] = v.map((s, i) => parseSource(s, `${b}[${i}]`));
  }
  if (preset === undefined && (lists.refuse.length === 0 || lists.comply.length === 0)) {
    throw new ContrastSetError(
      "contrast-set spec needs a preset or sources in both refuse and comply",
    );
  }
  const system = optString(raw, "system", "spec");
  return {
    name: optString(raw, "name", "spec") ?? preset ?? "contrast-set",
    ...(preset !== undefined ? { preset } : {}),
    seed,
    splits: parseFractions(raw.splits),
    ...(system !== undefined ? { system } : {}),
    refuse: lists.refuse,
    comply: lists.comply,
  };
}

/** The spec that stands for a shipped preset alone. */
export function presetSpec(name: PresetName): ContrastSpec {
  return { name, preset: name, seed: 0, splits: DEFAULT_SPLIT_FRACTIONS, refuse: [], comply: [] };
}

/** Reads every source of a spec into a contrast set; an empty bucket is an error. */
export async function loadContrastSet(
  spec: ContrastSpec,
  ctx: SourceContext = {},
): Promise<ContrastSet> {
  const base = spec.preset ? presetContrastSet(spec.preset) : { refuse: [], comply: [] };
  const buckets: Record<"refuse" | "comply", ContrastPrompt[]> = {
    refuse: [...base.refuse],
    comply: [...base.comply],
  };
  for (const b of ["refuse", "comply"] as const) {
    for (const src of spec[b]) {
      ctx.signal?.throwIfAborted();
      const where = describeLocation(src.location);
      let texts = await readPromptSource(
        src.location,
        {
          ...(src.format ? { format: src.format } : {}),
          ...(src.column ? { column: src.column } : {}),
        },
        ctx,
      );
      if (src.limit !== undefined) texts = texts.slice(0, src.limit);
      const system = src.system ?? spec.system;
      for (const [i, user] of texts.entries()) {
        // Unpaired user prompts: group by content, so a prompt listed twice never straddles splits.
        const group = createHash("sha256").update(user).digest("hex").slice(0, 16);
        buckets[b].push({
          id: `${where}#${i}`,
          group,
          user,
          ...(system !== undefined ? { system } : {}),
        });
      }
    }
    if (buckets[b].length === 0)
      throw new ContrastSetError(
        `the ${b} bucket of "${spec.name}" is empty after reading its sources`,
      );
  }
  return { name: spec.name, refuse: buckets.refuse, comply: buckets.comply };
}
