#!/bin/bash
python3 - <<'PY'
import csv, io, re
seen, rows = set(), []
for line in open("/app/data/orders.csv"):
    line = line.strip()
    if not line or line.startswith("id"):
        continue
    sep = ";" if line.count(";") >= 3 else ","
    f = next(csv.reader([line], delimiter=sep))
    if sep == "," and len(f) > 4:  # unquoted thousands separator in the amount
        f = f[:3] + [",".join(f[3:])]
    oid, date, cust, amt = int(f[0]), f[1].strip(), f[2].strip(), f[3]
    if oid in seen:
        continue
    seen.add(oid)
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", date):
        d, m, y = date.split("/"); date = f"{y}-{m}-{d}"
    date = date.replace("/", "-")
    amount = float(re.sub(r"[$,\s]", "", amt))
    rows.append((oid, date, cust, f"{amount:.2f}"))
out = io.StringIO()
w = csv.writer(out, lineterminator="\n")
w.writerow(["id", "date", "customer", "amount"])
for r in sorted(rows):
    w.writerow(r)
open("/app/data/orders_clean.csv", "w").write(out.getvalue())
PY
