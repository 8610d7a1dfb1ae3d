// PCA by subspace iteration: cheaper than a full 784x784 eigen-decomposition and plenty accurate for k <= 100.
#include "core/pca.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/gemm.hpp"

namespace aep {

void symmetric_eigen(std::vector<double> A, size_t n, std::vector<double>& values, std::vector<double>& vecs) {
  std::vector<double> V(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) V[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) off += A[p * n + q] * A[p * n + q];
    if (off < 1e-22) break;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) {
        double apq = A[p * n + q];
        if (std::fabs(apq) < 1e-300) continue;
        double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t r = 0; r < n; ++r) {  // A = J^T A J
          double arp = A[r * n + p], arq = A[r * n + q];
          A[r * n + p] = c * arp - s * arq;
          A[r * n + q] = s * arp + c * arq;
        }
        for (size_t r = 0; r < n; ++r) {
          double apr = A[p * n + r], aqr = A[q * n + r];
          A[p * n + r] = c * apr - s * aqr;
          A[q * n + r] = s * apr + c * aqr;
        }
        for (size_t r = 0; r < n; ++r) {
          double vrp = V[r * n + p], vrq = V[r * n + q];
          V[r * n + p] = c * vrp - s * vrq;
          V[r * n + q] = s * vrp + c * vrq;
        }
      }
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return A[a * n + a] > A[b * n + b]; });
  values.resize(n);
  vecs.resize(n * n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = A[order[i] * n + order[i]];
    for (size_t r = 0; r < n; ++r) vecs[i * n + r] = V[r * n + order[i]];
  }
}

void orthonormalize_columns(std::vector<float>& Q, size_t dim, size_t p) {
  for (int pass = 0; pass < 2; ++pass)
    for (size_t j = 0; j < p; ++j) {
      for (size_t i = 0; i < j; ++i) {
        double d = 0;
        for (size_t r = 0; r < dim; ++r) d += double(Q[r * p + i]) * Q[r * p + j];
        for (size_t r = 0; r < dim; ++r) Q[r * p + j] -= float(d) * Q[r * p + i];
      }
      double norm = 0;
      for (size_t r = 0; r < dim; ++r) norm += double(Q[r * p + j]) * Q[r * p + j];
      norm = std::sqrt(norm);
      for (size_t r = 0; r < dim; ++r) Q[r * p + j] = norm > 1e-20 ? float(Q[r * p + j] / norm) : 0.f;
    }
}

// Checks the arguments, fills pca's sizes and mean, and returns X with the mean subtracted.
static std::vector<float> centered(const float* X, size_t n, size_t dim, size_t k, Pca& pca) {
  if (n < 2) throw std::runtime_error("PCA needs at least 2 samples");
  if (k == 0 || k > dim) throw std::runtime_error("PCA: k must be between 1 and " + std::to_string(dim));
  pca.dim = dim;
  pca.k = k;
  std::vector<double> mean(dim, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) mean[j] += X[i * dim + j];
  pca.mean.resize(dim);
  for (size_t j = 0; j < dim; ++j) pca.mean[j] = float(mean[j] / double(n));
  std::vector<float> Xc(n * dim);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) Xc[i * dim + j] = X[i * dim + j] - pca.mean[j];
  return Xc;
}

Pca fit_pca(const float* X, size_t n, size_t dim, size_t k, uint64_t seed, size_t iterations) {
  Pca pca;
  const std::vector<float> Xc = centered(X, n, dim, k, pca);
  std::vector<float> C(dim * dim);  // covariance = Xc^T Xc / (n - 1)
  gemm(true, false, dim, dim, n, 1.f / float(n - 1), Xc.data(), dim, Xc.data(), dim, 0.f, C.data(), dim);

  const size_t p = std::min(dim, k + 10);  // oversampling speeds convergence of the k wanted directions
  std::vector<float> Q(dim * p), Z(dim * p);
  Rng rng(seed);
  for (float& q : Q) q = rng.normal();
  orthonormalize_columns(Q, dim, p);
  for (size_t it = 0; it < iterations; ++it) {
    gemm(false, false, dim, p, dim, 1.f, C.data(), dim, Q.data(), p, 0.f, Z.data(), p);
    Q.swap(Z);
    orthonormalize_columns(Q, dim, p);
  }
  // Rayleigh-Ritz: T = Q^T C Q, rotate Q by T's eigenvectors.
  gemm(false, false, dim, p, dim, 1.f, C.data(), dim, Q.data(), p, 0.f, Z.data(), p);
  std::vector<double> T(p * p, 0.0);
  for (size_t a = 0; a < p; ++a)
    for (size_t b = 0; b < p; ++b) {
      double s = 0;
      for (size_t r = 0; r < dim; ++r) s += double(Q[r * p + a]) * Z[r * p + b];
      T[a * p + b] = s;
    }
  for (size_t a = 0; a < p; ++a)
    for (size_t b = a + 1; b < p; ++b) T[a * p + b] = T[b * p + a] = 0.5 * (T[a * p + b] + T[b * p + a]);
  std::vector<double> vals, vecs;
  symmetric_eigen(T, p, vals, vecs);
  pca.components.assign(k * dim, 0.f);
  pca.explained_variance.resize(k);
  for (size_t c = 0; c < k; ++c) {
    pca.explained_variance[c] = float(std::max(vals[c], 0.0));
    for (size_t r = 0; r < dim; ++r) {
      double s = 0;
      for (size_t a = 0; a < p; ++a) s += vecs[c * p + a] * Q[r * p + a];
      pca.components[c * dim + r] = float(s);
    }
  }
  return pca;
}

