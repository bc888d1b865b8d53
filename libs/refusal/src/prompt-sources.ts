/**
 * Reading user prompt sources: JSONL, CSV, TXT and Parquet, from a local path, an http(s) URL or a
 * Hugging Face dataset repository (resolved through the configured HF endpoint, so a mirror or a
 * local test server works the same as huggingface.co).
 */
import { readFile, stat } from "node:fs/promises";
import { extname, isAbsolute, resolve } from "node:path";
import { parquetReadObjects } from "hyparquet";
import { ContrastSetError } from "./errors.ts";

/** A source file is read whole; 256 MiB is far above any prompt list and stops a wrong URL from filling memory. */
export const MAX_SOURCE_BYTES = 256 * 1024 * 1024;
/** Longest accepted prompt in characters; anything longer is almost surely a wrong column. */
export const MAX_PROMPT_CHARS = 32_768;
/** Columns tried, in order, when a source names none. */
export const DEFAULT_PROMPT_COLUMNS = [
  "prompt",
  "instruction",
  "goal",
  "question",
  "text",
] as const;
/** Default Hugging Face endpoint when the caller passes none. */
export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

/** File formats a source can have. */
export type SourceFormat = "jsonl" | "csv" | "txt" | "parquet";

/** Where a source's bytes come from. */
export type SourceLocation =
  | { readonly type: "path"; readonly path: string }
  | { readonly type: "url"; readonly url: string }
  | {
      readonly type: "hf";
      readonly repo: string;
      readonly file: string;
      readonly revision: string;
    };

/** How to read one source. */
export interface SourceReadOptions {
  readonly format?: SourceFormat;
  /** Column (CSV, Parquet) or field (JSONL) holding the prompt. */
  readonly column?: string;
}

/** Clients and settings for reading sources. */
export interface SourceContext {
  readonly fetch?: typeof fetch;
  /** Base URL of the Hugging Face hub (`HF_ENDPOINT`). */
  readonly hfEndpoint?: string;
  /** Bearer token for gated Hugging Face datasets. */
  readonly hfToken?: string;
  /** Folder relative paths are resolved against (the spec's folder). */
  readonly baseDir?: string;
  readonly signal?: AbortSignal;
}

/** The URL a Hugging Face dataset file is downloaded from. */
export function hfDatasetUrl(
  endpoint: string,
  repo: string,
  file: string,
  revision: string,
): string {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo))
    throw new ContrastSetError(`Hugging Face dataset "${repo}" is not of the form owner/name`);
  const base = endpoint.replace(/\/+$/, "");
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${base}/datasets/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/** A readable name for a location, used in prompt ids and errors. */
export function describeLocation(loc: SourceLocation): string {
  if (loc.type === "path") return loc.path;
  if (loc.type === "url") return loc.url;
  return `hf:${loc.repo}@${loc.revision}/${loc.file}`;
}

async function readBytes(loc: SourceLocation, ctx: SourceContext): Promise<Uint8Array> {
  if (loc.type === "path") {
    const p = isAbsolute(loc.path) ? loc.path : resolve(ctx.baseDir ?? ".", loc.path);
    let size: number;
    try {
      size = (await stat(p)).size;
    } catch (cause) {
      throw new ContrastSetError(`prompt source ${p} cannot be read`, { cause });
    }
    if (size > MAX_SOURCE_BYTES)
      throw new ContrastSetError(
        `prompt source ${p} is ${size} bytes, over the ${MAX_SOURCE_BYTES}-byte limit`,
      );
    return new Uint8Array(await readFile(p, ctx.signal ? { signal: ctx.signal } : {}));
  }
  const url =
    loc.type === "url"
      ? loc.url
      : hfDatasetUrl(ctx.hfEndpoint ?? DEFAULT_HF_ENDPOINT, loc.repo, loc.file, loc.revision);
  const headers: Record<string, string> = {};
  if (loc.type === "hf" && ctx.hfToken) headers.authorization = `Bearer ${ctx.hfToken}`;
  let res: Response;
  try {
    res = await (ctx.fetch ?? fetch)(url, {
      headers,
      redirect: "follow",
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
  } catch (cause) {
    throw new ContrastSetError(`prompt source ${url} could not be fetched`, { cause });
  }
  if (!res.ok) throw new ContrastSetError(`prompt source ${url} answered HTTP ${res.status}`);
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_SOURCE_BYTES)
    throw new ContrastSetError(
      `prompt source ${url} is ${declared} bytes, over the ${MAX_SOURCE_BYTES}-byte limit`,
    );
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if (total > MAX_SOURCE_BYTES)
        throw new ContrastSetError(
          `prompt source ${url} exceeds the ${MAX_SOURCE_BYTES}-byte limit`,
        );
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks);
}

