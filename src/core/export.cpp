// PyTorch and Keras scripts from a preset. Both follow the engine's semantics (src/core/train.cpp, losses.cpp, data.cpp):
// the same loss terms and reductions, BCE after a final Sigmoid computed from logits, eval with z = mu, the same input
// scaling and corruptions. tests/interop/run.sh runs them against `aep eval --clean` and `aep train`.
#include "core/export.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "core/layers.hpp"

namespace aep {

using nlohmann::json;

namespace {

// The shortest decimal that reads back as the same float (0.001f prints as 0.001, not 0.00100000005).
std::string py_float(double v) {
  char b[40];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(b, sizeof b, "%.*g", prec, v);
    if (float(std::strtod(b, nullptr)) == float(v)) break;
  }
  std::string s = b;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// A JSON value as a Python literal: arrays become tuples.
std::string py_value(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  if (v.is_array()) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_value(v[i]);
    return s + (v.size() == 1 ? ",)" : ")");
  }
  if (v.is_number_float()) return py_float(v.get<double>());
  return v.dump();  // integers and strings print the same in Python
}

std::string py_string(const std::string& s) { return json(s).dump(); }

const char* kParts[] = {"encoder", "mu", "logvar", "decoder"};

const json& part_specs(const Preset& p, const std::string& part) {
  return part == "encoder" ? p.encoder : part == "mu" ? p.mu : part == "logvar" ? p.logvar : p.decoder;
}

bool ends_with_sigmoid(const json& specs) {
  return !specs.empty() && specs.back().at("type") == "Sigmoid";
}

// BCE after a final Sigmoid is computed from the Sigmoid's input, as the engine does.
bool folds_sigmoid(const Preset& p) { return p.loss.reconstruction == "bce" && ends_with_sigmoid(p.decoder); }

// Comment lines ("# ...") with the text wrapped at about 100 columns.
std::string comment_block(const std::string& text, const std::string& indent = "") {
  std::string out, line;
  std::istringstream words(text);
  for (std::string w; words >> w;) {
    if (!line.empty() && line.size() + w.size() > 100) {
      out += indent + "#" + line + "\n";
      line.clear();
    }
    line += " " + w;
  }
  if (!line.empty()) out += indent + "#" + line + "\n";
  return out;
}

// ------------------------------------------------------------------------------------------------------- shared

// The training-loop constants both scripts start with.
void constants(std::ostringstream& o, const Preset& p, const std::string& weights) {
  o << "PRESET = " << py_string(p.name) << "\n"
    << "DEFAULT_WEIGHTS = " << (weights.empty() ? "None" : py_string(weights)) << "\n"
    << "BATCH_SIZE = " << p.training.batch_size << "\n"
    << "EPOCHS = " << p.training.epochs << "\n";
}

// The command line both scripts share (their docstrings say what each mode does).
const char* kMain = R"PY(
def steps_per_epoch(n):
    """The playground's count: whole batches, plus the last partial one unless it would hold a single image."""
    full, rest = divmod(n, BATCH_SIZE)
    return full + (1 if rest >= 2 or full == 0 else 0)


def format_terms(label, terms):
    total, rec, kl, penalty = (float(t) for t in terms)
    return "%s: total %.9g reconstruction %.9g kl %.9g penalty %.9g" % (label, total, rec, kl, penalty)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    ap.add_argument("--data", default="data/mnist", help="folder with MNIST's IDX files, raw or .gz")
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS, help="a .safetensors file from the playground")
    ap.add_argument("--eval", action="store_true", help="print the loss on clean test digits (before any training)")
    ap.add_argument("--test-samples", type=int, default=0, help="evaluate on the first N test images (0: all)")
    ap.add_argument("--train-steps", type=int, default=0, help="run K training steps, printing each one's loss")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="epochs to train when neither mode above is given")
    ap.add_argument("--no-shuffle", action="store_true", help="training batches in file order")
    ap.add_argument("--clean", action="store_true",
                    help="train without input corruption and with z = mu (to compare a step with `aep train --clean`)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    seed_everything(args.seed)
    if args.weights:
        load_weights(args.weights)
    test_images = load_images(args.data, False)
    if args.test_samples:
        test_images = test_images[:args.test_samples]
    if args.eval:
        print(format_terms("clean test loss", evaluate(test_images)))
    if args.train_steps or not args.eval:
        train_images = load_images(args.data, True)
        steps = args.train_steps or args.epochs * steps_per_epoch(len(train_images))
        log_every = 1 if args.train_steps else steps_per_epoch(len(train_images))
        train(train_images, steps, not args.no_shuffle, args.clean, log_every)
        if not args.train_steps:
            print(format_terms("clean test loss", evaluate(test_images)))

if __name__ == "__main__":
    main()
)PY";

// ------------------------------------------------------------------------------------------------------ PyTorch

std::string torch_layer(const json& spec) {
  const std::string type = spec.at("type").get<std::string>();
  if (type == "Unflatten") return "nn.Unflatten(1, " + py_value(spec.at("unflattened_size")) + ")";
  if (spec.contains("tied_to")) {
    std::string t = spec.at("tied_to").get<std::string>();  // "encoder.1"
    size_t dot = t.find('.');
    std::string call = "TiedLinear(self." + t.substr(0, dot) + "[" + t.substr(dot + 1) + "]";
    if (spec.contains("bias")) call += ", bias=" + py_value(spec.at("bias"));
    return call + ")";
  }
  std::string args;
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (it.key() == "type") continue;
    args += (args.empty() ? "" : ", ") + it.key() + "=" + py_value(it.value());
  }
  return "nn." + type + "(" + args + ")";
}

void torch_sequential(std::ostringstream& o, const std::string& name, const json& layers) {
  o << "        self." << name << " = nn.Sequential(\n";
  for (const auto& l : layers) o << "            " << torch_layer(l) << ",\n";
  o << "        )\n";
}

bool has_tied(const Preset& p) {
  for (const char* part : kParts)
    for (const auto& l : part_specs(p, part))
      if (l.contains("tied_to")) return true;
  return false;
}

