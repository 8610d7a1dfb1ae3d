// Inside the GEMM (not for layers): the fast-mode micro-kernels. gemm_avx2.cpp and gemm_avx512.cpp each compile
// fused_tile for their instruction set (gemm_fused.inc with their intrinsics, per-file flags in CMakeLists.txt), so
// that one binary carries both and gemm.cpp picks one at run time.
#pragma once
#include <cstddef>

namespace aep::gemm_detail {

// How a micro-kernel reads its MR rows of op(A): from a packed panel (a[k * MR + r]), or in place from A itself
// (row r, column k at a[r * lda + k], or a[k * lda + r] when transposed).
enum class ALayout { Packed, Rows, Columns };

template <ALayout L, size_t MR>
inline float a_at(const float* a, size_t lda, size_t r, size_t k) {
  if (L == ALayout::Packed) return a[k * MR + r];
  if (L == ALayout::Rows) return a[r * lda + k];
  return a[k * lda + r];
}

// Register tiles: AVX2 has 16 vector registers (6 x 2 ymm accumulators, two of B, one broadcast of A: no spills);
// AVX-512 has 32 (12 x 2 zmm accumulators; 8 x 2 and 14 x 2 measured no faster at model A's shapes on an AMD EPYC
// with AVX-512, which did 16-29 accumulators alike within its noise). NR = 2 vectors keeps batch 64 whole panels.
constexpr size_t kAvx2MR = 6, kAvx2NR = 16;
constexpr size_t kAvx512MR = 12, kAvx512NR = 32;

// One MR x NR tile over kc: acc = sum_k op(A)[r, k] * pb[k, j] with one fused multiply-add per k. A whole tile of a
// C stored row-major (mr = MR, nr = NR, !trans_c) is updated in place, C = alpha * acc + (overwrite ? 0 : C), and the
// call returns true; otherwise alpha * acc goes to tile[r * NR + j] for the caller to store, and it returns false.
// Call only when the CPU has the instruction set (gemm_fast_paths()).
bool micro_avx2(ALayout layout, size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C,
                size_t ldc, size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile);
bool micro_avx512(ALayout layout, size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C,
                  size_t ldc, size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile);

// The kernel both files instantiate, V being their vector type's operations (type, width, zero, broadcast, load,
// loadu, store, storeu, add, mul, fma). Each C element is summed over k in order with one rounding per step (fma), so
// a tile shape gives the same bits wherever it is used; the final alpha * acc + C is rounded twice, as in the
// deterministic kernel, so that gemm and gemm_transposed_c agree bit for bit here too. V is file-local in each user,
// which keeps the two instantiations apart at link time.
template <class V, size_t MR, size_t NV, ALayout L>
inline bool fused_tile(size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C, size_t ldc,
                       size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile) {
  using vec = typename V::type;
  constexpr size_t W = V::width, NR = NV * W;
  vec c[MR][NV];
  for (size_t r = 0; r < MR; ++r)
    for (size_t v = 0; v < NV; ++v) c[r][v] = V::zero();
  for (size_t k = 0; k < kc; ++k) {
    vec b[NV];
    for (size_t v = 0; v < NV; ++v) b[v] = V::load(pb + k * NR + v * W);
    for (size_t r = 0; r < MR; ++r) {
      const vec a = V::broadcast(a_at<L, MR>(pa, lda, r, k));
      for (size_t v = 0; v < NV; ++v) c[r][v] = V::fma(a, b[v], c[r][v]);
    }
  }
  const vec va = V::broadcast(alpha);
  if (!trans_c && mr == MR && nr == NR) {
    for (size_t r = 0; r < MR; ++r)
      for (size_t v = 0; v < NV; ++v) {
        float* dst = C + r * ldc + v * W;
        V::storeu(dst, V::add(V::mul(va, c[r][v]), overwrite ? V::zero() : V::loadu(dst)));
      }
    return true;
  }
  for (size_t r = 0; r < MR; ++r)
    for (size_t v = 0; v < NV; ++v) V::store(tile + r * NR + v * W, V::mul(va, c[r][v]));
  return false;
}

// micro_avx2 / micro_avx512 in terms of fused_tile: the layout chosen once per call.
template <class V, size_t MR, size_t NV>
inline bool fused_tile_any(ALayout layout, size_t kc, const float* pa, size_t lda, const float* pb, float alpha,
                           float* C, size_t ldc, size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile) {
  if (layout == ALayout::Packed)
    return fused_tile<V, MR, NV, ALayout::Packed>(kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c, overwrite, tile);
  if (layout == ALayout::Rows)
    return fused_tile<V, MR, NV, ALayout::Rows>(kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c, overwrite, tile);
  return fused_tile<V, MR, NV, ALayout::Columns>(kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c, overwrite, tile);
}

}  // namespace aep::gemm_detail
