/**
 * A minimal client for OpenAI-compatible chat endpoints (the built-in server, sglang, vLLM, any
 * hosted judge), with the per-token top logprobs the KL measurement needs. Network failures,
 * 429 and 5xx are retried with exponential backoff; then {@link EndpointUnavailableError}.
 */
import type { ChatMessage } from "./contrast-set.ts";
import { EndpointResponseError, EndpointUnavailableError } from "./errors.ts";

/** Attempts after the first when not told otherwise: 4 retries ≈ 7.5 s of backoff at the defaults. */
export const DEFAULT_RETRIES = 4;
/** First backoff; doubles per retry. */
export const DEFAULT_BACKOFF_MS = 500;
/** Ceiling of one backoff wait. */
export const MAX_BACKOFF_MS = 30_000;
/** Per-request timeout: 100+ CPU-generated tokens of a small model fit well inside it. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** Largest response body read; a chat completion with logprobs for a few hundred tokens is far below. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Where and how to reach one model. */
export interface EndpointOptions {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:8000/v1`. */
  readonly baseUrl: string;
  readonly model: string;
  readonly apiKey?: string;
  readonly fetch?: typeof fetch;
  readonly retries?: number;
  readonly backoffMs?: number;
  readonly timeoutMs?: number;
  /** Waits between retries; replaceable so tests do not sleep. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** One chat request. Sampling is greedy unless `temperature` says otherwise. */
export interface ChatRequest {
  readonly messages: readonly ChatMessage[];
  readonly maxTokens: number;
  /** Asks the server not to stop before this many tokens (sglang/vLLM `min_tokens`). */
  readonly minTokens?: number;
  readonly temperature?: number;
  /** Top logprobs per generated token (0 = none). */
  readonly topLogprobs?: number;
}

/** A token and its log probability. */
export interface TokenLogprob {
  readonly token: string;
  readonly logprob: number;
}

/** One generated token with the top alternatives at its position. */
export interface GeneratedToken extends TokenLogprob {
  readonly top: readonly TokenLogprob[];
}

/** A chat completion. `tokens` is present when logprobs were asked for and returned. */
export interface ChatCompletion {
  readonly text: string;
  readonly finishReason: string;
  readonly tokens?: readonly GeneratedToken[];
}

/** A chat endpoint. */
export interface ChatEndpoint {
  readonly baseUrl: string;
  readonly model: string;
  complete(request: ChatRequest, signal?: AbortSignal): Promise<ChatCompletion>;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

class Retryable extends Error {}

function parseCompletion(body: unknown, url: string): ChatCompletion {
  const choice = (body as { choices?: unknown[] })?.choices?.[0] as
    | {
        message?: { content?: unknown };
        finish_reason?: unknown;
        logprobs?: { content?: unknown[] } | null;
      }
    | undefined;
  if (!choice || typeof choice.message?.content !== "string") {
    throw new EndpointResponseError(`${url} returned no choices[0].message.content`);
  }
  const out: { text: string; finishReason: string; tokens?: GeneratedToken[] } = {
    text: choice.message.content,
    finishReason: typeof choice.finish_reason === "string" ? choice.finish_reason : "unknown",
  };
  const content = choice.logprobs?.content;
  if (Array.isArray(content)) {
    out.tokens = content.map((t, i) => {
      const e = t as { token?: unknown; logprob?: unknown; top_logprobs?: unknown[] };
      if (typeof e.token !== "string" || typeof e.logprob !== "number") {
        throw new EndpointResponseError(`${url} logprobs.content[${i}] lacks token/logprob`);
      }
      const top = (e.top_logprobs ?? []).map((x) => {
        const a = x as { token?: unknown; logprob?: unknown };
        if (typeof a.token !== "string" || typeof a.logprob !== "number") {
          throw new EndpointResponseError(
            `${url} logprobs.content[${i}].top_logprobs has a malformed entry`,
          );
        }
        return { token: a.token, logprob: a.logprob };
      });
      return { token: e.token, logprob: e.logprob, top };
    });
  }
  return out;
}

/** Creates a chat endpoint client. */
export function createChatEndpoint(options: EndpointOptions): ChatEndpoint {
  const base = options.baseUrl.replace(/\/+$/, "");
  if (!/^https?:\/\//.test(base))
    throw new EndpointResponseError(`endpoint "${options.baseUrl}" is not an http(s) URL`);
  const url = `${base}/chat/completions`;
  const retries = options.retries ?? DEFAULT_RETRIES;
  const backoff = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? defaultSleep;

  async function once(request: ChatRequest, signal?: AbortSignal): Promise<ChatCompletion> {
    const body: Record<string, unknown> = {
      model: options.model,
      messages: request.messages,
      max_tokens: request.maxTokens,
      temperature: request.temperature ?? 0,
      stream: false,
    };
    if (request.minTokens !== undefined) body.min_tokens = request.minTokens;
    if (request.topLogprobs) {
      body.logprobs = true;
      body.top_logprobs = request.topLogprobs;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await doFetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (cause) {
      signal?.throwIfAborted();
      throw new Retryable(`request failed: ${(cause as Error)?.message ?? String(cause)}`, {
        cause,
      });
    }
    const text = await res.text();
    if (text.length > MAX_RESPONSE_BYTES)
      throw new EndpointResponseError(
        `${url} answered ${text.length} bytes, over the ${MAX_RESPONSE_BYTES} limit`,
      );
    if (res.status === 429 || res.status >= 500)
      throw new Retryable(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    if (!res.ok)
      throw new EndpointResponseError(`${url} answered HTTP ${res.status}: ${text.slice(0, 500)}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new EndpointResponseError(`${url} answered non-JSON: ${text.slice(0, 200)}`, { cause });
    }
    return parseCompletion(json, url);
  }

  return {
    baseUrl: base,
    model: options.model,
    async complete(request, signal) {
      let last: Error | undefined;
      for (let attempt = 0; attempt <= retries; attempt++) {
        signal?.throwIfAborted();
        if (attempt > 0)
          await sleep(Math.min(MAX_BACKOFF_MS, backoff * 2 ** (attempt - 1)), signal);
        try {
          return await once(request, signal);
        } catch (err) {
          if (!(err instanceof Retryable)) throw err;
          last = err;
        }
      }
      throw new EndpointUnavailableError(
        `${url} (model ${options.model}) failed ${retries + 1} attempts; last: ${last?.message}`,
        { cause: last },
      );
    },
  };
}
