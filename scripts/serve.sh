#!/usr/bin/env bash
# Installs what is missing, builds the web playground and serves it on http://127.0.0.1:${PORT:-8080}/
# (any static file server works: build/web needs no special headers). Ctrl-C stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
bash build_wasm.sh
port=${PORT:-8080}
echo "Autoencoder Playground: http://127.0.0.1:$port/   (embedding example: http://127.0.0.1:$port/embed-example.html)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory build/web
