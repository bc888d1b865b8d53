export { type ByteSink, createFileSink, tempPathFor, writeFully } from "./byte-sink.ts";
export { type ByteSource, memorySource, openFileSource } from "./byte-source.ts";
export {
  bf16ToF32,
  DTYPE_SIZES,
  type DType,
  decodeToF32,
  dtypeSize,
  encodeFromF32,
  type FloatDType,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  isDType,
  isFloatDType,
} from "./dtype.ts";
export { DTypeError, SafetensorsError } from "./errors.ts";
export {
  elementCount,
  MAX_HEADER_BYTES,
  MAX_NAME_LENGTH,
  MAX_RANK,
  MAX_TENSORS,
  PREFIX_BYTES,
  parseHeaderLength,
  parseSafetensorsHeader,
  type SafetensorsHeader,
  type TensorInfo,
} from "./safetensors-header.ts";
export {
  type DecodedTensor,
  openSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsFile,
} from "./safetensors-reader.ts";
export {
  createSafetensorsWriter,
  type EncodedHeader,
  encodeSafetensorsHeader,
  type SafetensorsWriter,
  type TensorInput,
  type TensorSpec,
  writeSafetensors,
} from "./safetensors-writer.ts";
export {
  encodeShardIndex,
  type FolderBytes,
  MAX_INDEX_BYTES,
  openShardedSafetensors,
  parseShardIndex,
  SHARD_INDEX_NAME,
  type ShardedSafetensors,
  type ShardIndex,
  SINGLE_FILE_NAME,
} from "./shard-index.ts";
