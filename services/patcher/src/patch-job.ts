import { WRITER_TARGETS, type WriterRule, type WriterTarget } from "@abl/checkpoint";
import type { PatchMethod, Strength } from "@abl/patch";
import {
  RpcError,
  type StartPatchRequest,
  PatchMethod as WireMethod,
  PatchTarget as WireTarget,
} from "@abl/rpc";
import { joinKey, stepKey, validateKey } from "@abl/store";

/** Bumped when the patch arithmetic or output layout changes, so old cached results are not reused. */
export const PATCH_CODE_VERSION = "patch-1";
/** Bus job kind of patch jobs (`abl.job.patch`). */
export const PATCH_JOB_KIND = "patch";

/**
 * A patch job as it travels on the bus and feeds the step key: plain JSON, every default filled
 * in, so two requests that mean the same thing have the same key.
 */
export interface PatchJob {
  /** Store prefix of the input model (`models/<digest>`). */
  readonly modelKey: string;
  /** Digest of the input model (from its ModelRef; part of the step key). */
  readonly modelDigest: string;
  /** Directions artifact prefix, or the key of a `.safetensors` object. */
  readonly directionKey: string;
  readonly directionSha256: string;
  readonly directionLayer: number | null;
  readonly targets: readonly WriterTarget[];
  readonly method: PatchMethod;
  readonly strength: Strength;
  readonly untie: boolean;
  readonly rules: readonly WriterRule[];
  /** Output prefix; the step key under `models/` unless the caller chose one. */
  readonly outputKey: string;
  readonly stepKey: string;
}

const TARGETS: Record<number, WriterTarget> = {
  [WireTarget.EMBED]: "embed",
  [WireTarget.ATTN_OUT]: "attn_out",
  [WireTarget.MLP_OUT]: "mlp_out",
  [WireTarget.EXPERTS]: "experts",
  [WireTarget.BIAS]: "bias",
};

function invalid(msg: string): never {
  throw new RpcError("INVALID_ARGUMENT", msg);
}

/** Parses `TARGET:AXIS:REGEX` explicit writer rules. */
function parseRule(s: string): WriterRule {
  const m = /^([a-z_]+):(-1|-2):(.+)$/.exec(s);
  if (!m || !(WRITER_TARGETS as readonly string[]).includes(m[1]!)) {
    invalid(
      `tensor pattern "${s}" is not TARGET:AXIS:REGEX (TARGET one of ${WRITER_TARGETS.join(", ")})`,
    );
  }
  return { target: m[1] as WriterTarget, residualAxis: Number(m[2]) as -1 | -2, pattern: m[3]! };
}

/**
 * Validates a StartPatch request and turns it into a {@link PatchJob} with its step key: a hash
 * of the code version, the canonical parameters and the input digests.
 */
export function patchJobFromRequest(req: StartPatchRequest): PatchJob {
  const modelKey = req.model?.storeKey ?? "";
  if (modelKey === "") invalid("model.store_key is required");
  validateKey(modelKey);
  const directionKey = req.direction?.key ?? "";
  if (directionKey === "") invalid("direction.key is required");
  validateKey(directionKey);
  const targets =
    req.targets.length === 0
      ? [...WRITER_TARGETS]
      : req.targets.map((t) => TARGETS[t] ?? invalid(`unknown target ${t}`));
  const method: PatchMethod =
    req.method === WireMethod.NORM_PRESERVING
      ? "norm-preserving"
      : req.method === WireMethod.PROJECT || req.method === WireMethod.UNSPECIFIED
        ? "project"
        : invalid(`unknown method ${req.method}`);
  let strength: Strength;
  const s = req.strength;
  if (s.case === "scale") strength = { type: "constant", value: s.value };
  else if (s.case === "layerScales") {
    const entries = Object.entries(s.value.scales).map(([k, v]) => [Number(k), v] as const);
    const n = entries.length === 0 ? 0 : Math.max(...entries.map(([k]) => k)) + 1;
    const values = new Array<number>(n).fill(0);
    for (const [k, v] of entries) values[k] = v;
    strength = { type: "per-layer", values };
  } else if (s.case === "kernel") {
    const k = s.value;
    strength = {
      type: "tent",
      peak: k.peak,
      width: k.width,
      max: k.maxWeight === 0 ? 1 : k.maxWeight,
      min: k.minWeight,
    };
  } else strength = { type: "constant", value: 1 };
  const params = {
    modelDigest: req.model?.digest ?? "",
    directionSha256: req.direction?.sha256 ?? "",
    modelKey,
    directionKey,
    directionLayer: req.directionLayer ?? null,
    targets: [...targets].sort(),
    method,
    strength,
    untie: req.untieEmbeddings ?? true,
    rules: req.tensorPatterns.map(parseRule),
  };
  // Inputs are identified by digest when the caller gives one, by key otherwise.
  const key = stepKey("patch", {
    code: PATCH_CODE_VERSION,
    ...params,
    modelKey: params.modelDigest === "" ? modelKey : undefined,
    directionKey: params.directionSha256 === "" ? directionKey : undefined,
  });
  const outputKey = req.outputKey === "" ? joinKey("models", key) : req.outputKey;
  validateKey(outputKey);
  return { ...params, outputKey, stepKey: key };
}