void torch_model(std::ostringstream& o, const Preset& p) {
  const bool vae = p.is_vae(), fold = folds_sigmoid(p);
  if (has_tied(p))
    o << R"PY(

class TiedLinear(nn.Module):
    """A decoder Linear whose weight is an encoder Linear's, transposed: y = x @ W_source + bias. It owns only
    its bias (the state_dict has no weight for it), like the playground's tied layer."""

    def __init__(self, source, bias=True):
        super().__init__()
        self.source = [source]  # in a list, so that the source is not registered (and saved) twice
        self.bias = nn.Parameter(torch.zeros(source.in_features)) if bias else None

    def forward(self, x):
        y = x @ self.source[0].weight
        return y + self.bias if self.bias is not None else y
)PY";
  o << "\n\nclass Autoencoder(nn.Module):\n    def __init__(self):\n        super().__init__()\n";
  for (const char* part : kParts)
    if (std::string(part) == "encoder" || std::string(part) == "decoder" || vae)
      torch_sequential(o, part, part_specs(p, part));
  o << "\n    def forward(self, x, sample=True):\n"
    << "        \"\"\"x: [B, 1, 28, 28] -> (output [B, 1, 28, 28], code h, mu, logvar).";
  if (fold) o << "\n        The output is the final Sigmoid's input: the loss applies the Sigmoid (BCE with logits).";
  o << "\"\"\"\n        h = self.encoder(x)\n";
  if (vae)
    o << "        mu, logvar = self.mu(h), self.logvar(h)\n"
      << "        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training and sample else mu\n";
  else
    o << "        z, mu, logvar = h, None, None\n";
  o << "        out = self.decoder" << (fold ? "[:-1]" : "") << "(z)\n"
    << "        return out.reshape(len(x), 1, 28, 28), h, mu, logvar\n\n\nmodel = Autoencoder()\n";
}

void torch_loss(std::ostringstream& o, const Preset& p) {
  const bool bce = p.loss.reconstruction == "bce", sum = p.loss.reduction == Reduction::Sum;
  o << "\n\ndef loss_terms(out, x, h, mu, logvar):\n"
    << "    \"\"\"The playground's loss as (total, reconstruction, kl, penalty); x is the clean target.\"\"\"\n"
    << "    zero = torch.zeros(())\n";
  std::string f = folds_sigmoid(p) ? "F.binary_cross_entropy_with_logits"
                  : bce                   ? "F.binary_cross_entropy"
                  : p.loss.reconstruction == "l1" ? "F.l1_loss"
                                                  : "F.mse_loss";
  if (sum)
    o << "    rec = " << f << "(out, x, reduction=\"sum\") / len(x)  # summed per image, averaged over the batch\n";
  else
    o << "    rec = " << f << "(out, x)  # the mean over every pixel\n";
  if (p.is_vae())
    o << "    kl = " << py_float(p.loss.beta)
      << " * torch.sum(-0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar))) / len(x)  # beta * KL(q(z|x) || N(0, I))\n";
  else
    o << "    kl = zero\n";
  o << "    penalty = zero\n";
  if (p.loss.l1 > 0)
    o << "    penalty = penalty + " << py_float(p.loss.l1) << " * h.abs().sum() / len(x)  # L1 on the code: sparsity\n";
  if (p.loss.contractive > 0)
    o << "    # Contractive: ||d h / d x||_F^2 for h = sigmoid(W a + b) is sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.\n"
      << "    W = model.encoder[" << p.encoder.size() - 2 << "].weight\n"
      << "    penalty = penalty + " << py_float(p.loss.contractive)
      << " * torch.sum((h * (1 - h)) ** 2 * (W ** 2).sum(1)) / len(x)\n";
  o << "    return rec + kl + penalty, rec, kl, penalty\n";
}

void torch_corruption(std::ostringstream& o, const Preset& p) {
  const CorruptionConfig& c = p.corruption;
  const std::string lo = p.normalize == Normalization::MinusOneOne ? "-1.0" : "0.0";
  o << "\n\ndef corrupt(x):\n";
  if (c.type == "gaussian") {
    o << "    \"\"\"Gaussian noise (std " << py_float(c.std) << ")" << (c.clip ? ", clipped to the input range" : "")
      << ": the model learns to denoise.\"\"\"\n";
    o << "    y = x + " << py_float(c.std) << " * torch.randn_like(x)\n";
    o << (c.clip ? "    return y.clamp(" + lo + ", 1.0)\n" : "    return y\n");
  } else if (c.type == "dropout") {
    o << "    \"\"\"Each pixel dropped (set to 0) with probability " << py_float(c.p)
      << (c.scale ? "; kept ones scaled by 1 / (1 - p) as nn.Dropout does" : "") << ".\"\"\"\n"
      << "    keep = " << (c.scale ? "1 / (1 - " + py_float(c.p) + ")" : "1.0") << "\n"
      << "    return torch.where(torch.rand_like(x) < " << py_float(c.p) << ", torch.zeros_like(x), x * keep)\n";
  } else if (c.type == "salt_pepper") {
    o << "    \"\"\"Salt and pepper: each pixel, with probability " << py_float(c.p)
      << ", set to the minimum or the maximum.\"\"\"\n"
      << "    hit = torch.rand_like(x) < " << py_float(c.p) << "\n"
      << "    return torch.where(hit, torch.where(torch.rand_like(x) < 0.5, " << lo << ", 1.0), x)\n";
  } else if (c.type == "occlusion") {
    o << "    \"\"\"A random " << c.size << "x" << c.size
      << " box per image set to the minimum (inpainting).\"\"\"\n"
      << "    y, s = x.clone(), min(" << c.size << ", x.shape[2], x.shape[3])\n"
      << "    for b in range(len(y)):\n"
      << "        top, left = torch.randint(0, x.shape[2] - s + 1, ()), torch.randint(0, x.shape[3] - s + 1, ())\n"
      << "        y[b, :, top:top + s, left:left + s] = " << lo << "\n"
      << "    return y\n";
  } else if (c.type == "downsample") {
    o << "    \"\"\"Each " << c.factor << "x" << c.factor
      << " block replaced by its average (super-resolution); blocks cut by the border average what they hold.\"\"\"\n"
      << "    f = " << c.factor << "\n"
      << "    small = F.avg_pool2d(x, f, ceil_mode=True)\n"
      << "    return small.repeat_interleave(f, 2).repeat_interleave(f, 3)[:, :, :x.shape[2], :x.shape[3]]\n";
  } else {
    o << "    \"\"\"This preset trains on clean inputs.\"\"\"\n    return x\n";
  }
}

