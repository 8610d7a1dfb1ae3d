// UMAP tests: clusters survive the embedding (5-NN agreement in 2-D), the neighbour search is exact, the result is
// fixed by the seed however the work is sliced, and bad input is refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/pca.hpp"
#include "core/rng.hpp"
#include "core/umap.hpp"

using namespace aep;

namespace {

// n points in d dimensions around `clusters` random centres (centre coordinates N(0, spread^2), points N(0, 1)
// around them); labels[i] is the cluster of point i.
std::vector<float> gaussian_clusters(size_t n, size_t d, int clusters, float spread, uint64_t seed,
                                     std::vector<int>& labels) {
  Rng rng(seed);
  std::vector<float> centres(size_t(clusters) * d), x(n * d);
  for (float& c : centres) c = spread * rng.normal();
  labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = int(i % size_t(clusters));
    for (size_t j = 0; j < d; ++j) x[i * d + j] = centres[size_t(labels[i]) * d + j] + rng.normal();
  }
  return x;
}

// Leave-one-out 5-nearest-neighbour vote in the 2-D layout: the fraction of points whose label wins it.
double knn5_agreement(const std::vector<float>& xy, const std::vector<int>& labels) {
  const size_t n = labels.size();
  size_t agree = 0;
  std::vector<std::pair<float, size_t>> dist(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      float dx = xy[2 * i] - xy[2 * j], dy = xy[2 * i + 1] - xy[2 * j + 1];
      dist[j] = {j == i ? INFINITY : dx * dx + dy * dy, j};
    }
    std::partial_sort(dist.begin(), dist.begin() + 5, dist.end());
    int votes[64] = {};
    for (int v = 0; v < 5; ++v) ++votes[labels[dist[v].second]];
    agree += int(std::max_element(std::begin(votes), std::end(votes)) - std::begin(votes)) == labels[i];
  }
  return double(agree) / double(n);
}

std::vector<float> run_umap(const std::vector<float>& x, size_t n, size_t d, const UmapParams& p, double budget_ms) {
  Umap u;
  u.begin(x.data(), n, d, p);
  while (!u.step(budget_ms)) {
  }
  return u.embedding();
}

}  // namespace

TEST_CASE("umap: ten Gaussian clusters in 50-d stay separate in 2-D, far better than PCA or a random layout") {
  const size_t n = 1000, d = 50;
  std::vector<int> labels;
  std::vector<float> x = gaussian_clusters(n, d, 10, 1.0f, 11, labels);
  std::vector<float> xy = run_umap(x, n, d, UmapParams{}, 1e9);
  REQUIRE(xy.size() == n * 2);
  for (float v : xy) REQUIRE(std::isfinite(v));

  std::vector<float> random_xy(n * 2), pca_xy(n * 2);
  Rng rng(5);
  for (float& v : random_xy) v = rng.uniform(-10, 10);
  Pca pca = fit_pca(x.data(), n, d, 2);
  pca.project(x.data(), n, pca_xy.data());
  const double umap_score = knn5_agreement(xy, labels), pca_score = knn5_agreement(pca_xy, labels),
               random_score = knn5_agreement(random_xy, labels);
  INFO("5-NN agreement: UMAP " << umap_score << ", PCA " << pca_score << ", random " << random_score);
  CHECK(umap_score > 0.95);
  CHECK(random_score < 0.3);
  CHECK(umap_score > pca_score + 0.1);
}

TEST_CASE("umap: a refresh from the last layout keeps its shape") {
  const size_t n = 600, d = 30;
  std::vector<int> labels;
  std::vector<float> x = gaussian_clusters(n, d, 6, 1.f, 21, labels);
  std::vector<float> first = run_umap(x, n, d, UmapParams{}, 1e9);
  // The codes move a little (as between two refreshes of a training model).
  Rng rng(4);
  for (float& v : x) v += 0.2f * rng.normal();
  UmapParams p;
  p.n_epochs = 60;
  p.learning_rate = 0.5f;
  p.seed = 7;
  Umap u;
  u.begin(x.data(), n, d, p, first.data());
  CHECK(u.has_layout());
  CHECK(u.embedding() == first);
  while (!u.step(1e9)) {
  }
  const std::vector<float>& again = u.embedding();
  CHECK(knn5_agreement(again, labels) > 0.95);
  // Each cluster's centre stays where it was, relative to the spread of the centres.
  auto centres = [&](const std::vector<float>& xy) {
    std::vector<double> c(12, 0.0);
    for (size_t i = 0; i < n; ++i) c[2 * labels[i]] += xy[2 * i] / (n / 6), c[2 * labels[i] + 1] += xy[2 * i + 1] / (n / 6);
    return c;
  };
  std::vector<double> a = centres(first), b = centres(again);
  double moved = 0, spread = 0;
  for (int c = 0; c < 6; ++c) {
    moved = std::max(moved, std::hypot(a[2 * c] - b[2 * c], a[2 * c + 1] - b[2 * c + 1]));
    for (int e = 0; e < 6; ++e) spread = std::max(spread, std::hypot(a[2 * c] - a[2 * e], a[2 * c + 1] - a[2 * e + 1]));
  }
  INFO("largest centre move " << moved << ", largest distance between centres " << spread);
  CHECK(moved < 0.15 * spread);
}

