// Adam and SGD exactly as torch.optim computes them (same operation order, so float results agree closely).
// The Adam loop is explicit xsimd: every lane does the scalar formula (IEEE sqrt and division, no FMA), so the
// result is the same for any vector width and bit-identical natively and in WebAssembly.
#include "core/optim.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <xsimd/xsimd.hpp>

#include "core/parallel.hpp"
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#elif defined(__SSE2__)
#include <immintrin.h>
#endif

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

using B = xsimd::batch<float>;
constexpr size_t W = B::size;

struct AdamConsts {
  float wd, b1, b2, one_minus_b1, one_minus_b2, bc2_sqrt, eps, step_size;
};

// x86 cores (natively, and V8 running WebAssembly on them) take a microcode assist of ~100 cycles for every
// multiply, divide or square root instruction that reads or makes a subnormal float; adds do not. Weights whose
// gradient is always 0 (MNIST's blank border pixels, dead ReLUs) have first moments that decay by beta1 each step
// into subnormals and stay there (0.9 * 2^-149 rounds back to 2^-149): after ~1000 steps of model A half of its
// 16-lane vectors held one, and the assists made the Adam pass 4x slower. Vectors with a tiny first moment take
// adam_careful instead. The thresholds only pick a path (every path gives the same bits), so they are generous, and
// the fast path checks the first moment alone: the other values get tiny only long after it (a second moment
// decays by beta2) or practically never, and cost only time then.
inline auto tiny(B x, float limit) { return (xsimd::abs(x) < B(limit)) & (x != B(0.f)); }

// |x| as its bits, ordered like |x| with NaN above infinity above every finite value: one integer max per value
// keeps the largest magnitude and whether anything was not finite (float max and compares took twice the
// instructions, which WebAssembly felt).
using I = xsimd::batch<int32_t>;
inline I abs_bits(B x) { return xsimd::bitwise_cast<int32_t>(x) & I(0x7fffffff); }
#if defined(__wasm_simd128__)
inline I max_bits(I a, I b) { return wasm_i32x4_max(a, b); }  // xsimd's integer max is a compare and a select
#else
inline I max_bits(I a, I b) { return xsimd::max(a, b); }
#endif
inline float from_bits(int32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline int32_t to_bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Maxima (|x| as bits, see abs_bits) found by the Adam pass and its check over a range of vectors.
struct Maxima {
  int32_t m, v, p;
};

// Runs fn(i0, i1) -> Maxima over the vectors [0, nv) in ranges (two per thread, as gemm splits its blocks; none
// shorter than 4096 vectors, waking a worker costs more) and returns the maxima over all. Each weight's formula is
// the same in any range and maxima combine by max, so the thread count changes nothing.
template <class F>
Maxima over_ranges(size_t nv, const F& fn) {
  constexpr size_t kMaxParts = 64, kMinPart = 4096;
  const size_t vectors = nv / W, t = thread_count();
  const size_t parts = t == 1 ? 1 : std::max<size_t>(1, std::min({2 * t, kMaxParts, vectors / kMinPart}));
  Maxima found[kMaxParts];
  parallel_for(parts, [&](size_t r) { found[r] = fn(vectors * r / parts * W, vectors * (r + 1) / parts * W); });
  Maxima all{0, 0, 0};
  for (size_t r = 0; r < parts; ++r)
    all = {std::max(all.m, found[r].m), std::max(all.v, found[r].v), std::max(all.p, found[r].p)};
  return all;
}

// a * b rounded to float exactly as the float multiply rounds it, without an assist: the product of two floats is
// exact in double (48 significant bits), so rounding it to float is the float product, subnormal or not; conversions
// take no assist.
#if defined(__AVX512F__)
XSIMD_INLINE B mul_exact(B a, B b) {
  auto half = [](__m512 x, int h) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), h)));
  };
  __m512 x = a, y = b;
  __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(half(x, 0), half(y, 0)));
  __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(half(x, 1), half(y, 1)));
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}
#elif defined(__AVX__)
XSIMD_INLINE B mul_exact(B a, B b) {
  __m256 x = a, y = b;
  __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                                            _mm256_cvtps_pd(_mm256_castps256_ps128(y))));
  __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)),
                                            _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1))));
  return _mm256_set_m128(hi, lo);
}
#elif defined(__SSE2__)
XSIMD_INLINE B mul_exact(B a, B b) {
  __m128 x = a, y = b;
  __m128 lo = _mm_cvtpd_ps(_mm_mul_pd(_mm_cvtps_pd(x), _mm_cvtps_pd(y)));
  __m128 hi = _mm_cvtpd_ps(_mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(x, x)), _mm_cvtps_pd(_mm_movehl_ps(y, y))));
  return _mm_movelh_ps(lo, hi);
}
#elif defined(__wasm_simd128__)
XSIMD_INLINE B mul_exact(B a, B b) {
  v128_t x = a, y = b;
  v128_t lo = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(x), wasm_f64x2_promote_low_f32x4(y));
  v128_t xh = wasm_i32x4_shuffle(x, x, 2, 3, 2, 3), yh = wasm_i32x4_shuffle(y, y, 2, 3, 2, 3);
  v128_t hi = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(xh), wasm_f64x2_promote_low_f32x4(yh));
  return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
}
#else
XSIMD_INLINE B mul_exact(B a, B b) {
  alignas(64) float x[W], y[W];
  a.store_aligned(x);
  b.store_aligned(y);
  for (size_t l = 0; l < W; ++l) x[l] = float(double(x[l]) * double(y[l]));
  return B::load_aligned(x);
}
#endif

