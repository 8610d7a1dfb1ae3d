// PCA with k components: the course's baseline (a tied-weight linear autoencoder learns the same subspace).
#pragma once
#include <cstdint>
#include <vector>

#include "core/data.hpp"

namespace aep {

struct Pca {
  size_t dim = 0, k = 0;
  std::vector<float> mean;                // [dim]
  std::vector<float> components;          // [k, dim], orthonormal rows, by decreasing variance
  std::vector<float> explained_variance;  // [k], eigenvalues of the sample covariance
  // codes: [n, k] = (x - mean) * components^T; x: [n, dim]
  void project(const float* x, size_t n, float* codes) const;
  // x: [n, dim] = codes * components + mean
  void reconstruct(const float* codes, size_t n, float* x) const;
};

// X: [n, dim] row-major. Subspace iteration on the covariance (seeded start), then Rayleigh-Ritz.
Pca fit_pca(const float* X, size_t n, size_t dim, size_t k, uint64_t seed = 1, size_t iterations = 100);
// The same by randomized subspace iteration on X itself (Halko, Martinsson & Tropp): about n * dim * (k + 10) *
// (2 * power_iterations + 2) multiply-adds instead of the n * dim^2 of the covariance, for codes of many dimensions
// (2000 codes of 1568: 0.1 s instead of 1 s in wasm). The top components, not the whole spectrum, are accurate.
Pca fit_pca_randomized(const float* X, size_t n, size_t dim, size_t k, uint64_t seed = 1, size_t power_iterations = 2);
// The first max_samples images of a dataset, normalized like the model's input.
Pca fit_pca(const Dataset& d, Normalization norm, size_t k, size_t max_samples = 10000, uint64_t seed = 1);
// Mean squared reconstruction error per pixel of the first max_samples images.
double pca_reconstruction_mse(const Pca& pca, const Dataset& d, Normalization norm, size_t max_samples = 10000);

// Eigen-decomposition of a small symmetric matrix A [n, n] (cyclic Jacobi): eigenvalues descending,
// eigenvectors as the rows of vecs [n, n].
void symmetric_eigen(std::vector<double> A, size_t n, std::vector<double>& values, std::vector<double>& vecs);
// Orthonormalizes the columns of Q [dim, p] in place (modified Gram-Schmidt, twice for stability).
void orthonormalize_columns(std::vector<float>& Q, size_t dim, size_t p);

}  // namespace aep
