"""Train a preset on the real MNIST with PyTorch exactly the way `aep train` does, to compare test losses.

Usage (Debian's python3-torch, so /usr/bin/python3; run from anywhere):

  /usr/bin/python3 tests/reference/train_torch.py --preset NAME [--epochs N | --steps N] [--batch B] [--lr X]
                   [--seed S] [--threads 1] [--test-samples N] [--save-log FILE.csv]
                   [--init W.safetensors] [--save W.safetensors] [--no-shuffle]

What it reproduces (src/cli/main.cpp cmd_train, src/core/train.cpp, src/core/data.cpp):

  model       aep_torch.build_model(assets/presets/NAME.json) after torch.manual_seed(seed), torch's default init
  optimizer   Adam (lr, betas, eps, weight_decay as L2 added to the gradient, like torch.optim.Adam and the engine)
              or SGD (lr, momentum, weight_decay), from the preset; --lr overrides the preset's lr
  batches     B = preset batch_size unless --batch; every epoch a fresh torch.randperm of the 60000 training images
              cut into batches of B; the last batch is partial, except that a lone last image is skipped (the
              engine's BatchSampler); steps = steps_per_epoch * epochs (preset epochs unless --epochs), or --steps
              (running on across epochs)
  data        pixels/255 ("0_1") or pixels/127.5 - 1 ("-1_1"), input [B, 1, 28, 28]; the preset's corruption is
              applied to the input (gaussian, dropout, salt_pepper, occlusion, downsample as in data.cpp
              corrupt()), the clean image is the target
  step        training mode, aep_torch.loss (VAE: eps ~ N(0, I)), backward, optimizer step; stops with an error
              if the loss becomes NaN/inf (the engine keeps the previous weights and stops too)
  test        the first --test-samples (default all 10000) test images in batches of 500, eval mode (BatchNorm
              running stats, Dropout off, VAE z = mu), corruption drawn from a generator seeded 0x5eed (fresh
              for every evaluation, like the engine's Rng noise(0x5eed)), loss terms averaged weighted by batch size

Random streams: the global torch generator (torch.manual_seed(seed)) gives the initial weights, the VAE's eps and
nn.Dropout masks; a generator seeded seed + 1 gives the training corruption and one seeded seed + 2 the
permutations (the engine seeds its Trainer rng with seed + 1 and its BatchSampler with seed + 2). The numbers can
not match the engine's bit for bit (different generators), only statistically.

Output (stdout), in the engine's format:
  trained N steps in T s (S samples/s)       wall time of the training loop only (batches, corruption, steps)
  test loss: X                               or, for a VAE, test loss: total X (reconstruction Y, kl Z)
                                             (or total X (reconstruction Y, penalty Z) with an l1/contractive penalty)
plus torch's version and thread count. Progress goes to stderr as `aep train` prints it without a terminal.
--save-log writes one CSV row per step with the columns of `aep train --log`:
  step,epoch,loss,reconstruction,kl,penalty,samples_per_s

Like `aep train`: --init loads initial weights from an engine weights file (safetensors with the engine's tensor
names; model weights only, a file with optimizer state is refused), --save writes the trained weights in that
format (readable by `aep eval` / `aep train --init`), --no-shuffle takes the batches in dataset order. With the
same --init file and --no-shuffle, a preset without corruption, Dropout or VAE noise trains deterministically in
both, so the two step-by-step logs can be compared directly.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import aep_torch  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MNIST_DIR = os.path.join(REPO, "assets", "data", "mnist")
EVAL_BATCH = 500
EVAL_NOISE_SEED = 0x5EED


# ---------------------------------------------------------------------------------------------------- data

def read_file(path):
    """The raw IDX file, or PATH.gz when only the compressed one is there (the engine accepts both)."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz", "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def read_idx_images(path):
    raw = read_file(path)
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError("%s: not an IDX image file (magic %d)" % (path, magic))
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if pixels.size != count * rows * cols:
        raise ValueError("%s: holds %d bytes of pixels, expected %d" % (path, pixels.size, count * rows * cols))
    if rows != 28 or cols != 28:
        raise ValueError("%s: images are %dx%d; the models expect 28x28" % (path, rows, cols))
    return pixels.reshape(int(count), 1, int(rows), int(cols))


