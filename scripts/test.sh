#!/usr/bin/env bash
# Installs what is missing, then runs every test of the project:
#   1. the doctest suite natively, debug build with AddressSanitizer + UndefinedBehaviorSanitizer;
#   2. the same suite compiled to WebAssembly (-O3 -msimd128) under node, which also checks that the same
#      seed trains to byte-identical weights natively and in wasm;
#   3. the `aep` command line (wasm build under node): 200 training steps of every preset on the real MNIST
#      (the loss must fall), the same with the native release build (the weight files must be byte-identical:
#      the determinism contract), every lesson followed headless (aep lesson ID), save + eval round trip, divergence
#      keeping the last good weights, clear errors for bad input; the exported PyTorch scripts run in Debian's torch
#      and the Keras plans in TensorFlow.js layers against aep eval (tests/interop/run.sh);
#   4. the playground page in Debian's Chromium (tests/e2e/run.js): every preset trains 200 steps in the page
#      (a screenshot of all panels each, every panel's region checked for content), URL parameters, the embedding
#      example over postMessage, downloads loaded strict in PyTorch, a malformed upload, autosave, divergence, the
#      memory budget, the Content-Security-Policy, UMAP, bench.html; frame times printed as information; every lesson
#      opens from its URL, two are followed to the end, the course page web/lesson-example.html gets goal events; the
#      instruments' values in status() (loss picker, Jacobian norm, code probe, VAE posterior, foreign data); a
#      classroom start at 10 Mbit/s and an offline reload (tests/e2e/startup.js);
#   5. the desktop app under Xvfb: trains a few hundred frames and writes a screenshot whose panels must show content;
#   6. libFuzzer on every parser for a few seconds each (tests/fuzz/run.sh).
# The sanitized suite runs in chunks, two at a time; interop and the fuzzers run beside the wasm suite and the command line.
# Each PASS / FAIL line ends with the time since the start.
# Logs and screenshots: build/test-logs/.
# Prints one line per stage and ends with "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
node=(node --no-experimental-fetch)
logs=$root/build/test-logs
passed=0 failed=0
# Each line ends with the time since the start [m:ss], so a slow stage shows in CI's log.
at() { printf '[%d:%02d]' $((SECONDS / 60)) $((SECONDS % 60)); }
pass() { passed=$((passed + 1)); printf 'PASS  %s %s\n' "$*" "$(at)"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s %s\n' "$*" "$(at)"; }
# run NAME LOGFILE CMD...: runs a stage with its output in LOGFILE, shows the tail on failure.
run() {
  local name=$1 log=$2; shift 2
  if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name (log: $log)"; tail -n 30 "$log" | sed 's/^/      /'; fi
}

bash scripts/bootstrap.sh --browser --interop || { echo "0 passed, 1 failed (bootstrap)"; exit 1; }
mkdir -p "$logs"

# --- builds ---------------------------------------------------------------------------------------
build() { cmake --preset "$1" >/dev/null && cmake --build --preset "$1"; }
run "build native-debug (ASan + UBSan)" "$logs/build-native-debug.log" build native-debug
run "build wasm-release (-O3 -msimd128) and the page (build_wasm.sh)" "$logs/build-wasm-release.log" bash build_wasm.sh
build_cli() { cmake --preset native-release >/dev/null && cmake --build --preset native-release --target aep; }
run "build native-release: the aep command line" "$logs/build-native-release.log" build_cli

# --- unit suites ----------------------------------------------------------------------------------
det=$logs/determinism-native.safetensors
rm -f "$det"
# The sanitized suite takes one core for a quarter of an hour: it runs in 12 chunks of consecutive test cases (doctest
# --first/--last), two at a time, so that both cores work until the end (a few cases take minutes each under ASan).
unit_native() {
  local bin=build/native-debug/aep_tests n chunks=12 failed_chunks=0 i
  n=$("$bin" --count --no-version 2>&1 | grep -o '[0-9]*$' | tail -n 1)
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "doctest --count gave '${n:-nothing}'"; return 1; }
  rm -f "$logs"/unit-native-chunk-*
  seq 0 $((chunks - 1)) | BIN=$bin DET=$det LOGS=$logs SIZE=$(((n + chunks - 1) / chunks)) xargs -P 2 -I{} bash -c '
    first=$(({} * SIZE + 1))
    "$BIN" --no-intro --no-version --aep-determinism-out="$DET" --first=$first --last=$((first + SIZE - 1)) \
      > "$LOGS/unit-native-chunk-{}.log" 2>&1
    echo $? > "$LOGS/unit-native-chunk-{}.rc"'
  for i in $(seq 0 $((chunks - 1))); do
    cat "$logs/unit-native-chunk-$i.log" 2>/dev/null
    [ "$(cat "$logs/unit-native-chunk-$i.rc" 2>/dev/null)" = 0 ] || failed_chunks=$((failed_chunks + 1))
  done
  # doctest counts the cases passing the filters in each chunk; the assertions add up over the chunks.
  echo "$n test cases in $chunks chunks, $failed_chunks failed; $(grep -h '^\[doctest\] assertions' "$logs"/unit-native-chunk-*.log |
    awk '{ a += $3; p += $5; f += $8 } END { print a " assertions, " p " passed, " f " failed" }')"
  [ "$failed_chunks" -eq 0 ]
}
if [ -x build/native-debug/aep_tests ]; then
  run "doctest suite, native debug + sanitizers (in chunks, two at a time)" "$logs/unit-native.log" unit_native
  tail -n 1 "$logs/unit-native.log" | sed 's/^/      /'
