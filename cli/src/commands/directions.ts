/**
 * `abl directions`: per-layer refusal directions from an activations artifact, the layer ranking
 * (AUC with bootstrap CI, Cohen's d, cosines) and the selected layer.
 */
import { rename, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import {
  computeDirectionsStep,
  type DirectionMethod,
  encodeDirections,
  readDirections,
  type SelectionPolicy,
} from "@abl/refusal";
import { type Command, UsageError } from "../command.ts";
import { intFlag, openStoreArg } from "./capture.ts";

const USAGE = `usage: abl directions --store <dir|s3://bucket> --activations <prefix> [options]

Fits d = normalize(mean_refuse − mean_comply) per layer on the fit split (f64), ranks the layers
on the select split and picks one. Writes directions/<key>/{directions.safetensors,ranking.csv}
and manifest.json (last). Prints the ranking and the chosen layer.

options:
  --method M          mean-diff (default), projected or pca
  --select P          best-auc (default: best AUC outside the last 20 % of layers), causal, or a
                      layer number
  --model DIR         model folder (needed by --select causal)
  --max-kl X          causal: KL ceiling (default 0.1)
  --candidates N      causal: layers probed, best AUC first (default 8)
  --model-digest D    refuse activations captured from another model
  --reference PREFIX  earlier directions artifact to report cosines against
  --bootstrap N       AUC bootstrap resamples (default 1000)
  --seed N            bootstrap seed (default 0)
  --export FILE       also write directions.safetensors to FILE (for abl patch FILE#layer)
  --json              print the result as JSON`;

const METHODS: readonly DirectionMethod[] = ["mean-diff", "projected", "pca"];

/** The `abl directions` command. */
export const directionsCommand: Command = {
  name: ["directions"],
  summary: "compute per-layer refusal directions, rank layers and select one",
  usage: USAGE,
  async run(argv, signal) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        store: { type: "string" },
        activations: { type: "string" },
        method: { type: "string", default: "mean-diff" },
        select: { type: "string", default: "best-auc" },
        model: { type: "string" },
        "max-kl": { type: "string" },
        candidates: { type: "string" },
        "model-digest": { type: "string" },
        reference: { type: "string" },
        bootstrap: { type: "string" },
        seed: { type: "string" },
        export: { type: "string" },
        json: { type: "boolean", default: false },
      },
    });
    if (!values.store || !values.activations)
      throw new UsageError("--store and --activations are required");
    const method = values.method as DirectionMethod;
    if (!METHODS.includes(method))
      throw new UsageError(`--method must be one of ${METHODS.join(", ")}, got "${values.method}"`);
    let selection: SelectionPolicy;
    if (values.select === "best-auc") selection = { type: "best-auc" };
    else if (values.select === "causal") {
      const maxKl = values["max-kl"] === undefined ? undefined : Number(values["max-kl"]);
      if (maxKl !== undefined && !(maxKl > 0))
        throw new UsageError(`--max-kl must be > 0, got "${values["max-kl"]}"`);
      const candidates = intFlag("candidates", values.candidates, 1);
      if (!values.model)
        throw new UsageError("--select causal needs --model <dir> to generate with");
      selection = {
        type: "causal",
        ...(maxKl !== undefined ? { maxKl } : {}),
        ...(candidates !== undefined ? { candidates } : {}),
      };
    } else {
      const layer = intFlag("select", values.select);
      if (layer === undefined) throw new UsageError("--select needs a value");
      selection = { type: "explicit", layer };
    }
    const resamples = intFlag("bootstrap", values.bootstrap, 1);
    const seed = intFlag("seed", values.seed);
    const store = openStoreArg(values.store);
    const result = await computeDirectionsStep({
      store,
      activations: values.activations.replace(/\/+$/, ""),
      method,
      selection,
      signal,
      ...(values["model-digest"] ? { expectModelDigest: values["model-digest"] } : {}),
      ...(values.reference ? { reference: values.reference } : {}),
      ...(resamples !== undefined ? { resamples } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(values.model ? { modelDir: values.model } : {}),
      onProgress: (e) => process.stderr.write(`${e.step} ${e.done}/${e.total}\n`),
    });
    if (values.export) {
      const { directions } = await readDirections(store, result.prefix, signal);
      const tmp = `${values.export}.tmp-${process.pid}`;
      await writeFile(tmp, encodeDirections(directions));
      await rename(tmp, values.export);
    }
    const { meta } = result;
    if (values.json) {
      console.log(
        JSON.stringify({
          directions: result.prefix,
          cached: result.cached,
          layer: meta.selection.layer,
          selection: meta.selection,
          ranking: meta.ranking,
        }),
      );
      return 0;
    }
    console.log("layer    auc  [95% CI]          cohen_d  cos_prev");
    for (const r of meta.ranking) {
      const mark = r.layer === meta.selection.layer ? " ←" : "";
      console.log(
        `${String(r.layer).padStart(5)}  ${r.auc.toFixed(3)}  [${r.aucLow.toFixed(3)}, ${r.aucHigh.toFixed(3)}]  ${r.cohensD.toFixed(2).padStart(7)}  ${Number.isNaN(r.cosPrev) ? "   -" : r.cosPrev.toFixed(3)}${mark}`,
      );
    }
    for (const p of meta.selection.probes)
      console.log(
        `probe layer ${p.layer}: refusal ${p.refusalRate.toFixed(3)}, KL ${p.kl.toFixed(4)}`,
      );
    console.log(
      `selected layer ${meta.selection.layer} (${meta.selection.policy}); directions ${result.prefix}${result.cached ? " (cached)" : ""}`,
    );
    return 0;
  },
};
