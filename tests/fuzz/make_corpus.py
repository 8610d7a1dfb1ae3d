#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/<target>/: a few valid and near-valid inputs per parser, each
at most about 10 KB. Deterministic (gzip mtime 0), so re-running it changes nothing. Standard library only.

    python3 tests/fuzz/make_corpus.py   # from the repository root; reads assets/presets and, if fetched, MNIST
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 11 * 1024, (target, name, len(data))
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def gz(data, level=9):
    return gzip.compress(data, compresslevel=level, mtime=0)


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gzip_member(deflated, raw, flags=0, extra=b""):
    """A gzip member around raw DEFLATE data, with optional header fields (FEXTRA/FNAME/FCOMMENT/FHCRC)."""
    head = bytes([0x1F, 0x8B, 8, flags]) + b"\0\0\0\0" + b"\0\x03" + extra
    if flags & 2:
        head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    return head + deflated + struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


def deflate(data, level=9, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    return c.compress(data) + c.flush()


def idx_seeds():
    pixels = bytes((i * 37) % 256 for i in range(2 * 3 * 4))
    write("fuzz_idx", "images-2x3x4", idx(0x803, [2, 3, 4], pixels))
    write("fuzz_idx", "labels-5", idx(0x801, [5], bytes([3, 1, 4, 1, 5])))
    write("fuzz_idx", "images-2x3x4.gz", gz(idx(0x803, [2, 3, 4], pixels)))
    write("fuzz_idx", "labels-5.gz", gz(idx(0x801, [5], bytes([3, 1, 4, 1, 5]))))
    write("fuzz_idx", "images-truncated", idx(0x803, [2, 3, 4], pixels[:-5]))
    write("fuzz_idx", "images-float", idx(0xD03, [2, 3, 4], pixels))
    mnist = os.path.join(ROOT, "assets", "data", "mnist", "t10k-images-idx3-ubyte")
    if os.path.exists(mnist):
        with open(mnist, "rb") as f:
            head = f.read(16 + 784 * 8)
        # The first 8 test digits with the count patched to 8 (valid), and the untouched head (truncated).
        write("fuzz_idx", "mnist-t10k-8", struct.pack(">I", 0x803) + struct.pack(">III", 8, 28, 28) + head[16:])
        write("fuzz_idx", "mnist-t10k-head.gz", gz(head[: 16 + 784 * 4]))


def gzip_seeds():
    text = b"hello hello hello world\n" * 8
    noise = bytes((i * 2654435761 >> 13) & 0xFF for i in range(600))
    write("fuzz_gzip", "stored.gz", gzip_member(deflate(noise, 0), noise))
    write("fuzz_gzip", "fixed.gz", gzip_member(deflate(text, 9, zlib.Z_FIXED), text))
    words = [b"encoder", b"decoder", b"latent", b"pixel", b"weight", b"the", b"a", b"of"]
    prose = b" ".join(words[(i * i + 3 * i) % len(words)] for i in range(700))
    write("fuzz_gzip", "dynamic.gz", gz(prose))
    write("fuzz_gzip", "rle.gz", gzip_member(deflate(b"\0" * 5000, 9, zlib.Z_RLE), b"\0" * 5000))
    write("fuzz_gzip", "two-members.gz", gz(b"first member\n") + gz(b"second member\n"))
    write("fuzz_gzip", "header-fields.gz",
          gzip_member(deflate(text), text, flags=2 | 4 | 8 | 16, extra=b"\x04\0abcd" + b"name\0" + b"comment\0"))
    write("fuzz_gzip", "empty.gz", gz(b""))
    write("fuzz_gzip", "truncated.gz", gz(text)[:-6])


def safetensors(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    # The model in fuzz_safetensors.cpp: encoder.1.weight [1, 784], BatchNorm1d(1) at encoder.2, Adam state.
    w = struct.pack("<784f", *[((i * 7) % 13 - 6) / 100 for i in range(784)])
    one, zero = struct.pack("<f", 1.0), struct.pack("<f", 0.0)
    tensors = [("encoder.1.weight", "F32", [1, 784], w), ("encoder.2.weight", "F32", [1], one),
               ("encoder.2.bias", "F32", [1], zero), ("encoder.2.running_mean", "F32", [1], zero),
               ("encoder.2.running_var", "F32", [1], one),
               ("encoder.2.num_batches_tracked", "I64", [], struct.pack("<q", 3))]
    optimizer = [("optimizer.step", "I64", [], struct.pack("<q", 3))]
    for key in ("encoder.1.weight", "encoder.2.weight", "encoder.2.bias"):
        shape = [1, 784] if key == "encoder.1.weight" else [1]
        n = 784 if key == "encoder.1.weight" else 1
        optimizer.append(("optimizer.exp_avg." + key, "F32", shape, b"\0" * 4 * n))
        optimizer.append(("optimizer.exp_avg_sq." + key, "F32", shape, b"\0" * 4 * n))

    def file(entries, metadata=None):
        header, data = {}, b""
        if metadata:
            header["__metadata__"] = metadata
        for name, dtype, shape, raw in entries:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        return safetensors(header, data)

    write("fuzz_safetensors", "model", file(tensors, {"format": "aep-weights-1"}))
    write("fuzz_safetensors", "model-adam", file(tensors + optimizer))
    write("fuzz_safetensors", "model-wrong-shape", file([("encoder.1.weight", "F32", [784, 1], w)] + tensors[1:]))
    write("fuzz_safetensors", "small", file([("a", "F32", [2], b"\0" * 8), ("n", "I64", [], b"\0" * 8)]))
    write("fuzz_safetensors", "empty", safetensors({}, b""))


def preset_seeds():
    presets = os.path.join(ROOT, "assets", "presets")
    for name in ("linear.json", "conv.json", "conv-upsample.json", "contractive.json", "denoise.json"):
        with open(os.path.join(presets, name), "rb") as f:
            write("fuzz_preset", name, f.read())
    tied = {"name": "tied", "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 2}],
            "decoder": [{"type": "Linear", "in_features": 2, "out_features": 784, "tied_to": "encoder.1"},
                        {"type": "Sigmoid"}]}
    write("fuzz_preset", "tied.json", json.dumps(tied))
    vae = {"name": "vae", "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 16},
                                      {"type": "ReLU"}],
           "mu": [{"type": "Linear", "in_features": 16, "out_features": 2}],
           "logvar": [{"type": "Linear", "in_features": 16, "out_features": 2}],
           "decoder": [{"type": "Linear", "in_features": 2, "out_features": 784},
                       {"type": "Unflatten", "unflattened_size": [1, 28, 28]}],
           "loss": {"reconstruction": "bce", "beta": 0.5}, "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
           "training": {"batch_size": 32, "epochs": 2}}
    write("fuzz_preset", "vae.json", json.dumps(vae))
    write("fuzz_preset", "bad-shapes.json", json.dumps(
        {"encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 8}],
         "decoder": [{"type": "Linear", "in_features": 9, "out_features": 784}]}))


if __name__ == "__main__":
    idx_seeds()
    gzip_seeds()
    safetensors_seeds()
    preset_seeds()
