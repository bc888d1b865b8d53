import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ChatMessage } from "./chat-template.ts";
import type { ContinuousBatch, SequenceToken } from "./continuous-batch.ts";
import type { Engine, GeneratedSequence } from "./engine.ts";
import { EngineRequestError } from "./errors.ts";
import type { SamplingOptions, TokenLogprob } from "./sampling.ts";
import type { LoadedTokenizer } from "./tokenizer.ts";

/** Request bodies above this are refused (413): chat histories are text, 4 MiB is generous. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Default max_tokens when a chat request gives none. */
export const DEFAULT_CHAT_MAX_TOKENS = 512;
/** Default max_tokens of /v1/completions (OpenAI's default). */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;
/** OpenAI allows at most 20 top_logprobs. */
export const MAX_TOP_LOGPROBS = 20;
/** Stop strings per request (OpenAI allows 4). */
export const MAX_STOP_STRINGS = 4;

/** A model the server serves under `id`. */
export interface ServedModel {
  readonly id: string;
  readonly engine: Engine;
  readonly tokenizer: LoadedTokenizer;
}

/** Options for {@link createOpenAIServer}. */
export interface OpenAIServerOptions {
  readonly models: readonly ServedModel[];
  /** Requests waiting for a batch beyond this get 429 (default 64). */
  readonly maxQueue?: number;
  /** Most sequences generated together in one batch (default 16). */
  readonly maxBatch?: number;
  /** prom-client registry for /metrics (default: a new one). */
  readonly registry?: Registry;
  /** Called with errors that are not the client's fault (default: ignored). */
  readonly onError?: (err: unknown) => void;
}

