// Model-level tests: loss gradients, whole-preset gradient checks, optimizers, presets, weight files,
// corruptions, sampling, training progress, PCA, and native-vs-wasm determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "core/gemm.hpp"
#include "core/parallel.hpp"
#include "core/losses.hpp"
#include "core/pca.hpp"
#include "core/run.hpp"
#include "core/train.hpp"
#include "core/weights.hpp"
#include "test_util.hpp"

using namespace aep;
using namespace aep::test;
using nlohmann::json;

namespace aep::test {
extern std::string determinism_out, determinism_in;
}

namespace {

std::string preset_path(const std::string& name) { return std::string(AEP_TEST_DIR) + "/../assets/presets/" + name + ".json"; }

std::vector<std::string> all_presets() {
  return {"linear", "deep-linear", "conv-simple", "conv", "conv-upsample", "denoise", "conv-wide", "mlp-128-64",
          "undercomplete-tanh", "overcomplete-tanh", "sparse", "contractive", "tied", "vae-mlp", "vae-mlp-16",
          "vae-conv", "conv-dense", "fully-conv", "conv-k3s2"};
}

// Synthetic 28x28 "digits": random strokes, so tests need no dataset.
Dataset synthetic_dataset(size_t count, uint64_t seed) {
  Dataset d;
  d.name = "synthetic";
  d.count = count;
  d.rows = d.cols = 28;
  d.pixels.assign(count * 784, 0);
  d.labels.assign(count, 0);
  Rng rng(seed);
  for (size_t i = 0; i < count; ++i) {
    uint8_t* img = d.pixels.data() + i * 784;
    d.labels[i] = uint8_t(rng.below(10));
    for (int s = 0; s < 3; ++s) {
      float x = 6 + 16 * rng.uniform(), y = 6 + 16 * rng.uniform(), dx = rng.uniform(-1, 1), dy = rng.uniform(-1, 1);
      for (int t = 0; t < 12; ++t) {
        int px = int(x + dx * t * 0.8f), py = int(y + dy * t * 0.8f);
        if (px >= 0 && px < 28 && py >= 0 && py < 28) img[py * 28 + px] = 255;
      }
    }
  }
  return d;
}

}  // namespace

TEST_CASE("losses and penalties pass numerical gradient checks") {
  Rng rng(3);
  const size_t B = 3, n = 12;
  std::vector<float> pred(B * n), target(B * n), grad(B * n);
  for (size_t i = 0; i < pred.size(); ++i) pred[i] = rng.uniform(0.05f, 0.95f), target[i] = rng.uniform();
  auto check = [&](const char* name, auto value_and_grad) {
    std::fill(grad.begin(), grad.end(), 0.f);
    value_and_grad(grad.data());
    std::vector<float*> coords;
    for (float& p : pred) coords.push_back(&p);
    double err = gradient_error(coords, grad, [&]() { return value_and_grad(nullptr); }, 1e-3, 1e-3);
    INFO(name << ": worst relative error " << err);
    CHECK(err < 1e-2);
  };
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    check("mse", [&](float* g) { return mse_loss(pred.data(), target.data(), pred.size(), B, r, g); });
    check("bce", [&](float* g) { return bce_loss(pred.data(), target.data(), pred.size(), B, r, g); });
    check("bce logits", [&](float* g) { return bce_with_logits_loss(pred.data(), target.data(), pred.size(), B, r, g); });
  }
  std::vector<float> other(B * n), dother(B * n);
  for (float& v : other) v = rng.uniform(-1, 1);
  check("kl wrt mu", [&](float* g) { return kl_divergence(pred.data(), other.data(), pred.size(), B, 0.7f, g, nullptr); });
  check("kl wrt logvar", [&](float* g) { return kl_divergence(other.data(), pred.data(), pred.size(), B, 0.7f, nullptr, g); });
  check("l1", [&](float* g) { return l1_penalty(pred.data(), pred.size(), B, 0.3f, g); });
  // Contractive: h [B, n] from a sigmoid layer with W [n, 5]; gradient w.r.t. h and W.
  std::vector<float> W(n * 5), dW(n * 5);
  for (float& w : W) w = rng.uniform(-1, 1);
  check("contractive wrt h", [&](float* g) { return contractive_penalty(pred.data(), W.data(), B, n, 5, 0.5f, g, nullptr); });
  std::fill(dW.begin(), dW.end(), 0.f);
  contractive_penalty(pred.data(), W.data(), B, n, 5, 0.5f, nullptr, dW.data());
  std::vector<float*> wc;
  for (float& w : W) wc.push_back(&w);
  double err = gradient_error(wc, dW, [&]() { return contractive_penalty(pred.data(), W.data(), B, n, 5, 0.5f, nullptr, nullptr); }, 1e-3, 1e-3);
  CHECK(err < 1e-2);
}

