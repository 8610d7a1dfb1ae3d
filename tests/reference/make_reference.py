#!/usr/bin/python3
"""PyTorch reference vectors for the Autoencoder Playground engine (checked by tests/test_reference.cpp).

Run with Debian's python3-torch (the pyenv python3 on PATH has no torch):

    /usr/bin/python3 tests/reference/make_reference.py           # writes layers.safetensors, presets.safetensors
    /usr/bin/python3 tests/reference/make_reference.py --check   # every preset builds and runs in torch
    ... --check --aep path/to/aep     # also compare parameter counts with `aep presets` (default:
                                      # build/native-release/aep when it exists)

The output is deterministic (same bytes on every run with the same torch build). Runs in ~5 s on one thread.

Only torch and numpy are used; safetensors files are written by write_safetensors() below.

layers.safetensors
------------------
One case per layer configuration. __metadata__["cases"] is a JSON string {case: {"spec": <layer spec as in a
preset>, "training": bool}}. Tensors of case C (shapes are PyTorch's: flat activations are [B, F]):
  C.x, C.y, C.dy, C.dx                 input, output, upstream gradient (random), input gradient
  C.param.<name>, C.grad.<name>        parameters (before forward) and their gradients
  C.buffer.<name>, C.buffer_after.<name>      float buffers (running_mean, running_var) before / after forward
  C.counter.<name>, C.counter_after.<name>    int64 buffers (num_batches_tracked), scalars, before / after

presets.safetensors
-------------------
For each preset P in PRESET_RUNS, 5 Adam steps (the preset's optimizer: lr 1e-3, PyTorch defaults) on 5
batches of 8 images with the engine's loss in training mode. __metadata__["presets"] is a JSON string
{P: {"steps": 5, "batch": 8, "latent": n or 0, "tensors": [{"name", "shape", "init", "bound"}, ...]}} listing
every float tensor of the state_dict in order (num_batches_tracked excluded) with its initialization.

Deterministic formulas (reproduced in tests/test_reference.cpp; all integer arithmetic is mod 2^32):
  mix(x)      = x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
  u(seed, i)  = (mix(i * 0x9e3779b9 + mix(seed + 0x68e31da4)) >> 8) * 2^-24      in [0, 1), exact in float32
  parameters  tensor t (its index in the list above), element i (flat, row-major):
                "uniform": float32(bound) * float32(2 u(t, i) - 1)   (one float32 multiply)
                          bound = 1 / sqrt(fan_in) in float32, fan_in = weight.shape[1] * kernel area
                          (ConvTranspose2d: out_channels * k * k; tied Linear bias: its in_features),
                          the bound of PyTorch's default init
                "ones" / "zeros": BatchNorm weight, running_var / bias, running_mean
              num_batches_tracked starts at 0
  inputs      step s (0-based), x[b, 0, r, c] = u(0x10000 + s, b * 784 + r * 28 + c); target = input
  VAE noise   P.eps [steps, batch, latent], drawn by torch.randn (seed 1234 + preset index)

Tensors of preset P:
  P.loss                    F32 [steps, 4]: total, reconstruction, kl, penalty returned by each step
  P.init.<name>.stats       F32 [2]: sum and sum of squares (computed in float64) of the initial tensor
  P.grad1.<name>[.sub/.stats]  gradient of the first step (before the optimizer update)
  P.final.<name>[.sub/.stats]  parameters and float buffers after the 5 steps
  P.final.<name>            I64 scalar for num_batches_tracked
  P.loss_env                F32 [steps, 4]: noise envelope of the losses (see below)
  P.final.<name>.env        F32: envelope of the stored values of P.final.<name>[.sub], either aligned with
                            them, or (when P.final.<name>.env_idx exists) for the stored values at those
                            I64 indices only; present where it exceeds 1/10 of the strict tolerance
  P.final.<name>.env_stats  F32 [2]: envelope of [sum, sumsq] (subsampled tensors only, when non-zero)
  A tensor of n <= L elements is stored whole as "<...>.<name>"; a larger one as "<...>.<name>.sub":
  the flat elements 0, k, 2k, ... (< n) with k = ceil(n / L), plus "<...>.<name>.stats" = [sum, sumsq]
  over all n elements, computed in float64 and stored as float32. L = 4096 for final, 1024 for grad1.

Noise envelope: Adam divides each update by the gradient's running RMS, so an element whose gradient is
mostly float32 rounding noise (typically the bias of a layer followed by BatchNorm, whose true gradient is 0)
moves by up to ~lr per step in a direction that differs between any two float32 implementations, and
moves what depends on it (BatchNorm running means, ...). noise_envelope() finds such elements by comparing
float32 and float64 gradients along a float64 run and measures, by replaying the run in float64 with
random perturbations of their updates, how far every final value and loss can move; the C++ test allows
2 * envelope on top of its strict tolerance. Everything else is held to the strict tolerance.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ next to the fixtures
sys.path.insert(0, HERE)
import aep_torch  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PRESET_DIR = os.path.join(ROOT, "assets", "presets")

STEPS = 5
BATCH = 8
SUBSAMPLE = 4096  # final parameters
GRAD_SUBSAMPLE = 1024  # first-step gradients
FLAG_R = 1e-3  # gradient elements whose float32 relative error exceeds this are noise-prone (noise_envelope)
NOISE_GAIN = 10  # the engine's float32 gradient error may be this many times torch's
ENV_FLOOR_PARAM, ENV_FLOOR_BUFFER = 2e-6, 1e-6  # a tensor's envelope is stored if it exceeds these (1/10 of the
# C++ test's strict tolerances of 0.02 lr for parameters and 1e-5 for buffers) anywhere
# linear, conv and vae-mlp cover BatchNorm1d, convolutions and the VAE; sparse, contractive and tied exercise
# the L1 penalty, the contractive penalty and weight tying.
PRESET_RUNS = ["linear", "conv", "vae-mlp", "sparse", "contractive", "tied"]

# ----------------------------------------------------------------------------------------- safetensors


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray float32 | int64). Header padded with spaces to a multiple of 8."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, arr in tensors:
        arr = np.asarray(arr)
        if arr.dtype == np.float32:
            dtype, raw = "F32", arr.astype("<f4").tobytes()
        elif arr.dtype == np.int64:
            dtype, raw = "I64", arr.astype("<i8").tobytes()
        else:
            raise TypeError("%s: unsupported dtype %s" % (name, arr.dtype))
        if name in header:
            raise ValueError("duplicate tensor name " + name)
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Minimal reader (for self-checks): returns (metadata, {name: np.ndarray})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        out[name] = np.frombuffer(data[base + a:base + b], dtype=dt).reshape(e["shape"])
    return meta, out


def npf(t):
    return t.detach().cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------------- hash formulas

M32 = np.uint64(0xFFFFFFFF)


def mix(x):
    x = np.asarray(x, dtype=np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


def hash_u(seed, n):
    """u(seed, i) for i = 0..n-1 as float32 in [0, 1)."""
    i = np.arange(n, dtype=np.uint64)
    s = mix(np.uint64((seed + 0x68E31DA4) & 0xFFFFFFFF))
    x = mix(((i * np.uint64(0x9E3779B9)) + s) & M32)
    return ((x >> np.uint64(8)).astype(np.float64) / float(1 << 24)).astype(np.float32)


def input_batch(step, batch=BATCH):
    side = aep_torch.IMAGE_SIDE
    return torch.from_numpy(hash_u(0x10000 + step, batch * side * side).reshape(batch, 1, side, side))


def init_rule(model, name):
    """("uniform", bound) | ("ones", 0) | ("zeros", 0) for a float state_dict entry."""
    path, leaf = name.rsplit(".", 1)
    mod = model.get_submodule(path)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ("ones", 0.0) if leaf in ("weight", "running_var") else ("zeros", 0.0)
    if isinstance(mod, aep_torch.TiedLinear):
        fan_in = mod.in_features
    elif isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        w = mod.weight
        fan_in = int(w.shape[1]) * int(np.prod(w.shape[2:], dtype=np.int64))
    else:
        raise ValueError("no init rule for " + name)
    bound = np.float32(1.0) / np.sqrt(np.float32(fan_in))
    return "uniform", float(np.float32(bound))


def init_values(kind, bound, t_index, shape):
    n = int(np.prod(shape, dtype=np.int64))
    if kind == "ones":
        v = np.ones(n, np.float32)
    elif kind == "zeros":
        v = np.zeros(n, np.float32)
    else:
        v = np.float32(bound) * (np.float32(2.0) * hash_u(t_index, n) - np.float32(1.0))
    return v.astype(np.float32).reshape(shape)


# --------------------------------------------------------------------------------------- layer cases


def bn_setup():
    """Non-trivial affine parameters and running statistics (eval cases normalize with them)."""
    def f(m):
        c = m.num_features
        with torch.no_grad():
            m.weight.copy_(torch.rand(c) + 0.5)
            m.bias.copy_(torch.randn(c) * 0.3)
            m.running_mean.copy_(torch.randn(c) * 0.5)
            m.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
            m.num_batches_tracked.fill_(3)
    return f


# name, spec, input shape, training, setup(module) or None, input transform
LAYER_CASES = [
    ("linear", {"type": "Linear", "in_features": 5, "out_features": 4}, (3, 5), True, None, None),
    ("linear_nobias", {"type": "Linear", "in_features": 6, "out_features": 3, "bias": False}, (2, 6), True, None,
     None),
    ("conv2d_k3p1", {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
     (2, 2, 6, 5), True, None, None),
    ("conv2d_s2p1", {"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2,
                     "padding": 1}, (2, 2, 7, 6), True, None, None),
    ("conv2d_k2", {"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 2, "stride": 1,
                   "padding": 0}, (2, 3, 5, 6), True, None, None),
    ("conv2d_nobias", {"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1,
                       "bias": False}, (3, 1, 5, 7), True, None, None),
    ("convt_k2s2", {"type": "ConvTranspose2d", "in_channels": 3, "out_channels": 2, "kernel_size": 2,
                    "stride": 2}, (2, 3, 4, 5), True, None, None),
    ("convt_k3s2p1op1", {"type": "ConvTranspose2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3,
                         "stride": 2, "padding": 1, "output_padding": 1}, (2, 2, 4, 5), True, None, None),
    ("convt_k3s1p1", {"type": "ConvTranspose2d", "in_channels": 4, "out_channels": 2, "kernel_size": 3,
                      "padding": 1}, (2, 4, 5, 6), True, None, None),
    ("maxpool_k2", {"type": "MaxPool2d", "kernel_size": 2}, (2, 3, 7, 6), True, None, None),
    ("maxpool_k3s2", {"type": "MaxPool2d", "kernel_size": 3, "stride": 2}, (2, 2, 7, 8), True, None, None),
    ("upsample2", {"type": "Upsample", "scale_factor": 2, "mode": "nearest"}, (2, 2, 3, 4), True, None, None),
    ("bn1d_train", {"type": "BatchNorm1d", "num_features": 4}, (3, 4), True, bn_setup(), lambda x: x * 2 + 1),
    ("bn1d_eval", {"type": "BatchNorm1d", "num_features": 4}, (3, 4), False, bn_setup(), lambda x: x * 2 + 1),
    ("bn2d_train", {"type": "BatchNorm2d", "num_features": 3}, (2, 3, 5, 6), True, bn_setup(),
     lambda x: x * 2 + 1),
    ("bn2d_eval", {"type": "BatchNorm2d", "num_features": 3}, (2, 3, 5, 6), False, bn_setup(),
     lambda x: x * 2 + 1),
    ("bn2d_train_m02_eps1e-3", {"type": "BatchNorm2d", "num_features": 2, "momentum": 0.2, "eps": 0.001},
     (3, 2, 5, 5), True, bn_setup(), lambda x: x * 0.05 + 1),
    ("bn1d_train_fresh", {"type": "BatchNorm1d", "num_features": 3}, (2, 3), True, None, None),
    ("relu", {"type": "ReLU"}, (2, 3, 4, 5), True, None, None),
    ("leakyrelu_0.2", {"type": "LeakyReLU", "negative_slope": 0.2}, (2, 3, 4, 5), True, None, None),
    ("leakyrelu_default", {"type": "LeakyReLU"}, (2, 7), True, None, None),
    ("sigmoid", {"type": "Sigmoid"}, (2, 3, 5, 5), True, None, lambda x: x * 4),
    ("tanh", {"type": "Tanh"}, (2, 3, 5, 5), True, None, lambda x: x * 3),
    ("sigmoid_flat", {"type": "Sigmoid"}, (3, 7), False, None, lambda x: x * 6),
    ("flatten", {"type": "Flatten"}, (2, 3, 4, 5), True, None, None),
    ("unflatten", {"type": "Unflatten", "unflattened_size": [3, 4, 5]}, (2, 60), True, None, None),
]


def make_layers(path):
    torch.manual_seed(20240601)
    tensors, cases = [], {}
    for name, spec, shape, training, setup, xform in LAYER_CASES:
        m = aep_torch.make_layer(spec)
        if setup:
            setup(m)
        m.train(training)
        x = torch.randn(*shape)
        if xform:
            x = xform(x)
        x = x.detach().requires_grad_(True)
        params = dict(m.named_parameters())
        buffers = {k: v.detach().clone() for k, v in m.named_buffers()}
        param_before = {k: v.detach().clone() for k, v in params.items()}
        y = m(x)
        dy = torch.randn_like(y)
        y.backward(dy)
        cases[name] = {"spec": spec, "training": training}
        add = tensors.append
        add((name + ".x", npf(x)))
        for k, v in param_before.items():
            add((name + ".param." + k, npf(v)))
        for k, v in buffers.items():
            if v.dtype == torch.int64:
                add((name + ".counter." + k, v.numpy().astype(np.int64)))
            else:
                add((name + ".buffer." + k, npf(v)))
        add((name + ".y", npf(y)))
        add((name + ".dy", npf(dy)))
        add((name + ".dx", npf(x.grad)))
        for k, v in params.items():
            add((name + ".grad." + k, npf(v.grad)))
        for k, v in m.named_buffers():
            if v.dtype == torch.int64:
                add((name + ".counter_after." + k, v.numpy().astype(np.int64)))
            else:
                add((name + ".buffer_after." + k, npf(v)))
    write_safetensors(path, tensors, {"cases": json.dumps(cases, sort_keys=True)})
    print("%s: %d cases, %d tensors, %d bytes" % (path, len(cases), len(tensors), os.path.getsize(path)))


# -------------------------------------------------------------------------------------- preset runs


def stored(prefix, arr, out, limit=SUBSAMPLE):
    """Whole tensor if small, else a strided subsample + [sum, sumsq] (see the module docstring)."""
    arr = np.asarray(arr, dtype=np.float32)
    n = arr.size
    if n <= limit:
        out.append((prefix, arr))
        return
    k = -(-n // limit)
    flat = arr.reshape(-1)
    out.append((prefix + ".sub", np.ascontiguousarray(flat[::k])))
    out.append((prefix + ".stats", stats(flat)))


def stats(a):
    """[sum, sum of squares] computed in float64, stored as float32."""
    return stats64(a).astype(np.float32)


def init_model(model):
    """Sets every float state_dict tensor by the hash formula. Returns the metadata list."""
    listing = []
    sd = model.state_dict()
    with torch.no_grad():
        t_index = 0
        for name, t in sd.items():
            if not t.dtype.is_floating_point:
                t.zero_()
                continue
            kind, bound = init_rule(model, name)
            t.copy_(torch.from_numpy(init_values(kind, bound, t_index, tuple(t.shape))))
            listing.append({"name": name, "shape": list(t.shape), "init": kind, "bound": bound})
            t_index += 1
    return listing


def make_adam(model, preset):
    oc = dict(preset.get("optimizer", {}))
    if oc.get("type", "adam") != "adam":
        raise ValueError(preset["name"] + ": only Adam runs are generated")
    return torch.optim.Adam(model.parameters(), lr=oc.get("lr", 1e-3),
                            betas=(oc.get("beta1", 0.9), oc.get("beta2", 0.999)),
                            eps=oc.get("eps", 1e-8), weight_decay=oc.get("weight_decay", 0.0))


def train(model, preset, eps_all, dtype, override=None, probe=None):
    """STEPS Adam steps on the input batches. override: {param name: (mask, [delta per step])} adds delta to
    the update of the masked elements; probe(step, model) is called between backward and the update.
    Returns (losses [steps][4], first-step gradients {name: np}, final float state {name: np})."""
    opt = make_adam(model, preset)
    params = dict(model.named_parameters())
    losses, grad1 = [], None
    for s in range(STEPS):
        x = input_batch(s).to(dtype)
        opt.zero_grad(set_to_none=False)
        eps = None if eps_all is None else eps_all[s].to(dtype)
        total, rec, kl, pen = aep_torch.loss(model, x, x, eps=eps, training=True)
        total.backward()
        if s == 0:
            grad1 = {n: p.grad.detach().numpy().copy() for n, p in params.items()}
        if probe:
            probe(s, model)
        opt.step()
        with torch.no_grad():
            for n, (mask, deltas) in (override or {}).items():
                params[n].add_(torch.where(mask, deltas[s], torch.zeros_like(deltas[s])))
        losses.append([float(total), float(rec), float(kl), float(pen)])
    state = {k: v.detach().numpy().astype(np.float64).copy() for k, v in model.state_dict().items()
             if v.dtype.is_floating_point}
    return losses, grad1, state


def fresh_model(preset, dtype):
    model = aep_torch.build_model(preset)
    listing = init_model(model)
    return model.to(dtype), listing


def stored_layout(n, limit=SUBSAMPLE):
    """Flat indices of the stored elements of a tensor of n elements."""
    return np.arange(n) if n <= limit else np.arange(0, n, -(-n // limit))


def noise_envelope(preset, eps_all, lr):
    """How far float32 rounding can move each final value, through Adam's amplification of small gradients.

    A float64 run (the clean trajectory) computes, at every step, each gradient element in float64 and in
    float32 at the same parameters: r = |g32 - g64| / |g64| (0 when both are exactly 0, a dead unit; inf when
    only g64 is). An element with r_max > FLAG_R at some step is noise-prone: a float32 implementation (torch
    or the engine, each with its own summation order) may move it by up to a = lr * min(2, NOISE_GAIN * r_max)
    more or less per step than the exact run. Rounding errors of different elements are independent, so the
    run is replayed in float64 with random perturbations added to those updates: three "drift" runs (+a or -a
    at every step, the sign drawn per element) and three "jitter" runs (uniform in [-a, a] per element and
    step). The largest deviation from the clean run, per final value, per step loss and per [sum, sumsq], is
    the envelope env. torch float32 and the engine both lie within env of
    the clean run, so the C++ test allows 2 * env on top of its strict tolerance. Returns (flagged count,
    env per state tensor, env of [sum, sumsq] per tensor, env of losses [steps, 4])."""
    model, _ = fresh_model(preset, torch.float64)
    twin, _ = fresh_model(preset, torch.float32)
    r_max = {n: np.zeros(p.shape) for n, p in model.named_parameters()}

    def probe(s, m64):
        twin.load_state_dict({k: v.to(torch.float32) if v.dtype.is_floating_point else v
                              for k, v in m64.state_dict().items()})
        twin.zero_grad(set_to_none=False)
        # the twin sees the same batch as m64 (the step's batch was just used for m64's backward)
        x = input_batch(s)
        eps = None if eps_all is None else eps_all[s]
        # running statistics of the twin are not used: it is reloaded every step
        aep_torch.loss(twin, x, x, eps=eps, training=True)[0].backward()
        p32 = dict(twin.named_parameters())
        for n, p in m64.named_parameters():
            g64 = p.grad.detach().numpy()
            g32 = p32[n].grad.detach().numpy().astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.abs(g32 - g64) / np.abs(g64)
            r[(g64 == 0) & (g32 == 0)] = 0
            r_max[n] = np.maximum(r_max[n], r)

    losses64, _, clean = train(model, preset, eps_all, torch.float64, probe=probe)
    amp = {}
    flagged = 0
    for n, r in r_max.items():
        m = r > FLAG_R
        if m.any():
            amp[n] = (m, np.where(m, lr * np.minimum(2.0, NOISE_GAIN * np.nan_to_num(r, posinf=1e30)), 0.0))
            flagged += int(m.sum())
    env = {k: np.zeros(v.shape) for k, v in clean.items()}
    env_stats = {k: np.zeros(2) for k in clean}
    env_loss = np.zeros((STEPS, 4))
    if flagged:
        rng = np.random.default_rng(99)
        for pattern in ["drift", "drift", "drift", "jitter", "jitter", "jitter"]:
            override = {}
            for n, (m, a) in amp.items():
                if pattern == "drift":  # +-a at every step, the sign random per element: the largest own drift
                    sign = rng.choice([-1.0, 1.0], a.shape)
                    d = [a * sign for _ in range(STEPS)]
                else:  # uniform in [-a, a], independent per element and step
                    d = [a * rng.uniform(-1, 1, a.shape) for _ in range(STEPS)]
                override[n] = (torch.from_numpy(m), [torch.from_numpy(x) for x in d])
            model, _ = fresh_model(preset, torch.float64)
            losses, _, state = train(model, preset, eps_all, torch.float64, override)
            env_loss = np.maximum(env_loss, np.abs(np.array(losses) - np.array(losses64)))
            for k in clean:
                env[k] = np.maximum(env[k], np.abs(state[k] - clean[k]))
                env_stats[k] = np.maximum(env_stats[k], np.abs(stats64(state[k]) - stats64(clean[k])))
    return flagged, env, env_stats, env_loss


def stats64(a):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return np.array([a.sum(), (a * a).sum()])


def run_preset(name, index, tensors, meta):
    preset = aep_torch.load_preset(os.path.join(PRESET_DIR, name + ".json"))
    model, listing = fresh_model(preset, torch.float32)
    for name_sd, t in model.state_dict().items():
        if t.dtype.is_floating_point:
            tensors.append(("%s.init.%s.stats" % (name, name_sd), stats(t.numpy())))
    latent = 0
    eps_all = None
    if model.is_vae:
        latent = preset["mu"][-1]["out_features"]
        gen = torch.Generator().manual_seed(1234 + index)
        eps_all = torch.randn(STEPS, BATCH, latent, generator=gen)
        tensors.append((name + ".eps", npf(eps_all)))
    losses, grad1, _ = train(model, preset, eps_all, torch.float32)
    for pn, g in grad1.items():
        stored("%s.grad1.%s" % (name, pn), g.astype(np.float32), tensors, GRAD_SUBSAMPLE)
    tensors.append((name + ".loss", np.array(losses, dtype=np.float32)))
    lr = float(preset.get("optimizer", {}).get("lr", 1e-3))
    flagged, env, env_stats, env_loss = noise_envelope(preset, eps_all, lr)
    tensors.append((name + ".loss_env", env_loss.astype(np.float32)))
    n_env = 0
    param_names = set(n for n, _ in model.named_parameters())
    for sd_name, t in model.state_dict().items():
        prefix = "%s.final.%s" % (name, sd_name)
        if not t.dtype.is_floating_point:
            tensors.append((prefix, t.numpy().astype(np.int64).reshape(())))
            continue
        stored(prefix, npf(t), tensors)
        e = env[sd_name].reshape(-1)[stored_layout(t.numel())]
        floor = ENV_FLOOR_PARAM if sd_name in param_names else ENV_FLOOR_BUFFER
        idx = np.nonzero(e > floor)[0]
        if len(idx) * 3 > len(e):  # dense is smaller
            tensors.append((prefix + ".env", e.astype(np.float32)))
        elif len(idx):
            tensors.append((prefix + ".env_idx", idx.astype(np.int64)))
            tensors.append((prefix + ".env", e[idx].astype(np.float32)))
        n_env += len(idx)
        if t.numel() > SUBSAMPLE and env_stats[sd_name].max() > 0:
            tensors.append((prefix + ".env_stats", env_stats[sd_name].astype(np.float32)))
    meta[name] = {"steps": STEPS, "batch": BATCH, "latent": latent, "tensors": listing,
                  "noise_prone_elements": flagged}
    print("  %-12s loss per step: %s" % (name, ", ".join("%.6f" % l[0] for l in losses)))
    if flagged:
        print("  %-12s %d noise-prone gradient elements; %d stored values with an envelope, max %.3g; "
              "loss envelope max %.3g" % (name, flagged, n_env, max(v.max() for v in env.values()),
                                          env_loss.max()))


def make_presets(path):
    tensors, meta = [], {}
    for i, name in enumerate(PRESET_RUNS):
        run_preset(name, i, tensors, meta)
    write_safetensors(path, tensors, {"presets": json.dumps(meta, sort_keys=True)})
    print("%s: %d presets, %d tensors, %d bytes" % (path, len(meta), len(tensors), os.path.getsize(path)))


# -------------------------------------------------------------------------------------------- check


def engine_counts(exe=None):
    """{preset: parameter count} from `aep presets`, or None if the binary is not built."""
    exe = exe or os.path.join(ROOT, "build", "native-release", "aep")
    if not os.access(exe, os.X_OK):
        return None
    out = subprocess.run([exe, "presets"], capture_output=True, text=True, env=dict(os.environ,
                         AEP_ASSETS=os.path.join(ROOT, "assets")), check=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+(\d+) params", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def check_presets(exe=None):
    """Every preset in assets/presets builds in torch, keeps its state_dict through a strict load, and runs a
    forward pass (eval) and the loss with backward (training) on a batch of 2; its parameter count is compared
    with `aep presets` when that binary exists."""
    names = sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".json"))
    counts = engine_counts(exe)
    if counts is None:
        print("(%s not found: parameter counts not compared with the engine)" %
              (exe or "build/native-release/aep"))
    failures = 0
    torch.manual_seed(0)
    for name in names:
        try:
            preset = aep_torch.load_preset(os.path.join(PRESET_DIR, name + ".json"))
            model = aep_torch.build_model(preset)
            sd = model.state_dict()
            model.load_state_dict(sd, strict=True)
            x = input_batch(0, batch=2)
            model.eval()
            with torch.no_grad():
                y = model.reconstruct(x)
            assert tuple(y.shape) == (2, 1, 28, 28), y.shape
            total, rec, kl, pen = aep_torch.loss(model, x, x, training=True)
            total.backward()
            assert torch.isfinite(total), total
            n = sum(p.numel() for p in model.parameters())
            status = ""
            if counts is not None:
                if counts.get(name) == n:
                    status = "= engine"
                else:
                    status = "MISMATCH: engine says %s" % counts.get(name)
                    failures += 1
            print("%-20s %9d params  loss %.5f  %s" % (name, n, float(total), status))
        except Exception as e:  # report every broken preset, then fail
            failures += 1
            print("%-20s FAILED: %s: %s" % (name, type(e).__name__, e))
    if failures:
        sys.exit("%d preset(s) failed" % failures)
    print("all %d presets build and run in torch" % len(names))


def self_check(layers_path, presets_path):
    """Reads the files back and re-derives a few things, so the writer and the formulas stay honest."""
    meta, t = read_safetensors(layers_path)
    cases = json.loads(meta["cases"])
    assert all(name + ".y" in t for name in cases)
    meta, t = read_safetensors(presets_path)
    runs = json.loads(meta["presets"])
    for name, info in runs.items():
        for ti, e in enumerate(info["tensors"]):
            v = init_values(e["init"], e["bound"], ti, tuple(e["shape"]))
            got = t["%s.init.%s.stats" % (name, e["name"])]
            assert np.allclose(got, stats(v), rtol=1e-6, atol=1e-6), (name, e["name"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that every preset builds and runs in torch")
    ap.add_argument("--out", default=HERE, help="folder for the .safetensors files (default: this folder)")
    ap.add_argument("--aep", help="the aep binary whose `aep presets` counts to compare (default: "
                    "build/native-release/aep if it exists)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    if args.check:
        check_presets(args.aep)
        return
    layers_path = os.path.join(args.out, "layers.safetensors")
    presets_path = os.path.join(args.out, "presets.safetensors")
    print("torch", torch.__version__)
    make_layers(layers_path)
    make_presets(presets_path)
    self_check(layers_path, presets_path)
    check_presets(args.aep)


if __name__ == "__main__":
    main()