else
  fail "doctest suite, native (not built)"
fi
# --- in the background, beside the single-core stages that follow (wasm suite, command line): the exports run in the
# real frameworks - PyTorch (every preset, strict load, eval and training steps against ours) and the Keras mapping
# through TensorFlow.js layers (tests/interop/run.sh) - then libFuzzer on the parsers briefly (tests/fuzz/run.sh 600
# for the long run). Collected after the command line.
rm -f "$logs/interop.rc" "$logs/fuzz.rc"
(
  if [ -x build/native-release/aep ]; then bash tests/interop/run.sh > "$logs/interop.log" 2>&1; echo $? > "$logs/interop.rc"; fi
  bash tests/fuzz/run.sh "${AEP_FUZZ_SECONDS:-5}" > "$logs/fuzz.log" 2>&1; echo $? > "$logs/fuzz.rc"
) &
background=$!
if [ -f build/wasm-release/aep_tests.js ]; then
  detarg=()
  [ -f "$det" ] && detarg=(--aep-determinism-in="$det")
  run "doctest suite, wasm under node (+ native/wasm determinism)" "$logs/unit-wasm.log" \
    "${node[@]}" build/wasm-release/aep_tests.js --no-intro --no-version --no-colors "${detarg[@]}"
  grep -E '^\[doctest\] (test cases|assertions)' "$logs/unit-wasm.log" | sed 's/^/      /'
  [ -f "$det" ] || fail "native/wasm determinism (no native weights to compare with)"
else
  fail "doctest suite, wasm (not built)"
fi