TEST_CASE("hand-computed loss values") {
  std::vector<float> p = {0.5f, 1.f}, t = {1.f, 1.f};
  CHECK(mse_loss(p.data(), t.data(), 2, 1, Reduction::Mean, nullptr) == doctest::Approx(0.125));
  CHECK(mse_loss(p.data(), t.data(), 2, 2, Reduction::Sum, nullptr) == doctest::Approx(0.125));
  CHECK(bce_loss(p.data(), t.data(), 2, 1, Reduction::Sum, nullptr) == doctest::Approx(std::log(2.0)));
  std::vector<float> z = {0.f, 100.f};  // logits: sigmoid(0) = 0.5, sigmoid(100) = 1
  CHECK(bce_with_logits_loss(z.data(), t.data(), 2, 1, Reduction::Sum, nullptr) == doctest::Approx(std::log(2.0)));
  // BCE on a saturated probability is clamped like PyTorch (log >= -100), never infinite.
  std::vector<float> zero = {0.f};
  CHECK(bce_loss(zero.data(), t.data(), 1, 1, Reduction::Mean, nullptr) == doctest::Approx(100.0));
  std::vector<float> mu = {1.f, 0.f}, lv = {0.f, std::log(2.f)};
  // 0.5 * (mu^2 + e^lv - 1 - lv): 0.5 * 1 + 0.5 * (2 - 1 - ln 2)
  CHECK(kl_divergence(mu.data(), lv.data(), 2, 1, 1.f, nullptr, nullptr) == doctest::Approx(0.5 + 0.5 * (1 - std::log(2.0))));
}

namespace {
bool has_batchnorm(const Preset& p) {
  for (const json* part : {&p.encoder, &p.decoder, &p.mu, &p.logvar})
    for (const json& l : *part)
      if (l["type"].get<std::string>().rfind("BatchNorm", 0) == 0) return true;
  return false;
}

double preset_gradient_error(const Preset& p, bool training) {
  Model m(p);
  m.init(5);
  Trainer t(m, 9);
  const size_t B = 4;
  Rng rng(2);
  Tensor x = random_tensor(m.input_shape(B), rng, 0.f, 1.f), target = random_tensor(m.input_shape(B), rng, 0.f, 1.f);
  if (p.normalize == Normalization::MinusOneOne)
    for (float& v : target) v = 2 * v - 1;
  Tensor eps(m.code_shape(B));
  for (float& e : eps) e = rng.normal();
  t.forward_backward(x, target, training, true, &eps);
  std::vector<float> grads = m.grads;
  // BatchNorm in training mode updates running stats, which do not affect the training-mode output.
  auto loss = [&]() { return t.forward_backward(x, target, training, false, &eps).total; };
  return directional_gradient_error(m.values, grads, loss, rng);
}
}  // namespace

TEST_CASE("all_presets() names every preset file") {
  std::vector<std::string> names = all_presets();
  std::sort(names.begin(), names.end());
  CHECK(names == list_presets());
}

TEST_CASE("every preset builds, and its gradients match finite differences") {
  for (const std::string& name : all_presets()) {
    SUBCASE(name.c_str()) {
      Preset p = load_preset(preset_path(name));
      CHECK(p.name == name);
      if (!has_batchnorm(p)) {
        double err = preset_gradient_error(p, true);
        INFO(name << " (training mode): worst relative directional-derivative error " << err);
        CHECK(err < 3e-2);
        return;
      }
      // ReLU feeding BatchNorm on a small batch makes the training-mode loss nearly discontinuous (a unit dead
      // for the whole batch gets a 1/sqrt(eps) gain), so finite differences there measure the kinks, not the
      // gradient. Check the preset in eval mode, and training-mode BatchNorm on the same stack with Tanh.
      double eval_err = preset_gradient_error(p, false);
      INFO(name << " (eval mode): worst relative directional-derivative error " << eval_err);
      CHECK(eval_err < 3e-2);
      for (json* part : {&p.encoder, &p.decoder})
        for (json& l : *part)
          if (l["type"] == "ReLU") l["type"] = "Tanh";
      double train_err = preset_gradient_error(p, true);
      INFO(name << " with Tanh (training mode): worst relative directional-derivative error " << train_err);
      CHECK(train_err < 3e-2);
    }
  }
}

namespace {
// Storage for a Sequential's parameters (normally the Model's buffers), filled from a seeded generator.
std::vector<std::vector<float>> bind_parameters(Sequential& s, std::vector<std::vector<float>>& grads, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<float>> values;
  values.reserve(64);
  grads.reserve(64);
  for (auto& l : s.layers)
    for (auto& p : l->params) {
      values.emplace_back(p.numel());
      grads.emplace_back(p.numel(), 0.f);
      for (float& v : values.back()) v = rng.uniform(-0.5f, 0.5f);
      p.value = values.back().data();
      p.grad = grads.back().data();
    }
  return values;
}
}  // namespace

