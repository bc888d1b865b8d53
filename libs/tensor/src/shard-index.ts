import { access, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { memorySource, openFileSource } from "./byte-source.ts";
import { SafetensorsError } from "./errors.ts";
import type { TensorInfo } from "./safetensors-header.ts";
import { openSafetensors, type SafetensorsFile } from "./safetensors-reader.ts";

/** Conventional name of the shard index in an HF checkpoint folder. */
export const SHARD_INDEX_NAME = "model.safetensors.index.json";
/** Conventional name of a single-file checkpoint. */
export const SINGLE_FILE_NAME = "model.safetensors";
/** Largest index file accepted: a 100k-tensor index is ~8 MB. */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/** A parsed `model.safetensors.index.json`. */
export interface ShardIndex {
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name, in the index's order. */
  readonly weightMap: ReadonlyMap<string, string>;
  /** Distinct shard file names in first-mention order. */
  readonly files: readonly string[];
}

const SAFE_FILE = /^[A-Za-z0-9._-]+\.safetensors$/;

/**
 * Parses and validates an index: `weight_map` must map names to plain `*.safetensors` file names
 * (no folders, no `..`), so an index can never point outside its checkpoint.
 */
export function parseShardIndex(text: string | Uint8Array, source = SHARD_INDEX_NAME): ShardIndex {
  const size = typeof text === "string" ? text.length : text.byteLength;
  if (size > MAX_INDEX_BYTES)
    throw new SafetensorsError(`index of ${size} bytes exceeds the ${MAX_INDEX_BYTES}-byte limit`, {
      source,
    });
  let raw: unknown;
  try {
    raw = JSON.parse(typeof text === "string" ? text : new TextDecoder().decode(text));
  } catch (err) {
    throw new SafetensorsError("index is not valid JSON", { source, cause: err });
  }
  const obj = raw as { weight_map?: unknown; metadata?: unknown } | null;
  if (
    typeof obj !== "object" ||
    obj === null ||
    typeof obj.weight_map !== "object" ||
    obj.weight_map === null
  ) {
    throw new SafetensorsError("index has no weight_map object", { source });
  }
  const weightMap = new Map<string, string>();
  const files: string[] = [];
  for (const [name, file] of Object.entries(obj.weight_map as Record<string, unknown>)) {
    if (typeof file !== "string" || !SAFE_FILE.test(file) || file.startsWith(".")) {
      throw new SafetensorsError(
        `weight_map["${name}"] = ${JSON.stringify(file)} is not a plain .safetensors file name`,
        { source },
      );
    }
    weightMap.set(name, file);
    if (!files.includes(file)) files.push(file);
  }
  const metadata =
    typeof obj.metadata === "object" && obj.metadata !== null
      ? (obj.metadata as Record<string, unknown>)
      : {};
  return { metadata, weightMap, files };
}

/** Serializes an index the way transformers writes it (`metadata.total_size`, sorted weight_map). */
export function encodeShardIndex(
  weightMap: ReadonlyMap<string, string>,
  totalSize: number,
  extra: Record<string, unknown> = {},
): string {
  const sorted = Object.fromEntries(
    [...weightMap.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return `${JSON.stringify({ metadata: { ...extra, total_size: totalSize }, weight_map: sorted }, null, 2)}\n`;
}

/** Every tensor of a (possibly sharded) local checkpoint, each found in its shard. */
export interface ShardedSafetensors {
  /** Shard file names in order. */
  readonly files: readonly string[];
  /** Tensor name → shard file and header entry. */
  readonly tensors: ReadonlyMap<string, { readonly file: string; readonly info: TensorInfo }>;
  /** The open shard `file`. */
  shard(file: string): SafetensorsFile;
  /** `name` decoded to float32. */
  tensor(name: string, signal?: AbortSignal): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * A checkpoint folder held in memory (a model just downloaded): every file's bytes by its name
 * inside the folder. Readers given one read nothing from the disk; a name absent here is a file
 * the folder does not have.
 */
export type FolderBytes = ReadonlyMap<string, Uint8Array>;

/**
 * Opens a local checkpoint folder with `model.safetensors.index.json` or a single
 * `model.safetensors`, validating every shard header and that the index and the shards agree
 * (a missing shard, or a tensor the index names but its shard lacks, is an error). With `memory`
 * the folder's files come from there (F32 tensors then come back as views, see
 * {@link SafetensorsFile.tensor}); `dir` only names them in messages.
 */
export async function openShardedSafetensors(
  dir: string,
  signal?: AbortSignal,
  memory?: FolderBytes,
): Promise<ShardedSafetensors> {
  const indexPath = join(dir, SHARD_INDEX_NAME);
  let index: ShardIndex | undefined;
  if (memory) {
    const held = memory.get(SHARD_INDEX_NAME);
    if (held) index = parseShardIndex(held, indexPath);
  } else if (
    await access(indexPath).then(
      () => true,
      () => false,
    )
  ) {
    index = parseShardIndex(await readFile(indexPath), indexPath);
  }
  const files = index ? index.files : [SINGLE_FILE_NAME];
  const shards = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, { file: string; info: TensorInfo }>();
  const closeAll = async () => {
    for (const s of shards.values()) await s.close();
  };
  const addTensors = (f: SafetensorsFile, file: string) => {
    for (const info of f.header.tensors) {
      if (tensors.has(info.name))
        throw new SafetensorsError(
          `tensor "${info.name}" appears in both ${tensors.get(info.name)!.file} and ${file}`,
          { source: dir },
        );
      tensors.set(info.name, { file, info });
    }
  };
  try {
    for (const file of files) {
      const path = join(dir, file);
      const held = memory?.get(file);
      if (memory) {
        if (!held)
          throw new SafetensorsError(
            index
              ? `index names shard "${file}", which is missing`
              : `no ${SINGLE_FILE_NAME} and no ${SHARD_INDEX_NAME}`,
            { source: dir },
          );
        const f = await openSafetensors(memorySource(held, path), signal);
        shards.set(file, f);
        addTensors(f, file);
        continue;
      }
      const st = await stat(path).catch((err: unknown) => {
        throw new SafetensorsError(
          index
            ? `index names shard "${file}", which is missing`
            : `no ${SINGLE_FILE_NAME} and no ${SHARD_INDEX_NAME}`,
          { source: dir, cause: err },
        );
      });
      if (!st.isFile())
        throw new SafetensorsError(`shard "${file}" is not a file`, { source: dir });
      const f = await openSafetensors(await openFileSource(path), signal);
      shards.set(file, f);
      addTensors(f, file);
    }
    if (index) {
      for (const [name, file] of index.weightMap) {
        const found = tensors.get(name);
        if (!found || found.file !== file) {
          throw new SafetensorsError(
            `index maps "${name}" to ${file}, but that shard has no such tensor`,
            { source: indexPath },
          );
        }
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return {
    files,
    tensors,
    shard(file) {
      const s = shards.get(file);
      if (!s) throw new SafetensorsError(`no shard "${file}"`, { source: dir });
      return s;
    },
    async tensor(name, sig) {
      const t = tensors.get(name);
      if (!t) throw new SafetensorsError(`no tensor named "${name}"`, { source: dir });
      return shards.get(t.file)!.tensor(name, sig);
    },
    close: closeAll,
  };
}
