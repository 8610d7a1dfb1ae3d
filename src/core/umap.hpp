// UMAP (McInnes, Healy & Melville, 2018) of a few thousand points to 2-D, for the Latent panel's view of codes
// larger than 2-d. Computed in slices of a few milliseconds so the playground's frames never stall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/rng.hpp"

namespace aep {

struct UmapParams {
  size_t n_neighbors = 15;      // k nearest other points of each point
  size_t n_epochs = 200;        // passes of the layout optimization
  size_t negative_samples = 5;  // repulsive samples per attractive one
  float learning_rate = 1.f;    // decays linearly to 0 over the epochs
  // The embedding's similarity curve 1 / (1 + a d^(2b)), fitted to min_dist = 0.1, spread = 1 (umap-learn's default).
  float a = 1.577f, b = 0.895f;
  uint64_t seed = 1;
};

// Usage: begin(x, n, d); then step(budget_ms) once per frame until it returns true; embedding() at any time.
// Stages: centre the data; its 2-D PCA projection (randomized subspace iteration) scaled to [-10, 10] as the start;
// exact k nearest neighbours from GEMM tiles of the Gram matrix; per point the distance rho to its nearest neighbour
// and the sigma with sum_j exp(-(d_j - rho) / sigma) = log2(k); the fuzzy union p + q - pq of the two directions of
// every edge; stochastic gradient descent over the edges (each sampled in proportion to its weight) with negative
// sampling. The same seed and input give the same embedding, however the work is sliced.
class Umap {
 public:
  // Starts on x: [n, d] row-major, copied. Throws std::invalid_argument on n <= n_neighbors, d == 0, a value that
  // is not finite, or parameters out of range; a failed begin() leaves the object idle. A start layout [n, 2]
  // (e.g. the embedding of the same points' earlier codes) replaces the PCA start, so a refresh keeps its shape.
  void begin(const float* x, size_t n, size_t d, const UmapParams& params = {}, const float* start = nullptr);
  // Works for about budget_ms (at least one unit: a distance tile, a chunk of points or edges); returns true once
  // the embedding is finished (and at once when idle or done).
  bool step(double budget_ms);
  void clear();  // back to idle, memory released

  bool running() const { return stage_ != Stage::Idle && stage_ != Stage::Done; }
  bool done() const { return stage_ == Stage::Done; }
  // embedding() holds the start layout or better
  bool has_layout() const { return stage_ >= Stage::Neighbors || (given_start_ && stage_ != Stage::Idle); }
  double progress() const;  // 0..1 of the estimated work; 1 when done
  // "idle", "centre", "pca", "neighbors", "sigmas", "graph", "optimize" or "done".
  const char* stage_name() const;
  size_t size() const { return n_; }
  // [n, 2]: zeros until the PCA start is computed, then the layout as optimized so far.
  const std::vector<float>& embedding() const { return embedding_; }
  // [n, k] indices of each point's nearest other points, nearest first (ties by index); once past that stage.
  const std::vector<uint32_t>& neighbors() const { return knn_index_; }

 private:
  enum class Stage { Idle, Centre, Pca, Neighbors, Sigmas, Graph, Optimize, Done };
  void centre();
  void pca_unit();
  void start_layout(size_t p);
  void start_neighbors();
  void neighbors_unit();
  void sigmas_unit();
  void build_graph();
  void optimize_unit();

  UmapParams p_;
  Stage stage_ = Stage::Idle;
  bool given_start_ = false;
  size_t n_ = 0, d_ = 0, k_ = 0;
  size_t pos_ = 0, part_ = 0;      // progress within the stage: PCA product and row block; point; edge
  double work_done_ = 0, work_total_ = 0, last_unit_ms_ = 0;  // work in rough multiply-add counts
  std::vector<float> x_;           // [n, d], centred
  std::vector<double> mean_;       // [d]
  std::vector<float> sq_norm_;     // [n]
  std::vector<float> y_, z_;       // PCA subspace: [n, p] and [d, p]
  size_t tile_ = 0, tile_i_ = 0, tile_j_ = 0;
  std::vector<float> gram_tile_;   // [tile, tile]
  std::vector<float> heap_dist_;   // [n, k] squared distances, a max-heap per point while searching
  std::vector<uint32_t> knn_index_;  // [n, k]
  std::vector<float> knn_dist_;    // [n, k] distances, nearest first
  std::vector<float> knn_weight_;  // [n, k] membership strengths exp(-(d - rho) / sigma)
  double mean_distance_ = 0;
  struct Edge {
    uint32_t head, tail;
    float epochs_per_sample;
  };
  std::vector<Edge> edges_;        // both directions of every edge, grouped by head
  std::vector<double> next_sample_, next_negative_;  // [edges] epoch of the next attractive / negative samples
  size_t epoch_ = 0;
  std::vector<float> embedding_;   // [n, 2]
  Rng rng_;                        // negative samples
};

}  // namespace aep