const char* kTorchData = R"PY(

# ---- MNIST from its IDX files, raw or gzipped (no torchvision needed) -------------------------------------------
def read_idx(path):
    """An IDX file of bytes as a uint8 tensor of its dimensions, e.g. [10000, 28, 28]."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        sys.exit("%s: not an IDX file of bytes (magic 0x%08x; still gzipped under another name?)" % (path, magic))
    ndim = magic & 0xFF
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load_images(folder, train):
    """MNIST's training or test images as uint8 [N, 1, 28, 28] (turned into floats batch by batch)."""
    name = ("train" if train else "t10k") + "-images-idx3-ubyte"
    for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.exists(path):
            return read_idx(path).reshape(-1, 1, 28, 28)
    sys.exit("%s: found neither %s nor %s.gz" % (folder, name, name))


# ---- weights: the playground's .safetensors files -------------------------------------------------------------
def load_safetensors(path):
    """name -> tensor, with the safetensors package if it is installed, else read here: the format is an 8-byte
    little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the tensors' bytes."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        tensors[name] = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def load_weights(path):
    state = load_safetensors(path)
    dropped = [k for k in state if k.startswith("optimizer.")]
    if dropped:
        print("%s: dropping its %d optimizer.* tensors (the playground's Adam state, not part of the model)"
              % (path, len(dropped)), file=sys.stderr)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("optimizer.")})  # strict
)PY";

std::string torch_to_float(const Preset& p) {
  if (p.normalize == Normalization::MinusOneOne)
    return "\n\ndef to_float(images):\n    \"\"\"uint8 pixels -> [-1, 1] (Normalize((0.5,), (0.5,)) after ToTensor).\"\"\"\n"
           "    return images.float() * (1 / 127.5) - 1\n";
  return "\n\ndef to_float(images):\n    \"\"\"uint8 pixels -> [0, 1] (what ToTensor gives).\"\"\"\n"
         "    return images.float() * (1 / 255)\n";
}

std::string torch_optimizer(const Preset& p) {
  const OptimizerConfig& c = p.optimizer;
  std::ostringstream o;
  if (c.type == "adam")
    o << "torch.optim.Adam(model.parameters(), lr=" << py_float(c.lr) << ", betas=(" << py_float(c.beta1) << ", "
      << py_float(c.beta2) << "), eps=" << py_float(c.eps) << ", weight_decay=" << py_float(c.weight_decay) << ")";
  else
    o << "torch.optim.SGD(model.parameters(), lr=" << py_float(c.lr) << ", momentum=" << py_float(c.momentum)
      << ", weight_decay=" << py_float(c.weight_decay) << ")";
  return o.str();
}

}  // namespace

std::string pytorch_code(const Preset& p, const std::string& weights) {
  std::ostringstream o;
  o << "#!/usr/bin/env python3\n\"\"\"" << p.title << ": the playground's '" << p.name
    << "' preset in PyTorch (written by `aep export --pytorch`).\n\n"
    << "The module's state_dict has the names and shapes of the playground's .safetensors weight files, so they load\n"
    << "strictly. Needs only PyTorch: MNIST's IDX files and the safetensors format are read here.\n\n"
    << "  python3 " << p.name << ".py --data DIR --weights W.safetensors --eval [--test-samples N]\n"
    << "      the loss on clean test digits in eval mode (a VAE decodes z = mu), as `aep eval --clean` prints it\n"
    << "  python3 " << p.name << ".py --data DIR [--weights W.safetensors] [--eval] --train-steps K [--no-shuffle] [--clean]\n"
    << "      K training steps from the weights, each step's loss (after the test loss, with --eval)\n"
    << "  python3 " << p.name << ".py --data DIR [--epochs N]\n"
    << "      the preset's training run, then the test loss\n\"\"\"\n";
  if (!p.description.empty()) o << comment_block(p.description);
  o << "import argparse\nimport gzip\nimport json\nimport os\nimport struct\nimport sys\n\n"
    << "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n";
  constants(o, p, weights);
  torch_model(o, p);
  torch_loss(o, p);
  torch_corruption(o, p);
  o << torch_to_float(p) << kTorchData;
  o << R"PY(

def seed_everything(seed):
    torch.manual_seed(seed)


def evaluate(images, batch_size=500):
    """Mean loss terms over clean images in eval mode (BatchNorm's running statistics, a VAE's z = mu)."""
    model.eval()
    sums = [0.0] * 4
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size])
            out, h, mu, logvar = model(x)
            for i, t in enumerate(loss_terms(out, x, h, mu, logvar)):
                sums[i] += float(t) * len(x)
    return [s / len(images) for s in sums]


def train(images, steps, shuffle=True, clean=False, log_every=1):
    """`steps` optimizer steps over batches of the training images, reshuffled every epoch. A lone last image of an
    epoch is skipped (BatchNorm cannot train on one), as in the playground. clean: no input corruption, and a VAE
    decodes z = mu, so that a step can be compared with `aep train --clean`."""
    optimizer = )PY" << torch_optimizer(p) << R"PY(
    model.train()
    step, running = 0, 0.0
    while step < steps:
        order = torch.randperm(len(images)) if shuffle else torch.arange(len(images))
        for start in range(0, len(images), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            if len(idx) < 2:
                continue
            x = to_float(images[idx])
            x_in = x if clean else corrupt(x)
            out, h, mu, logvar = model(x_in, sample=not clean)
            terms = loss_terms(out, )PY" << (p.corruption.corrupted_target ? "x_in, h, mu, logvar)  # the target is the corrupted input (\"target\": \"corrupted\")"
                                                                               : "x, h, mu, logvar)  # the target is the clean image") << R"PY(
            optimizer.zero_grad()
            terms[0].backward()
            optimizer.step()
            step += 1
            running += float(terms[0])
            if log_every == 1:
                print(format_terms("step %d loss" % step, terms))
            elif step % log_every == 0:
                print("epoch %d: mean training loss %.6f" % (step // log_every, running / log_every))
                running = 0.0
            if step == steps:
                return
)PY" << kMain;
  return o.str();
}


// -------------------------------------------------------------------------------------------------------- Keras

namespace {

// One safetensors tensor -> one Keras weight. ops apply in order: {"op": "transpose", "perm": [...]} (numpy's
// transpose) and {"op": "chw_to_hwc", "axis": a, "chw": [C, H, W]}: the C*H*W entries along axis a reordered from
// PyTorch's channel-major feature order to the channels-last order Keras flattens and reshapes in.
json weight(const std::string& keras_name, const std::string& source, json ops = json::array()) {
  return {{"name", keras_name}, {"source", source}, {"ops", std::move(ops)}};
}
json transpose(std::vector<int> perm) { return {{"op", "transpose"}, {"perm", perm}}; }
json chw_to_hwc(int axis, const std::vector<size_t>& chw) { return {{"op", "chw_to_hwc"}, {"axis", axis}, {"chw", chw}}; }

json keras_layer(const std::string& name, const std::string& cls, json config, const std::string& from = "",
                 json weights = json::array()) {
  json l = {{"name", name}, {"class", cls}, {"config", std::move(config)}, {"weights", std::move(weights)}};
  if (!from.empty()) l["from"] = from;
  return l;
}

bool elementwise(const std::string& type) {
  return type == "ReLU" || type == "LeakyReLU" || type == "Sigmoid" || type == "Tanh" || type == "Dropout" ||
         type == "BatchNorm1d";
}

// Features of a [C, H, W] image flattened: their order differs between PyTorch and Keras unless C or H * W is 1.
bool order_differs(const Shape& s) { return s[1] > 1 && s[2] * s[3] > 1; }

std::vector<size_t> chw(const Shape& s) { return {s[1], s[2], s[3]}; }

// Keras's shape of one sample: images channels-last, flat vectors as they are.
json keras_shape(const Shape& s, bool flat) {
  return flat ? json::array({s[1]}) : json::array({s[2], s[3], s[1]});
}

[[noreturn]] void unsupported(const std::string& where, const std::string& what) {
  throw std::runtime_error(where + ": the Keras export cannot express " + what);
}

// State carried from layer to layer (and part to part): is the value flat, and if it is a flattened image whose
// features Keras holds in HWC order, that image's [C, H, W] (empty when both orders agree).
struct Flow {
  Shape shape;
  bool flat = false;
  std::vector<size_t> hwc_pending;
};

void plan_part(const std::string& part, const json& specs, size_t count, Flow& flow, json& out) {
  // Linears whose outputs feed an Unflatten (through element-wise layers) write their outputs in HWC order, so that
  // Keras's Reshape to [H, W, C] sees each feature where PyTorch's Unflatten puts it.
  std::vector<std::vector<size_t>> hwc_out(count);
  std::vector<bool> unflatten_by_weights(count, false);
  {
    Shape s = flow.shape;
    std::vector<Shape> ins;
    for (size_t i = 0; i < count; ++i) {
      ins.push_back(s);
      s = make_layer(specs[i])->output_shape(s);
    }
    for (size_t i = 0; i < count; ++i) {
      if (specs[i].at("type") != "Unflatten") continue;
      Shape img = make_layer(specs[i])->output_shape(ins[i]);
      if (!order_differs(img)) continue;
      size_t j = i;
      while (j > 0 && elementwise(specs[j - 1].at("type").get<std::string>())) --j;
      if (j == 0 || specs[j - 1].at("type") != "Linear" || specs[j - 1].contains("tied_to")) continue;
      for (size_t k = j - 1; k < i; ++k) hwc_out[k] = chw(img);
      unflatten_by_weights[i] = true;
    }
  }
  for (size_t i = 0; i < count; ++i) {
    const json& spec = specs[i];
    const std::string type = spec.at("type").get<std::string>();
    const std::string src = part + "." + std::to_string(i), name = part + "_" + std::to_string(i);
    const std::string where = src + " (" + type + ")";
    std::unique_ptr<Layer> layer = make_layer(spec);
    Shape in = flow.shape, outs = layer->output_shape(in);
    if (flow.flat && (type == "Conv2d" || type == "ConvTranspose2d" || type == "MaxPool2d" || type == "Upsample" ||
                      type == "BatchNorm2d"))
      unsupported(where, "an image layer on a flat input (add an Unflatten before it)");
    if (type == "Linear") {
      const Linear& lin = static_cast<const Linear&>(*layer);
      if (spec.contains("tied_to")) {
        if (!flow.hwc_pending.empty() || !hwc_out[i].empty())
          unsupported(where, "a tied Linear next to a Flatten or Unflatten of a multi-channel image");
        std::string t = spec.at("tied_to").get<std::string>();
        json l = keras_layer(name, "TiedDense", {{"units", lin.out_features}, {"use_bias", lin.has_bias}}, src,
                             lin.has_bias ? json::array({weight("bias", src + ".bias")}) : json::array());
        l["tied_to"] = t.substr(0, t.find('.')) + "_" + t.substr(t.find('.') + 1);
        out.push_back(l);
      } else {
        json kernel_ops = json::array({transpose({1, 0})});  // PyTorch [out, in] -> Keras [in, out]
        if (!flow.hwc_pending.empty()) kernel_ops.push_back(chw_to_hwc(0, flow.hwc_pending));
        if (!hwc_out[i].empty()) kernel_ops.push_back(chw_to_hwc(1, hwc_out[i]));
        json w = json::array({weight("kernel", src + ".weight", kernel_ops)});
        if (lin.has_bias)
          w.push_back(weight("bias", src + ".bias",
                             hwc_out[i].empty() ? json::array() : json::array({chw_to_hwc(0, hwc_out[i])})));
        out.push_back(keras_layer(name, "Dense", {{"units", lin.out_features}, {"use_bias", lin.has_bias}}, src, w));
      }
      flow.hwc_pending.clear();
    } else if (type == "Conv2d") {
      const Conv2d& c = static_cast<const Conv2d&>(*layer);
      const size_t k = c.kernel_size, s = c.stride, pad = c.padding;
      // 'same' equals PyTorch's padding only at stride 1 with an odd kernel; otherwise Keras pads more at the
      // bottom and right than at the top and left, so the padding is explicit.
      const bool same = s == 1 && k % 2 == 1 && pad == (k - 1) / 2;
      if (pad > 0 && !same)
        out.push_back(keras_layer(name + "_pad", "ZeroPadding2D", {{"padding", {{pad, pad}, {pad, pad}}}}));
      json w = json::array({weight("kernel", src + ".weight", json::array({transpose({2, 3, 1, 0})}))});  // OIHW -> HWIO
      if (c.has_bias) w.push_back(weight("bias", src + ".bias"));
      out.push_back(keras_layer(name, "Conv2D",
                                {{"filters", c.out_channels}, {"kernel_size", {k, k}}, {"strides", {s, s}},
                                 {"padding", pad == 0 || !same ? "valid" : "same"}, {"use_bias", c.has_bias}},
                                src, w));
    } else if (type == "ConvTranspose2d") {
      const ConvTranspose2d& c = static_cast<const ConvTranspose2d&>(*layer);
      const size_t k = c.kernel_size, s = c.stride;
      // Keras's 'valid' transposed convolution gives every output position, in * s + max(k - s, 0) rows;
      // PyTorch's output is rows [padding, padding + out) of those.
      const size_t full_h = in[2] * s + (k > s ? k - s : 0), full_w = in[3] * s + (k > s ? k - s : 0);
      if (c.padding + outs[2] > full_h || c.padding + outs[3] > full_w)
        unsupported(where, "output_padding larger than padding + stride - kernel_size");
      json w = json::array({weight("kernel", src + ".weight", json::array({transpose({2, 3, 1, 0})}))});  // [in, out, kh, kw] -> [kh, kw, out, in]
      if (c.has_bias) w.push_back(weight("bias", src + ".bias"));
      out.push_back(keras_layer(name, "Conv2DTranspose",
                                {{"filters", c.out_channels}, {"kernel_size", {k, k}}, {"strides", {s, s}},
                                 {"padding", "valid"}, {"use_bias", c.has_bias}},
                                src, w));
      const size_t bottom = full_h - c.padding - outs[2], right = full_w - c.padding - outs[3];
      if (c.padding > 0 || bottom > 0 || right > 0)
        out.push_back(keras_layer(name + "_crop", "Cropping2D",
                                  {{"cropping", {{c.padding, bottom}, {c.padding, right}}}}));
    } else if (type == "MaxPool2d") {
      const MaxPool2d& m = static_cast<const MaxPool2d&>(*layer);
      out.push_back(keras_layer(name, "MaxPooling2D",
                                {{"pool_size", {m.kernel_size, m.kernel_size}},
                                 {"strides", {m.stride, m.stride}}, {"padding", "valid"}}, src));
    } else if (type == "Upsample") {
      const Upsample& u = static_cast<const Upsample&>(*layer);
      out.push_back(keras_layer(name, "UpSampling2D", {{"size", {u.scale, u.scale}}, {"interpolation", "nearest"}}, src));
    } else if (type == "BatchNorm1d" || type == "BatchNorm2d") {
      const BatchNorm& b = static_cast<const BatchNorm&>(*layer);
      // Keras's momentum weighs the old running value, PyTorch's the new batch statistic.
      json vec_ops = json::array();
      if (!flow.hwc_pending.empty()) vec_ops.push_back(chw_to_hwc(0, flow.hwc_pending));
      if (!hwc_out[i].empty()) vec_ops.push_back(chw_to_hwc(0, hwc_out[i]));
      json w = json::array({weight("gamma", src + ".weight", vec_ops), weight("beta", src + ".bias", vec_ops),
                            weight("moving_mean", src + ".running_mean", vec_ops),
                            weight("moving_variance", src + ".running_var", vec_ops)});
      out.push_back(keras_layer(name, "BatchNormalization",
                                {{"axis", -1}, {"epsilon", b.eps}, {"momentum", 1.0 - double(b.momentum)}}, src, w));
    } else if (type == "Dropout") {
      out.push_back(keras_layer(name, "Dropout", {{"rate", spec.value("p", 0.5)}}, src));
    } else if (type == "ReLU") {
      out.push_back(keras_layer(name, "ReLU", json::object(), src));
    } else if (type == "LeakyReLU") {
      out.push_back(keras_layer(name, "LeakyReLU", {{"alpha", spec.value("negative_slope", 0.01)}}, src));
    } else if (type == "Sigmoid" || type == "Tanh") {
      out.push_back(keras_layer(name, "Activation", {{"activation", type == "Sigmoid" ? "sigmoid" : "tanh"}}, src));
    } else if (type == "Flatten") {
      if (!flow.flat) {
        out.push_back(keras_layer(name, "Flatten", json::object(), src));
        if (order_differs(in)) flow.hwc_pending = chw(in);
      }
      // Flatten of a flat value changes nothing: no Keras layer.
    } else if (type == "Unflatten") {
      const json target = keras_shape(outs, false);
      if (!flow.hwc_pending.empty()) {
        if (flow.hwc_pending != chw(outs)) unsupported(where, "an Unflatten to another shape than the Flatten before it");
        out.push_back(keras_layer(name, "Reshape", {{"target_shape", target}}, src));
      } else if (unflatten_by_weights[i] || !order_differs(outs)) {
        out.push_back(keras_layer(name, "Reshape", {{"target_shape", target}}, src));
      } else {  // no Linear to reorder: reshape in PyTorch's order, then move the channels last
        out.push_back(keras_layer(name, "Reshape", {{"target_shape", {outs[1], outs[2], outs[3]}}}, src));
        out.push_back(keras_layer(name + "_permute", "Permute", {{"dims", {2, 3, 1}}}));
      }
      flow.hwc_pending.clear();
    } else {
      unsupported(where, "this layer type");
    }
    flow.shape = outs;
    flow.flat = type == "Flatten" || type == "Linear" || (flow.flat && elementwise(type));
  }
}

}  // namespace

json keras_plan(const Preset& p) {
  json plan = {{"format", "aep-keras-plan-1"}, {"preset", p.name},
               {"normalize", p.normalize == Normalization::MinusOneOne ? "-1_1" : "0_1"}, {"vae", p.is_vae()},
               {"input_shape", {28, 28, 1}}};
  const bool fold = folds_sigmoid(p);
  json parts = json::array();
  Flow flow;
  flow.shape = {1, 1, 28, 28};
  Flow code;  // what reaches the decoder: the encoder's output, or mu's
  for (const char* name : kParts) {
    const std::string part = name;
    if ((part == "mu" || part == "logvar") && !p.is_vae()) continue;
    Flow f = part == "encoder" ? flow : part == "decoder" ? code : flow;
    json entry = {{"name", part}, {"input_shape", keras_shape(f.shape, f.flat)}, {"layers", json::array()}};
    const json& specs = part_specs(p, part);
    // The decoder's final Sigmoid is left to the loss when it is BCE (sigmoid_cross_entropy_with_logits).
    plan_part(part, specs, specs.size() - (part == "decoder" && fold ? 1 : 0), f, entry["layers"]);
    if (part == "encoder") flow = f, code = f;
    if (part == "mu") code = f;
    if (part == "decoder") {
      if (!f.hwc_pending.empty()) unsupported("decoder", "an output in flattened multi-channel order");
      if (f.flat) entry["layers"].push_back(keras_layer("decoder_to_image", "Reshape", {{"target_shape", {28, 28, 1}}}));
    }
    parts.push_back(entry);
  }
  plan["parts"] = parts;
  json loss = {{"reconstruction", fold ? "bce_with_logits" : p.loss.reconstruction},
               {"reduction", p.loss.reduction == Reduction::Sum ? "sum" : "mean"}, {"beta", p.loss.beta},
               {"l1", p.loss.l1}, {"contractive", p.loss.contractive}};
  if (p.loss.contractive > 0) loss["contractive_layer"] = "encoder_" + std::to_string(p.encoder.size() - 2);
  plan["loss"] = loss;
  return plan;
}

namespace {

std::string part_variable(const std::string& part) {
  return part == "mu" ? "mu_head" : part == "logvar" ? "logvar_head" : part;
}

std::string keras_layer_code(const json& l) {
  const std::string cls = l.at("class").get<std::string>(), name = py_string(l.at("name").get<std::string>());
  std::string args;
  if (cls == "TiedDense") {
    std::string t = l.at("tied_to").get<std::string>();
    args = "encoder.get_layer(" + py_string(t) + "), ";
  }
  for (auto it = l.at("config").begin(); it != l.at("config").end(); ++it)
    args += it.key() + "=" + py_value(it.value()) + ", ";
  return (cls == "TiedDense" ? "" : "keras.layers.") + cls + "(" + args + "name=" + name + ")";
}

std::string ops_code(const json& ops) {
  std::string s = "[";
  for (const auto& op : ops) {
    if (s.size() > 1) s += ", ";
    if (op.at("op") == "transpose") s += "(\"transpose\", " + py_value(op.at("perm")) + ")";
    else s += "(\"chw_to_hwc\", " + op.at("axis").dump() + ", " + py_value(op.at("chw")) + ")";
  }
  return s + "]";
}

}  // namespace

std::string keras_code(const Preset& p, const std::string& weights) {
  const json plan = keras_plan(p);
  const json& loss = plan.at("loss");
  const std::string rec = loss.at("reconstruction").get<std::string>();
  const bool sum = loss.at("reduction") == "sum", vae = p.is_vae();
  std::ostringstream o;
  o << "#!/usr/bin/env python3\n\"\"\"" << p.title << ": the playground's '" << p.name
    << "' preset in Keras (TensorFlow 2.x; written by `aep export --keras`).\n\n"
    << "Channels-last: images are [B, 28, 28, 1]. The playground's .safetensors weights are in PyTorch's layouts;\n"
    << "WEIGHTS lists, for every Keras weight, the tensor it comes from and the layout changes it needs.\n"
    << "Needs TensorFlow and numpy: MNIST's IDX files and the safetensors format are read here.\n\n"
    << "  python3 " << p.name << "_keras.py --data DIR --weights W.safetensors --eval [--test-samples N]\n"
    << "      the loss on clean test digits in inference mode (a VAE decodes z = mu), as `aep eval --clean` prints it\n"
    << "  python3 " << p.name << "_keras.py --data DIR [--weights W.safetensors] [--eval] --train-steps K [--no-shuffle] [--clean]\n"
    << "  python3 " << p.name << "_keras.py --data DIR [--epochs N]\n\n"
    << "Differences from PyTorch that remain: Keras's Adam adds epsilon to sqrt(v) before the bias correction of v\n"
    << "(PyTorch after it), and BatchNormalization's moving variance tracks the biased batch variance (PyTorch's the\n"
    << "unbiased one). Evaluating given weights is unaffected; training drifts apart slowly.\n\"\"\"\n";
  if (!p.description.empty()) o << comment_block(p.description);
  o << "import argparse\nimport gzip\nimport json\nimport os\nimport struct\nimport sys\n\n"
    << "import numpy as np\nimport tensorflow as tf\nfrom tensorflow import keras\n\n";
  constants(o, p, weights);
  bool tied = false;
  for (const auto& part : plan.at("parts"))
    for (const auto& l : part.at("layers")) tied = tied || l.at("class") == "TiedDense";
  if (tied)
    o << R"PY(

class TiedDense(keras.layers.Layer):
    """A Dense whose kernel is another Dense's kernel, transposed (the tied autoencoder): owns only its bias."""

    def __init__(self, source, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.source_kernel = lambda: source.kernel  # a function: Keras must not count the kernel as ours too
        self.units, self.use_bias = units, use_bias

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        y = tf.matmul(x, self.source_kernel(), transpose_b=True)
        return y + self.bias if self.use_bias else y
)PY";
  o << "\n\n# ---- the model: one keras.Sequential per part of the preset -------------------------------------------------\n";
  if (folds_sigmoid(p))
    o << "# The decoder's final Sigmoid is applied by the loss (sigmoid_cross_entropy_with_logits) and by reconstruct().\n";
  std::vector<std::string> vars;
  for (const auto& part : plan.at("parts")) {
    const std::string name = part.at("name").get<std::string>(), var = part_variable(name);
    vars.push_back(var);
    o << var << " = keras.Sequential([\n    keras.Input(shape=" << py_value(part.at("input_shape")) << "),\n";
    for (const auto& l : part.at("layers")) {
      std::string from = l.contains("from") ? "  # " + l.at("from").get<std::string>() : "";
      o << "    " << keras_layer_code(l) << "," << from << "\n";
    }
    o << "], name=" << py_string(name) << ")\n";
  }
  o << "PARTS = [";
  for (size_t i = 0; i < vars.size(); ++i) o << (i ? ", " : "") << vars[i];
  o << "]\n\n\ndef layer(name):\n    for part in PARTS:\n        for l in part.layers:\n            if l.name == name:\n"
    << "                return l\n    raise KeyError(name)\n\n\n"
    << "def forward(x, training=False, sample=True):\n"
    << "    \"\"\"x: [B, 28, 28, 1] -> (output [B, 28, 28, 1]" << (folds_sigmoid(p) ? " as logits" : "")
    << ", code h, mu, logvar).\"\"\"\n    h = encoder(x, training=training)\n";
  if (vae)
    o << "    mu, logvar = mu_head(h, training=training), logvar_head(h, training=training)\n"
      << "    z = mu + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mu)) if training and sample else mu\n";
  else
    o << "    z, mu, logvar = h, None, None\n";
  o << "    return decoder(z, training=training), h, mu, logvar\n\n\n"
    << "def reconstruct(x):\n    out = forward(x)[0]\n    return " << (folds_sigmoid(p) ? "tf.sigmoid(out)" : "out") << "\n";

  // Loss.
  o << "\n\ndef loss_terms(out, x, h, mu, logvar):\n"
    << "    \"\"\"The playground's loss as (total, reconstruction, kl, penalty); x is the clean target.\"\"\"\n"
    << "    batch = tf.cast(tf.shape(x)[0], tf.float32)\n";
  std::string per_pixel = rec == "bce_with_logits" ? "tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=out)"
                          : rec == "bce" ? "-(x * tf.maximum(tf.math.log(out), -100.0) + (1 - x) * tf.maximum(tf.math.log(1 - out), -100.0))"
                          : rec == "l1"  ? "tf.abs(out - x)"
                                         : "tf.square(out - x)";
  if (rec == "bce") o << "    # BCE on probabilities, each log clamped at -100 as PyTorch's binary_cross_entropy does\n";
  o << "    rec = " << (sum ? "tf.reduce_sum(" + per_pixel + ") / batch  # summed per image, averaged over the batch\n"
                          : "tf.reduce_mean(" + per_pixel + ")  # the mean over every pixel\n");
  if (vae)
    o << "    kl = " << py_float(p.loss.beta)
      << " * tf.reduce_sum(-0.5 * (1 + logvar - tf.square(mu) - tf.exp(logvar))) / batch  # beta * KL(q(z|x) || N(0, I))\n";
  else
    o << "    kl = tf.zeros(())\n";
  o << "    penalty = tf.zeros(())\n";
  if (p.loss.l1 > 0)
    o << "    penalty += " << py_float(p.loss.l1) << " * tf.reduce_sum(tf.abs(h)) / batch  # L1 on the code: sparsity\n";
  if (p.loss.contractive > 0)
    o << "    # Contractive: ||d h / d x||_F^2 for h = sigmoid(a K + b) is sum_j (h_j (1 - h_j))^2 sum_i K_ij^2.\n"
      << "    K = layer(" << py_string(loss.at("contractive_layer").get<std::string>()) << ").kernel  # [in, out]\n"
      << "    penalty += " << py_float(p.loss.contractive)
      << " * tf.reduce_sum(tf.square(h * (1 - h)) * tf.reduce_sum(tf.square(K), axis=0)) / batch\n";
  o << "    return rec + kl + penalty, rec, kl, penalty\n";

  // Corruption (numpy, on the batch before the step).
  const CorruptionConfig& c = p.corruption;
  const std::string lo = p.normalize == Normalization::MinusOneOne ? "-1.0" : "0.0";
  o << "\n\ndef corrupt(x, rng):\n";
  if (c.type == "gaussian")
    o << "    y = x + " << py_float(c.std) << " * rng.standard_normal(x.shape, dtype=np.float32)\n"
      << (c.clip ? "    return np.clip(y, " + lo + ", 1.0)\n" : "    return y\n");
  else if (c.type == "dropout")
    o << "    keep = " << (c.scale ? "1 / (1 - " + py_float(c.p) + ")" : "1.0") << "\n"
      << "    return np.where(rng.random(x.shape) < " << py_float(c.p) << ", 0.0, x * keep).astype(np.float32)\n";
  else if (c.type == "salt_pepper")
    o << "    hit = rng.random(x.shape) < " << py_float(c.p) << "\n"
      << "    return np.where(hit, np.where(rng.random(x.shape) < 0.5, " << lo << ", 1.0), x).astype(np.float32)\n";
  else if (c.type == "occlusion")
    o << "    y, s = x.copy(), min(" << c.size << ", x.shape[1], x.shape[2])\n"
      << "    for b in range(len(y)):\n"
      << "        top, left = rng.integers(0, x.shape[1] - s + 1), rng.integers(0, x.shape[2] - s + 1)\n"
      << "        y[b, top:top + s, left:left + s, :] = " << lo << "\n    return y\n";
  else if (c.type == "downsample")
    o << "    y, f = x.copy(), " << c.factor << "\n"
      << "    for i in range(0, x.shape[1], f):\n        for j in range(0, x.shape[2], f):\n"
      << "            y[:, i:i + f, j:j + f, :] = y[:, i:i + f, j:j + f, :].mean(axis=(1, 2), keepdims=True)\n"
      << "    return y\n";
  else
    o << "    return x  # this preset trains on clean inputs\n";

  // Weights.
  o << "\n\n# ---- weights: the playground's .safetensors (PyTorch layouts) into the Keras layers --------------------------\n"
    << "# (Keras layer, its weight, the tensor in the file, layout changes applied in order)\nWEIGHTS = [\n";
  for (const auto& part : plan.at("parts"))
    for (const auto& l : part.at("layers"))
      for (const auto& w : l.at("weights"))
        o << "    (" << py_string(l.at("name").get<std::string>()) << ", " << py_string(w.at("name").get<std::string>())
          << ", " << py_string(w.at("source").get<std::string>()) << ", " << ops_code(w.at("ops")) << "),\n";
  o << "]\n";
  o << R"PY(

