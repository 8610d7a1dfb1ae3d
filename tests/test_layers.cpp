// Layer tests: a numerical gradient check for every layer (train and eval mode where they differ), a
// hand-computed forward case for each, and the GEMM kernels (deterministic and fast mode) against their reference in
// every transpose mode.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "core/gemm.hpp"
#include "core/mathfn.hpp"
#include "test_util.hpp"

using namespace aep;
using namespace aep::test;
using nlohmann::json;

namespace {

// gemm and gemm_transposed_c on the current path (gemm_path()) against the reference, for every transpose mode.
void check_gemm_against_reference() {
  Rng rng(7);
  // {4, 16, 8} and {16, 200, 600} take the transposed form inside gemm (few rows, wide B).
  const size_t sizes[][3] = {{1, 1, 1},      {3, 5, 7},      {4, 16, 8}, {17, 33, 9}, {64, 784, 32},
                             {130, 70, 300}, {5, 2, 513}, {16, 200, 600}};
  for (auto& s : sizes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        size_t M = s[0], N = s[1], K = s[2];
        std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
        for (float& v : A) v = rng.uniform(-1, 1);
        for (float& v : B) v = rng.uniform(-1, 1);
        for (size_t i = 0; i < C.size(); ++i) C[i] = R[i] = rng.uniform(-1, 1);
        std::vector<float> CT(N * M);  // C stored transposed, for gemm_transposed_c
        for (size_t i = 0; i < M; ++i)
          for (size_t j = 0; j < N; ++j) CT[j * M + i] = C[i * N + j];
        size_t lda = ta ? M : K, ldb = tb ? K : N;
        gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C.data(), N);
        gemm_transposed_c(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, CT.data(), M);
        size_t differ = 0;  // the same sums in the same order: bit-identical, not merely close
        for (size_t i = 0; i < M; ++i)
          for (size_t j = 0; j < N; ++j) differ += CT[j * M + i] != C[i * N + j];
        CHECK(differ == 0);
        gemm_reference(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, R.data(), N);
        double worst = 0;
        for (size_t i = 0; i < C.size(); ++i) worst = std::max(worst, double(std::fabs(C[i] - R[i])));
        INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
        CHECK(worst < 1e-4 * std::sqrt(double(K)));
        // beta = 0 writes C without reading it (NaN there is ignored) and gives the bits of a sum onto zeros.
        std::vector<float> Z(M * N, 0.f), G(M * N, std::nanf("")), GT(N * M, std::nanf(""));
        gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 1.f, Z.data(), N);
        gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.f, G.data(), N);
        gemm_transposed_c(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.f, GT.data(), M);
        differ = 0;
        for (size_t i = 0; i < M; ++i)
          for (size_t j = 0; j < N; ++j)
            differ += std::memcmp(&G[i * N + j], &Z[i * N + j], 4) != 0 || std::memcmp(&GT[j * M + i], &Z[i * N + j], 4) != 0;
        CHECK(differ == 0);
      }
}

// Puts the deterministic path back when a test case ends, failed checks included.
struct DeterministicAfter {
  ~DeterministicAfter() { set_gemm_path(GemmPath::Deterministic); }
};

}  // namespace

TEST_CASE("gemm matches the reference for every transpose mode and awkward sizes") {
  REQUIRE(gemm_path() == GemmPath::Deterministic);
  check_gemm_against_reference();
}