# --- command line: every preset trains --------------------------------------------------------------
if [ -f build/wasm-release/aep.js ]; then
  aep=("${node[@]}" build/wasm-release/aep.js)
  out=$logs/cli
  mkdir -p "$out"
  # loss_fell CSV: mean loss of the last 20 steps below 90% of the mean of the first 20, all finite.
  loss_fell() {
    awk -F, 'NR > 1 { n++; l[n] = $3; if ($3 != $3 + 0 || $3 ~ /nan|inf/) bad = 1 }
             END { if (n < 40 || bad) exit 1; for (i = 1; i <= 20; i++) { a += l[i]; b += l[n - i + 1] }
                   printf "      loss %.5g -> %.5g\n", a / 20, b / 20; exit !(b < 0.9 * a) }' "$1"
  }
  for p in assets/presets/*.json; do
    name=$(basename "$p" .json)
    steps=200
    if "${aep[@]}" train --preset "$name" --steps $steps --seed 1 --test-samples 1000 \
         --log "$out/$name.csv" --save "$out/$name.safetensors" >"$out/$name.log" 2>&1 \
       && loss_fell "$out/$name.csv" > "$out/$name.fell"; then
      pass "aep train --preset $name --steps $steps: loss falls $(sed 's/^ *loss //' "$out/$name.fell")"
    else
      fail "aep train --preset $name (log: $out/$name.log)"; tail -n 5 "$out/$name.log" | sed 's/^/      /'
    fi
  done
  # The determinism contract (README): the default mode gives byte-identical weights natively and in wasm. The
  # native release build (what users run) trains every preset as the wasm CLI just did; the files must be equal.
  if [ -x build/native-release/aep ]; then
    mkdir -p "$out/native"
    for p in assets/presets/*.json; do
      name=$(basename "$p" .json)
      if build/native-release/aep train --preset "$name" --steps 200 --seed 1 --test-samples 1000 \
           --save "$out/native/$name.safetensors" >"$out/native/$name.log" 2>&1 \
         && cmp -s "$out/$name.safetensors" "$out/native/$name.safetensors"; then
        pass "determinism: $name, 200 steps: native release and wasm weights byte-identical ($(md5sum < "$out/native/$name.safetensors" | cut -c1-12))"
      else
        fail "determinism: $name: native release and wasm weights differ (or training failed: $out/native/$name.log)"
        cmp "$out/$name.safetensors" "$out/native/$name.safetensors" 2>&1 | head -n 1 | sed 's/^/      /'
      fi
    done
  else
    fail "determinism: native release CLI not built"
  fi
  # Every lesson followed headless by the native release CLI: each goal false when its step opens, true after its
  # action (the check a course author runs; the sanitized doctest suite takes a sample).
  if [ -x build/native-release/aep ]; then
    for l in assets/lessons/*.json; do
      id=$(basename "$l" .json)
      if build/native-release/aep lesson "$id" > "$out/lesson-$id.log" 2>&1; then
        pass "lesson $id: every goal false at its step's start and reached by its action ($(grep -c '^  goal' "$out/lesson-$id.log") goals)"
      else
        fail "lesson $id (log: $out/lesson-$id.log)"; tail -n 5 "$out/lesson-$id.log" | sed 's/^/      /'
      fi
    done
  fi
  # The beta sweep (the page's, headless): vae-mlp-16 at beta 0.25 and 16 on the same batches; the larger beta must pay
  # less KL with fewer active units and a larger reconstruction error (about 4 s).
  sweep_check() {
    build/native-release/aep sweep --preset vae-mlp-16 --beta 0.25,16 --steps 200 --json "$out/sweep.json" &&
      node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1])).rows;
               process.exit(r.length === 2 && r[1].kl < 0.5 * r[0].kl && r[1].activeUnits < r[0].activeUnits &&
                            r[1].recon > r[0].recon ? 0 : 1)' "$out/sweep.json"
  }
  if [ -x build/native-release/aep ]; then
    run "aep sweep: vae-mlp-16 at beta 0.25 vs 16, same batches: less KL, fewer active units, worse reconstruction" \
      "$out/sweep.log" sweep_check
    grep -E '^ +(0.25|16) ' "$out/sweep.log" | sed 's/^/      /'
  fi
  run "aep eval --preset conv --weights (saved by train)" "$out/eval.log" \
    "${aep[@]}" eval --preset conv --weights "$out/conv.safetensors" --test-samples 1000
  # Foreign data: Fashion-MNIST's reconstruction errors beside the test digits' (the page's Reconstructions panel).
  eval_foreign() {
    "${aep[@]}" eval --preset conv --weights "$out/conv.safetensors" --test-samples 1000 \
      --foreign /usr/share/datasets/fashion-mnist && grep -q '\[ratio\]' "$out/eval-foreign.log"
  }
  run "aep eval --foreign: Fashion-MNIST's errors and histogram beside the test digits'" "$out/eval-foreign.log" eval_foreign
  grep '\[ratio\]' "$out/eval-foreign.log" | cut -c1-200 | sed 's/^/      /'
  # Bad input: non-zero exit and a message naming the problem, never a crash.
  expect_error() {  # expect_error NAME PATTERN ARGS...
    local name=$1 pat=$2; shift 2
    local o; o=$("${aep[@]}" "$@" 2>&1); local rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q -- "$pat" <<<"$o"; then pass "error: $name"
    else fail "error: $name (exit $rc): $o"; fi
  }
  expect_error "unknown preset" "no-such-preset" train --preset no-such-preset --steps 1
  expect_error "weights of another model" "conv" eval --preset linear --weights "$out/conv.safetensors"
  head -c 100 "$out/conv.safetensors" > "$out/truncated.safetensors"
  expect_error "truncated weights" "truncated.safetensors" eval --preset conv --weights "$out/truncated.safetensors"
  { printf '\0\0\10\3\0\0\0\1\0\0\0\40\0\0\0\40'; head -c 1024 /dev/zero; } > "$out/images-32x32.idx"
  expect_error "foreign images of another size" "32x32; the models expect 28x28" eval --preset conv \
    --weights "$out/conv.safetensors" --foreign "$out/images-32x32.idx"
  expect_error "absurd batch size" "batch" train --preset conv --steps 1 --batch 0
  expect_error "negative learning rate" "lr" train --preset conv --steps 1 --lr -1
  # Divergence keeps the run: training that turns NaN stops, and --save still gets the last good weights.
  rm -f "$out/diverged.safetensors"
  o=$("${aep[@]}" train --preset vae-mlp --steps 300 --lr 10 --seed 1 --save "$out/diverged.safetensors" 2>&1); rc=$?
  if [ $rc -eq 1 ] && grep -q "training stopped at step" <<<"$o" && grep -q "saved the last good weights" <<<"$o" \
     && "${aep[@]}" eval --preset vae-mlp --weights "$out/diverged.safetensors" --test-samples 500 >"$out/diverged-eval.log" 2>&1; then
    pass "divergence (vae-mlp, lr 10): stops with a message and --save keeps the last good weights ($(grep -o 'after step [0-9]*' <<<"$o"), they load and evaluate)"
  else
    fail "divergence: exit $rc, weights kept? $(ls "$out/diverged.safetensors" 2>&1)"; tail -n 5 <<<"$o" | sed 's/^/      /'
  fi
else
  fail "aep command line (not built)"
fi

# --- the exports in the real frameworks and the fuzzers: started in the background before the wasm suite (see there),
# collected here ------------------------------------------------------------------------------------------------------
wait "$background" 2>/dev/null
if [ -x build/native-release/aep ]; then
  rc=$(cat "$logs/interop.rc" 2>/dev/null || echo 1)
  grep -E '^(PASS|FAIL)' "$logs/interop.log" | grep -v '^PASS' | sed 's/^/      /'
  np=$(grep -c '^PASS' "$logs/interop.log"); nf=$(grep -c '^FAIL' "$logs/interop.log")
  if [ "$nf" -eq 0 ] && [ "$rc" -eq 0 ]; then pass "interop: $np checks of the PyTorch and Keras exports (log: $logs/interop.log)"
  else fail "interop: $nf of $((np + nf)) checks failed (log: $logs/interop.log)"; tail -n 5 "$logs/interop.log" | sed 's/^/      /'; fi
else
  fail "interop (native release CLI not built)"
fi
if [ "$(cat "$logs/fuzz.rc" 2>/dev/null || echo 1)" -eq 0 ]; then
  pass "libFuzzer: IDX, gzip, safetensors, presets, lessons, ${AEP_FUZZ_SECONDS:-5} s each"
else
  fail "libFuzzer (log: $logs/fuzz.log)"; tail -n 30 "$logs/fuzz.log" | sed 's/^/      /'
fi
grep -E '^ *fuzz_' "$logs/fuzz.log" | sed 's/^ */      /'

