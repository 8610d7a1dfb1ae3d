// The fast-mode GEMM micro-kernel for AVX-512 (32 vector registers): compiled with -mavx512f -mfma whatever the rest
// of the build targets; gemm.cpp calls it only when the CPU has AVX-512.
#define AEP_FUSED_VEC __m512
#define AEP_FUSED_OP(name) _mm512_##name
#define AEP_FUSED_MR kAvx512MR
#define AEP_FUSED_NR kAvx512NR
#define AEP_FUSED_ENTRY micro_avx512
#include "core/gemm_fused.inc"
