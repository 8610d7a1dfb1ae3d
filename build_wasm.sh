#!/usr/bin/env bash
# Builds the WebAssembly targets (engine, tests, CLI, the playground page and its threaded engine, the benchmark page)
# and assembles the static site in build/web/: index.html + aep.js/.css + aep_web.js/.wasm (+ .wasm.gz, what the page
# fetches) + data/*.gz (MNIST, fetched by scripts/bootstrap.sh) + sw.js (offline visits, stamped with this build).
# Any static file server can serve build/web; with the COOP/COEP headers scripts/serve.sh sends when the threaded engine
# is built, the page runs it (aep_web_mt.*), without them the single-threaded one with its training worker.
# --page builds only what serving the page needs (aep_web, aep_worker): not the wasm test suite, the node CLI, the
# threaded engine or bench.html's engine (scripts/test.sh builds everything).
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
cd "$root"
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
page_only=0
case ${1:-} in
  --page) page_only=1 ;;
  "") ;;
  *) echo "build_wasm.sh: unknown option $1 (--page: only what the page needs)" >&2; exit 2 ;;
esac
t0=$SECONDS
cmake --preset wasm-release >/dev/null
if [ $page_only = 1 ]; then
  echo "[build_wasm] the page's engine and its training worker (emcc, 2 jobs; a first build takes a few minutes)"
  cmake --build --preset wasm-release --target aep_web aep_worker
else
  echo "[build_wasm] WebAssembly build: everything (emcc, 2 jobs)"
  cmake --build --preset wasm-release
  # The threaded page engine (pthreads): the page loads it when served cross-origin isolated (scripts/serve.sh).
  echo "[build_wasm] the threaded page engine (build/wasm-mt)"
  cmake --preset wasm-release -B build/wasm-mt -DAEP_WASM_THREADS=ON -DAEP_BUILD_TESTS=OFF >/dev/null
  cmake --build build/wasm-mt --target aep_web -j2
fi
echo "[build_wasm] compiled in $((SECONDS - t0)) s"
out=build/web
rm -rf "$out" && mkdir -p "$out/data"
cp web/*.html web/*.js web/*.css "$out/"
cp build/wasm-release/aep_web.js build/wasm-release/aep_web.wasm "$out/"
cp build/wasm-release/aep_worker.js build/wasm-release/aep_worker.wasm "$out/"  # the training worker (web/aep-worker.js)
mkdir -p "$out/bench" && cp bench/model-a.json "$out/bench/"  # benchmark model A, for bench.html
if [ $page_only = 0 ]; then  # (--page leaves out what it did not build: an older build's would not match this page)
  cp build/wasm-mt/aep_web_mt.js build/wasm-mt/aep_web_mt.wasm build/wasm-mt/aep_web_mt.worker.js "$out/"
  # The speed benchmark page (bench.html): `aep bench` compiled for a browser Worker.
  cp build/wasm-release/aep_bench_web.js build/wasm-release/aep_bench_web.wasm "$out/"
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  src=assets/data/mnist/$f.gz
  [ -f "$src" ] || { echo "build_wasm.sh: $src missing: run scripts/bootstrap.sh" >&2; exit 1; }
  cp "$src" "$out/data/"  # whole, for bench.html
done
# The page's MNIST in two parts: data/first (3,000 training and 1,000 test images, training starts on them) and
# data/rest (web/aep.js).
node scripts/split-mnist.js assets/data/mnist "$out/data" 3000 1000
# Fashion-MNIST test images (Debian's dataset-fashion-mnist) for the anomaly panel; fetched only when asked for.
fashion=/usr/share/datasets/fashion-mnist
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$fashion/$f.gz" ] && cp "$fashion/$f.gz" "$out/data/fashion-$f.gz"
done
# The engines gzipped (web/fetch-wasm.js inflates them in the browser: small on the wire from any static server);
# the plain .wasm stay for other users and as the fallback.
for f in "$out"/*.wasm; do gzip -9 -n -k -f "$f"; done
for f in "$out"/*.wasm; do printf '[build_wasm] %-22s %8d bytes, gzipped %8d\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(stat -c %s "$f.gz")"; done
# The service worker (web/sw.js) names its cache after this build, a hash of every file it may keep (before the
# stamps), and the page knows its build (index.html's meta tag aep-build; see checkBuild in aep.js).
version=$(cd "$out" && find . -type f ! -name sw.js | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
sed -i "s/^const VERSION = 'dev';/const VERSION = '$version';/" "$out/sw.js"
sed -i "s/<meta name=\"aep-build\" content=\"dev\">/<meta name=\"aep-build\" content=\"$version\">/" "$out/index.html"
{ grep -q "^const VERSION = '$version';" "$out/sw.js" && grep -q "content=\"$version\"" "$out/index.html"; } \
  || { echo "build_wasm.sh: could not stamp the version into $out/sw.js and $out/index.html" >&2; exit 1; }
echo "built $out ($(du -sh "$out" | cut -f1)): serve it with scripts/serve.sh or any static file server"
