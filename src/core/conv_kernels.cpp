// Direct convolution kernels (see conv_kernels.hpp): a register tile of 4 output channels x 2 vectors of
// positions, accumulated with separate multiply and add (no FMA, as in gemm.cpp).
#include "core/conv_kernels.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace aep {

namespace {

using batch = xsimd::batch<float>;
constexpr size_t W = batch::size;
static_assert(kFlatRound % (2 * W) == 0 && kFlatRound % 16 == 0, "kFlatRound must hold whole vector pairs");

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

template <size_t COB>
void conv_s1_tile(const float* in, size_t Cin, const float* w, size_t Cout, size_t co0, const FlatConv& g, float* out,
                  size_t o, const float* bias, bool relu) {
  batch acc[COB][2];
  for (size_t c = 0; c < COB; ++c) acc[c][0] = acc[c][1] = batch(0.f);
  const size_t k = g.k, Wp = g.Wp;
  for (size_t ci = 0; ci < Cin; ++ci) {
    const float* src = in + ci * g.in_plane + o;
    for (size_t ki = 0; ki < k; ++ki)
      for (size_t kj = 0; kj < k; ++kj) {
        const float* s = src + ki * Wp + kj;
        batch x0 = batch::load_unaligned(s), x1 = batch::load_unaligned(s + W);
        const float* wt = w + ((ci * k + ki) * k + kj) * Cout + co0;
        for (size_t c = 0; c < COB; ++c) {
          batch wc(wt[c]);
          acc[c][0] = acc[c][0] + wc * x0;
          acc[c][1] = acc[c][1] + wc * x1;
        }
      }
  }
  for (size_t c = 0; c < COB; ++c) {
    float* dst = out + (co0 + c) * g.out_plane + o;
    for (size_t v = 0; v < 2; ++v) {
      batch y = bias ? acc[c][v] + batch(bias[co0 + c]) : acc[c][v];
      if (relu) y = xsimd::select(y > batch(0.f), y, batch(0.f));  // ActivationLayer's ReLU
      y.store_unaligned(dst + v * W);
    }
  }
}

}  // namespace

FlatConv flat_conv(size_t Hp, size_t Wp, size_t k) {
  FlatConv g{Hp, Wp, k, Hp - k + 1, Wp - k + 1, 0, 0};
  g.out_plane = round_up(g.OH * Wp, kFlatRound);
  g.in_plane = round_up(g.out_plane + (k - 1) * Wp + k - 1, 16);
  return g;
}

namespace {
// Short rows copied and planes cleared with vectors: in WebAssembly memcpy and memset are calls (and JavaScript's
// copyWithin from 512 bytes), a large share of a step that moves rows of 7 to 30 floats.
inline void copy_row(const float* src, size_t n, float* dst) {
  if (n < W) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
    return;
  }
  for (size_t i = 0; i + W <= n; i += W) batch::load_unaligned(src + i).store_unaligned(dst + i);
  batch::load_unaligned(src + n - W).store_unaligned(dst + n - W);  // the tail, overlapping (src and dst are apart)
}
inline void zero(float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) batch(0.f).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = 0.f;
}
}  // namespace

void pad_image(const float* img, size_t C, size_t H, size_t Wd, size_t pad, const FlatConv& g, float* dst) {
  for (size_t c = 0; c < C; ++c) {
    float* d = dst + c * g.in_plane;
    zero(d, g.in_plane);
    if (pad == 0 && Wd == g.Wp) {
      copy_row(img + c * H * Wd, H * Wd, d);
      continue;
    }
    for (size_t i = 0; i < H; ++i) copy_row(img + (c * H + i) * Wd, Wd, d + (i + pad) * g.Wp + pad);
  }
}

void to_flat_grid(const float* img, size_t C, const FlatConv& g, float* dst) {
  for (size_t c = 0; c < C; ++c) {
    float* d = dst + c * g.out_plane;
    zero(d, g.out_plane);
    for (size_t i = 0; i < g.OH; ++i) copy_row(img + (c * g.OH + i) * g.OW, g.OW, d + i * g.Wp);
  }
}

void from_flat_grid(const float* src, size_t C, size_t H, size_t Wd, const FlatConv& g, float* img) {
  for (size_t c = 0; c < C; ++c)
    for (size_t i = 0; i < H; ++i) copy_row(src + c * g.out_plane + i * g.Wp, Wd, img + (c * H + i) * Wd);
}

