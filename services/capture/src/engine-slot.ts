import {
  type Engine,
  type LoadedTokenizer,
  type LoadModelOptions,
  loadModelWithTokenizer,
} from "@abl/engine";
import type { BuiltinModel } from "@abl/refusal";
import type { FolderBytes } from "@abl/tensor";

/** A model handed out by {@link EngineSlot.get}, with what getting it cost. */
export interface SlotModel extends BuiltinModel {
  readonly digest: string;
  /** True when this call loaded the engine; false when the one kept from an earlier job served. */
  readonly loaded: boolean;
  /** Seconds spent loading (0 when reused). */
  readonly loadSeconds: number;
}

/**
 * The built-in engine a capture service keeps loaded between jobs. Loading SmolLM2-135M costs
 * seconds of graph building and onnxruntime session setup; a second job for the same model
 * digest reuses the engine, a job for another digest releases it and loads that model instead.
 * Callers use one model at a time (the consumer runs one job at a time); `get` calls are
 * serialized so two never load at once.
 */
export interface EngineSlot {
  /**
   * The engine and tokenizer of model `digest` whose files are in `dir`, or in `files` (by name
   * inside `dir`) when the model was just downloaded into memory.
   */
  get(digest: string, dir: string, signal?: AbortSignal, files?: FolderBytes): Promise<SlotModel>;
  /** Digest of the model held now, if any. */
  readonly digest: string | undefined;
  /** Releases the held engine (on shutdown); a later `get` loads again. */
  close(): Promise<void>;
}

/** Options of {@link createEngineSlot}; the loader is replaceable for tests. */
export interface EngineSlotOptions {
  readonly load?: (
    dir: string,
    options: LoadModelOptions,
  ) => Promise<{ engine: Engine; tokenizer: LoadedTokenizer }>;
}

/** Creates an empty {@link EngineSlot}. */
export function createEngineSlot(options: EngineSlotOptions = {}): EngineSlot {
  const load = options.load ?? loadModelWithTokenizer;
  let held: { digest: string; engine: Engine; tokenizer: LoadedTokenizer } | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function release(): Promise<void> {
    const h = held;
    held = undefined;
    await h?.engine.dispose();
  }

  function serialized<T>(f: () => Promise<T>): Promise<T> {
    const run = queue.then(f, f);
    queue = run.catch(() => {});
    return run;
  }

  return {
    get digest() {
      return held?.digest;
    },
    get(digest, dir, signal, files) {
      return serialized(async () => {
        if (held?.digest === digest)
          return { ...held, loaded: false, loadSeconds: 0 } satisfies SlotModel;
        // Release first: two models at once could double the service's memory.
        await release();
        signal?.throwIfAborted();
        const t0 = performance.now();
        const { engine, tokenizer } = await load(dir, {
          ...(signal ? { signal } : {}),
          ...(files ? { files } : {}),
        });
        held = { digest, engine, tokenizer };
        return { ...held, loaded: true, loadSeconds: (performance.now() - t0) / 1000 };
      });
    },
    close() {
      return serialized(release);
    },
  };
}
