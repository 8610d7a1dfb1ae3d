// GEMM in the BLIS style: op(B) is packed into column panels NR wide and an MR x NR register-blocked xsimd
// micro-kernel accumulates over a KC-deep slice, reading op(A) in place (only a last partial MR panel is packed). Pack buffers are reused
// (thread_local), so a training step does no heap allocation here after the first call.
// The deterministic kernel keeps multiply and add separate (no FMA): WebAssembly SIMD has no FMA, and identical
// rounding natively keeps seeded runs bit-identical across builds. Fast mode runs the same blocking with the fused
// kernels of gemm_avx2.cpp / gemm_avx512.cpp.
#include "core/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "core/gemm_fast.hpp"
#include "core/parallel.hpp"
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace aep {
namespace {

using gemm_detail::a_at;
using gemm_detail::ALayout;
using batch = xsimd::batch<float>;
constexpr size_t W = batch::size;
// Register tile of the deterministic kernel, MR rows x NV vectors. WebAssembly (16 vector registers in V8 on x86):
// 2 x 4 vectors of f32x4 did best (issue 5's measurements, and 2x4 vs 4x2 here); natively 8 x 2 vectors (16 of the
// 32 AVX-512 registers) measured a little ahead of 4 x 2, 6 x 2 and 4 x 4 (bench: `aep bench --only gemm`).
// Each C element is still summed over k in order, so the tile shape never changes results.
#ifdef AEP_GEMM_MR
constexpr size_t MR = AEP_GEMM_MR;
constexpr size_t NV = AEP_GEMM_NV;
#elif defined(__wasm_simd128__)
constexpr size_t MR = 2;
constexpr size_t NV = 4;
#else
constexpr size_t MR = 8;
constexpr size_t NV = 2;
#endif
constexpr size_t NR = NV * W;
// In WebAssembly a transposed A read in place (MR values per row of A, a new cache line every k) measured ~20%
// slower than packed at model A's weight-gradient shapes; natively in place was as fast. Results are the same.
#if defined(__wasm_simd128__)
constexpr bool kPackTransposedA = true;
#else
constexpr bool kPackTransposedA = false;
#endif
constexpr size_t KC = 256;

// 64 bytes whatever the build's own vectors: the AVX-512 kernel loads whole packed panels of B aligned, also in a
// build compiled for less (AEP_NATIVE_ARCH=OFF, or a binary built for AVX2 run on an AVX-512 CPU).
using aligned_vector = std::vector<float, xsimd::aligned_allocator<float, 64>>;

inline float at(const float* X, size_t ld, bool trans, size_t row, size_t col) {
  return trans ? X[col * ld + row] : X[row * ld + col];
}

// packed[(j / NR) * kc * NR + k * NR + j % NR] = op(B)[k0 + k, j], zero beyond N. Source rows are read
// contiguously in both layouts; the scattered writes stay inside one L1-sized panel.
template <size_t NR>
void pack_b(bool trans_b, const float* B, size_t ldb, size_t k0, size_t kc, size_t N, float* packed) {
  for (size_t jp = 0; jp < N; jp += NR) {
    float* dst = packed + (jp / NR) * kc * NR;
    size_t nr = std::min(NR, N - jp);
    if (trans_b) {  // op(B)[k, j] = B[j, k]
      for (size_t j = 0; j < nr; ++j) {
        const float* src = B + (jp + j) * ldb + k0;
        for (size_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
      }
      for (size_t j = nr; j < NR; ++j)
        for (size_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.f;
      continue;
    }
    if (nr == NR) {  // whole panel: vector copies (a 64-byte memcpy is a call in WebAssembly)
      for (size_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * ldb + jp;
        for (size_t v = 0; v < NR / W; ++v) batch::load_unaligned(src + v * W).store_aligned(dst + k * NR + v * W);
      }
      continue;
    }
    for (size_t k = 0; k < kc; ++k) {
      float* row = dst + k * NR;
      const float* src = B + (k0 + k) * ldb + jp;
      std::memcpy(row, src, nr * sizeof(float));
      for (size_t j = nr; j < NR; ++j) row[j] = 0.f;
    }
  }
}

// packed[(i / MR) * kc * MR + k * MR + i % MR] = op(A)[i0 + i, k0 + k], zero beyond mc.
template <size_t MR>
void pack_a(bool trans_a, const float* A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc, float* packed) {
  for (size_t ip = 0; ip < mc; ip += MR) {
    float* dst = packed + (ip / MR) * kc * MR;
    size_t mr = std::min(MR, mc - ip);
    if (trans_a) {  // op(A)[i, k] = A[k, i]: MR neighbours in one row of A
      for (size_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + i0 + ip;
        float* col = dst + k * MR;
        for (size_t r = 0; r < mr; ++r) col[r] = src[r];
        for (size_t r = mr; r < MR; ++r) col[r] = 0.f;
      }
      continue;
    }
    for (size_t r = 0; r < mr; ++r) {
      const float* src = A + (i0 + ip + r) * lda + k0;
      for (size_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
    }
    for (size_t r = mr; r < MR; ++r)
      for (size_t k = 0; k < kc; ++k) dst[k * MR + r] = 0.f;
  }
}

// The micro-kernels read op(A) in place (ALayout::Rows / Columns) where they can: packing, for the small batch of
// training, costs about as much as the multiply when A is a layer's weight matrix (each packed value would be used
// by only batch / NR micro-kernel calls).

#if defined(__AVX__)
// C[j * ldc + r] = (C or 0) + t[r * ldt + j] for an 8 x 8 block: the transposed store of a register tile, one
// 8-float row of C per column of t (the scalar loop cost model A's forward products ~7%).
inline void add_transposed_8x8(const float* t, size_t ldt, float* C, size_t ldc, bool overwrite) {
  __m256 r[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(t + i * ldt);
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
    u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(1, 0, 1, 0));      // a0 b0 c0 d0 | a4 b4 c4 d4
    r[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(3, 2, 3, 2));  // a1 b1 c1 d1 | a5 ...
    r[i + 2] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {
    __m256 lo = _mm256_permute2f128_ps(r[j], r[j + 4], 0x20), hi = _mm256_permute2f128_ps(r[j], r[j + 4], 0x31);
    float* c0 = C + j * ldc;
    float* c4 = C + (j + 4) * ldc;
    _mm256_storeu_ps(c0, _mm256_add_ps(overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(c0), lo));
    _mm256_storeu_ps(c4, _mm256_add_ps(overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(c4), hi));
  }
}
#endif

// C[0:mr, 0:nr] = (overwrite ? 0 : C) + tile[r * ldt + j]; with trans_c, C is stored transposed (element (r, j) at
// C[j * ldc + r]).
void store_tile(const float* tile, size_t ldt, float* C, size_t ldc, size_t mr, size_t nr, bool trans_c,
                bool overwrite) {
  if (trans_c) {
    size_t r0 = 0;
#if defined(__AVX__)
    for (; r0 + 8 <= mr; r0 += 8) {
      size_t j = 0;
      for (; j + 8 <= nr; j += 8) add_transposed_8x8(tile + r0 * ldt + j, ldt, C + j * ldc + r0, ldc, overwrite);
      for (; j < nr; ++j)
        for (size_t r = r0; r < r0 + 8; ++r) C[j * ldc + r] = (overwrite ? 0.f : C[j * ldc + r]) + tile[r * ldt + j];
    }
#endif
    for (size_t j = 0; j < nr; ++j)
      for (size_t r = r0; r < mr; ++r) C[j * ldc + r] = (overwrite ? 0.f : C[j * ldc + r]) + tile[r * ldt + j];
    return;
  }
  for (size_t r = 0; r < mr; ++r)
    for (size_t j = 0; j < nr; ++j) C[r * ldc + j] = (overwrite ? 0.f : C[r * ldc + j]) + tile[r * ldt + j];
}

// C[0:mr, 0:nr] += alpha * (A rows) * (pb panel) over kc; with trans_c, C is stored transposed
// (element (r, j) at C[j * ldc + r]). With overwrite, C's old values are not read: it gets alpha * (...) + 0, the
// bits the sum onto a zeroed C gave.
template <ALayout L>
void micro_kernel(size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C, size_t ldc,
                  size_t mr, size_t nr, bool trans_c, bool overwrite = false) {
  batch c[MR][NV];
  for (size_t r = 0; r < MR; ++r)
    for (size_t v = 0; v < NV; ++v) c[r][v] = batch(0.f);
  for (size_t k = 0; k < kc; ++k) {
    batch b[NV];
    for (size_t v = 0; v < NV; ++v) b[v] = batch::load_aligned(pb + k * NR + v * W);
    for (size_t r = 0; r < MR; ++r) {
      batch ar(a_at<L, MR>(pa, lda, r, k));
      for (size_t v = 0; v < NV; ++v) c[r][v] = c[r][v] + ar * b[v];
    }
  }
  batch va(alpha);
  if (!trans_c && mr == MR && nr == NR) {
    for (size_t r = 0; r < MR; ++r)
      for (size_t v = 0; v < NV; ++v) {
        float* dst = C + r * ldc + v * W;
        (va * c[r][v] + (overwrite ? batch(0.f) : batch::load_unaligned(dst))).store_unaligned(dst);
      }
    return;
  }
  alignas(64) float tile[MR * NR];
  for (size_t r = 0; r < MR; ++r)
    for (size_t v = 0; v < NV; ++v) (va * c[r][v]).store_aligned(tile + r * NR + v * W);
  store_tile(tile, NR, C, ldc, mr, nr, trans_c, overwrite);
}

// The kernels gemm_any can run: a tile shape (TMR x TNR) and the micro-kernel that fills it. MC, the rows of A a
// KC block visits before moving to the next panel of B, is a multiple of the tile's rows.
struct Exact {
  static constexpr size_t MR = aep::MR, NR = aep::NR, MC = 128;
  template <ALayout L>
  static void run(size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C, size_t ldc,
                  size_t mr, size_t nr, bool trans_c, bool overwrite) {
    micro_kernel<L>(kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c, overwrite);
  }
};

#if defined(__x86_64__)
using FusedFn = bool (*)(ALayout, size_t, const float*, size_t, const float*, float, float*, size_t, size_t, size_t,
                         bool, bool, float*);
template <size_t TMR, size_t TNR, FusedFn F>
struct Fused {
  static constexpr size_t MR = TMR, NR = TNR, MC = 128 / TMR * TMR;
  template <ALayout L>
  static void run(size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C, size_t ldc,
                  size_t mr, size_t nr, bool trans_c, bool overwrite) {
    alignas(64) float tile[MR * NR];
    if (!F(L, kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c, overwrite, tile))
      store_tile(tile, NR, C, ldc, mr, nr, trans_c, overwrite);
  }
};
using Avx2 = Fused<gemm_detail::kAvx2MR, gemm_detail::kAvx2NR, gemm_detail::micro_avx2>;
using Avx512 = Fused<gemm_detail::kAvx512MR, gemm_detail::kAvx512NR, gemm_detail::micro_avx512>;
#endif

void scale_c(size_t M, size_t N, float beta, float* C, size_t ldc) {
  if (beta == 1.f) return;
  for (size_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    if (beta == 0.f)  // not a multiply: C may hold NaN garbage that beta = 0 must erase
      std::fill(row, row + N, 0.f);
    else
      for (size_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

// Every C element is summed over k in the same order (KC blocks, k ascending within each) whatever the tile
// shape, A layout or C orientation: results never depend on them (only on the kernel's rounding).
template <class Kernel>
void gemm_any(bool trans_a, bool trans_b, bool trans_c, size_t M, size_t N, size_t K, float alpha, const float* A,
              size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  if (M == 0 || N == 0) return;
  // beta = 0 with work to do: the first KC block writes C without reading it (no separate zeroing pass).
  const bool overwrite = beta == 0.f && K > 0 && alpha != 0.f;
  if (!overwrite) {
    if (trans_c)
      scale_c(N, M, beta, C, ldc);
    else
      scale_c(M, N, beta, C, ldc);
  }
  if (K == 0 || alpha == 0.f) return;
  constexpr size_t MR = Kernel::MR, NR = Kernel::NR, MC = Kernel::MC;
  thread_local aligned_vector packed_a, packed_b;
  size_t n_panels = (N + NR - 1) / NR;
  size_t kc_max = std::min(K, KC);
  if (packed_b.size() < n_panels * NR * kc_max) packed_b.resize(n_panels * NR * kc_max);
  const bool pack_all_a = kPackTransposedA && trans_a;
  if (packed_a.size() < std::max(MC, MR) * kc_max) packed_a.resize(std::max(MC, MR) * kc_max);
  const size_t m_full = pack_all_a ? 0 : M - M % MR;  // rows read in place; the rest is packed (zero padded)

  for (size_t k0 = 0; k0 < K; k0 += KC) {
    size_t kc = std::min(KC, K - k0);
    const bool first = overwrite && k0 == 0;
    pack_b<NR>(trans_b, B, ldb, k0, kc, N, packed_b.data());
    if (!pack_all_a && m_full < M) pack_a<MR>(trans_a, A, lda, m_full, M - m_full, k0, kc, packed_a.data());
    for (size_t i0 = 0; i0 < M; i0 += MC) {
      size_t mc = std::min(MC, M - i0);
      if (pack_all_a) pack_a<MR>(trans_a, A, lda, i0, mc, k0, kc, packed_a.data());
      for (size_t jp = 0; jp < N; jp += NR) {
        const float* pb = packed_b.data() + (jp / NR) * kc * NR;
        size_t nr = std::min(NR, N - jp);
        for (size_t i = i0; i < i0 + mc; i += MR) {
          float* c = trans_c ? C + jp * ldc + i : C + i * ldc + jp;
          if (i >= m_full)
            Kernel::template run<ALayout::Packed>(kc, packed_a.data() + (pack_all_a ? (i - i0) * kc : 0), 0, pb,
                                                  alpha, c, ldc, std::min(MR, M - i), nr, trans_c, first);
          else if (trans_a)
            Kernel::template run<ALayout::Columns>(kc, A + k0 * lda + i, lda, pb, alpha, c, ldc, MR, nr, trans_c,
                                                   first);
          else
            Kernel::template run<ALayout::Rows>(kc, A + i * lda + k0, lda, pb, alpha, c, ldc, MR, nr, trans_c, first);
        }
      }
    }
  }
}

// gemm_any packs op(B) (N x K values) and reads A in place. With few rows M (a batch), packing costs as much as a
// sizable part of the multiply (1/M of a multiply-add per product) and C^T = op(B)^T op(A)^T packs the smaller
// operand instead, for the price of writing C transposed (a tile transpose per KC block): worth it when the
// packing saved, (1/M - 1/N) per product, exceeds ~1/min(K, KC). Model A at batch 64: forward and input-gradient
// products 69-76% -> 80-93% of the micro-kernel's peak natively; the weight gradients (M = 256, K = 64) stay as
// they are. Where a transposed A gets packed too (WebAssembly), swapping into one (B not transposed) saves nothing.
bool pack_a_instead(bool trans_b, size_t M, size_t N, size_t K) {
  if (kPackTransposedA && !trans_b) return false;
  return N > M && (N - M) * std::min(K, KC) > M * N;
}

// With several threads, the columns of op(C) in blocks of whole NR panels. Each block is the same gemm_any on a part
// of B and C: the same panels, tiles and sums for every element, so results do not depend on the thread count. Products under kMinSplit multiply-adds stay on one thread (waking a worker costs more).
constexpr double kMinSplit = 1 << 18;

template <class Kernel>
void gemm_split(bool trans_a, bool trans_b, bool trans_c, size_t M, size_t N, size_t K, float alpha, const float* A,
                size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  constexpr size_t NR = Kernel::NR;
  const size_t panels = (N + NR - 1) / NR;
  // Two blocks per thread: when one thread is late (a busy machine), the others take its second block.
  size_t parts = thread_count() > 1 ? std::min(2 * thread_count(), panels) : 1;
  if (double(M) * double(N) * double(K) < kMinSplit) parts = 1;
  if (parts <= 1) return gemm_any<Kernel>(trans_a, trans_b, trans_c, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  auto block = [&](size_t t) {
    const size_t j0 = panels * t / parts * NR, j1 = std::min(N, panels * (t + 1) / parts * NR);
    gemm_any<Kernel>(trans_a, trans_b, trans_c, M, j1 - j0, K, alpha, A, lda, trans_b ? B + j0 * ldb : B + j0, ldb, beta,
             trans_c ? C + j0 * ldc : C + j0, ldc);
  };
  parallel_for(parts, block);
}

template <class Kernel>
void gemm_with(bool trans_a, bool trans_b, bool trans_c, size_t M, size_t N, size_t K, float alpha, const float* A,
               size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  if (trans_c)
    gemm_split<Kernel>(trans_a, trans_b, true, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (pack_a_instead(trans_b, M, N, K))
    gemm_split<Kernel>(!trans_b, !trans_a, true, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
  else
    gemm_split<Kernel>(trans_a, trans_b, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

std::atomic<GemmPath> g_path{GemmPath::Deterministic};

// Calls f with the current path's kernel type (Exact, Avx2 or Avx512) as a value.
template <class F>
void with_kernel(F&& f) {
#if defined(__x86_64__)
  switch (g_path.load(std::memory_order_relaxed)) {
    case GemmPath::Avx2Fma: return f(Avx2{});
    case GemmPath::Avx512: return f(Avx512{});
    case GemmPath::Deterministic: break;
  }
#endif
  f(Exact{});
}

}  // namespace

std::vector<GemmPath> gemm_fast_paths() {
  std::vector<GemmPath> paths;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) paths.push_back(GemmPath::Avx512);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) paths.push_back(GemmPath::Avx2Fma);
#endif
  return paths;
}

const char* gemm_path_name(GemmPath p) {
  switch (p) {
    case GemmPath::Avx2Fma: return "avx2+fma";
    case GemmPath::Avx512: return "avx512";
    case GemmPath::Deterministic: break;
  }
  return "deterministic";
}

void set_gemm_path(GemmPath p) {
  if (p != GemmPath::Deterministic) {
    const std::vector<GemmPath> have = gemm_fast_paths();
    if (std::find(have.begin(), have.end(), p) == have.end())
      throw std::runtime_error(std::string("the GEMM path ") + gemm_path_name(p) + " needs an instruction set this " +
                               (have.empty() ? "build or CPU lacks" : "CPU lacks"));
  }
  g_path.store(p);
}

GemmPath gemm_path() { return g_path.load(); }

void set_fast_mode(bool on) {
  if (!on) return set_gemm_path(GemmPath::Deterministic);
  const std::vector<GemmPath> have = gemm_fast_paths();
  if (have.empty())
    throw std::runtime_error("fast mode needs fused multiply-add (AVX2 + FMA or AVX-512): this build or CPU has none");
  const char* want = std::getenv("AEP_GEMM_PATH");
  if (!want || !*want) return set_gemm_path(have.front());
  for (GemmPath p : {GemmPath::Avx2Fma, GemmPath::Avx512})
    if (std::string(want) == gemm_path_name(p)) return set_gemm_path(p);
  throw std::runtime_error(std::string("AEP_GEMM_PATH: expected avx2+fma or avx512, got '") + want + "'");
}

bool fast_mode() { return gemm_path() != GemmPath::Deterministic; }

void gemm(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda,
          const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  with_kernel([&](auto kernel) {
    gemm_with<decltype(kernel)>(trans_a, trans_b, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  });
}

void gemm_transposed_c(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                       size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  with_kernel([&](auto kernel) {
    gemm_with<decltype(kernel)>(trans_a, trans_b, true, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  });
}

void gemm_reference(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                    size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  for (size_t i = 0; i < M; ++i)
    for (size_t j = 0; j < N; ++j) {
      double s = 0;
      for (size_t k = 0; k < K; ++k) s += double(at(A, lda, trans_a, i, k)) * double(at(B, ldb, trans_b, k, j));
      float prev = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = float(alpha * s) + prev;
    }
}

namespace {
constexpr size_t kPeakReps = 64;
constexpr size_t kMaxMR = 16, kMaxNR = 32;  // the largest tile of any kernel
alignas(64) float peak_a[KC * kMaxMR], peak_b[KC * kMaxNR], peak_c[kMaxMR * kMaxNR];
}  // namespace

void gemm_micro_kernel_run() {
  static bool filled = false;
  if (!filled) {
    for (size_t i = 0; i < KC * kMaxMR; ++i) peak_a[i] = 1e-3f * float(i % 7);
    for (size_t i = 0; i < KC * kMaxNR; ++i) peak_b[i] = 1e-3f * float(i % 5);
    filled = true;
  }
  with_kernel([](auto kernel) {
    using Kernel = decltype(kernel);
    static_assert(Kernel::MR <= kMaxMR && Kernel::NR <= kMaxNR);
    for (size_t r = 0; r < kPeakReps; ++r)
      Kernel::template run<ALayout::Packed>(KC, peak_a, 0, peak_b, 1.f, peak_c, Kernel::NR, Kernel::MR, Kernel::NR,
                                            false, false);
  });
}

double gemm_micro_kernel_flops() {
  double tile = 0;
  with_kernel([&](auto kernel) { tile = double(decltype(kernel)::MR * decltype(kernel)::NR); });
  return 2.0 * double(kPeakReps) * double(KC) * tile;
}

const char* simd_arch_name() { return xsimd::default_arch::name(); }

}  // namespace aep