void conv_s1_flat(const float* in, size_t Cin, const float* w, size_t Cout, const FlatConv& g, float* out,
                  const float* bias, bool relu) {
  for (size_t o = 0; o < g.out_plane; o += 2 * W) {
    size_t co = 0;
    if (W >= 16)  // AVX-512's 32 registers hold 8 channels x 2 vectors
      for (; co + 8 <= Cout; co += 8) conv_s1_tile<8>(in, Cin, w, Cout, co, g, out, o, bias, relu);
    for (; co + 4 <= Cout; co += 4) conv_s1_tile<4>(in, Cin, w, Cout, co, g, out, o, bias, relu);
    for (; co < Cout; ++co) conv_s1_tile<1>(in, Cin, w, Cout, co, g, out, o, bias, relu);
  }
}

namespace {
// The first maximum of four values in window order, as selects (the same rule scalar and in vectors).
template <class F, class I>
inline void window_max(F v0, F v1, F v2, F v3, F& m, I& at) {
  m = v0;
  at = I(0);
  const F v[3] = {v1, v2, v3};
  for (int j = 0; j < 3; ++j) {
    const auto t = v[j] > m || v[j] != v[j];
    m = xsimd::select(t, v[j], m);
    at = xsimd::select(xsimd::batch_bool_cast<typename I::value_type>(t), I(j + 1), at);
  }
}
}  // namespace

void max_pool_2x2(const float* plane, size_t stride, size_t PH, size_t PW, float* out, int32_t* where) {
  // Four windows per step in every build (128-bit vectors): even and odd columns split by shuffles; a row's last step
  // overlaps the one before instead of leaving a tail (it recomputes the same windows).
  using F = xsimd::make_sized_batch_t<float, 4>;
  using I = xsimd::make_sized_batch_t<int32_t, 4>;
  using A = typename F::arch_type;
  static_assert(std::is_same<A, typename I::arch_type>::value, "one arch for both");
  constexpr xsimd::batch_constant<uint32_t, A, 0, 2, 4, 6> even{};
  constexpr xsimd::batch_constant<uint32_t, A, 1, 3, 5, 7> odd{};
  for (size_t ph = 0; ph < PH; ++ph) {
    const float* r0 = plane + 2 * ph * stride;
    const float* r1 = r0 + stride;
    float* o = out + ph * PW;
    int32_t* w = where + ph * PW;
    if (PW < 4) {
      for (size_t pw = 0; pw < PW; ++pw) {
        F m;
        I at;
        window_max(F(r0[2 * pw]), F(r0[2 * pw + 1]), F(r1[2 * pw]), F(r1[2 * pw + 1]), m, at);
        o[pw] = m.get(0);
        w[pw] = at.get(0);
      }
      continue;
    }
    for (size_t pw = 0;; pw += 4) {
      if (pw + 4 > PW) pw = PW - 4;
      const F a0 = F::load_unaligned(r0 + 2 * pw), a1 = F::load_unaligned(r0 + 2 * pw + 4);
      const F c0 = F::load_unaligned(r1 + 2 * pw), c1 = F::load_unaligned(r1 + 2 * pw + 4);
      F m;
      I at;
      window_max(xsimd::shuffle(a0, a1, even), xsimd::shuffle(a0, a1, odd), xsimd::shuffle(c0, c1, even),
                 xsimd::shuffle(c0, c1, odd), m, at);
      m.store_unaligned(o + pw);
      at.store_unaligned(w + pw);
      if (pw + 4 == PW) break;
    }
  }
}

// Four pairs per step (128-bit vectors in every build); the last step overlaps the one before instead of a tail.
void interleave2(const float* even, const float* odd, size_t n, float add, float* out) {
  using F = xsimd::make_sized_batch_t<float, 4>;
  if (n < 4) {
    for (size_t j = 0; j < n; ++j) out[2 * j] = even[j] + add, out[2 * j + 1] = odd[j] + add;
    return;
  }
  const F a(add);
  for (size_t j = 0;; j += 4) {
    if (j + 4 > n) j = n - 4;
    const F e = F::load_unaligned(even + j) + a, o = F::load_unaligned(odd + j) + a;
    xsimd::zip_lo(e, o).store_unaligned(out + 2 * j);
    xsimd::zip_hi(e, o).store_unaligned(out + 2 * j + 4);
    if (j + 4 == n) break;
  }
}

