/**
 * The directions artifact: `directions.safetensors` (`directions` `[layers+1, hidden]` f32),
 * `ranking.csv` and the manifest (written last) whose meta is a {@link DirectionsMeta}.
 */

import { type ObjectStore, publishArtifact, readArtifact, readArtifactFile } from "@abl/store";
import { encodeSafetensorsHeader, memorySource, openSafetensors } from "@abl/tensor";
import type { DirectionMethod, Directions } from "./direction-math.ts";
import { DirectionsError } from "./errors.ts";
import { formatRankingCsv, type LayerMetrics } from "./layer-metrics.ts";
import type { LayerSelection } from "./layer-selection.ts";

/** Name of the tensor in `directions.safetensors`. */
export const DIRECTIONS_TENSOR = "directions";
/** Largest directions file read (layers × hidden × 4 bytes; 1 GiB covers any current model). */
export const MAX_DIRECTIONS_BYTES = 1024 * 1024 * 1024;

/** Manifest metadata of a directions artifact. */
export interface DirectionsMeta {
  readonly kind: "directions";
  readonly method: DirectionMethod;
  readonly modelDigest: string;
  /** Store prefix of the activations these came from. */
  readonly activations: string;
  readonly layers: number;
  readonly hidden: number;
  readonly selection: LayerSelection;
  readonly ranking: readonly LayerMetrics[];
}

/** The bytes of `directions.safetensors`. */
export function encodeDirections(d: Directions): Uint8Array {
  const header = encodeSafetensorsHeader([
    { name: DIRECTIONS_TENSOR, dtype: "F32", shape: [d.layers, d.hidden] },
  ]);
  const out = new Uint8Array(header.fileSize);
  out.set(header.bytes, 0);
  out.set(
    new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength),
    header.bytes.byteLength,
  );
  return out;
}

/** Decodes `directions.safetensors` bytes. */
export async function decodeDirections(
  bytes: Uint8Array,
  name = "directions.safetensors",
): Promise<Directions> {
  const f = await openSafetensors(memorySource(bytes, name));
  try {
    const shape = f.info(DIRECTIONS_TENSOR).shape;
    if (shape.length !== 2)
      throw new DirectionsError(`${name}: directions has rank ${shape.length}, expected 2`);
    return {
      layers: shape[0] as number,
      hidden: shape[1] as number,
      data: await f.tensor(DIRECTIONS_TENSOR),
    };
  } finally {
    await f.close();
  }
}

/** Publishes directions, ranking and selection under `prefix`; the manifest goes last. */
export async function publishDirections(
  store: ObjectStore,
  prefix: string,
  directions: Directions,
  meta: Omit<DirectionsMeta, "kind" | "layers" | "hidden">,
  signal?: AbortSignal,
): Promise<DirectionsMeta> {
  const full: DirectionsMeta = {
    kind: "directions",
    layers: directions.layers,
    hidden: directions.hidden,
    ...meta,
  };
  await publishArtifact(
    store,
    prefix,
    [
      { name: "directions.safetensors", body: encodeDirections(directions) },
      { name: "ranking.csv", body: new TextEncoder().encode(formatRankingCsv(meta.ranking)) },
    ],
    full as unknown as Record<string, unknown>,
    signal ? { signal } : {},
  );
  return full;
}

/** Reads a directions artifact: the tensor and its metadata. */
export async function readDirections(
  store: ObjectStore,
  prefix: string,
  signal?: AbortSignal,
): Promise<{ meta: DirectionsMeta; directions: Directions }> {
  const manifest = await readArtifact(store, prefix);
  if (!manifest) throw new DirectionsError(`no directions artifact at ${prefix} (no manifest)`);
  const meta = manifest.meta as unknown as DirectionsMeta;
  if (meta?.kind !== "directions")
    throw new DirectionsError(`artifact ${prefix} is not directions (kind ${String(meta?.kind)})`);
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of readArtifactFile(
    store,
    prefix,
    "directions.safetensors",
    signal ? { signal } : {},
  )) {
    n += c.byteLength;
    if (n > MAX_DIRECTIONS_BYTES)
      throw new DirectionsError(
        `${prefix}/directions.safetensors exceeds ${MAX_DIRECTIONS_BYTES} bytes`,
      );
    parts.push(c);
  }
  return {
    meta,
    directions: await decodeDirections(Buffer.concat(parts), `${prefix}/directions.safetensors`),
  };
}
