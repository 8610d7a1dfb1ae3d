"""The exported Keras script's weight loading, run without TensorFlow (not installable here): takes its WEIGHTS
table, apply_layout and load_safetensors from the script's source, applies them to our .safetensors file and checks
that every Keras weight equals, bit for bit, what keras_tfjs.js --dump loaded into TensorFlow.js layers (whose
eval must match `aep eval --clean`). So the Python's layout changes are the ones the TF.js check verified.
usage: /usr/bin/python3 check_keras_weights.py NAME_keras.py W.safetensors DUMP_PREFIX"""
import ast
import json
import struct
import sys

import numpy as np

script, weights, dump = sys.argv[1:]
tree = ast.parse(open(script).read(), script)
wanted = [node for node in tree.body
          if (isinstance(node, ast.FunctionDef) and node.name in ("apply_layout", "load_safetensors"))
          or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets))]
ns = {"np": np, "json": json, "struct": struct}
exec(compile(ast.Module(body=wanted, type_ignores=[]), script, "exec"), ns)

state = ns["load_safetensors"](weights)
blob = np.fromfile(dump + ".bin", dtype=np.float32)
tfjs = {}
for e in json.load(open(dump + ".json")):
    n = int(np.prod(e["shape"]))
    tfjs[(e["layer"], e["weight"])] = blob[e["offset"]:e["offset"] + n].reshape(e["shape"])

bad = []
for layer, weight, source, ops in ns["WEIGHTS"]:
    ours = ns["apply_layout"](state[source], ops)
    theirs = tfjs.pop((layer, weight), None)
    if theirs is None or ours.shape != theirs.shape or not np.array_equal(ours, theirs):
        bad.append("%s.%s (from %s)" % (layer, weight, source))
bad += ["%s.%s is not in WEIGHTS" % k for k in sorted(tfjs)]
if bad:
    sys.exit("differs from TF.js: " + ", ".join(bad))
print("%d Keras weights equal to TF.js's" % len(ns["WEIGHTS"]))