// The float formula for lanes where only the first moment is tiny (the common case: a gradient that stays 0): its
// two multiplies are exact through double, and the division is skipped where it cannot change the weight. Returns
// false (nothing computed) when another operation could still meet a subnormal.
XSIMD_INLINE bool adam_careful(B p, B g, B& m, B& v, B& np, const AdamConsts& k) {
  // |d| < 2^-50: (1 - beta2) * d * d may underflow
  if (xsimd::any(tiny(v, 0x1p-96f) | tiny(p, 0x1p-96f) | tiny(g, 0x1p-50f))) return false;
  B d = g + B(k.wd) * p;
  B mi = mul_exact(B(k.b1), m) + B(k.one_minus_b1) * d;
  B vi = B(k.b2) * v + B(k.one_minus_b2) * d * d;
  B denom = xsimd::sqrt(vi) / B(k.bc2_sqrt) + B(k.eps);
  B x = mul_exact(B(k.step_size), mi);
  auto tx = tiny(x, 0x1p-100f);
  if (xsimd::any(tx)) {
    // There p - x / denom rounds to p: |x / denom| <= 2^-60 is below a quarter of p's last place (>= 2^-55). A
    // zero x gives that p without dividing a subnormal.
    auto harmless = tx & (denom >= B(0x1p-40f)) & (xsimd::abs(p) >= B(0x1p-30f));
    if (xsimd::any(tx & !harmless)) return false;
    x = xsimd::select(harmless, B(0.f), x);
  }
  np = p - x / denom;
  m = mi;
  v = vi;
  return true;
}

// The float formula lane by lane, each operation done in double and rounded to float right away: for + - * / and
// sqrt of floats that gives the float operation's result (53 >= 2 * 24 + 2 bits, so the double rounding is
// innocuous), subnormal results included, and doubles hold these values as normal numbers. Slow, and rare.
inline void adam_in_double(B p, B g, B& m, B& v, B& np, const AdamConsts& k) {
  alignas(64) float ps[W], gs[W], ms[W], vs[W];
  p.store_aligned(ps);
  g.store_aligned(gs);
  m.store_aligned(ms);
  v.store_aligned(vs);
  auto f = [](double x) { return double(float(x)); };
  const double wd = k.wd, b1 = k.b1, b2 = k.b2, c1 = k.one_minus_b1, c2 = k.one_minus_b2, bc2 = k.bc2_sqrt,
               eps = k.eps, step = k.step_size;
  for (size_t l = 0; l < W; ++l) {
    double pi = ps[l], d = f(gs[l] + f(wd * pi));
    double mi = f(f(b1 * ms[l]) + f(c1 * d));
    double vi = f(f(b2 * vs[l]) + f(f(c2 * d) * d));
    double denom = f(f(f(std::sqrt(vi)) / bc2) + eps);
    ms[l] = float(mi);
    vs[l] = float(vi);
    ps[l] = float(pi - f(f(step * mi) / denom));
  }
  m = B::load_aligned(ms);
  v = B::load_aligned(vs);
  np = B::load_aligned(ps);
}
// Adam over the vectors [i0, i1): the maxima of |m|, |v| and (for a check pass) |new p| as bits. A function of
// its own, with its constants in locals: in a lambda that reached them by reference, clang reloaded them after
// every store (WebAssembly model A 6% slower).
template <bool Commit, bool ZeroGrads>
Maxima adam_range(float* p, const float* g, float* zero_g, float* m, float* v, size_t i0, size_t i1,
                  const AdamConsts& k) {
  const B vwd(k.wd), vb1(k.b1), vb2(k.b2), v1b1(k.one_minus_b1), v1b2(k.one_minus_b2), vbc2(k.bc2_sqrt),
      veps(k.eps), vstep(k.step_size);
  I max_m(0), max_v(0), max_p(0);
  for (size_t i = i0; i < i1; i += W) {
    B pi = B::load_unaligned(p + i), gi = B::load_unaligned(g + i), mi = B::load_unaligned(m + i),
      vi = B::load_unaligned(v + i), np;
    if (!xsimd::any(tiny(mi, 0x1p-96f))) {
      B d = gi + vwd * pi;
      mi = vb1 * mi + v1b1 * d;
      vi = vb2 * vi + v1b2 * d * d;
      B denom = xsimd::sqrt(vi) / vbc2 + veps;
      np = pi - vstep * mi / denom;
    } else if (!adam_careful(pi, gi, mi, vi, np, k)) {
      adam_in_double(pi, gi, mi, vi, np, k);
    }
    if (Commit) {
      if (ZeroGrads) B(0.f).store_unaligned(zero_g + i);
      mi.store_unaligned(m + i);
      vi.store_unaligned(v + i);
      np.store_unaligned(p + i);
    } else {
      max_p = max_bits(max_p, abs_bits(np));
    }
    max_m = max_bits(max_m, abs_bits(mi));  // a plain step() may leave NaN: ok is then false
    max_v = max_bits(max_v, abs_bits(vi));
  }
  return {xsimd::reduce_max(max_m), xsimd::reduce_max(max_v), xsimd::reduce_max(max_p)};
}
}  // namespace

