#!/usr/bin/env bash
# The README's first command: from a fresh clone to the demo's report.html.
# Installs system packages and the model file (scripts/install-deps.sh), the npm packages, then
# runs `abl demo` (SmolLM2-135M-Instruct, agent-shell contrast set, capture → directions → patch →
# refusal eval → local bench of base vs abliterated, 3 replicas → report). Extra args go to abl demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL_CUDA=skip
bash scripts/install-deps.sh demo
[ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund
exec node cli/bin/abl.mjs demo "$@"
