"""PyTorch twin of the Autoencoder Playground engine (src/core), for reference vectors.

build_model(preset) turns a preset (assets/presets/*.json, or the parsed dict) into an nn.Module whose
state_dict has exactly the engine's names and shapes: submodules `encoder`, `mu`, `logvar`, `decoder`
(nn.Sequential; `mu`/`logvar` only for a VAE), each layer spec mapped to the torch.nn class of the same name
with the same arguments. A Linear with "tied_to": "encoder.1" becomes TiedLinear, which owns only `bias` and
computes y = x @ W + b with W the referenced Linear's weight ([out, in] of the encoder, i.e. W^T of a normal
Linear of this shape).

loss(model, x_input, target, eps, training) reproduces aep::Trainer::forward_backward (src/core/train.cpp):

  reconstruction  "mse" | "bce" | "l1" with reduction "mean" (over all elements) or "sum" (per sample, averaged over
                  the batch); BCE after a final Sigmoid is computed from its input (BCEWithLogits); decoder
                  output reshaped to [B, 1, 28, 28]
  kl (VAE)        beta * sum over latent of -0.5 (1 + logvar - mu^2 - exp(logvar)), averaged over the batch;
                  z = mu + exp(0.5 logvar) * eps (eps given, else N(0, I) in training, else 0: z = mu)
  penalty         l1 * sum |h| / B on the encoder output h, plus
                  contractive * sum_b sum_j (h_bj (1 - h_bj))^2 * sum_i W_ji^2 / B, W the weight of the Linear
                  before the encoder's final Sigmoid

Only torch is needed (Debian's python3-torch: run with /usr/bin/python3).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE_SIDE = 28
PARTS = ("encoder", "mu", "logvar", "decoder")

# Layer types the engine knows (src/core/layers.cpp, layer_types()) and the torch.nn class of each.
_SIMPLE = {
    "Linear": nn.Linear,
    "Conv2d": nn.Conv2d,
    "ConvTranspose2d": nn.ConvTranspose2d,
    "MaxPool2d": nn.MaxPool2d,
    "Upsample": nn.Upsample,
    "BatchNorm1d": nn.BatchNorm1d,
    "BatchNorm2d": nn.BatchNorm2d,
    "Dropout": nn.Dropout,
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "Flatten": nn.Flatten,
}


class TiedLinear(nn.Module):
    """Decoder Linear whose weight is another Linear's weight transposed: y = x @ W_src + bias.

    The source layer is kept in a plain list so it is not registered as a submodule: the state_dict holds
    only "bias" (as in the engine, where the tied layer owns only its bias)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._source = []
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            bound = 1.0 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def tie(self, source):
        if not isinstance(source, nn.Linear):
            raise ValueError("tied_to must name an nn.Linear")
        if source.in_features != self.out_features or source.out_features != self.in_features:
            raise ValueError("a tied Linear must mirror its source (%d->%d vs %d->%d)" %
                             (self.in_features, self.out_features, source.in_features, source.out_features))
        self._source = [source]

    def forward(self, x):
        y = x @ self._source[0].weight  # source weight [in_src = our out, out_src = our in]
        return y + self.bias if self.bias is not None else y

    def extra_repr(self):
        return "in_features=%d, out_features=%d, tied" % (self.in_features, self.out_features)


