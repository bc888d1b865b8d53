"""Independent reference values for libs/refusal's direction math and layer metrics.

Run: pip install numpy scipy scikit-learn && python3 libs/refusal/scripts/make_fixtures.py
Writes libs/refusal/fixtures/directions-reference.json, which src/direction-math.test.ts
compares against. Inputs are generated here with numpy, written into the same file as f32 so
both sides start from identical numbers.
"""
import json
import os

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "directions-reference.json")
N, LAYERS, HIDDEN = 12, 4, 16
RESAMPLES, SEED = 200, 7


def mulberry32(seed):
    """Same generator as src/random.ts, with explicit uint32 wrap-around."""
    a = seed & 0xFFFFFFFF

    def imul(x, y):
        return (x * y) & 0xFFFFFFFF

    def nxt():
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return nxt


def unit(v):
    return v / np.linalg.norm(v)


def main():
    rng = np.random.default_rng(1234)
    signal = rng.normal(size=(LAYERS, HIDDEN))
    comply = rng.normal(size=(N, LAYERS, HIDDEN)) + 0.5
    strength = np.linspace(0.2, 1.5, LAYERS)[None, :, None]
    refuse = comply + rng.normal(scale=0.8, size=(N, LAYERS, HIDDEN)) + strength * signal[None]
    refuse = refuse.astype(np.float32)
    comply = comply.astype(np.float32)
    fit = list(range(0, 8))
    sel = list(range(8, N))
    r64 = refuse.astype(np.float64)
    c64 = comply.astype(np.float64)

    mean_diff, projected, pca = [], [], []
    for layer in range(LAYERS):
        mr = r64[fit, layer].mean(axis=0)
        mc = c64[fit, layer].mean(axis=0)
        d = mr - mc
        mean_diff.append(unit(d))
        ch = unit(mc)
        projected.append(unit(d - np.dot(d, ch) * ch))
        diffs = r64[fit, layer] - c64[fit, layer]
        _, _, vt = np.linalg.svd(diffs, full_matrices=False)
        v = vt[0]
        if np.sum(diffs @ v) < 0:
            v = -v
        pca.append(v)
    mean_diff = np.array(mean_diff)
    dirs32 = mean_diff.astype(np.float32).astype(np.float64)

    metrics = []
    for layer in range(LAYERS):
        d = dirs32[layer]
        pr = r64[sel, layer] @ d
        pc = c64[sel, layer] @ d
        labels = np.r_[np.ones(len(pr)), np.zeros(len(pc))]
        a = roc_auc_score(labels, np.r_[pr, pc])
        u = stats.mannwhitneyu(pr, pc, alternative="two-sided").statistic / (len(pr) * len(pc))
        assert abs(a - u) < 1e-12
        rand = mulberry32(SEED + layer)
        boots = []
        for _ in range(RESAMPLES):
            bp = np.array([pr[int(rand() * len(pr))] for _ in range(len(pr))])
            bn = np.array([pc[int(rand() * len(pc))] for _ in range(len(pc))])
            bl = np.r_[np.ones(len(bp)), np.zeros(len(bn))]
            boots.append(roc_auc_score(bl, np.r_[bp, bn]))
        lo, hi = np.quantile(boots, [0.025, 0.975])
        n1, n0 = len(pr), len(pc)
        pooled = np.sqrt(((n1 - 1) * pr.var(ddof=1) + (n0 - 1) * pc.var(ddof=1)) / (n1 + n0 - 2))
        cos_prev = float(np.dot(dirs32[layer], dirs32[layer - 1]) / (np.linalg.norm(dirs32[layer]) * np.linalg.norm(dirs32[layer - 1]))) if layer > 0 else None
        metrics.append({
            "layer": layer,
            "auc": float(a),
            "auc_low": float(lo),
            "auc_high": float(hi),
            "cohens_d": float((pr.mean() - pc.mean()) / pooled),
            "cos_prev": cos_prev,
        })

    out = {
        "shape": [N, LAYERS, HIDDEN],
        "fit": fit,
        "select": sel,
        "resamples": RESAMPLES,
        "seed": SEED,
        "refuse": refuse.ravel().tolist(),
        "comply": comply.ravel().tolist(),
        "mean_diff": mean_diff.ravel().tolist(),
        "projected": np.array(projected).ravel().tolist(),
        "pca": np.array(pca).ravel().tolist(),
        "metrics": metrics,
    }
    with open(OUT + ".tmp", "w") as f:
        json.dump(out, f)
    os.replace(OUT + ".tmp", OUT)


if __name__ == "__main__":
    main()
