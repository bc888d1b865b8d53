/**
 * `abl capture`: residual-stream activations of a model over a contrast set, stored as an
 * activations artifact (safetensors per bucket + manifest) under a content-derived key.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import {
  captureActivations,
  createLocalWorkerLauncher,
  isPresetName,
  modelFolderDigest,
  resolveContrastSet,
} from "@abl/refusal";
import { type ObjectStore, openStore, s3FromEnv } from "@abl/store";
import { type Command, UsageError } from "../command.ts";

const USAGE = `usage: abl capture --model <dir> --set <agent-shell|harmful-harmless|spec.yaml> --store <dir|s3://bucket> [options]

Runs every prompt of the contrast set through the model and stores the residual stream at the
last prompt token of every layer: activations/<key>/{refuse,comply}.safetensors
([prompts, layers+1, hidden] f32), prompts.json and manifest.json (written last). A capture
whose key already exists is not run again.

options:
  --engine E            builtin (default) or transformers (runs libs/refusal/worker/capture_worker.py)
  --python P            Python for the transformers worker (default python3)
  --model-digest D      digest to record (default: sha256 of the folder's files)
  --seed N              split seed (default: the spec's, 0 for presets)
  --max-prompts N       keep the first N prompts of each bucket
  --batch N             prompts per forward pass
  --chat-template FILE  Jinja template instead of the tokenizer's
  --filter              keep only refuse prompts the model refuses and comply prompts it answers
  --json                print the result as JSON
Environment: HF_ENDPOINT, HF_TOKEN for hf: sources; ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY,
ABL_S3_SECRET_KEY for s3:// stores.`;

/** Opens `--store`, naming the missing S3 settings. */
export function openStoreArg(url: string): ObjectStore {
  const s3 = s3FromEnv(process.env);
  if (url.startsWith("s3://") && !s3)
    throw new UsageError(
      `--store ${url} needs ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY and ABL_S3_SECRET_KEY`,
    );
  return openStore(url, s3);
}

/** Parses a non-negative integer flag. */
export function intFlag(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

/** The `abl capture` command. */
export const captureCommand: Command = {
  name: ["capture"],
  summary: "capture residual activations of a model over a contrast set",
  usage: USAGE,
  async run(argv, signal) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: "string" },
        set: { type: "string" },
        store: { type: "string" },
        engine: { type: "string", default: "builtin" },
        python: { type: "string" },
        "model-digest": { type: "string" },
        seed: { type: "string" },
        "max-prompts": { type: "string" },
        batch: { type: "string" },
        "chat-template": { type: "string" },
        filter: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
    });
    if (!values.model || !values.set || !values.store)
      throw new UsageError("--model, --set and --store are required");
    const engine = values.engine;
    if (engine !== "builtin" && engine !== "transformers")
      throw new UsageError(`--engine must be builtin or transformers, got "${engine}"`);
    if (values.filter && engine !== "builtin")
      throw new UsageError(
        "--filter generates with the built-in engine; use it with --engine builtin",
      );
    const seed = intFlag("seed", values.seed);
    const maxPrompts = intFlag("max-prompts", values["max-prompts"], 1);
    const batchSize = intFlag("batch", values.batch, 1);
    const store = openStoreArg(values.store);
    const hfEndpoint = process.env.HF_ENDPOINT;
    const hfToken = process.env.HF_TOKEN;
    const { set, splits } = await resolveContrastSet(values.set, {
      signal,
      ...(seed !== undefined ? { seed } : {}),
      ...(maxPrompts !== undefined ? { maxPrompts } : {}),
      ...(hfEndpoint ? { hfEndpoint } : {}),
      ...(hfToken ? { hfToken } : {}),
    });
    const chatTemplate = values["chat-template"]
      ? await readFile(values["chat-template"], "utf8")
      : undefined;
    const modelDigest = values["model-digest"] ?? (await modelFolderDigest(values.model, signal));
    const started = performance.now();
    const result = await captureActivations({
      store,
      modelDir: values.model,
      modelDigest,
      set,
      splits,
      engine,
      filter: values.filter,
      signal,
      ...(chatTemplate ? { chatTemplate } : {}),
      ...(batchSize ? { batchSize } : {}),
      ...(values.python ? { launcher: createLocalWorkerLauncher({ python: values.python }) } : {}),
      onProgress: (e) => {
        if (e.type === "filter")
          process.stderr.write(
            `filter: kept ${e.kept.refuse} refuse, ${e.kept.comply} comply prompts\n`,
          );
        else process.stderr.write(`\r${e.bucket}: ${e.done}/${e.total}`);
      },
    });
    process.stderr.write("\n");
    const out = {
      activations: result.prefix,
      cached: result.cached,
      set: isPresetName(values.set) ? values.set : set.name,
      prompts: { refuse: set.refuse.length, comply: set.comply.length },
      splitDigests: splits.digests,
      modelDigest,
      seconds: (performance.now() - started) / 1000,
    };
    if (values.json) console.log(JSON.stringify(out));
    else
      console.log(
        `activations ${out.activations}${out.cached ? " (cached)" : ""}: ${out.prompts.refuse} refuse + ${out.prompts.comply} comply prompts in ${out.seconds.toFixed(1)} s`,
      );
    return 0;
  },
};
