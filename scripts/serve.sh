#!/usr/bin/env bash
# Installs what is missing, builds the web playground and serves it on http://127.0.0.1:${PORT:-8080}/
# (any static file server works; with no COOP/COEP headers the page runs single-threaded). Ctrl-C stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
bash build_wasm.sh --page  # the page only; scripts/test.sh builds the tests
port=${PORT:-8080}
echo "Autoencoder Playground: http://127.0.0.1:$port/   (embedding example: http://127.0.0.1:$port/embed-example.html)"
# Python's static file server, plus the two headers that make the page cross-origin isolated: it may then share
# memory with workers and runs the threaded engine (aep_web_mt.*; see web/aep.js). Same files, same results.
exec python3 - "$port" "$root/build/web" <<'PY'
import functools, http.server, sys
class Isolated(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()
handler = functools.partial(Isolated, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
