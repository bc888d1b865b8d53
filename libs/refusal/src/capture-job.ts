/**
 * A capture job: render a contrast set's prompts, run them through a residual capturer (the
 * built-in engine or the transformers worker) and publish the activations artifact.
 */
import type { ObjectStore } from "@abl/store";
import {
  type ActivationsMeta,
  type CaptureEngineName,
  publishActivations,
} from "./activations-artifact.ts";
import {
  BUCKETS,
  type Bucket,
  type ContrastPrompt,
  type ContrastSet,
  promptsDigest,
} from "./contrast-set.ts";
import { ContrastSetError } from "./errors.ts";
import type { ContrastSplits } from "./splits.ts";

/** Residuals of a batch of prompts at the last prompt token, `[layers+1, hidden]` each. */
export interface CapturedBatch {
  readonly layers: number;
  readonly hidden: number;
  readonly rows: readonly Float32Array[];
}

/** Progress reported by a capturer while it works through a bucket. */
export interface CaptureProgress {
  readonly type: "progress";
  readonly bucket: Bucket;
  readonly done: number;
  readonly total: number;
}

/**
 * Something that captures residuals: it renders prompts with the model's chat template, checks
 * them against the context length, and returns one row per prompt in order.
 */
export interface ResidualCapturer {
  readonly engine: CaptureEngineName;
  readonly modelDigest: string;
  readonly chatTemplate: string;
  capture(
    bucket: Bucket,
    prompts: readonly ContrastPrompt[],
    signal?: AbortSignal,
  ): AsyncGenerator<CaptureProgress, CapturedBatch>;
}

/** Options of {@link runCapture}. */
export interface CaptureJobOptions {
  readonly store: ObjectStore;
  /** Where the artifact goes, e.g. `activations/<stepKey>`. */
  readonly prefix: string;
  readonly set: ContrastSet;
  readonly splits: ContrastSplits;
  readonly capturer: ResidualCapturer;
  readonly signal?: AbortSignal;
}

/** Runs a capture, yielding progress, and returns the published manifest metadata. */
export async function* runCapture(
  options: CaptureJobOptions,
): AsyncGenerator<CaptureProgress, ActivationsMeta> {
  const { set, capturer, signal } = options;
  const rows: Record<Bucket, readonly Float32Array[]> = { refuse: [], comply: [] };
  let shape: { layers: number; hidden: number } | undefined;
  for (const b of BUCKETS) {
    if (set[b].length === 0)
      throw new ContrastSetError(`the ${b} bucket of "${set.name}" is empty`);
    signal?.throwIfAborted();
    const batch = yield* capturer.capture(b, set[b], signal);
    if (batch.rows.length !== set[b].length) {
      throw new ContrastSetError(
        `capturer returned ${batch.rows.length} rows for ${set[b].length} ${b} prompts`,
      );
    }
    if (shape && (shape.layers !== batch.layers || shape.hidden !== batch.hidden)) {
      throw new ContrastSetError(
        `buckets captured with different shapes: [${shape.layers}, ${shape.hidden}] vs [${batch.layers}, ${batch.hidden}]`,
      );
    }
    shape = { layers: batch.layers, hidden: batch.hidden };
    rows[b] = batch.rows;
  }
  const s = shape as { layers: number; hidden: number };
  return await publishActivations(
    options.store,
    options.prefix,
    { set, splits: options.splits },
    { refuse: rows.refuse, comply: rows.comply },
    {
      modelDigest: capturer.modelDigest,
      promptsDigest: promptsDigest(set.refuse, set.comply),
      splitDigests: options.splits.digests,
      chatTemplate: capturer.chatTemplate,
      positions: [-1],
      engine: capturer.engine,
      layers: s.layers,
      hidden: s.hidden,
    },
    signal,
  );
}