// Fast mode: each fused path this CPU has (an AVX-512 machine runs both) is held to the deterministic kernel's
// tolerance against the reference, |C - R| < 1e-4 sqrt(K) for values in [-1, 1], and keeps gemm and
// gemm_transposed_c bit-identical. It must really run: its rounding differs from the deterministic kernel's.
TEST_CASE("fast-mode GEMM: every path the CPU has matches the reference; paths it lacks are refused") {
  DeterministicAfter restore;
  const std::vector<GemmPath> have = gemm_fast_paths();
  std::string names;
  for (GemmPath p : have) names += std::string(" ") + gemm_path_name(p);
  MESSAGE("fast GEMM paths on this machine:" << (have.empty() ? " none" : names));
  for (GemmPath p : {GemmPath::Avx2Fma, GemmPath::Avx512}) {
    if (std::find(have.begin(), have.end(), p) == have.end()) {
      CHECK_THROWS_AS(set_gemm_path(p), std::runtime_error);
      continue;
    }
    INFO("path " << gemm_path_name(p));
    set_gemm_path(p);
    CHECK(fast_mode());
    check_gemm_against_reference();
    const size_t M = 130, N = 70, K = 300;
    Rng rng(3);
    std::vector<float> A(M * K), B(K * N), fast(M * N), exact(M * N);
    for (float& v : A) v = rng.uniform(-1, 1);
    for (float& v : B) v = rng.uniform(-1, 1);
    gemm(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, fast.data(), N);
    set_gemm_path(GemmPath::Deterministic);
    gemm(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, exact.data(), N);
    CHECK(fast != exact);
  }
#ifdef __EMSCRIPTEN__
  CHECK(have.empty());  // no FMA in WebAssembly with this toolchain
#endif
  if (have.empty()) {
    CHECK_THROWS_AS(set_fast_mode(true), std::runtime_error);
    CHECK(!fast_mode());
    return;
  }
  // AEP_GEMM_PATH picks among them; a name that is no path is an error, not a silent default.
  setenv("AEP_GEMM_PATH", gemm_path_name(have.back()), 1);
  set_fast_mode(true);
  CHECK(gemm_path() == have.back());
  setenv("AEP_GEMM_PATH", "avx1024", 1);
  CHECK_THROWS_WITH(set_fast_mode(true), "AEP_GEMM_PATH: expected avx2+fma or avx512, got 'avx1024'");
  unsetenv("AEP_GEMM_PATH");
  set_fast_mode(true);
  CHECK(gemm_path() == have.front());
  set_fast_mode(false);
  CHECK(gemm_path() == GemmPath::Deterministic);
}

TEST_CASE("gemm with beta = 0 ignores NaN already in C") {
  std::vector<float> A = {1, 2}, B = {3, 4}, C = {std::nanf("")};
  gemm(false, false, 1, 1, 2, 1.f, A.data(), 2, B.data(), 1, 0.f, C.data(), 1);
  CHECK(C[0] == doctest::Approx(11.f));
}

namespace {

struct GradCase {
  const char* name;
  json spec;
  Shape input;
  bool training;
};

// Inputs for which finite differences are valid: ReLU-like kinks are avoided by keeping |x| >= 0.1 and
// MaxPool ties by spreading distinct values 0.01 apart.
Tensor kink_free_input(const Shape& s, Rng& rng) {
  Tensor x(s);
  std::vector<uint32_t> perm(x.size());
  std::iota(perm.begin(), perm.end(), 0u);
  rng.shuffle(perm);
  for (size_t i = 0; i < x.size(); ++i) {
    float v = -1.f + 2.f * float(perm[i]) / float(x.size());
    x.data()[i] = v + (v >= 0 ? 0.1f : -0.1f);
  }
  return x;
}

}  // namespace