Pca fit_pca_randomized(const float* X, size_t n, size_t dim, size_t k, uint64_t seed, size_t power_iterations) {
  Pca pca;
  const std::vector<float> Xc = centered(X, n, dim, k, pca);

  const size_t p = std::min(k + 10, std::min(n, dim));
  std::vector<float> Z(dim * p), Y(n * p);  // Z: [dim, p], Y: [n, p]
  Rng rng(seed);
  for (float& z : Z) z = rng.normal();
  for (size_t it = 0;; ++it) {
    gemm(false, false, n, p, dim, 1.f, Xc.data(), dim, Z.data(), p, 0.f, Y.data(), p);  // Y = Xc Z
    orthonormalize_columns(Y, n, p);
    if (it == power_iterations) break;
    gemm(true, false, dim, p, n, 1.f, Xc.data(), dim, Y.data(), p, 0.f, Z.data(), p);  // Z = Xc^T Y
    orthonormalize_columns(Z, dim, p);
  }
  // Xc ~ Y B with B = Y^T Xc [p, dim]; B B^T = U S^2 U^T; the components are the rows of S^-1 U^T B.
  std::vector<float> B(p * dim), T(p * p);
  gemm(true, false, p, dim, n, 1.f, Y.data(), p, Xc.data(), dim, 0.f, B.data(), dim);
  gemm(false, true, p, p, dim, 1.f, B.data(), dim, B.data(), dim, 0.f, T.data(), p);
  std::vector<double> Td(p * p), vals, vecs;
  for (size_t a = 0; a < p; ++a)
    for (size_t b = 0; b < p; ++b) Td[a * p + b] = 0.5 * (double(T[a * p + b]) + T[b * p + a]);
  symmetric_eigen(Td, p, vals, vecs);
  pca.components.assign(k * dim, 0.f);
  pca.explained_variance.assign(k, 0.f);
  for (size_t c = 0; c < k && c < p; ++c) {
    const double s2 = std::max(vals[c], 0.0);
    pca.explained_variance[c] = float(s2 / double(n - 1));
    if (s2 <= 0) continue;
    for (size_t r = 0; r < dim; ++r) {
      double v = 0;
      for (size_t a = 0; a < p; ++a) v += vecs[c * p + a] * B[a * dim + r];
      pca.components[c * dim + r] = float(v / std::sqrt(s2));
    }
  }
  return pca;
}

void Pca::project(const float* x, size_t n, float* codes) const {
  std::vector<float> xc(n * dim);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) xc[i * dim + j] = x[i * dim + j] - mean[j];
  gemm(false, true, n, k, dim, 1.f, xc.data(), dim, components.data(), dim, 0.f, codes, k);
}

void Pca::reconstruct(const float* codes, size_t n, float* x) const {
  for (size_t i = 0; i < n; ++i) std::copy(mean.begin(), mean.end(), x + i * dim);
  gemm(false, false, n, dim, k, 1.f, codes, k, components.data(), dim, 1.f, x, dim);
}

namespace {
std::vector<float> dataset_matrix(const Dataset& d, Normalization norm, size_t max_samples) {
  size_t n = std::min(max_samples, d.count);
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  Tensor x;
  fill_batch(d, idx.data(), n, norm, x);
  return std::vector<float>(x.begin(), x.end());
}
}  // namespace

Pca fit_pca(const Dataset& d, Normalization norm, size_t k, size_t max_samples, uint64_t seed) {
  std::vector<float> X = dataset_matrix(d, norm, max_samples);
  return fit_pca(X.data(), X.size() / (d.rows * d.cols), d.rows * d.cols, k, seed);
}

double pca_reconstruction_mse(const Pca& pca, const Dataset& d, Normalization norm, size_t max_samples) {
  std::vector<float> X = dataset_matrix(d, norm, max_samples);
  size_t n = X.size() / pca.dim;
  std::vector<float> codes(n * pca.k), R(X.size());
  pca.project(X.data(), n, codes.data());
  pca.reconstruct(codes.data(), n, R.data());
  double s = 0;
  for (size_t i = 0; i < X.size(); ++i) s += double(X[i] - R[i]) * (X[i] - R[i]);
  return s / double(X.size());
}

}  // namespace aep
