/**
 * The sweep spec: what one `abl run` does, as YAML. Parsed with source positions so every error
 * names the key and the line ("variants[1].layer (line 14): layer 40 is beyond the model's 30
 * layers").
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** Where a model comes from: a local HF folder, a GGUF file, or a Hub id `org/name[@rev]`. */
export interface ModelSpec {
  readonly source: string;
}

/** The prompts that define the refusal direction. */
export interface ContrastSpec {
  /** A preset shipped with the project, or a path to a contrast-set spec file. */
  readonly preset?: "agent-shell" | "harmful-harmless";
  readonly file?: string;
  /** Use at most this many prompt pairs (after the split); keeps demos short. */
  readonly limit?: number;
  readonly seed: number;
}

export interface CaptureSpec {
  readonly positions: "last" | "after-user";
  readonly engine: "builtin" | "transformers";
  readonly batchSize: number;
}

export interface DirectionsSpec {
  readonly method: "mean-diff" | "projected" | "pca";
  readonly selection: "best-auc" | "explicit" | "causal";
  /** The layer for `explicit` selection. */
  readonly layer?: number;
  /** The KL bound for `causal` selection. */
  readonly maxKl: number;
}

export type PatchTarget = "embed" | "attn_out" | "mlp_out" | "experts" | "bias";
export type PatchMethod = "project" | "norm-preserving";

/** A variant as written in the spec; abliterated ones expand over their grid. */
export type VariantSpec =
  | { readonly kind: "base"; readonly name: string }
  | {
      readonly kind: "abliterated";
      readonly name: string;
      /** Layer whose direction is removed: a number, or `selected` (the directions step's choice). */
      readonly layer: ReadonlyArray<number | "selected">;
      readonly scale: readonly number[];
      readonly method: readonly PatchMethod[];
      readonly targets: readonly PatchTarget[];
    }
  | { readonly kind: "checkpoint"; readonly name: string; readonly path: string };

export interface RefusalSpec {
  readonly enabled: boolean;
  /** Tokens generated per eval prompt (the judge needs ≥ 100 to be meaningful). */
  readonly maxTokens: number;
  /** Generated tokens over which KL is averaged. */
  readonly klTokens: number;
  /** Eval prompts per bucket (at most; the eval split may be smaller). */
  readonly prompts: number;
  readonly markers?: readonly string[];
  readonly judge?: { readonly endpoint: string; readonly model: string };
}

export interface BenchSpec {
  readonly enabled: boolean;
  /** `builtin` (the project's local task set), a folder, or `git-url#commit`. */
  readonly dataset: string;
  readonly tasks?: readonly string[];
  readonly replicas: number;
  readonly agent: "terminus-json" | "terminus-xml" | "oracle" | "nop";
  readonly maxTurns?: number;
  readonly maxTokens?: number;
  readonly temperature: number;
  readonly concurrency: number;
  readonly acceptSplitJson: boolean;
}

export interface ReportSpec {
  readonly bootstrap: number;
  readonly seed: number;
}

/** A validated sweep spec with every default filled in. */
export interface SweepSpec {
  readonly name: string;
  readonly model: ModelSpec;
  readonly contrast: ContrastSpec;
  readonly capture: CaptureSpec;
  readonly directions: DirectionsSpec;
  readonly variants: readonly VariantSpec[];
  readonly refusal: RefusalSpec;
  readonly bench: BenchSpec;
  readonly report: ReportSpec;
}

/** A spec that cannot be run: each problem names its key path and line. */
export class SpecError extends Error {
  override readonly name = "SpecError";
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(
      `${file}: ${problems.length} problem(s) in the sweep spec:\n  - ${problems.join("\n  - ")}`,
    );
  }
}