def read_idx_labels(path):
    raw = read_file(path)
    magic, count = np.frombuffer(raw[:8], dtype=">u4")
    if magic != 2049:
        raise ValueError("%s: not an IDX label file (magic %d)" % (path, magic))
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size != count:
        raise ValueError("%s: holds %d labels, header says %d" % (path, labels.size, count))
    return labels


def load_mnist(train):
    prefix = os.path.join(MNIST_DIR, "train" if train else "t10k")
    images = read_idx_images(prefix + "-images-idx3-ubyte")
    labels = read_idx_labels(prefix + "-labels-idx1-ubyte")
    if len(images) != len(labels):
        raise ValueError("%s: %d images but %d labels" % (prefix, len(images), len(labels)))
    return torch.from_numpy(images.copy())  # uint8 [N, 1, 28, 28]


def range_of(normalize):
    return (-1.0, 1.0) if normalize == "-1_1" else (0.0, 1.0)


def fill_batch(pixels_u8, normalize):
    """uint8 [B, 1, 28, 28] -> float32, pixels * scale + shift exactly as data.cpp fill_batch."""
    if normalize == "-1_1":
        return pixels_u8.float() * (1.0 / 127.5) - 1.0
    return pixels_u8.float() * (1.0 / 255.0)


def corrupt(cfg, normalize, gen, x):
    """data.cpp corrupt(): returns a corrupted copy of x [B, C, H, W] (x itself is the clean target)."""
    kind = cfg.get("type", "none")
    lo, hi = range_of(normalize)
    if kind == "none":
        return x
    if kind == "gaussian":
        std = float(cfg.get("std", 0.5))
        v = x + std * torch.randn(x.shape, generator=gen)
        return v.clamp(lo, hi) if cfg.get("clip", True) else v
    if kind == "dropout":
        p = float(cfg.get("p", 0.5))
        keep = 1.0 / (1.0 - p) if cfg.get("scale", False) else 1.0
        drop = torch.rand(x.shape, generator=gen) < p
        return torch.where(drop, torch.zeros_like(x), x * keep)
    if kind == "salt_pepper":
        p = float(cfg.get("p", 0.5))
        hit = torch.rand(x.shape, generator=gen) < p
        salt = torch.rand(x.shape, generator=gen) < 0.5
        noise = torch.where(salt, torch.full_like(x, lo), torch.full_like(x, hi))
        return torch.where(hit, noise, x)
    if kind == "occlusion":
        B, C, H, W = x.shape
        s = min(int(cfg.get("size", 12)), H, W)
        top = torch.randint(0, H - s + 1, (B,), generator=gen)
        left = torch.randint(0, W - s + 1, (B,), generator=gen)
        rows = torch.arange(H).view(1, H, 1)
        cols = torch.arange(W).view(1, 1, W)
        box = ((rows >= top.view(B, 1, 1)) & (rows < (top + s).view(B, 1, 1)) &
               (cols >= left.view(B, 1, 1)) & (cols < (left + s).view(B, 1, 1)))  # [B, H, W]
        return x.masked_fill(box.unsqueeze(1), lo)
    if kind == "downsample":
        # Average f x f blocks (partial blocks at the edges average what they hold), repeat over the block.
        f = int(cfg.get("factor", 2))
        H, W = x.shape[2], x.shape[3]
        sums = F.avg_pool2d(x, f, stride=f, ceil_mode=True, divisor_override=1)
        counts = F.avg_pool2d(torch.ones(1, 1, H, W), f, stride=f, ceil_mode=True, divisor_override=1)
        avg = sums / counts
        return avg.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)[:, :, :H, :W].contiguous()
    raise ValueError("unknown corruption %r" % kind)


class BatchSampler:
    """train.cpp BatchSampler: a permutation per epoch, batches of B, a lone last image skipped."""

    def __init__(self, count, batch, gen, shuffle=True):
        self.count, self.batch, self.gen, self.shuffle = count, batch, gen, shuffle
        self.order = torch.randperm(count, generator=gen) if shuffle else torch.arange(count)
        self.pos = 0
        self.epoch = 0

    def steps_per_epoch(self):
        full, rest = divmod(self.count, self.batch)
        return full + (1 if rest >= 2 or full == 0 else 0)

    def next(self):
        left = self.count - self.pos
        if left == 0 or (left == 1 and self.count > 1):
            self.pos = 0
            self.epoch += 1
            if self.shuffle:
                self.order = torch.randperm(self.count, generator=self.gen)
            left = self.count
        n = min(self.batch, left)
        idx = self.order[self.pos:self.pos + n]
        self.pos += n
        return idx


