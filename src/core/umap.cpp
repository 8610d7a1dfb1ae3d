// UMAP as a sequence of small units of work (see umap.hpp for the stages); each unit is a few milliseconds for the
// playground's 2000 codes of up to 1568 dimensions, natively and in WebAssembly.
#include "core/umap.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/gemm.hpp"
#include "core/pca.hpp"

namespace aep {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Two components plus oversampling, and one power iteration: a start for the layout needs no more accuracy.
constexpr size_t kPcaColumns = 8;
constexpr size_t kPcaProducts = 4;  // Y = X Omega, Z = X^T Y, Y = X Z, then B = Y^T X for the Rayleigh-Ritz step
constexpr size_t kPcaRows = 256, kSigmaChunk = 256, kEdgeChunk = 8192;
constexpr int kSigmaIterations = 64;
constexpr float kInitBox = 10.f;
// Work in the time of one multiply-add of the distance tiles, measured natively, to weigh the stages against each
// other in progress(): centring per value, PCA per multiply-add (thin GEMMs), the rest per neighbour (and epoch).
constexpr double kCentreWork = 35, kPcaWork = 5, kSigmaWork = 3000, kGraphWork = 1000, kOptimizeWork = 2500;
constexpr size_t kTileOverhead = 64;  // per pair: the distance and two heap offers

// Side of the square distance tiles: about 2^24 multiply-adds each (a few ms in wasm), 64..512 rows.
size_t tile_side(size_t d) {
  size_t t = size_t(std::sqrt(double(1 << 24) / double(d)) / 64 + 0.5) * 64;
  return std::clamp<size_t>(t, 64, 512);
}

// Max-heap order on (squared distance, index): ties go to the lower index, so the result does not depend on the
// order the candidates arrive in.
bool before(float da, uint32_t ia, float db, uint32_t ib) { return da < db || (da == db && ia < ib); }

void heap_offer(float* dist, uint32_t* index, size_t k, float d, uint32_t j) {
  if (!before(d, j, dist[0], index[0])) return;
  dist[0] = d, index[0] = j;
  for (size_t pos = 0;;) {
    size_t c = 2 * pos + 1;
    if (c >= k) break;
    if (c + 1 < k && before(dist[c], index[c], dist[c + 1], index[c + 1])) ++c;
    if (!before(dist[pos], index[pos], dist[c], index[c])) break;
    std::swap(dist[pos], dist[c]);
    std::swap(index[pos], index[c]);
    pos = c;
  }
}

float clip4(float g) { return std::clamp(g, -4.f, 4.f); }
}  // namespace

void Umap::clear() { *this = Umap(); }

void Umap::begin(const float* x, size_t n, size_t d, const UmapParams& params, const float* start) {
  std::vector<float> keep = std::move(x_);  // its pages, already touched: a refresh need not fault them in again
  clear();
  x_ = std::move(keep);
  x_.clear();
  const size_t k = params.n_neighbors;
  if (k < 1) throw std::invalid_argument("UMAP: n_neighbors must be at least 1");
  if (n <= k)
    throw std::invalid_argument("UMAP: needs more points than neighbours (got " + std::to_string(n) + " points, k = " +
                                std::to_string(k) + ")");
  if (n > std::numeric_limits<uint32_t>::max() / 2) throw std::invalid_argument("UMAP: too many points");
  if (d == 0) throw std::invalid_argument("UMAP: the points have no dimensions");
  if (params.n_epochs < 1 || !(params.learning_rate > 0) || !(params.a > 0) || !(params.b > 0) || params.b > 1)
    throw std::invalid_argument("UMAP: n_epochs >= 1, learning_rate > 0, a > 0 and 0 < b <= 1 are required");
  for (size_t i = 0; i < n * d; ++i)
    if (!std::isfinite(x[i]))
      throw std::invalid_argument("UMAP: point " + std::to_string(i / d) + ", dimension " + std::to_string(i % d) +
                                  " is not finite (" + std::to_string(x[i]) + ")");
  for (size_t i = 0; start && i < n * 2; ++i)
    if (!std::isfinite(start[i]))
      throw std::invalid_argument("UMAP: the start layout of point " + std::to_string(i / 2) + " is not finite");
  p_ = params;
  n_ = n, d_ = d, k_ = k;
  x_.assign(x, x + n * d);
  if (start) embedding_.assign(start, start + n * 2);
  else embedding_.assign(n * 2, 0.f);
  given_start_ = start != nullptr;
  rng_.reseed(params.seed + 1);
  tile_ = tile_side(d);
  const size_t blocks = (n + tile_ - 1) / tile_;
  double tiles = 0;
  for (size_t i = 0; i < blocks; ++i)
    for (size_t j = i; j < blocks; ++j)
      tiles += double(std::min(tile_, n - i * tile_)) * double(std::min(tile_, n - j * tile_)) * double(d + kTileOverhead);
  const double nk = double(n) * double(k);
  const double pca = start ? 0 : kPcaWork * double(kPcaProducts) * n * d * std::min(kPcaColumns, std::min(n, d));
  work_total_ = kCentreWork * n * d + pca + tiles + nk * kSigmaWork + nk * kGraphWork +
                nk * double(p_.n_epochs) * kOptimizeWork;
  stage_ = Stage::Centre;
}

