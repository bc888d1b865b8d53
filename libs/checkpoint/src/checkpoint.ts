import {
  parseShardIndex,
  readSafetensorsHeader,
  type SafetensorsHeader,
  SHARD_INDEX_NAME,
  type ShardIndex,
  SINGLE_FILE_NAME,
  type TensorInfo,
} from "@abl/tensor";
import type { CheckpointFile, CheckpointFiles } from "./checkpoint-files.ts";
import { type ModelConfig, parseModelConfig } from "./config.ts";
import { CheckpointError } from "./errors.ts";

/** Largest `config.json` read (real ones are < 20 KB). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** Largest shard index read (a 100k-tensor index is ~8 MB). */
export const MAX_INDEX_FILE_BYTES = 64 * 1024 * 1024;
/** Name of the lm_head tensor written when untying embeddings. */
export const LM_HEAD_NAME = "lm_head.weight";

/** One shard: its file and validated header. */
export interface CheckpointShard {
  readonly file: string;
  readonly size: number;
  readonly header: SafetensorsHeader;
}

/** An opened HF checkpoint: config, shards with validated headers, and the other files. */
export interface Checkpoint {
  readonly files: CheckpointFiles;
  /** Every file of the folder (shards included). */
  readonly fileList: readonly CheckpointFile[];
  readonly config: ModelConfig;
  /** The index when the checkpoint is sharded. */
  readonly index: ShardIndex | undefined;
  readonly shards: readonly CheckpointShard[];
  /** Tensor name → shard file and header entry. */
  readonly tensors: ReadonlyMap<string, { readonly file: string; readonly info: TensorInfo }>;
  /** True when the output head reuses the input embeddings (no lm_head tensor stored). */
  readonly tiedEmbeddings: boolean;
  /** Name of the input-embedding tensor, if found. */
  readonly embedName: string | undefined;
}

/**
 * Opens an HF checkpoint folder from any {@link CheckpointFiles}: parses config.json, the shard
 * index (or the single model.safetensors), and validates every shard header, checking that the
 * index and the shards agree. Tensor data is not read.
 */
export async function loadCheckpoint(
  files: CheckpointFiles,
  signal?: AbortSignal,
): Promise<Checkpoint> {
  const fileList = await files.list(signal);
  const byName = new Map(fileList.map((f) => [f.name, f]));
  if (!byName.has("config.json")) throw new CheckpointError(`${files.location} has no config.json`);
  const config = parseModelConfig(await files.readBytes("config.json", MAX_CONFIG_BYTES, signal));
  let index: ShardIndex | undefined;
  let shardFiles: string[];
  if (byName.has(SHARD_INDEX_NAME)) {
    index = parseShardIndex(
      await files.readBytes(SHARD_INDEX_NAME, MAX_INDEX_FILE_BYTES, signal),
      `${files.location}/${SHARD_INDEX_NAME}`,
    );
    shardFiles = [...index.files];
  } else if (byName.has(SINGLE_FILE_NAME)) {
    shardFiles = [SINGLE_FILE_NAME];
  } else {
    throw new CheckpointError(
      `${files.location} has neither ${SHARD_INDEX_NAME} nor ${SINGLE_FILE_NAME}`,
    );
  }
  const shards: CheckpointShard[] = [];
  const tensors = new Map<string, { file: string; info: TensorInfo }>();
  for (const file of shardFiles) {
    signal?.throwIfAborted();
    const entry = byName.get(file);
    if (!entry)
      throw new CheckpointError(
        `${SHARD_INDEX_NAME} names shard "${file}", which is missing from ${files.location}`,
      );
    const source = await files.open(file);
    let header: SafetensorsHeader;
    try {
      header = await readSafetensorsHeader(source, signal);
    } finally {
      await source.close();
    }
    shards.push({ file, size: entry.size, header });
    for (const info of header.tensors) {
      const prev = tensors.get(info.name);
      if (prev)
        throw new CheckpointError(
          `tensor "${info.name}" is stored in both ${prev.file} and ${file}`,
        );
      tensors.set(info.name, { file, info });
    }
  }
  if (index) {
    for (const [name, file] of index.weightMap) {
      if (tensors.get(name)?.file !== file) {
        throw new CheckpointError(
          `${SHARD_INDEX_NAME} maps "${name}" to ${file}, but that shard has no such tensor`,
        );
      }
    }
    for (const [name, t] of tensors) {
      if (!index.weightMap.has(name))
        throw new CheckpointError(
          `tensor "${name}" in ${t.file} is missing from ${SHARD_INDEX_NAME}`,
        );
    }
  }
  const embedName = [...tensors.keys()].find((n) => /(?:^|\.)embed_tokens\.weight$/.test(n));
  const hasHead = [...tensors.keys()].some((n) => /(?:^|\.)lm_head\.weight$/.test(n));
  const tiedEmbeddings = !hasHead && config.tieWordEmbeddings !== false && embedName !== undefined;
  return { files, fileList, config, index, shards, tensors, tiedEmbeddings, embedName };
}
