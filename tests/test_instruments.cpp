// Instruments (src/core/instruments.hpp, probe.hpp) and the L1 loss: against PyTorch / numpy references
// (tests/reference/make_instruments.py -> instruments.safetensors), hand-computed cases, gradient checks, and the
// probe's slicing and error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/instruments.hpp"
#include "core/losses.hpp"
#include "core/metrics.hpp"
#include "core/probe.hpp"
#include "core/safetensors.hpp"
#include "core/train.hpp"
#include "core/weights.hpp"
#include "test_util.hpp"

using namespace aep;
using namespace aep::test;
using nlohmann::json;

namespace {

// Relative tolerance of every reference comparison, with an absolute floor for values near 0.
constexpr double kRtol = 1e-4, kAtol = 1e-6;

void expect_near(const std::string& what, const float* got, const float* want, size_t n, double atol = kAtol,
                 double rtol = kRtol) {
  size_t bad = 0, worst = 0;
  double worst_d = -1;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (!(d <= atol + rtol * std::fabs(want[i]))) ++bad;
    if (!(d <= worst_d)) worst_d = d, worst = i;
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << n << " differ beyond " << atol << " + " << rtol
                               << " |ref|; worst [" << worst << "]: engine " << got[worst] << ", ref " << want[worst]);
}

void expect_near(const std::string& what, const std::vector<double>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  std::vector<float> g(got.begin(), got.end());
  expect_near(what, g.data(), want.data(), g.size());
}

const StTensor& need(const SafeTensors& st, const std::string& name) {
  const StTensor* t = st.find(name);
  REQUIRE_MESSAGE(t != nullptr, "instruments.safetensors has no '" << name
                                    << "' (regenerate: /usr/bin/python3 tests/reference/make_instruments.py)");
  return *t;
}

const SafeTensors& reference() {
  static const SafeTensors st = read_safetensors(std::string(AEP_TEST_DIR) + "/reference/instruments.safetensors");
  return st;
}

// A model case of the reference file: its preset and weights.
std::unique_ptr<Model> reference_model(const std::string& name) {
  const SafeTensors& st = reference();
  const json models = json::parse(st.metadata.at("models"));
  auto m = std::make_unique<Model>(parse_preset(models.at(name), "reference " + name));
  SafeTensors weights;
  const std::string prefix = name + ".state.";
  for (const StTensor& t : st.tensors)
    if (t.name.compare(0, prefix.size(), prefix) == 0) {
      StTensor c = t;
      c.name = t.name.substr(prefix.size());
      weights.tensors.push_back(c);
    }
  load_state(*m, weights, "reference " + name);
  return m;
}

Tensor reference_images(const std::string& name) {
  std::vector<float> v = need(reference(), name + ".x").as_f32();
  Tensor x({v.size() / 784, 1, 28, 28});
  std::copy(v.begin(), v.end(), x.begin());
  return x;
}

// Images whose label shows: digit c lights up a 6x6 block at a place of its own (plus seeded noise), so a probe can
// learn the digits from pixels or codes.
Dataset labelled_blocks(size_t count, uint64_t seed, bool with_labels = true) {
  Dataset d;
  d.name = "blocks";
  d.count = count;
  d.rows = d.cols = 28;
  d.pixels.assign(count * 784, 0);
  Rng rng(seed);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t c = uint8_t(i % 7 == 3 ? rng.below(10) : (i * 7) % 10);
    if (with_labels) d.labels.push_back(c);
    uint8_t* img = d.pixels.data() + i * 784;
    for (size_t p = 0; p < 784; ++p) img[p] = uint8_t(rng.below(60));
    const size_t r0 = 2 + (c / 5) * 12 + rng.below(3), c0 = 1 + (c % 5) * 5 + rng.below(2);
    for (size_t r = r0; r < r0 + 6; ++r)
      for (size_t k = c0; k < std::min<size_t>(c0 + 6, 28); ++k) img[r * 28 + k] = 255;
  }
  return d;
}

}  // namespace

// ------------------------------------------------------------------------------------------ the L1 loss

