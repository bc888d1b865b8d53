/**
 * Serves sweep variants with the built-in engine: one OpenAI-compatible server on a loopback port
 * with one model id per variant, so requests for different variants are batched per model.
 */
import { createOpenAIServer, type Engine, loadModelWithTokenizer } from "@abl/engine";
import type { ObjectStore } from "@abl/store";
import { modelDir } from "./steps.ts";
import type { ServedVariants, ServeVariants } from "./sweep.ts";

/** Options of {@link createBuiltinServe}. */
export interface BuiltinServeOptions {
  /** Where the model artifacts are (a local store serves its folders in place). */
  readonly store: ObjectStore;
  /** Where models from a remote store are downloaded to. */
  readonly cacheDir: string;
  /** Longest sequence a request may use (prompt + generation); bounds the KV cache. */
  readonly maxPositions?: number;
  /** Sequences generated together per model (default 16). */
  readonly maxBatch?: number;
  readonly host?: string;
}

/** A `ServeVariants` that loads each variant into the built-in engine and serves them all. */
export function createBuiltinServe(options: BuiltinServeOptions): ServeVariants {
  return async (variants, signal): Promise<ServedVariants> => {
    const engines: Engine[] = [];
    try {
      const models = [];
      for (const v of variants) {
        signal.throwIfAborted();
        const dir = await modelDir(options.store, v.prefix, options.cacheDir);
        const { engine, tokenizer } = await loadModelWithTokenizer(dir, {
          signal,
          ...(options.maxPositions !== undefined ? { maxPositions: options.maxPositions } : {}),
        });
        engines.push(engine);
        models.push({ id: v.name, engine, tokenizer });
      }
      const server = createOpenAIServer({
        models,
        maxBatch: options.maxBatch ?? 16,
        maxQueue: 256,
      });
      const host = options.host ?? "127.0.0.1";
      const port = await server.listen(0, host);
      const url = `http://${host}:${port}/v1`;
      return {
        endpoints: Object.fromEntries(variants.map((v) => [v.name, { url, model: v.name }])),
        async close() {
          await server.close();
          await Promise.all(engines.map((e) => e.dispose()));
        },
      };
    } catch (err) {
      await Promise.all(engines.map((e) => e.dispose().catch(() => undefined)));
      throw err;
    }
  };
}