double Umap::progress() const {
  if (stage_ == Stage::Done) return 1;
  if (stage_ == Stage::Idle || work_total_ <= 0) return 0;
  return std::min(0.999, work_done_ / work_total_);
}

const char* Umap::stage_name() const {
  switch (stage_) {
    case Stage::Idle: return "idle";
    case Stage::Centre: return "centre";
    case Stage::Pca: return "pca";
    case Stage::Neighbors: return "neighbors";
    case Stage::Sigmas: return "sigmas";
    case Stage::Graph: return "graph";
    case Stage::Optimize: return "optimize";
    case Stage::Done: return "done";
  }
  return "";
}

bool Umap::step(double budget_ms) {
  const auto t0 = Clock::now();
  while (running()) {
    const auto tu = Clock::now();
    switch (stage_) {
      case Stage::Centre: centre(); break;
      case Stage::Pca: pca_unit(); break;
      case Stage::Neighbors: neighbors_unit(); break;
      case Stage::Sigmas: sigmas_unit(); break;
      case Stage::Graph: build_graph(); break;
      case Stage::Optimize: optimize_unit(); break;
      default: break;
    }
    last_unit_ms_ = ms_since(tu);
    if (ms_since(t0) + last_unit_ms_ > budget_ms) break;
  }
  return !running();
}

// Centring changes no distance, makes the squared norms small (less cancellation in |a|^2 + |b|^2 - 2ab) and is
// what PCA needs. Two passes over blocks of kPcaRows rows: the column sums, then subtracting the mean.
void Umap::centre() {
  const size_t blocks = (n_ + kPcaRows - 1) / kPcaRows;
  const size_t block = part_ % blocks, row0 = block * kPcaRows, row1 = std::min(n_, row0 + kPcaRows);
  if (part_ == 0) mean_.assign(d_, 0.0);
  if (part_ < blocks) {
    for (size_t i = row0; i < row1; ++i)
      for (size_t j = 0; j < d_; ++j) mean_[j] += x_[i * d_ + j];
  } else {
    if (block == 0) {
      for (double& m : mean_) m /= double(n_);
      sq_norm_.assign(n_, 0.f);
    }
    for (size_t i = row0; i < row1; ++i) {
      double s = 0;
      float* row = x_.data() + i * d_;
      for (size_t j = 0; j < d_; ++j) {
        row[j] = float(row[j] - mean_[j]);
        s += double(row[j]) * row[j];
      }
      sq_norm_[i] = float(s);
    }
  }
  work_done_ += kCentreWork * double(row1 - row0) * d_ / 2;
  if (++part_ < 2 * blocks) return;
  mean_ = {};
  if (given_start_) return start_neighbors();
  const size_t p = std::min(kPcaColumns, std::min(n_, d_));
  Rng rng(p_.seed);
  z_.resize(d_ * p);  // the random start Omega
  for (float& v : z_) v = rng.normal();
  y_.resize(n_ * p);
  stage_ = Stage::Pca;
  pos_ = part_ = 0;
}