// Sequential runs an activation inside the layer before it (forward_fused / backward_fused), and a Conv2d -> ReLU ->
// MaxPool2d trio as one (forward_relu_pool / backward_relu_pool); every layer output it makes, every parameter gradient
// and the input gradient must be exactly those of the layers run one by one, also when the gradient enters inside a
// pair or a trio (BCE on logits does).
static void check_fusion_is_exact(const json& specs, const Shape& input, size_t want_pairs, size_t want_trios,
                                  std::initializer_list<size_t> cuts) {
  Sequential fused;
  fused.build(specs, "s");
  size_t pairs = 0, trios = 0;
  for (size_t i = 0; i < fused.size(); ++i) pairs += fused.is_fused(i), trios += fused.is_pooled(i);
  CHECK(pairs == want_pairs);
  CHECK(trios == want_trios);
  std::vector<std::unique_ptr<Layer>> plain;
  for (const json& spec : specs) plain.push_back(make_layer(spec));
  std::vector<std::vector<float>> fgrads, pgrads;
  std::vector<std::vector<float>> values = bind_parameters(fused, fgrads, 4);
  size_t k = 0;
  for (auto& l : plain)
    for (auto& p : l->params) {
      pgrads.emplace_back(p.numel(), 0.f);
      p.value = values[k++].data();
      p.grad = pgrads.back().data();
    }
  Rng rng(6);
  const Tensor x = random_tensor(input, rng);
  for (size_t cut : cuts) {  // the gradient enters after layer fused.size() - 1 - cut
    const size_t end = fused.size() - cut;
    for (bool need_input_grad : {true, false}) {
      CAPTURE(end);
      CAPTURE(need_input_grad);
      RunContext ctx{true, &rng};
      fused.forward(x, ctx);
      std::vector<Tensor> acts(plain.size());
      for (size_t i = 0; i < plain.size(); ++i) {
        plain[i]->forward(i == 0 ? x : acts[i - 1], acts[i], ctx);
        const bool made = !(fused.is_pooled(i) || (i > 0 && fused.is_pooled(i - 1)));  // inside a trio: not made
        if (made) CHECK((i + 1 < plain.size() ? fused.input_of(i + 1) : fused.output()) == acts[i]);
      }
      const Tensor dy = random_tensor(acts[end - 1].shape(), rng);
      for (auto& g : fgrads) std::fill(g.begin(), g.end(), 0.f);
      for (auto& g : pgrads) std::fill(g.begin(), g.end(), 0.f);
      const Tensor& dx = fused.backward(dy, end, need_input_grad);
      std::vector<Tensor> grads(end);
      for (size_t i = end; i-- > 0;)
        plain[i]->backward(i == 0 ? x : acts[i - 1], acts[i], i + 1 == end ? dy : grads[i + 1], &grads[i]);
      CHECK(fgrads == pgrads);
      if (need_input_grad) CHECK(dx == grads[0]);
    }
  }
}

TEST_CASE("fused activations give bit for bit the results of the layers run one by one") {
  const json specs = json::parse(R"([
    {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "ReLU"},
    {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
    {"type": "LeakyReLU", "negative_slope": 0.1},
    {"type": "ConvTranspose2d", "in_channels": 4, "out_channels": 3, "kernel_size": 2, "stride": 2}, {"type": "Tanh"},
    {"type": "ConvTranspose2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": 1}, {"type": "Sigmoid"},
    {"type": "ConvTranspose2d", "in_channels": 2, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1,
     "output_padding": 1}, {"type": "ReLU"},
    {"type": "Flatten"}, {"type": "Linear", "in_features": 512, "out_features": 7}, {"type": "ReLU"},
    {"type": "Linear", "in_features": 7, "out_features": 5}, {"type": "Sigmoid"}
  ])");
  check_fusion_is_exact(specs, {3, 2, 8, 8}, 7, 0, {0, 1});
}

TEST_CASE("Conv2d -> ReLU -> MaxPool2d run as one give bit for bit the results of the three layers") {
  // Odd sizes (the pool drops a row and a column; rows of 3 to 5 windows: vectors, an overlapping last step and the
  // scalar path), 3x3 and 5x5 kernels, ties (ReLU zeros), a trio that cannot be grouped (kernel 2, padding 1: not
  // "same"), and a last trio that the gradient enters at each of its three layers.
  const json specs = json::parse(R"([
    {"type": "Conv2d", "in_channels": 2, "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Conv2d", "in_channels": 8, "out_channels": 3, "kernel_size": 2, "padding": 1}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Upsample", "scale_factor": 3},
    {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 5, "padding": 2}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2}
  ])");
  check_fusion_is_exact(specs, {5, 2, 9, 11}, 3, 2, {0, 1, 2});
}

TEST_CASE("preset files are validated with messages that point at the problem") {
  json base = json::parse(R"({"name": "t", "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 8}],
                              "decoder": [{"type": "Linear", "in_features": 8, "out_features": 784}]})");
  CHECK_NOTHROW(Model(parse_preset(base, "t.json")));
  struct Bad {
    std::string patch;  // JSON merge patch applied to base
    const char* message;
  };
  const std::vector<Bad> bad = {
      {R"({"learning_rate": 1})", "t.json: unknown key 'learning_rate'"},
      {R"({"optimizer": {"lr": -1}})", "t.json: optimizer: 'lr' must be in (0, 10]"},
      {R"({"optimizer": {"lr": 0}})", "'lr' must be in (0, 10]"},
      {R"({"optimizer": {"type": "rmsprop"}})", "'type' must be one of adam, sgd"},
      {R"({"training": {"batch_size": 0}})", "'batch_size' must be an integer between 1 and 4096"},
      {R"({"loss": {"reconstruction": "bce"}, "normalize": "-1_1"})", "BCE needs targets in [0, 1]"},
      {R"({"mu": [{"type": "Linear", "in_features": 8, "out_features": 2}]})", "needs both 'mu' and 'logvar'"},
      {R"({"encoder": []})", "'encoder' must list at least one layer"},
      {R"({"corruption": {"type": "blur"}})", "'type' must be one of none, gaussian"},
  };
  for (const Bad& b : bad) {
    json j = base;
    j.merge_patch(json::parse(b.patch));
    INFO(b.patch);
    CHECK_THROWS_WITH(parse_preset(j, "t.json"), doctest::Contains(b.message));
  }
  SUBCASE("shape errors name the layer") {
    json j = base;
    j["decoder"][0]["in_features"] = 9;
    CHECK_THROWS_WITH(Model(parse_preset(j, "t.json")), doctest::Contains("decoder.0 (Linear): Linear expects 9 input features, got 8"));
    j = base;
    j["decoder"][0]["out_features"] = 100;
    CHECK_THROWS_WITH(Model(parse_preset(j, "t.json")), doctest::Contains("decoder must produce 784 values"));
    j = base;
    j["decoder"][0]["tied_to"] = "encoder.0";
    CHECK_THROWS_WITH(Model(parse_preset(j, "t.json")), doctest::Contains("not a Linear layer"));
  }
  CHECK_THROWS_WITH(parse_preset_text("{\"name\": ", "x.json"), doctest::Contains("x.json: not valid JSON"));
  CHECK_THROWS_WITH(load_preset("no-such-preset"), doctest::Contains("unknown preset 'no-such-preset'"));
}

