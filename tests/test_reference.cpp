// The engine against PyTorch: reference vectors from tests/reference/make_reference.py (torch 1.13, float32).
//  * layers.safetensors: every layer type's forward, backward (dx and parameter gradients) and running
//    statistics, one small case per configuration.
//  * presets.safetensors: 5 Adam steps of whole presets with the engine's loss: per-step losses, the first
//    step's gradients and the final parameters and buffers.
// Set AEP_REF_REPORT=1 to print the largest deviation of every comparison group (used to choose the tolerances).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/layers.hpp"
#include "core/model.hpp"
#include "core/preset.hpp"
#include "core/safetensors.hpp"
#include "core/train.hpp"

namespace {

using aep::Shape;
using aep::Tensor;
using nlohmann::json;

// ------------------------------------------------------------------------------------------ tolerances
// A value passes if |engine - torch| <= atol + rtol * |torch| (+ a noise allowance, see below). "Measured" is the
// largest deviation on an x86-64 AVX2 build against torch 1.13 (AEP_REF_REPORT=1 prints them).
//
// Single layers: float32 results of the same formulas summed in another order (gemm blocking, im2col, BatchNorm
// statistics in double here). Measured: max |diff| 7.6e-6 on gradients of order 10-100, at most 0.07 of the
// tolerance (convt_k2s2.grad.bias).
constexpr double kLayerAtol = 1e-5, kLayerRtol = 1e-4;
// Preset losses: the engine sums in double, torch in float32 over 784 * 8 elements. Measured: relative
// differences up to 1.3e-7, at most 0.07 of the tolerance.
constexpr double kLossRtol = 2e-6, kLossAtol = 1e-7;
// First-step gradients (one forward + backward through the whole model, no optimizer amplification yet): atol
// relative to the tensor's largest stored gradient, so each tensor is judged on its own scale. Measured: at most
// 0.13 of the tolerance (linear's encoder.1.bias, whose gradient is ~1e-10 of rounding noise).
constexpr double kGradAtolOfMax = 2e-5, kGradRtol = 2e-4;
// Parameters after 5 Adam steps, atol in units of the learning rate. Measured without noise allowance: 4e-7 =
// 0.0004 lr (sparse), at most 0.02 of the tolerance.
constexpr double kFinalAtolOfLr = 0.02, kFinalRtol = 1e-4;
// Running statistics after 5 steps. Measured without noise allowance: 6e-8.
constexpr double kBufferAtol = 1e-5, kBufferRtol = 1e-4;
// Noise allowance. Adam divides each update by the gradient's RMS, so an element whose gradient is float32
// rounding noise (the bias of a Linear followed by ReLU + BatchNorm1d: its exact gradient is ~0) steps by up to
// ~lr in a direction that differs between any two float32 implementations, and moves what depends on it (the
// BatchNorm running mean, later losses). make_reference.py finds those elements and measures, in float64
// replays with perturbed updates, an envelope of how far each final value and loss can move; 2 * envelope is
// added to the tolerance of the values it concerns. Measured with it: linear's encoder.1.bias differs by
// 8.7e-4 (0.87 lr) and encoder.3.running_mean by 1.8e-4, both at 0.04 of their tolerance.
// Sums over subsampled gradient tensors also allow a relative error shared by all elements (see expect_stored):
// sum-of-squares differences reach 0.47 of the random-walk term alone (vae-mlp encoder.3.weight).
constexpr double kGradCoherentRtol = 1e-5;

constexpr size_t kFinalSubsample = 4096, kGradSubsample = 1024;  // as in make_reference.py

// ------------------------------------------------------------------------------------------ reporting

struct GroupStats {
  double max_abs = 0;     // largest |engine - torch|
  double max_strict = 0;  // largest |engine - torch| among values without a noise allowance
  double max_usage = 0;  // largest |diff| / (atol + rtol |torch|): 1 = at the tolerance
  std::string where;     // the comparison with the largest usage
};

std::map<std::string, GroupStats>& groups() {
  static std::map<std::string, GroupStats> g;
  return g;
}

void report(const char* title) {
  const char* env = std::getenv("AEP_REF_REPORT");
  if (!env || !*env) return;
  std::printf("---- %s: largest deviation per group\n", title);
  for (const auto& [name, s] : groups())
    std::printf("  %-40s max|diff| %-10.3g (%-10.3g without noise allowance)  %.3g of tolerance  (%s)\n",
                name.c_str(), s.max_abs, s.max_strict, s.max_usage, s.where.c_str());
  groups().clear();
}

// Compares n values, reporting the worst element; fails (CHECK) if any is beyond atol + rtol * |want|
// (+ extra[i], the per-element noise allowance, when given).
bool expect_close(const std::string& what, const std::string& group, const float* got, const float* want, size_t n,
                  double atol, double rtol, const std::vector<double>* extra = nullptr) {
  size_t bad = 0, worst = 0;
  double max_abs = 0, max_strict = 0, worst_usage = -1;
  for (size_t i = 0; i < n; ++i) {
    double g = got[i], w = want[i];
    double d = std::fabs(g - w);
    if (!std::isfinite(g) || !std::isfinite(w)) d = std::numeric_limits<double>::infinity();
    const double allowance = extra ? (*extra)[i] : 0.0;
    double usage = d / (atol + rtol * std::fabs(w) + allowance);
    if (usage > 1) ++bad;
    max_abs = std::max(max_abs, d);
    if (allowance == 0) max_strict = std::max(max_strict, d);
    if (usage > worst_usage) worst_usage = usage, worst = i;
  }
  GroupStats& s = groups()[group];
  s.max_abs = std::max(s.max_abs, max_abs);
  s.max_strict = std::max(s.max_strict, max_strict);
  if (worst_usage > s.max_usage) s.max_usage = worst_usage, s.where = what;
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << n << " values differ by more than " << atol << " + "
                               << rtol << " |torch|; max |diff| " << max_abs << ", worst element [" << worst
                               << "]: engine " << (n ? got[worst] : 0.f) << ", torch " << (n ? want[worst] : 0.f));
  return bad == 0;
}