// Randomized subspace iteration (Halko, Martinsson & Tropp) for the top two principal components. Each product
// with X runs over blocks of kPcaRows rows, a unit each; products over all points are accumulated block by block.
void Umap::pca_unit() {
  const size_t p = std::min(kPcaColumns, std::min(n_, d_));
  const size_t row0 = part_ * kPcaRows, rows = std::min(kPcaRows, n_ - row0);
  const float* Xb = x_.data() + row0 * d_;
  float* Yb = y_.data() + row0 * p;
  const bool last = pos_ + 1 == kPcaProducts;
  if (last)  // B = Y^T X: [p, d], kept in z_
    gemm(true, false, p, d_, rows, 1.f, Yb, p, Xb, d_, part_ ? 1.f : 0.f, z_.data(), d_);
  else if (pos_ % 2 == 0)  // Y = X Z: [n, p]
    gemm(false, false, rows, p, d_, 1.f, Xb, d_, z_.data(), p, 0.f, Yb, p);
  else  // Z = X^T Y: [d, p]
    gemm(true, false, d_, p, rows, 1.f, Xb, d_, Yb, p, part_ ? 1.f : 0.f, z_.data(), p);
  work_done_ += double(rows) * d_ * p * kPcaWork;
  if (row0 + rows < n_) {
    ++part_;
    return;
  }
  part_ = 0;
  if (!last) {
    if (pos_ % 2 == 0) orthonormalize_columns(y_, n_, p);
    else orthonormalize_columns(z_, d_, p);
    ++pos_;
    return;
  }
  start_layout(p);
}

// The PCA scores, scaled into [-10, 10]: X ~ Y B and B B^T = U S^2 U^T give the scores X v_c = Y U_c s_c.
void Umap::start_layout(size_t p) {
  std::vector<float> C(p * p);
  gemm(false, true, p, p, d_, 1.f, z_.data(), d_, z_.data(), d_, 0.f, C.data(), p);
  std::vector<double> Cd(p * p), values, vectors;
  for (size_t a = 0; a < p; ++a)
    for (size_t b = 0; b < p; ++b) Cd[a * p + b] = 0.5 * (double(C[a * p + b]) + C[b * p + a]);
  symmetric_eigen(Cd, p, values, vectors);
  for (size_t c = 0; c < 2 && c < p; ++c) {
    const double s = std::sqrt(std::max(values[c], 0.0));
    double cubes = 0;
    for (size_t i = 0; i < n_; ++i) {
      double v = 0;
      for (size_t a = 0; a < p; ++a) v += double(y_[i * p + a]) * vectors[c * p + a];
      embedding_[i * 2 + c] = float(v * s);
      cubes += v * v * v;
    }
    if (cubes < 0)  // a fixed sign (the longer tail positive) keeps successive refreshes from mirroring
      for (size_t i = 0; i < n_; ++i) embedding_[i * 2 + c] = -embedding_[i * 2 + c];
  }
  float extent = 0;
  for (float v : embedding_) extent = std::max(extent, std::fabs(v));
  Rng rng(p_.seed + 2);
  if (extent > 0 && std::isfinite(extent)) {
    for (float& v : embedding_) v = v * (kInitBox / extent) + 1e-4f * rng.normal();  // noise splits duplicates
  } else {  // all points equal: nothing to project
    for (float& v : embedding_) v = rng.uniform(-kInitBox, kInitBox);
  }
  y_ = {};
  z_ = {};
  start_neighbors();
}

void Umap::start_neighbors() {
  stage_ = Stage::Neighbors;
  tile_i_ = tile_j_ = 0;
  gram_tile_.assign(tile_ * tile_, 0.f);
  heap_dist_.assign(n_ * k_, std::numeric_limits<float>::infinity());
  knn_index_.assign(n_ * k_, std::numeric_limits<uint32_t>::max());
}