TEST_CASE("presets round-trip through JSON") {
  for (const std::string& name : all_presets()) {
    Preset p = load_preset(preset_path(name));
    json j = preset_to_json(p);
    Preset q = parse_preset(j, "roundtrip");
    CHECK(preset_to_json(q) == j);
  }
}

TEST_CASE("optimizers follow PyTorch's update rules") {
  SUBCASE("Adam first step moves by lr against the gradient sign") {
    OptimizerConfig c;
    c.lr = 0.1f;
    Optimizer o(c, 1);
    float p = 1.f, g = 0.5f;
    o.step(&p, &g);
    CHECK(p == doctest::Approx(0.9f));
    o.step(&p, &g);  // constant gradient: still lr per step
    CHECK(p == doctest::Approx(0.8f));
  }
  SUBCASE("SGD with momentum and weight decay") {
    OptimizerConfig c;
    c.type = "sgd";
    c.lr = 0.1f;
    c.momentum = 0.9f;
    Optimizer o(c, 1);
    float p = 1.f, g = 1.f;
    o.step(&p, &g);
    CHECK(p == doctest::Approx(0.9f));
    o.step(&p, &g);
    CHECK(p == doctest::Approx(0.71f));
    OptimizerConfig d;
    d.type = "sgd";
    d.lr = 0.1f;
    d.weight_decay = 0.1f;
    Optimizer w(d, 1);
    float q = 1.f, zero = 0.f;
    w.step(&q, &zero);
    CHECK(q == doctest::Approx(0.99f));
  }
}

TEST_CASE("weights round-trip through safetensors and bad files change nothing") {
  Model m(load_preset(preset_path("linear")));
  m.init(1);
  Trainer t(m, 2);
  Dataset d = synthetic_dataset(64, 4);
  std::vector<uint32_t> idx(16);
  std::iota(idx.begin(), idx.end(), 0u);
  Tensor in, target;
  make_batch(d, idx.data(), 16, m.preset(), t.rng, in, target);
  for (int i = 0; i < 3; ++i) t.train_step(in, target);
  SafeTensors st = model_state(m, &t.optimizer);
  CHECK(st.find("encoder.1.weight"));
  CHECK(st.find("encoder.3.running_var"));
  CHECK(st.find("encoder.3.num_batches_tracked")->as_i64()[0] == 3);
  CHECK(st.find("optimizer.exp_avg_sq.decoder.0.bias"));

  Model m2(load_preset(preset_path("linear")));
  m2.init(99);
  Trainer t2(m2, 2);
  load_state(m2, parse_safetensors(serialize_safetensors(st).data(), serialize_safetensors(st).size(), "rt"), "rt",
             &t2.optimizer);
  CHECK(m2.values == m.values);
  CHECK(m2.buffer_values == m.buffer_values);
  CHECK(t2.optimizer.exp_avg_sq == t.optimizer.exp_avg_sq);
  CHECK(t2.optimizer.steps() == 3);
  Tensor r1 = m.reconstruct(in), r2 = m2.reconstruct(in);
  CHECK(std::equal(r1.begin(), r1.end(), r2.begin()));

  std::vector<float> before = m2.values;
  auto expect_refused = [&](SafeTensors bad, const char* message) {
    CHECK_THROWS_WITH(load_state(m2, bad, "bad.safetensors", &t2.optimizer), doctest::Contains(message));
    CHECK(m2.values == before);
  };
  SafeTensors missing;
  for (const auto& x : st.tensors)
    if (x.name != "decoder.0.bias") missing.tensors.push_back(x);
  expect_refused(missing, "tensor 'decoder.0.bias' is missing");
  SafeTensors nan = st;
  for (auto& x : nan.tensors)
    if (x.name == "decoder.0.bias") {
      float q = std::nanf("");
      std::memcpy(x.bytes.data() + 8, &q, 4);
    }
  expect_refused(nan, "holds NaN or infinite values");
  Preset narrow = load_preset(preset_path("linear"));  // same names, a 16-d code
  narrow.encoder[1]["out_features"] = 16;
  narrow.encoder[3]["num_features"] = 16;
  narrow.decoder[0]["in_features"] = 16;
  Model small(narrow);
  expect_refused(model_state(small), "bad.safetensors: tensor 'encoder.1.weight' has shape [16, 784] but the model expects [32, 784]");
  SafeTensors extra = st;
  float one = 1.f;
  extra.add_f32("encoder.9.weight", {1}, &one);
  expect_refused(extra, "unexpected tensor 'encoder.9.weight'");
}

