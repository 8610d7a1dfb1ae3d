"""PyTorch peer of `aep bench`: the same models A and B (built from the same preset files by
tests/reference/aep_torch.py), the same MNIST batches of 64, MSE and Adam, 1 thread; median samples/s of
several timed runs after a warm-up. bench/run.sh runs it twice: plain, and with glibc's allocator told to
keep its buffers (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_), i.e. PyTorch at its best. --presets adds every
preset of assets/presets as `aep bench --only presets` trains it: its own loss (aep_torch.loss), inputs in its
normalization, Adam at its learning rate (no input corruption: the engine's denoise run corrupts its batches).
--gemm adds model A's products as `aep bench --only gemm` times them (same names; torch.mm / addmm on the BLAS it
is linked with), in GFLOP/s.

usage: /usr/bin/python3 bench/torch_bench.py [--seconds S] [--runs N] [--warmup S] [--system NAME] [--json FILE]
       [--presets] [--gemm]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import aep_torch  # noqa: E402

MODELS = [
    ("train A (mlp 784-256-32-256-784)", os.path.join(ROOT, "bench", "model-a.json")),
    ("train B (preset conv)", "conv"),
]


def load_train_images(folder):
    path = os.path.join(folder, "train-images-idx3-ubyte")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw[:4].tobytes() != b"\x00\x00\x08\x03":
        sys.exit(f"{path}: not an IDX image file (run scripts/bootstrap.sh to fetch MNIST)")
    return torch.from_numpy(raw[16:].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)


def measure(step, warmup, seconds, runs):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup:
        step()
    rates = []
    for _ in range(runs):
        calls, t0 = 0, time.perf_counter()
        while True:
            step()
            calls += 1
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        rates.append(calls * 64 / el)
    rates.sort()
    return float(np.median(rates)), (rates[-1] - rates[0]) / float(np.median(rates))


# `aep bench`'s GEMM cases: name, op(A) transposed, op(B) transposed, M, N, K, beta.
GEMM_CASES = [
    ("gemm W*x^T 256x64x784 (enc fwd)", False, True, 256, 64, 784, 0.0),
    ("gemm dy*W 64x784x256 (enc dx)", False, False, 64, 784, 256, 0.0),
    ("gemm dy^T*x 256x784x64 (enc dW)", True, False, 256, 784, 64, 1.0),
    ("gemm W*x^T 784x64x256 (dec fwd)", False, True, 784, 64, 256, 0.0),
    ("gemm dy*W 64x256x784 (dec dx)", False, False, 64, 256, 784, 0.0),
    ("gemm dy^T*x 784x256x64 (dec dW)", True, False, 784, 256, 64, 1.0),
]


def bench_gemm(ta, tb, M, N, K, beta, args):
    gen = torch.Generator().manual_seed(5)
    a = torch.rand(K, M, generator=gen).t() if ta else torch.rand(M, K, generator=gen)
    b = torch.rand(N, K, generator=gen).t() if tb else torch.rand(K, N, generator=gen)
    c = torch.zeros(M, N)

    def step():
        if beta == 0.0:
            torch.mm(a, b, out=c)
        else:
            c.addmm_(a, b)

    gflop = 2.0 * M * N * K * 1e-9
    rate, spread = measure(step, args.warmup, args.seconds, args.runs)
    return rate / 64 * gflop, spread  # measure() counts 64 samples per call


def bench_model(preset_ref, images, args, own_loss=False):
    torch.manual_seed(1)
    preset = aep_torch.load_preset(preset_ref, os.path.join(ROOT, "assets"))
    model = aep_torch.build_model(preset)
    model.train()
    lr = float(preset.get("optimizer", {}).get("lr", 1e-3)) if own_loss else 1e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if own_loss and preset.get("normalize") == "-1_1":
        images = images * 2 - 1
    gen = torch.Generator().manual_seed(3)
    state = {"perm": torch.randperm(images.shape[0], generator=gen), "pos": 0}

    def step():
        if state["pos"] + 64 > images.shape[0]:
            state["perm"], state["pos"] = torch.randperm(images.shape[0], generator=gen), 0
        x = images[state["perm"][state["pos"]:state["pos"] + 64]]
        state["pos"] += 64
        opt.zero_grad()
        if own_loss:
            loss = aep_torch.loss(model, x, x)[0]
        else:
            loss = F.mse_loss(model.decoder(model.encoder(x)).reshape(x.shape), x)
        loss.backward()
        opt.step()

    return measure(step, args.warmup, args.seconds, args.runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--system", default=None, help="label of this run in the table / JSON")
    ap.add_argument("--json", default=None)
    ap.add_argument("--data", default=os.path.join(ROOT, "assets", "data", "mnist"))
    ap.add_argument("--presets", action="store_true", help="every preset too, with its own loss")
    ap.add_argument("--gemm", action="store_true", help="model A's GEMM products too (GFLOP/s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tuned = "MALLOC_MMAP_THRESHOLD_" in os.environ
    system = args.system or ("pytorch tuned" if tuned else "pytorch")
    images = load_train_images(args.data)
    records = []
    print(f"{'system':<16} {'arch':<22} {'workload':<34} {'samples/s':>12} {'GFLOP/s':>9} {'spread':>7}")
    work = [(w, ref, False) for w, ref in MODELS]
    if args.presets:
        names = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "assets", "presets")) if f.endswith(".json"))
        work += [("train preset " + n, n, True) for n in names]
    arch = f"torch {torch.__version__.split('a')[0]}, 1 thread"
    if args.gemm:
        for workload, ta, tb, M, N, K, beta in GEMM_CASES:
            gflops, spread = bench_gemm(ta, tb, M, N, K, beta, args)
            print(f"{system:<16} {arch:<22} {workload:<34} {'-':>12} {gflops:9.1f} {100 * spread:6.0f}%", flush=True)
            records.append({"system": system, "arch": arch, "workload": workload, "gflops": gflops, "spread": spread})
    for workload, ref, own_loss in work:
        sps, spread = bench_model(ref, images, args, own_loss)
        print(f"{system:<16} {arch:<22} {workload:<34} {sps:12.0f} {'-':>9} {100 * spread:6.0f}%", flush=True)
        records.append({"system": system, "arch": arch, "workload": workload, "samples_per_s": sps, "spread": spread})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": records}, f, indent=1)


if __name__ == "__main__":
    main()
