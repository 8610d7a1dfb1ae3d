#!/usr/bin/env bash
# Runs the speed benchmark side by side on this machine and prints one table with ratios ours / peer:
#   ours:    build/native-release/aep bench (deterministic, then with --fast: fast mode) and
#            build/wasm-release/aep.js bench (node), 1 thread, and the same wasm in headless Chromium
#            (build/web/bench.html via bench/chromium_bench.js)
#   PyTorch: bench/torch_bench.py with Debian's torch (/usr/bin/python3), 1 thread, plain and with glibc's
#            allocator keeping its buffers (PyTorch at its best); linked against OpenBLAS (serial), because
#            Debian's default libblas.so.3 is the netlib reference BLAS (fetched privately, no system change)
#   TF.js:   bench/tfjs_bench.js, wasm backend (SIMD, 1 thread) and cpu backend, in the same node
# --presets: every preset too, ours and PyTorch tuned's (its own loss), with the ratios.
# usage: bench/run.sh [--seconds S] [--runs N] [--presets]    (builds with: cmake --build --preset ...)
# Writes build/bench/*.json; needs the native-release and wasm-release builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=1 runs=5 only=A,B,gemm torch_presets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --presets) only=A,B,gemm,presets torch_presets=(--presets); shift ;;
    *) echo "usage: bench/run.sh [--seconds S] [--runs N] [--presets]" >&2; exit 2 ;;
  esac
done
out=build/bench
mkdir -p "$out"
common=(--seconds "$seconds" --runs "$runs")

for f in build/native-release/aep build/wasm-release/aep.js; do
  [ -f "$f" ] || { echo "bench/run.sh: $f missing: build the native-release and wasm-release presets first" >&2; exit 1; }
done
if [ ! -d bench/node_modules/@tensorflow/tfjs-backend-wasm ]; then
  (cd bench && npm ci --no-audit --no-fund >/dev/null)
fi
# OpenBLAS for PyTorch, unpacked privately (apt-get download + dpkg -x) into the git-ignored build folder.
blas=$root/build/peer-deps/usr/lib/x86_64-linux-gnu/openblas-serial
if [ ! -f "$blas/libblas.so.3" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libopenblas0-serial >/dev/null 2>&1) && dpkg -x "$tmp"/libopenblas0-serial_*.deb build/peer-deps
  rm -rf "$tmp"
fi
[ -f "$blas/libblas.so.3" ] || echo "bench/run.sh: no OpenBLAS: PyTorch runs on the system BLAS" >&2

echo "== aep native"; build/native-release/aep bench --only "$only" "${common[@]}" --json "$out/aep-native.json"
echo "== aep native, fast mode"
build/native-release/aep bench --fast --only "$only" "${common[@]}" --json "$out/aep-native-fast.json"
echo "== aep wasm (node)"
node --no-experimental-fetch build/wasm-release/aep.js bench --only "$only" "${common[@]}" --json "$out/aep-wasm.json"
if [ -f build/web/bench.html ] && [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -d tests/e2e/node_modules/playwright-core ]; then
  echo "== aep wasm (headless Chromium, bench.html: the engine in a Worker of the page)"
  node bench/chromium_bench.js --only "$only" "${common[@]}" --json "$out/aep-chromium.json" || true
else
  echo "== (no Chromium run: needs build_wasm.sh and scripts/bootstrap.sh --browser)"
fi
echo "== PyTorch"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} /usr/bin/python3 bench/torch_bench.py "${common[@]}" \
  --system pytorch --json "$out/torch-plain.json"
MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=268435456 LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
  /usr/bin/python3 bench/torch_bench.py "${common[@]}" --gemm "${torch_presets[@]}" --system "pytorch tuned" \
  --json "$out/torch-tuned.json"
echo "== TensorFlow.js (node)"
node bench/tfjs_bench.js "${common[@]}" --json "$out/tfjs.json" 2>&1 | grep -v -e '^=*$' -e 'tfjs-node' -e '^Hi, looks like'
echo
node bench/table.js "$out"/aep-native.json "$out"/aep-native-fast.json "$out"/aep-wasm.json "$out"/aep-chromium.json "$out"/torch-plain.json "$out"/torch-tuned.json "$out"/tfjs.json