TEST_CASE("every layer passes a numerical gradient check") {
  const std::vector<GradCase> cases = {
      {"Linear", {{"type", "Linear"}, {"in_features", 6}, {"out_features", 4}}, {3, 6, 1, 1}, true},
      {"Linear no bias", {{"type", "Linear"}, {"in_features", 5}, {"out_features", 3}, {"bias", false}}, {2, 5, 1, 1}, true},
      {"Conv2d k3 p1", {{"type", "Conv2d"}, {"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 3}, {"padding", 1}}, {2, 2, 5, 5}, true},
      {"Conv2d k3 s2 p1", {{"type", "Conv2d"}, {"in_channels", 2}, {"out_channels", 2}, {"kernel_size", 3}, {"stride", 2}, {"padding", 1}}, {2, 2, 7, 6}, true},
      {"Conv2d k2 no bias", {{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 2}, {"kernel_size", 2}, {"bias", false}}, {2, 1, 4, 4}, true},
      {"ConvTranspose2d k2 s2", {{"type", "ConvTranspose2d"}, {"in_channels", 3}, {"out_channels", 2}, {"kernel_size", 2}, {"stride", 2}}, {2, 3, 3, 3}, true},
      {"ConvTranspose2d k2 s2 wide rows", {{"type", "ConvTranspose2d"}, {"in_channels", 2}, {"out_channels", 2}, {"kernel_size", 2}, {"stride", 2}}, {1, 2, 2, 6}, true},
      {"ConvTranspose2d k3 s2 p1 op1", {{"type", "ConvTranspose2d"}, {"in_channels", 2}, {"out_channels", 2}, {"kernel_size", 3}, {"stride", 2}, {"padding", 1}, {"output_padding", 1}}, {2, 2, 3, 4}, true},
      {"ConvTranspose2d k3 s1 p1", {{"type", "ConvTranspose2d"}, {"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 3}, {"padding", 1}}, {1, 2, 4, 4}, true},
      {"MaxPool2d 2", {{"type", "MaxPool2d"}, {"kernel_size", 2}}, {2, 2, 4, 6}, true},
      {"MaxPool2d 3 s2", {{"type", "MaxPool2d"}, {"kernel_size", 3}, {"stride", 2}}, {1, 2, 7, 7}, true},
      {"MaxPool2d 2 odd sizes", {{"type", "MaxPool2d"}, {"kernel_size", 2}}, {2, 2, 5, 7}, true},
      {"MaxPool2d 3 s3", {{"type", "MaxPool2d"}, {"kernel_size", 3}}, {1, 2, 7, 8}, true},
      {"Upsample 2", {{"type", "Upsample"}, {"scale_factor", 2}}, {2, 2, 3, 3}, true},
      {"Upsample 2 wide rows (vectors and a tail)", {{"type", "Upsample"}, {"scale_factor", 2}}, {1, 2, 2, 9}, true},
      {"Upsample 3", {{"type", "Upsample"}, {"scale_factor", 3}}, {1, 2, 2, 3}, true},
      {"BatchNorm1d train", {{"type", "BatchNorm1d"}, {"num_features", 4}}, {5, 4, 1, 1}, true},
      {"BatchNorm1d eval", {{"type", "BatchNorm1d"}, {"num_features", 4}}, {5, 4, 1, 1}, false},
      {"BatchNorm2d train", {{"type", "BatchNorm2d"}, {"num_features", 3}}, {2, 3, 3, 3}, true},
      {"BatchNorm2d eval", {{"type", "BatchNorm2d"}, {"num_features", 3}}, {2, 3, 3, 3}, false},
      {"Dropout train", {{"type", "Dropout"}, {"p", 0.3}}, {3, 8, 1, 1}, true},
      {"Dropout eval", {{"type", "Dropout"}, {"p", 0.3}}, {3, 8, 1, 1}, false},
      {"ReLU", {{"type", "ReLU"}}, {2, 3, 2, 2}, true},
      {"LeakyReLU", {{"type", "LeakyReLU"}, {"negative_slope", 0.2}}, {2, 3, 2, 2}, true},
      {"Sigmoid", {{"type", "Sigmoid"}}, {2, 9, 1, 1}, true},
      {"Tanh", {{"type", "Tanh"}}, {2, 9, 1, 1}, true},
      {"Flatten", {{"type", "Flatten"}}, {2, 2, 3, 3}, true},
      {"Unflatten", {{"type", "Unflatten"}, {"unflattened_size", {2, 2, 3}}}, {2, 12, 1, 1}, true},
  };
  for (const GradCase& c : cases) {
    SUBCASE(c.name) {
      Rng init(11);
      BoundLayer b(c.spec, &init);
      // Non-trivial running statistics so eval mode is not the identity.
      for (auto& buf : b.buffers)
        for (float& v : buf) v = 0.5f + init.uniform();
      Tensor x = kink_free_input(c.input, init);
      Shape out_shape = b.layer->output_shape(c.input);
      Tensor r = random_tensor(out_shape, init);  // loss = sum(y * r), so dy = r
      Rng drop(5);
      Tensor y, dx;
      auto loss = [&]() {
        drop.reseed(5);  // the same Dropout mask on every evaluation
        RunContext ctx{c.training, &drop};
        b.layer->forward(x, y, ctx);
        double s = 0;
        for (size_t i = 0; i < y.size(); ++i) s += double(y.data()[i]) * r.data()[i];
        return s;
      };
      loss();
      CHECK(y.shape() == out_shape);
      b.zero_grad();
      b.layer->backward(x, y, r, &dx);
      std::vector<float*> coords;
      std::vector<float> analytic;
      for (size_t i = 0; i < x.size(); i += std::max<size_t>(1, x.size() / 40)) {
        coords.push_back(x.data() + i);
        analytic.push_back(dx.data()[i]);
      }
      for (size_t p = 0; p < b.values.size(); ++p)
        for (size_t i = 0; i < b.values[p].size(); i += std::max<size_t>(1, b.values[p].size() / 25)) {
          coords.push_back(b.values[p].data() + i);
          analytic.push_back(b.grads[p][i]);
        }
      // Relative to the largest component: float32 rounding makes tiny components noisy in absolute terms.
      double scale = 0;
      for (float a : analytic) scale = std::max(scale, double(std::fabs(a)));
      double err = gradient_error(coords, analytic, loss, 1e-3, 2e-2 * std::max(scale, 1e-3));
      INFO(std::string(c.name) << ": worst relative gradient error " << err);
      CHECK(err < 2e-2);

      // Without the input gradient (a model's first layer): the same parameter gradients, bit for bit.
      loss();  // the layer's caches (argmax, mask, batch statistics) of the unperturbed input again
      b.zero_grad();
      b.layer->backward(x, y, r, &dx);
      const std::vector<std::vector<float>> with_dx = b.grads;
      b.zero_grad();
      b.layer->backward(x, y, r, nullptr);
      CHECK(b.grads == with_dx);
    }
  }
}

namespace {
// Overwrites in place: the layer's slots point at this storage.
void assign(std::vector<float>& dst, std::vector<float> v) {
  REQUIRE(dst.size() == v.size());
  std::copy(v.begin(), v.end(), dst.begin());
}
Tensor from(const Shape& s, std::vector<float> v) {
  Tensor t(s);
  REQUIRE(v.size() == t.size());
  std::copy(v.begin(), v.end(), t.begin());
  return t;
}
void check_equal(const Tensor& a, const std::vector<float>& want, float tol = 1e-5f) {
  REQUIRE(a.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(a.data()[i] == doctest::Approx(want[i]).epsilon(tol));
  }
}
Tensor run(BoundLayer& b, const Tensor& x, bool training = false) {
  Tensor y;
  Rng rng(1);
  b.layer->forward(x, y, RunContext{training, &rng});
  return y;
}
}  // namespace

TEST_CASE("hand-computed forward cases") {
  SUBCASE("Linear") {
    BoundLayer b(json{{"type", "Linear"}, {"in_features", 2}, {"out_features", 3}});
    assign(b.values[0], {1, 2, 3, 4, 5, 6});
    assign(b.values[1], {0.5f, -1, 0});
    check_equal(run(b, from({1, 2, 1, 1}, {1, -1})), {-0.5f, -2, -1});
  }
  SUBCASE("Conv2d 2x2 ones, and 3x3 ones with padding 1") {
    BoundLayer b(json{{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 2}, {"bias", false}});
    std::fill(b.values[0].begin(), b.values[0].end(), 1.f);
    check_equal(run(b, from({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})), {12, 16, 24, 28});
    BoundLayer p(json{{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 3}, {"padding", 1}});
    std::fill(p.values[0].begin(), p.values[0].end(), 1.f);
    p.values[1][0] = 1.f;
    check_equal(run(p, from({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})), {13, 22, 17, 28, 46, 34, 25, 40, 29});
  }
  SUBCASE("ConvTranspose2d: stride 2 tiles the kernel, stride 1 overlaps it") {
    BoundLayer b(json{{"type", "ConvTranspose2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 2}, {"stride", 2}, {"bias", false}});
    assign(b.values[0], {1, 0, 0, 1});
    check_equal(run(b, from({1, 1, 2, 2}, {1, 2, 3, 4})), {1, 0, 2, 0, 0, 1, 0, 2, 3, 0, 4, 0, 0, 3, 0, 4});
    BoundLayer o(json{{"type", "ConvTranspose2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 2}, {"bias", false}});
    std::fill(o.values[0].begin(), o.values[0].end(), 1.f);
    check_equal(run(o, from({1, 1, 2, 2}, {1, 2, 3, 4})), {1, 3, 2, 4, 10, 6, 3, 7, 4});
    BoundLayer s(json{{"type", "ConvTranspose2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 3}, {"stride", 2}, {"padding", 1}, {"output_padding", 1}});
    CHECK(s.layer->output_shape({1, 1, 7, 7}) == Shape{1, 1, 14, 14});
  }
  SUBCASE("MaxPool2d") {
    BoundLayer b(json{{"type", "MaxPool2d"}, {"kernel_size", 2}});
    check_equal(run(b, from({1, 1, 4, 4}, {1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 1, 1, -1, 9, 1, 7})), {5, 8, 9, 7});
  }
  SUBCASE("Upsample nearest") {
    BoundLayer b(json{{"type", "Upsample"}, {"scale_factor", 2}});
    check_equal(run(b, from({1, 1, 2, 2}, {1, 2, 3, 4})), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  }
  SUBCASE("BatchNorm1d: batch statistics in training, running statistics in eval") {
    BoundLayer b(json{{"type", "BatchNorm1d"}, {"num_features", 1}});
    float s = 1.f / std::sqrt(1.f + 1e-5f);
    check_equal(run(b, from({2, 1, 1, 1}, {1, 3}), true), {-s, s});
    CHECK(b.buffers[0][0] == doctest::Approx(0.2f));        // 0.9 * 0 + 0.1 * mean 2
    CHECK(b.buffers[1][0] == doctest::Approx(0.9f + 0.2f));  // 0.9 * 1 + 0.1 * unbiased var 2
    CHECK(static_cast<BatchNorm*>(b.layer.get())->num_batches_tracked == 1);
    check_equal(run(b, from({1, 1, 1, 1}, {1.2f}), false), {1.f / std::sqrt(1.1f + 1e-5f)});
  }
  SUBCASE("BatchNorm2d eval uses running statistics per channel") {
    BoundLayer b(json{{"type", "BatchNorm2d"}, {"num_features", 2}});
    assign(b.buffers[0], {1, -1});
    assign(b.buffers[1], {4, 0.25f});
    assign(b.values[0], {2, 1});
    assign(b.values[1], {0, 10});
    Tensor y = run(b, from({1, 2, 1, 2}, {3, 5, 0, -1}));
    check_equal(y, {2 * 2 / std::sqrt(4 + 1e-5f), 2 * 4 / std::sqrt(4 + 1e-5f), 10 + 1 / std::sqrt(0.25f + 1e-5f), 10.f},
                1e-4f);
  }
  SUBCASE("Dropout: identity in eval, zeros or x/(1-p) in training at rate p") {
    BoundLayer b(json{{"type", "Dropout"}, {"p", 0.25}});
    Tensor x(Shape{100, 100, 1, 1});
    std::fill(x.begin(), x.end(), 3.f);
    check_equal(run(b, x, false), std::vector<float>(10000, 3.f));
    Tensor y = run(b, x, true);
    size_t zeros = 0;
    for (float v : y) {
      CHECK((v == 0.f || v == doctest::Approx(4.f)));
      zeros += v == 0.f;
    }
    CHECK(zeros > 2300);
    CHECK(zeros < 2700);
  }
  SUBCASE("activations") {
    Tensor x = from({1, 4, 1, 1}, {-2, -0.5f, 0, 1.5f});
    BoundLayer relu(json{{"type", "ReLU"}}), leaky(json{{"type", "LeakyReLU"}, {"negative_slope", 0.1}});
    BoundLayer sig(json{{"type", "Sigmoid"}}), tanh_(json{{"type", "Tanh"}});
    check_equal(run(relu, x), {0, 0, 0, 1.5f});
    check_equal(run(leaky, x), {-0.2f, -0.05f, 0, 1.5f});
    check_equal(run(sig, x), {0.11920292f, 0.37754067f, 0.5f, 0.81757448f});
    check_equal(run(tanh_, x), {-0.96402758f, -0.46211716f, 0, 0.90514825f});
    // Extreme inputs stay finite and saturate.
    check_equal(run(sig, from({1, 2, 1, 1}, {-200, 200})), {0, 1});
  }
  SUBCASE("Flatten and Unflatten keep memory order") {
    BoundLayer f(json{{"type", "Flatten"}}), u(json{{"type", "Unflatten"}, {"unflattened_size", {2, 1, 2}}});
    Tensor x = from({1, 2, 1, 2}, {1, 2, 3, 4});
    Tensor y = run(f, x);
    CHECK(y.shape() == Shape{1, 4, 1, 1});
    Tensor z = run(u, y);
    CHECK(z.shape() == Shape{1, 2, 1, 2});
    check_equal(z, {1, 2, 3, 4});
  }
}

TEST_CASE("a saturated Sigmoid gives exact zeros, never subnormal floats, forward and backward") {
  // Subnormals cost ~100 cycles per operation natively and in wasm: a saturated output layer slowed the fully-conv
  // preset ~10x. sigmoid(x) is below the smallest normal float for x < -87.3, and dy * y * (1 - y) with MSE's
  // dy ~ 1e-5 underflows from x < -40: both must be 0, and nothing above the flush thresholds may change.
  std::vector<float> xs;
  for (float v = -200.f; v <= 0.f; v += 0.25f) xs.push_back(v);
  const size_t n = xs.size();
  Tensor x = from({1, n, 1, 1}, xs), dy({1, n, 1, 1}), dx;
  std::fill(dy.begin(), dy.end(), 4e-5f);
  BoundLayer sig(json{{"type", "Sigmoid"}});
  Tensor y = run(sig, x);
  sig.layer->backward(x, y, dy, &dx);
  auto subnormal = [](float v) { return v != 0.f && std::fabs(v) < kSmallestNormal; };
  for (size_t i = 0; i < n; ++i) {
    INFO("x = " << xs[i]);
    const double s = 1.0 / (1.0 + std::exp(-double(xs[i]))), ds = 4e-5 * s * (1.0 - s);
    for (float v : {y.data()[i], sigmoid_f32(xs[i])}) {  // the layer's SIMD loop and the scalar form
      CHECK_FALSE(subnormal(v));
      if (v == 0.f)
        CHECK(s < 1.0000001 * kSmallestNormal);
      else
        CHECK(v == doctest::Approx(s).epsilon(1e-5));
    }
    CHECK_FALSE(subnormal(dx.data()[i]));
    if (dx.data()[i] == 0.f)
      CHECK(ds < 1.0001 * kTinyGradient);
    else
      CHECK(dx.data()[i] == doctest::Approx(ds).epsilon(1e-4));
  }
}

TEST_CASE("layer arguments are validated with clear messages") {
  struct Bad {
    json spec;
    const char* message;
  };
  const std::vector<Bad> bad = {
      {{{"type", "Conv3d"}}, "unknown layer type 'Conv3d'"},
      {{{"type", "Linear"}, {"in_features", 4}}, "Linear: missing argument 'out_features'"},
      {{{"type", "Linear"}, {"in_features", 0}, {"out_features", 2}}, "Linear: 'in_features' must be between 1 and"},
      {{{"type", "Linear"}, {"in_features", -3}, {"out_features", 2}}, "'in_features' must be between"},
      {{{"type", "Linear"}, {"in_features", "784"}, {"out_features", 2}}, "'in_features' must be an integer"},
      {{{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 2}, {"kernal_size", 3}}, "missing argument 'kernel_size'"},
      {{{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 2}, {"kernel_size", 3}, {"kernal", 3}}, "unknown argument 'kernal'"},
      {{{"type", "ConvTranspose2d"}, {"in_channels", 1}, {"out_channels", 1}, {"kernel_size", 3}, {"stride", 2}, {"output_padding", 2}}, "'output_padding' must be smaller than 'stride'"},
      {{{"type", "Dropout"}, {"p", 1.0}}, "Dropout: 'p' must be in [0, 1)"},
      {{{"type", "Upsample"}, {"scale_factor", 2}, {"mode", "bilinear"}}, "only mode \"nearest\""},
      {{{"type", "Unflatten"}, {"unflattened_size", {1, 2}}}, "'unflattened_size' must be [channels, height, width]"},
      {json::array(), "a layer must be a JSON object"},
  };
  for (const Bad& b : bad) {
    INFO(b.spec.dump());
    CHECK_THROWS_WITH(make_layer(b.spec), doctest::Contains(b.message));
  }
  SUBCASE("shape mismatches name the problem") {
    BoundLayer lin(json{{"type", "Linear"}, {"in_features", 784}, {"out_features", 2}});
    CHECK_THROWS_WITH(lin.layer->output_shape({1, 1, 28, 28}), doctest::Contains("add a Flatten before it"));
    BoundLayer conv(json{{"type", "Conv2d"}, {"in_channels", 3}, {"out_channels", 2}, {"kernel_size", 3}});
    CHECK_THROWS_WITH(conv.layer->output_shape({1, 1, 28, 28}), doctest::Contains("expects 3 input channels"));
    BoundLayer pool(json{{"type", "MaxPool2d"}, {"kernel_size", 4}});
    CHECK_THROWS_WITH(pool.layer->output_shape({1, 1, 3, 3}), doctest::Contains("larger than"));
  }
}