def apply_layout(a, ops):
    for op in ops:
        if op[0] == "transpose":  # Dense: [out, in] -> [in, out]; convolutions: to [kh, kw, ..., ...]
            a = a.transpose(op[1])
        else:  # "chw_to_hwc": one axis of C*H*W features from PyTorch's channel-major order to channels-last order
            axis, (c, h, w) = op[1], op[2]
            a = np.moveaxis(a, axis, 0)
            rest = a.shape[1:]
            a = a.reshape((c, h, w) + rest).transpose((1, 2, 0) + tuple(range(3, 3 + len(rest))))
            a = np.moveaxis(a.reshape((c * h * w,) + rest), 0, axis)
    return np.ascontiguousarray(a)


def load_safetensors(path):
    """name -> numpy array: an 8-byte little-endian header length, a JSON header, then the tensors' bytes."""
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    return {name: np.frombuffer(data[8 + n + info["data_offsets"][0]:8 + n + info["data_offsets"][1]],
                                dtype=dtypes[info["dtype"]]).reshape(info["shape"])
            for name, info in header.items() if name != "__metadata__"}


def load_weights(path):
    state = load_safetensors(path)
    for layer_name, weight_name, source, ops in WEIGHTS:
        value = apply_layout(state[source], ops)
        variable = getattr(layer(layer_name), weight_name)
        if tuple(variable.shape) != value.shape:
            sys.exit("%s: %s has shape %s, %s.%s needs %s" % (path, source, value.shape, layer_name, weight_name,
                                                               tuple(variable.shape)))
        variable.assign(value)
    if any(k.startswith("optimizer.") for k in state):
        print("%s: its optimizer.* tensors (the playground's Adam state) are not loaded" % path, file=sys.stderr)


