import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { convertGgufToHf } from "@abl/checkpoint";
import { createOpenAIServer, loadModel } from "@abl/engine";
import { type Command, UsageError } from "../command.ts";

const usage = `usage: abl serve --model DIR|FILE.gguf [--port 8000] [--host 127.0.0.1] [--name ID]
                 [--max-batch 16] [--max-queue 64] [--threads 2] [--max-positions N]

Serves a model on the built-in CPU engine with an OpenAI-compatible API:
/v1/models, /v1/chat/completions, /v1/completions, /health, /metrics.
--model is an HF checkpoint folder (config.json, safetensors, tokenizer.json) or a GGUF file,
converted to f32 into a temporary folder first.`;

function intOpt(v: string | undefined, name: string, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** `abl serve`: the built-in engine behind an OpenAI-compatible HTTP API until interrupted. */
export const serveCommand: Command = {
  name: ["serve"],
  summary: "serve a model on the built-in CPU engine with an OpenAI-compatible API",
  usage,
  async run(argv, signal) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        name: { type: "string" },
        "max-batch": { type: "string" },
        "max-queue": { type: "string" },
        threads: { type: "string" },
        "max-positions": { type: "string" },
      },
    });
    if (!values.model) throw new UsageError("--model is required");
    const port = intOpt(values.port, "port", 8000, 0);
    const maxBatch = intOpt(values["max-batch"], "max-batch", 16, 1);
    const maxQueue = intOpt(values["max-queue"], "max-queue", 64, 1);
    const threads = intOpt(values.threads, "threads", 2, 1);
    const maxPositions = values["max-positions"]
      ? intOpt(values["max-positions"], "max-positions", 0, 2)
      : undefined;
    let dir = values.model;
    let tmp: string | undefined;
    try {
      if (dir.endsWith(".gguf")) {
        tmp = await mkdtemp(join(tmpdir(), "abl-serve-"));
        console.error(`converting ${dir} to f32 in ${tmp}`);
        await convertGgufToHf(dir, tmp, { dtype: "f32", signal });
        dir = tmp;
      }
      const engine = await loadModel(dir, {
        threads,
        signal,
        ...(maxPositions ? { maxPositions } : {}),
      });
      const tokenizer = engine.tokenizer;
      if (!tokenizer) {
        await engine.dispose();
        throw new UsageError(`${values.model} has no tokenizer.json`);
      }
      const id = values.name ?? basename(values.model).replace(/\.gguf$/, "");
      const server = createOpenAIServer({
        models: [{ id, engine, tokenizer }],
        maxBatch,
        maxQueue,
        onError: (err) => console.error("serve:", err),
      });
      const bound = await server.listen(port, values.host ?? "127.0.0.1");
      console.log(
        JSON.stringify({
          msg: "serving",
          model: id,
          url: `http://${values.host ?? "127.0.0.1"}:${bound}/v1`,
        }),
      );
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await server.close();
      await engine.dispose();
      return 0;
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
  },
};
