/**
 * The activations artifact: `refuse.safetensors` and `comply.safetensors`, each one tensor
 * `residuals` `[prompts, layers+1, hidden]` f32, plus `prompts.json` (the contrast set and its
 * splits) and the store's manifest, written last, whose `meta` is an {@link ActivationsMeta}.
 */

import { type ObjectStore, publishArtifact, readArtifact, readArtifactFile } from "@abl/store";
import { encodeSafetensorsHeader, memorySource, openSafetensors } from "@abl/tensor";
import type { Bucket, ContrastSet } from "./contrast-set.ts";
import { ActivationsError } from "./errors.ts";
import { createResiduals, type Residuals } from "./residuals.ts";
import type { ContrastSplits } from "./splits.ts";

/** Name of the one tensor in each bucket file. */
export const RESIDUALS_TENSOR = "residuals";
/** Largest bucket file read into memory (f32 residuals are decoded whole for the direction math). */
export const MAX_ACTIVATIONS_BYTES = 2 * 1024 * 1024 * 1024 - 1;
/** Largest prompts.json accepted: prompts are capped at 32 KiB each, sets at a few thousand. */
export const MAX_PROMPTS_JSON_BYTES = 256 * 1024 * 1024;

/** Engines that can produce activations. */
export type CaptureEngineName = "builtin" | "transformers";

/** Manifest metadata of an activations artifact. */
export interface ActivationsMeta {
  readonly kind: "activations";
  /** Digest of the model checkpoint the residuals came from. */
  readonly modelDigest: string;
  /** sha256 of the contrast set's prompt text (see `promptsDigest`). */
  readonly promptsDigest: string;
  readonly splitDigests: ContrastSplits["digests"];
  /** The Jinja chat template the prompts were rendered with. */
  readonly chatTemplate: string;
  /** Token positions captured, relative to the prompt end (-1 = last prompt token). */
  readonly positions: readonly number[];
  readonly engine: CaptureEngineName;
  /** Residual layers (blocks + 1) and hidden size. */
  readonly layers: number;
  readonly hidden: number;
  readonly prompts: Readonly<Record<Bucket, number>>;
}

/** What `prompts.json` holds. */
export interface CapturedPrompts {
  readonly set: ContrastSet;
  readonly splits: ContrastSplits;
}

/** Streams one bucket as a safetensors file: header, then each prompt's `[layers, hidden]` rows. */
export async function* residualsSafetensors(
  prompts: number,
  layers: number,
  hidden: number,
  rows: AsyncIterable<Float32Array> | Iterable<Float32Array>,
): AsyncGenerator<Uint8Array> {
  const header = encodeSafetensorsHeader([
    { name: RESIDUALS_TENSOR, dtype: "F32", shape: [prompts, layers, hidden] },
  ]);
  yield header.bytes;
  let n = 0;
  for await (const r of rows) {
    if (r.length !== layers * hidden)
      throw new ActivationsError(
        `prompt ${n} has ${r.length} residual values, expected ${layers} × ${hidden}`,
      );
    if (n >= prompts)
      throw new ActivationsError(`more than the ${prompts} declared prompts were captured`);
    // safetensors is little-endian, as is every platform Node runs on here.
    yield new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
    n++;
  }
  if (n !== prompts)
    throw new ActivationsError(`only ${n} of ${prompts} declared prompts were captured`);
}

/** Byte size of a bucket file, so the store can plan its upload. */
export function residualsFileSize(prompts: number, layers: number, hidden: number): number {
  return encodeSafetensorsHeader([
    { name: RESIDUALS_TENSOR, dtype: "F32", shape: [prompts, layers, hidden] },
  ]).fileSize;
}

/** Residuals of both buckets, in prompt order, one `[layers, hidden]` array per prompt. */
export interface BucketResiduals {
  readonly refuse: readonly Float32Array[];
  readonly comply: readonly Float32Array[];
}