bool expect_close(const std::string& what, const std::string& group, double got, double want, double atol,
                  double rtol, double extra = 0) {
  double d = std::fabs(got - want);
  if (!std::isfinite(got) || !std::isfinite(want)) d = std::numeric_limits<double>::infinity();
  double usage = d / (atol + rtol * std::fabs(want) + extra);
  GroupStats& s = groups()[group];
  s.max_abs = std::max(s.max_abs, d);
  if (extra == 0) s.max_strict = std::max(s.max_strict, d);
  if (usage > s.max_usage) s.max_usage = usage, s.where = what;
  CHECK_MESSAGE(usage <= 1, what << ": engine " << got << ", torch " << want << " (|diff| " << d << " > " << atol
                                 << " + " << rtol << " |torch| + " << extra << ")");
  return usage <= 1;
}

// ------------------------------------------------------------------------------------------ fixtures

const aep::StTensor& need(const aep::SafeTensors& st, const std::string& name) {
  const aep::StTensor* t = st.find(name);
  REQUIRE_MESSAGE(t != nullptr, "the reference file has no tensor '" << name
                                                                     << "' (regenerate: /usr/bin/python3 "
                                                                        "tests/reference/make_reference.py)");
  return *t;
}

// Torch shapes to the engine's rank-4 activations: [B, F] -> [B, F, 1, 1].
Shape shape4(const aep::StTensor& t) {
  REQUIRE_MESSAGE((t.shape.size() == 2 || t.shape.size() == 4), t.name << " has rank " << t.shape.size());
  Shape s{1, 1, 1, 1};
  for (size_t i = 0; i < t.shape.size(); ++i) s[i] = size_t(t.shape[i]);
  return s;
}

Tensor to_tensor(const aep::StTensor& t) {
  Tensor x(shape4(t));
  std::vector<float> v = t.as_f32();
  std::copy(v.begin(), v.end(), x.begin());
  return x;
}

