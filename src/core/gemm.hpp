// Single-precision matrix multiply for every dense and convolution layer, in both passes.
// Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. op(A) = A ([M,K], lda >= K) or, when
// trans_a, A^T with A stored as [K,M] (lda >= M); likewise for B. Transposes are handled while packing,
// so the backward products A*B^T and A^T*B run through the same micro-kernel as A*B.
#pragma once
#include <cstddef>
#include <vector>

namespace aep {

// Which micro-kernel gemm() runs. Deterministic (the default): multiply and add kept separate, every sum in a fixed
// order, so native and wasm builds give the same bits. The fast paths (fast mode) use fused multiply-add with a
// register tile for the instruction set, chosen at run time from what the CPU has: their results differ from the
// deterministic ones (and from each other) in the last bits, so nothing that checks identity may use them.
enum class GemmPath { Deterministic, Avx2Fma, Avx512 };

// The fast paths this build and CPU can run, best first; empty in WebAssembly (no FMA in this toolchain) and on a
// CPU without FMA.
std::vector<GemmPath> gemm_fast_paths();
// The process-wide path (all threads). Throws std::runtime_error for a path the CPU or build lacks.
void set_gemm_path(GemmPath p);
GemmPath gemm_path();
const char* gemm_path_name(GemmPath p);  // "deterministic", "avx2+fma", "avx512"
// Fast mode on: the best fast path, or the one named by the environment variable AEP_GEMM_PATH ("avx2+fma",
// "avx512"; to measure or test a smaller path on a bigger CPU). Off: the deterministic path. Throws when the build or
// CPU has no fast path, or AEP_GEMM_PATH names one it lacks.
void set_fast_mode(bool on);
bool fast_mode();

void gemm(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda,
          const float* B, size_t ldb, float beta, float* C, size_t ldc);

// The same product written transposed: C is stored [N, M] (ldc >= M), element (i, j) at C[j * ldc + i]. A layer
// computes y^T = W x^T with it, so that its big weight matrix W is the A operand, which gemm reads in place.
void gemm_transposed_c(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                       size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc);

// Plain triple loop with double accumulation: the reference the tests compare gemm() against.
void gemm_reference(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, float alpha, const float* A,
                    size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc);

// The current path's micro-kernel alone, for benchmarks: one call runs it many times over one L1-resident pair of
// packed panels (KC deep) into a small C tile. gemm_micro_kernel_flops() is the work of one call.
void gemm_micro_kernel_run();
double gemm_micro_kernel_flops();

// Name of the SIMD instruction set the engine was compiled for ("wasm", "avx512f", "avx2", "sse2", ...).
const char* simd_arch_name();

}  // namespace aep