TEST_CASE("L1 loss: gradient check, hand-computed values, and PyTorch's F.l1_loss") {
  Rng rng(4);
  const size_t B = 3, n = 12;
  std::vector<float> pred(B * n), target(B * n), grad(B * n);
  for (size_t i = 0; i < pred.size(); ++i) pred[i] = rng.uniform(), target[i] = rng.uniform();
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    l1_loss(pred.data(), target.data(), pred.size(), B, r, grad.data());
    std::vector<float*> coords;
    for (float& p : pred) coords.push_back(&p);
    // |d| is smooth away from d = 0, and the random values are at least ~1e-3 apart there.
    const double err = gradient_error(coords, grad, [&] { return l1_loss(pred.data(), target.data(), pred.size(), B, r, nullptr); }, 1e-4, 1e-3);
    INFO("reduction " << (r == Reduction::Mean ? "mean" : "sum") << ": worst relative error " << err);
    CHECK(err < 1e-2);
  }
  std::vector<float> p = {0.5f, 1.f, 0.f}, t = {1.f, 1.f, 0.25f};
  CHECK(l1_loss(p.data(), t.data(), 3, 1, Reduction::Mean, nullptr) == doctest::Approx(0.25));
  CHECK(l1_loss(p.data(), t.data(), 3, 3, Reduction::Sum, nullptr) == doctest::Approx(0.25));  // 0.75 / 3 images
  std::vector<float> g(3);
  l1_loss(p.data(), t.data(), 3, 1, Reduction::Sum, g.data());
  CHECK(g == std::vector<float>{-1.f, 0.f, -1.f});  // equal values: PyTorch's subgradient 0

  const SafeTensors& st = reference();
  std::vector<float> rp = need(st, "l1.pred").as_f32(), rt = need(st, "l1.target").as_f32(), rg(rp.size());
  const size_t rb = size_t(need(st, "l1.pred").shape[0]);
  for (const char* red : {"mean", "sum"}) {
    const Reduction r = std::string(red) == "sum" ? Reduction::Sum : Reduction::Mean;
    const double loss = l1_loss(rp.data(), rt.data(), rp.size(), rb, r, rg.data());
    CHECK(loss == doctest::Approx(need(st, std::string("l1.") + red).as_f32().at(0)).epsilon(kRtol));
    expect_near(std::string("l1 gradient, ") + red, rg.data(), need(st, std::string("l1.grad_") + red).as_f32().data(), rg.size());
  }
}

TEST_CASE("L1 as the reconstruction loss: presets accept it, training uses it, BCE's range is checked") {
  Preset p = load_preset("linear");
  json j = preset_to_json(p);
  j["loss"]["reconstruction"] = "l1";
  const Preset l1 = parse_preset(j, "linear-l1");
  CHECK(l1.loss.reconstruction == "l1");
  CHECK(parse_preset(preset_to_json(l1), "round trip").loss.reconstruction == "l1");
  j["loss"]["reconstruction"] = "huber";
  CHECK_THROWS_WITH(parse_preset(j, "x.json"), "x.json: loss: 'reconstruction' must be one of mse, bce, l1, got \"huber\"");

  // The trainer's reconstruction term is the L1 loss of the output.
  Model m(l1);
  m.init(3);
  Trainer t(m, 1);
  Rng rng(2);
  Tensor x = random_tensor(m.input_shape(4), rng, 0.f, 1.f);
  const LossTerms L = t.forward_backward(x, x, false, false);
  Tensor out = m.reconstruct(x);
  CHECK(L.reconstruction == doctest::Approx(l1_loss(out.data(), x.data(), x.size(), 4, Reduction::Mean, nullptr)).epsilon(1e-6));
  CHECK(L.reconstruction != doctest::Approx(mse_loss(out.data(), x.data(), x.size(), 4, Reduction::Mean, nullptr)).epsilon(1e-3));

  // BCE meets values outside [0, 1]: inputs in [-1, 1], or outputs of a decoder that does not end in a Sigmoid.
  CHECK(bce_range_problem(load_preset("vae-mlp")) == "");  // BCE, 0..1, ends in Sigmoid
  CHECK(bce_range_problem(load_preset("linear")) == "");   // not BCE
  Preset bce = load_preset("linear");
  bce.loss.reconstruction = "bce";
  CHECK(bce_range_problem(bce) == "");
  bce.decoder.erase(bce.decoder.size() - 1);  // the final Sigmoid
  CHECK(bce_range_problem(bce) ==
        "BCE needs outputs in [0, 1], but the decoder does not end in a Sigmoid: add one, or use MSE or L1");
  bce = load_preset("conv-dense");  // Sigmoid, then Unflatten: still probabilities
  bce.loss.reconstruction = "bce";
  CHECK(bce_range_problem(bce) == "");
  bce = load_preset("linear");
  bce.loss.reconstruction = "bce";
  bce.normalize = Normalization::MinusOneOne;
  CHECK(bce_range_problem(bce) ==
        "BCE needs targets in [0, 1], but the inputs are normalized to [-1, 1]: use MSE or L1, or normalize to 0_1");
}