# ---------------------------------------------------------------------------------------------------- weights

def write_weights(path, model):
    """The model's state_dict as an engine weights file (safetensors, F32 / I64 scalars for
    num_batches_tracked, the engine's tensor names), loadable with `aep train --init` / `aep eval`."""
    header = {"__metadata__": {"format": "aep-weights-1", "preset": json.dumps(model.preset)}}
    blobs, offset = [], 0
    for name, t in model.state_dict().items():
        a = t.detach().cpu().numpy()
        if a.dtype == np.float32:
            dtype, raw = "F32", a.astype("<f4").tobytes()
        elif a.dtype == np.int64:
            dtype, raw = "I64", a.astype("<i8").tobytes()
        else:
            raise TypeError("%s: unsupported dtype %s" % (name, a.dtype))
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_weights(path, model):
    """Load an engine weights file (`aep train --save`, or write_weights) into the model, all tensors
    required (like the engine's load_weights). Optimizer state in the file is not supported here."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    if "optimizer.step" in header:
        raise SystemExit("%s: holds optimizer state; train_torch.py only loads model weights" % path)
    state = {}
    for name, e in header.items():
        if name.startswith("optimizer."):
            continue
        a, b = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        arr = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dt).reshape(e["shape"]).copy()
        state[name] = torch.from_numpy(arr)
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------------- training

def make_optimizer(preset, params, lr_override):
    cfg = preset.get("optimizer", {})
    kind = cfg.get("type", "adam")
    lr = float(lr_override if lr_override is not None else cfg.get("lr", 1e-3))
    wd = float(cfg.get("weight_decay", 0.0))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd), kind, lr
    if kind != "adam":
        raise ValueError("unknown optimizer %r" % kind)
    betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=float(cfg.get("eps", 1e-8)), weight_decay=wd), kind, lr


def evaluate(model, test_u8, max_samples=0, batch=EVAL_BATCH):
    """train.cpp evaluate(): eval mode, fixed-seed corruption, terms averaged weighted by batch size."""
    p = model.preset
    normalize = p.get("normalize", "0_1")
    cfg = p.get("corruption", {"type": "none"})
    total = len(test_u8) if not max_samples else min(max_samples, len(test_u8))
    noise = torch.Generator().manual_seed(EVAL_NOISE_SEED)
    sums = [0.0, 0.0, 0.0, 0.0]
    with torch.no_grad():
        for start in range(0, total, batch):
            n = min(batch, total - start)
            target = fill_batch(test_u8[start:start + n], normalize)
            x = corrupt(cfg, normalize, noise, target)
            terms = aep_torch.loss(model, x, target, training=False)
            for i, t in enumerate(terms):
                sums[i] += float(t) * n
    return [s / total for s in sums]


def format_loss(what, terms, is_vae):
    total, rec, kl, pen = terms
    if is_vae:
        return "%s: total %.6f (reconstruction %.6f, kl %.6f)" % (what, total, rec, kl)
    if pen > 0:
        return "%s: total %.6f (reconstruction %.6f, penalty %.6f)" % (what, total, rec, pen)
    return "%s: %.6f" % (what, total)


def fmt_time(s):
    """main.cpp fmt_time: minutes:seconds, rounded to the second."""
    t = int(max(0.0, s) + 0.5)
    return "%d:%02d" % (t // 60, t % 60)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train an Autoencoder Playground preset with PyTorch like `aep train`.")
    ap.add_argument("--preset", required=True, help="preset name (assets/presets/NAME.json) or a .json path")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=int, help="epochs (default: the preset's)")
    g.add_argument("--steps", type=int, help="optimizer steps (instead of epochs)")
    ap.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    ap.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    ap.add_argument("--seed", type=int, default=1, help="seed (default 1, as aep train)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--test-samples", type=int, default=0, help="evaluate on the first N test images (default all)")
    ap.add_argument("--save-log", metavar="FILE.csv", help="per-step CSV log (columns of aep train --log)")
    ap.add_argument("--init", metavar="W.safetensors", help="initial weights (engine format, as aep train --init)")
    ap.add_argument("--save", metavar="W.safetensors", help="save the trained weights (engine format)")
    ap.add_argument("--no-shuffle", action="store_true", help="batches in dataset order (as aep train --no-shuffle)")
    a = ap.parse_args(argv)
    for name in ("epochs", "steps", "batch", "threads"):
        v = getattr(a, name)
        if v is not None and v < 1:
            ap.error("--%s must be at least 1" % name)
    if a.test_samples < 0:
        ap.error("--test-samples must be at least 1")
    if a.batch is not None and a.batch > 4096:
        ap.error("--batch must be at most 4096 (as aep train)")
    if a.lr is not None and not (0.0 < a.lr <= 10.0):
        ap.error("--lr must be in (0, 10] (as aep train)")

    torch.set_num_threads(a.threads)
    preset = aep_torch.load_preset(a.preset, os.path.join(REPO, "assets"))
    training = preset.get("training", {})
    batch = a.batch or int(training.get("batch_size", 64))
    epochs = a.epochs or int(training.get("epochs", 1))
    normalize = preset.get("normalize", "0_1")
    corruption = preset.get("corruption", {"type": "none"})

    torch.manual_seed(a.seed)
    model = aep_torch.build_model(preset)
    if a.init:
        read_weights(a.init, model)
    optimizer, opt_kind, lr = make_optimizer(preset, model.parameters(), a.lr)
    corrupt_gen = torch.Generator().manual_seed(a.seed + 1)
    sampler_gen = torch.Generator().manual_seed(a.seed + 2)

    train_u8, test_u8 = load_mnist(True), load_mnist(False)
    sampler = BatchSampler(len(train_u8), batch, sampler_gen, shuffle=not a.no_shuffle)
    total = a.steps or sampler.steps_per_epoch() * epochs
    n_params = sum(p.numel() for p in model.parameters())
    malloc = " ".join("%s=%s" % (k, os.environ[k]) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
                      if k in os.environ)
    print("torch %s, %d thread(s)%s" % (torch.__version__, torch.get_num_threads(),
                                        ", " + malloc if malloc else ""), flush=True)
    sys.stderr.write("training %s (%d parameters, torch) on %d images: %d steps of batch %d, %s lr %g\n" %
                     (preset.get("name", a.preset), n_params, len(train_u8), total, batch, opt_kind, lr))

    log = None
    if a.save_log:
        log = open(a.save_log, "w")
        log.write("step,epoch,loss,reconstruction,kl,penalty,samples_per_s\n")

    samples = 0
    report_every = max(1, total // 10)
    t0 = time.perf_counter()
    for step in range(1, total + 1):
        idx = sampler.next()
        n = len(idx)
        target = fill_batch(train_u8[idx], normalize)
        x = corrupt(corruption, normalize, corrupt_gen, target)
        model.train(True)
        optimizer.zero_grad(set_to_none=True)
        terms = aep_torch.loss(model, x, target, training=True)
        terms[0].backward()
        L = [float(t) for t in terms]
        if not math.isfinite(L[0]):
            raise SystemExit("training stopped at step %d: the loss became NaN or infinite. Try a smaller learning "
                             "rate (now %g) or a smaller KL/penalty weight." % (step, lr))
        optimizer.step()
        samples += n
        el = time.perf_counter() - t0
        sps = samples / max(el, 1e-9)
        if log:
            log.write("%d,%d,%.7g,%.7g,%.7g,%.7g,%.1f\n" % (step, sampler.epoch + 1, L[0], L[1], L[2], L[3], sps))
        if step % report_every == 0 or step == total or step == 1:
            sys.stderr.write("step %d/%d epoch %d loss %.5f (%.0f samples/s, ETA %s)\n" %
                             (step, total, sampler.epoch + 1, L[0], sps, fmt_time(el / step * (total - step))))
    train_s = time.perf_counter() - t0
    if log:
        log.close()
    print("trained %d steps in %.1f s (%.0f samples/s)" % (total, train_s, samples / train_s), flush=True)
    print(format_loss("test loss", evaluate(model, test_u8, a.test_samples), model.is_vae), flush=True)
    if a.save:
        write_weights(a.save, model)
        print("saved %s" % a.save, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