void deinterleave2(const float* in, size_t n, float* even, float* odd) {
  using F = xsimd::make_sized_batch_t<float, 4>;
  using A = typename F::arch_type;
  if (n < 4) {
    for (size_t j = 0; j < n; ++j) even[j] = in[2 * j], odd[j] = in[2 * j + 1];
    return;
  }
  constexpr xsimd::batch_constant<uint32_t, A, 0, 2, 4, 6> evens{};
  constexpr xsimd::batch_constant<uint32_t, A, 1, 3, 5, 7> odds{};
  for (size_t j = 0;; j += 4) {
    if (j + 4 > n) j = n - 4;
    const F a = F::load_unaligned(in + 2 * j), b = F::load_unaligned(in + 2 * j + 4);
    xsimd::shuffle(a, b, evens).store_unaligned(even + j);
    xsimd::shuffle(a, b, odds).store_unaligned(odd + j);
    if (j + 4 == n) break;
  }
}

void repeat2(const float* in, size_t n, float* out) {
  using F = xsimd::make_sized_batch_t<float, 4>;
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const F v = F::load_unaligned(in + j);
    xsimd::zip_lo(v, v).store_unaligned(out + 2 * j);
    xsimd::zip_hi(v, v).store_unaligned(out + 2 * j + 4);
  }
  for (; j < n; ++j) out[2 * j] = out[2 * j + 1] = in[j];
}

void add_pairs2(const float* in, size_t n, float* acc) {
  using F = xsimd::make_sized_batch_t<float, 4>;
  using A = typename F::arch_type;
  constexpr xsimd::batch_constant<uint32_t, A, 0, 2, 4, 6> evens{};
  constexpr xsimd::batch_constant<uint32_t, A, 1, 3, 5, 7> odds{};
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const F a = F::load_unaligned(in + 2 * j), b = F::load_unaligned(in + 2 * j + 4);
    ((F::load_unaligned(acc + j) + xsimd::shuffle(a, b, evens)) + xsimd::shuffle(a, b, odds)).store_unaligned(acc + j);
  }
  for (; j < n; ++j) acc[j] = (acc[j] + in[2 * j]) + in[2 * j + 1];
}

void relu_max_unpool_2x2(const float* pooled, const float* grad, const int32_t* where, size_t PH, size_t PW,
                         float* plane, size_t stride) {
  using F = xsimd::make_sized_batch_t<float, 4>;
  using I = xsimd::make_sized_batch_t<int32_t, 4>;
  for (size_t ph = 0; ph < PH; ++ph) {
    const float* m = pooled + ph * PW;
    const float* g = grad + ph * PW;
    const int32_t* at = where + ph * PW;
    float* r0 = plane + 2 * ph * stride;
    float* r1 = r0 + stride;
    if (PW < 4) {
      for (size_t pw = 0; pw < PW; ++pw) {
        const float v = m[pw] > 0.f ? 0.f + g[pw] : 0.f;
        r0[2 * pw] = at[pw] == 0 ? v : 0.f;
        r0[2 * pw + 1] = at[pw] == 1 ? v : 0.f;
        r1[2 * pw] = at[pw] == 2 ? v : 0.f;
        r1[2 * pw + 1] = at[pw] == 3 ? v : 0.f;
      }
      continue;
    }
    const F zero(0.f);
    for (size_t pw = 0;; pw += 4) {  // the last step overlaps the one before (same values)
      if (pw + 4 > PW) pw = PW - 4;
      const F v = xsimd::select(F::load_unaligned(m + pw) > zero, F::load_unaligned(g + pw) + zero, zero);
      const I a = I::load_unaligned(at + pw);
      auto place = [&](int32_t k) { return xsimd::select(xsimd::batch_bool_cast<float>(a == I(k)), v, zero); };
      const F p0 = place(0), p1 = place(1), p2 = place(2), p3 = place(3);
      xsimd::zip_lo(p0, p1).store_unaligned(r0 + 2 * pw);
      xsimd::zip_hi(p0, p1).store_unaligned(r0 + 2 * pw + 4);
      xsimd::zip_lo(p2, p3).store_unaligned(r1 + 2 * pw);
      xsimd::zip_hi(p2, p3).store_unaligned(r1 + 2 * pw + 4);
      if (pw + 4 == PW) break;
    }
  }
}

