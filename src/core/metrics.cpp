// Per-image errors, the checkerboard index, ink distances and ROC AUC (see metrics.hpp).
#include "core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace aep {

void per_image_mse(const float* a, const float* b, size_t n, float* out) {
  const size_t d = 28 * 28;
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) {
      const double e = double(a[i * d + j]) - double(b[i * d + j]);
      s += e * e;
    }
    out[i] = float(s / d);
  }
}

void checkerboard_index(const float* images, size_t n, float* out) {
  constexpr size_t side = 28, d = side * side;
  for (size_t k = 0; k < n; ++k) {
    const float* x = images + k * d;
    double sum = 0, sum_sq = 0, rows = 0, cols = 0, diag = 0;
    for (size_t i = 0; i < side; ++i)
      for (size_t j = 0; j < side; ++j) {
        const double v = x[i * side + j];
        const double ri = (i & 1) ? -v : v;
        sum += v, sum_sq += v * v;
        rows += ri;
        cols += (j & 1) ? -v : v;
        diag += (j & 1) ? -ri : ri;
      }
    const double variation = double(d) * sum_sq - sum * sum;  // the energy at non-zero frequencies (Parseval)
    out[k] = variation > 0 ? float((rows * rows + cols * cols + diag * diag) / variation) : 0.f;
  }
}

void ink_masks(const float* images, size_t n, float threshold, uint64_t* out) {
  constexpr size_t d = 28 * 28;
  for (size_t k = 0; k < n; ++k) {
    uint64_t* m = out + k * kInkWords;
    std::fill(m, m + kInkWords, uint64_t(0));
    for (size_t j = 0; j < d; ++j)
      if (images[k * d + j] > threshold) m[j / 64] |= uint64_t(1) << (j % 64);
  }
}

void nearest_ink_distance(const uint64_t* masks, size_t n, const uint64_t* reference, size_t n_ref, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint64_t* a = masks + i * kInkWords;
    double best = 1;
    for (size_t r = 0; r < n_ref; ++r) {
      const uint64_t* b = reference + r * kInkWords;
      int both = 0, either = 0;
      for (size_t w = 0; w < kInkWords; ++w) both += __builtin_popcountll(a[w] & b[w]), either += __builtin_popcountll(a[w] | b[w]);
      const double dist = either ? 1.0 - double(both) / double(either) : 0.0;
      best = std::min(best, dist);
    }
    out[i] = float(best);
  }
}

double roc_auc(const std::vector<float>& pos, const std::vector<float>& neg) {
  if (pos.empty() || neg.empty()) return NAN;
  std::vector<std::pair<float, int>> all;
  all.reserve(pos.size() + neg.size());
  for (float v : pos) all.push_back({v, 1});
  for (float v : neg) all.push_back({v, 0});
  std::sort(all.begin(), all.end());
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double avg_rank = (i + j + 1) / 2.0;  // 1-based ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += avg_rank;
    i = j;
  }
  const double np = double(pos.size()), nn = double(neg.size());
  return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

ErrorComparison compare_errors(const std::vector<float>& test, const std::vector<float>& foreign, size_t bins) {
  if (test.empty() || foreign.empty()) throw std::runtime_error("comparing errors needs test and foreign errors");
  if (bins == 0) throw std::runtime_error("comparing errors needs at least one histogram bin");
  ErrorComparison c;
  c.test_count = test.size(), c.foreign_count = foreign.size();
  for (const auto* list : {&test, &foreign})
    for (float e : *list) {
      if (!(e >= 0) || !std::isfinite(e))
        throw std::runtime_error("a reconstruction error is " + std::to_string(e) + ": errors are finite and >= 0");
      c.hi = std::max(c.hi, double(e));
    }
  auto fill = [&](const std::vector<float>& errors, double& mean, std::vector<size_t>& hist) {
    hist.assign(bins, 0);
    double sum = 0;
    for (float e : errors) {
      sum += e;
      const size_t k = c.hi > 0 ? size_t(double(e) / c.hi * double(bins)) : 0;
      ++hist[std::min(k, bins - 1)];
    }
    mean = sum / double(errors.size());
  };
  fill(test, c.test_mean, c.test_hist);
  fill(foreign, c.foreign_mean, c.foreign_hist);
  c.ratio = c.test_mean > 0 ? c.foreign_mean / c.test_mean : c.foreign_mean > 0 ? INFINITY : 1.0;
  c.auc = roc_auc(foreign, test);
  return c;
}

}  // namespace aep
