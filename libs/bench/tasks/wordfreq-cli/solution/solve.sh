#!/bin/bash
cat > /app/wordfreq <<'PY'
#!/usr/bin/env python3
import collections, re, sys
if len(sys.argv) != 3:
    print("usage: wordfreq FILE N", file=sys.stderr)
    sys.exit(2)
try:
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
except OSError as e:
    print(f"wordfreq: {e}", file=sys.stderr)
    sys.exit(2)
counts = collections.Counter(w.lower() for w in re.findall(r"[A-Za-z']+", text))
for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: int(sys.argv[2])]:
    print(f"{n} {word}")
PY
chmod +x /app/wordfreq