# --- the page in Chromium -----------------------------------------------------------------------------
# e2e WHAT LOG SCRIPT ARGS...: runs an end-to-end script, shows its PASS / FAIL / INFO lines and counts them.
e2e() {
  local what=$1 log=$2; shift 2
  node "$@" > "$log" 2>&1; local rc=$?
  grep -E '^(PASS|FAIL|INFO|      )' "$log"
  local np nf; np=$(grep -c '^PASS' "$log"); nf=$(grep -c '^FAIL' "$log")
  passed=$((passed + np)); failed=$((failed + nf))
  echo "      $what: $np passed, $nf failed, done at $(at)"
  if [ $rc -ne 0 ] && [ "$nf" -eq 0 ]; then fail "$what run stopped early (log: $log)"; tail -n 5 "$log"; fi
}
if [ -f build/web/aep_web.wasm ]; then
  e2e "end-to-end" "$logs/e2e.log" tests/e2e/run.js
  # Lessons: every one opens from its URL (screenshots in build/test-logs/lessons), two are followed to the end, the
  # course page web/lesson-example.html gets the goal events (`--follow all` times every lesson: README's table).
  e2e "lessons end-to-end" "$logs/lessons-e2e.log" tests/e2e/lessons.js "$logs/lessons"
  # Instruments (issue 15): each one's values in status() checked, a screenshot of each in build/test-logs/instruments
  # (~1.5 min; `--full` adds the probe at 60,000 labels with frame intervals).
  e2e "instruments end-to-end" "$logs/instruments-e2e.log" tests/e2e/instruments.js "$logs/instruments"
  # A classroom start (issue 17, ~1.5 min): a first visit at 10 Mbit/s (bytes, first step, all data, memory printed as
  # INFO), an offline reload through the service worker, a new build replacing its cache, the .wasm.gz fallbacks.
  e2e "startup end-to-end" "$logs/startup-e2e.log" tests/e2e/startup.js