def make_layer(spec):
    """One preset layer spec -> torch module (same arguments, PyTorch's names)."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "Linear" and "tied_to" in spec:
        spec.pop("tied_to")
        return TiedLinear(**spec)
    if kind == "Unflatten":
        return nn.Unflatten(1, tuple(spec["unflattened_size"]))
    if kind not in _SIMPLE:
        raise ValueError("unknown layer type %r" % kind)
    return _SIMPLE[kind](**spec)


class AEPModel(nn.Module):
    def __init__(self, preset):
        super().__init__()
        self.preset = preset
        self.is_vae = bool(preset.get("mu"))
        for part in PARTS:  # registration order = state_dict order = the engine's Model::entries order
            specs = preset.get(part) or []
            if part in ("mu", "logvar") and not self.is_vae:
                continue
            setattr(self, part, nn.Sequential(*[make_layer(s) for s in specs]))
        for part in self.parts():
            for i, spec in enumerate(preset[part]):
                if "tied_to" in spec:
                    target_part, idx = spec["tied_to"].split(".")
                    getattr(self, part)[i].tie(getattr(self, target_part)[int(idx)])

    def parts(self):
        return [p for p in PARTS if hasattr(self, p)]

    def reconstruct(self, x):
        """Eval-style pass (z = mu for a VAE), output [B, 1, 28, 28]."""
        h = self.encoder(x)
        z = self.mu(h) if self.is_vae else h
        return self.decoder(z).reshape(x.shape[0], 1, IMAGE_SIDE, IMAGE_SIDE)


def load_preset(name_or_path, assets=None):
    if name_or_path.endswith(".json") or "/" in name_or_path:
        path = name_or_path
    else:
        assets = assets or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "assets")
        path = os.path.join(assets, "presets", name_or_path + ".json")
    with open(path) as f:
        return json.load(f)


def build_model(preset):
    if isinstance(preset, str):
        preset = load_preset(preset)
    return AEPModel(preset)


def loss(model, x_input, target, eps=None, training=True):
    """The engine's loss. Returns (total, reconstruction, kl, penalty) as 0-d tensors (graph kept)."""
    p = model.preset
    cfg = dict(p.get("loss", {}))
    recon_kind = cfg.get("reconstruction", "mse")
    reduction = cfg.get("reduction", "mean")
    beta = float(cfg.get("beta", 1.0))
    l1 = float(cfg.get("l1", 0.0))
    contractive = float(cfg.get("contractive", 0.0))

    model.train(training)
    B = x_input.shape[0]
    h = model.encoder(x_input)
    zero = torch.zeros((), dtype=x_input.dtype)
    kl = zero
    code = h
    if model.is_vae:
        mu = model.mu(h)
        logvar = model.logvar(h)
        if eps is None:
            eps = torch.randn_like(mu) if training else torch.zeros_like(mu)
        code = mu + torch.exp(0.5 * logvar) * eps.reshape(mu.shape)
        kl = beta * torch.sum(-0.5 * (1 + logvar - mu * mu - torch.exp(logvar))) / B

    dec = model.decoder
    fuse = recon_kind == "bce" and len(dec) > 0 and isinstance(dec[-1], nn.Sigmoid)
    out = dec[:-1](code) if fuse else dec(code)
    out = out.reshape(B, 1, IMAGE_SIDE, IMAGE_SIDE)
    tgt = target.reshape(B, 1, IMAGE_SIDE, IMAGE_SIDE)
    if recon_kind == "bce":
        if fuse:
            s = F.binary_cross_entropy_with_logits(out, tgt, reduction="sum")
        else:
            s = F.binary_cross_entropy(out, tgt, reduction="sum")  # log clamped at -100 like the engine
    elif recon_kind == "mse":
        s = F.mse_loss(out, tgt, reduction="sum")
    elif recon_kind == "l1":
        s = F.l1_loss(out, tgt, reduction="sum")
    else:
        raise ValueError("unknown reconstruction loss %r" % recon_kind)
    rec = s / (out.numel() if reduction == "mean" else B)

    penalty = zero
    if l1 > 0:
        penalty = penalty + l1 * h.abs().sum() / B
    if contractive > 0:
        enc = model.encoder
        if len(enc) < 2 or not isinstance(enc[-1], nn.Sigmoid) or not isinstance(enc[-2], nn.Linear):
            raise ValueError("the contractive penalty needs an encoder ending in Linear + Sigmoid")
        W = enc[-2].weight
        hh = h.reshape(B, -1)
        a2 = (hh * (1 - hh)) ** 2  # [B, out]
        penalty = penalty + contractive / B * torch.sum(a2 * (W * W).sum(dim=1))
    total = rec + kl + penalty
    return total, rec, kl, penalty
