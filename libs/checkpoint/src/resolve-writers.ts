import {
  type ArchitectureAdapter,
  findArchitecture,
  type WriterRule,
  type WriterTarget,
} from "./architectures.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { CheckpointError, UnknownArchitectureError } from "./errors.ts";

/** One tensor that writes into the residual stream, as the adapter classifies it. */
export interface ResidualWriter {
  readonly name: string;
  readonly file: string;
  readonly target: WriterTarget;
  /** Layer index, or undefined for the embeddings (residual index 0). */
  readonly layer: number | undefined;
  /** Axis (from the end) holding hidden_size. */
  readonly residualAxis: -1 | -2;
  readonly shape: readonly number[];
}

/** Options of {@link resolveWriters}. */
export interface ResolveWritersOptions {
  /** Explicit rules instead of the adapter's (for unknown architectures or overrides). */
  readonly rules?: readonly WriterRule[];
}

const READERS =
  /(q_proj|k_proj|v_proj|qkv|gate|up_proj|norm|lm_head|router|in_proj|conv1d|A_log|dt_bias)/;

/**
 * Tensor-name patterns (layer and expert numbers replaced by `*`) of tensors that have a
 * hidden-size axis and do not look like readers of the stream: the candidates an unknown
 * architecture's error lists.
 */
export function candidateWriters(ck: Checkpoint): string[] {
  const h = ck.config.hiddenSize;
  const seen = new Map<string, string>();
  for (const [name, { info }] of ck.tensors) {
    if (!info.shape.includes(h) || READERS.test(name)) continue;
    const pattern = name.replace(/\.\d+\./g, ".*.");
    if (!seen.has(pattern))
      seen.set(pattern, `${pattern}  ${info.dtype}${JSON.stringify(info.shape)}`);
  }
  return [...seen.values()].sort();
}

/** The adapter for a checkpoint's model_type; throws {@link UnknownArchitectureError} listing candidates. */
export function architectureOf(ck: Checkpoint): ArchitectureAdapter {
  const a = findArchitecture(ck.config.modelType) ?? findArchitecture(ck.config.outerModelType);
  if (!a) throw new UnknownArchitectureError(ck.config.modelType, candidateWriters(ck));
  return a;
}

/**
 * Every residual writer of the checkpoint, in storage order, classified by the adapter (or by
 * explicit rules). Checks that each writer's residual axis has length hidden_size and that its
 * layer index is below num_hidden_layers.
 */
export function resolveWriters(
  ck: Checkpoint,
  options: ResolveWritersOptions = {},
): ResidualWriter[] {
  const rules = options.rules ?? architectureOf(ck).rules;
  const compiled = rules.map((r) => {
    try {
      return { rule: r, re: new RegExp(r.pattern) };
    } catch (err) {
      throw new CheckpointError(
        `writer pattern ${JSON.stringify(r.pattern)} is not a valid regular expression`,
        { cause: err },
      );
    }
  });
  const h = ck.config.hiddenSize;
  const out: ResidualWriter[] = [];
  for (const shard of ck.shards) {
    for (const info of shard.header.tensors) {
      const hit = compiled.find((c) => c.re.test(info.name));
      if (!hit) continue;
      const m = hit.re.exec(info.name)!;
      const layerText = m.groups?.layer;
      const layer = layerText === undefined ? undefined : Number(layerText);
      const axis = hit.rule.residualAxis;
      const rank = info.shape.length;
      if (rank < -axis) {
        throw new CheckpointError(
          `tensor "${info.name}" has rank ${rank}; the ${hit.rule.target} rule needs a residual axis at ${axis}`,
        );
      }
      if (info.shape[rank + axis] !== h) {
        throw new CheckpointError(
          `tensor "${info.name}" has shape ${JSON.stringify(info.shape)}: axis ${axis} is ${info.shape[rank + axis]}, not hidden_size ${h}`,
        );
      }
      if (layer !== undefined && layer >= ck.config.numLayers) {
        throw new CheckpointError(
          `tensor "${info.name}" is in layer ${layer}, but num_hidden_layers is ${ck.config.numLayers}`,
        );
      }
      out.push({
        name: info.name,
        file: shard.file,
        target: hit.rule.target,
        layer,
        residualAxis: axis,
        shape: info.shape,
      });
    }
  }
  if (out.length === 0) {
    throw new CheckpointError(
      `no residual writers matched in ${ck.files.location}; candidates:\n  ${candidateWriters(ck).join("\n  ")}`,
    );
  }
  return out;
}
