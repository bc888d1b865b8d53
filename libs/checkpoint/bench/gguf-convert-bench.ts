/**
 * `npm run bench:gguf-convert [-- FILE.gguf]`: GGUF → HF folder (f32 safetensors + config +
 * tokenizer), `abl convert gguf` against transformers (load with gguf_file, save the state dict),
 * side by side on the same file, each in its own process. Prints wall seconds, peak RSS and ratios.
 * Needs python3 with torch, transformers, gguf, safetensors. Default file: the SmolLM2 GGUF of
 * ABL_SMOLLM2_GGUF or the cache (scripts/install-deps.sh).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = join(HERE, "../../..");

function run(
  cmd: string,
  args: string[],
): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ out, err, code }));
  });
}

/** Wall time and peak RSS of a command, measured by GNU time (`%e %M`). */
async function timed(
  cmd: string,
  args: string[],
): Promise<{ seconds: number; rssBytes: number; out: string }> {
  const r = await run("/usr/bin/time", ["-f", "TIME %e %M", cmd, ...args]);
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.err.slice(-2000)}`);
  const m = /TIME ([\d.]+) (\d+)/.exec(r.err);
  if (!m) throw new Error(`no timing in: ${r.err.slice(-500)}`);
  return { seconds: Number(m[1]), rssBytes: Number(m[2]) * 1024, out: r.out };
}

async function main(): Promise<void> {
  const cache = process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
  const gguf =
    process.argv[2] ??
    process.env.ABL_SMOLLM2_GGUF ??
    (await readFile(join(cache, "smollm2.path"), "utf8")).trim();
  const dir = await mkdtemp(join(tmpdir(), "abl-bench-gguf-"));
  try {
    const ours = await timed(process.execPath, [
      "--import",
      "tsx",
      join(ROOT, "cli/src/main.ts"),
      "convert",
      "gguf",
      gguf,
      "--out",
      join(dir, "abl"),
      "--quiet",
    ]);
    await rm(join(dir, "abl"), { recursive: true, force: true });
    const theirs = await timed("python3", [
      join(HERE, "transformers_gguf_convert.py"),
      gguf,
      join(dir, "tf"),
    ]);
    const inner = JSON.parse(theirs.out.trim().split("\n").pop()!) as { seconds: number };
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    console.log(`file: ${gguf}`);
    console.log(
      `abl convert gguf : ${ours.seconds.toFixed(1)} s wall (process), peak RSS ${mib(ours.rssBytes)}`,
    );
    console.log(
      `transformers     : ${theirs.seconds.toFixed(1)} s wall (process; ${inner.seconds.toFixed(1)} s load+save without imports), peak RSS ${mib(theirs.rssBytes)}`,
    );
    console.log(
      `ratio (transformers / abl): time ${(theirs.seconds / ours.seconds).toFixed(2)}x (load+save only: ${(inner.seconds / ours.seconds).toFixed(2)}x), peak RSS ${(theirs.rssBytes / ours.rssBytes).toFixed(2)}x`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
