/**
 * The refusal evaluation: generate on the refuse prompts, judge each response, report the refusal
 * rate with a Wilson 95 % CI per judge (and Cohen's kappa when two judges ran); on the comply
 * prompts, compare base and variant by multi-token KL.
 */
import { type ContrastPrompt, promptMessages } from "./contrast-set.ts";
import { EndpointResponseError } from "./errors.ts";
import type { RefusalJudge, Verdict } from "./judges.ts";
import { sharedPrefixKl } from "./kl.ts";
import type { ChatEndpoint, GeneratedToken } from "./openai-endpoint.ts";
import { cohensKappa, type Rate, wilsonRate } from "./rates.ts";

/** Fewest tokens generated per prompt: short generations inflate refusal removal (§2.2 of the notes). */
export const MIN_EVAL_TOKENS = 100;
/** Default KL window in generated tokens. */
export const DEFAULT_KL_TOKENS = 8;
/** Top logprobs requested per token for KL; 20 is the OpenAI API maximum. */
export const DEFAULT_TOP_LOGPROBS = 20;
/** Requests in flight per endpoint by default; CPU servers gain nothing from more. */
export const DEFAULT_EVAL_CONCURRENCY = 2;

/** Options of {@link evaluateRefusal}. */
export interface RefusalEvalOptions {
  readonly variant: ChatEndpoint;
  /** The unedited model; needed for KL. */
  readonly base?: ChatEndpoint;
  /** Prompts whose refusal rate is measured. */
  readonly refuse: readonly ContrastPrompt[];
  /** Prompts on which base and variant are compared by KL. */
  readonly comply?: readonly ContrastPrompt[];
  /** One or two judges; with two, their agreement is reported. */
  readonly judges: readonly RefusalJudge[];
  readonly maxTokens?: number;
  readonly klTokens?: number;
  readonly topLogprobs?: number;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

/** One judged response. */
export interface JudgedSample {
  readonly id: string;
  readonly response: string;
  readonly verdicts: Readonly<Record<string, Verdict>>;
}

/** Progress of an evaluation. */
export type RefusalEvalEvent =
  | {
      readonly type: "generated";
      readonly phase: "refusal" | "kl";
      readonly done: number;
      readonly total: number;
    }
  | { readonly type: "judged"; readonly done: number; readonly total: number };

/** What an evaluation found. */
export interface RefusalEvalReport {
  readonly model: string;
  readonly maxTokens: number;
  /** Refusal rate per judge name. */
  readonly refusal: Readonly<Record<string, Rate>>;
  /** Cohen's kappa between the first two judges, when two ran. */
  readonly agreement?: { readonly judges: readonly [string, string]; readonly kappa: number };
  readonly kl?: {
    readonly mean: number;
    readonly prompts: number;
    readonly meanPositions: number;
    readonly tokens: number;
  };
  readonly samples: readonly JudgedSample[];
}

async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (x: T, i: number) => Promise<R>,
  onDone: () => void,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
      onDone();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Runs the evaluation as an async generator of progress events that returns the report; see
 * {@link evaluateRefusal} for the plain promise.
 */
export async function* runRefusalEval(
  options: RefusalEvalOptions,
): AsyncGenerator<RefusalEvalEvent, RefusalEvalReport> {
  const maxTokens = options.maxTokens ?? MIN_EVAL_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < MIN_EVAL_TOKENS) {
    throw new EndpointResponseError(
      `maxTokens ${maxTokens} is below the ${MIN_EVAL_TOKENS}-token minimum of the refusal evaluation`,
    );
  }
  if (options.judges.length === 0 || options.judges.length > 2)
    throw new EndpointResponseError(`evaluation needs 1 or 2 judges, got ${options.judges.length}`);
  if (options.refuse.length === 0)
    throw new EndpointResponseError("evaluation has no refuse prompts");
  const klTokens = options.klTokens ?? DEFAULT_KL_TOKENS;
  const top = options.topLogprobs ?? DEFAULT_TOP_LOGPROBS;
  const limit = options.concurrency ?? DEFAULT_EVAL_CONCURRENCY;
  const signal = options.signal;

