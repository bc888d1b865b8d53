#!/bin/bash
python3 - <<'PY'
import json
def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
base = json.load(open("/app/config/base.json"))
over = json.load(open("/app/config/override.json"))
with open("/app/config/merged.json", "w") as f:
    f.write(json.dumps(merge(base, over), indent=2, sort_keys=True) + "\n")
PY