TEST_CASE("corruptions") {
  Rng rng(4);
  Tensor x(Shape{4, 1, 28, 28});
  for (float& v : x) v = rng.uniform();
  CorruptionConfig c;
  SUBCASE("gaussian noise stays in range when clipped") {
    c.type = "gaussian";
    c.std = 0.5f;
    Tensor y = x;
    corrupt(c, Normalization::ZeroOne, rng, y);
    CHECK(*std::min_element(y.begin(), y.end()) >= 0.f);
    CHECK(*std::max_element(y.begin(), y.end()) <= 1.f);
    CHECK(y != x);
  }
  SUBCASE("dropout mask zeroes about p of the pixels and scales the rest like nn.Dropout") {
    c.type = "dropout";
    c.p = 0.5f;
    c.scale = true;
    Tensor y = x;
    corrupt(c, Normalization::ZeroOne, rng, y);
    size_t zeros = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      if (y.data()[i] == 0.f) ++zeros;
      else CHECK(y.data()[i] == doctest::Approx(2 * x.data()[i]));
    }
    CHECK(zeros > 1400);
    CHECK(zeros < 1740);
  }
  SUBCASE("occlusion blanks one size x size box per image") {
    c.type = "occlusion";
    c.size = 10;
    Tensor y = x;
    corrupt(c, Normalization::MinusOneOne, rng, y);
    for (size_t b = 0; b < 4; ++b) {
      size_t blank = 0;
      for (size_t i = 0; i < 784; ++i) blank += y.data()[b * 784 + i] == -1.f;
      CHECK(blank == 100);
    }
  }
  SUBCASE("downsampling makes 2x2 blocks constant and keeps the mean") {
    c.type = "downsample";
    Tensor y = x;
    corrupt(c, Normalization::ZeroOne, rng, y);
    CHECK(y(0, 0, 0, 0) == y(0, 0, 1, 1));
    CHECK(y(0, 0, 0, 0) == doctest::Approx((x(0, 0, 0, 0) + x(0, 0, 0, 1) + x(0, 0, 1, 0) + x(0, 0, 1, 1)) / 4));
    CHECK(xt::mean(y)() == doctest::Approx(xt::mean(x)()).epsilon(1e-4));
  }
}

TEST_CASE("batch sampling: every image once per epoch, seeded") {
  BatchSampler a(10, 4, true, 3), b(10, 4, true, 3), plain(10, 4, false, 3);
  CHECK(a.steps_per_epoch() == 3);
  std::vector<uint32_t> seen;
  for (int s = 0; s < 3; ++s) {
    size_t n, m, k;
    const uint32_t* ia = a.next(n);
    const uint32_t* ib = b.next(m);
    const uint32_t* ip = plain.next(k);
    CHECK(n == m);
    CHECK(std::equal(ia, ia + n, ib));
    for (size_t i = 0; i < k; ++i) CHECK(ip[i] == uint32_t(s * 4 + i));
    seen.insert(seen.end(), ia, ia + n);
  }
  std::sort(seen.begin(), seen.end());
  std::vector<uint32_t> all(10);
  std::iota(all.begin(), all.end(), 0u);
  CHECK(seen == all);
  size_t n;
  a.next(n);
  CHECK(a.epoch == 1);
  CHECK_THROWS_WITH(BatchSampler(0, 4, true, 1), doctest::Contains("empty"));
  CHECK_THROWS_WITH(BatchSampler(5, 0, true, 1), doctest::Contains("batch size must be at least 1"));
}

TEST_CASE("training lowers the loss, and divergence keeps the last good weights") {
  Dataset d = synthetic_dataset(512, 8);
  for (const char* name : {"linear", "conv", "vae-mlp"}) {
    Preset p = load_preset(preset_path(name));
    Model m(p);
    m.init(3);
    Trainer t(m, 4);
    BatchSampler s(d.count, 32, true, 5);
    Tensor in, target;
    double first = 0, last = 0;
    for (int step = 0; step < 150; ++step) {
      size_t n;
      const uint32_t* idx = s.next(n);
      make_batch(d, idx, n, p, t.rng, in, target);
      double l = t.train_step(in, target).total;
      if (step < 5) first += l / 5;
      if (step >= 145) last += l / 5;
    }
    INFO(std::string(name) << ": " << first << " -> " << last);
    CHECK(last < 0.8 * first);
  }
  SUBCASE("lr = 10 with SGD diverges: the step is refused and nothing changes") {
    Preset p = load_preset(preset_path("tied"));  // linear and unbounded, with a per-image sum: it must blow up
    p.loss.reduction = Reduction::Sum;
    p.optimizer.type = "sgd";
    p.optimizer.lr = 10.f;
    Model m(p);
    m.init(3);
    Trainer t(m, 4);
    std::vector<uint32_t> idx(32);
    std::iota(idx.begin(), idx.end(), 0u);
    Tensor in, target;
    make_batch(d, idx.data(), 32, p, t.rng, in, target);
    bool diverged = false;
    std::vector<float> good;
    for (int step = 0; step < 200 && !diverged; ++step) {
      good = m.values;
      try {
        t.train_step(in, target);
      } catch (const DivergenceError& e) {
        diverged = true;
        CHECK(std::string(e.what()).find("Try a smaller learning rate") != std::string::npos);
      }
    }
    REQUIRE(diverged);
    CHECK(m.values == good);
  }
}