/** A running server. */
export interface OpenAIServer {
  readonly server: Server;
  /** Starts listening; resolves with the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Stops accepting, fails queued requests, waits for running batches, closes connections. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const bad = (message: string, param: string | null = null) =>
  new HttpError(400, message, "invalid_request_error", param);

interface Job {
  readonly ids: number[];
  readonly maxTokens: number;
  readonly sampling: SamplingOptions;
  readonly stop: readonly string[];
  readonly logprobs: number | undefined;
  readonly onToken: (t: SequenceToken) => void;
  /** `performance.now()` when the request was queued. */
  readonly queuedAt: number;
  readonly resolve: (s: GeneratedSequence) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Continuous batcher for one model: a request joins the running batch at the next decode step
 * (up to `maxBatch` sequences), is prefilled reusing the longest cached token prefix, and leaves
 * as soon as it ends. The previous design started a batch only when the last one had finished,
 * so a request arriving during a 96-token generation waited for all of it.
 */
class Batcher {
  private readonly queue: Job[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly batch: ContinuousBatch;
  /** Jobs in the batch, so a failed step can reject them. */
  private readonly inBatch = new Set<Job>();
  constructor(
    model: ServedModel,
    private readonly maxQueue: number,
    private readonly maxBatch: number,
    private readonly metrics: Metrics,
  ) {
    const tok = model.tokenizer;
    this.batch = model.engine.createBatch({
      stopTokenIds: new Set(tok.stopTokenIds),
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    });
  }

  submit(job: Omit<Job, "resolve" | "reject">): Promise<GeneratedSequence> {
    if (this.closed)
      return Promise.reject(new HttpError(503, "server is shutting down", "server_error"));
    if (this.queue.length >= this.maxQueue)
      return Promise.reject(
        new HttpError(
          429,
          `queue is full (${this.maxQueue} waiting requests)`,
          "rate_limit_error",
          null,
          "queue_full",
        ),
      );
    return new Promise((resolve, reject) => {
      this.queue.push({ ...job, resolve, reject });
      this.metrics.queue.set(this.queue.length);
      this.running ??= this.loop().finally(() => {
        this.running = undefined;
      });
    });
  }

  private admit(): void {
    let joined = 0;
    while (this.queue.length > 0 && this.batch.size < this.maxBatch) {
      const job = this.queue.shift() as Job;
      const queuedSec = (performance.now() - job.queuedAt) / 1000;
      try {
        this.batch.add({
          prompt: job.ids,
          maxTokens: job.maxTokens,
          sampling: job.sampling,
          stop: job.stop,
          logprobs: job.logprobs,
          onToken: (t) => {
            this.metrics.tokens.inc();
            job.onToken(t);
          },
          onFinish: (s) => {
            this.inBatch.delete(job);
            job.resolve(s);
          },
        });
      } catch (err) {
        job.reject(err);
        continue;
      }
      this.metrics.queueWait.observe(queuedSec);
      this.inBatch.add(job);
      joined++;
    }
    if (joined > 0) this.metrics.batch.observe(joined);
    this.metrics.queue.set(this.queue.length);
  }

  private async loop(): Promise<void> {
    // Yield once so requests arriving together join the first step together.
    await new Promise((r) => setImmediate(r));
    for (;;) {
      this.admit();
      if (this.batch.size === 0) return;
      this.metrics.stepBatch.observe(this.batch.size);
      const before = { ...this.batch.stats };
      try {
        await this.batch.step();
      } catch (err) {
        this.batch.clear();
        for (const j of this.inBatch) j.reject(err);
        this.inBatch.clear();
        continue;
      }
      const st = this.batch.stats;
      if (st.prefillRuns > before.prefillRuns) {
        this.metrics.prefillSeconds.inc((st.prefillMs - before.prefillMs) / 1000);
        this.metrics.cachedPromptTokens.inc(st.cachedTokens - before.cachedTokens);
      }
      if (st.decodeSteps > before.decodeSteps)
        this.metrics.decodeSeconds.inc((st.decodeMs - before.decodeMs) / 1000);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0))
      j.reject(new HttpError(503, "server is shutting down", "server_error"));
    await this.running;
  }
}

interface Metrics {
  readonly requests: Counter<"endpoint" | "status">;
  readonly duration: Histogram<"endpoint">;
  readonly tokens: Counter;
  readonly promptTokens: Counter;
  readonly queue: Gauge;
  readonly batch: Histogram;
  readonly stepBatch: Histogram;
  readonly queueWait: Histogram;
  readonly prefillSeconds: Counter;
  readonly decodeSeconds: Counter;
  readonly cachedPromptTokens: Counter;
}

function createMetricsSet(registry: Registry): Metrics {
  return {
    requests: new Counter({
      name: "abl_engine_http_requests_total",
      help: "HTTP requests by endpoint and status code",
      labelNames: ["endpoint", "status"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "abl_engine_http_request_duration_seconds",
      help: "Time from request to the last byte of the response",
      labelNames: ["endpoint"],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    tokens: new Counter({
      name: "abl_engine_generated_tokens_total",
      help: "Tokens generated",
      registers: [registry],
    }),
    promptTokens: new Counter({
      name: "abl_engine_prompt_tokens_total",
      help: "Prompt tokens processed",
      registers: [registry],
    }),
    queue: new Gauge({
      name: "abl_engine_queue_requests",
      help: "Requests waiting for a batch",
      registers: [registry],
    }),
    batch: new Histogram({
      name: "abl_engine_batch_sequences",
      help: "Sequences that joined the running batch together at one step",
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    stepBatch: new Histogram({
      name: "abl_engine_step_sequences",
      help: "Sequences in the batch at each generation step",
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: "abl_engine_queue_wait_seconds",
      help: "Time a request waited before joining the batch",
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers: [registry],
    }),
    prefillSeconds: new Counter({
      name: "abl_engine_prefill_seconds_total",
      help: "Time spent prefilling prompts",
      registers: [registry],
    }),
    decodeSeconds: new Counter({
      name: "abl_engine_decode_seconds_total",
      help: "Time spent in decode steps",
      registers: [registry],
    }),
    cachedPromptTokens: new Counter({
      name: "abl_engine_prompt_tokens_cached_total",
      help: "Prompt tokens whose KV came from the prefix cache instead of a prefill",
      registers: [registry],
    }),
  };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(
        413,
        `request body exceeds ${MAX_BODY_BYTES} bytes`,
        "invalid_request_error",
      );
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw bad("request body is not valid JSON");
  }
}

type Body = Record<string, unknown>;

function optNumber(
  b: Body,
  key: string,
  min: number,
  max: number,
  integer = false,
): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (
    typeof v !== "number" ||
    !Number.isFinite(v) ||
    v < min ||
    v > max ||
    (integer && !Number.isInteger(v))
  )
    throw bad(
      `${key} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}], got ${JSON.stringify(v)}`,
      key,
    );
  return v;
}

function parseStop(b: Body): string[] {
  const v = b.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s.length === 0))
    throw bad("stop must be a non-empty string or an array of them", "stop");
  if (list.length > MAX_STOP_STRINGS)
    throw bad(`stop has ${list.length} strings, at most ${MAX_STOP_STRINGS}`, "stop");
  return list as string[];
}

function parseSampling(b: Body): SamplingOptions {
  const temperature = optNumber(b, "temperature", 0, 2);
  const topP = optNumber(b, "top_p", Number.MIN_VALUE, 1);
  const topK = optNumber(b, "top_k", 0, 1e6, true);
  const seed = optNumber(b, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true);
  return {
    // OpenAI's default temperature is 1.
    temperature: temperature ?? 1,
    ...(topP !== undefined ? { topP } : {}),
    ...(topK !== undefined ? { topK } : {}),
    ...(seed !== undefined ? { seed } : {}),
  };
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0)
    throw bad("messages must be a non-empty array", "messages");
  return v.map((m, i) => {
    if (typeof m !== "object" || m === null)
      throw bad(`messages[${i}] must be an object`, "messages");
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (
      role !== "system" &&
      role !== "user" &&
      role !== "assistant" &&
      role !== "tool" &&
      role !== "developer"
    )
      throw bad(
        `messages[${i}].role ${JSON.stringify(role)} is not one of system, user, assistant, tool`,
        "messages",
      );
    let text: string;
    if (typeof content === "string") text = content;
    else if (Array.isArray(content))
      text = content
        .map((p, j) => {
          if (typeof p !== "object" || p === null || (p as { type?: unknown }).type !== "text")
            throw bad(`messages[${i}].content[${j}] must be a text part`, "messages");
          const t = (p as { text?: unknown }).text;
          if (typeof t !== "string")
            throw bad(`messages[${i}].content[${j}].text must be a string`, "messages");
          return t;
        })
        .join("");
    else if (content === null && role === "assistant") text = "";
    else throw bad(`messages[${i}].content must be a string or an array of text parts`, "messages");
    return { role: role === "developer" ? "system" : role, content: text };
  });
}

/** Text safe to stream: not ending in a partial UTF-8 character nor in a possible stop-string prefix. */
function streamable(text: string, stop: readonly string[]): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  for (const s of stop)
    for (let k = Math.min(s.length - 1, end); k > 0; k--)
      if (text.endsWith(s.slice(0, k), end)) {
        end -= k;
        break;
      }
  return Math.max(0, end);
}

