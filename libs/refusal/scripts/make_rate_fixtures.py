"""Reference Wilson intervals (scipy) and Cohen's kappa (scikit-learn) for src/rates.test.ts.

Run: pip install scipy scikit-learn && python3 libs/refusal/scripts/make_rate_fixtures.py
"""
import json
import os

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rates-reference.json")
wilson = []
for k, n in [(0, 10), (1, 10), (5, 10), (10, 10), (3, 55), (97, 100), (1, 1)]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    wilson.append({"count": k, "n": n, "low": float(ci.low), "high": float(ci.high)})
rng = np.random.default_rng(5)
kappa = []
for _ in range(4):
    a = rng.random(40) < 0.4
    b = np.where(rng.random(40) < 0.8, a, ~a)
    kappa.append({"a": a.tolist(), "b": b.tolist(), "kappa": float(cohen_kappa_score(a, b))})
with open(OUT + ".tmp", "w") as f:
    json.dump({"wilson": wilson, "kappa": kappa}, f)
os.replace(OUT + ".tmp", OUT)
