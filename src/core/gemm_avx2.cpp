// The fast-mode GEMM micro-kernel for AVX2 + FMA (16 vector registers): compiled with -mavx2 -mfma -mno-avx512f
// whatever the rest of the build targets, so that it runs on AVX2 machines and measures like one everywhere.
#include <immintrin.h>

#include "core/gemm_fast.hpp"

namespace aep::gemm_detail {
namespace {

struct Ymm {
  using type = __m256;
  static constexpr size_t width = 8;
  static type zero() { return _mm256_setzero_ps(); }
  static type broadcast(float x) { return _mm256_set1_ps(x); }
  static type load(const float* p) { return _mm256_load_ps(p); }
  static type loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, type x) { _mm256_store_ps(p, x); }
  static void storeu(float* p, type x) { _mm256_storeu_ps(p, x); }
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
  static type mul(type a, type b) { return _mm256_mul_ps(a, b); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
};
static_assert(kAvx2NR % Ymm::width == 0);

}  // namespace

bool micro_avx2(ALayout layout, size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C,
                size_t ldc, size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile) {
  return fused_tile_any<Ymm, kAvx2MR, kAvx2NR / Ymm::width>(layout, kc, pa, lda, pb, alpha, C, ldc, mr, nr, trans_c,
                                                            overwrite, tile);
}

}  // namespace aep::gemm_detail
