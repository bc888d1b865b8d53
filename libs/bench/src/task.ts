/**
 * Terminal-Bench 2 task folders: `task.toml`, `instruction.md`, `environment/`, `tests/test.sh`,
 * `solution/solve.sh` (reference/terminal-bench.md §2). Both task.toml forms are accepted: the
 * TB2.0 form (`version = "1.0"`, `memory = "2G"`) and the Harbor form (`[task]`, `memory_mb`,
 * `allow_internet`, env tables). Each task gets a sha256 content digest over its files.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import { parse as parseToml } from "smol-toml";
import { TaskLoadError } from "./errors.ts";

/** Largest task folder we read: TB2's biggest task is a few MiB; 256 MiB catches runaway dirs. */
export const MAX_TASK_BYTES = 256 * 1024 * 1024;
/** Largest number of files in one task folder (TB2 has at most a few dozen). */
export const MAX_TASK_FILES = 10_000;
/** Harbor's default verifier timeout when `[verifier].timeout_sec` is absent. */
export const DEFAULT_VERIFIER_TIMEOUT_SEC = 600;
/** Harbor's default environment build/start timeout. */
export const DEFAULT_BUILD_TIMEOUT_SEC = 600;

/** Resources and image of a task's environment, normalized to the Harbor form. */
export interface TaskEnvironment {
  readonly dockerImage: string | null;
  readonly cpus: number | null;
  readonly memoryMb: number | null;
  readonly storageMb: number | null;
  readonly gpus: number;
  /** TB2 leaves this unset; Harbor's default is true. */
  readonly allowInternet: boolean;
  readonly buildTimeoutSec: number;
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string | null;
}