// ------------------------------------------------------------------------------------------ posterior, sparsity, Jacobian

TEST_CASE("VAE posterior: mu and logvar, KL per dimension and active units match PyTorch") {
  const SafeTensors& st = reference();
  auto m = reference_model("vae");
  const Tensor x = reference_images("vae");
  const size_t B = x.shape()[0];
  Model::Posterior q = m->encode_posterior(x);
  REQUIRE(q.mu.shape() == m->code_shape(B));
  REQUIRE(q.logvar.shape() == m->code_shape(B));
  expect_near("vae mu", q.mu.data(), need(st, "vae.code").as_f32().data(), q.mu.size());
  expect_near("vae logvar", q.logvar.data(), need(st, "vae.logvar").as_f32().data(), q.logvar.size());
  const Tensor code = m->encode(x);  // the code of a VAE is its mean
  CHECK(std::equal(code.begin(), code.end(), q.mu.begin()));

  const PosteriorStats s = posterior_stats(q.mu.data(), q.logvar.data(), B, m->code_size());
  expect_near("vae KL per dimension", s.kl_per_dim, need(st, "vae.kl_per_dim").as_f32());
  expect_near("vae variance of mu", s.mean_variance, need(st, "vae.mu_variance").as_f32());
  CHECK(int64_t(s.active_units) == need(st, "vae.active_units").as_i64().at(0));
  CHECK(s.active_units == 1);  // variances 0.11, 0.0063, 1e-5, ~0 against the threshold 0.01

  CHECK_THROWS_WITH(reference_model("contractive")->encode_posterior(x),
                    "'ref-contractive' is not a VAE: its encoder gives one code per image, not a posterior");
}

TEST_CASE("posterior statistics by hand, and samples of z") {
  // Two digits, two units: unit 0 has mu 0 and 2 (variance 1: active), unit 1 has mu 0.1 twice (variance 0).
  const std::vector<float> mu = {0.f, 0.1f, 2.f, 0.1f}, lv = {0.f, std::log(2.f), 0.f, 0.f};
  const PosteriorStats s = posterior_stats(mu.data(), lv.data(), 2, 2);
  CHECK(s.mean_variance[0] == doctest::Approx(1.0));
  CHECK(s.mean_variance[1] == doctest::Approx(0.0));
  CHECK(s.active_units == 1);
  // KL(N(mu, e^lv) || N(0, 1)) = 0.5 (mu^2 + e^lv - 1 - lv): unit 0 gives 0 and 2, unit 1 0.5 (0.01 + 1 - ln 2) and 0.005
  CHECK(s.kl_per_dim[0] == doctest::Approx(1.0));
  CHECK(s.kl_per_dim[1] == doctest::Approx(0.5 * (0.5 * (0.01 + 1 - std::log(2.0)) + 0.5 * 0.01)));
  CHECK(s.kl_total() == doctest::Approx(s.kl_per_dim[0] + s.kl_per_dim[1]));
  CHECK(posterior_stats(mu.data(), lv.data(), 2, 2, 1.5).active_units == 0);  // the threshold is a parameter

  // Samples: the right mean and spread, the same for the same seed.
  const std::vector<float> m1 = {1.f, -2.f}, l1 = {std::log(0.25f), 0.f};  // sigma 0.5 and 1
  Rng a(9), b(9);
  const std::vector<float> z = sample_posterior(m1.data(), l1.data(), 2, 20000, a);
  CHECK(z == sample_posterior(m1.data(), l1.data(), 2, 20000, b));
  for (size_t j = 0; j < 2; ++j) {
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < 20000; ++i) s1 += z[i * 2 + j], s2 += double(z[i * 2 + j]) * z[i * 2 + j];
    const double mean = s1 / 20000, var = s2 / 20000 - mean * mean, want_var = j == 0 ? 0.25 : 1.0;
    CHECK(mean == doctest::Approx(m1[j]).epsilon(0.03));
    CHECK(var == doctest::Approx(want_var).epsilon(0.05));
  }
}

