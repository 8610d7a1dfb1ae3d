// The fast-mode GEMM micro-kernel for AVX-512 (32 vector registers): compiled with -mavx512f -mfma
// whatever the rest of the build targets; gemm.cpp calls it only when the CPU has AVX-512.
#include <immintrin.h>

#include "core/gemm_fast.hpp"

namespace aep::gemm_detail {
namespace {

struct Zmm {
  using type = __m512;
  static constexpr size_t width = 16;
  static type zero() { return _mm512_setzero_ps(); }
  static type broadcast(float x) { return _mm512_set1_ps(x); }
  static type load(const float* p) { return _mm512_load_ps(p); }
  static type loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, type x) { _mm512_store_ps(p, x); }
  static void storeu(float* p, type x) { _mm512_storeu_ps(p, x); }
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
  static type mul(type a, type b) { return _mm512_mul_ps(a, b); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
};
static_assert(kAvx512NR % Zmm::width == 0);

}  // namespace

bool micro_avx512(ALayout layout, size_t kc, const float* pa, size_t lda, const float* pb, float alpha, float* C,
                  size_t ldc, size_t mr, size_t nr, bool trans_c, bool overwrite, float* tile) {
  return fused_tile_any<Zmm, kAvx512MR, kAvx512NR / Zmm::width>(layout, kc, pa, lda, pb, alpha, C, ldc, mr, nr,
                                                                trans_c, overwrite, tile);
}

}  // namespace aep::gemm_detail
