#!/bin/bash
python3 - <<'PY'
import glob, re
rows = {"week1": [0, 0, 0], "week2": [0, 0, 0], "total": [0, 0, 0]}
idx = {"ERROR": 0, "WARNING": 1, "INFO": 2}
for path in glob.glob("/app/logs/*.log"):
    for line in open(path):
        m = re.match(r"(\S+) \S+ \[(\w+)\]", line)
        if not m:
            continue
        d, lvl = m.groups()
        rows["total"][idx[lvl]] += 1
        key = "week1" if "2024-03-01" <= d <= "2024-03-07" else "week2" if "2024-03-08" <= d <= "2024-03-14" else None
        if key:
            rows[key][idx[lvl]] += 1
with open("/app/summary.csv", "w") as f:
    f.write("period,ERROR,WARNING,INFO\n")
    for k, v in rows.items():
        f.write(f"{k},{v[0]},{v[1]},{v[2]}\n")
PY