else
  fail "end-to-end tests (page not built)"
fi

# --- the desktop app under Xvfb ------------------------------------------------------------------------
if [ -x build/native-debug/aep_desktop ]; then
  shot=$logs/desktop.png
  rm -f "$shot"
  if ASAN_OPTIONS=detect_leaks=0 xvfb-run -a -s "-screen 0 1400x900x24" build/native-debug/aep_desktop \
       --preset conv --train --frames 120 --screenshot "$shot" > "$logs/desktop.log" 2>&1 \
     && grep -q '"running":true' "$logs/desktop.log" && [ -s "$shot" ] \
     && ! grep -q '"step":0,' "$logs/desktop.log" \
     && node tests/e2e/content.js "$shot" "$logs/desktop.log" > "$logs/desktop-content.log" 2>&1; then
    pass "desktop app under Xvfb trains and draws every panel ($(cat "$logs/desktop-content.log"))"
  else
    fail "desktop app under Xvfb (log: $logs/desktop.log)"; tail -n 5 "$logs/desktop.log" "$logs/desktop-content.log" 2>/dev/null | sed 's/^/      /'
  fi
  # The same lessons: opened from the command line, its first action run in frames, the lesson panel drawn.
  shot=$logs/desktop-lesson.png
  rm -f "$shot"
  if ASAN_OPTIONS=detect_leaks=0 xvfb-run -a -s "-screen 0 1400x900x24" build/native-debug/aep_desktop \
       --lesson linear-autoencoder --lesson-action --frames 150 --screenshot "$shot" > "$logs/desktop-lesson.log" 2>&1 \
     && grep -q '"id":"linear-autoencoder"' "$logs/desktop-lesson.log" && [ -s "$shot" ] \
     && ! grep -q '"step":0,' "$logs/desktop-lesson.log" \
     && node tests/e2e/content.js "$shot" "$logs/desktop-lesson.log" > "$logs/desktop-lesson-content.log" 2>&1; then
    pass "desktop app: a lesson from the command line trains its first action ($(cat "$logs/desktop-lesson-content.log"))"
  else
    fail "desktop app lesson (log: $logs/desktop-lesson.log)"; tail -n 5 "$logs/desktop-lesson.log" 2>/dev/null | sed 's/^/      /'
  fi
else
  fail "desktop app (not built: is libglfw3-dev installed?)"
fi

echo "$passed passed, $failed failed in $(at)"
[ "$failed" -eq 0 ]