/** Reads YAML nodes with their paths and lines and collects problems instead of throwing. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly lines: LineCounter) {}

  where(path: string, node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    return offset === undefined ? path : `${path} (line ${this.lines.linePos(offset).line})`;
  }

  fail(path: string, node: Node | null | undefined, message: string): undefined {
    this.problems.push(`${this.where(path, node)}: ${message}`);
    return undefined;
  }

  /** The entries of a mapping, rejecting keys not in `allowed`. */
  map(path: string, node: Node | null | undefined, allowed: readonly string[]): Map<string, Node> {
    const out = new Map<string, Node>();
    if (node === undefined || node === null) return out;
    if (!isMap(node)) {
      this.fail(path, node, "expected a mapping");
      return out;
    }
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : "";
      const at = path ? `${path}.${key}` : key;
      if (!allowed.includes(key)) {
        this.fail(at, keyNode, `unknown key "${key}" (allowed: ${allowed.join(", ")})`);
        continue;
      }
      out.set(key, pair.value as Node);
    }
    return out;
  }

  string(path: string, node: Node | undefined, fallback?: string): string | undefined {
    if (node === undefined) return fallback;
    if (isScalar(node) && typeof node.value === "string" && node.value.length > 0)
      return node.value;
    return this.fail(path, node, "expected a non-empty string");
  }

  oneOf<T extends string>(
    path: string,
    node: Node | undefined,
    values: readonly T[],
    fallback?: T,
  ): T | undefined {
    const s = this.string(path, node, fallback);
    if (s === undefined) return undefined;
    if (!(values as readonly string[]).includes(s)) {
      return this.fail(path, node, `"${s}" is not one of ${values.join(", ")}`);
    }
    return s as T;
  }

  number(
    path: string,
    node: Node | undefined,
    opts: { min?: number; max?: number; integer?: boolean; fallback?: number },
  ): number | undefined {
    if (node === undefined) return opts.fallback;
    if (!isScalar(node) || typeof node.value !== "number" || !Number.isFinite(node.value)) {
      return this.fail(path, node, "expected a number");
    }
    const v = node.value;
    if (opts.integer && !Number.isInteger(v))
      return this.fail(path, node, `expected an integer, got ${v}`);
    if (opts.min !== undefined && v < opts.min)
      return this.fail(path, node, `${v} is below the minimum ${opts.min}`);
    if (opts.max !== undefined && v > opts.max)
      return this.fail(path, node, `${v} is above the maximum ${opts.max}`);
    return v;
  }

  boolean(path: string, node: Node | undefined, fallback: boolean): boolean {
    if (node === undefined) return fallback;
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.fail(path, node, "expected true or false");
    return fallback;
  }

  /** A scalar or a list of scalars, as a list. */
  list(_path: string, node: Node | undefined): Node[] | undefined {
    if (node === undefined) return undefined;
    if (isSeq(node)) return node.items as Node[];
    return [node];
  }
}

const VARIANT_KINDS = ["base", "abliterated", "checkpoint"] as const;
const TARGETS: readonly PatchTarget[] = ["embed", "attn_out", "mlp_out", "experts", "bias"];
const METHODS: readonly PatchMethod[] = ["project", "norm-preserving"];
/** Variant names become path segments and report labels. */
const VARIANT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function readVariant(r: Reader, path: string, node: Node): VariantSpec | undefined {
  const m = r.map(path, node, ["name", "kind", "layer", "scale", "method", "targets", "path"]);
  const kind = r.oneOf(`${path}.kind`, m.get("kind"), VARIANT_KINDS);
  const name = r.string(`${path}.name`, m.get("name"), kind);
  if (name !== undefined && !VARIANT_NAME.test(name)) {
    r.fail(`${path}.name`, m.get("name"), `"${name}" must match ${VARIANT_NAME}`);
  }
  if (kind === undefined || name === undefined) return undefined;
  const only = (keys: string[]) => {
    for (const k of m.keys()) {
      if (!["name", "kind", ...keys].includes(k))
        r.fail(`${path}.${k}`, m.get(k), `not used by a "${kind}" variant`);
    }
  };
  if (kind === "base") {
    only([]);
    return { kind, name };
  }
  if (kind === "checkpoint") {
    only(["path"]);
    const p = r.string(`${path}.path`, m.get("path"));
    if (p === undefined) {
      if (!m.has("path")) r.fail(`${path}.path`, node, "a checkpoint variant needs a path");
      return undefined;
    }
    return { kind, name, path: p };
  }
  only(["layer", "scale", "method", "targets"]);
  const layers: Array<number | "selected"> = [];
  for (const [i, item] of (r.list(`${path}.layer`, m.get("layer")) ?? []).entries()) {
    if (isScalar(item) && item.value === "selected") layers.push("selected");
    else {
      const v = r.number(`${path}.layer[${i}]`, item, { min: 0, integer: true });
      if (v !== undefined) layers.push(v);
    }
  }
  if (layers.length === 0) layers.push("selected");
  const scales: number[] = [];
  for (const [i, item] of (r.list(`${path}.scale`, m.get("scale")) ?? []).entries()) {
    const v = r.number(`${path}.scale[${i}]`, item, { min: 0, max: 4 });
    if (v !== undefined) scales.push(v);
  }
  if (scales.length === 0) scales.push(1);
  const methods: PatchMethod[] = [];
  for (const [i, item] of (r.list(`${path}.method`, m.get("method")) ?? []).entries()) {
    const v = r.oneOf(`${path}.method[${i}]`, item, METHODS);
    if (v !== undefined) methods.push(v);
  }
  if (methods.length === 0) methods.push("project");
  const targets: PatchTarget[] = [];
  for (const [i, item] of (r.list(`${path}.targets`, m.get("targets")) ?? []).entries()) {
    const v = r.oneOf(`${path}.targets[${i}]`, item, TARGETS);
    if (v !== undefined) targets.push(v);
  }
  if (targets.length === 0) targets.push("embed", "attn_out", "mlp_out");
  return { kind, name, layer: layers, scale: scales, method: methods, targets };
}

