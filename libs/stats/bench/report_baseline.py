"""Baseline for npm run bench:report: the same statistics with scipy/statsmodels/numpy, as a user
would otherwise compute them. Reads a JSONL of trial records, prints one JSON object with the
wall time and the p-values (for cross-checking)."""

import json
import sys
import time

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

INFRA = {"environment_error", "llm_error"}


def main(path, baseline, resamples, permutations):
    t0 = time.perf_counter()
    cells = {}
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            if r["outcome"] in INFRA:
                continue
            cells.setdefault(r["variant"], {}).setdefault(r["taskId"], []).append(r["reward"] or 0.0)
    variants = sorted(cells)
    out = {"variants": {}, "comparisons": {}}
    for v in variants:
        means = np.array([np.mean(x) for x in cells[v].values()])
        n = sum(len(x) for x in cells[v].values())
        k = sum(sum(1 for y in x if y >= 1) for x in cells[v].values())
        lo, hi = proportion_confint(k, n, method="wilson")
        out["variants"][v] = {"accuracy": float(means.mean()), "se": float(means.std(ddof=1) / np.sqrt(len(means))),
                              "wilson": [float(lo), float(hi)]}
    fisher_p, cmh_p = [], []
    rng = np.random.default_rng(1)
    for v in variants:
        if v == baseline:
            continue
        tasks = sorted(set(cells[v]) & set(cells[baseline]))
        a = [np.array(cells[baseline][t]) for t in tasks]
        b = [np.array(cells[v][t]) for t in tasks]
        pa = sum(int((x >= 1).sum()) for x in b); na = sum(len(x) for x in b)
        pb = sum(int((x >= 1).sum()) for x in a); nb = sum(len(x) for x in a)
        f = stats.fisher_exact([[pa, na - pa], [pb, nb - pb]])
        tables = np.array([[[int((y >= 1).sum()), len(y) - int((y >= 1).sum())],
                            [int((x >= 1).sum()), len(x) - int((x >= 1).sum())]] for x, y in zip(a, b)]).transpose(1, 2, 0)
        st = StratifiedTable(tables)
        c = st.test_null_odds(correction=True)
        d = np.array([y.mean() - x.mean() for x, y in zip(a, b)])
        perm = stats.permutation_test((d, np.zeros_like(d)), lambda p, q, axis: np.mean(p - q, axis=axis),
                                      permutation_type="samples", n_resamples=permutations, vectorized=True,
                                      random_state=1)
        # Vectorised bootstrap: per-task replica resamples for every replicate (R x T), then tasks
        # resampled per replicate. (A task drawn twice in one replicate reuses its replica draw.)
        T = len(tasks)
        ma = np.stack([x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1) for x in a], axis=1)
        mb = np.stack([y[rng.integers(0, len(y), (resamples, len(y)))].mean(axis=1) for y in b], axis=1)
        idx = rng.integers(0, T, (resamples, T))
        rows = np.arange(resamples)[:, None]
        boots = (mb[rows, idx] - ma[rows, idx]).mean(axis=1)
        out["comparisons"][v] = {"fisher": float(f.pvalue), "cmh": float(c.pvalue), "permutation": float(perm.pvalue),
                                 "mhOddsRatio": float(st.oddsratio_pooled),
                                 "bootstrapCi": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]}
        fisher_p.append(float(f.pvalue)); cmh_p.append(float(c.pvalue))
    out["holmFisher"] = [float(x) for x in multipletests(fisher_p, method="holm")[1]]
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