TEST_CASE("the same seed gives the same weights (and, across builds, natively and in wasm)") {
  REQUIRE(!fast_mode());  // the determinism contract is the deterministic mode's alone
  Dataset d = synthetic_dataset(256, 12);
  SafeTensors all;
  for (const char* name : {"linear", "conv", "vae-mlp", "overcomplete-tanh"}) {
    std::vector<float> runs[2];
    for (int r = 0; r < 2; ++r) {
      set_thread_count(r == 0 ? 1 : 3);  // the second run on worker threads where the build has them
      Preset p = load_preset(preset_path(name));
      Model m(p);
      m.init(21);
      Trainer t(m, 22);
      BatchSampler s(d.count, 16, true, 23);
      Tensor in, target;
      for (int step = 0; step < 10; ++step) {
        size_t n;
        const uint32_t* idx = s.next(n);
        make_batch(d, idx, n, p, t.rng, in, target);
        t.train_step(in, target);
      }
      runs[r] = m.values;
    }
    set_thread_count(1);
    CHECK(runs[0] == runs[1]);
    all.add_f32(name, {int64_t(runs[0].size())}, runs[0].data());
  }
  if (!determinism_out.empty()) write_safetensors(determinism_out, all);
  if (!determinism_in.empty()) {
    SafeTensors other = read_safetensors(determinism_in);
    for (const auto& t : all.tensors) {
      const StTensor* o = other.find(t.name);
      REQUIRE(o);
      std::vector<float> a = t.as_f32(), b = o->as_f32();
      REQUIRE(a.size() == b.size());
      // The determinism contract (README): the same bytes, not merely close values.
      size_t differ = 0, first = a.size();
      for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) differ++, first = std::min(first, i);
      INFO(t.name << ": " << differ << " of " << a.size() << " weights differ from " << determinism_in
                  << (differ ? " (first at " + std::to_string(first) + ")" : ""));
      CHECK(differ == 0);
    }
  }
}

// Fast mode rounds differently (fused multiply-add), so its weights drift from the deterministic run's; over 20 steps
// the loss must stay within 1e-3 (relative) of the deterministic run's at every step, on every path the CPU has. Its
// weights still do not depend on the thread count.
TEST_CASE("training in fast mode follows the deterministic run's loss within 1e-3") {
  const std::vector<GemmPath> paths = gemm_fast_paths();
  if (paths.empty()) return;  // WebAssembly: no fast mode (tested in test_layers.cpp)
  Dataset d = synthetic_dataset(256, 14);
  for (const char* name : {"mlp-128-64", "conv-dense", "vae-mlp"}) {
    Preset p = load_preset(preset_path(name));
    p.training.batch_size = 16;
    auto losses = [&](GemmPath path, size_t threads = 1) {
      set_gemm_path(path);
      set_thread_count(threads);
      Run run(p, 9);
      run.sample_z = false;
      run.set_data(d);
      std::vector<double> l;
      for (int step = 0; step < 20; ++step) l.push_back(run.step().total);
      set_gemm_path(GemmPath::Deterministic);
      set_thread_count(1);
      return std::make_pair(l, run.model->values);
    };
    const auto exact = losses(GemmPath::Deterministic);
    for (GemmPath path : paths) {
      const auto fast = losses(path);
      double worst = 0;
      for (size_t i = 0; i < exact.first.size(); ++i)
        worst = std::max(worst, std::fabs(fast.first[i] - exact.first[i]) / std::fabs(exact.first[i]));
      INFO(name << " on " << gemm_path_name(path) << ": worst relative loss difference " << worst);
      CHECK(worst < 1e-3);
      CHECK(fast.second != exact.second);  // it did run fused
      CHECK(losses(path, 3).second == fast.second);  // threads split the same sums: the same weights
    }
  }
}

TEST_CASE("PCA finds the principal axes and its error is the discarded variance") {
  SUBCASE("Jacobi eigen-decomposition of a known matrix") {
    std::vector<double> vals, vecs;
    symmetric_eigen({2, 1, 0, 1, 2, 0, 0, 0, 5}, 3, vals, vecs);
    CHECK(vals[0] == doctest::Approx(5));
    CHECK(vals[1] == doctest::Approx(3));
    CHECK(vals[2] == doctest::Approx(1));
    CHECK(std::fabs(vecs[1 * 3 + 0]) == doctest::Approx(std::sqrt(0.5)));
  }
  SUBCASE("data with variances 9, 4, 1, 0.01 along rotated axes") {
    const size_t n = 4000, dim = 4;
    Rng rng(6);
    const double sd[4] = {3, 2, 1, 0.1};
    const double c = std::cos(0.3), s = std::sin(0.3);
    std::vector<float> X(n * dim);
    for (size_t i = 0; i < n; ++i) {
      double a = sd[0] * rng.normal(), b = sd[1] * rng.normal(), e = sd[2] * rng.normal(), f = sd[3] * rng.normal();
      X[i * 4 + 0] = float(c * a - s * b + 1);
      X[i * 4 + 1] = float(s * a + c * b - 2);
      X[i * 4 + 2] = float(e);
      X[i * 4 + 3] = float(f);
    }
    Pca pca = fit_pca(X.data(), n, dim, 2);
    CHECK(pca.explained_variance[0] == doctest::Approx(9).epsilon(0.1));
    CHECK(pca.explained_variance[1] == doctest::Approx(4).epsilon(0.1));
    CHECK(std::fabs(pca.components[0]) == doctest::Approx(c).epsilon(0.02));
    CHECK(pca.mean[1] == doctest::Approx(-2).epsilon(0.1));
    std::vector<float> codes(n * 2), R(n * dim);
    pca.project(X.data(), n, codes.data());
    pca.reconstruct(codes.data(), n, R.data());
    double err = 0;
    for (size_t i = 0; i < X.size(); ++i) err += double(X[i] - R[i]) * (X[i] - R[i]);
    CHECK(err / n == doctest::Approx(1.01).epsilon(0.1));  // the variance of the two dropped axes
  }
  CHECK_THROWS_WITH(fit_pca(nullptr, 1, 4, 2), doctest::Contains("at least 2 samples"));
}

