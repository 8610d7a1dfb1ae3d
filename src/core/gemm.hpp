// Single-precision matrix multiply for every dense and convolution layer, in both passes.
// Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. op(A) = A ([M,K], lda >= K) or, when
// trans_a, A^T with A stored as [K,M] (lda >= M); likewise for B. Transposes are handled while packing,
// so the backward products A*B^T and A^T*B run through the same micro-kernel as A*B.
#pragma once
#include <cstddef>

namespace aep {

void gemm(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda,
          const float* B, size_t ldb, float beta, float* C, size_t ldc);

// The same product written transposed: C is stored [N, M] (ldc >= M), element (i, j) at C[j * ldc + i]. A layer
// computes y^T = W x^T with it, so that its big weight matrix W is the A operand, which gemm reads in place.
void gemm_transposed_c(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                       size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc);

// Plain triple loop with double accumulation: the reference the tests compare gemm() against.
void gemm_reference(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                    size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc);

// The micro-kernel alone, for benchmarks: one call runs it many times over one L1-resident pair of packed
// panels (KC deep) into a small C tile. gemm_micro_kernel_flops() is the work of one call.
void gemm_micro_kernel_run();
double gemm_micro_kernel_flops();

// Name of the SIMD instruction set the engine was compiled for ("wasm", "avx512f", "avx2", "sse2", ...).
const char* simd_arch_name();

}  // namespace aep
