#!/usr/bin/env bash
# Builds the libFuzzer targets (Debian's clang++, ASan + UBSan) into build/fuzz and runs each for SECONDS
# (default 10), one after another, starting from the seeds in tests/fuzz/corpus/<target>/.
#
#   tests/fuzz/run.sh            # 10 s per target, as the test command runs it
#   tests/fuzz/run.sh 600        # the longer run: 10 minutes per target
#   tests/fuzz/run.sh 60 fuzz_gzip   # one target only
#
# New interesting inputs go to build/fuzz/corpus/<target>/ (not committed; copy good ones into tests/fuzz/corpus
# by hand), crashers to build/fuzz/artifacts/. Replay one with build/fuzz/bin/<target> <file>.
# Prints per target the executions and the verdict, then "N passed, M failed"; exits non-zero on any finding.
set -u
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=${1:-10}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(fuzz_idx fuzz_gzip fuzz_safetensors fuzz_preset fuzz_lesson)

CXX=${CXX_FUZZ:-clang++}
OUT=build/fuzz
LOCK=/tmp/aep-build.lock  # the machine's cores are shared: builds take turns
CXXFLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer -ffp-contract=off -Isrc -isystem .deps/trixie/usr/include
  -DXTENSOR_USE_XSIMD "-DAEP_DEFAULT_ASSETS_DIR=\"$PWD/assets\""
  -fsanitize=address,undefined -fno-sanitize-recover=all)
mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/artifacts"

if ! command -v "$CXX" >/dev/null; then
  echo "$CXX not found: scripts/bootstrap.sh installs clang and libclang-rt-14-dev" >&2
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

# True when $2 (an object) is missing or older than its source or any header listed in its .d file.
stale() {
  local src=$1 obj=$2 dep
  [ -f "$obj" ] && [ -f "$obj.d" ] || return 0
  for dep in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$obj.d"); do
    [ "$dep" -nt "$obj" ] && return 0
  done
  return 1
}

# The engine sources a target may need; the linker keeps only what is used.
build() {
  local objs=() src obj t
  for src in src/core/*.cpp; do
    obj=$OUT/obj/$(basename "$src" .cpp).o
    objs+=("$obj")
    local isa=()  # fast mode's kernels, each for its own instruction set (as CMakeLists.txt compiles them)
    case $(basename "$src") in
      gemm_avx2.cpp) isa=(-mavx2 -mfma -mno-avx512f) ;;
      gemm_avx512.cpp) isa=(-mavx512f -mfma) ;;
    esac
    if stale "$src" "$obj"; then
      echo "compile $src"
      flock "$LOCK" "$CXX" "${CXXFLAGS[@]}" "${isa[@]}" -fsanitize=fuzzer-no-link -MMD -MF "$obj.d" -c "$src" -o "$obj" || return 1
    fi
  done
  for t in "${TARGETS[@]}"; do
    obj=$OUT/obj/$t.o
    if stale "tests/fuzz/$t.cpp" "$obj"; then
      echo "compile tests/fuzz/$t.cpp"
      flock "$LOCK" "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer-no-link -MMD -MF "$obj.d" -c "tests/fuzz/$t.cpp" -o "$obj" || return 1
    fi
    if [ ! -x "$OUT/bin/$t" ] || [ -n "$(find "$obj" "${objs[@]}" -newer "$OUT/bin/$t")" ]; then
      echo "link $t"
      # -lz: core/gzip.cpp inflates with the system zlib (zlib1g-dev), and every target links all of core.
      flock "$LOCK" "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer "$obj" "${objs[@]}" -lz -o "$OUT/bin/$t" || return 1
    fi
  done
}

if ! build; then
  echo "fuzz build failed"
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/corpus/$t"
  log=$OUT/$t.log
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  # -rss_limit_mb/-malloc_limit_mb: an input that makes the parser allocate more than 2 GB is a finding too.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$OUT/bin/$t" "$OUT/corpus/$t" "tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t-" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  findings=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|deadly signal|Test unit written' "$log")
  if [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]; then
    echo "$t: ${runs:-0} executions in ${SECONDS_PER_TARGET} s, no crash, leak or sanitizer report"
    passed=$((passed + 1))
  else
    echo "$t: ${runs:-0} executions, FINDING (exit $rc) - see $log:"
    grep -E 'ERROR:|runtime error:|deadly signal|Test unit written|SUMMARY' "$log" | head -8 | sed 's/^/  /'
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
