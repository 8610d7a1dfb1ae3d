// "Show PyTorch code": the nn.Module and training loop equivalent to a preset, with state_dict names that match the
// engine's weight files (so a downloaded .safetensors loads into it).
#include <sstream>

#include "app/app.hpp"

namespace aep {

namespace {

std::string py_value(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_array()) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_value(v[i]);
    return s + (v.size() == 1 ? ",)" : ")");
  }
  return v.dump();  // numbers and strings print the same in Python
}

// One layer spec as a torch.nn constructor call, keyword arguments in the preset's order.
std::string layer_call(const nlohmann::json& spec) {
  std::string type = spec.at("type").get<std::string>();
  std::string args;
  if (type == "Unflatten") return "nn.Unflatten(1, " + py_value(spec.at("unflattened_size")) + ")";
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (it.key() == "type" || it.key() == "tied_to") continue;
    args += (args.empty() ? "" : ", ") + it.key() + "=" + py_value(it.value());
  }
  if (spec.contains("tied_to")) return "TiedLinear(self." + spec.at("tied_to").get<std::string>() + ")";
  return "nn." + type + "(" + args + ")";
}

void sequential(std::ostringstream& o, const char* name, const nlohmann::json& layers) {
  o << "        self." << name << " = nn.Sequential(\n";
  for (const auto& l : layers) o << "            " << layer_call(l) << ",\n";
  o << "        )\n";
}

bool has_tied(const nlohmann::json& layers) {
  for (const auto& l : layers)
    if (l.contains("tied_to")) return true;
  return false;
}

}  // namespace