TEST_CASE("sparsity readout: by hand and against PyTorch") {
  // Digit 0: max |h| = 1, so 0 and 0.005 are silent (<= 0.01), 0.02 and -1 are not. Digit 1: all zero, all silent.
  const std::vector<float> codes = {0.f, 0.005f, 0.02f, -1.f, 0.f, 0.f, 0.f, 0.f};
  const SparsityStats s = code_sparsity(codes.data(), 2, 4);
  CHECK(s.sparsity == doctest::Approx(6.0 / 8.0));
  CHECK(s.mean_abs == doctest::Approx(1.025 / 8.0));
  // Relative, not absolute: the same code scaled by 1000 is exactly as sparse.
  std::vector<float> big = codes;
  for (float& v : big) v *= 1000.f;
  CHECK(code_sparsity(big.data(), 2, 4).sparsity == s.sparsity);

  const SafeTensors& st = reference();
  for (const char* name : {"vae", "contractive", "conv"}) {
    INFO(name);
    auto m = reference_model(name);
    const Tensor x = reference_images(name);
    const Tensor h = m->encode(x);
    expect_near(std::string(name) + " code", h.data(), need(st, std::string(name) + ".code").as_f32().data(), h.size());
    const SparsityStats r = code_sparsity(h.data(), x.shape()[0], m->code_size());
    const std::vector<float> want = need(st, std::string(name) + ".sparsity").as_f32();
    CHECK(r.sparsity == doctest::Approx(want[0]).epsilon(kRtol));
    CHECK(r.mean_abs == doctest::Approx(want[1]).epsilon(kRtol));
  }
  CHECK(code_sparsity(codes.data(), 2, 4).units == 4);
  CHECK_THROWS_WITH(code_sparsity(codes.data(), 0, 4), "sparsity needs at least one digit and one code unit");
}

TEST_CASE("encoder Jacobian norm matches PyTorch's autograd, and the contractive penalty's closed form") {
  const SafeTensors& st = reference();
  for (const char* name : {"vae", "contractive", "conv"}) {  // mu of a VAE; Linear + Sigmoid; Conv, BatchNorm (eval), ReLU, MaxPool
    INFO(name);
    auto m = reference_model(name);
    const Tensor x = reference_images(name);
    // The trainer's gradients must come out untouched.
    for (size_t i = 0; i < m->grads.size(); ++i) m->grads[i] = float(i % 7) * 0.25f;
    const std::vector<float> grads = m->grads;
    const std::vector<double> j = jacobian_frobenius_sq(*m, x);
    CHECK(m->grads == grads);
    expect_near(std::string(name) + " ||J||_F^2", j, need(st, std::string(name) + ".jacobian").as_f32());
  }
  // For h = sigmoid(W x + b) the norm is sum_j (h_j (1 - h_j))^2 ||W_j||^2: the contractive penalty with weight 1 on
  // one image.
  auto m = reference_model("contractive");
  const Tensor x = reference_images("contractive");
  const std::vector<double> j = jacobian_frobenius_sq(*m, x);
  const Tensor h = m->encode(x);
  Linear& lin = m->contractive_layer();
  for (size_t b = 0; b < x.shape()[0]; ++b) {
    const double closed = contractive_penalty(h.data() + b * lin.out_features, lin.params[0].value, 1,
                                              lin.out_features, lin.in_features, 1.f, nullptr, nullptr);
    CHECK(j[b] == doctest::Approx(closed).epsilon(1e-5));
  }
  CHECK_THROWS_WITH(jacobian_frobenius_sq(*m, Tensor({2, 1, 14, 14})), "the Jacobian needs images [2, 1, 28, 28], got [2, 1, 14, 14]");
  // Sliced by rows (as the page computes it between frames): the shares add up to the whole.
  const size_t units = m->code_size(), cut = units / 3;
  const std::vector<double> a = jacobian_frobenius_sq(*m, x, 0, cut), b = jacobian_frobenius_sq(*m, x, cut, units);
  for (size_t i = 0; i < j.size(); ++i) CHECK(a[i] + b[i] == doctest::Approx(j[i]).epsilon(1e-9));
  CHECK(a[0] > 0);
  CHECK(b[0] > 0);
  CHECK_THROWS_WITH(jacobian_frobenius_sq(*m, x, 2, units + 1),
                    ("the Jacobian's rows 2.." + std::to_string(units + 1) + " are not within the code's " +
                     std::to_string(units)).c_str());
}

// ------------------------------------------------------------------------------------------ the probe's classifiers