/** A parsed, normalized task.toml. */
export interface TaskConfig {
  /** `"1.0"` for the TB2.0 form, else the Harbor `schema_version` (default "1.2"). */
  readonly schemaVersion: string;
  /** `[task].name` in the Harbor form, else null (the folder name is used). */
  readonly name: string | null;
  /** Agent wall-clock limit; null means none. */
  readonly agentTimeoutSec: number | null;
  readonly verifierTimeoutSec: number;
  readonly verifierEnv: Readonly<Record<string, string>>;
  readonly solutionEnv: Readonly<Record<string, string>>;
  readonly environment: TaskEnvironment;
  /** Free-form `[metadata]` (difficulty, category, tags, ...), ignored by the harness. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** A loaded task. */
export interface Task {
  /** Task id: `[task].name` without its org prefix, else the folder name. */
  readonly id: string;
  /** Absolute folder on this machine. */
  readonly dir: string;
  readonly config: TaskConfig;
  readonly instruction: string;
  /** `sha256:<hex>` over every file's relative path and bytes, in sorted order. */
  readonly digest: string;
  /** Relative paths of every file, sorted. */
  readonly files: readonly string[];
}

/** Options for {@link loadTask}. */
export interface LoadTaskOptions {
  /**
   * Require `tests/test.sh` and `solution/solve.sh` (default true). The TB2 samples ship only
   * task.toml and instruction.md, so config-only checks turn this off.
   */
  readonly requireRunnable?: boolean;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function table(root: Table, key: string, where: string): Table {
  const v = root[key];
  if (v === undefined) return {};
  if (!isTable(v)) throw new TaskLoadError(`${where}: [${key}] must be a table, got ${typeof v}`);
  return v;
}

function num(t: Table, key: string, where: string, opts: { min?: number } = {}): number | null {
  const v = t[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new TaskLoadError(`${where}: ${key} must be a number, got ${JSON.stringify(v)}`);
  }
  if (opts.min !== undefined && v < opts.min) {
    throw new TaskLoadError(`${where}: ${key} = ${v} is below the minimum ${opts.min}`);
  }
  return v;
}

function str(t: Table, key: string, where: string): string | null {
  const v = t[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new TaskLoadError(`${where}: ${key} must be a string`);
  return v;
}

function envTable(t: Table, key: string, where: string): Record<string, string> {
  const v = t[key];
  if (v === undefined) return {};
  if (!isTable(v)) throw new TaskLoadError(`${where}: ${key} must be a table of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string" && typeof val !== "number" && typeof val !== "boolean") {
      throw new TaskLoadError(`${where}: ${key}.${k} must be a string, got ${typeof val}`);
    }
    out[k] = String(val);
  }
  return out;
}

/**
 * Parses a size like "2G", "512M", "1.5G" or "1048576K" into MiB, the way Harbor migrates the
 * TB2.0 `memory`/`storage` strings to `memory_mb`/`storage_mb` (G = 1024 M, K = M / 1024).
 */
export function parseSizeMb(text: string, where = "size"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$/i.exec(text);
  if (!m)
    throw new TaskLoadError(`${where}: cannot parse size "${text}" (expected e.g. "2G", "512M")`);
  const value = Number(m[1]);
  const unit = (m[2] ?? "M")[0]!.toUpperCase();
  const factor = unit === "K" ? 1 / 1024 : unit === "M" ? 1 : unit === "G" ? 1024 : 1024 * 1024;
  return Math.round(value * factor);
}

function sizeMb(env: Table, mbKey: string, strKey: string, where: string): number | null {
  const mb = num(env, mbKey, where, { min: 0 });
  if (mb !== null) return mb;
  const s = env[strKey];
  if (s === undefined) return null;
  if (typeof s === "number") return s;
  if (typeof s !== "string")
    throw new TaskLoadError(`${where}: ${strKey} must be a string like "2G"`);
  return parseSizeMb(s, `${where}: ${strKey}`);
}

/** Parses and normalizes task.toml text; `where` names the file in errors. */
export function parseTaskConfig(text: string, where = "task.toml"): TaskConfig {
  let root: Table;
  try {
    root = parseToml(text) as Table;
  } catch (err) {
    throw new TaskLoadError(`${where}: invalid TOML: ${(err as Error).message}`, { cause: err });
  }
  const legacy = root.version !== undefined;
  const schemaVersion = legacy
    ? String(root.version)
    : root.schema_version === undefined
      ? "1.2"
      : String(root.schema_version);
  const task = table(root, "task", where);
  const agent = table(root, "agent", where);
  const verifier = table(root, "verifier", where);
  const solution = table(root, "solution", where);
  const env = table(root, "environment", where);
  const metadata = table(root, "metadata", where);
  const ew = `${where} [environment]`;
  const allow = env.allow_internet;
  if (allow !== undefined && typeof allow !== "boolean") {
    throw new TaskLoadError(`${ew}: allow_internet must be true or false`);
  }
  const agentTimeoutSec = num(agent, "timeout_sec", `${where} [agent]`, { min: 1 });
  return {
    schemaVersion,
    name: str(task, "name", `${where} [task]`),
    agentTimeoutSec,
    verifierTimeoutSec:
      num(verifier, "timeout_sec", `${where} [verifier]`, { min: 1 }) ??
      DEFAULT_VERIFIER_TIMEOUT_SEC,
    verifierEnv: envTable(verifier, "env", `${where} [verifier]`),
    solutionEnv: envTable(solution, "env", `${where} [solution]`),
    environment: {
      dockerImage: str(env, "docker_image", ew),
      cpus: num(env, "cpus", ew, { min: 0 }),
      memoryMb: sizeMb(env, "memory_mb", "memory", ew),
      storageMb: sizeMb(env, "storage_mb", "storage", ew),
      gpus: num(env, "gpus", ew, { min: 0 }) ?? 0,
      allowInternet: allow ?? true,
      buildTimeoutSec: num(env, "build_timeout_sec", ew, { min: 1 }) ?? DEFAULT_BUILD_TIMEOUT_SEC,
      env: envTable(env, "env", ew),
      workdir: str(env, "workdir", ew),
    },
    metadata,
  };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let total = 0;
  async function walk(d: string): Promise<void> {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name === ".git") continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() || e.isSymbolicLink()) {
        const s = await stat(p);
        total += s.size;
        out.push(relative(dir, p).split(sep).join("/"));
        if (out.length > MAX_TASK_FILES) {
          throw new TaskLoadError(`${dir}: more than ${MAX_TASK_FILES} files in one task`);
        }
        if (total > MAX_TASK_BYTES) {
          throw new TaskLoadError(`${dir}: task files exceed ${MAX_TASK_BYTES} bytes`);
        }
      }
    }
  }
  await walk(dir);
  return out.sort();
}

/** sha256 over (path, size, bytes) of each file in sorted order: stable across machines. */
export async function taskDigest(dir: string, files: readonly string[]): Promise<string> {
  const h = createHash("sha256");
  for (const f of files) {
    const data = await readFile(join(dir, f));
    h.update(`${f}\0${data.length}\0`);
    h.update(data);
  }
  return `sha256:${h.digest("hex")}`;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Loads one task folder, validating its config and (by default) its tests and solution. */
export async function loadTask(dir: string, options: LoadTaskOptions = {}): Promise<Task> {
  const requireRunnable = options.requireRunnable ?? true;
  const tomlPath = join(dir, "task.toml");
  let text: string;
  try {
    text = await readFile(tomlPath, "utf8");
  } catch (err) {
    throw new TaskLoadError(`${dir}: no task.toml`, { cause: err });
  }
  const config = parseTaskConfig(text, tomlPath);
  let instruction: string;
  try {
    instruction = await readFile(join(dir, "instruction.md"), "utf8");
  } catch (err) {
    throw new TaskLoadError(`${dir}: no instruction.md`, { cause: err });
  }
  if (instruction.trim() === "") throw new TaskLoadError(`${dir}: instruction.md is empty`);
  if (requireRunnable) {
    if (!(await isFile(join(dir, "tests", "test.sh")))) {
      throw new TaskLoadError(`${dir}: missing tests/test.sh (the verifier entry point)`);
    }
    if (!(await isFile(join(dir, "solution", "solve.sh")))) {
      throw new TaskLoadError(`${dir}: missing solution/solve.sh (the oracle)`);
    }
  }
  const files = await listFiles(dir);
  const id = config.name ? config.name.split("/").pop()! : basename(dir);
  return { id, dir, config, instruction, digest: await taskDigest(dir, files), files };
}

/**
 * Loads a dataset folder: either one task (it has task.toml) or a folder of task folders,
 * sorted by id. `only` keeps the named tasks and fails on unknown names.
 */
export async function loadTaskDir(
  dir: string,
  options: LoadTaskOptions & { only?: readonly string[] } = {},
): Promise<Task[]> {
  if (await isFile(join(dir, "task.toml"))) return [await loadTask(dir, options)];
  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && !e.name.startsWith("."))
      .map((e) => e.name);
  } catch (err) {
    throw new TaskLoadError(`${dir}: cannot read dataset folder`, { cause: err });
  }
  const tasks: Task[] = [];
  for (const name of entries.sort()) {
    if (!(await isFile(join(dir, name, "task.toml")))) continue;
    tasks.push(await loadTask(join(dir, name), options));
  }
  if (tasks.length === 0) throw new TaskLoadError(`${dir}: no task folders (with task.toml)`);
  if (options.only && options.only.length > 0) {
    const want = new Set(options.only);
    const known = new Set(tasks.map((t) => t.id));
    const unknown = [...want].filter((n) => !known.has(n));
    if (unknown.length > 0) {
      throw new TaskLoadError(`${dir}: unknown task(s) ${unknown.join(", ")}`);
    }
    return tasks.filter((t) => want.has(t.id));
  }
  return tasks;
}
