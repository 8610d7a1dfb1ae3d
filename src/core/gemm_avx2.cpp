// The fast-mode GEMM micro-kernel for AVX2 + FMA (16 vector registers): compiled with -mavx2 -mfma -mno-avx512f
// whatever the rest of the build targets, so that it runs on AVX2 machines and measures like one everywhere.
#define AEP_FUSED_VEC __m256
#define AEP_FUSED_OP(name) _mm256_##name
#define AEP_FUSED_MR kAvx2MR
#define AEP_FUSED_NR kAvx2NR
#define AEP_FUSED_ENTRY micro_avx2
#include "core/gemm_fused.inc"