TEST_CASE("probe: softmax regression matches PyTorch's Adam steps, k-NN matches numpy") {
  const SafeTensors& st = reference();
  const json cfg = json::parse(st.metadata.at("softmax"));
  const StTensor& tx = need(st, "softmax.train_x");
  const size_t n = size_t(tx.shape[0]), d = size_t(tx.shape[1]);
  const std::vector<float> X = tx.as_f32(), T = need(st, "softmax.test_x").as_f32();
  std::vector<uint8_t> y;
  for (int64_t v : need(st, "softmax.train_y").as_i64()) y.push_back(uint8_t(v));
  SoftmaxRegression r;
  r.begin(X.data(), y.data(), n, d, cfg.at("lr").get<float>(), cfg.at("l2").get<float>());
  expect_near("softmax centring", r.mean.data(), need(st, "softmax.mean").as_f32().data(), d);
  CHECK(r.scale == doctest::Approx(need(st, "softmax.scale").as_f32().at(0)).epsilon(1e-6));
  const std::vector<float> losses = need(st, "softmax.loss").as_f32();
  REQUIRE(losses.size() == cfg.at("steps").get<size_t>());
  std::vector<float> got_loss;
  for (size_t s = 0; s < losses.size(); ++s) got_loss.push_back(float(r.step()));
  expect_near("softmax loss per step", got_loss.data(), losses.data(), losses.size());
  expect_near("softmax W", r.W.data(), need(st, "softmax.W").as_f32().data(), r.W.size(), 1e-5);
  expect_near("softmax b", r.b.data(), need(st, "softmax.b").as_f32().data(), r.b.size(), 1e-5);
  const size_t m = T.size() / d;
  const std::vector<float> logits = r.logits(T.data(), m);
  expect_near("softmax test logits", logits.data(), need(st, "softmax.test_logits").as_f32().data(), logits.size(), 1e-5);

  const size_t k = json::parse(st.metadata.at("knn")).at("k").get<size_t>();
  const StTensor& kx = need(st, "knn.train_x");
  const size_t kn = size_t(kx.shape[0]), kd = size_t(kx.shape[1]);
  const std::vector<float> KX = kx.as_f32(), KT = need(st, "knn.test_x").as_f32();
  std::vector<uint8_t> ky;
  for (int64_t v : need(st, "knn.train_y").as_i64()) ky.push_back(uint8_t(v));
  const std::vector<int64_t> want = need(st, "knn.pred").as_i64();
  std::vector<uint8_t> pred(want.size(), 99);
  knn_predict(KX.data(), ky.data(), kn, KT.data(), 0, 10, kd, k, pred.data());  // in two calls, as the probe slices
  knn_predict(KX.data(), ky.data(), kn, KT.data(), 10, want.size(), kd, k, pred.data());
  for (size_t i = 0; i < want.size(); ++i) CHECK_MESSAGE(int64_t(pred[i]) == want[i], "k-NN test point " << i);

}

TEST_CASE("k-NN: the same predictions whatever the tile (how finely the search is sliced)") {
  Rng rng(5);
  const size_t n = 1000, m = 300, dim = 8;  // 1,000 training rows: 4 chunks of 256 at the smallest tile
  std::vector<float> train(n * dim), test(m * dim);
  std::vector<uint8_t> labels(n);
  for (float& v : train) v = rng.normal();
  for (float& v : test) v = rng.normal();
  for (uint8_t& l : labels) l = uint8_t(rng.below(10));
  std::vector<uint8_t> whole(m, 99), tiled(m, 99);
  knn_predict(train.data(), labels.data(), n, test.data(), 0, m, dim, 5, whole.data());
  knn_predict(train.data(), labels.data(), n, test.data(), 0, m, dim, 5, tiled.data(), 1);
  CHECK(whole == tiled);
  KnnSearch s;
  s.begin(train.data(), labels.data(), n, test.data(), m, dim, 5, 1);
  size_t units = 1;
  while (!s.unit()) ++units;
  CHECK(units == 8);  // 2 blocks of test rows (256 + 44) x 4 chunks
}

TEST_CASE("k-NN: equal distances rank by index, a tied vote goes to the nearest neighbour's digit") {
  // 1-d points. Test point 0 is equally far from train 0 (digit 3) and train 1 (digit 4): 1-NN takes the lower index.
  const std::vector<float> train = {-1.f, 1.f, 5.f, 6.f, 7.f}, test = {0.f, 5.2f};
  const std::vector<uint8_t> labels = {3, 4, 7, 8, 8};
  std::vector<uint8_t> pred(2);
  knn_predict(train.data(), labels.data(), 5, test.data(), 0, 2, 1, 1, pred.data());
  CHECK(pred == std::vector<uint8_t>{3, 7});
  // 2-NN of 5.2: 5 (digit 7) and 6 (digit 8) tie 1-1: the nearer, 5, wins. 3-NN: 8 has two votes.
  knn_predict(train.data(), labels.data(), 5, test.data(), 1, 2, 1, 2, pred.data());
  CHECK(pred[1] == 7);
  knn_predict(train.data(), labels.data(), 5, test.data(), 1, 2, 1, 3, pred.data());
  CHECK(pred[1] == 8);
  // k larger than the labelled set: all of it votes.
  knn_predict(train.data(), labels.data(), 5, test.data(), 0, 1, 1, 50, pred.data());
  CHECK(pred[0] == 8);
}