// One tile of the Gram matrix X_I X_J^T (J >= I: the matrix is symmetric) turned into squared distances, each
// offered to both points' heaps of the k nearest.
void Umap::neighbors_unit() {
  const size_t i0 = tile_i_ * tile_, j0 = tile_j_ * tile_;
  const size_t rows = std::min(tile_, n_ - i0), cols = std::min(tile_, n_ - j0);
  float* G = gram_tile_.data();
  gemm(false, true, rows, cols, d_, 1.f, x_.data() + i0 * d_, d_, x_.data() + j0 * d_, d_, 0.f, G, cols);
  const bool diagonal = tile_i_ == tile_j_;
  for (size_t r = 0; r < rows; ++r) {
    const uint32_t i = uint32_t(i0 + r);
    float* di = heap_dist_.data() + size_t(i) * k_;
    uint32_t* ii = knn_index_.data() + size_t(i) * k_;
    for (size_t c = 0; c < cols; ++c) {
      const uint32_t j = uint32_t(j0 + c);
      if (diagonal && j <= i) continue;  // the diagonal tile's lower half repeats its upper half
      const float dd = std::max(0.f, sq_norm_[i] + sq_norm_[j] - 2.f * G[r * cols + c]);
      heap_offer(di, ii, k_, dd, j);
      heap_offer(heap_dist_.data() + size_t(j) * k_, knn_index_.data() + size_t(j) * k_, k_, dd, i);
    }
  }
  work_done_ += double(rows) * cols * double(d_ + kTileOverhead);
  const size_t blocks = (n_ + tile_ - 1) / tile_;
  if (++tile_j_ < blocks) return;
  if (++tile_i_ < blocks) {
    tile_j_ = tile_i_;
    return;
  }
  // All pairs seen: sort each point's neighbours, nearest first.
  knn_dist_.resize(n_ * k_);
  std::vector<std::pair<float, uint32_t>> row(k_);
  double sum = 0;
  for (size_t i = 0; i < n_; ++i) {
    for (size_t c = 0; c < k_; ++c) row[c] = {heap_dist_[i * k_ + c], knn_index_[i * k_ + c]};
    std::sort(row.begin(), row.end());
    for (size_t c = 0; c < k_; ++c) {
      knn_dist_[i * k_ + c] = std::sqrt(row[c].first);
      knn_index_[i * k_ + c] = row[c].second;
      sum += knn_dist_[i * k_ + c];
    }
  }
  mean_distance_ = sum / double(n_ * k_);
  sq_norm_ = {};
  gram_tile_ = {};
  heap_dist_ = {};
  knn_weight_.assign(n_ * k_, 0.f);
  stage_ = Stage::Sigmas;
  pos_ = 0;
}

// Per point: rho, the distance to its nearest neighbour (so every point is connected to at least one other with
// weight 1), and sigma by bisection so that its k weights exp(-(d - rho) / sigma) sum to log2(k).
void Umap::sigmas_unit() {
  const double target = std::log2(double(k_));
  const size_t end = std::min(n_, pos_ + kSigmaChunk);
  for (size_t i = pos_; i < end; ++i) {
    const float* dist = knn_dist_.data() + i * k_;
    double rho = 0, mean = 0;
    for (size_t c = 0; c < k_; ++c) {
      if (rho == 0 && dist[c] > 0) rho = dist[c];
      mean += dist[c] / double(k_);
    }
    double lo = 0, hi = std::numeric_limits<double>::infinity(), sigma = 1;
    for (int it = 0; it < kSigmaIterations; ++it) {
      double sum = 0;
      for (size_t c = 0; c < k_; ++c) {
        double e = dist[c] - rho;
        sum += e > 0 ? std::exp(-e / sigma) : 1.0;
      }
      if (std::fabs(sum - target) < 1e-5) break;
      if (sum > target) hi = sigma, sigma = 0.5 * (lo + hi);
      else lo = sigma, sigma = std::isinf(hi) ? 2 * sigma : 0.5 * (lo + hi);
    }
    // As umap-learn: sigma no smaller than a thousandth of the typical distance (points in a tight clump).
    sigma = std::max(sigma, 1e-3 * (rho > 0 ? mean : mean_distance_));
    for (size_t c = 0; c < k_; ++c) {
      double e = dist[c] - rho;
      knn_weight_[i * k_ + c] = e > 0 && sigma > 0 ? float(std::exp(-e / sigma)) : 1.f;
    }
  }
  work_done_ += double(end - pos_) * k_ * kSigmaWork;
  pos_ = end;
  if (pos_ == n_) stage_ = Stage::Graph;
}

