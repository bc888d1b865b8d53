import {
  type CapturedPrompts,
  type CaptureEngineName,
  type ContrastSet,
  type ContrastSplits,
  capContrastSet,
  captureStepKey,
  isPresetName,
  loadContrastSet,
  parseContrastSpec,
  presetSpec,
  type SourceContext,
  splitContrastSet,
} from "@abl/refusal";
import { CaptureEngine, RpcError, type StartCaptureRequest } from "@abl/rpc";
import { type ObjectStore, validateKey } from "@abl/store";

/** Bus job kind of capture jobs (`abl.job.capture`). */
export const CAPTURE_JOB_KIND = "capture";
/** Largest contrast artifact (a prompts.json) read for a request. */
export const MAX_CONTRAST_ARTIFACT_BYTES = 64 * 1024 * 1024;

/** A capture job on the bus: plain JSON with every default filled in. */
export interface CaptureJob {
  readonly modelDigest: string;
  /** Store prefix of the HF model folder. */
  readonly modelKey: string;
  readonly contrast:
    | {
        readonly type: "spec";
        readonly text: string;
        readonly seed: number | null;
        readonly maxPrompts: number;
      }
    | {
        readonly type: "preset";
        readonly name: string;
        readonly seed: number | null;
        readonly maxPrompts: number;
      }
    | { readonly type: "artifact"; readonly key: string };
  readonly engine: CaptureEngineName;
  readonly chatTemplate: string | null;
  readonly batchSize: number | null;
  /** Keep only prompts the base model really refuses / answers before capturing. */
  readonly filter: boolean;
  readonly stepKey: string;
  readonly outputKey: string;
}

function invalid(msg: string): never {
  throw new RpcError("INVALID_ARGUMENT", msg);
}

/** Loads the job's contrast set and splits (the same on Start and in the consumer). */
export async function resolveJobContrast(
  contrast: CaptureJob["contrast"],
  store: ObjectStore,
  ctx: SourceContext,
): Promise<{ set: ContrastSet; splits: ContrastSplits }> {
  if (contrast.type === "artifact") {
    const bytes = await store.getBytes(contrast.key, ctx.signal ? { signal: ctx.signal } : {});
    if (bytes.byteLength > MAX_CONTRAST_ARTIFACT_BYTES)
      invalid(
        `contrast artifact ${contrast.key} is ${bytes.byteLength} bytes, over ${MAX_CONTRAST_ARTIFACT_BYTES}`,
      );
    const p = JSON.parse(new TextDecoder().decode(bytes)) as CapturedPrompts;
    if (!p?.set?.refuse || !p?.splits?.indices)
      invalid(`contrast artifact ${contrast.key} is not a prompts.json ({set, splits})`);
    return { set: p.set, splits: p.splits };
  }
  const spec =
    contrast.type === "preset"
      ? presetSpec(contrast.name as Parameters<typeof presetSpec>[0])
      : parseContrastSpec(contrast.text);
  // Spec-relative paths would point into the service's filesystem: only URLs and hf: sources make sense here.
  for (const src of [...spec.refuse, ...spec.comply]) {
    if (src.location.type === "path")
      invalid(
        `contrast spec source "${src.location.path}" is a local path; a service can only read url: or hf: sources`,
      );
  }
  const set = capContrastSet(await loadContrastSet(spec, ctx), contrast.maxPrompts);
  return { set, splits: splitContrastSet(set, contrast.seed ?? spec.seed, spec.splits) };
}

/** Validates a StartCapture request, resolves its prompts and computes its step key. */
export async function captureJobFromRequest(
  req: StartCaptureRequest,
  store: ObjectStore,
  ctx: SourceContext,
): Promise<CaptureJob> {
  const model = req.model;
  if (!model?.digest) invalid("model.digest is required (import the model first)");
  if (!model.storeKey) invalid("model.store_key is required: the store prefix of the HF folder");
  try {
    validateKey(model.storeKey.replace(/\/+$/, ""));
  } catch (err) {
    invalid(`model.store_key: ${(err as Error).message}`);
  }
  if (req.positions.length > 0 && !(req.positions.length === 1 && req.positions[0] === -1)) {
    invalid(
      `positions [${req.positions.join(", ")}] are not supported: only [-1] (the last prompt token)`,
    );
  }
  let engine: CaptureEngineName;
  if (req.engine === CaptureEngine.UNSPECIFIED || req.engine === CaptureEngine.BUILTIN)
    engine = "builtin";
  else if (req.engine === CaptureEngine.TRANSFORMERS) engine = "transformers";
  else invalid(`engine ${req.engine} is unknown`);
  if (req.batchSize > 4096) invalid(`batch_size must be 1..4096, got ${req.batchSize}`);
  if (req.filter && engine !== "builtin")
    invalid(
      "filter generates with the built-in engine to judge each prompt; use it with engine BUILTIN (or UNSPECIFIED)",
    );
  let contrast: CaptureJob["contrast"];
  const cs = req.contrastSet;
  if (cs.case === "contrastArtifact") contrast = { type: "artifact", key: cs.value.key };
  else if (cs.case === "contrastSpec") {
    const v = cs.value;
    if (v.seed > BigInt(Number.MAX_SAFE_INTEGER))
      invalid(`contrast_spec.seed ${v.seed} is too large`);
    const seed = v.seed === 0n ? null : Number(v.seed);
    if (v.preset && v.specText) invalid("contrast_spec: give preset or spec_text, not both");
    if (v.preset) {
      if (!isPresetName(v.preset))
        invalid(`contrast_spec.preset "${v.preset}" is not agent-shell or harmful-harmless`);
      contrast = { type: "preset", name: v.preset, seed, maxPrompts: v.maxPrompts };
    } else if (v.specText)
      contrast = { type: "spec", text: v.specText, seed, maxPrompts: v.maxPrompts };
    else invalid("contrast_spec needs preset or spec_text");
  } else invalid("contrast_set is required (contrast_spec or contrast_artifact)");
  const { splits } = await resolveJobContrast(contrast, store, ctx);
  const chatTemplate = req.chatTemplate || null;
  const stepKey = captureStepKey({
    modelDigest: model.digest,
    splits,
    engine,
    filter: req.filter,
    ...(chatTemplate ? { chatTemplate } : {}),
  });
  return {
    modelDigest: model.digest,
    modelKey: model.storeKey.replace(/\/+$/, ""),
    contrast,
    engine,
    chatTemplate,
    batchSize: req.batchSize || null,
    filter: req.filter,
    stepKey,
    outputKey: `activations/${stepKey}`,
  };
}
