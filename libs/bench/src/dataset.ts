/**
 * Datasets: a local folder, or a git URL pinned to a commit (`<url>#<40-hex commit>[:<subdir>]`),
 * fetched once into a cache folder keyed by URL and commit (reference/terminal-bench.md §3: TB2.0
 * is pinned at 69671fb…). The checkout is verified to be exactly that commit.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { TaskLoadError } from "./errors.ts";
import { type LoadTaskOptions, loadTaskDir, type Task } from "./task.ts";

const run = promisify(execFile);

/** Longest a git fetch of a dataset may take (TB2 is a few tens of MB). */
export const GIT_FETCH_TIMEOUT_MS = 10 * 60 * 1000;

/** A dataset reference split into its parts. */
export interface DatasetRef {
  readonly kind: "local" | "git";
  /** Folder for local, URL for git. */
  readonly location: string;
  /** Full commit sha (git only). */
  readonly commit: string | null;
  /** Folder inside the repository holding the tasks ("" for the root). */
  readonly subdir: string;
}

/** Parses `--dataset` text: a folder, or `<git url>#<commit>[:<subdir>]`. */
export function parseDatasetRef(text: string): DatasetRef {
  const hash = text.lastIndexOf("#");
  const looksGit = /^(https?|ssh|git|file):\/\//.test(text) || /^[\w.-]+@[\w.-]+:/.test(text);
  if (!looksGit) {
    if (hash >= 0) throw new TaskLoadError(`dataset "${text}": a #commit needs a git URL`);
    return { kind: "local", location: text, commit: null, subdir: "" };
  }
  if (hash < 0) {
    throw new TaskLoadError(`dataset "${text}": a git URL must be pinned, as <url>#<commit>`);
  }
  const url = text.slice(0, hash);
  const rest = text.slice(hash + 1);
  const colon = rest.indexOf(":");
  const commit = colon < 0 ? rest : rest.slice(0, colon);
  const subdir = colon < 0 ? "" : rest.slice(colon + 1).replace(/^\/+|\/+$/g, "");
  if (!/^[0-9a-f]{40}$/.test(commit)) {
    throw new TaskLoadError(
      `dataset "${text}": commit "${commit}" must be a full 40-hex sha (got ${commit.length} chars)`,
    );
  }
  if (subdir.split("/").includes("..")) {
    throw new TaskLoadError(`dataset "${text}": subdir must stay inside the repository`);
  }
  return { kind: "git", location: url, commit, subdir };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function git(args: string[], cwd: string, signal?: AbortSignal): Promise<string> {
  try {
    const { stdout } = await run("git", args, {
      cwd,
      timeout: GIT_FETCH_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
      ...(signal ? { signal } : {}),
    });
    return stdout.trim();
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new TaskLoadError(`git ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, {
      cause: err,
    });
  }
}

/**
 * Returns a local folder holding the dataset: the folder itself, or a checkout of the pinned
 * commit under `cacheDir` (created once; an interrupted fetch leaves only a temp folder).
 */
export async function materializeDataset(
  ref: DatasetRef,
  cacheDir: string,
  signal?: AbortSignal,
): Promise<string> {
  if (ref.kind === "local") return ref.location;
  const key = createHash("sha256").update(ref.location).digest("hex").slice(0, 16);
  const dest = join(cacheDir, "datasets", key, ref.commit!);
  if (!(await exists(dest))) {
    const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
    await mkdir(tmp, { recursive: true });
    try {
      await git(["init", "-q"], tmp, signal);
      await git(["fetch", "-q", "--depth", "1", ref.location, ref.commit!], tmp, signal);
      await git(["-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"], tmp, signal);
      const head = await git(["rev-parse", "HEAD"], tmp, signal);
      if (head !== ref.commit) {
        throw new TaskLoadError(`${ref.location}: checked out ${head}, expected ${ref.commit}`);
      }
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  return ref.subdir ? join(dest, ref.subdir) : dest;
}

/** Parses, fetches (if git) and loads a dataset's tasks. */
export async function loadDataset(
  text: string,
  options: LoadTaskOptions & { cacheDir: string; only?: readonly string[]; signal?: AbortSignal },
): Promise<{ ref: DatasetRef; dir: string; tasks: Task[] }> {
  const ref = parseDatasetRef(text);
  const dir = await materializeDataset(ref, options.cacheDir, options.signal);
  const tasks = await loadTaskDir(dir, options);
  return { ref, dir, tasks };
}