// The fuzzy union of the directed kNN graph with its transpose: w = p + q - p q, q found in the other point's list.
// Edges too weak to be sampled once in n_epochs are dropped; the others are sampled every max_w / w epochs. Both
// directions of each edge are kept, grouped by head (a counting sort, no comparisons).
void Umap::build_graph() {
  struct Pair {
    uint32_t a, b;
    float w;
  };
  std::vector<Pair> pairs;
  pairs.reserve(n_ * k_);
  float w_max = 0;
  for (size_t i = 0; i < n_; ++i)
    for (size_t c = 0; c < k_; ++c) {
      const uint32_t j = knn_index_[i * k_ + c];
      const uint32_t* back = knn_index_.data() + size_t(j) * k_;
      const size_t at = size_t(std::find(back, back + k_, uint32_t(i)) - back);
      if (at < k_ && j < i) continue;  // a mutual pair, counted from j's side
      const float w = knn_weight_[i * k_ + c], q = at < k_ ? knn_weight_[size_t(j) * k_ + at] : 0.f;
      pairs.push_back({uint32_t(i), j, w + q - w * q});
      w_max = std::max(w_max, pairs.back().w);
    }
  std::vector<size_t> first(n_ + 1, 0);  // edges of head h: [first[h], first[h + 1])
  for (const Pair& e : pairs)
    if (e.w >= w_max / float(p_.n_epochs)) ++first[e.a + 1], ++first[e.b + 1];
  for (size_t h = 0; h < n_; ++h) first[h + 1] += first[h];
  edges_.resize(first[n_]);
  for (const Pair& e : pairs) {
    if (!(e.w >= w_max / float(p_.n_epochs))) continue;
    const float every = w_max / e.w;
    edges_[first[e.a]++] = {e.a, e.b, every};
    edges_[first[e.b]++] = {e.b, e.a, every};
  }
  next_sample_.resize(edges_.size());
  next_negative_.resize(edges_.size());
  for (size_t e = 0; e < edges_.size(); ++e) {
    next_sample_[e] = edges_[e].epochs_per_sample;
    next_negative_[e] = double(edges_[e].epochs_per_sample) / double(p_.negative_samples);
  }
  knn_weight_ = {};
  knn_dist_ = {};
  work_done_ += double(n_) * k_ * kGraphWork;
  stage_ = Stage::Optimize;
  epoch_ = 1;
  pos_ = 0;
}

// A chunk of edges of the current epoch. Attraction along an edge moves both ends; each attractive sample brings
// negative_samples repulsions from random points, which move only the edge's head. Every gradient coordinate is
// clipped to +-4 (the far-field forces are otherwise unbounded near zero distance).
void Umap::optimize_unit() {
  const float a = p_.a, b = p_.b;
  const float alpha = p_.learning_rate * (1.f - float(epoch_ - 1) / float(p_.n_epochs));
  const double epoch = double(epoch_);
  const size_t end = std::min(edges_.size(), pos_ + kEdgeChunk);
  float* Y = embedding_.data();
  for (size_t e = pos_; e < end; ++e) {
    if (next_sample_[e] > epoch) continue;
    const Edge& edge = edges_[e];
    float* yi = Y + size_t(edge.head) * 2;
    float* yj = Y + size_t(edge.tail) * 2;
    float dx = yi[0] - yj[0], dy = yi[1] - yj[1];
    float d2 = dx * dx + dy * dy;
    if (d2 > 0) {
      const float pb = std::pow(d2, b);  // d^(2b)
      const float coef = -2.f * a * b * (pb / d2) / (a * pb + 1.f);
      const float gx = clip4(coef * dx), gy = clip4(coef * dy);
      yi[0] += alpha * gx, yi[1] += alpha * gy;
      yj[0] -= alpha * gx, yj[1] -= alpha * gy;
    }
    next_sample_[e] += edge.epochs_per_sample;

    const double every = double(edge.epochs_per_sample) / double(p_.negative_samples);
    const int negatives = int((epoch - next_negative_[e]) / every);
    for (int s = 0; s < negatives; ++s) {
      const uint32_t m = rng_.below(uint32_t(n_));
      if (m == edge.head) continue;
      const float* ym = Y + size_t(m) * 2;
      dx = yi[0] - ym[0], dy = yi[1] - ym[1];
      d2 = dx * dx + dy * dy;
      if (!(d2 > 0)) continue;
      const float coef = 2.f * b / ((0.001f + d2) * (a * std::pow(d2, b) + 1.f));
      yi[0] += alpha * clip4(coef * dx), yi[1] += alpha * clip4(coef * dy);
    }
    if (negatives > 0) next_negative_[e] += negatives * every;
  }
  work_done_ += double(n_) * k_ * kOptimizeWork * double(end - pos_) / double(edges_.size());
  pos_ = end;
  if (pos_ < edges_.size()) return;
  pos_ = 0;
  if (++epoch_ <= p_.n_epochs) return;
  edges_ = {};
  next_sample_ = {};
  next_negative_ = {};
  stage_ = Stage::Done;
}

}  // namespace aep
