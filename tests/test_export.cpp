// The PyTorch and Keras exports (core/export): produced for every preset, and the Keras plan's layout changes where
// PyTorch and Keras differ. tests/interop/run.sh runs the exports in the frameworks themselves.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "core/export.hpp"
#include "core/model.hpp"

using namespace aep;
using nlohmann::json;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The plan's layer of that name.
const json& plan_layer(const json& plan, const std::string& name) {
  for (const auto& part : plan.at("parts"))
    for (const auto& l : part.at("layers"))
      if (l.at("name") == name) return l;
  throw std::runtime_error("no layer " + name);
}

}  // namespace

TEST_CASE("export: every preset gives a PyTorch script, a Keras plan naming each weight once, and a Keras script") {
  for (const std::string& name : list_presets()) {
    CAPTURE(name);
    Preset p = load_preset(name);
    std::string torch = pytorch_code(p, "w.safetensors");
    CHECK(has(torch, "DEFAULT_WEIGHTS = \"w.safetensors\""));
    CHECK(has(torch, "model.load_state_dict({k: v for k, v in state.items() if not k.startswith(\"optimizer.\")})"));
    CHECK(has(torch, "torch.frombuffer"));  // reads safetensors without the package
    CHECK(!has(torch, "import torchvision"));
    CHECK(!has(torch, "from torchvision"));
    CHECK(has(keras_code(p), "from tensorflow import keras"));

    // Every float tensor of the weight file goes to exactly one Keras weight (a tied layer has no weight of its own).
    json plan = keras_plan(p);
    Model m(p);
    std::map<std::string, int> uses;
    for (const auto& part : plan.at("parts"))
      for (const auto& l : part.at("layers"))
        for (const auto& w : l.at("weights")) uses[w.at("source").get<std::string>()]++;
    std::set<std::string> entries;
    for (const auto& e : m.entries) {
      entries.insert(e.name);
      CHECK_MESSAGE(uses[e.name] == 1, e.name);
    }
    for (const auto& u : uses) CHECK_MESSAGE(entries.count(u.first) == 1, u.first);
  }
}

TEST_CASE("export: the Keras plan reorders features, pads and crops where PyTorch and Keras differ") {
  json plan = keras_plan(load_preset("vae-conv"));
  // Flatten of a 64x7x7 image: Keras flattens channels last, so the Dense after it takes its rows in HWC order.
  json ops = plan_layer(plan, "encoder_5").at("weights")[0].at("ops");
  CHECK(ops == json::parse(R"([{"op": "transpose", "perm": [1, 0]}, {"op": "chw_to_hwc", "axis": 0, "chw": [64, 7, 7]}])"));
  // The Dense before Unflatten(64, 7, 7) writes its outputs (kernel columns and bias) in HWC order for Reshape.
  CHECK(plan_layer(plan, "decoder_0").at("weights")[0].at("ops")[1] ==
        json::parse(R"({"op": "chw_to_hwc", "axis": 1, "chw": [64, 7, 7]})"));
  CHECK(plan_layer(plan, "decoder_0").at("weights")[1].at("ops")[0].at("axis") == 0);
  CHECK(plan_layer(plan, "decoder_2").at("config").at("target_shape") == json::array({7, 7, 64}));
  // Padding 1 at stride 2 is symmetric in PyTorch, not in Keras's 'same': explicit zero padding, then 'valid'.
  CHECK(plan_layer(plan, "encoder_0_pad").at("config").at("padding") == json::parse("[[1, 1], [1, 1]]"));
  CHECK(plan_layer(plan, "encoder_0").at("config").at("padding") == "valid");
  // ConvTranspose2d(k 3, stride 2, padding 1, output_padding 1): rows [1, 15) of Keras's 15 'valid' rows.
  CHECK(plan_layer(plan, "decoder_3_crop").at("config").at("cropping") == json::parse("[[1, 0], [1, 0]]"));
  CHECK(plan_layer(plan, "decoder_3").at("weights")[0].at("ops")[0].at("perm") == json::array({2, 3, 1, 0}));
  // BCE after the final Sigmoid: the loss takes logits, so the decoder stops before the Sigmoid.
  CHECK(plan.at("loss").at("reconstruction") == "bce_with_logits");
  CHECK(plan.at("parts").back().at("layers").back().at("name") == "decoder_7");

  json conv = keras_plan(load_preset("conv"));
  CHECK(plan_layer(conv, "encoder_0").at("config").at("padding") == "same");  // stride 1, 3x3, padding 1
  CHECK_THROWS(plan_layer(conv, "encoder_0_pad"));

  json deep = keras_plan(load_preset("deep-linear"));
  json bn = plan_layer(deep, "encoder_3");
  CHECK(bn.at("class") == "BatchNormalization");
  CHECK(bn.at("config").at("momentum").get<double>() == doctest::Approx(0.9));  // 1 - PyTorch's 0.1
  CHECK(bn.at("config").at("epsilon").get<double>() == doctest::Approx(1e-5));

  json tied = keras_plan(load_preset("tied"));
  CHECK(plan_layer(tied, "decoder_0").at("class") == "TiedDense");
  CHECK(plan_layer(tied, "decoder_0").at("tied_to") == "encoder_1");
  CHECK(plan_layer(tied, "decoder_to_image").at("config").at("target_shape") == json::array({28, 28, 1}));
  CHECK(has(pytorch_code(load_preset("tied")), "TiedLinear(self.encoder[1])"));
}

TEST_CASE("export: the scripts carry the preset's loss terms and optimizer") {
  std::string vae = pytorch_code(load_preset("vae-mlp"));
  CHECK(has(vae, "rec = F.binary_cross_entropy_with_logits(out, x, reduction=\"sum\") / len(x)"));
  CHECK(has(vae, "z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training and sample else mu"));
  CHECK(has(vae, "torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)"));
  CHECK(has(pytorch_code(load_preset("sparse")), "penalty = penalty + 0.0005 * h.abs().sum() / len(x)"));
  CHECK(has(pytorch_code(load_preset("contractive")), "W = model.encoder[1].weight"));
  CHECK(has(keras_code(load_preset("contractive")), "K = layer(\"encoder_1\").kernel"));
  CHECK(has(pytorch_code(load_preset("overcomplete-tanh")), "return images.float() * (1 / 127.5) - 1"));
  CHECK(has(keras_code(load_preset("denoise")), "return np.clip(y, 0.0, 1.0)"));

  Preset bad = load_preset("conv");
  bad.decoder[0]["output_padding"] = 1;
  CHECK_THROWS_WITH(keras_plan(bad), doctest::Contains("decoder.0 (ConvTranspose2d): the Keras export cannot express"));
}