# ---- MNIST from its IDX files, raw or gzipped ----------------------------------------------------------------
def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        sys.exit("%s: not an IDX file of bytes (magic 0x%08x; still gzipped under another name?)" % (path, magic))
    ndim = magic & 0xFF
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def load_images(folder, train):
    """MNIST's training or test images as uint8 [N, 28, 28, 1] (turned into floats batch by batch)."""
    name = ("train" if train else "t10k") + "-images-idx3-ubyte"
    for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.exists(path):
            return read_idx(path).reshape(-1, 28, 28, 1)
    sys.exit("%s: found neither %s nor %s.gz" % (folder, name, name))
)PY";
  if (p.normalize == Normalization::MinusOneOne)
    o << "\n\ndef to_float(images):\n    return images.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1)  # [-1, 1]\n";
  else
    o << "\n\ndef to_float(images):\n    return images.astype(np.float32) * np.float32(1 / 255)  # [0, 1]\n";

  // Training and evaluation.
  const OptimizerConfig& oc = p.optimizer;
  o << "\n\nVARIABLES = [v for part in PARTS for v in part.trainable_variables]\n";
  if (oc.type == "adam")
    o << "optimizer = keras.optimizers.Adam(learning_rate=" << py_float(oc.lr) << ", beta_1=" << py_float(oc.beta1)
      << ", beta_2=" << py_float(oc.beta2) << ", epsilon=" << py_float(oc.eps) << ")\n";
  else
    o << "optimizer = keras.optimizers.SGD(learning_rate=" << py_float(oc.lr) << ", momentum=" << py_float(oc.momentum)
      << ")\n";
  o << "\n\n@tf.function\ndef train_step(x_in, x, sample):\n"
    << "    with tf.GradientTape() as tape:\n"
    << "        out, h, mu, logvar = forward(x_in, training=True, sample=sample)\n"
    << "        terms = loss_terms(out, x, h, mu, logvar)  # x: the target\n"
    << "        objective = terms[0]\n";
  if (oc.weight_decay > 0)
    o << "        # PyTorch's weight_decay adds decay * w to each gradient: an L2 term of the objective\n"
      << "        objective += " << py_float(0.5 * oc.weight_decay)
      << " * tf.add_n([tf.reduce_sum(tf.square(v)) for v in VARIABLES])\n";
  o << "    optimizer.apply_gradients(zip(tape.gradient(objective, VARIABLES), VARIABLES))\n"
    << "    return terms\n";
  o << R"PY(

