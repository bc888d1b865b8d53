import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { ContrastSet } from "./contrast-set.ts";
import {
  type ContrastSpec,
  loadContrastSet,
  parseContrastSpec,
  presetSpec,
} from "./contrast-spec.ts";
import { ContrastSetError } from "./errors.ts";
import { isPresetName } from "./presets/index.ts";
import type { SourceContext } from "./prompt-sources.ts";
import { type ContrastSplits, splitContrastSet } from "./splits.ts";

/** Largest spec file read; specs list sources, they do not hold prompts. */
export const MAX_SPEC_BYTES = 1024 * 1024;

/**
 * Resolves what a user passes as a contrast set — a preset name or a spec file path — into the
 * loaded set and its splits. `seed` overrides the spec's seed when given.
 */
export async function resolveContrastSet(
  arg: string,
  ctx: SourceContext & { readonly seed?: number; readonly maxPrompts?: number } = {},
): Promise<{ spec: ContrastSpec; set: ContrastSet; splits: ContrastSplits }> {
  let spec: ContrastSpec;
  let baseDir = ctx.baseDir;
  if (isPresetName(arg)) spec = presetSpec(arg);
  else {
    const path = resolve(arg);
    let text: string;
    try {
      const buf = await readFile(path);
      if (buf.byteLength > MAX_SPEC_BYTES)
        throw new ContrastSetError(
          `spec ${path} is ${buf.byteLength} bytes, over the ${MAX_SPEC_BYTES} limit`,
        );
      text = buf.toString("utf8");
    } catch (cause) {
      if (cause instanceof ContrastSetError) throw cause;
      throw new ContrastSetError(
        `"${arg}" is neither a preset (agent-shell, harmful-harmless) nor a readable spec file`,
        { cause },
      );
    }
    spec = parseContrastSpec(text);
    baseDir ??= dirname(path);
  }
  const loaded = await loadContrastSet(spec, {
    ...ctx,
    ...(baseDir !== undefined ? { baseDir } : {}),
  });
  const set = capContrastSet(loaded, ctx.maxPrompts);
  const splits = splitContrastSet(set, ctx.seed ?? spec.seed, spec.splits);
  return { spec, set, splits };
}

/** Keeps the first `maxPrompts` prompts of each bucket (all when absent or 0). */
export function capContrastSet(set: ContrastSet, maxPrompts?: number): ContrastSet {
  if (maxPrompts === undefined || maxPrompts === 0) return set;
  if (!Number.isInteger(maxPrompts) || maxPrompts < 0)
    throw new ContrastSetError(`maxPrompts must be a non-negative integer, got ${maxPrompts}`);
  return {
    name: set.name,
    refuse: set.refuse.slice(0, maxPrompts),
    comply: set.comply.slice(0, maxPrompts),
  };
}
