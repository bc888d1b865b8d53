/**
 * The transformers capture engine: runs worker/capture_worker.py (torch + transformers) through a
 * launcher — a local subprocess here, a Kubernetes Job where a launcher for it is passed in — and
 * reads back the residuals it wrote, from a local folder or from the object store via presigned
 * PUT URLs.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ObjectStore } from "@abl/store";
import { memorySource, openSafetensors } from "@abl/tensor";
import { RESIDUALS_TENSOR } from "./activations-artifact.ts";
import type { CapturedBatch, CaptureProgress, ResidualCapturer } from "./capture-job.ts";
import { type Bucket, type ContrastPrompt, promptMessages } from "./contrast-set.ts";
import { ActivationsError } from "./errors.ts";

/** Path of the worker script shipped in this package. */
export const CAPTURE_WORKER_SCRIPT = fileURLToPath(
  new URL("../worker/capture_worker.py", import.meta.url),
);
/** Lifetime of presigned URLs handed to the worker: long enough for a big model download on a slow node. */
export const PRESIGN_EXPIRY_SECONDS = 6 * 3600;
/** Longest stdout line accepted from the worker (progress lines are tiny; this catches garbage). */
export const MAX_WORKER_LINE_CHARS = 1024 * 1024;

/** Runs one worker job and yields its stdout lines; throws if the worker exits non-zero. */
export type WorkerLauncher = (job: unknown, signal?: AbortSignal) => AsyncIterable<string>;

/** A launcher that runs the worker as a local subprocess (`python3` by default). */
export function createLocalWorkerLauncher(
  options: { python?: string; script?: string } = {},
): WorkerLauncher {
  const python = options.python ?? "python3";
  const script = options.script ?? CAPTURE_WORKER_SCRIPT;
  return async function* launch(job, signal) {
    const child = spawn(python, [script], {
      stdio: ["pipe", "pipe", "pipe"],
      ...(signal ? { signal } : {}),
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      // Keep only the tail: tracebacks end with the useful line.
      stderr = (stderr + d).slice(-4000);
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => resolve(code));
    });
    child.stdin.end(JSON.stringify(job));
    try {
      for await (const line of createInterface({ input: child.stdout })) yield line;
      const code = await exited;
      if (code !== 0)
        throw new ActivationsError(
          `capture worker exited with status ${code}: ${stderr.trim().split("\n").at(-1) ?? ""}`,
        );
    } finally {
      if (child.exitCode === null && !child.killed) child.kill("SIGTERM");
    }
  };
}

/** Where the worker finds the model. */
export type WorkerModel =
  | { readonly dir: string }
  | { readonly store: ObjectStore; readonly prefix: string; readonly files: readonly string[] };

/** Options of {@link createTransformersCapturer}. */
export interface TransformersCapturerOptions {
  readonly model: WorkerModel;
  readonly modelDigest: string;
  readonly launcher?: WorkerLauncher;
  /** Upload through presigned PUT URLs into this store prefix instead of a local folder. */
  readonly upload?: { readonly store: ObjectStore; readonly prefix: string };
  readonly chatTemplate?: string;
  readonly batchSize?: number;
}

interface WorkerLine {
  type?: string;
  bucket?: string;
  done?: number;
  total?: number;
  message?: string;
  layers?: number;
  hidden?: number;
  chat_template?: string;
}

async function decodeResiduals(
  bytes: Uint8Array,
  name: string,
): Promise<{ shape: readonly number[]; data: Float32Array }> {
  const f = await openSafetensors(memorySource(bytes, name));
  try {
    return { shape: f.info(RESIDUALS_TENSOR).shape, data: await f.tensor(RESIDUALS_TENSOR) };
  } finally {
    await f.close();
  }
}

