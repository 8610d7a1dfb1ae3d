// Fast kernels against plain reference loops (double accumulation): the direct stride-1 convolution, the
// fixed-lane dot product, the 2x2 pooling and row (de)interleaving kernels, Conv2d / ConvTranspose2d layers on the shapes that take the direct paths, and the
// optimizer's check-before-commit step.
#include <cmath>
#include <doctest/doctest.h>

#include <cfloat>
#include <cstring>

#include "core/conv_kernels.hpp"
#include "core/optim.hpp"
#include "test_util.hpp"

using namespace aep;
using namespace aep::test;
using nlohmann::json;

namespace {

double worst_diff(const float* a, const std::vector<double>& ref) {
  double w = 0;
  for (size_t i = 0; i < ref.size(); ++i) w = std::max(w, std::fabs(double(a[i]) - ref[i]) / std::max(1.0, std::fabs(ref[i])));
  return w;
}

// y = conv(x, W) + bias with PyTorch's Conv2d semantics; also dx, dW, db for a given dy.
struct ConvRef {
  std::vector<double> y, dx, dW, db;
};
ConvRef conv2d_reference(const Tensor& x, const float* W, const float* bias, const Tensor& dy, size_t Cout, size_t k,
                         size_t s, size_t p) {
  const size_t B = x.shape()[0], Cin = x.shape()[1], H = x.shape()[2], Wd = x.shape()[3];
  const size_t OH = (H + 2 * p - k) / s + 1, OW = (Wd + 2 * p - k) / s + 1;
  ConvRef r{std::vector<double>(B * Cout * OH * OW), std::vector<double>(x.size()), std::vector<double>(Cout * Cin * k * k),
            std::vector<double>(Cout)};
  for (size_t b = 0; b < B; ++b)
    for (size_t co = 0; co < Cout; ++co)
      for (size_t oh = 0; oh < OH; ++oh)
        for (size_t ow = 0; ow < OW; ++ow) {
          size_t yi = ((b * Cout + co) * OH + oh) * OW + ow;
          double acc = bias[co], g = dy.data()[yi];
          r.db[co] += g;
          for (size_t ci = 0; ci < Cin; ++ci)
            for (size_t ki = 0; ki < k; ++ki)
              for (size_t kj = 0; kj < k; ++kj) {
                long ih = long(oh * s + ki) - long(p), iw = long(ow * s + kj) - long(p);
                if (ih < 0 || iw < 0 || ih >= long(H) || iw >= long(Wd)) continue;
                size_t xi = ((b * Cin + ci) * H + size_t(ih)) * Wd + size_t(iw), wi = ((co * Cin + ci) * k + ki) * k + kj;
                acc += double(W[wi]) * x.data()[xi];
                r.dx[xi] += double(W[wi]) * g;
                r.dW[wi] += double(x.data()[xi]) * g;
              }
          r.y[yi] = acc;
        }
  return r;
}

// PyTorch's ConvTranspose2d (W: [Cin, Cout, k, k]), output_padding 0.
ConvRef conv_transpose2d_reference(const Tensor& x, const float* W, const float* bias, const Tensor& dy, size_t Cout,
                                   size_t k, size_t s, size_t p) {
  const size_t B = x.shape()[0], Cin = x.shape()[1], H = x.shape()[2], Wd = x.shape()[3];
  const size_t OH = (H - 1) * s + k - 2 * p, OW = (Wd - 1) * s + k - 2 * p;
  ConvRef r{std::vector<double>(B * Cout * OH * OW), std::vector<double>(x.size()), std::vector<double>(Cin * Cout * k * k),
            std::vector<double>(Cout)};
  for (size_t b = 0; b < B; ++b)
    for (size_t co = 0; co < Cout; ++co)
      for (size_t i = 0; i < OH * OW; ++i) {
        r.y[(b * Cout + co) * OH * OW + i] = bias[co];
        r.db[co] += dy.data()[(b * Cout + co) * OH * OW + i];
      }
  for (size_t b = 0; b < B; ++b)
    for (size_t ci = 0; ci < Cin; ++ci)
      for (size_t ih = 0; ih < H; ++ih)
        for (size_t iw = 0; iw < Wd; ++iw)
          for (size_t co = 0; co < Cout; ++co)
            for (size_t ki = 0; ki < k; ++ki)
              for (size_t kj = 0; kj < k; ++kj) {
                long oh = long(ih * s + ki) - long(p), ow = long(iw * s + kj) - long(p);
                if (oh < 0 || ow < 0 || oh >= long(OH) || ow >= long(OW)) continue;
                size_t xi = ((b * Cin + ci) * H + ih) * Wd + iw, wi = ((ci * Cout + co) * k + ki) * k + kj;
                size_t yi = ((b * Cout + co) * OH + size_t(oh)) * OW + size_t(ow);
                r.y[yi] += double(W[wi]) * x.data()[xi];
                r.dx[xi] += double(W[wi]) * dy.data()[yi];
                r.dW[wi] += double(x.data()[xi]) * dy.data()[yi];
              }
  return r;
}

void check_layer(const json& spec, const Shape& in, bool transposed) {
  Rng rng(11);
  BoundLayer L(spec, &rng);
  Tensor x = random_tensor(in, rng), y, dx;
  RunContext ctx;
  L.layer->forward(x, y, ctx);
  Tensor dy = random_tensor(y.shape(), rng);
  L.layer->backward(x, y, dy, &dx);
  size_t Cout = spec.at("out_channels"), k = spec.at("kernel_size");
  size_t s = spec.value("stride", 1), p = spec.value("padding", 0);
  ConvRef r = transposed ? conv_transpose2d_reference(x, L.values[0].data(), L.values[1].data(), dy, Cout, k, s, p)
                         : conv2d_reference(x, L.values[0].data(), L.values[1].data(), dy, Cout, k, s, p);
  INFO(spec.dump() << " on " << shape_str(in));
  REQUIRE(y.size() == r.y.size());
  CHECK(worst_diff(y.data(), r.y) < 1e-5);
  CHECK(worst_diff(dx.data(), r.dx) < 1e-5);
  CHECK(worst_diff(L.grads[0].data(), r.dW) < 1e-4);
  CHECK(worst_diff(L.grads[1].data(), r.db) < 1e-4);
  // Without the input gradient: the same parameter gradients, bit for bit.
  const std::vector<std::vector<float>> with_dx = L.grads;
  L.zero_grad();
  L.layer->backward(x, y, dy, nullptr);
  CHECK(L.grads == with_dx);
}

}  // namespace

