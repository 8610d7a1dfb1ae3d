#!/usr/bin/python3
"""numpy reference for the checkerboard index (src/core/metrics.hpp; checked by tests/test_instruments.cpp).

    /usr/bin/python3 tests/reference/make_checkerboard.py     # writes tests/reference/checkerboard.safetensors

The index of a 28x28 image is computed here from its 2-D FFT (float64): the power at the three Nyquist bins
(14, 0), (0, 14) and (14, 14) over the power at every bin but (0, 0); 0 for a constant image. The engine computes
it from alternating-sign sums instead, so the two are independent routes to the same number. Deterministic (seeded
numpy); runs in well under a second.

checkerboard.safetensors
------------------------
  images  F32 [n, 28, 28]  a constant image, a pure (pi, pi) checkerboard, row and column stripes, a smooth blob,
                           the blob with a faint checkerboard added, a stroke, uniform noise, and random images with
                           a parity pattern of random strength mixed in
  index   F32 [n]          the index of each image
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from make_reference import write_safetensors  # noqa: E402

SIDE = 28


def index(img):
    power = np.abs(np.fft.fft2(img.astype(np.float64))) ** 2
    rest = power.sum() - power[0, 0]
    nyquist = power[SIDE // 2, 0] + power[0, SIDE // 2] + power[SIDE // 2, SIDE // 2]
    return 0.0 if rest <= 1e-12 * max(power[0, 0], 1.0) else nyquist / rest


def images():
    rng = np.random.default_rng(16)
    i, j = np.mgrid[0:SIDE, 0:SIDE]
    checker = ((i + j) % 2).astype(np.float64)
    blob = np.exp(-((i - 13.5) ** 2 + (j - 12.0) ** 2) / 40.0)
    stroke = np.clip(1.5 - np.abs(i - 0.8 * j - 4.0), 0, 1)
    out = [
        np.full((SIDE, SIDE), 0.3),        # constant: no variation, index 0
        checker,                            # all variation at (pi, pi): index 1
        (i % 2).astype(np.float64),         # rows alternate: index 1
        0.2 + 0.5 * (j % 2),                # columns alternate: index 1
        blob,                               # smooth: almost 0
        blob + 0.02 * checker,              # a faint checkerboard on it
        stroke,
        rng.uniform(0, 1, (SIDE, SIDE)),    # white noise: about 3 / 783
    ]
    for _ in range(8):
        parity = rng.uniform(0, 1, (2, 2))
        out.append(np.clip(rng.uniform(0, 1, (SIDE, SIDE)) * blob + rng.uniform(0, 0.3) * np.tile(parity, (14, 14)), 0, 1))
    return np.stack(out).astype(np.float32)


def main():
    x = images()
    idx = np.array([index(im) for im in x], dtype=np.float32)
    path = os.path.join(HERE, "checkerboard.safetensors")
    write_safetensors(path, [("images", x), ("index", idx)])
    print("%s: %d images, index %s" % (path, len(x), " ".join("%.4g" % v for v in idx)))


if __name__ == "__main__":
    main()
