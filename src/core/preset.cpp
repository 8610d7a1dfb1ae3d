// Reading and writing preset JSON with strict validation: every key is known, every value in range.
#include "core/preset.hpp"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/idx.hpp"
#include "core/layers.hpp"
#include "core/json_section.hpp"
#include "core/utf8.hpp"

#ifndef AEP_DEFAULT_ASSETS_DIR
#define AEP_DEFAULT_ASSETS_DIR "assets"
#endif

namespace aep {

using nlohmann::json;

namespace {

// A valid preset nests 4 levels deep (preset, layer list, layer, unflattened_size); anything deeper is refused.
constexpr int kMaxJsonDepth = 16;

json layer_list(Section& s, const char* key, bool required) {
  if (!s.has(key)) {
    if (required) s.fail(std::string("missing '") + key + "' (a list of layers)");
    return json::array();
  }
  const json& v = s.sub(key);
  if (!v.is_array()) s.fail(std::string("'") + key + "' must be a list of layers");
  if (required && v.empty()) s.fail(std::string("'") + key + "' must list at least one layer");
  if (v.size() > 64) s.fail(std::string("'") + key + "' has " + std::to_string(v.size()) + " layers; at most 64");
  // The Model builds the layers again; building them here too names the file in the message for a bad layer.
  for (size_t i = 0; i < v.size(); ++i) {
    try {
      make_layer(v[i]);
    } catch (const std::exception& e) {
      s.fail(std::string(key) + "." + std::to_string(i) + ": " + shorten_utf8(e.what(), 300));
    }
  }
  return v;
}

}  // namespace

Preset parse_preset(const json& j, const std::string& source) {
  Preset p;
  Section s(j, source);
  p.name = s.str("name", "custom");
  if (p.name.empty() || p.name.size() > 64) s.fail("'name' must be 1 to 64 characters");
  p.title = s.str("title", p.name);
  p.description = s.str("description", "");
  p.lesson = s.str("lesson", "");
  p.normalize = s.str("normalize", "0_1", {"0_1", "-1_1"}) == "-1_1" ? Normalization::MinusOneOne
                                                                       : Normalization::ZeroOne;
  p.encoder = layer_list(s, "encoder", true);
  p.decoder = layer_list(s, "decoder", true);
  p.mu = layer_list(s, "mu", false);
  p.logvar = layer_list(s, "logvar", false);
  if (p.mu.empty() != p.logvar.empty()) s.fail("a VAE needs both 'mu' and 'logvar' heads");

  if (s.has("loss")) {
    Section l(s.sub("loss"), source + ": loss");
    p.loss.reconstruction = l.str("reconstruction", "mse", {"mse", "bce", "l1"});
    p.loss.reduction = l.str("reduction", "mean", {"mean", "sum"}) == "sum" ? Reduction::Sum : Reduction::Mean;
    p.loss.beta = float(l.num("beta", 1.0, 0.0, 1000.0));
    p.loss.l1 = float(l.num("l1", 0.0, 0.0, 100.0));
    p.loss.contractive = float(l.num("contractive", 0.0, 0.0, 100.0));
    l.done();
  }
  if (p.loss.reconstruction == "bce" && p.normalize == Normalization::MinusOneOne)
    s.fail("BCE needs targets in [0, 1]: use \"normalize\": \"0_1\" or the MSE loss");
  if (s.has("optimizer")) {
    Section o(s.sub("optimizer"), source + ": optimizer");
    p.optimizer.type = o.str("type", "adam", {"adam", "sgd"});
    p.optimizer.lr = float(o.num("lr", 1e-3, 0.0, 10.0, true));
    p.optimizer.momentum = float(o.num("momentum", 0.0, 0.0, 0.999));
    if (o.has("betas")) {
      const json& b = o.sub("betas");
      if (!b.is_array() || b.size() != 2 || !b[0].is_number() || !b[1].is_number() || b[0] < 0 || b[0] >= 1 ||
          b[1] < 0 || b[1] >= 1)
        o.fail("'betas' must be two numbers in [0, 1), e.g. [0.9, 0.999]");
      p.optimizer.beta1 = b[0].get<float>();
      p.optimizer.beta2 = b[1].get<float>();
    }
    p.optimizer.eps = float(o.num("eps", 1e-8, 0.0, 1.0, true));
    p.optimizer.weight_decay = float(o.num("weight_decay", 0.0, 0.0, 1.0));
    o.done();
  }
  if (s.has("training")) {
    Section t(s.sub("training"), source + ": training");
    p.training.batch_size = t.integer("batch_size", 64, 1, 4096);
    p.training.epochs = t.integer("epochs", 1, 1, 1000);
    t.done();
  }
  if (s.has("corruption")) {
    Section c(s.sub("corruption"), source + ": corruption");
    p.corruption.type = c.str("type", "none", {"none", "gaussian", "dropout", "salt_pepper", "occlusion", "downsample"});
    p.corruption.std = float(c.num("std", 0.5, 0.0, 10.0));
    p.corruption.p = float(c.num("p", 0.5, 0.0, 0.99));
    p.corruption.size = c.integer("size", 12, 1, 28);
    p.corruption.factor = c.integer("factor", 2, 2, 4);
    p.corruption.clip = c.boolean("clip", true);
    p.corruption.scale = c.boolean("scale", false);
    p.corruption.corrupted_target = c.str("target", "clean", {"clean", "corrupted"}) == "corrupted";
    c.done();
  }
  s.done();
  return p;
}

Preset parse_preset_text(const std::string& text, const std::string& source) {
  return parse_preset(parse_json_text(text, source, kMaxJsonDepth), source);
}

json preset_to_json(const Preset& p) {
  json j;
  j["name"] = p.name;
  j["title"] = p.title;
  if (!p.description.empty()) j["description"] = p.description;
  if (!p.lesson.empty()) j["lesson"] = p.lesson;
  j["normalize"] = p.normalize == Normalization::MinusOneOne ? "-1_1" : "0_1";
  j["encoder"] = p.encoder;
  if (p.is_vae()) {
    j["mu"] = p.mu;
    j["logvar"] = p.logvar;
  }
  j["decoder"] = p.decoder;
  j["loss"] = {{"reconstruction", p.loss.reconstruction},
               {"reduction", p.loss.reduction == Reduction::Sum ? "sum" : "mean"},
               {"beta", p.loss.beta},
               {"l1", p.loss.l1},
               {"contractive", p.loss.contractive}};
  j["optimizer"] = {{"type", p.optimizer.type}, {"lr", p.optimizer.lr}, {"weight_decay", p.optimizer.weight_decay}};
  if (p.optimizer.type == "sgd")
    j["optimizer"]["momentum"] = p.optimizer.momentum;
  else {
    j["optimizer"]["betas"] = {p.optimizer.beta1, p.optimizer.beta2};
    j["optimizer"]["eps"] = p.optimizer.eps;
  }
  j["training"] = {{"batch_size", p.training.batch_size}, {"epochs", p.training.epochs}};
  const CorruptionConfig& c = p.corruption;
  json cj = {{"type", c.type}};
  if (c.type == "gaussian") cj["std"] = c.std, cj["clip"] = c.clip;
  if (c.type == "dropout") cj["p"] = c.p, cj["scale"] = c.scale;
  if (c.type == "salt_pepper") cj["p"] = c.p;
  if (c.type == "occlusion") cj["size"] = c.size;
  if (c.type == "downsample") cj["factor"] = c.factor;
  if (c.corrupted_target) cj["target"] = "corrupted";
  j["corruption"] = cj;
  return j;
}

std::string assets_dir() {
  const char* env = std::getenv("AEP_ASSETS");
  return env && *env ? std::string(env) : std::string(AEP_DEFAULT_ASSETS_DIR);
}

Preset load_preset(const std::string& name_or_path) {
  bool is_path = name_or_path.find('/') != std::string::npos ||
                 (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
  std::string path = is_path ? name_or_path : assets_dir() + "/presets/" + name_or_path + ".json";
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception&) {
    if (is_path) throw;
    std::string known;
    for (const auto& n : list_presets()) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown preset '" + name_or_path + "' (known: " + known + ")");
  }
  return parse_preset_text(std::string(bytes.begin(), bytes.end()), path);
}

std::vector<std::string> list_presets() {
  std::vector<std::string> names;
  std::string dir = assets_dir() + "/presets";
  DIR* d = opendir(dir.c_str());
  if (!d) throw std::runtime_error(dir + ": cannot open the presets folder (set AEP_ASSETS to the assets folder)");
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") names.push_back(n.substr(0, n.size() - 5));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace aep