TEST_CASE("conv_s1_flat matches a plain convolution on the padded grid") {
  Rng rng(3);
  const size_t cases[][5] = {{1, 16, 3, 30, 30}, {16, 4, 3, 16, 16}, {3, 5, 2, 7, 9}, {2, 1, 5, 9, 8}, {4, 6, 1, 5, 5}};
  for (auto& c : cases) {
    size_t Cin = c[0], Cout = c[1], k = c[2], Hp = c[3], Wp = c[4];
    FlatConv g = flat_conv(Hp, Wp, k);
    std::vector<float> in(Cin * g.in_plane, 0.f), w(Cin * k * k * Cout), out(Cout * g.out_plane);
    for (size_t ci = 0; ci < Cin; ++ci)
      for (size_t i = 0; i < Hp * Wp; ++i) in[ci * g.in_plane + i] = rng.uniform(-1, 1);
    for (float& v : w) v = rng.uniform(-1, 1);
    conv_s1_flat(in.data(), Cin, w.data(), Cout, g, out.data());
    double worst = 0;
    for (size_t co = 0; co < Cout; ++co)
      for (size_t oh = 0; oh < g.OH; ++oh)
        for (size_t ow = 0; ow < g.OW; ++ow) {
          double acc = 0;
          for (size_t ci = 0; ci < Cin; ++ci)
            for (size_t ki = 0; ki < k; ++ki)
              for (size_t kj = 0; kj < k; ++kj)
                acc += double(w[((ci * k + ki) * k + kj) * Cout + co]) * in[ci * g.in_plane + (oh + ki) * Wp + ow + kj];
          worst = std::max(worst, std::fabs(acc - out[co * g.out_plane + oh * Wp + ow]));
        }
    INFO("Cin=" << Cin << " Cout=" << Cout << " k=" << k << " " << Hp << "x" << Wp);
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("dot16 matches a double-precision dot product") {
  Rng rng(4);
  for (size_t n : {16, 32, 784, 1024}) {
    std::vector<float> a(n), b(n);
    double ref = 0;
    for (size_t i = 0; i < n; ++i) {
      a[i] = rng.uniform(-1, 1);
      b[i] = rng.uniform(-1, 1);
      ref += double(a[i]) * b[i];
    }
    CHECK(std::fabs(dot16(a.data(), b.data(), n) - ref) < 1e-5 * std::sqrt(double(n)));
  }
}

TEST_CASE("dot16_lanes + add_lanes add exactly dot16 of each plane and shifted or strided operand, and lanes carry over") {
  Rng rng(5);
  struct Case {
    size_t b_step, count, n;
  };
  for (size_t A : {1, 2, 5}) {  // planes of a (tiles of 3 or 4 planes and the rest)
    for (Case k : {Case{1, 3, 32}, Case{1, 2, 784}, Case{1, 7, 224}, Case{240, 64, 240}, Case{48, 4, 48},
                   Case{16, 1, 16}, Case{3, 9, 64}, Case{5, 22, 32}}) {
      const size_t stride = k.n + 16, dots = A * k.count;  // planes apart by more than n
      std::vector<float> a(A * stride), b((k.count - 1) * k.b_step + k.n), out(dots), want(dots);
      for (float& v : a) v = rng.uniform(-1, 1);
      for (float& v : b) v = rng.uniform(-1, 1);
      for (size_t d = 0; d < dots; ++d) out[d] = want[d] = rng.uniform(-1, 1);
      std::vector<size_t> offsets(k.count);
      for (size_t j = 0; j < k.count; ++j) offsets[j] = j * k.b_step;
      std::vector<float> lanes(16 * dots, 0.f);
      dot16_lanes(a.data(), stride, A, b.data(), offsets.data(), k.count, k.n, lanes.data());
      add_lanes(lanes.data(), dots, out.data());
      for (size_t p = 0; p < A; ++p)
        for (size_t j = 0; j < k.count; ++j)
          want[p * k.count + j] += dot16(a.data() + p * stride, b.data() + j * k.b_step, k.n);
      INFO("A=" << A << " b_step=" << k.b_step << " count=" << k.count << " n=" << k.n);
      CHECK(out == want);  // bit-identical: one sample's dots
      // Two calls into the same lanes (two samples of a batch) sum the concatenated operands lane by lane.
      std::fill(lanes.begin(), lanes.end(), 0.f);
      dot16_lanes(a.data(), stride, A, b.data(), offsets.data(), k.count, k.n, lanes.data());
      dot16_lanes(a.data(), stride, A, b.data(), offsets.data(), k.count, k.n, lanes.data());
      std::vector<float> twice(dots, 0.f);
      add_lanes(lanes.data(), dots, twice.data());
      for (size_t p = 0; p < A; ++p)
        for (size_t j = 0; j < k.count; ++j) {
          double ref = 0;
          for (size_t i = 0; i < k.n; ++i) ref += 2.0 * a[p * stride + i] * b[j * k.b_step + i];
          CHECK(std::fabs(twice[p * k.count + j] - ref) < 1e-5 * std::sqrt(double(k.n)));
        }
    }
  }
}

TEST_CASE("sum16 matches a double-precision sum, tails included") {
  Rng rng(6);
  for (size_t n : {1, 5, 16, 17, 196, 784}) {
    std::vector<float> x(n);
    double ref = 0;
    for (float& v : x) ref += v = rng.uniform(-1, 1);
    CHECK(std::fabs(sum16(x.data(), n) - ref) < 1e-5 * std::sqrt(double(n)));
  }
}

TEST_CASE("MaxPool2d 2x2 matches a reference: ties keep the first, NaN propagates (the last NaN in a window)") {
  Rng rng(8);
  BoundLayer L(json{{"type", "MaxPool2d"}, {"kernel_size", 2}});
  Tensor x = random_tensor({2, 3, 5, 7}, rng), y, dx;
  for (size_t i = 0; i < x.size(); i += 5) x.data()[i] = x.data()[i + 1];  // ties
  x.data()[1] = std::nanf("");  // window (0, 0) of the first plane holds indices 0, 1, 7, 8: two NaNs
  x.data()[8] = std::nanf("");
  x.data()[40] = std::nanf("");
  L.layer->forward(x, y, RunContext{});
  Tensor dy = random_tensor(y.shape(), rng);
  L.layer->backward(x, y, dy, &dx);
  std::vector<double> ry(y.size()), rdx(x.size(), 0.0);
  for (size_t bc = 0; bc < 6; ++bc)
    for (size_t oh = 0; oh < 2; ++oh)
      for (size_t ow = 0; ow < 3; ++ow) {
        size_t best = bc * 35 + 2 * oh * 7 + 2 * ow;
        for (size_t i = 0; i < 2; ++i)
          for (size_t j = 0; j < 2; ++j) {
            size_t idx = bc * 35 + (2 * oh + i) * 7 + 2 * ow + j;
            float v = x.data()[idx], m = x.data()[best];
            if (v > m || std::isnan(v)) best = idx;
          }
        ry[bc * 6 + oh * 3 + ow] = x.data()[best];
        rdx[best] += dy.data()[bc * 6 + oh * 3 + ow];
      }
  for (size_t i = 0; i < y.size(); ++i) {
    INFO("output " << i);
    CHECK((std::isnan(ry[i]) ? std::isnan(y.data()[i]) : double(y.data()[i]) == ry[i]));
  }
  CHECK(worst_diff(dx.data(), rdx) == 0.0);
}

// Widths 1 to 11 take the scalar path (< 4 windows or pairs), whole vectors, and vectors with an overlapping last step.
TEST_CASE("max_pool_2x2 and relu_max_unpool_2x2 match scalar loops: first maximum, last NaN, every path") {
  Rng rng(12);
  for (size_t PW = 1; PW <= 11; ++PW) {
    const size_t PH = 3, stride = 2 * PW + 3;
    std::vector<float> plane(2 * PH * stride), out(PH * PW), grad(PH * PW);
    for (float& v : plane) v = rng.uniform() < 0.4f ? 0.f : rng.uniform(-1, 1);  // zeros tie
    for (size_t i = 0; i + 1 < plane.size(); i += 7) plane[i] = plane[i + 1];     // more ties
    for (size_t i = 3; i < plane.size(); i += 11) plane[i] = std::nanf("");
    for (float& v : grad) v = rng.uniform(-1, 1);
    grad[0] = -0.f;
    std::vector<int32_t> where(PH * PW);
    max_pool_2x2(plane.data(), stride, PH, PW, out.data(), where.data());
    std::vector<float> unpooled(plane.size(), 7.f);  // places outside the windows must keep 7
    relu_max_unpool_2x2(out.data(), grad.data(), where.data(), PH, PW, unpooled.data(), stride);
    for (size_t ph = 0; ph < PH; ++ph)
      for (size_t pw = 0; pw < PW; ++pw) {
        const size_t place[4] = {2 * ph * stride + 2 * pw, 2 * ph * stride + 2 * pw + 1, (2 * ph + 1) * stride + 2 * pw,
                                 (2 * ph + 1) * stride + 2 * pw + 1};
        int32_t best = 0;
        for (int32_t j = 1; j < 4; ++j) {
          const float v = plane[place[j]], m = plane[place[best]];
          if (v > m || std::isnan(v)) best = j;
        }
        const size_t o = ph * PW + pw;
        INFO("PW=" << PW << " window " << ph << "," << pw);
        CHECK(where[o] == best);
        const float m = plane[place[best]];
        CHECK((std::isnan(m) ? std::isnan(out[o]) : out[o] == m));
        const float v = out[o] > 0.f ? 0.f + grad[o] : 0.f;
        for (int32_t j = 0; j < 4; ++j) {
          const float want = j == best ? v : 0.f;
          CHECK(std::memcmp(&unpooled[place[j]], &want, sizeof want) == 0);  // bits: +0, never -0
          unpooled[place[j]] = 7.f;
        }
      }
    for (float u : unpooled) CHECK(u == 7.f);
  }
}

TEST_CASE("interleave2, deinterleave2, repeat2 and add_pairs2 match scalar loops for every width") {
  Rng rng(13);
  for (size_t n = 1; n <= 11; ++n) {
    std::vector<float> even(n), odd(n), woven(2 * n + 1, 9.f), e2(n), o2(n), rep(2 * n + 1, 9.f), acc(n), acc0(n);
    for (size_t j = 0; j < n; ++j) even[j] = rng.uniform(-1, 1), odd[j] = rng.uniform(-1, 1), acc[j] = acc0[j] = rng.uniform(-1, 1);
    interleave2(even.data(), odd.data(), n, 0.25f, woven.data());
    deinterleave2(woven.data(), n, e2.data(), o2.data());
    repeat2(even.data(), n, rep.data());
    add_pairs2(woven.data(), n, acc.data());
    INFO("n=" << n);
    for (size_t j = 0; j < n; ++j) {
      CHECK(woven[2 * j] == even[j] + 0.25f);
      CHECK(woven[2 * j + 1] == odd[j] + 0.25f);
      CHECK(e2[j] == woven[2 * j]);
      CHECK(o2[j] == woven[2 * j + 1]);
      CHECK(rep[2 * j] == even[j]);
      CHECK(rep[2 * j + 1] == even[j]);
      CHECK(acc[j] == (acc0[j] + woven[2 * j]) + woven[2 * j + 1]);
    }
    CHECK(woven[2 * n] == 9.f);  // nothing written past the row
    CHECK(rep[2 * n] == 9.f);
  }
}

TEST_CASE("direct convolution paths match reference loops (forward, input, weight and bias gradients)") {
  // Stride 1 (direct kernel) and stride 2 (im2col + GEMM), both models' small-channel shapes.
  check_layer({{"type", "Conv2d"}, {"in_channels", 1}, {"out_channels", 16}, {"kernel_size", 3}, {"padding", 1}}, {3, 1, 28, 28}, false);
  check_layer({{"type", "Conv2d"}, {"in_channels", 16}, {"out_channels", 4}, {"kernel_size", 3}, {"padding", 1}}, {2, 16, 14, 14}, false);
  check_layer({{"type", "Conv2d"}, {"in_channels", 3}, {"out_channels", 5}, {"kernel_size", 2}}, {2, 3, 6, 7}, false);
  check_layer({{"type", "Conv2d"}, {"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 5}, {"padding", 2}}, {2, 2, 9, 8}, false);
  check_layer({{"type", "Conv2d"}, {"in_channels", 32}, {"out_channels", 1}, {"kernel_size", 3}, {"padding", 1}}, {2, 32, 10, 10}, false);
  check_layer({{"type", "Conv2d"}, {"in_channels", 4}, {"out_channels", 8}, {"kernel_size", 3}, {"stride", 2}, {"padding", 1}}, {2, 4, 14, 14}, false);
  // kernel_size == stride (direct) and the general transposed convolution.
  check_layer({{"type", "ConvTranspose2d"}, {"in_channels", 4}, {"out_channels", 16}, {"kernel_size", 2}, {"stride", 2}}, {3, 4, 7, 7}, true);
  check_layer({{"type", "ConvTranspose2d"}, {"in_channels", 16}, {"out_channels", 1}, {"kernel_size", 2}, {"stride", 2}}, {2, 16, 14, 14}, true);
  check_layer({{"type", "ConvTranspose2d"}, {"in_channels", 3}, {"out_channels", 2}, {"kernel_size", 3}, {"stride", 3}}, {2, 3, 4, 5}, true);
  check_layer({{"type", "ConvTranspose2d"}, {"in_channels", 3}, {"out_channels", 4}, {"kernel_size", 3}, {"stride", 1}, {"padding", 1}}, {2, 3, 6, 6}, true);
}

TEST_CASE("try_step refuses a step that would overflow and changes nothing") {
  OptimizerConfig c;  // Adam
  Optimizer o(c, 3);
  std::vector<float> p = {1.f, 2.f, 3.f}, g = {0.1f, 1e30f, -0.2f};  // g^2 overflows the second moment
  std::vector<float> p0 = p;
  CHECK_FALSE(o.try_step(p.data(), g.data()));
  CHECK(p == p0);
  CHECK(o.exp_avg == std::vector<float>(3, 0.f));
  CHECK(o.steps() == 0);
  std::vector<float> g0 = g;
  CHECK_FALSE(o.try_step_and_zero(p.data(), g.data()));  // refused: the gradients stay too
  CHECK(g == g0);
  CHECK(p == p0);
  g[1] = 0.3f;
  CHECK(o.try_step(p.data(), g.data()));
  CHECK(o.steps() == 1);
  CHECK(p[0] < p0[0]);
  // A NaN or infinite gradient is refused by both optimizers (train_step relies on it), with or without momentum.
  for (float bad : {NAN, INFINITY, -INFINITY})
    for (float momentum : {0.f, 0.9f}) {
      OptimizerConfig sc;
      sc.type = "sgd";
      sc.lr = 0.f;  // even a zero step: 0 * infinity is NaN
      sc.momentum = momentum;
      Optimizer sgd(sc, 3);
      std::vector<float> q = {1.f, 2.f, 3.f}, gq = {0.1f, bad, 0.2f};
      CHECK_FALSE(sgd.try_step(q.data(), gq.data()));
      CHECK_FALSE(sgd.try_step_and_zero(q.data(), gq.data()));
      CHECK(q == std::vector<float>({1.f, 2.f, 3.f}));
      CHECK(gq[0] == 0.1f);
      OptimizerConfig ac;
      Optimizer adam(ac, 3);
      CHECK_FALSE(adam.try_step(q.data(), gq.data()));
    }
}

// try_step skips its exact check pass when bounds prove every result finite; it must still act exactly like
// step() when it accepts, and like the exact check when it refuses.
TEST_CASE("try_step agrees with step, with and without the bound-based shortcut") {
  OptimizerConfig c;  // Adam
  c.weight_decay = 0.01f;
  const size_t n = 37;  // SIMD body and scalar tail
  Optimizer fast(c, n), plain(c, n);
  std::vector<float> p(n), g(n);
  for (size_t i = 0; i < n; ++i) p[i] = 0.1f * float(int(i % 7) - 3);
  std::vector<float> q = p;
  struct Case {
    float scale;  // gradients are scale * (a small pattern)
    bool accepted;
  };
  // ordinary steps (the shortcut), a gradient too big for the shortcut that the exact check still accepts,
  // one whose square overflows, NaN and infinity; ordinary steps after each refusal.
  for (Case k : {Case{1.f, true}, Case{1.f, true}, Case{3e-4f, true}, Case{2e19f, true}, Case{1.f, true},
                 Case{1e30f, false}, Case{1.f, true}, Case{NAN, false}, Case{INFINITY, false}, Case{1.f, true}}) {
    for (size_t i = 0; i < n; ++i) g[i] = k.scale * (0.5f - 0.03f * float(i));
    std::vector<float> p0 = p, m0 = fast.exp_avg;
    CHECK(fast.try_step(p.data(), g.data()) == k.accepted);
    if (k.accepted) {
      plain.step(q.data(), g.data());
    } else {
      CHECK(p == p0);
      CHECK(fast.exp_avg == m0);
    }
    CHECK(p == q);
    CHECK(fast.exp_avg == plain.exp_avg);
    CHECK(fast.exp_avg_sq == plain.exp_avg_sq);
    CHECK(fast.steps() == plain.steps());
  }
  // Moments replaced from outside (a resume) are not trusted from before: a huge loaded first moment over a
  // zero second moment overflows the weights even with zero gradients, and try_step must see it.
  fast.exp_avg = std::vector<float>(n, 3e38f);
  fast.exp_avg_sq = std::vector<float>(n, 0.f);
  fast.set_steps(fast.steps());
  std::fill(g.begin(), g.end(), 0.f);
  std::vector<float> p0 = p;
  CHECK_FALSE(fast.try_step(p.data(), g.data()));
  CHECK(p == p0);
}

// Adam's SIMD body takes other paths for vectors that may meet a subnormal (exact multiplies through double, a
// skipped division, or the whole formula in double); each must give the bits of the plain float formula, which the
// scalar tail computes: an optimizer of one weight runs only the tail.
TEST_CASE("Adam steps with subnormal and tiny values are bit-identical to the scalar float formula") {
  const float ps[] = {0.01f, -0.3f, 1e-35f, 0x1p-140f, 0.f, -0.f, 1e-10f, 3.f, -2e-31f};
  const float gs[] = {0.f, -0.f, 1e-3f, -2e-20f, 1e-42f, 5e-39f, 1.f, -7e-16f, 0.f, 0.f, 0.f};
  const float ms[] = {0.f, 1e-40f, -0x1p-149f, 3e-38f, 1e-5f, -1e-31f, 0x1p-149f, 2e-39f, 1e-36f};
  const float vs[] = {0.f, 1e-42f, 1e-30f, 1e-12f, 1e-39f, 4e-8f, 1e-12f, 1e-12f};
  const float plain_ps[] = {0.01f, -0.3f, 3.f, -2e-3f}, plain_gs[] = {0.f, 0.f, 1e-3f, -0.5f},
              plain_vs[] = {0.f, 1e-12f, 4e-8f};
  for (float eps : {1e-8f, 1e-30f})
    for (float wd : {0.f, 0.01f}) {
      OptimizerConfig c;
      c.eps = eps;
      c.weight_decay = wd;
      const size_t n = 16 * 48 + 5;
      Optimizer simd(c, n);
      std::vector<Optimizer> scalar(n, Optimizer(c, 1));
      std::vector<float> p(n), g(n), q(n);
      uint32_t h = 12345;
      auto pick = [&](const auto& set) {
        h = h * 1664525u + 1013904223u;
        return set[(h >> 8) % (sizeof(set) / sizeof(set[0]))];
      };
      // In every other block of 16 only the first moments are tricky (the common case, with its own path).
      auto plain = [](size_t i) { return (i / 16) % 2 == 0; };
      for (size_t i = 0; i < n; ++i) {
        p[i] = q[i] = plain(i) ? pick(plain_ps) : pick(ps);
        simd.exp_avg[i] = scalar[i].exp_avg[0] = pick(ms);
        simd.exp_avg_sq[i] = scalar[i].exp_avg_sq[0] = plain(i) ? pick(plain_vs) : pick(vs);
      }
      for (int step = 0; step < 4; ++step) {
        for (size_t i = 0; i < n; ++i) g[i] = plain(i) ? pick(plain_gs) : pick(gs);
        simd.step(p.data(), g.data());
        size_t differ = 0;
        for (size_t i = 0; i < n; ++i) {
          scalar[i].step(&q[i], &g[i]);
          differ += std::memcmp(&p[i], &q[i], 4) != 0 || std::memcmp(&simd.exp_avg[i], &scalar[i].exp_avg[0], 4) != 0 ||
                    std::memcmp(&simd.exp_avg_sq[i], &scalar[i].exp_avg_sq[0], 4) != 0;
        }
        INFO("eps " << eps << ", weight decay " << wd << ", step " << step + 1);
        CHECK(differ == 0);
      }
    }
}