TEST_CASE("randomized PCA finds the same top components as the covariance PCA in many dimensions") {
  // 600 points in 300-d: two strong directions (sd 5 and 3), a weaker one (2) and noise (1).
  const size_t n = 600, dim = 300;
  Rng rng(12);
  std::vector<float> dirs(3 * dim), X(n * dim);
  for (float& v : dirs) v = rng.normal();
  for (size_t i = 0; i < n; ++i) {
    const double a = 5 * rng.normal(), b = 3 * rng.normal(), c = 2 * rng.normal();
    for (size_t j = 0; j < dim; ++j)
      X[i * dim + j] = float((a * dirs[j] + b * dirs[dim + j] + c * dirs[2 * dim + j]) / std::sqrt(double(dim)) +
                             rng.normal() + 0.5);
  }
  Pca exact = fit_pca(X.data(), n, dim, 2), fast = fit_pca_randomized(X.data(), n, dim, 2);
  for (size_t c = 0; c < 2; ++c) {
    double dot = 0, norm = 0;
    for (size_t j = 0; j < dim; ++j) {
      dot += double(exact.components[c * dim + j]) * fast.components[c * dim + j];
      norm += double(fast.components[c * dim + j]) * fast.components[c * dim + j];
    }
    INFO("component " << c);
    CHECK(std::fabs(dot) > 0.99);
    CHECK(norm == doctest::Approx(1).epsilon(0.01));
    CHECK(fast.explained_variance[c] == doctest::Approx(exact.explained_variance[c]).epsilon(0.03));
  }
  CHECK(fast.mean == exact.mean);
  CHECK_THROWS_WITH(fit_pca_randomized(X.data(), n, dim, 0), doctest::Contains("k must be between 1 and 300"));
}

TEST_CASE("chain_layer_sizes: a hand-edited layer list chains again") {
  Preset p = load_preset(preset_path("linear"));  // Flatten, Linear 784->32, ReLU, BatchNorm1d | Linear 32->784, Sigmoid
  CHECK(chain_layer_sizes(p) == 0);                // a valid preset is left alone
  // Resize the code: the BatchNorm and the decoder's first Linear follow.
  p.encoder[1]["out_features"] = 37;
  CHECK_THROWS_WITH(Model{p}, doctest::Contains("expects 32"));
  CHECK(chain_layer_sizes(p) == 2);
  CHECK(p.encoder[3]["num_features"] == 37);
  CHECK(p.decoder[0]["in_features"] == 37);
  CHECK(Model(p).code_size() == 37);
  // Add a hidden Linear 64 + ReLU in front of the code layer.
  p.encoder.insert(p.encoder.begin() + 1, default_layer_spec("ReLU"));
  p.encoder.insert(p.encoder.begin() + 1, default_layer_spec("Linear"));
  CHECK(chain_layer_sizes(p) == 2);  // the new Linear takes 784, the old one now takes 64
  CHECK(p.encoder[1]["in_features"] == 784);
  CHECK(p.encoder[3]["in_features"] == 64);
  CHECK(Model(p).parameter_count() == (784 * 64 + 64) + (64 * 37 + 37) + 2 * 37 + (37 * 784 + 784));
  // Removing the Flatten cannot be chained: the Linear gets an image, and the model says where.
  p.encoder.erase(p.encoder.begin());
  chain_layer_sizes(p);
  CHECK_THROWS_WITH(Model{p}, doctest::Contains("encoder.0 (Linear): Linear expects a flat input"));
}

TEST_CASE("chain_layer_sizes: conv channels, BatchNorm and Unflatten follow a resized layer") {
  Preset p = load_preset(preset_path("conv"));
  const size_t before = Model(p).parameter_count();
  p.encoder[0]["out_channels"] = 24;  // Conv 1->16 becomes 1->24; the next Conv must take 24
  CHECK(chain_layer_sizes(p) == 1);
  CHECK(p.encoder[3]["in_channels"] == 24);
  CHECK(Model(p).parameter_count() == before + 8 * 9 + 8 + 8 * 4 * 9);
  p.encoder.insert(p.encoder.begin() + 1, default_layer_spec("BatchNorm2d"));
  chain_layer_sizes(p);
  CHECK(p.encoder[1]["num_features"] == 24);
  CHECK_NOTHROW(Model{p});
  // A dense decoder's Unflatten takes its channel count from what reaches it.
  Preset d = load_preset(preset_path("conv-dense"));
  bool has_unflatten = false;
  for (const auto& l : d.decoder) has_unflatten |= l["type"] == "Unflatten";
  REQUIRE(has_unflatten);
  CHECK_NOTHROW(Model{d});
  CHECK(chain_layer_sizes(d) == 0);
  for (const auto& t : layer_types()) {
    INFO(t);
    CHECK_NOTHROW(make_layer(default_layer_spec(t)));
  }
}