TEST_CASE("umap: the neighbour search is exact across distance tiles") {
  const size_t n = 700, d = 100, k = 15;  // two tiles of rows: diagonal and off-diagonal tiles both run
  std::vector<int> labels;
  std::vector<float> x = gaussian_clusters(n, d, 7, 1.f, 3, labels);
  Umap u;
  UmapParams p;
  p.n_epochs = 1;
  u.begin(x.data(), n, d, p);
  while (!u.step(1e9)) {
  }
  const std::vector<uint32_t>& nn = u.neighbors();
  REQUIRE(nn.size() == n * k);
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::pair<double, uint32_t>> ref;
    for (size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      double s = 0;
      for (size_t c = 0; c < d; ++c) s += double(x[i * d + c] - x[j * d + c]) * (x[i * d + c] - x[j * d + c]);
      ref.push_back({s, uint32_t(j)});
    }
    std::sort(ref.begin(), ref.end());
    // A float Gram-matrix distance may swap two neighbours that are equally near to 1e-4 relative; nothing else.
    for (size_t c = 0; c < k; ++c) {
      uint32_t j = nn[i * k + c];
      auto it = std::find_if(ref.begin(), ref.end(), [&](const auto& r) { return r.second == j; });
      size_t rank = size_t(it - ref.begin());
      if (j == i || rank >= ref.size() || (rank != c && std::fabs(it->first - ref[c].first) > 1e-4 * ref[c].first)) ++wrong;
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("umap: the seed fixes the result, and slicing the work changes nothing") {
  const size_t n = 300, d = 20;
  std::vector<int> labels;
  std::vector<float> x = gaussian_clusters(n, d, 4, 2.f, 8, labels);
  UmapParams p;
  p.n_epochs = 60;
  std::vector<float> whole = run_umap(x, n, d, p, 1e9);
  CHECK(run_umap(x, n, d, p, 1e9) == whole);

  Umap u;
  u.begin(x.data(), n, d, p);
  size_t slices = 0;
  double last = 0;
  bool monotone = true;
  while (!u.step(0)) {  // budget 0: exactly one unit per call
    ++slices;
    monotone = monotone && u.progress() >= last && u.progress() < 1;
    last = u.progress();
    for (float v : u.embedding()) REQUIRE(std::isfinite(v));
  }
  CHECK(slices > 20);
  CHECK(monotone);
  CHECK(u.progress() == 1);
  CHECK(u.embedding() == whole);

  p.seed = 2;
  CHECK(run_umap(x, n, d, p, 1e9) != whole);
}

TEST_CASE("umap: identical points and a 1-d input still give a finite layout") {
  std::vector<float> same(40 * 3, 0.25f);
  for (float v : run_umap(same, 40, 3, UmapParams{}, 1e9)) CHECK(std::isfinite(v));
  std::vector<float> line(60);
  std::iota(line.begin(), line.end(), 0.f);
  std::vector<float> xy = run_umap(line, 60, 1, UmapParams{}, 1e9);
  for (float v : xy) CHECK(std::isfinite(v));
  // Neighbours on the line stay nearer in 2-D than the two ends.
  auto dist = [&](size_t i, size_t j) { return std::hypot(xy[2 * i] - xy[2 * j], xy[2 * i + 1] - xy[2 * j + 1]); };
  CHECK(dist(0, 1) < dist(0, 59));
}

TEST_CASE("umap: bad input is refused with a message, and the object stays idle") {
  std::vector<float> x(20 * 4, 1.f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7);
  std::vector<float> with_nan = x, with_inf = x;
  with_nan[13] = NAN;
  with_inf[42] = -INFINITY;
  UmapParams zero_epochs, bad_b;
  zero_epochs.n_epochs = 0;
  bad_b.b = 1.5f;
  struct Bad {
    const std::vector<float>* x;
    size_t n, d;
    UmapParams p;
    const char* error;
  };
  const Bad bad[] = {
      {&x, 15, 4, UmapParams{}, "needs more points than neighbours (got 15 points, k = 15)"},
      {&x, 20, 0, UmapParams{}, "no dimensions"},
      {&with_nan, 20, 4, UmapParams{}, "point 3, dimension 1 is not finite"},
      {&with_inf, 20, 4, UmapParams{}, "point 10, dimension 2 is not finite"},
      {&x, 20, 4, zero_epochs, "n_epochs >= 1"},
      {&x, 20, 4, bad_b, "0 < b <= 1"},
  };
  const std::vector<float> bad_start(40, NAN);
  {
    Umap u;
    CHECK_THROWS_WITH_AS(u.begin(x.data(), 20, 4, UmapParams{}, bad_start.data()),
                         doctest::Contains("start layout of point 0 is not finite"), std::invalid_argument);
    CHECK(!u.running());
  }
  for (const Bad& b : bad) {
    INFO(b.error);
    Umap u;
    std::string what;
    try {
      u.begin(b.x->data(), b.n, b.d, b.p);
    } catch (const std::invalid_argument& e) {
      what = e.what();
    }
    CHECK(what.find(b.error) != std::string::npos);
    CHECK(!u.running());
    CHECK(u.step(1e9));
    CHECK(u.embedding().empty());
  }
}