/** Publishes an activations artifact under `prefix`; the manifest is written last. */
export async function publishActivations(
  store: ObjectStore,
  prefix: string,
  captured: CapturedPrompts,
  residuals: BucketResiduals,
  meta: Omit<ActivationsMeta, "kind" | "prompts">,
  signal?: AbortSignal,
): Promise<ActivationsMeta> {
  const full: ActivationsMeta = {
    kind: "activations",
    ...meta,
    prompts: { refuse: residuals.refuse.length, comply: residuals.comply.length },
  };
  for (const b of ["refuse", "comply"] as const) {
    if (residuals[b].length !== captured.set[b].length) {
      throw new ActivationsError(
        `${b}: ${residuals[b].length} residual rows for ${captured.set[b].length} prompts`,
      );
    }
    if (residuals[b].length === 0)
      throw new ActivationsError(`${b} bucket is empty; nothing to publish`);
  }
  const file = (b: Bucket) => ({
    name: `${b}.safetensors`,
    body: residualsSafetensors(residuals[b].length, meta.layers, meta.hidden, residuals[b]),
    size: residualsFileSize(residuals[b].length, meta.layers, meta.hidden),
  });
  await publishArtifact(
    store,
    prefix,
    [
      file("refuse"),
      file("comply"),
      { name: "prompts.json", body: new TextEncoder().encode(JSON.stringify(captured)) },
    ],
    full as unknown as Record<string, unknown>,
    signal ? { signal } : {},
  );
  return full;
}

async function collect(
  it: AsyncIterable<Uint8Array>,
  limit: number,
  what: string,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of it) {
    n += c.byteLength;
    if (n > limit) throw new ActivationsError(`${what} exceeds the ${limit}-byte limit`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** A loaded activations artifact. */
export interface Activations {
  readonly meta: ActivationsMeta;
  readonly refuse: Residuals;
  readonly comply: Residuals;
  readonly prompts: CapturedPrompts;
}

/** Options of {@link readActivations}. */
export interface ReadActivationsOptions {
  /** The model the caller believes these came from; a different digest is an error. */
  readonly expectModelDigest?: string;
  readonly signal?: AbortSignal;
}

/** Reads and checks an activations artifact (manifest, shapes, model digest). */
export async function readActivations(
  store: ObjectStore,
  prefix: string,
  options: ReadActivationsOptions = {},
): Promise<Activations> {
  const manifest = await readArtifact(store, prefix);
  if (!manifest) throw new ActivationsError(`no activations artifact at ${prefix} (no manifest)`);
  const meta = manifest.meta as unknown as ActivationsMeta;
  if (meta?.kind !== "activations")
    throw new ActivationsError(
      `artifact ${prefix} is not activations (kind ${String(meta?.kind)})`,
    );
  if (options.expectModelDigest !== undefined && options.expectModelDigest !== meta.modelDigest) {
    throw new ActivationsError(
      `activations at ${prefix} were captured from model ${meta.modelDigest}, not the named ${options.expectModelDigest}`,
    );
  }
  const sig = options.signal ? { signal: options.signal } : {};
  const bucket = async (b: Bucket): Promise<Residuals> => {
    const bytes = await collect(
      readArtifactFile(store, prefix, `${b}.safetensors`, sig),
      MAX_ACTIVATIONS_BYTES,
      `${prefix}/${b}.safetensors`,
    );
    const f = await openSafetensors(
      memorySource(bytes, `${prefix}/${b}.safetensors`),
      options.signal,
    );
    try {
      const shape = f.info(RESIDUALS_TENSOR).shape;
      if (
        shape.length !== 3 ||
        shape[1] !== meta.layers ||
        shape[2] !== meta.hidden ||
        shape[0] !== meta.prompts[b]
      ) {
        throw new ActivationsError(
          `${prefix}/${b}.safetensors has shape [${shape.join(", ")}], manifest says [${meta.prompts[b]}, ${meta.layers}, ${meta.hidden}]`,
        );
      }
      return createResiduals(await f.tensor(RESIDUALS_TENSOR, options.signal), [
        shape[0],
        shape[1],
        shape[2],
      ] as [number, number, number]);
    } finally {
      await f.close();
    }
  };
  const promptBytes = await collect(
    readArtifactFile(store, prefix, "prompts.json", sig),
    MAX_PROMPTS_JSON_BYTES,
    `${prefix}/prompts.json`,
  );
  const prompts = JSON.parse(new TextDecoder().decode(promptBytes)) as CapturedPrompts;
  return { meta, refuse: await bucket("refuse"), comply: await bucket("comply"), prompts };
}