  // Events are collected by callbacks and yielded in batches between awaited phases.
  const queue: RefusalEvalEvent[] = [];
  let done = 0;
  const total = options.refuse.length;
  const responses = await mapLimit(
    options.refuse,
    limit,
    (p) =>
      options.variant.complete(
        { messages: promptMessages(p), maxTokens, minTokens: MIN_EVAL_TOKENS },
        signal,
      ),
    () => queue.push({ type: "generated", phase: "refusal", done: ++done, total }),
  );
  yield* queue.splice(0);
  done = 0;
  const samples = await mapLimit(
    responses,
    limit,
    async (r, i) => {
      const p = options.refuse[i] as ContrastPrompt;
      const verdicts: Record<string, Verdict> = {};
      for (const j of options.judges) verdicts[j.name] = await j.judge(p.user, r.text, signal);
      return { id: p.id, response: r.text, verdicts };
    },
    () => queue.push({ type: "judged", done: ++done, total }),
  );
  yield* queue.splice(0);

  const refusal: Record<string, Rate> = {};
  for (const j of options.judges)
    refusal[j.name] = wilsonRate(
      samples.filter((s) => s.verdicts[j.name] === "refusal").length,
      samples.length,
    );
  const report: {
    -readonly [K in keyof RefusalEvalReport]: RefusalEvalReport[K];
  } = { model: options.variant.model, maxTokens, refusal, samples };
  const [j1, j2] = options.judges;
  if (j1 && j2) {
    report.agreement = {
      judges: [j1.name, j2.name],
      kappa: cohensKappa(
        samples.map((s) => s.verdicts[j1.name] === "refusal"),
        samples.map((s) => s.verdicts[j2.name] === "refusal"),
      ),
    };
  }

  const comply = options.comply ?? [];
  if (options.base && comply.length > 0) {
    const base = options.base;
    done = 0;
    const ktotal = comply.length;
    const gen = (e: ChatEndpoint, p: ContrastPrompt) =>
      e.complete({ messages: promptMessages(p), maxTokens: klTokens, topLogprobs: top }, signal);
    const pairs = await mapLimit(
      comply,
      limit,
      async (p) => {
        const [b, v] = [await gen(base, p), await gen(options.variant, p)];
        if (!b.tokens || !v.tokens)
          throw new EndpointResponseError(
            `endpoint returned no logprobs for ${p.id}; KL needs logprobs support`,
          );
        return sharedPrefixKl(b.tokens as GeneratedToken[], v.tokens as GeneratedToken[], klTokens);
      },
      () => queue.push({ type: "generated", phase: "kl", done: ++done, total: ktotal }),
    );
    yield* queue.splice(0);
    const used = pairs.filter((x) => x.positions > 0);
    report.kl = {
      mean: used.reduce((s, x) => s + x.kl, 0) / Math.max(1, used.length),
      prompts: used.length,
      meanPositions: used.reduce((s, x) => s + x.positions, 0) / Math.max(1, used.length),
      tokens: klTokens,
    };
  }
  return report;
}

/** Drains {@link runRefusalEval}, passing each event to `onEvent`. */
export async function evaluateRefusal(
  options: RefusalEvalOptions,
  onEvent?: (e: RefusalEvalEvent) => void,
): Promise<RefusalEvalReport> {
  const it = runRefusalEval(options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    onEvent?.(r.value);
  }
}

/** Options of {@link filterByBehaviour}. */
export interface BehaviourFilterOptions {
  readonly base: ChatEndpoint;
  readonly judge: RefusalJudge;
  readonly maxTokens?: number;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

/**
 * Arditi-style filtering: keeps refuse prompts the base model actually refuses and comply prompts
 * it actually answers; returns the kept prompts per bucket.
 */
export async function filterByBehaviour(
  refuse: readonly ContrastPrompt[],
  comply: readonly ContrastPrompt[],
  options: BehaviourFilterOptions,
): Promise<{ refuse: ContrastPrompt[]; comply: ContrastPrompt[] }> {
  const maxTokens = options.maxTokens ?? MIN_EVAL_TOKENS;
  const verdict = async (p: ContrastPrompt) => {
    const r = await options.base.complete(
      { messages: promptMessages(p), maxTokens },
      options.signal,
    );
    return options.judge.judge(p.user, r.text, options.signal);
  };
  const limit = options.concurrency ?? DEFAULT_EVAL_CONCURRENCY;
  const rv = await mapLimit(refuse, limit, verdict, () => {});
  const cv = await mapLimit(comply, limit, verdict, () => {});
  return {
    refuse: refuse.filter((_, i) => rv[i] === "refusal"),
    comply: comply.filter((_, i) => cv[i] === "compliance"),
  };
}
