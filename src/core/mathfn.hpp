// exp, sigmoid and tanh from +, -, *, / and exact bit operations only (no FMA, no libm), in scalar and xsimd
// form. Native and WebAssembly builds therefore compute bit-identical activations, which keeps a seeded run
// identical across platforms (Adam turns 1-ulp differences in near-zero gradients into whole steps).
#pragma once
#include <cstdint>
#include <cstring>
#include <xsimd/xsimd.hpp>

namespace aep {

namespace detail {
// Cephes' expf: exp(x) = 2^n * exp(r), x = n ln2 + r, |r| <= ln2 / 2; about 1 ulp on [-87, 88].
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
constexpr float kExpMin = -87.0f, kExpMax = 88.0f;  // keeps 2^n a normal float
}  // namespace detail

inline float exp_f32(float x) {
  using namespace detail;
  if (x != x) return x;
  x = x < kExpMin ? kExpMin : (x > kExpMax ? kExpMax : x);
  float n = std::floor(x * kLog2e + 0.5f);
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = ((((kP0 * r + kP1) * r + kP2) * r + kP3) * r + kP4) * r + kP5;
  p = p * (r * r) + r + 1.0f;
  uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <class A>
xsimd::batch<float, A> exp_f32(xsimd::batch<float, A> x) {
  using namespace detail;
  using B = xsimd::batch<float, A>;
  auto nan = x != x;
  x = xsimd::min(xsimd::max(x, B(kExpMin)), B(kExpMax));
  B n = xsimd::floor(x * B(kLog2e) + B(0.5f));
  B r = x - n * B(kLn2Hi);
  r = r - n * B(kLn2Lo);
  B p = ((((B(kP0) * r + B(kP1)) * r + B(kP2)) * r + B(kP3)) * r + B(kP4)) * r + B(kP5);
  p = p * (r * r) + r + B(1.0f);
  // 2^n's bits without a float-to-int conversion (several instructions in WebAssembly on x86): n + 127 is an
  // integer in [1, 254], so n + (2^23 + 127) is exact and its low mantissa bits are n + 127; the shift drops the rest.
  auto bits = xsimd::bitwise_cast<int32_t>(n + B(8388608.0f + 127.0f)) << 23;
  B result = p * xsimd::bitwise_cast<float>(bits);
  return xsimd::select(nan, x + x, result);
}

// Subnormal floats (below 2^-126) cost ~100 cycles per operation on x86, natively and in WebAssembly, which has no
// flush-to-zero mode. A saturated Sigmoid (x below about -40) would feed them into every layer's backward pass and
// slow training ~10-20x. So Sigmoid returns exactly 0 where its value would be subnormal (as flush-to-zero would),
// and gradients smaller than kTinyGradient are flushed to 0 where they arise: far below anything an optimizer step
// can resolve (Adam's eps is 1e-8), yet large enough that products with later layers' weights stay normal.
constexpr float kSmallestNormal = 1.17549435e-38f;
constexpr float kTinyGradient = 1e-30f;
inline float flush_tiny_gradient(float g) { return std::fabs(g) < kTinyGradient ? 0.0f : g; }

inline float sigmoid_f32(float x) {
  float s = 1.0f / (1.0f + exp_f32(-x));
  return s < kSmallestNormal ? 0.0f : s;
}
template <class A>
xsimd::batch<float, A> sigmoid_f32(xsimd::batch<float, A> x) {
  using B = xsimd::batch<float, A>;
  B s = B(1.0f) / (B(1.0f) + exp_f32(-x));
  return xsimd::select(s < B(kSmallestNormal), B(0.0f), s);
}

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): no overflow for any x.
inline float tanh_f32(float x) {
  float e = exp_f32(-2.0f * std::fabs(x));
  float t = (1.0f - e) / (1.0f + e);
  return x < 0 ? -t : t;
}
template <class A>
xsimd::batch<float, A> tanh_f32(xsimd::batch<float, A> x) {
  using B = xsimd::batch<float, A>;
  B e = exp_f32(B(-2.0f) * xsimd::abs(x));
  B t = (B(1.0f) - e) / (B(1.0f) + e);
  return xsimd::select(x < B(0.0f), -t, t);
}

}  // namespace aep
