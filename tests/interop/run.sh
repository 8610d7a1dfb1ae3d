#!/usr/bin/env bash
# The exported code run in the real frameworks, for every preset in assets/presets:
#   - train 30 steps natively and save the weights;
#   - PyTorch (Debian's python3-torch, no safetensors package, MNIST read from the .gz files): the exported script
#     loads the weights strictly, its --eval must give `aep eval --clean`'s loss (relative 1e-4), and its first
#     training steps from those weights, on the same batches in file order, `aep train --init --clean`'s losses
#     (steps 1 and 3 to 1e-4; --clean switches off the corruption and a VAE's sampling in both, whose random
#     numbers differ). For presets with that randomness, step 1 with it on is compared too, within 2%: different
#     noise moved it by 0.03-0.6% in trial runs, while leaving the corruption out moved it by 2.8% (denoise) and 5.6%
#     (overcomplete-tanh); it cannot see a VAE's sampling, which moved it by 0.1%. A file with optimizer.* tensors
#     loads with a message;
#   - Keras: the exported Python must compile (Keras itself is not installable here), and the plan it is written
#     from, built with TensorFlow.js layers in node (tests/interop/keras_tfjs.js), must give `aep eval --clean`'s
#     loss (relative 1e-4), and the Keras script's own weight loading (its WEIGHTS table and numpy layout code, run
#     without TensorFlow) must give exactly the arrays TF.js loaded.
# Besides the presets, two variants with the L1 reconstruction loss (mean and sum) are checked the same way.
# Needs build/native-release/aep, /usr/bin/python3 with torch and numpy, node with tests/interop/node_modules
# (npm ci) and MNIST in assets/data/mnist (scripts/bootstrap.sh). Files: build/interop/.
# Prints PASS/FAIL per check and "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
aep=${AEP:-$root/build/native-release/aep}
data=$root/assets/data/mnist
out=$root/build/interop
py=/usr/bin/python3
torch_samples=1000  # test images for the PyTorch comparison
tfjs_samples=500    # and for TF.js (its conv layers are slow in node)
steps=3             # training steps compared
export OMP_NUM_THREADS=1
passed=0 failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
t_start=$(date +%s)

# total LINE: the "total" value of a "... loss: total X reconstruction ..." line.
total() { sed -n 's/.*total \([^ ]*\).*/\1/p' <<<"$1" | head -n 1; }
# close NAME OURS THEIRS TOL: passes when |theirs - ours| <= TOL |ours| (both must be finite numbers).
close() {
  local name=$1 a=$2 b=$3 tol=$4 rel
  if rel=$(awk -v a="$a" -v b="$b" -v t="$tol" 'BEGIN {
        if (a == "" || b == "" || a !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) exit 2;
        d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; r = m > 0 ? d / m : d;
        printf "%.1e", r; exit !(r <= t) }'); then
    pass "$name: $b vs aep $a (relative difference $rel)"
  else
    fail "$name: '$b' vs aep '$a' (relative difference ${rel:-n/a}, tolerance $tol)"
  fi
}

[ -x "$aep" ] || { fail "no $aep (cmake --preset native-release && cmake --build build/native-release --target aep)"; echo "$passed passed, $failed failed"; exit 1; }
[ -f "$root/tests/interop/node_modules/@tensorflow/tfjs-layers/package.json" ] \
  || { fail "no tests/interop/node_modules (cd tests/interop && npm ci)"; echo "$passed passed, $failed failed"; exit 1; }
mkdir -p "$out"
# The PyTorch scripts read a folder with only the gzipped files: their .gz path is exercised too.
gz=$out/mnist-gz
mkdir -p "$gz"
for f in train-images-idx3-ubyte t10k-images-idx3-ubyte; do
  [ -f "$gz/$f.gz" ] || gzip -c -1 "$data/$f" > "$gz/$f.gz"
done

# The L1 reconstruction loss is in no preset of the course: two variants of presets use it (mean and sum).
mkdir -p "$out/variants"
"$py" - "$root/assets/presets" "$out/variants" <<'PY' || fail "writing the L1 preset variants"
import json, sys
src, dst = sys.argv[1], sys.argv[2]
for base, name, reduction in (("linear", "linear-l1", "mean"), ("mlp-128-64", "mlp-128-64-l1-sum", "sum")):
    p = json.load(open("%s/%s.json" % (src, base)))
    p["name"], p["loss"] = name, dict(p.get("loss", {}), reconstruction="l1", reduction=reduction)
    json.dump(p, open("%s/%s.json" % (dst, name), "w"), indent=1)
PY