/**
 * Parses and validates a sweep spec. Throws `SpecError` listing every problem (unknown keys,
 * wrong types, out-of-range values) with its line; fills in defaults. Checks that need the model
 * or the dataset (layer range, task names) happen in `validateAgainstInputs`.
 */
export function parseSweepSpec(text: string, file = "spec.yaml"): SweepSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new SpecError(
      file,
      doc.errors.map((e) => `YAML syntax: ${e.message.split("\n")[0]}`),
    );
  }
  const r = new Reader(lines);
  const top = r.map("", doc.contents as Node, [
    "name",
    "model",
    "contrast",
    "capture",
    "directions",
    "variants",
    "refusal",
    "bench",
    "report",
  ]);
  const name = r.string("name", top.get("name"), "sweep") ?? "sweep";
  if (!VARIANT_NAME.test(name))
    r.fail("name", top.get("name"), `"${name}" must match ${VARIANT_NAME}`);

  const mm = r.map("model", top.get("model"), ["source"]);
  const source = r.string("model.source", mm.get("source"));
  if (!top.has("model") || (source === undefined && !mm.has("source"))) {
    r.fail(
      "model.source",
      top.get("model"),
      "the model to abliterate is required (folder, .gguf file or org/name)",
    );
  }

  const cm = r.map("contrast", top.get("contrast"), ["preset", "file", "limit", "seed"]);
  const preset = r.oneOf("contrast.preset", cm.get("preset"), [
    "agent-shell",
    "harmful-harmless",
  ] as const);
  const contrastFile = r.string("contrast.file", cm.get("file"));
  if (preset !== undefined && contrastFile !== undefined) {
    r.fail("contrast", top.get("contrast"), "give either preset or file, not both");
  }
  const limit = r.number("contrast.limit", cm.get("limit"), { min: 4, integer: true });
  const contrast: ContrastSpec = {
    ...(contrastFile !== undefined ? { file: contrastFile } : { preset: preset ?? "agent-shell" }),
    ...(limit !== undefined ? { limit } : {}),
    seed: r.number("contrast.seed", cm.get("seed"), { integer: true, min: 0, fallback: 0 }) ?? 0,
  };

  const capm = r.map("capture", top.get("capture"), ["positions", "engine", "batch_size"]);
  const capture: CaptureSpec = {
    positions:
      r.oneOf(
        "capture.positions",
        capm.get("positions"),
        ["last", "after-user"] as const,
        "last",
      ) ?? "last",
    engine:
      r.oneOf(
        "capture.engine",
        capm.get("engine"),
        ["builtin", "transformers"] as const,
        "builtin",
      ) ?? "builtin",
    batchSize:
      r.number("capture.batch_size", capm.get("batch_size"), {
        min: 1,
        max: 256,
        integer: true,
        fallback: 8,
      }) ?? 8,
  };

  const dm = r.map("directions", top.get("directions"), ["method", "selection", "layer", "max_kl"]);
  const selection =
    r.oneOf(
      "directions.selection",
      dm.get("selection"),
      ["best-auc", "explicit", "causal"] as const,
      "best-auc",
    ) ?? "best-auc";
  const explicitLayer = r.number("directions.layer", dm.get("layer"), { min: 0, integer: true });
  if (selection === "explicit" && explicitLayer === undefined) {
    r.fail("directions.layer", dm.get("selection"), "explicit selection needs directions.layer");
  }
  const directions: DirectionsSpec = {
    method:
      r.oneOf(
        "directions.method",
        dm.get("method"),
        ["mean-diff", "projected", "pca"] as const,
        "mean-diff",
      ) ?? "mean-diff",
    selection,
    ...(explicitLayer !== undefined ? { layer: explicitLayer } : {}),
    maxKl: r.number("directions.max_kl", dm.get("max_kl"), { min: 0, fallback: 0.5 }) ?? 0.5,
  };

  const variants: VariantSpec[] = [];
  const vnode = top.get("variants");
  if (vnode === undefined) {
    variants.push({ kind: "base", name: "base" });
    variants.push({
      kind: "abliterated",
      name: "abliterated",
      layer: ["selected"],
      scale: [1],
      method: ["project"],
      targets: ["embed", "attn_out", "mlp_out"],
    });
  } else if (!isSeq(vnode)) {
    r.fail("variants", vnode, "expected a list of variants");
  } else {
    for (const [i, item] of (vnode.items as Node[]).entries()) {
      const v = readVariant(r, `variants[${i}]`, item);
      if (v) variants.push(v);
    }
    const seen = new Set<string>();
    for (const v of variants) {
      if (seen.has(v.name)) r.fail("variants", vnode, `variant name "${v.name}" is used twice`);
      seen.add(v.name);
    }
    if (variants.length === 0) r.fail("variants", vnode, "at least one variant is needed");
  }

  const rm = r.map("refusal", top.get("refusal"), [
    "enabled",
    "max_tokens",
    "kl_tokens",
    "prompts",
    "markers",
    "judge",
  ]);
  const markers = r
    .list("refusal.markers", rm.get("markers"))
    ?.map((n, i) => r.string(`refusal.markers[${i}]`, n) ?? "");
  const jm = r.map("refusal.judge", rm.get("judge"), ["endpoint", "model"]);
  const judgeEndpoint = r.string("refusal.judge.endpoint", jm.get("endpoint"));
  const judgeModel = r.string("refusal.judge.model", jm.get("model"));
  if (rm.has("judge") && (judgeEndpoint === undefined || judgeModel === undefined)) {
    r.fail("refusal.judge", rm.get("judge"), "an LLM judge needs both endpoint and model");
  }
  const refusal: RefusalSpec = {
    enabled: r.boolean("refusal.enabled", rm.get("enabled"), true),
    maxTokens:
      r.number("refusal.max_tokens", rm.get("max_tokens"), {
        min: 1,
        max: 4096,
        integer: true,
        fallback: 100,
      }) ?? 100,
    klTokens:
      r.number("refusal.kl_tokens", rm.get("kl_tokens"), {
        min: 1,
        max: 256,
        integer: true,
        fallback: 8,
      }) ?? 8,
    prompts:
      r.number("refusal.prompts", rm.get("prompts"), { min: 1, integer: true, fallback: 32 }) ?? 32,
    ...(markers ? { markers: markers.filter((s) => s.length > 0) } : {}),
    ...(judgeEndpoint && judgeModel
      ? { judge: { endpoint: judgeEndpoint, model: judgeModel } }
      : {}),
  };

  const bm = r.map("bench", top.get("bench"), [
    "enabled",
    "dataset",
    "tasks",
    "replicas",
    "agent",
    "max_turns",
    "max_tokens",
    "temperature",
    "concurrency",
    "accept_split_json",
  ]);
  const tasks = r
    .list("bench.tasks", bm.get("tasks"))
    ?.map((n, i) => r.string(`bench.tasks[${i}]`, n) ?? "");
  const maxTurns = r.number("bench.max_turns", bm.get("max_turns"), { min: 1, integer: true });
  const benchMaxTokens = r.number("bench.max_tokens", bm.get("max_tokens"), {
    min: 1,
    integer: true,
  });
  const bench: BenchSpec = {
    enabled: r.boolean("bench.enabled", bm.get("enabled"), true),
    dataset: r.string("bench.dataset", bm.get("dataset"), "builtin") ?? "builtin",
    ...(tasks ? { tasks: tasks.filter((t) => t.length > 0) } : {}),
    replicas:
      r.number("bench.replicas", bm.get("replicas"), {
        min: 1,
        max: 1000,
        integer: true,
        fallback: 3,
      }) ?? 3,
    agent:
      r.oneOf(
        "bench.agent",
        bm.get("agent"),
        ["terminus-json", "terminus-xml", "oracle", "nop"] as const,
        "terminus-json",
      ) ?? "terminus-json",
    ...(maxTurns !== undefined ? { maxTurns } : {}),
    ...(benchMaxTokens !== undefined ? { maxTokens: benchMaxTokens } : {}),
    temperature:
      r.number("bench.temperature", bm.get("temperature"), { min: 0, max: 2, fallback: 0.7 }) ??
      0.7,
    concurrency:
      r.number("bench.concurrency", bm.get("concurrency"), {
        min: 1,
        max: 512,
        integer: true,
        fallback: 2,
      }) ?? 2,
    acceptSplitJson: r.boolean("bench.accept_split_json", bm.get("accept_split_json"), false),
  };

  const pm = r.map("report", top.get("report"), ["bootstrap", "seed"]);
  const report: ReportSpec = {
    bootstrap:
      r.number("report.bootstrap", pm.get("bootstrap"), {
        min: 100,
        max: 1_000_000,
        integer: true,
        fallback: 10_000,
      }) ?? 10_000,
    seed: r.number("report.seed", pm.get("seed"), { min: 0, integer: true, fallback: 1 }) ?? 1,
  };

  if (r.problems.length > 0) throw new SpecError(file, r.problems);
  return {
    name,
    model: { source: source ?? "" },
    contrast,
    capture,
    directions,
    variants,
    refusal,
    bench,
    report,
  };
}

