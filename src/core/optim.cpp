// Adam and SGD exactly as torch.optim computes them (same operation order, so float results agree closely).
// The Adam loop is explicit xsimd: every lane does the scalar formula (IEEE sqrt and division, no FMA), so the
// result is the same for any vector width and bit-identical natively and in WebAssembly.
#include "core/optim.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <xsimd/xsimd.hpp>

namespace aep {

Optimizer::Optimizer(const OptimizerConfig& cfg, size_t n) : config(cfg) {
  exp_avg.assign(n, 0.f);
  if (cfg.type == "adam") exp_avg_sq.assign(n, 0.f);
}

void Optimizer::set_steps(int64_t s) {
  max_avg_ = max_avg_sq_ = -1.f;
  steps_ = s;
  beta1_pow_ = beta2_pow_ = 1.0;
  for (int64_t t = 0; t < s; ++t) beta1_pow_ *= config.beta1, beta2_pow_ *= config.beta2;
}

namespace {
inline bool finite(float x) { return std::fabs(x) <= FLT_MAX; }
}  // namespace

// Commit = false computes the step without writing anything and reports whether all results are finite.
template <bool Commit>
bool Optimizer::update(float* p, const float* g) {
  const size_t n = exp_avg.size();
  const float lr = config.lr, wd = config.weight_decay;
  const int64_t t = steps_ + 1;
  bool ok = true;
  if (config.type == "sgd") {
    const float mom = config.momentum;
    for (size_t i = 0; i < n; ++i) {
      float d = g[i] + wd * p[i];
      float buf = exp_avg[i];
      if (mom != 0.f) {
        buf = t == 1 ? d : mom * buf + d;
        d = buf;
      }
      float np = p[i] - lr * d;
      if (Commit) {
        exp_avg[i] = buf;
        p[i] = np;
      } else {
        ok = ok && finite(np) && finite(buf);
      }
    }
    return ok;
  }
  const float b1 = config.beta1, b2 = config.beta2, eps = config.eps;
  const double bc1 = 1.0 - beta1_pow_ * b1, bc2 = 1.0 - beta2_pow_ * b2;
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  float* m = exp_avg.data();
  float* v = exp_avg_sq.data();
  using B = xsimd::batch<float>;
  constexpr size_t W = B::size;
  const size_t nv = n - n % W;
  auto bad = B(0.f) != B(0.f);  // all false
  B max_m(0.f), max_v(0.f);
  const B vwd(wd), vb1(b1), vb2(b2), v1b1(1.f - b1), v1b2(1.f - b2), vbc2(bc2_sqrt), veps(eps), vstep(step_size),
      vmax(FLT_MAX);
  for (size_t i = 0; i < nv; i += W) {
    B pi = B::load_unaligned(p + i);
    B d = B::load_unaligned(g + i) + vwd * pi;
    B mi = vb1 * B::load_unaligned(m + i) + v1b1 * d;
    B vi = vb2 * B::load_unaligned(v + i) + v1b2 * d * d;
    B denom = xsimd::sqrt(vi) / vbc2 + veps;
    B np = pi - vstep * mi / denom;
    if (Commit) {
      mi.store_unaligned(m + i);
      vi.store_unaligned(v + i);
      np.store_unaligned(p + i);
      max_m = xsimd::max(max_m, xsimd::abs(mi));
      max_v = xsimd::max(max_v, xsimd::abs(vi));
      bad = bad | !(xsimd::abs(mi) <= vmax) | !(xsimd::abs(vi) <= vmax);  // a plain step() may leave NaN
    } else {
      bad = bad | !(xsimd::abs(np) <= vmax) | !(xsimd::abs(mi) <= vmax) | !(xsimd::abs(vi) <= vmax);
    }
  }
  ok = !xsimd::any(bad);
  float mm = xsimd::reduce_max(max_m), mv = xsimd::reduce_max(max_v);
  for (size_t i = nv; i < n; ++i) {
    float d = g[i] + wd * p[i];
    float mi = b1 * m[i] + (1.f - b1) * d;
    float vi = b2 * v[i] + (1.f - b2) * d * d;
    float denom = std::sqrt(vi) / bc2_sqrt + eps;
    float np = p[i] - step_size * mi / denom;
    if (Commit) {
      m[i] = mi;
      v[i] = vi;
      p[i] = np;
      mm = std::max(mm, std::fabs(mi));
      mv = std::max(mv, std::fabs(vi));
      ok = ok && finite(mi) && finite(vi);
    } else {
      ok = ok && finite(np) && finite(mi) && finite(vi);
    }
  }
  if (Commit) {
    max_avg_ = ok ? mm : -1.f;
    max_avg_sq_ = ok ? mv : -1.f;
    moments_seen_[0] = m;
    moments_seen_[1] = v;
  }
  return ok;
}

// The full check pass costs as much as the step itself (a square root and two divisions per weight). Instead,
// bound every result from max |grad|, max |weight| (one read-only pass over two of the four arrays) and the moments'
// maxima recorded by the last commit: if even the bound is far below FLT_MAX, every value is finite. Otherwise
// (huge or non-finite values, unknown moments, eps = 0) the caller falls back to the exact check.
bool Optimizer::adam_surely_finite(const float* p, const float* g) const {
  const float b1 = config.beta1, b2 = config.beta2, eps = config.eps;
  if (max_avg_ < 0.f || max_avg_sq_ < 0.f || moments_seen_[0] != exp_avg.data() ||
      moments_seen_[1] != exp_avg_sq.data())
    return false;
  if (!(b1 >= 0.f && b1 <= 1.f && b2 >= 0.f && b2 <= 1.f && eps > 0.f)) return false;
  using B = xsimd::batch<float>;
  constexpr size_t W = B::size;
  const size_t n = exp_avg.size(), nv = n - n % W;
  const B limit(1e18f);  // also rejects NaN: the comparison is false
  auto bad = B(0.f) != B(0.f);
  B max_g(0.f), max_p(0.f);
  for (size_t i = 0; i < nv; i += W) {
    B gi = xsimd::abs(B::load_unaligned(g + i)), pi = xsimd::abs(B::load_unaligned(p + i));
    bad = bad | !(gi <= limit) | !(pi <= limit);
    max_g = xsimd::max(max_g, gi);
    max_p = xsimd::max(max_p, pi);
  }
  if (xsimd::any(bad)) return false;
  double G = xsimd::reduce_max(max_g), P = xsimd::reduce_max(max_p);
  for (size_t i = nv; i < n; ++i) {
    if (!(std::fabs(g[i]) <= 1e18f && std::fabs(p[i]) <= 1e18f)) return false;
    G = std::max(G, double(std::fabs(g[i])));
    P = std::max(P, double(std::fabs(p[i])));
  }
  // Each float operation rounds by at most 2^-24 relative; 1.01 per step covers them with a wide margin.
  const double d = (G + std::fabs(double(config.weight_decay)) * P) * 1.01;
  const double m = std::max(double(max_avg_), d) * 1.01;          // b1*m + (1-b1)*d, a convex combination
  const double v = std::max(double(max_avg_sq_), d * d) * 1.01;  // b2*v + (1-b2)*d*d
  const double bc1 = 1.0 - beta1_pow_ * b1;
  if (!(bc1 > 0.0) || !(1.0 - beta2_pow_ * b2 > 0.0)) return false;
  const double step_size = std::fabs(double(float(config.lr / bc1))) * 1.01;
  const double np = P + step_size * (m / double(eps)) * 1.01;  // denominator >= eps
  const double big = 1e37;
  return d * d <= big && m <= big && v <= big && np <= big;
}

void Optimizer::step(float* p, const float* g) {
  update<true>(p, g);
  ++steps_;
  beta1_pow_ *= config.beta1;
  beta2_pow_ *= config.beta2;
}

bool Optimizer::try_step(float* p, const float* g) {
  bool sure = config.type == "adam" && adam_surely_finite(p, g);
  if (!sure && !update<false>(p, g)) return false;
  step(p, g);
  return true;
}

}  // namespace aep