function guessFormat(loc: SourceLocation): SourceFormat {
  const name =
    loc.type === "path" ? loc.path : loc.type === "hf" ? loc.file : new URL(loc.url).pathname;
  const ext = extname(name).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  if (ext === ".csv") return "csv";
  if (ext === ".txt") return "txt";
  if (ext === ".parquet") return "parquet";
  throw new ContrastSetError(
    `cannot tell the format of ${describeLocation(loc)} from "${ext || "(no extension)"}"; set format: jsonl|csv|txt|parquet`,
  );
}

function pickColumn(
  available: readonly string[],
  wanted: string | undefined,
  where: string,
): string {
  if (wanted !== undefined) {
    if (!available.includes(wanted))
      throw new ContrastSetError(
        `${where} has no column "${wanted}" (columns: ${available.join(", ")})`,
      );
    return wanted;
  }
  const found = DEFAULT_PROMPT_COLUMNS.find((c) => available.includes(c));
  if (!found) {
    throw new ContrastSetError(
      `${where} has none of the columns ${DEFAULT_PROMPT_COLUMNS.join(", ")} (columns: ${available.join(", ")}); set column`,
    );
  }
  return found;
}

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF, newlines inside quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
  }
  if (quoted) throw new ContrastSetError("CSV ends inside a quoted field");
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

function fromJsonl(text: string, column: string | undefined, where: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (cause) {
      throw new ContrastSetError(`${where} line ${i + 1} is not JSON`, { cause });
    }
    if (typeof v === "string" && column === undefined) {
      out.push(v);
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v))
      throw new ContrastSetError(`${where} line ${i + 1} is not a JSON object`);
    const key = pickColumn(Object.keys(v), column, `${where} line ${i + 1}`);
    const s = (v as Record<string, unknown>)[key];
    if (typeof s !== "string")
      throw new ContrastSetError(`${where} line ${i + 1}: "${key}" is ${typeof s}, not a string`);
    out.push(s);
  }
  return out;
}

function fromCsv(text: string, column: string | undefined, where: string): string[] {
  const rows = parseCsv(text);
  const header = rows[0];
  if (!header) return [];
  const key = pickColumn(header, column, where);
  const idx = header.indexOf(key);
  return rows.slice(1).map((r, i) => {
    const v = r[idx];
    if (v === undefined)
      throw new ContrastSetError(
        `${where} row ${i + 2} has ${r.length} fields, needs column ${idx + 1} ("${key}")`,
      );
    return v;
  });
}

async function fromParquet(
  bytes: Uint8Array,
  column: string | undefined,
  where: string,
): Promise<string[]> {
  const buf = bytes.buffer.slice(
    bytes.byteOffset,
    bytes.byteOffset + bytes.byteLength,
  ) as ArrayBuffer;
  let rows: Record<string, unknown>[];
  try {
    const probe = await parquetReadObjects({ file: buf, rowStart: 0, rowEnd: 1 });
    const key = pickColumn(Object.keys(probe[0] ?? {}), column, where);
    rows = await parquetReadObjects({ file: buf, columns: [key] });
    return rows.map((r, i) => {
      const v = r[key];
      if (typeof v !== "string")
        throw new ContrastSetError(`${where} row ${i}: "${key}" is ${typeof v}, not a string`);
      return v;
    });
  } catch (cause) {
    if (cause instanceof ContrastSetError) throw cause;
    throw new ContrastSetError(`${where} is not a readable Parquet file`, { cause });
  }
}

/** Reads the prompt texts of one source, trimmed, empty ones dropped, too long ones rejected. */
export async function readPromptSource(
  loc: SourceLocation,
  options: SourceReadOptions,
  ctx: SourceContext = {},
): Promise<string[]> {
  const where = describeLocation(loc);
  const format = options.format ?? guessFormat(loc);
  const bytes = await readBytes(loc, ctx);
  const text = () => new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  let prompts: string[];
  if (format === "parquet") prompts = await fromParquet(bytes, options.column, where);
  else if (format === "jsonl") prompts = fromJsonl(text(), options.column, where);
  else if (format === "csv") prompts = fromCsv(text(), options.column, where);
  else prompts = text().split(/\r?\n/);
  const out = prompts.map((p) => p.trim()).filter((p) => p !== "");
  for (const [i, p] of out.entries()) {
    if (p.length > MAX_PROMPT_CHARS)
      throw new ContrastSetError(
        `${where} prompt ${i} has ${p.length} characters, over the ${MAX_PROMPT_CHARS} limit`,
      );
  }
  return out;
}
