"""Loads a weights file the page downloaded into the PyTorch twin of its model (tests/reference/aep_torch.py, built
from the preset the file names in its metadata) with load_state_dict(strict=True), PyTorch's default.

    /usr/bin/python3 tests/e2e/load_strict.py FILE.safetensors            # must load; prints what it loaded
    /usr/bin/python3 tests/e2e/load_strict.py FILE.safetensors --refused  # must be refused (optimizer.* keys)
Exits non-zero when the outcome differs."""
import json
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "reference"))
from aep_torch import build_model  # noqa: E402
from make_reference import read_safetensors  # noqa: E402


def main():
    path, refused = sys.argv[1], "--refused" in sys.argv[2:]
    meta, arrays = read_safetensors(path)
    model = build_model(json.loads(meta["preset"]))
    state = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        if refused and "Unexpected key(s)" in str(e):
            print("refused as expected: %s" % str(e).splitlines()[0][:160])
            return 0
        print("load_state_dict failed: %s" % e)
        return 1
    if refused:
        print("loaded although it should have been refused")
        return 1
    model.eval()
    with torch.no_grad():
        out = model.reconstruct(torch.full((2, 1, 28, 28), 0.5))
    ok = bool(torch.isfinite(out).all())
    print("loaded %d tensors strict into %s; a forward pass gives %s output" %
          (len(state), json.loads(meta["preset"])["name"], "finite" if ok else "NON-FINITE"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
