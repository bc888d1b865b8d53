/**
 * The ggml tensor types that can appear in a GGUF file: their numeric ids, block sizes and
 * bytes per block. Only some of them can be dequantized here (`GGUF_SUPPORTED_TYPES`); the rest
 * are listed so that an unsupported-but-valid file gets an error naming its type.
 */

/** A ggml tensor type that this package can dequantize to f32. */
export type GgmlSupportedType =
  | "F32"
  | "F16"
  | "BF16"
  | "Q8_0"
  | "Q4_0"
  | "Q4_1"
  | "Q5_0"
  | "Q5_1"
  | "Q2_K"
  | "Q3_K"
  | "Q4_K"
  | "Q5_K"
  | "Q6_K";

/** Layout of one ggml tensor type: `blockElements` values are stored in `blockBytes` bytes. */
export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  readonly blockElements: number;
  readonly blockBytes: number;
  readonly supported: boolean;
}

/** Elements per super-block of the k-quants (ggml's QK_K). */
const QK_K = 256;

const TABLE: readonly GgmlTypeInfo[] = [
  { id: 0, name: "F32", blockElements: 1, blockBytes: 4, supported: true },
  { id: 1, name: "F16", blockElements: 1, blockBytes: 2, supported: true },
  { id: 2, name: "Q4_0", blockElements: 32, blockBytes: 2 + 16, supported: true },
  { id: 3, name: "Q4_1", blockElements: 32, blockBytes: 2 + 2 + 16, supported: true },
  { id: 6, name: "Q5_0", blockElements: 32, blockBytes: 2 + 4 + 16, supported: true },
  { id: 7, name: "Q5_1", blockElements: 32, blockBytes: 2 + 2 + 4 + 16, supported: true },
  { id: 8, name: "Q8_0", blockElements: 32, blockBytes: 2 + 32, supported: true },
  { id: 9, name: "Q8_1", blockElements: 32, blockBytes: 4 + 4 + 32, supported: false },
  {
    id: 10,
    name: "Q2_K",
    blockElements: QK_K,
    blockBytes: 2 + 2 + QK_K / 16 + QK_K / 4,
    supported: true,
  },
  {
    id: 11,
    name: "Q3_K",
    blockElements: QK_K,
    blockBytes: 2 + QK_K / 4 + QK_K / 8 + 12,
    supported: true,
  },
  { id: 12, name: "Q4_K", blockElements: QK_K, blockBytes: 2 + 2 + 12 + QK_K / 2, supported: true },
  {
    id: 13,
    name: "Q5_K",
    blockElements: QK_K,
    blockBytes: 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
    supported: true,
  },
  {
    id: 14,
    name: "Q6_K",
    blockElements: QK_K,
    blockBytes: QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
    supported: true,
  },
  { id: 15, name: "Q8_K", blockElements: QK_K, blockBytes: 4 + QK_K + QK_K / 8, supported: false },
  { id: 16, name: "IQ2_XXS", blockElements: QK_K, blockBytes: 2 + QK_K / 4, supported: false },
  {
    id: 17,
    name: "IQ2_XS",
    blockElements: QK_K,
    blockBytes: 2 + QK_K / 4 + QK_K / 32,
    supported: false,
  },
  {
    id: 18,
    name: "IQ3_XXS",
    blockElements: QK_K,
    blockBytes: 2 + ((QK_K / 4) * 3) / 2,
    supported: false,
  },
  {
    id: 19,
    name: "IQ1_S",
    blockElements: QK_K,
    blockBytes: 2 + QK_K / 8 + QK_K / 16,
    supported: false,
  },
  { id: 20, name: "IQ4_NL", blockElements: 32, blockBytes: 2 + 16, supported: false },
  {
    id: 21,
    name: "IQ3_S",
    blockElements: QK_K,
    blockBytes: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
    supported: false,
  },
  {
    id: 22,
    name: "IQ2_S",
    blockElements: QK_K,
    blockBytes: 2 + QK_K / 4 + QK_K / 16,
    supported: false,
  },
  {
    id: 23,
    name: "IQ4_XS",
    blockElements: QK_K,
    blockBytes: 2 + 2 + QK_K / 2 + QK_K / 64,
    supported: false,
  },
  { id: 24, name: "I8", blockElements: 1, blockBytes: 1, supported: false },
  { id: 25, name: "I16", blockElements: 1, blockBytes: 2, supported: false },
  { id: 26, name: "I32", blockElements: 1, blockBytes: 4, supported: false },
  { id: 27, name: "I64", blockElements: 1, blockBytes: 8, supported: false },
  { id: 28, name: "F64", blockElements: 1, blockBytes: 8, supported: false },
  {
    id: 29,
    name: "IQ1_M",
    blockElements: QK_K,
    blockBytes: QK_K / 8 + QK_K / 16 + QK_K / 32,
    supported: false,
  },
  { id: 30, name: "BF16", blockElements: 1, blockBytes: 2, supported: true },
];

const BY_ID = new Map(TABLE.map((t) => [t.id, t]));

/** Names of the ggml types that can be dequantized, in id order. */
export const GGUF_SUPPORTED_TYPES: readonly GgmlSupportedType[] = TABLE.filter(
  (t) => t.supported,
).map((t) => t.name as GgmlSupportedType);

/** The layout of ggml type `id`, or undefined when the id is not a ggml type known to this package. */
export function ggmlTypeInfo(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}