TEST_CASE("probe: the labelled subset is balanced and seeded; missing labels and bad counts are clear errors") {
  const Dataset d = labelled_blocks(500, 1);
  const std::vector<uint32_t> ten = balanced_label_subset(d, 10, 3);
  std::vector<int> seen(10, 0);
  for (uint32_t i : ten) ++seen[d.labels[i]];
  CHECK(seen == std::vector<int>(10, 1));
  CHECK(ten == balanced_label_subset(d, 10, 3));
  CHECK(ten != balanced_label_subset(d, 10, 4));
  const std::vector<uint32_t> all = balanced_label_subset(d, 500, 3);
  std::vector<uint32_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint32_t> every(500);
  std::iota(every.begin(), every.end(), 0u);
  CHECK(sorted == every);  // every image once
  CHECK_THROWS_WITH(balanced_label_subset(d, 9, 1),
                    "the probe's label count must be between 10 and 500 (the images of 'blocks'), got 9");
  CHECK_THROWS_WITH(balanced_label_subset(d, 501, 1),
                    "the probe's label count must be between 10 and 500 (the images of 'blocks'), got 501");
  const Dataset unlabelled = labelled_blocks(100, 1, false);
  const char* no_labels =
      "the probe needs labels, and 'blocks' has none (images without labels can be reconstructed and scored, not probed)";
  CHECK_THROWS_WITH(balanced_label_subset(unlabelled, 10, 1), no_labels);
  Probe p;
  CHECK_THROWS_WITH(p.begin(d, unlabelled, 784, pixel_features(Normalization::ZeroOne), ProbeSettings{}), no_labels);
  CHECK_THROWS_WITH(p.begin(unlabelled, d, 784, pixel_features(Normalization::ZeroOne), ProbeSettings{}), no_labels);
}

TEST_CASE("probe: learns the digits of a labelled set, and the same result however the work is sliced") {
  const Dataset train = labelled_blocks(600, 5), test = labelled_blocks(300, 6);
  ProbeSettings s;
  s.labels = 200;
  s.max_dims = 40;  // 784 pixels -> PCA 40, fitted on 300 training images
  s.pca_fit_images = 300;
  s.knn_test_images = 150;
  s.steps = 60;
  Probe whole, sliced;
  whole.begin(train, test, 784, pixel_features(Normalization::ZeroOne), s);
  CHECK(std::string(whole.stage_name()) == "pca features");
  CHECK(whole.step(1e9));
  sliced.begin(train, test, 784, pixel_features(Normalization::ZeroOne), s);
  size_t calls = 0;
  double last = 0;
  while (!sliced.step(0.0)) {  // one unit per call
    ++calls;
    CHECK(sliced.progress() >= last);
    last = sliced.progress();
  }
  CHECK(calls > s.steps);  // at least one call per Adam step
  const ProbeResult& a = whole.result();
  const ProbeResult& b = sliced.result();
  CHECK(a.softmax_accuracy == b.softmax_accuracy);
  CHECK(a.knn_accuracy == b.knn_accuracy);
  CHECK(a.labels == 200);
  CHECK(a.input_dims == 784);
  CHECK(a.dims == 40);
  CHECK(a.softmax_tested == 300);
  CHECK(a.knn_tested == 150);
  CHECK(a.softmax_accuracy > 0.9);  // the block's place gives the digit away
  CHECK(a.knn_accuracy > 0.9);
  CHECK(sliced.progress() == 1.0);
  CHECK(std::string(sliced.stage_name()) == "done");
  // Given the PCA the first probe fitted, a probe at another label count skips the fit and matches one that fits.
  REQUIRE(whole.reduction().k == 40);
  s.labels = 100;
  Probe fits, given;
  fits.begin(train, test, 784, pixel_features(Normalization::ZeroOne), s);
  given.begin(train, test, 784, pixel_features(Normalization::ZeroOne), s, &whole.reduction());
  CHECK(std::string(given.stage_name()) == "train features");
  CHECK(fits.step(1e9));
  CHECK(given.step(1e9));
  CHECK(given.result().softmax_accuracy == fits.result().softmax_accuracy);
  CHECK(given.result().knn_accuracy == fits.result().knn_accuracy);
  s.max_dims = 30;
  CHECK_THROWS_WITH(given.begin(train, test, 784, pixel_features(Normalization::ZeroOne), s, &whole.reduction()),
                    "the probe's given PCA maps 784 -> 40 numbers, not 784 -> 30");
}

