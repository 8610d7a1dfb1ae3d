#!/usr/bin/env bash
# Installs what is missing, builds the web playground and serves it on http://127.0.0.1:${PORT:-8080}/ (any static
# file server works: build/web is plain files). Ctrl-C stops it. Builds only what the page needs (build_wasm.sh --page);
# scripts/test.sh (or `bash build_wasm.sh`) builds the tests, the threaded engine and the benchmark page's engine too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$SECONDS
echo "[serve] 1/3 installing what is missing (scripts/bootstrap.sh: Debian packages, headers, ImGui and zlib sources, MNIST)"
bash scripts/bootstrap.sh
echo "[serve] 2/3 building the page (build_wasm.sh --page) after $((SECONDS - t0)) s"
bash build_wasm.sh --page
port=${PORT:-8080}
# With the threaded engine built (a full build_wasm.sh), the page is served cross-origin isolated (the two headers
# below): it may then share memory with workers and runs aep_web_mt.*. Without it the page runs the single-threaded
# engine and trains in a worker of its own, as in a course page's iframe. Same files, same results.
isolated=0
[ -f build/web/aep_web_mt.js ] && isolated=1
echo "[serve] 3/3 serving build/web after $((SECONDS - t0)) s" \
     "($([ $isolated = 1 ] && echo 'cross-origin isolated: the threaded engine' || echo 'the single-threaded engine and its training worker'))"
echo "Autoencoder Playground: http://127.0.0.1:$port/   (embedding example: http://127.0.0.1:$port/embed-example.html)"
exec python3 - "$port" "$root/build/web" "$isolated" <<'PY'
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        if sys.argv[3] == "1":
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
