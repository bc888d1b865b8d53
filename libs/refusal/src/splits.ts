/**
 * Deterministic fit / select / eval splits. Groups (not single prompts) are ranked by
 * sha256(seed, group) and cut by the fractions, so paired prompts stay together and adding a
 * prompt moves no other prompt's group across splits more than the rank shift requires.
 */
import { createHash } from "node:crypto";
import {
  BUCKETS,
  type Bucket,
  type ContrastPrompt,
  type ContrastSet,
  promptsDigest,
} from "./contrast-set.ts";
import { ContrastSetError } from "./errors.ts";

/** The three splits: fit the directions, select the layer, evaluate the edit. */
export type SplitName = "fit" | "select" | "eval";

/** The split names in order. */
export const SPLIT_NAMES: readonly SplitName[] = ["fit", "select", "eval"];

/** Fractions of groups per split (sum 1). */
export interface SplitFractions {
  readonly fit: number;
  readonly select: number;
  readonly eval: number;
}

/** 60 / 20 / 20: most prompts for fitting, enough held out to rank layers and to evaluate. */
export const DEFAULT_SPLIT_FRACTIONS: SplitFractions = { fit: 0.6, select: 0.2, eval: 0.2 };

/** Prompt indices of each bucket in one split, ordered by group rank (pairs line up). */
export type SplitIndices = Readonly<Record<Bucket, readonly number[]>>;

/** A contrast set cut into splits, with content digests. */
export interface ContrastSplits {
  readonly seed: number;
  readonly fractions: SplitFractions;
  readonly indices: Readonly<Record<SplitName, SplitIndices>>;
  /** sha256 of the whole set and of each split's prompts. */
  readonly digests: Readonly<Record<"set" | SplitName, string>>;
}

function rankKey(seed: number, group: string): string {
  return createHash("sha256").update(`${seed}\0${group}`).digest("hex");
}

function assign(
  groups: string[],
  seed: number,
  f: SplitFractions,
  into: Map<string, SplitName>,
): void {
  const ranked = groups
    .map((g) => ({ g, k: rankKey(seed, g) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  const nFit = Math.round(ranked.length * f.fit);
  const nSel = Math.round(ranked.length * (f.fit + f.select)) - nFit;
  for (const [i, { g }] of ranked.entries())
    into.set(g, i < nFit ? "fit" : i < nFit + nSel ? "select" : "eval");
}

/** Splits a contrast set; throws if any split of either bucket would be empty. */
export function splitContrastSet(
  set: ContrastSet,
  seed: number,
  fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS,
): ContrastSplits {
  const groupsOf = (b: Bucket) => new Set(set[b].map((p) => p.group));
  const r = groupsOf("refuse");
  const c = groupsOf("comply");
  const shared = [...r].filter((g) => c.has(g));
  const where = new Map<string, SplitName>();
  // Shared groups are assigned once for both buckets; the rest per bucket, so each bucket gets
  // close to the requested fractions even when the buckets are unpaired.
  assign(shared, seed, fractions, where);
  assign(
    [...r].filter((g) => !c.has(g)),
    seed,
    fractions,
    where,
  );
  assign(
    [...c].filter((g) => !r.has(g)),
    seed,
    fractions,
    where,
  );
  const order = new Map<string, string>();
  for (const g of [...r, ...c]) order.set(g, rankKey(seed, g));
  const indices = {} as Record<SplitName, Record<Bucket, number[]>>;
  for (const s of SPLIT_NAMES) {
    indices[s] = { refuse: [], comply: [] };
    for (const b of BUCKETS) {
      const idx = set[b].map((p, i) => ({ p, i })).filter(({ p }) => where.get(p.group) === s);
      idx.sort((x, y) => {
        const kx = order.get(x.p.group) as string;
        const ky = order.get(y.p.group) as string;
        return kx < ky ? -1 : kx > ky ? 1 : x.i - y.i;
      });
      indices[s][b] = idx.map(({ i }) => i);
      if (idx.length === 0) {
        throw new ContrastSetError(
          `the ${s} split of the ${b} bucket is empty: ${set[b].length} prompts in ${groupsOf(b).size} groups, fractions ${fractions.fit}/${fractions.select}/${fractions.eval}`,
        );
      }
    }
  }
  const pick = (s: SplitName, b: Bucket): ContrastPrompt[] =>
    indices[s][b].map((i) => set[b][i] as ContrastPrompt);
  const digests = {
    set: promptsDigest(set.refuse, set.comply),
    fit: promptsDigest(pick("fit", "refuse"), pick("fit", "comply")),
    select: promptsDigest(pick("select", "refuse"), pick("select", "comply")),
    eval: promptsDigest(pick("eval", "refuse"), pick("eval", "comply")),
  };
  return { seed, fractions, indices, digests };
}