TEST_CASE("instruments: checkerboard index by hand and against numpy's FFT") {
  // By hand: one lit pixel has R = C = D = 1 over 784 * 1 - 1^2; two lit neighbours in a row have R = 2, C = D = 0.
  std::vector<float> x(4 * 784, 0.f);
  x[0] = 1.f;
  x[784] = x[785] = 1.f;
  for (size_t i = 0; i < 784; ++i) x[2 * 784 + i] = 0.7f;                             // constant: no variation
  for (size_t i = 0; i < 784; ++i) x[3 * 784 + i] = float(((i / 28) + (i % 28)) % 2);  // a pure checkerboard
  float out[4];
  checkerboard_index(x.data(), 4, out);
  CHECK(out[0] == doctest::Approx(3.0 / 783.0).epsilon(1e-6));
  CHECK(out[1] == doctest::Approx(4.0 / 1564.0).epsilon(1e-6));
  CHECK(out[2] == 0.f);
  CHECK(out[3] == doctest::Approx(1.0).epsilon(1e-6));

  // tests/reference/make_checkerboard.py: the same index from the 2-D FFT's power spectrum.
  const SafeTensors st = read_safetensors(std::string(AEP_TEST_DIR) + "/reference/checkerboard.safetensors");
  REQUIRE_MESSAGE((st.find("images") && st.find("index")),
                  "checkerboard.safetensors lacks images/index (regenerate: /usr/bin/python3 tests/reference/make_checkerboard.py)");
  const std::vector<float> images = st.find("images")->as_f32(), want = st.find("index")->as_f32();
  REQUIRE(images.size() == want.size() * 784);
  std::vector<float> got(want.size());
  checkerboard_index(images.data(), want.size(), got.data());
  expect_near("checkerboard index vs numpy FFT", got.data(), want.data(), got.size());
}

TEST_CASE("instrument_values: the named numbers that apply to each model") {
  const Dataset train = labelled_blocks(300, 2), test = labelled_blocks(120, 3);
  Model ae(load_preset("contractive"));
  ae.init(1);
  InstrumentOptions o;
  json v = instrument_values(ae, test, nullptr, o);
  CHECK(v.at("codeSize") == 64);
  CHECK(v.contains("sparsity"));
  CHECK(v.contains("meanAbsCode"));
  CHECK(v.contains("jacobianNorm"));
  CHECK_FALSE(v.contains("activeUnits"));  // not a VAE
  CHECK_FALSE(v.contains("probe"));
  // The mean Jacobian norm over the first 20 digits is the contractive penalty's value (weight 1).
  o.jacobian_images = 20;
  v = instrument_values(ae, test, nullptr, o);
  {
    std::vector<uint32_t> idx(20);
    std::iota(idx.begin(), idx.end(), 0u);
    Tensor x;
    fill_batch(test, idx.data(), 20, Normalization::ZeroOne, x);
    const Tensor h = ae.encode(x);
    Linear& lin = ae.contractive_layer();
    const double penalty = contractive_penalty(h.data(), lin.params[0].value, 20, lin.out_features, lin.in_features,
                                               1.f, nullptr, nullptr);
    CHECK(v.at("jacobianNorm").get<double>() == doctest::Approx(penalty).epsilon(1e-5));
  }
  o.jacobian_max_code = 10;  // too large a code: skipped unless forced
  CHECK_FALSE(instrument_values(ae, test, nullptr, o).contains("jacobianNorm"));
  o.force_jacobian = true;
  CHECK(instrument_values(ae, test, nullptr, o).contains("jacobianNorm"));

  Model vae(load_preset("vae-mlp"));
  vae.init(2);
  o = InstrumentOptions{};
  o.test_images = 50;
  o.probe_labels = {20, 50};
  ProbeSettings ps;
  ps.steps = 10;
  ps.pca_fit_images = 100;
  ps.knn_test_images = 30;
  CHECK_THROWS_WITH(instrument_values(vae, test, nullptr, o, &ps), "the probe needs a labelled training set");
  v = instrument_values(vae, test, &train, o, &ps);
  CHECK(v.at("codeSize") == 2);
  CHECK(v.at("klPerDim").size() == 2);
  CHECK(v.at("latentVariance").size() == 2);
  CHECK(v.at("klTotal").get<double>() ==
        doctest::Approx(v["klPerDim"][0].get<double>() + v["klPerDim"][1].get<double>()));
  CHECK(v.at("activeUnits").get<size_t>() <= 2);
  REQUIRE(v.at("probe").size() == 2);
  CHECK(v["probe"][0]["labels"] == 20);
  CHECK(v["probe"][1]["labels"] == 50);
  CHECK(v["probe"][0]["code"]["dims"] == 2);
  CHECK(v["probe"][0]["pixels"]["dims"] == 100);  // 784 pixels -> PCA, capped by the 100 images it is fitted on
  CHECK(v["probe"][0]["pca"]["dims"] == 2);       // the PCA baseline has the code's size
  for (const char* key : {"probeLabels", "probeAccuracy", "probeKnnAccuracy", "probePixelsAccuracy",
                          "probePixelsKnnAccuracy", "probePcaAccuracy", "probePcaKnnAccuracy"})
    CHECK_MESSAGE(v.contains(key), key);
  CHECK(v.at("probeAccuracy") == v["probe"][0]["code"]["softmax"]);
  const Dataset unlabelled = labelled_blocks(100, 1, false);
  CHECK_THROWS_WITH(instrument_values(vae, test, &unlabelled, o, &ps),
                    "the probe needs labels, and 'blocks' has none (images without labels can be reconstructed and "
                    "scored, not probed)");
}