/**
 * An OpenAI-compatible HTTP server over built-in engines: /v1/models, /v1/chat/completions and
 * /v1/completions (streaming SSE or not; max_tokens, temperature, top_p, top_k, stop, seed,
 * logprobs/top_logprobs, usage), /health and /metrics. Concurrent requests are batched per model;
 * the wait queue is bounded (429 when full). Malformed requests get 400, unknown models 404.
 */
export function createOpenAIServer(opts: OpenAIServerOptions): OpenAIServer {
  if (opts.models.length === 0)
    throw new EngineRequestError("createOpenAIServer needs at least one model");
  const maxQueue = opts.maxQueue ?? 64;
  const maxBatch = opts.maxBatch ?? 16;
  if (!Number.isInteger(maxQueue) || maxQueue < 1)
    throw new EngineRequestError(`maxQueue must be >= 1, got ${maxQueue}`);
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new EngineRequestError(`maxBatch must be >= 1, got ${maxBatch}`);
  const registry = opts.registry ?? new Registry();
  const metrics = createMetricsSet(registry);
  const models = new Map(
    opts.models.map((m) => [
      m.id,
      { model: m, batcher: new Batcher(m, maxQueue, maxBatch, metrics) },
    ]),
  );
  const created = Math.floor(Date.now() / 1000);
  const onError = opts.onError ?? (() => {});

  const lookup = (b: Body) => {
    if (typeof b.model !== "string") throw bad("model must be a string", "model");
    const m = models.get(b.model);
    if (!m)
      throw new HttpError(
        404,
        `model "${b.model}" does not exist`,
        "invalid_request_error",
        "model",
        "model_not_found",
      );
    return m;
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    const data = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(data),
    });
    res.end(data);
  };

  async function completion(
    req: IncomingMessage,
    res: ServerResponse,
    chat: boolean,
  ): Promise<void> {
    const raw = await readBody(req);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      throw bad("request body must be a JSON object");
    const b = raw as Body;
    const { model, batcher } = lookup(b);
    const tok = model.tokenizer;
    let ids: number[];
    if (chat) {
      const messages = parseMessages(b.messages);
      try {
        ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true }).ids;
      } catch (err) {
        throw bad(`chat template: ${(err as Error).message}`, "messages");
      }
    } else {
      if (typeof b.prompt !== "string" || b.prompt.length === 0)
        throw bad("prompt must be a non-empty string", "prompt");
      ids = tok.encode(b.prompt);
    }
    if (b.n !== undefined && b.n !== null && b.n !== 1) throw bad("only n = 1 is supported", "n");
    const context = model.engine.maxPositions;
    if (ids.length >= context)
      throw bad(
        `prompt has ${ids.length} tokens; the context is ${context} tokens`,
        chat ? "messages" : "prompt",
      );
    const maxKey = b.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
    const requested = optNumber(b, maxKey, 1, 1e9, true);
    const maxTokens = Math.min(
      requested ?? (chat ? DEFAULT_CHAT_MAX_TOKENS : DEFAULT_COMPLETION_MAX_TOKENS),
      context - ids.length,
    );
    const sampling = parseSampling(b);
    const stop = parseStop(b);
    let logprobs: number | undefined;
    if (chat) {
      if (b.logprobs !== undefined && b.logprobs !== null && typeof b.logprobs !== "boolean")
        throw bad("logprobs must be a boolean", "logprobs");
      const top = optNumber(b, "top_logprobs", 0, MAX_TOP_LOGPROBS, true);
      if (top !== undefined && b.logprobs !== true)
        throw bad("top_logprobs needs logprobs: true", "top_logprobs");
      if (b.logprobs === true) logprobs = top ?? 0;
    } else {
      logprobs = optNumber(b, "logprobs", 0, 5, true);
    }
    const stream = b.stream === true;
    const includeUsage =
      stream &&
      typeof b.stream_options === "object" &&
      b.stream_options !== null &&
      (b.stream_options as Body).include_usage === true;
    metrics.promptTokens.inc(ids.length);

    const id = `${chat ? "chatcmpl" : "cmpl"}-${crypto.randomUUID()}`;
    const object = chat
      ? stream
        ? "chat.completion.chunk"
        : "chat.completion"
      : "text_completion";
    const decode = (t: readonly number[]) => tok.decode(t, { skipSpecialTokens: true });
    const tokenText = (t: number) => tok.decode([t], { skipSpecialTokens: false });
    const chatLogprob = (t: SequenceToken) => {
      const entry = (token: number, logprob: number) => {
        const s = tokenText(token);
        return { token: s, logprob, bytes: Array.from(Buffer.from(s, "utf8")) };
      };
      return {
        ...entry(t.token, t.logprob?.logprob ?? 0),
        top_logprobs: (t.logprob?.top ?? [])
          .slice(0, logprobs ?? 0)
          .map((a: TokenLogprob) => entry(a.token, a.logprob)),
      };
    };

    const generated: SequenceToken[] = [];
    let sent = 0;
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    const sse = (obj: unknown) => {
      if (!closed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
    };
    const chunk = (text: string, toks: readonly SequenceToken[], finish: string | null) => {
      const base = { id, object, created: Math.floor(Date.now() / 1000), model: model.id };
      if (chat) {
        const lp =
          logprobs !== undefined
            ? { logprobs: { content: toks.map(chatLogprob) } }
            : { logprobs: null };
        sse({
          ...base,
          choices: [
            { index: 0, delta: text ? { content: text } : {}, ...lp, finish_reason: finish },
          ],
        });
      } else sse({ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] });
    };
    let pendingTokens: SequenceToken[] = [];
    if (stream) {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      if (chat)
        sse({
          id,
          object,
          created: Math.floor(Date.now() / 1000),
          model: model.id,
          choices: [
            {
              index: 0,
              delta: { role: "assistant", content: "" },
              logprobs: null,
              finish_reason: null,
            },
          ],
        });
    }
    const seq = await batcher.submit({
      queuedAt: performance.now(),
      ids,
      maxTokens,
      sampling,
      stop,
      logprobs,
      onToken: (t) => {
        generated.push(t);
        if (!stream) return;
        pendingTokens.push(t);
        const text = decode(generated.map((g) => g.token));
        const end = streamable(text, stop);
        if (end > sent) {
          chunk(text.slice(sent, end), pendingTokens, null);
          sent = end;
          pendingTokens = [];
        }
      },
    });
    const text = seq.text ?? decode(seq.tokens);
    const usage = {
      prompt_tokens: ids.length,
      completion_tokens: seq.tokens.length,
      total_tokens: ids.length + seq.tokens.length,
    };
    if (stream) {
      if (text.length > sent || pendingTokens.length > 0)
        chunk(text.slice(sent), pendingTokens, null);
      chunk("", [], seq.finishReason);
      if (includeUsage)
        sse({
          id,
          object,
          created: Math.floor(Date.now() / 1000),
          model: model.id,
          choices: [],
          usage,
        });
      if (!closed) res.end("data: [DONE]\n\n");
      return;
    }
    let lp: unknown = null;
    if (logprobs !== undefined) {
      if (chat) lp = { content: generated.map(chatLogprob) };
      else {
        let offset = 0;
        const textOffset: number[] = [];
        const tokens = generated.map((g) => {
          const s = tokenText(g.token);
          textOffset.push(offset);
          offset += s.length;
          return s;
        });
        lp = {
          tokens,
          token_logprobs: generated.map((g) => g.logprob?.logprob ?? 0),
          top_logprobs: generated.map((g) =>
            Object.fromEntries(
              (g.logprob?.top ?? []).slice(0, logprobs).map((a) => [tokenText(a.token), a.logprob]),
            ),
          ),
          text_offset: textOffset,
        };
      }
    }
    const choice = chat
      ? {
          index: 0,
          message: { role: "assistant", content: text },
          logprobs: lp,
          finish_reason: seq.finishReason,
        }
      : { index: 0, text, logprobs: lp, finish_reason: seq.finishReason };
    sendJson(res, 200, {
      id,
      object,
      created: Math.floor(Date.now() / 1000),
      model: model.id,
      choices: [choice],
      usage,
    });
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    const url = (req.url ?? "/").split("?")[0] as string;
    const endpoint = [
      "/health",
      "/metrics",
      "/v1/models",
      "/v1/chat/completions",
      "/v1/completions",
    ].includes(url)
      ? url
      : "other";
    res.on("finish", () => {
      metrics.requests.inc({ endpoint, status: String(res.statusCode) });
      metrics.duration.observe({ endpoint }, (performance.now() - started) / 1000);
    });
    const handle = async () => {
      if (req.method === "GET" && url === "/health") return sendJson(res, 200, { status: "ok" });
      if (req.method === "GET" && url === "/metrics") {
        const text = await registry.metrics();
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(text);
        return;
      }
      if (req.method === "GET" && url === "/v1/models")
        return sendJson(res, 200, {
          object: "list",
          data: [...models.keys()].map((id) => ({
            id,
            object: "model",
            created,
            owned_by: "abliterate",
          })),
        });
      if (url === "/v1/chat/completions" || url === "/v1/completions") {
        if (req.method !== "POST")
          throw new HttpError(405, `${url} takes POST`, "invalid_request_error");
        return completion(req, res, url === "/v1/chat/completions");
      }
      throw new HttpError(
        404,
        `no route ${req.method} ${url}`,
        "invalid_request_error",
        null,
        "not_found",
      );
    };
    handle().catch((err: unknown) => {
      const e =
        err instanceof HttpError
          ? err
          : err instanceof EngineRequestError
            ? bad(err.message)
            : new HttpError(500, "internal error", "server_error");
      if (!(err instanceof HttpError) && !(err instanceof EngineRequestError)) onError(err);
      if (res.headersSent) {
        // Mid-stream: report in the stream, then end it.
        if (!res.writableEnded)
          res.end(`data: ${JSON.stringify({ error: { message: e.message, type: e.type } })}\n\n`);
        return;
      }
      sendJson(res, e.status, {
        error: { message: e.message, type: e.type, param: e.param, code: e.code },
      });
    });
  });

  return {
    server,
    listen: (port, host = "127.0.0.1") =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: async () => {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...models.values()].map((m) => m.batcher.close()));
      server.closeAllConnections();
      await closing;
    },
  };
}