size_t count_prefix(const aep::SafeTensors& st, const std::string& prefix) {
  size_t n = 0;
  for (const auto& t : st.tensors) n += t.name.compare(0, prefix.size(), prefix) == 0;
  return n;
}

// The deterministic formulas of make_reference.py (uint32 arithmetic).
uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

float hash_u(uint32_t seed, uint32_t i) {
  uint32_t x = mix(i * 0x9e3779b9u + mix(seed + 0x68e31da4u));
  return float(x >> 8) * (1.f / 16777216.f);
}

Tensor input_batch(uint32_t step, size_t batch) {
  Tensor x({batch, 1, aep::Model::kImageSide, aep::Model::kImageSide});
  for (size_t i = 0; i < x.size(); ++i) x.data()[i] = hash_u(0x10000u + step, uint32_t(i));
  return x;
}

std::string fixture(const char* file) { return std::string(AEP_TEST_DIR) + "/reference/" + file; }

// ------------------------------------------------------------------------------------------ layers

void run_layer_case(const aep::SafeTensors& st, const std::string& name, const json& c) {
  INFO("layer case '" << name << "': " << c.dump());
  const bool training = c.at("training").get<bool>();
  std::unique_ptr<aep::Layer> layer = aep::make_layer(c.at("spec"));
  const std::string P = name + ".";

  // Every tensor of the case has a slot and every slot a tensor.
  CHECK(count_prefix(st, P + "param.") == layer->params.size());
  CHECK(count_prefix(st, P + "grad.") == layer->params.size());
  CHECK(count_prefix(st, P + "buffer.") == layer->buffers.size());
  CHECK(count_prefix(st, P + "counter.") == layer->counters.size());

  std::vector<std::vector<float>> storage;
  storage.reserve(2 * layer->params.size() + layer->buffers.size());
  for (auto& p : layer->params) {
    const aep::StTensor& t = need(st, P + "param." + p.name);
    REQUIRE(t.shape == p.shape);
    storage.push_back(t.as_f32());
    p.value = storage.back().data();
    storage.emplace_back(p.numel(), 0.f);
    p.grad = storage.back().data();
  }
  for (auto& b : layer->buffers) {
    const aep::StTensor& t = need(st, P + "buffer." + b.name);
    REQUIRE(t.shape == b.shape);
    storage.push_back(t.as_f32());
    b.value = storage.back().data();
  }
  for (auto& k : layer->counters) *k.value = need(st, P + "counter." + k.name).as_i64().at(0);

  const Tensor x = to_tensor(need(st, P + "x"));
  const aep::StTensor& ty = need(st, P + "y");
  const Shape want_shape = shape4(ty);
  CHECK(layer->output_shape(x.shape()) == want_shape);

  aep::Rng rng(1);
  aep::RunContext ctx{training, &rng};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor y(want_shape);
  y.fill(nan);  // forward must write every output
  layer->forward(x, y, ctx);
  REQUIRE(y.shape() == want_shape);
  std::vector<float> want = ty.as_f32();
  expect_close(P + "y", "layers: y", y.data(), want.data(), want.size(), kLayerAtol, kLayerRtol);

  const Tensor dy = to_tensor(need(st, P + "dy"));
  Tensor dx(x.shape());
  dx.fill(nan);  // backward must overwrite dx
  layer->backward(x, y, dy, &dx);
  REQUIRE(dx.shape() == x.shape());
  want = need(st, P + "dx").as_f32();
  expect_close(P + "dx", "layers: dx", dx.data(), want.data(), want.size(), kLayerAtol, kLayerRtol);
  for (auto& p : layer->params) {
    want = need(st, P + "grad." + p.name).as_f32();
    expect_close(P + "grad." + p.name, "layers: param grads", p.grad, want.data(), want.size(), kLayerAtol,
                 kLayerRtol);
  }
  for (auto& b : layer->buffers) {
    want = need(st, P + "buffer_after." + b.name).as_f32();
    expect_close(P + "buffer_after." + b.name, "layers: buffers after", b.value, want.data(), want.size(),
                 kLayerAtol, kLayerRtol);
  }
  for (auto& k : layer->counters)
    CHECK_MESSAGE(*k.value == need(st, P + "counter_after." + k.name).as_i64().at(0), P << k.name);

  // Backward ADDS into parameter gradients (tied weights rely on it): a second pass doubles them.
  layer->backward(x, y, dy, &dx);
  for (auto& p : layer->params) {
    want = need(st, P + "grad." + p.name).as_f32();
    for (float& v : want) v *= 2.f;
    expect_close(P + "grad." + p.name + " (accumulated twice)", "layers: param grads x2", p.grad, want.data(),
                 want.size(), 2 * kLayerAtol, kLayerRtol);
  }
}