std::string pytorch_code(const Preset& p) {
  std::ostringstream o;
  const bool vae = p.is_vae();
  const bool bce = p.loss.reconstruction == "bce";
  const bool sum = p.loss.reduction == Reduction::Sum;
  o << "# " << p.title << "\n# Equivalent of the playground's '" << p.name
    << "' preset; state_dict names match its .safetensors files.\n"
    << "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
    << "from torchvision import datasets, transforms\n\n";
  if (has_tied(p.decoder)) {
    o << "class TiedLinear(nn.Module):\n"
      << "    \"\"\"Linear whose weight is the transpose of another Linear's (owns only its bias).\"\"\"\n"
      << "    def __init__(self, source):\n"
      << "        super().__init__()\n"
      << "        self.source = [source]  # a list, so the weight is not registered twice\n"
      << "        self.bias = nn.Parameter(torch.zeros(source.in_features))\n"
      << "    def forward(self, x):\n"
      << "        return F.linear(x, self.source[0].weight.t(), self.bias)\n\n";
  }
  o << "class AE(nn.Module):\n    def __init__(self):\n        super().__init__()\n";
  sequential(o, "encoder", p.encoder);
  if (vae) {
    sequential(o, "mu", p.mu);
    sequential(o, "logvar", p.logvar);
  }
  if (has_tied(p.decoder)) {
    // TiedLinear refers to an encoder layer by attribute path: rewrite "self.encoder.1" as "self.encoder[1]".
    std::ostringstream d;
    sequential(d, "decoder", p.decoder);
    std::string s = d.str();
    for (size_t at = s.find("TiedLinear(self.encoder."); at != std::string::npos; at = s.find("TiedLinear(self.encoder.", at + 1)) {
      size_t dot = at + std::string("TiedLinear(self.encoder").size();
      size_t close = s.find(')', dot);
      s = s.substr(0, dot) + "[" + s.substr(dot + 1, close - dot - 1) + "]" + s.substr(close);
    }
    o << s;
  } else {
    sequential(o, "decoder", p.decoder);
  }
  o << "\n    def forward(self, x):\n";
  if (vae)
    o << "        h = self.encoder(x)\n        mu, logvar = self.mu(h), self.logvar(h)\n"
      << "        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu\n"
      << "        return self.decoder(z).view_as(x), mu, logvar, h\n\n";
  else
    o << "        code = self.encoder(x)\n        return self.decoder(code).view_as(x), None, None, code\n\n";

  o << "def loss_fn(out, target, mu, logvar, code):\n";
  o << "    rec = F." << (bce ? "binary_cross_entropy" : "mse_loss") << "(out, target, reduction='"
    << (sum ? "sum') / len(target)" : "mean')") << "\n";
  o << "    loss = rec\n";
  if (vae) o << "    loss = loss + " << p.loss.beta << " * (-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())) / len(target)\n";
  if (p.loss.l1 > 0) o << "    loss = loss + " << p.loss.l1 << " * code.abs().sum() / len(target)\n";
  if (p.loss.contractive > 0)
    o << "    # contractive penalty: ||d code / d x||_F^2 for code = sigmoid(W h + b)\n"
      << "    W = model.encoder[-2].weight\n"
      << "    loss = loss + " << p.loss.contractive
      << " * (((code * (1 - code))**2) @ (W**2).sum(1)).sum() / len(target)\n";
  o << "    return loss\n\n";

  o << "model = AE()\n";
  if (p.optimizer.type == "adam")
    o << "opt = torch.optim.Adam(model.parameters(), lr=" << p.optimizer.lr << ", betas=(" << p.optimizer.beta1 << ", "
      << p.optimizer.beta2 << "), eps=" << p.optimizer.eps << ", weight_decay=" << p.optimizer.weight_decay << ")\n";
  else
    o << "opt = torch.optim.SGD(model.parameters(), lr=" << p.optimizer.lr << ", momentum=" << p.optimizer.momentum
      << ", weight_decay=" << p.optimizer.weight_decay << ")\n";
  o << "tf = transforms.Compose([transforms.ToTensor()"
    << (p.normalize == Normalization::MinusOneOne ? ", transforms.Normalize((0.5,), (0.5,))" : "") << "])\n"
    << "data = datasets.MNIST('data', train=True, download=True, transform=tf)\n"
    << "loader = torch.utils.data.DataLoader(data, batch_size=" << p.training.batch_size << ", shuffle=True)\n"
    << "for epoch in range(" << p.training.epochs << "):\n"
    << "    for x, _ in loader:\n";
  const CorruptionConfig& c = p.corruption;
  const char* lo = p.normalize == Normalization::MinusOneOne ? "-1" : "0";
  if (c.type == "gaussian")
    o << "        x_in = x + " << c.std << " * torch.randn_like(x)\n"
      << (c.clip ? std::string("        x_in = x_in.clamp(") + lo + ", 1)\n" : "");
  else if (c.type == "dropout")
    o << "        x_in = F.dropout(x, p=" << c.p << ")" << (c.scale ? "" : " * (1 - " + std::to_string(c.p) + ")") << "\n";
  else if (c.type == "salt_pepper")
    o << "        m = torch.rand_like(x) < " << c.p << "\n"
      << "        x_in = torch.where(m, torch.where(torch.rand_like(x) < 0.5, " << lo << ".0, 1.0), x)\n";
  else if (c.type == "occlusion")
    o << "        x_in = x.clone()  # a random " << c.size << "x" << c.size << " box set to the minimum\n"
      << "        i, j = torch.randint(0, 29 - " << c.size << ", (2,))\n"
      << "        x_in[:, :, i:i + " << c.size << ", j:j + " << c.size << "] = " << lo << "\n";
  else if (c.type == "downsample")
    o << "        x_in = F.interpolate(F.avg_pool2d(x, " << c.factor << "), scale_factor=" << c.factor << ")\n";
  else
    o << "        x_in = x\n";
  o << "        out, mu, logvar, code = model(x_in)\n"
    << "        loss = loss_fn(out, x, mu, logvar, code)\n"
    << "        opt.zero_grad()\n        loss.backward()\n        opt.step()\n"
    << "    print(epoch, loss.item())\n\n"
    << "# Load weights downloaded from the playground:\n"
    << "# from safetensors.torch import load_file\n"
    << "# model.load_state_dict({k: v for k, v in load_file('" << p.name
    << ".safetensors').items() if not k.startswith('optimizer.')})\n";
  return o.str();
}

}  // namespace aep
