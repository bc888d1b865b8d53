/**
 * `abl convert gguf FILE --out DIR [--dtype f32|bf16|f16]`: turns a GGUF model into a Hugging
 * Face checkpoint folder (safetensors, config.json, tokenizer files with the chat template).
 */
import { parseArgs } from "node:util";
import {
  convertGguf,
  GGUF_SUPPORTED_ARCHITECTURES,
  GGUF_SUPPORTED_TYPES,
  type GgufConvertDType,
} from "@abl/checkpoint";
import { type Command, UsageError } from "../command.ts";

const USAGE = `usage: abl convert gguf FILE --out DIR [--dtype f32|bf16|f16] [--quiet]

Converts the GGUF model FILE into a Hugging Face checkpoint folder DIR (must not exist):
model.safetensors (dequantized), config.json, generation_config.json, tokenizer.json and
tokenizer_config.json with the chat template, all rebuilt from the GGUF metadata.

Architectures: ${GGUF_SUPPORTED_ARCHITECTURES.join(", ")}.
Tensor types: ${GGUF_SUPPORTED_TYPES.join(", ")}.
Tokenizers: byte-level BPE ("gpt2") and sentencepiece BPE ("llama") vocabularies.

options:
  --out DIR        output folder, written atomically (built beside it, renamed last)
  --dtype D        stored weight dtype: f32 (default, exact), bf16 or f16 (rounded to nearest even)
  --quiet          no progress lines`;

const DTYPES: readonly GgufConvertDType[] = ["f32", "bf16", "f16"];

/** The `abl convert gguf` command. */
export const convertCommand: Command = {
  name: ["convert", "gguf"],
  summary: "convert a GGUF model into a Hugging Face checkpoint folder",
  usage: USAGE,
  async run(argv, signal) {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(argv);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1)
      throw new UsageError(`expected one GGUF file, got ${positionals.length}`);
    if (!values.out) throw new UsageError("--out DIR is required");
    const dtype = (values.dtype ?? "f32") as GgufConvertDType;
    if (!DTYPES.includes(dtype))
      throw new UsageError(`--dtype must be one of ${DTYPES.join(", ")}, got "${dtype}"`);
    const started = Date.now();
    const it = convertGguf(positionals[0]!, values.out, { dtype, signal });
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        console.log(
          `converted ${r.value.architecture} (${r.value.tensorCount} tensors, ${dtype}) to ${r.value.outDir} in ${secs}s`,
        );
        return 0;
      }
      if (!values.quiet && (r.value.index % 16 === 0 || r.value.index + 1 === r.value.count)) {
        console.error(`[${r.value.index + 1}/${r.value.count}] ${r.value.name}`);
      }
    }
  },
};

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      dtype: { type: "string" },
      quiet: { type: "boolean" },
    },
  });
}