TEST_CASE("foreign data: compare_errors by hand; reconstruction_errors per image, in any range; image_set checks") {
  // Binary-exact errors: bins of 0.25 over [0, 1], the largest error (1.0) in the last bin.
  const ErrorComparison c = compare_errors({0.125f, 0.25f, 0.375f, 0.5f}, {0.5f, 1.f}, 4);
  CHECK(c.test_count == 4);
  CHECK(c.foreign_count == 2);
  CHECK(c.hi == 1.0);
  CHECK(c.test_hist == std::vector<size_t>{1, 2, 1, 0});
  CHECK(c.foreign_hist == std::vector<size_t>{0, 0, 1, 1});
  CHECK(c.test_mean == 0.3125);
  CHECK(c.foreign_mean == 0.75);
  CHECK(c.ratio == doctest::Approx(2.4).epsilon(1e-12));
  CHECK(c.auc == 7.5 / 8);  // 0.5 beats three test errors and ties one; 1.0 beats all four
  const ErrorComparison zero = compare_errors({0.f, 0.f}, {0.f}, 3);
  CHECK(zero.test_hist == std::vector<size_t>{2, 0, 0});
  CHECK(zero.ratio == 1.0);
  CHECK_THROWS_WITH(compare_errors({}, {0.1f}), "comparing errors needs test and foreign errors");
  CHECK_THROWS_WITH(compare_errors({0.1f}, {-0.1f}), doctest::Contains("errors are finite and >= 0"));
  CHECK_THROWS_WITH(compare_errors({NAN}, {0.1f}), doctest::Contains("errors are finite and >= 0"));
  CHECK_THROWS_WITH(compare_errors({0.1f}, {0.1f}, 0), "comparing errors needs at least one histogram bin");

  // reconstruction_errors: each image's MSE against its clean input, the same whatever range it is asked in.
  const Dataset d = labelled_blocks(130, 4);
  Model m(load_preset("conv"));
  m.init(3);
  std::vector<uint32_t> idx(130);
  std::iota(idx.begin(), idx.end(), 0u);
  Tensor x;
  fill_batch(d, idx.data(), 130, m.preset().normalize, x);
  const Tensor y = m.reconstruct(x);
  std::vector<float> want(130), all(130), part(17);
  per_image_mse(y.data(), x.data(), 130, want.data());
  reconstruction_errors(m, d, 0, 130, all.data());
  reconstruction_errors(m, d, 90, 107, part.data());
  for (size_t i = 0; i < 130; ++i) CHECK(all[i] == doctest::Approx(want[i]).epsilon(1e-6));
  for (size_t i = 0; i < 17; ++i) CHECK(part[i] == all[90 + i]);
  CHECK(all[0] > 0);
  CHECK_THROWS_WITH(reconstruction_errors(m, d, 120, 131, part.data()), doctest::Contains("holds 130"));

  IdxImages im;
  im.count = 2, im.rows = 32, im.cols = 32;
  im.pixels.assign(2 * 32 * 32, 0);
  CHECK_THROWS_WITH(image_set(im, "big.idx"), "big.idx: images are 32x32; the models expect 28x28");
  im.count = 0, im.rows = im.cols = 28;
  im.pixels.clear();
  CHECK_THROWS_WITH(image_set(im, "empty.idx"), "empty.idx: holds no images");
  im.count = 1;
  im.pixels.assign(784, 7);
  const Dataset one = image_set(im, "one.idx");
  CHECK(one.count == 1);
  CHECK(one.labels.empty());
  CHECK(one.name == "one.idx");
}