// ------------------------------------------------------------------------------------------ presets

// The noise allowance of a preset's final values: 2 * the envelope make_reference.py measured (zero where none
// is stored), aligned with the stored values.
std::vector<double> noise_allowance(const aep::SafeTensors& st, const std::string& prefix, size_t stored) {
  std::vector<double> extra(stored, 0.0);
  const aep::StTensor* env = st.find(prefix + ".env");
  if (!env) return extra;
  std::vector<float> e = env->as_f32();
  if (const aep::StTensor* idx = st.find(prefix + ".env_idx")) {
    std::vector<int64_t> at = idx->as_i64();
    REQUIRE(at.size() == e.size());
    for (size_t j = 0; j < at.size(); ++j) {
      REQUIRE(at[j] >= 0);
      REQUIRE(size_t(at[j]) < stored);
      extra[size_t(at[j])] = 2.0 * e[j];
    }
  } else {
    REQUIRE(e.size() == stored);
    for (size_t j = 0; j < stored; ++j) extra[j] = 2.0 * e[j];
  }
  return extra;
}

// A stored tensor: whole ("<prefix>"), or a subsample of every k-th flat element plus [sum, sumsq].
void expect_stored(const aep::SafeTensors& st, const std::string& prefix, const std::string& group,
                   const float* got, size_t n, size_t limit, double atol, double rtol, double coherent_rtol) {
  if (const aep::StTensor* whole = st.find(prefix)) {
    REQUIRE(whole->numel() == n);
    std::vector<float> want = whole->as_f32();
    std::vector<double> extra = noise_allowance(st, prefix, n);
    expect_close(prefix, group, got, want.data(), n, atol, rtol, &extra);
    return;
  }
  const aep::StTensor& sub = need(st, prefix + ".sub");
  const size_t k = (n + limit - 1) / limit;
  REQUIRE(n > limit);
  REQUIRE(sub.numel() == (n + k - 1) / k);
  std::vector<float> want = sub.as_f32(), picked(want.size());
  for (size_t j = 0; j < picked.size(); ++j) picked[j] = got[j * k];
  std::vector<double> extra = noise_allowance(st, prefix, want.size());
  expect_close(prefix + ".sub", group, picked.data(), want.data(), want.size(), atol, rtol, &extra);

  // Sum and sum of squares of all n elements. Independent per-element differences within atol add up like a
  // random walk: sqrt(n) atol for the sum, 2 atol sqrt(sumsq) for the sum of squares. A relative error common
  // to all elements (gradients: float32 rounding of a shared factor) adds coherent_rtol * sum |x| (2 * sumsq).
  std::vector<float> stats = need(st, prefix + ".stats").as_f32();
  double env_sum = 0, env_sumsq = 0;
  if (const aep::StTensor* es = st.find(prefix + ".env_stats")) {
    std::vector<float> e = es->as_f32();
    REQUIRE(e.size() == 2);
    env_sum = 2.0 * e[0], env_sumsq = 2.0 * e[1];
  }
  double s = 0, s_abs = 0, s2 = 0;
  for (size_t i = 0; i < n; ++i) s += got[i], s_abs += std::fabs(got[i]), s2 += double(got[i]) * got[i];
  expect_close(prefix + " sum", group + " (sum, sumsq)", s, stats[0],
               atol * std::sqrt(double(n)) + coherent_rtol * s_abs, 1e-6, env_sum);
  expect_close(prefix + " sum of squares", group + " (sum, sumsq)", s2, stats[1],
               2 * atol * std::sqrt(s2) + 2 * coherent_rtol * s2, 1e-6, env_sumsq);
}