for preset_file in "$root"/assets/presets/*.json "$out"/variants/*.json; do
  p=$(basename "$preset_file" .json)
  w=$out/$p.safetensors
  if ! "$aep" train --preset "$preset_file" --steps 30 --seed 1 --test-samples 100 --save "$w" >"$out/$p.train.log" 2>&1; then
    fail "$p: aep train (log: $out/$p.train.log)"; continue
  fi
  ours_torch=$(total "$("$aep" eval --preset "$preset_file" --weights "$w" --clean --test-samples $torch_samples 2>&1)")
  ours_tfjs=$(total "$("$aep" eval --preset "$preset_file" --weights "$w" --clean --test-samples $tfjs_samples 2>&1)")
  "$aep" train --preset "$preset_file" --init "$w" --no-shuffle --clean --steps $steps --test-samples 2 --log "$out/$p.steps.csv" \
    >"$out/$p.steps.log" 2>&1 || fail "$p: aep train --init --clean (log: $out/$p.steps.log)"
  ours_step() { awk -F, -v s="$1" '$1 == s { print $3 }' "$out/$p.steps.csv"; }

  # PyTorch
  if "$aep" export --preset "$preset_file" --pytorch --weights "$w" >"$out/$p.py" && "$py" -m py_compile "$out/$p.py"; then
    if "$py" "$out/$p.py" --data "$gz" --eval --test-samples $torch_samples --train-steps $steps --no-shuffle --clean \
         >"$out/$p.torch.log" 2>&1; then
      log=$(cat "$out/$p.torch.log")
      close "$p: PyTorch eval ($torch_samples test images)" "$ours_torch" "$(total "$(grep '^clean test loss' <<<"$log")")" 1e-4
      close "$p: PyTorch training step 1 (file order, --clean)" "$(ours_step 1)" \
        "$(total "$(grep '^step 1 loss' <<<"$log")")" 1e-4
      close "$p: PyTorch training step $steps" "$(ours_step $steps)" "$(total "$(grep "^step $steps loss" <<<"$log")")" 1e-4
    else
      fail "$p: PyTorch script (log: $out/$p.torch.log)"; tail -n 5 "$out/$p.torch.log" | sed 's/^/      /'
    fi
  else
    fail "$p: aep export --pytorch, py_compile"
  fi

  # The preset's own randomness on (different random numbers: a loose check, see the top).
  if grep -q '"corruption"\|"mu"' "$preset_file" && [ -f "$out/$p.py" ]; then
    "$aep" train --preset "$preset_file" --init "$w" --no-shuffle --steps 1 --test-samples 2 --log "$out/$p.random.csv" \
      >"$out/$p.random.log" 2>&1
    close "$p: PyTorch training step 1 with the preset's corruption / sampling" \
      "$(awk -F, '$1 == 1 { print $3 }' "$out/$p.random.csv")" \
      "$(total "$("$py" "$out/$p.py" --data "$gz" --train-steps 1 --no-shuffle 2>&1 | grep '^step 1 loss')")" 2e-2
  fi

  # Keras: the Python compiles; its plan runs in TensorFlow.js.
  if "$aep" export --preset "$preset_file" --keras --weights "$w" >"$out/${p}_keras.py" && "$py" -m py_compile "$out/${p}_keras.py" \
     && "$aep" export --preset "$preset_file" --keras-plan >"$out/$p.plan.json"; then
    if node "$root/tests/interop/keras_tfjs.js" "$out/$p.plan.json" "$w" "$data" $tfjs_samples \
         --dump "$out/$p.tfjs-weights" >"$out/$p.tfjs.log" 2>&1; then
      close "$p: Keras plan in TF.js layers, eval ($tfjs_samples test images)" "$ours_tfjs" \
        "$(total "$(grep '^clean test loss' "$out/$p.tfjs.log")")" 1e-4
      if o=$("$py" "$root/tests/interop/check_keras_weights.py" "$out/${p}_keras.py" "$w" "$out/$p.tfjs-weights" 2>&1); then
        pass "$p: the Keras script's weight loading (WEIGHTS, apply_layout; numpy) gives TF.js's arrays: $o"
      else
        fail "$p: the Keras script's weight loading: $o"
      fi
    else
      fail "$p: TF.js (log: $out/$p.tfjs.log)"; tail -n 5 "$out/$p.tfjs.log" | sed 's/^/      /'
    fi
  else
    fail "$p: aep export --keras / --keras-plan, py_compile"
  fi
done

# Weights saved with the optimizer state (as the page's "weights + optimizer" file): the script drops those tensors,
# says so, and loads the rest strictly.
if "$aep" train --preset linear --steps 2 --test-samples 2 --save-optimizer --save "$out/linear-opt.safetensors" >/dev/null 2>&1 \
   && o=$("$py" "$out/linear.py" --data "$gz" --weights "$out/linear-opt.safetensors" --eval --test-samples 10 2>&1) \
   && grep -q 'dropping its [0-9]* optimizer' <<<"$o" && grep -q '^clean test loss' <<<"$o"; then
  pass "linear: PyTorch loads a file with optimizer.* tensors (drops them, says so, loads the model strictly)"
else
  fail "linear: PyTorch with optimizer.* tensors: ${o:-no output}"
fi

echo "interop stage: $(( $(date +%s) - t_start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
