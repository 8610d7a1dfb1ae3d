// Adam and SGD exactly as torch.optim computes them (same operation order, so float results agree closely).
// The Adam loop is explicit xsimd: every lane does the scalar formula (IEEE sqrt and division, no FMA), so the
// result is the same for any vector width and bit-identical natively and in WebAssembly.
#include "core/optim.hpp"

#include <cfloat>
#include <cmath>
#include <xsimd/xsimd.hpp>

namespace aep {

Optimizer::Optimizer(const OptimizerConfig& cfg, size_t n) : config(cfg) {
  exp_avg.assign(n, 0.f);
  if (cfg.type == "adam") exp_avg_sq.assign(n, 0.f);
}

void Optimizer::set_steps(int64_t s) {
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
    } else {
      bad = bad | !(xsimd::abs(np) <= vmax) | !(xsimd::abs(mi) <= vmax) | !(xsimd::abs(vi) <= vmax);
    }
  }
  ok = !xsimd::any(bad);
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
    } else {
      ok = ok && finite(np) && finite(mi) && finite(vi);
    }
  }
  return ok;
}

void Optimizer::step(float* p, const float* g) {
  update<true>(p, g);
  ++steps_;
  beta1_pow_ *= config.beta1;
  beta2_pow_ *= config.beta2;
}

bool Optimizer::try_step(float* p, const float* g) {
  if (!update<false>(p, g)) return false;
  step(p, g);
  return true;
}

}  // namespace aep