/** A {@link ResidualCapturer} backed by the transformers worker. */
export function createTransformersCapturer(
  options: TransformersCapturerOptions,
): ResidualCapturer & { readonly chatTemplate: string } {
  const launcher = options.launcher ?? createLocalWorkerLauncher();
  let template = options.chatTemplate ?? "";
  const capturer = {
    engine: "transformers" as const,
    modelDigest: options.modelDigest,
    get chatTemplate() {
      return template;
    },
    async *capture(
      bucket: Bucket,
      prompts: readonly ContrastPrompt[],
      signal?: AbortSignal,
    ): AsyncGenerator<CaptureProgress, CapturedBatch> {
      const m = options.model;
      let model: unknown;
      if ("dir" in m) model = { dir: m.dir };
      else {
        if (!m.store.presignGet)
          throw new ActivationsError(
            `store ${m.store.location} cannot presign GET URLs for the worker`,
          );
        const urls: Record<string, string> = {};
        for (const f of m.files)
          urls[f] = await m.store.presignGet(`${m.prefix}/${f}`, PRESIGN_EXPIRY_SECONDS);
        model = { urls };
      }
      const local = options.upload
        ? undefined
        : await mkdtemp(join(tmpdir(), "abl-capture-worker-"));
      try {
        let output: unknown;
        const fileName = `${bucket}.safetensors`;
        if (local) output = { dir: local };
        else {
          const up = options.upload as { store: ObjectStore; prefix: string };
          if (!up.store.presignPut)
            throw new ActivationsError(
              `store ${up.store.location} cannot presign PUT URLs for the worker`,
            );
          output = {
            put_urls: {
              [fileName]: await up.store.presignPut(
                `${up.prefix}/${fileName}`,
                PRESIGN_EXPIRY_SECONDS,
              ),
              "capture.json": await up.store.presignPut(
                `${up.prefix}/${bucket}-capture.json`,
                PRESIGN_EXPIRY_SECONDS,
              ),
            },
          };
        }
        const job = {
          model,
          buckets: { [bucket]: prompts.map(promptMessages) },
          ...(options.chatTemplate ? { chat_template: options.chatTemplate } : {}),
          ...(options.batchSize ? { batch_size: options.batchSize } : {}),
          output,
        };
        let done: WorkerLine | undefined;
        let error: string | undefined;
        try {
          for await (const raw of launcher(job, signal)) {
            if (raw.length > MAX_WORKER_LINE_CHARS)
              throw new ActivationsError(`capture worker wrote a ${raw.length}-character line`);
            let line: WorkerLine;
            try {
              line = JSON.parse(raw) as WorkerLine;
            } catch {
              continue; // libraries sometimes print to stdout; only JSON lines are protocol
            }
            if (line.type === "progress" && line.bucket === bucket)
              yield {
                type: "progress",
                bucket,
                done: line.done ?? 0,
                total: line.total ?? prompts.length,
              };
            else if (line.type === "done") done = line;
            else if (line.type === "error") error = line.message ?? "unknown error";
          }
        } catch (cause) {
          // The worker's own error line says more than its exit status.
          if (error !== undefined)
            throw new ActivationsError(`capture worker failed: ${error}`, { cause });
          throw cause;
        }
        if (error !== undefined) throw new ActivationsError(`capture worker failed: ${error}`);
        if (!done || typeof done.layers !== "number" || typeof done.hidden !== "number")
          throw new ActivationsError("capture worker ended without a done line");
        template = done.chat_template ?? template;
        const bytes = local
          ? new Uint8Array(await readFile(join(local, fileName)))
          : await (options.upload as { store: ObjectStore }).store.getBytes(
              `${(options.upload as { prefix: string }).prefix}/${fileName}`,
            );
        const t = await decodeResiduals(bytes, fileName);
        const [n, layers, hidden] = t.shape as [number, number, number];
        if (n !== prompts.length || layers !== done.layers || hidden !== done.hidden) {
          throw new ActivationsError(
            `worker residuals are [${t.shape.join(", ")}], expected [${prompts.length}, ${done.layers}, ${done.hidden}]`,
          );
        }
        const rows = Array.from({ length: n }, (_, i) =>
          t.data.slice(i * layers * hidden, (i + 1) * layers * hidden),
        );
        return { layers, hidden, rows };
      } finally {
        if (local) await rm(local, { recursive: true, force: true });
      }
    },
  };
  return capturer;
}
