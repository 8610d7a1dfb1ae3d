#!/usr/bin/python3
"""PyTorch / numpy reference values for the engine's instruments (checked by tests/test_instruments.cpp).

    /usr/bin/python3 tests/reference/make_instruments.py     # writes tests/reference/instruments.safetensors

Deterministic (seeded torch and numpy; the same bytes on every run with the same torch build). Runs in ~2 s.

instruments.safetensors
-----------------------
__metadata__: "models" (JSON {case: preset}), "softmax" (JSON {"steps", "lr", "l2"}), "knn" (JSON {"k"}).

Model cases (each a preset; weights drawn by PyTorch's default init from a fixed seed, some rescaled, below):
  C.state.<name>      the model's state_dict (load with the engine's load_state after stripping "C.state.")
  C.x                 F32 [B, 1, 28, 28] input images in [0, 1]
  C.code              F32 [B, units] the code (a VAE's mu), eval mode
  C.jacobian          F32 [B] ||d code / d x||_F^2 per image (torch.autograd.functional.jacobian, float64 model)
  C.sparsity          F32 [2] share of silent units (|h| <= 0.01 max |h| of the digit), mean |h|
  VAE only:
  C.logvar            F32 [B, latent]
  C.kl_per_dim        F32 [latent] mean over images of 0.5 (mu^2 + exp(logvar) - 1 - logvar) (float64 model)
  C.mu_variance       F32 [latent] variance over images of mu_j (population form)
  C.active_units      I64 [] units whose mu_variance exceeds 0.01 (Burda et al. 2016)

L1 loss (F.l1_loss):
  l1.pred, l1.target  F32 [3, 20] (some elements equal: their gradient is 0)
  l1.mean, l1.sum     F32 [] the loss with reduction "mean", and "sum" / batch
  l1.grad_mean, l1.grad_sum   F32 [3, 20] d loss / d pred

Softmax regression (the probe's, src/core/probe.cpp): features centred by their mean and divided by one scale (the
RMS of the centred features), W [10, d] and b [10] from zeros, unequal class sizes (see softmax_case), `steps` full-batch torch.optim.Adam steps (defaults
but lr) on F.cross_entropy + l2 / 2 * ||W||^2:
  softmax.train_x F32 [n, d], softmax.train_y I64 [n], softmax.test_x F32 [m, d]
  softmax.mean F32 [d], softmax.scale F32 [], softmax.loss F32 [steps] (the loss before each step)
  softmax.W F32 [10, d], softmax.b F32 [10] after the steps; softmax.test_logits F32 [m, 10]

k-NN (numpy): Euclidean distances, equal distances by training index (a stable sort), the vote to the digit with
most of the k neighbours, a tie to the tied digit whose member is nearest. The set is checked to have no near-equal
distances around the k-th neighbour, so float rounding cannot reorder it:
  knn.train_x F32 [n, d], knn.train_y I64 [n], knn.test_x F32 [m, d], knn.pred I64 [m]
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import aep_torch  # noqa: E402
from make_reference import write_safetensors  # noqa: E402

SILENT = 0.01  # kSilentRelativeThreshold
ACTIVE = 0.01  # kActiveUnitThreshold
BATCH = 12

MODELS = {
    "vae": {
        "name": "ref-vae", "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 16},
                                       {"type": "Tanh"}],
        "mu": [{"type": "Linear", "in_features": 16, "out_features": 4}],
        "logvar": [{"type": "Linear", "in_features": 16, "out_features": 4}],
        "decoder": [{"type": "Linear", "in_features": 4, "out_features": 784}, {"type": "Sigmoid"}],
    },
    "contractive": {
        "name": "ref-contractive",
        "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 8}, {"type": "Sigmoid"}],
        "decoder": [{"type": "Linear", "in_features": 8, "out_features": 784}, {"type": "Sigmoid"}],
        "loss": {"contractive": 0.1},
    },
    "conv": {
        "name": "ref-conv",
        "encoder": [{"type": "Conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
                    {"type": "BatchNorm2d", "num_features": 3}, {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2}],
        "decoder": [{"type": "ConvTranspose2d", "in_channels": 3, "out_channels": 1, "kernel_size": 4, "stride": 4}],
    },
}


def f32(t):
    return np.asarray(t.detach().cpu().numpy() if torch.is_tensor(t) else t, dtype=np.float32)


def sparsity(codes):
    a = np.abs(codes.astype(np.float64))
    top = a.max(axis=1, keepdims=True)
    silent = a <= SILENT * top
    # No |h| may sit next to the threshold, where float32 rounding could move it across.
    near = np.abs(a - SILENT * top) <= 1e-4 * np.maximum(SILENT * top, 1e-30)
    assert not near.any(), "a code value sits on the sparsity threshold: change the seed"
    return np.array([silent.mean(), a.mean()], dtype=np.float32)


def model_case(name, preset, seed, out):
    torch.manual_seed(seed)
    model = aep_torch.build_model(preset)
    with torch.no_grad():
        if name == "vae":
            # Units of very different spread, so that some are active and some not.
            model.mu[0].weight.mul_(torch.tensor([[4.0], [1.0], [0.05], [0.01]]))
            model.logvar[0].bias.copy_(torch.tensor([-1.0, 0.0, 0.5, -0.3]))
        if name == "conv":
            bn = model.encoder[1]
            bn.weight.copy_(torch.tensor([1.3, 0.7, 1.1]))
            bn.bias.copy_(torch.tensor([0.1, -0.05, 0.02]))
            bn.running_mean.copy_(torch.tensor([0.05, -0.1, 0.2]))
            bn.running_var.copy_(torch.tensor([0.5, 1.5, 0.8]))
            bn.num_batches_tracked.fill_(7)
    model.eval()
    x = torch.rand(BATCH, 1, 28, 28)
    for k, v in model.state_dict().items():
        arr = v.detach().numpy()
        out.append(("%s.state.%s" % (name, k), arr.astype(np.int64) if arr.dtype == np.int64 else f32(arr)))
    out.append((name + ".x", f32(x)))

    m64 = aep_torch.build_model(preset).double()
    m64.load_state_dict(model.state_dict())
    m64.eval()
    x64 = x.double()

    def code_of(inp):
        h = m64.encoder(inp)
        return (m64.mu(h) if m64.is_vae else h).reshape(inp.shape[0], -1)

    with torch.no_grad():
        code = code_of(x64)
    out.append((name + ".code", f32(code)))
    out.append((name + ".sparsity", sparsity(code.numpy())))
    jac = []
    for i in range(BATCH):
        J = torch.autograd.functional.jacobian(lambda t: code_of(t), x64[i:i + 1])
        jac.append(float((J ** 2).sum()))
    out.append((name + ".jacobian", np.array(jac, dtype=np.float32)))
    if m64.is_vae:
        with torch.no_grad():
            h = m64.encoder(x64)
            mu, logvar = m64.mu(h), m64.logvar(h)
        kl = (0.5 * (mu ** 2 + torch.exp(logvar) - 1 - logvar)).mean(dim=0)
        var = mu.var(dim=0, unbiased=False)
        assert (torch.abs(var - ACTIVE) > 0.2 * ACTIVE).all(), "a unit's variance sits next to the threshold"
        active = int((var > ACTIVE).sum())
        assert 0 < active < mu.shape[1], "the case should have active and inactive units"
        out += [(name + ".logvar", f32(logvar)), (name + ".kl_per_dim", f32(kl)), (name + ".mu_variance", f32(var)),
                (name + ".active_units", np.array(active, dtype=np.int64))]
        print("%s: mu variance %s, %d active" % (name, np.round(var.numpy(), 5), active))


def l1_case(out):
    g = torch.Generator().manual_seed(5)
    pred = torch.rand(3, 20, generator=g)
    target = torch.rand(3, 20, generator=g)
    target[0, :4] = pred[0, :4]  # equal: the subgradient is 0
    out += [("l1.pred", f32(pred)), ("l1.target", f32(target))]
    for reduction in ("mean", "sum"):
        p = pred.clone().requires_grad_(True)
        loss = F.l1_loss(p, target) if reduction == "mean" else F.l1_loss(p, target, reduction="sum") / p.shape[0]
        loss.backward()
        out += [("l1." + reduction, f32(loss)), ("l1.grad_" + reduction, f32(p.grad))]


SOFTMAX = {"steps": 30, "lr": 0.05, "l2": 0.01}


def softmax_case(out):
    rng = np.random.default_rng(11)
    d, m = 6, 40
    centres = rng.normal(0, 1.5, size=(10, d))
    # Unequal class sizes: with equal ones the bias gradient at W = 0 is exactly 0 but for float rounding, which Adam's
    # first step (about lr * sign(gradient)) would turn into steps of +-lr that differ between any two implementations.
    y = np.repeat(np.arange(10), rng.integers(3, 10, size=10))
    X = (centres[y] + rng.normal(0, 1.0, size=(len(y), d)) + 3.0).astype(np.float32)  # off-centre: the mean matters
    ty = rng.integers(0, 10, size=m)
    T = (centres[ty] + rng.normal(0, 1.0, size=(m, d)) + 3.0).astype(np.float32)
    mean = X.astype(np.float64).mean(axis=0).astype(np.float32)
    Xc = X - mean
    scale = np.float32(np.sqrt((Xc.astype(np.float64) ** 2).mean()))
    Xs = torch.from_numpy(Xc / scale)
    W = torch.zeros(10, d, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=SOFTMAX["lr"])
    losses = []
    yt = torch.from_numpy(y.astype(np.int64))
    for _ in range(SOFTMAX["steps"]):
        opt.zero_grad()
        loss = F.cross_entropy(Xs @ W.T + b, yt) + SOFTMAX["l2"] / 2 * (W * W).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    with torch.no_grad():
        logits = torch.from_numpy((T - mean) / scale) @ W.T + b
    out += [("softmax.train_x", X), ("softmax.train_y", y.astype(np.int64)), ("softmax.test_x", T),
            ("softmax.mean", mean), ("softmax.scale", np.array(scale, dtype=np.float32)),
            ("softmax.loss", np.array(losses, dtype=np.float32)), ("softmax.W", f32(W)), ("softmax.b", f32(b)),
            ("softmax.test_logits", f32(logits))]
    print("softmax: loss %.4f -> %.4f, test accuracy vs cluster %.3f" %
          (losses[0], losses[-1], (logits.argmax(1).numpy() == ty).mean()))


KNN = {"k": 5}


def knn_case(out):
    rng = np.random.default_rng(3)
    n, m, d, k = 50, 30, 5, KNN["k"]
    centres = rng.normal(0, 2.0, size=(10, d))
    y = rng.integers(0, 10, size=n)
    X = (centres[y] + rng.normal(0, 1.5, size=(n, d))).astype(np.float32)
    ty = rng.integers(0, 10, size=m)
    T = (centres[ty] + rng.normal(0, 1.5, size=(m, d))).astype(np.float32)
    pred = []
    vote_ties = 0
    for t in T.astype(np.float64):
        dist = ((X.astype(np.float64) - t) ** 2).sum(axis=1)
        order = np.argsort(dist, kind="stable")
        s = np.sort(dist)
        gaps = np.diff(s[:k + 1])
        assert (gaps > 1e-3 * s[k]).all(), "near-equal distances around the k-th neighbour: change the seed"
        nearest = order[:k]
        votes = np.bincount(y[nearest], minlength=10)
        top = votes.max()
        vote_ties += int((votes == top).sum() > 1)
        pred.append(next(y[j] for j in nearest if votes[y[j]] == top))
    out += [("knn.train_x", X), ("knn.train_y", y.astype(np.int64)), ("knn.test_x", T),
            ("knn.pred", np.array(pred, dtype=np.int64))]
    print("knn: %d of %d test points had a tied vote (broken by the nearest neighbour)" % (vote_ties, m))
    assert vote_ties > 0, "the case should exercise the vote's tie rule"


def main():
    torch.set_num_threads(1)
    out = []
    for i, (name, preset) in enumerate(MODELS.items()):
        model_case(name, preset, 100 + i, out)
    l1_case(out)
    softmax_case(out)
    knn_case(out)
    path = os.path.join(HERE, "instruments.safetensors")
    write_safetensors(path, out, {"models": json.dumps(MODELS, sort_keys=True), "softmax": json.dumps(SOFTMAX),
                                  "knn": json.dumps(KNN)})
    print("wrote %s (%d tensors)" % (path, len(out)))


if __name__ == "__main__":
    main()