// train_step leaves model.grads 0 (zeroed in the optimizer's pass) unless keep_gradients is set; either way the
// weights are the same bits, for Adam and SGD, and a forward_backward in between still sees fresh gradients.
TEST_CASE("train_step zeroes the gradients in the optimizer's pass: same weights as keeping them") {
  for (const char* opt : {"adam", "sgd"}) {
    Preset p = load_preset(preset_path("linear"));
    p.optimizer.type = opt;
    p.optimizer.momentum = 0.9f;
    Model a(p), b(p);
    a.init(1);
    b.init(1);
    Trainer ta(a, 2), tb(b, 2);
    tb.keep_gradients = true;
    Dataset d = synthetic_dataset(64, 4);
    std::vector<uint32_t> idx(16);
    std::iota(idx.begin(), idx.end(), 0u);
    Tensor in, target;
    make_batch(d, idx.data(), 16, p, ta.rng, in, target);
    for (int i = 0; i < 4; ++i) {
      ta.train_step(in, target);
      tb.train_step(in, target);
      CHECK(std::all_of(a.grads.begin(), a.grads.end(), [](float g) { return g == 0.f; }));
      CHECK_FALSE(std::all_of(b.grads.begin(), b.grads.end(), [](float g) { return g == 0.f; }));
      CHECK(a.values == b.values);
      if (i == 1) {  // a backward pass between steps
        ta.forward_backward(in, target, true, true);
        tb.forward_backward(in, target, true, true);
        CHECK(a.grads == b.grads);
      }
    }
  }
}

TEST_CASE("Run: the seed rule, the training subset, lockstep batches, divergence") {
  Dataset d = synthetic_dataset(300, 31);
  SUBCASE("a Run trains exactly as Model + Trainer + BatchSampler with seed, seed + 1, seed + 2") {
    Preset p = load_preset(preset_path("denoise"));  // corruption: the trainer's random numbers matter too
    p.training.batch_size = 16;
    Run run(p, 5);
    run.set_data(d);
    Model m(p);
    m.init(5);
    Trainer t(m, 6);
    BatchSampler s(d.count, 16, true, 7);
    Tensor in, target;
    for (int step = 0; step < 6; ++step) {
      size_t n;
      const uint32_t* idx = s.next(n);
      make_batch(d, idx, n, p, t.rng, in, target);
      LossTerms a = t.train_step(in, target), b = run.step();
      CHECK(a.total == b.total);
      CHECK(std::vector<uint32_t>(idx, idx + n) == run.last_batch());
    }
    CHECK(m.values == run.model->values);
    CHECK(run.steps == 6);
    CHECK(run.curve.train.size() == 6);
    CHECK(run.epoch() == doctest::Approx(6.0 / 19));  // 300 images: 18 batches of 16 and one of 12
  }
  SUBCASE("a held-out digit is never drawn") {
    Run run(load_preset(preset_path("linear")), 1);
    run.set_data(d, 3);
    size_t threes = 0;
    for (size_t i = 0; i < d.count; ++i) threes += d.labels[i] == 3;
    REQUIRE(threes > 0);
    CHECK(run.train_images() == d.count - threes);
    for (int step = 0; step < 10; ++step) {
      run.step();
      for (uint32_t i : run.last_batch()) CHECK(d.labels[i] != 3);
    }
  }
  SUBCASE("runs in lockstep see the same batches; mismatched runs are refused") {
    Preset a = load_preset(preset_path("linear")), b = load_preset(preset_path("vae-mlp"));
    a.training.batch_size = b.training.batch_size = 32;
    Run ra(a, 9), rb(b, 9);
    ra.set_data(d);
    rb.set_data(d);
    for (int step = 0; step < 12; ++step) {  // past the end of an epoch (10 batches)
      std::vector<LockstepStep> r = step_lockstep({&ra, &rb});
      CHECK(r[0].error.empty());
      CHECK(r[1].error.empty());
      CHECK(ra.last_batch() == rb.last_batch());
    }
    Run rc(a, 10);
    rc.set_data(d);
    CHECK_THROWS_AS(step_lockstep({&ra, &rc}), std::logic_error);
    // A batch size changed mid-epoch redraws the rest of the epoch the same way for both.
    ra.set_batch_size(20);
    CHECK_THROWS_AS(step_lockstep({&ra, &rb}), std::logic_error);
    rb.set_batch_size(20);
    step_lockstep({&ra, &rb});
    CHECK(ra.last_batch().size() == 20);
    CHECK(ra.last_batch() == rb.last_batch());
  }
  SUBCASE("divergence: the step throws, the weights and the step count are those of the last good step") {
    Preset p = load_preset(preset_path("vae-mlp"));
    p.optimizer.lr = 10;
    Run run(p, 1);
    run.set_data(d);
    std::vector<float> good;
    bool diverged = false;
    for (int step = 0; step < 200 && !diverged; ++step) {
      good = run.model->values;
      size_t before = run.steps;
      try {
        run.step();
      } catch (const DivergenceError&) {
        diverged = true;
        CHECK(run.steps == before);
      }
    }
    REQUIRE(diverged);
    CHECK(run.model->values == good);
  }
}