float dot16(const float* a, const float* b, size_t n) {
  constexpr size_t R = 16 / W;
  static_assert(16 % W == 0, "dot16 needs a vector width dividing 16");
  batch acc[R];
  for (size_t r = 0; r < R; ++r) acc[r] = batch(0.f);
  for (size_t i = 0; i < n; i += 16)
    for (size_t r = 0; r < R; ++r)
      acc[r] = acc[r] + batch::load_unaligned(a + i + r * W) * batch::load_unaligned(b + i + r * W);
  alignas(64) float lanes[16];
  for (size_t r = 0; r < R; ++r) acc[r].store_aligned(lanes + r * W);
  float s = 0.f;
  for (size_t l = 0; l < 16; ++l) s += lanes[l];
  return s;
}

namespace {
// A tile of AB planes of a x JB shifts of b. A dot's 16 lanes are 16 / W vectors; instead of holding all of them, one
// pass per vector of lanes (r) reads every 16th group of W values, so each accumulator is one vector and a tile of
// AB x JB dots shares AB + JB loads per step. Each lane still adds its products in order of i, from 0.
template <size_t AB, size_t JB>
void dot16_tile(const float* a, size_t a_stride, const float* b, const size_t* offsets, size_t count, size_t n,
                float* lanes) {
  const float* bj[JB];
  for (size_t j = 0; j < JB; ++j) bj[j] = b + offsets[j];
  for (size_t r = 0; r < 16; r += W) {
    batch acc[AB][JB];
    for (size_t p = 0; p < AB; ++p)
      for (size_t j = 0; j < JB; ++j) acc[p][j] = batch(0.f);
    for (size_t i = r; i < n; i += 16) {
      batch av[AB];
      for (size_t p = 0; p < AB; ++p) av[p] = batch::load_unaligned(a + p * a_stride + i);
      for (size_t j = 0; j < JB; ++j) {
        const batch bv = batch::load_unaligned(bj[j] + i);
        for (size_t p = 0; p < AB; ++p) acc[p][j] = acc[p][j] + av[p] * bv;
      }
    }
    for (size_t p = 0; p < AB; ++p)
      for (size_t j = 0; j < JB; ++j) {
        float* l = lanes + (p * count + j) * 16 + r;
        (batch::load_unaligned(l) + acc[p][j]).store_unaligned(l);
      }
  }
}

// Tiles that fit the registers with room for the operands: 4 x 4 of AVX-512's 32, 3 x 3 of the 16 of AVX2 and of
// WebAssembly in V8 on x86 (one of them its scratch register).
constexpr size_t kTileA = W >= 16 ? 4 : 3;
constexpr size_t kTileJ = W >= 16 ? 4 : 3;

template <size_t AB>
void dot16_rows(const float* a, size_t a_stride, const float* b, const size_t* offsets, size_t count, size_t n,
                float* lanes) {
  size_t j = 0;
  for (; j + kTileJ <= count; j += kTileJ)
    dot16_tile<AB, kTileJ>(a, a_stride, b, offsets + j, count, n, lanes + j * 16);
  for (; j < count; ++j) dot16_tile<AB, 1>(a, a_stride, b, offsets + j, count, n, lanes + j * 16);
}
}  // namespace

void dot16_lanes(const float* a, size_t a_stride, size_t A, const float* b, const size_t* offsets, size_t count,
                 size_t n, float* lanes) {
  size_t p = 0;
  for (; p + kTileA <= A; p += kTileA)
    dot16_rows<kTileA>(a + p * a_stride, a_stride, b, offsets, count, n, lanes + p * count * 16);
  for (; p < A; ++p) dot16_rows<1>(a + p * a_stride, a_stride, b, offsets, count, n, lanes + p * count * 16);
}

void add_lanes(const float* lanes, size_t count, float* out) {
  for (size_t j = 0; j < count; ++j) {
    float s = 0.f;
    for (size_t l = 0; l < 16; ++l) s += lanes[j * 16 + l];
    out[j] += s;
  }
}

float sum16(const float* x, size_t n) {
  constexpr size_t R = 16 / W;
  const size_t n16 = n - n % 16;
  float s = 0.f;
  if (n16) {
    batch acc[R];
    for (size_t r = 0; r < R; ++r) acc[r] = batch(0.f);
    for (size_t i = 0; i < n16; i += 16)
      for (size_t r = 0; r < R; ++r) acc[r] = acc[r] + batch::load_unaligned(x + i + r * W);
    alignas(64) float lanes[16];
    for (size_t r = 0; r < R; ++r) acc[r].store_aligned(lanes + r * W);
    for (size_t l = 0; l < 16; ++l) s += lanes[l];
  }
  for (size_t i = n16; i < n; ++i) s += x[i];
  return s;
}

}  // namespace aep