// Commit = false computes the step without writing anything and reports whether all results are finite.
// ZeroGrads (with Commit) writes 0 over each gradient once read.
template <bool Commit, bool ZeroGrads>
bool Optimizer::update(float* p, const float* g) {
  static_assert(Commit || !ZeroGrads, "a check pass writes nothing");
  float* zero_g = const_cast<float*>(g);  // only written when the caller passed writable gradients (ZeroGrads)
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
        if (ZeroGrads) zero_g[i] = 0.f;
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
  const AdamConsts k{wd, b1, b2, 1.f - b1, 1.f - b2, bc2_sqrt, eps, step_size};
  const size_t nv = n - n % W;
  const Maxima all = over_ranges(nv, [&](size_t i0, size_t i1) {
    return adam_range<Commit, ZeroGrads>(p, g, zero_g, m, v, i0, i1, k);
  });
  const int32_t finite_max = to_bits(FLT_MAX);
  ok = all.m <= finite_max && all.v <= finite_max && all.p <= finite_max;
  float mm = from_bits(all.m), mv = from_bits(all.v);
  for (size_t i = nv; i < n; ++i) {
    float d = g[i] + wd * p[i];
    float mi = b1 * m[i] + (1.f - b1) * d;
    float vi = b2 * v[i] + (1.f - b2) * d * d;
    float denom = std::sqrt(vi) / bc2_sqrt + eps;
    float np = p[i] - step_size * mi / denom;
    if (Commit) {
      if (ZeroGrads) zero_g[i] = 0.f;
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
  const size_t n = exp_avg.size(), nv = n - n % W;
  const Maxima all = over_ranges(nv, [&](size_t i0, size_t i1) {
    I mg(0), mp(0);
    for (size_t i = i0; i < i1; i += W) {
      mg = max_bits(mg, abs_bits(B::load_unaligned(g + i)));
      mp = max_bits(mp, abs_bits(B::load_unaligned(p + i)));
    }
    return Maxima{xsimd::reduce_max(mg), 0, xsimd::reduce_max(mp)};
  });
  const int32_t max_g = all.m, max_p = all.p;
  const int32_t limit = to_bits(1e18f);  // also rejects infinity and NaN, whose bits are above it
  if (max_g > limit || max_p > limit) return false;
  double G = from_bits(max_g), P = from_bits(max_p);
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

void Optimizer::advance() {
  ++steps_;
  beta1_pow_ *= config.beta1;
  beta2_pow_ *= config.beta2;
}

void Optimizer::step(float* p, const float* g) {
  update<true>(p, g);
  advance();
}

bool Optimizer::try_step(float* p, const float* g) {
  bool sure = config.type == "adam" && adam_surely_finite(p, g);
  if (!sure && !update<false>(p, g)) return false;
  step(p, g);
  return true;
}

bool Optimizer::try_step_and_zero(float* p, float* g) {
  bool sure = config.type == "adam" && adam_surely_finite(p, g);
  if (!sure && !update<false>(p, g)) return false;
  update<true, true>(p, g);
  advance();
  return true;
}

}  // namespace aep