double max_abs_of(const aep::SafeTensors& st, const std::string& prefix) {
  const aep::StTensor* t = st.find(prefix);
  std::vector<float> v = (t ? *t : need(st, prefix + ".sub")).as_f32();
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

void run_preset_case(const aep::SafeTensors& st, const std::string& name, const json& info) {
  INFO("preset '" << name << "'");
  aep::Preset preset = aep::load_preset(std::string(AEP_TEST_DIR) + "/../assets/presets/" + name + ".json");
  aep::Model m(preset);
  const json& listing = info.at("tensors");
  const size_t steps = info.at("steps").get<size_t>(), batch = info.at("batch").get<size_t>();
  const size_t latent = info.at("latent").get<size_t>();

  // Same tensors, same order, same shapes as torch's state_dict (num_batches_tracked aside).
  REQUIRE(m.entries.size() == listing.size());
  for (size_t i = 0; i < listing.size(); ++i) {
    CHECK(m.entries[i].name == listing[i].at("name").get<std::string>());
    CHECK(m.entries[i].shape == listing[i].at("shape").get<std::vector<int64_t>>());
  }
  // The engine's own init scheme (Model::init) uses PyTorch's default bounds.
  {
    size_t i = 0;
    for (aep::Sequential* part : {&m.encoder, &m.mu, &m.logvar, &m.decoder})
      for (auto& layer : part->layers) {
        std::vector<aep::ParamSlot*> slots;
        for (auto& p : layer->params) slots.push_back(&p);
        for (auto& b : layer->buffers) slots.push_back(&b);
        for (aep::ParamSlot* p : slots) {
          REQUIRE(i < listing.size());
          const std::string kind = listing[i].at("init").get<std::string>();
          const char* mine = p->init == aep::ParamSlot::Init::Ones    ? "ones"
                             : p->init == aep::ParamSlot::Init::Zeros ? "zeros"
                                                                      : "uniform";
          CHECK_MESSAGE(kind == mine, m.entries[i].name);
          if (kind == "uniform") CHECK_MESSAGE(p->init_bound == listing[i].at("bound").get<float>(), m.entries[i].name);
          ++i;
        }
      }
    CHECK(i == listing.size());
  }

  // Parameters from the hash formula; counters 0.
  for (size_t t = 0; t < listing.size(); ++t) {
    const std::string kind = listing[t].at("init").get<std::string>();
    const float bound = listing[t].at("bound").get<float>();
    aep::Model::Entry& e = m.entries[t];
    size_t n = 1;
    for (int64_t d : e.shape) n *= size_t(d);
    for (size_t i = 0; i < n; ++i)
      e.value[i] = kind == "ones"    ? 1.f
                   : kind == "zeros" ? 0.f
                                     : bound * (2.f * hash_u(uint32_t(t), uint32_t(i)) - 1.f);
    std::vector<float> stats = need(st, name + ".init." + e.name + ".stats").as_f32();
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; ++i) s += e.value[i], s2 += double(e.value[i]) * e.value[i];
    expect_close(name + ".init." + e.name + " sum", "init (formula)", s, stats[0], 1e-6, 1e-6);
    expect_close(name + ".init." + e.name + " sumsq", "init (formula)", s2, stats[1], 1e-6, 1e-6);
  }
  for (auto& c : m.counters) *c.value = 0;

  aep::Trainer trainer(m, 7);
  trainer.keep_gradients = true;  // step 1's gradients are compared below
  const float lr = preset.optimizer.lr;
  std::vector<float> losses = need(st, name + ".loss").as_f32(), loss_env = need(st, name + ".loss_env").as_f32();
  std::vector<float> eps_all;
  REQUIRE(losses.size() == steps * 4);
  REQUIRE(loss_env.size() == steps * 4);
  if (latent) eps_all = need(st, name + ".eps").as_f32();
  for (size_t s = 0; s < steps; ++s) {
    INFO("step " << s + 1);
    Tensor x = input_batch(uint32_t(s), batch);
    Tensor eps({batch, latent, 1, 1});
    if (latent)
      std::copy(eps_all.begin() + s * batch * latent, eps_all.begin() + (s + 1) * batch * latent, eps.begin());
    aep::LossTerms L = trainer.train_step(x, x, latent ? &eps : nullptr);
    const std::string at = name + " step " + std::to_string(s + 1);
    expect_close(at + " total", name + ": loss", L.total, losses[s * 4 + 0], kLossAtol, kLossRtol,
                 2.0 * loss_env[s * 4 + 0]);
    expect_close(at + " reconstruction", name + ": loss", L.reconstruction, losses[s * 4 + 1], kLossAtol, kLossRtol,
                 2.0 * loss_env[s * 4 + 1]);
    expect_close(at + " kl", name + ": loss", L.kl, losses[s * 4 + 2], kLossAtol, kLossRtol,
                 2.0 * loss_env[s * 4 + 2]);
    expect_close(at + " penalty", name + ": loss", L.penalty, losses[s * 4 + 3], kLossAtol, kLossRtol,
                 2.0 * loss_env[s * 4 + 3]);
    if (s == 0)  // model.grads still hold the first step's gradients after the update
      for (const auto& e : m.entries) {
        if (!e.grad) continue;
        size_t n = 1;
        for (int64_t d : e.shape) n *= size_t(d);
        const std::string prefix = name + ".grad1." + e.name;
        expect_stored(st, prefix, name + ": grad (step 1)", e.grad, n, kGradSubsample,
                      kGradAtolOfMax * max_abs_of(st, prefix), kGradRtol, kGradCoherentRtol);
      }
  }
  for (const auto& e : m.entries) {
    size_t n = 1;
    for (int64_t d : e.shape) n *= size_t(d);
    const std::string prefix = name + ".final." + e.name;
    if (e.grad)
      expect_stored(st, prefix, name + ": params (5 Adam steps)", e.value, n, kFinalSubsample, kFinalAtolOfLr * lr,
                    kFinalRtol, 0.0);
    else
      expect_stored(st, prefix, name + ": buffers (5 steps)", e.value, n, kFinalSubsample, kBufferAtol, kBufferRtol,
                    0.0);
  }
  for (const auto& c : m.counters)
    CHECK_MESSAGE(*c.value == need(st, name + ".final." + c.name).as_i64().at(0), c.name);
}

}  // namespace