def seed_everything(seed):
    tf.random.set_seed(seed)
    global RNG
    RNG = np.random.default_rng(seed)


def evaluate(images, batch_size=500):
    """Mean loss terms over clean images in inference mode (moving statistics, a VAE's z = mu)."""
    sums = [0.0] * 4
    for start in range(0, len(images), batch_size):
        x = tf.constant(to_float(images[start:start + batch_size]))
        out, h, mu, logvar = forward(x, training=False)
        for i, t in enumerate(loss_terms(out, x, h, mu, logvar)):
            sums[i] += float(t) * len(x)
    return [s / len(images) for s in sums]


def train(images, steps, shuffle=True, clean=False, log_every=1):
    """`steps` optimizer steps over batches reshuffled every epoch (a lone last image is skipped, as in the
    playground). clean: no input corruption, and a VAE decodes z = mu."""
    step, running = 0, 0.0
    while step < steps:
        order = RNG.permutation(len(images)) if shuffle else np.arange(len(images))
        for start in range(0, len(images), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            if len(idx) < 2:
                continue
            x = to_float(images[idx])
            x_in = x if clean else corrupt(x, RNG)
            terms = train_step(tf.constant(x_in), tf.constant()PY" << (p.corruption.corrupted_target ? "x_in), not clean)  # target: the corrupted input"
                                                                                     : "x), not clean)") << R"PY(
            step += 1
            running += float(terms[0])
            if log_every == 1:
                print(format_terms("step %d loss" % step, terms))
            elif step % log_every == 0:
                print("epoch %d: mean training loss %.6f" % (step // log_every, running / log_every))
                running = 0.0
            if step == steps:
                return
)PY" << kMain;
  return o.str();
}

}  // namespace aep
