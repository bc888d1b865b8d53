/**
 * One entry point for every model source: a local HF folder, a GGUF file (converted once into the
 * cache, keyed by the file's sha256) or a Hub id (downloaded into the HF-layout cache). Always
 * returns a local HF checkpoint folder.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { convertGgufToHf, type GgufConvertDType } from "./gguf-convert.ts";
import {
  downloadHubModel,
  type HubDownloadOptions,
  HubError,
  type HubEvent,
  parseHubSpec,
} from "./hub.ts";

/** Options of {@link resolveModel}. */
export interface ResolveModelOptions {
  /** Cache root: Hub snapshots go here as huggingface_hub lays them out, GGUF conversions under `gguf/`. */
  readonly cacheDir: string;
  readonly signal?: AbortSignal;
  readonly endpoint?: string;
  readonly token?: string;
  readonly fetch?: typeof fetch;
  /** Storage dtype of GGUF conversions (default f32). */
  readonly ggufDType?: GgufConvertDType;
  readonly onHubEvent?: (e: HubEvent) => void;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function hasGgufMagic(p: string): Promise<boolean> {
  const fh = await open(p, "r");
  try {
    const b = new Uint8Array(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && new TextDecoder().decode(b) === "GGUF";
  } finally {
    await fh.close();
  }
}

async function sha256File(p: string, signal: AbortSignal | undefined): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(p, { highWaterMark: 4 << 20 })) {
    signal?.throwIfAborted();
    h.update(chunk as Buffer);
  }
  return h.digest("hex");
}

/**
 * Returns a local HF checkpoint folder for `spec`: a folder with config.json is returned as is;
 * a GGUF file is converted into `<cacheDir>/gguf/<sha256>/` (once); `org/name[@revision]` is
 * downloaded from the Hub into the cache.
 */
export async function resolveModel(spec: string, options: ResolveModelOptions): Promise<string> {
  const local = resolve(spec);
  if (await isDir(local)) {
    if (!(await isFile(join(local, "config.json")))) {
      throw new HubError(`${local} is a folder without config.json: not a Hugging Face checkpoint`);
    }
    return local;
  }
  if (await isFile(local)) {
    if (!(await hasGgufMagic(local))) {
      throw new HubError(`${local} is a file but not a GGUF model (no "GGUF" magic)`);
    }
    const digest = await sha256File(local, options.signal);
    const dtype = options.ggufDType ?? "f32";
    const out = join(options.cacheDir, "gguf", dtype === "f32" ? digest : `${digest}-${dtype}`);
    if (await isFile(join(out, "config.json"))) return out;
    const convertOptions = options.signal ? { dtype, signal: options.signal } : { dtype };
    await convertGgufToHf(local, out, convertOptions).catch(async (err: unknown) => {
      // Another process may have published the same conversion meanwhile.
      if (await isFile(join(out, "config.json"))) return;
      throw err;
    });
    return out;
  }
  const hub = parseHubSpec(spec);
  if (!hub) {
    throw new HubError(
      `"${spec}" is neither a local folder, a GGUF file nor a Hub id (org/name[@revision])`,
    );
  }
  const hubOptions: { -readonly [K in keyof HubDownloadOptions]: HubDownloadOptions[K] } = {
    cacheDir: options.cacheDir,
  };
  if (options.signal) hubOptions.signal = options.signal;
  if (options.endpoint) hubOptions.endpoint = options.endpoint;
  if (options.token) hubOptions.token = options.token;
  if (options.fetch) hubOptions.fetch = options.fetch;
  if (options.onHubEvent) hubOptions.onEvent = options.onHubEvent;
  return downloadHubModel(hub, hubOptions);
}