TEST_CASE("reference: every layer matches PyTorch (forward, backward, running statistics)") {
  const aep::SafeTensors st = aep::read_safetensors(fixture("layers.safetensors"));
  REQUIRE(st.metadata.count("cases"));
  const json cases = json::parse(st.metadata.at("cases"));
  REQUIRE(cases.size() >= 20);
  std::vector<std::string> covered;
  for (const auto& [name, c] : cases.items()) {
    run_layer_case(st, name, c);
    covered.push_back(c.at("spec").at("type").get<std::string>());
  }
  // Every layer type but Dropout (random) has a case.
  for (const std::string& t : aep::layer_types())
    if (t != "Dropout") CHECK_MESSAGE(std::count(covered.begin(), covered.end(), t) > 0, "no reference case for " << t);
  report("layers vs PyTorch");
}

TEST_CASE("reference: 5 Adam steps of presets match PyTorch (losses, gradients, weights)") {
  const aep::SafeTensors st = aep::read_safetensors(fixture("presets.safetensors"));
  REQUIRE(st.metadata.count("presets"));
  const json presets = json::parse(st.metadata.at("presets"));
  REQUIRE(presets.size() >= 3);
  for (const char* required : {"linear", "conv", "vae-mlp"}) CHECK(presets.contains(required));
  for (const auto& [name, info] : presets.items()) run_preset_case(st, name, info);
  report("presets vs PyTorch");
}