/** A variant after grid expansion: one concrete model to serve and benchmark. */
export type ConcreteVariant =
  | { readonly kind: "base"; readonly name: string }
  | {
      readonly kind: "abliterated";
      readonly name: string;
      readonly layer: number;
      readonly scale: number;
      readonly method: PatchMethod;
      readonly targets: readonly PatchTarget[];
    }
  | { readonly kind: "checkpoint"; readonly name: string; readonly path: string };

/**
 * Expands abliterated variants over their grid (layer × scale × method), with `selected`
 * replaced by the directions step's choice. A variant with a one-point grid keeps its name;
 * otherwise names get `-L<layer>-s<scale>-<method>` suffixes for the swept axes.
 */
export function expandVariants(
  variants: readonly VariantSpec[],
  selectedLayer: number,
): ConcreteVariant[] {
  const out: ConcreteVariant[] = [];
  for (const v of variants) {
    if (v.kind !== "abliterated") {
      out.push(v);
      continue;
    }
    const layers = [...new Set(v.layer.map((l) => (l === "selected" ? selectedLayer : l)))];
    for (const layer of layers) {
      for (const scale of v.scale) {
        for (const method of v.method) {
          const suffix =
            (layers.length > 1 ? `-L${layer}` : "") +
            (v.scale.length > 1 ? `-s${scale}` : "") +
            (v.method.length > 1 ? `-${method}` : "");
          out.push({
            kind: "abliterated",
            name: v.name + suffix,
            layer,
            scale,
            method,
            targets: v.targets,
          });
        }
      }
    }
  }
  return out;
}
