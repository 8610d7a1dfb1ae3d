// Softmax regression and k-NN on features, the labelled subset, and the sliced probe of codes, pixels and PCA codes.
#include "core/probe.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/gemm.hpp"
#include "core/instruments.hpp"
#include "core/mathfn.hpp"
#include "core/optim.hpp"

namespace aep {

namespace {
constexpr size_t kClasses = SoftmaxRegression::kClasses;
constexpr size_t kFeatureBatch = 250;

void need_labels(const Dataset& d) {
  if (d.labels.empty())
    throw std::runtime_error("the probe needs labels, and '" + d.name +
                             "' has none (images without labels can be reconstructed and scored, not probed)");
  if (d.labels.size() != d.count) throw std::runtime_error("'" + d.name + "': labels and images differ in number");
  for (uint8_t l : d.labels)
    if (l >= kClasses)
      throw std::runtime_error("'" + d.name + "': label " + std::to_string(l) + " is not a digit 0-9");
}
}  // namespace

std::vector<uint32_t> balanced_label_subset(const Dataset& d, size_t n, uint64_t seed) {
  need_labels(d);
  if (n < kClasses || n > d.count)
    throw std::runtime_error("the probe's label count must be between " + std::to_string(kClasses) + " and " +
                             std::to_string(d.count) + " (the images of '" + d.name + "'), got " + std::to_string(n));
  std::vector<std::vector<uint32_t>> per(kClasses);
  for (uint32_t i = 0; i < d.count; ++i) per[d.labels[i]].push_back(i);
  Rng rng(seed);
  for (auto& p : per) rng.shuffle(p);
  std::vector<uint32_t> out;
  out.reserve(n);
  for (size_t round = 0; out.size() < n; ++round)
    for (size_t c = 0; c < kClasses && out.size() < n; ++c)
      if (round < per[c].size()) out.push_back(per[c][round]);
  return out;
}

// ------------------------------------------------------------------------------------------ softmax regression

void SoftmaxRegression::begin(const float* X, const uint8_t* y, size_t n, size_t dim, float lr, float l2) {
  if (n == 0 || dim == 0) throw std::runtime_error("softmax regression needs at least one example and one feature");
  for (size_t i = 0; i < n; ++i)
    if (y[i] >= kClasses) throw std::runtime_error("softmax regression: label " + std::to_string(y[i]) + " is not 0-9");
  n_ = n, dim_ = dim, l2_ = l2, steps_ = 0;
  mean.assign(dim, 0.f);
  std::vector<double> sum(dim, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) sum[j] += X[i * dim + j];
  for (size_t j = 0; j < dim; ++j) mean[j] = float(sum[j] / double(n));
  X_.resize(n * dim);
  double sq = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) {
      const float c = X[i * dim + j] - mean[j];
      X_[i * dim + j] = c;
      sq += double(c) * c;
    }
  scale = float(std::sqrt(sq / double(n * dim)));
  if (!(scale > 0.f)) scale = 1.f;  // constant features: nothing to learn from, but nothing to divide by either
  for (float& v : X_) v /= scale;
  y_.assign(y, y + n);
  params_.assign(kClasses * dim + kClasses, 0.f);
  grads_.assign(params_.size(), 0.f);
  logits_.resize(n * kClasses);
  OptimizerConfig cfg;
  cfg.type = "adam";
  cfg.lr = lr;
  opt_ = std::make_unique<Optimizer>(cfg, params_.size());
  unpack();
}

void SoftmaxRegression::unpack() {
  W.assign(params_.begin(), params_.begin() + kClasses * dim_);
  b.assign(params_.begin() + kClasses * dim_, params_.end());
}

double SoftmaxRegression::step() {
  if (!opt_) throw std::logic_error("SoftmaxRegression::step before begin");
  const float* Wp = params_.data();
  const float* bp = Wp + kClasses * dim_;
  gemm(false, true, n_, kClasses, dim_, 1.f, X_.data(), dim_, Wp, dim_, 0.f, logits_.data(), kClasses);
  double loss = 0, db[kClasses] = {};
  const float inv_n = 1.f / float(n_);
  for (size_t i = 0; i < n_; ++i) {
    float* l = logits_.data() + i * kClasses;
    float top = -INFINITY;
    for (size_t c = 0; c < kClasses; ++c) top = std::max(top, l[c] += bp[c]);
    float e[kClasses], sum = 0.f;
    for (size_t c = 0; c < kClasses; ++c) sum += e[c] = exp_f32(l[c] - top);
    loss -= std::log(double(e[y_[i]]) / sum);
    for (size_t c = 0; c < kClasses; ++c) {  // logits_ becomes d loss / d logits
      l[c] = (e[c] / sum - (c == y_[i] ? 1.f : 0.f)) * inv_n;
      db[c] += l[c];
    }
  }
  loss /= double(n_);
  float* gW = grads_.data();
  gemm(true, false, kClasses, dim_, n_, 1.f, logits_.data(), kClasses, X_.data(), dim_, 0.f, gW, dim_);
  double w2 = 0;
  for (size_t i = 0; i < kClasses * dim_; ++i) {
    w2 += double(Wp[i]) * Wp[i];
    gW[i] += l2_ * Wp[i];
  }
  for (size_t c = 0; c < kClasses; ++c) grads_[kClasses * dim_ + c] = float(db[c]);
  opt_->step(params_.data(), grads_.data());
  ++steps_;
  unpack();
  return loss + 0.5 * l2_ * w2;
}

std::vector<float> SoftmaxRegression::logits(const float* X, size_t m) const {
  std::vector<float> xs(m * dim_), out(m * kClasses);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < dim_; ++j) xs[i * dim_ + j] = (X[i * dim_ + j] - mean[j]) / scale;
  if (m > 0) gemm(false, true, m, kClasses, dim_, 1.f, xs.data(), dim_, W.data(), dim_, 0.f, out.data(), kClasses);
  for (size_t i = 0; i < m; ++i)
    for (size_t c = 0; c < kClasses; ++c) out[i * kClasses + c] += b[c];
  return out;
}

std::vector<uint8_t> SoftmaxRegression::predict(const float* X, size_t m) const {
  const std::vector<float> l = logits(X, m);
  std::vector<uint8_t> pred(m);
  for (size_t i = 0; i < m; ++i)
    pred[i] = uint8_t(std::max_element(l.begin() + i * kClasses, l.begin() + (i + 1) * kClasses) - (l.begin() + i * kClasses));
  return pred;
}

// ------------------------------------------------------------------------------------------ k-NN

void KnnSearch::begin(const float* train, const uint8_t* labels, size_t n, const float* test, size_t m, size_t dim,
                      size_t k, size_t tile) {
  if (n == 0 || k == 0 || dim == 0) throw std::runtime_error("k-NN needs at least one labelled example, one feature and k >= 1");
  train_ = train, labels_ = labels, test_ = test, n_ = n, m_ = m, dim_ = dim, k_ = std::min(k, n);
  row_ = col_ = 0;
  sq_.resize(n);  // |x|^2: with the test row's constant |t|^2 left out, |x|^2 - 2 t.x ranks like the distance
  for (size_t j = 0; j < n; ++j) {
    double s = 0;
    for (size_t d = 0; d < dim; ++d) s += double(train[j * dim + d]) * train[j * dim + d];
    sq_[j] = float(s);
  }
  block_ = std::min<size_t>(256, std::max<size_t>(m, 1));
  chunk_ = std::min(std::max<size_t>(tile / (block_ * dim), 256), n);
  G_.resize(block_ * chunk_);
  best_.resize(block_ * k_);
  found_.assign(block_, 0);
  pred_.assign(m, 0);
}

bool KnnSearch::unit() {
  if (done()) return true;
  const size_t rows = std::min(block_, m_ - row_), cols = std::min(chunk_, n_ - col_);
  // G [cols, rows] = train chunk . test block^T
  gemm(false, true, cols, rows, dim_, 1.f, train_ + col_ * dim_, dim_, test_ + row_ * dim_, dim_, 0.f, G_.data(), rows);
  for (size_t r = 0; r < rows; ++r) {
    std::pair<float, uint32_t>* best = best_.data() + r * k_;
    size_t& have = found_[r];
    for (size_t c = 0; c < cols; ++c) {
      const float d = sq_[col_ + c] - 2.f * G_[c * rows + r];
      if (have == k_ && !(d < best[k_ - 1].first)) continue;  // a later index never displaces an equal distance
      size_t at = have < k_ ? have++ : k_ - 1;
      while (at > 0 && d < best[at - 1].first) best[at] = best[at - 1], --at;
      best[at] = {d, uint32_t(col_ + c)};
    }
  }
  col_ += cols;
  if (col_ < n_) return false;
  for (size_t r = 0; r < rows; ++r) {  // every chunk seen: vote
    const std::pair<float, uint32_t>* best = best_.data() + r * k_;
    size_t votes[kClasses] = {};
    for (size_t i = 0; i < k_; ++i) ++votes[labels_[best[i].second]];
    const size_t most = *std::max_element(votes, votes + kClasses);
    for (size_t i = 0; i < k_; ++i)  // nearest first: the first neighbour of a most-voted digit breaks a tie
      if (votes[labels_[best[i].second]] == most) {
        pred_[row_ + r] = labels_[best[i].second];
        break;
      }
  }
  std::fill(found_.begin(), found_.end(), 0);
  row_ += rows;
  col_ = 0;
  return done();
}

double KnnSearch::progress() const {
  return m_ == 0 ? 1.0 : (double(row_) * n_ + double(std::min(block_, m_ - std::min(row_, m_))) * col_) / (double(m_) * n_);
}

void knn_predict(const float* train, const uint8_t* labels, size_t n, const float* test, size_t row_begin,
                 size_t row_end, size_t dim, size_t k, uint8_t* pred, size_t tile) {
  if (row_end <= row_begin) return;
  KnnSearch s;
  s.begin(train, labels, n, test + row_begin * dim, row_end - row_begin, dim, k, tile);
  while (!s.unit()) {
  }
  std::copy(s.predictions().begin(), s.predictions().end(), pred + row_begin);
}

// ------------------------------------------------------------------------------------------ features

FeatureFn pixel_features(Normalization norm) {
  return [norm](const Dataset& d, const uint32_t* idx, size_t n, float* out) {
    Tensor x;
    fill_batch(d, idx, n, norm, x);
    std::copy(x.begin(), x.end(), out);
  };
}

FeatureFn code_features(Model& m) {
  return [&m](const Dataset& d, const uint32_t* idx, size_t n, float* out) { encode_images(m, d, idx, n, out); };
}

// ------------------------------------------------------------------------------------------ the sliced probe

void Probe::clear() { *this = Probe(); }

void Probe::begin(const Dataset& train, const Dataset& test, size_t dim, FeatureFn features, const ProbeSettings& s,
                  const Pca* reduction) {
  clear();
  need_labels(train);
  need_labels(test);
  if (dim == 0) throw std::runtime_error("the probe's features must have at least one number per image");
  if (s.max_dims == 0 || s.k == 0 || s.test_images == 0 || s.knn_test_images == 0 || s.steps == 0 ||
      !(s.lr > 0.f) || !(s.l2 >= 0.f))
    throw std::runtime_error("probe settings out of range (max_dims, k, test images, steps and lr must be positive)");
  std::vector<uint32_t> subset = balanced_label_subset(train, s.labels, s.seed);
  train_ = &train, test_ = &test, features_ = std::move(features), s_ = s, dim_ = dim;
  subset_ = std::move(subset);
  reduce_ = dim > s.max_dims;
  const size_t fit_n = std::min(s.pca_fit_images, train.count);
  if (reduce_ && fit_n < 2) throw std::runtime_error("the probe's PCA needs at least 2 training images");
  result_.labels = subset_.size();
  result_.input_dims = dim;
  result_.dims = reduce_ ? std::min(s.max_dims, fit_n) : dim;
  test_n_ = std::min(s.test_images, test.count);
  result_.softmax_tested = test_n_;
  result_.knn_tested = std::min(s.knn_test_images, test_n_);
  train_labels_.resize(subset_.size());
  for (size_t i = 0; i < subset_.size(); ++i) train_labels_[i] = train.labels[subset_[i]];
  test_labels_.assign(test.labels.begin(), test.labels.begin() + test_n_);
  // Work in rough multiply-adds, for progress(): features as one pass over their numbers (a model costs more, but
  // that is unknown here), the PCA fit, softmax steps, k-NN distances.
  const double n = double(subset_.size()), d = double(result_.dims);
  const bool fitted = reduce_ && reduction;
  if (fitted && (reduction->dim != dim || reduction->k != result_.dims || reduction->mean.size() != dim ||
                 reduction->components.size() != dim * result_.dims))
    throw std::runtime_error("the probe's given PCA maps " + std::to_string(reduction->dim) + " -> " +
                             std::to_string(reduction->k) + " numbers, not " + std::to_string(dim) + " -> " +
                             std::to_string(result_.dims));
  work_total_ = (reduce_ && !fitted ? fit_n * (dim * d * 6.0 + dim) : 0.0) + (n + test_n_) * dim * (reduce_ ? d : 1.0) +
                s.steps * n * d * kClasses * 2.0 + n * result_.knn_tested * d + 1.0;
  work_done_ = 0;
  pos_ = 0;
  if (fitted) pca_ = *reduction;
  if (reduce_ && !fitted) fit_x_.resize(fit_n * dim);
  stage_ = reduce_ && !fitted ? Stage::FitFeatures : Stage::TrainFeatures;
}

void Probe::features_of(const Dataset& d, const uint32_t* idx, size_t n, float* out) {
  if (!reduce_) {
    features_(d, idx, n, out);
    return;
  }
  raw_.resize(n * dim_);
  features_(d, idx, n, raw_.data());
  pca_.project(raw_.data(), n, out);
}

void Probe::unit() {
  const size_t dims = result_.dims;
  switch (stage_) {
    case Stage::Idle:
    case Stage::Done:
      return;
    case Stage::FitFeatures: {
      const size_t fit_n = fit_x_.size() / dim_, b = std::min(kFeatureBatch, fit_n - pos_);
      std::vector<uint32_t> idx(b);
      std::iota(idx.begin(), idx.end(), uint32_t(pos_));
      features_(*train_, idx.data(), b, fit_x_.data() + pos_ * dim_);
      work_done_ += double(b) * dim_;
      if ((pos_ += b) == fit_n) stage_ = Stage::Fit, pos_ = 0;
      return;
    }
    case Stage::Fit: {
      const size_t fit_n = fit_x_.size() / dim_;
      pca_ = fit_pca_randomized(fit_x_.data(), fit_n, dim_, dims, s_.seed);
      work_done_ += double(fit_n) * dim_ * dims * 6.0;
      std::vector<float>().swap(fit_x_);
      stage_ = Stage::TrainFeatures;
      return;
    }
    case Stage::TrainFeatures: {
      if (train_x_.empty()) train_x_.resize(subset_.size() * dims);
      const size_t b = std::min(kFeatureBatch, subset_.size() - pos_);
      features_of(*train_, subset_.data() + pos_, b, train_x_.data() + pos_ * dims);
      work_done_ += double(b) * dim_ * (reduce_ ? dims : 1);
      if ((pos_ += b) == subset_.size()) stage_ = Stage::TestFeatures, pos_ = 0;
      return;
    }
    case Stage::TestFeatures: {
      if (test_x_.empty()) test_x_.resize(test_n_ * dims);
      const size_t b = std::min(kFeatureBatch, test_n_ - pos_);
      std::vector<uint32_t> idx(b);
      std::iota(idx.begin(), idx.end(), uint32_t(pos_));
      features_of(*test_, idx.data(), b, test_x_.data() + pos_ * dims);
      work_done_ += double(b) * dim_ * (reduce_ ? dims : 1);
      if ((pos_ += b) == test_n_) {
        stage_ = Stage::Softmax, pos_ = 0;
        softmax_.begin(train_x_.data(), train_labels_.data(), subset_.size(), dims, s_.lr, s_.l2);
      }
      return;
    }
    case Stage::Softmax:
      softmax_.step();
      work_done_ += double(subset_.size()) * dims * kClasses * 2.0;
      if (softmax_.steps() == s_.steps) stage_ = Stage::SoftmaxTest;
      return;
    case Stage::SoftmaxTest: {
      const std::vector<uint8_t> pred = softmax_.predict(test_x_.data(), test_n_);
      size_t right = 0;
      for (size_t i = 0; i < test_n_; ++i) right += pred[i] == test_labels_[i];
      result_.softmax_accuracy = double(right) / double(test_n_);
      knn_.begin(train_x_.data(), train_labels_.data(), subset_.size(), test_x_.data(), result_.knn_tested, dims, s_.k, s_.knn_tile);
      knn_work_ = double(subset_.size()) * result_.knn_tested * dims;
      work_done_ += 1;
      stage_ = Stage::Knn;
      return;
    }
    case Stage::Knn: {
      if (!knn_.unit()) return;
      size_t right = 0;
      for (size_t i = 0; i < result_.knn_tested; ++i) right += knn_.predictions()[i] == test_labels_[i];
      result_.knn_accuracy = double(right) / double(result_.knn_tested);
      stage_ = Stage::Done;
      std::vector<float>().swap(train_x_);
      std::vector<float>().swap(test_x_);
      std::vector<float>().swap(raw_);
      softmax_ = SoftmaxRegression();
      knn_ = KnnSearch();
      return;
    }
  }
}

bool Probe::step(double budget_ms) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  while (stage_ != Stage::Idle && stage_ != Stage::Done) {
    unit();
    if (std::chrono::duration<double, std::milli>(Clock::now() - t0).count() >= budget_ms) break;
  }
  return stage_ == Stage::Done || stage_ == Stage::Idle;
}

double Probe::progress() const {
  if (stage_ == Stage::Done) return 1.0;
  const double knn = stage_ == Stage::Knn ? knn_.progress() * knn_work_ : 0.0;
  return std::min(1.0, (work_done_ + knn) / work_total_);
}

const char* Probe::stage_name() const {
  switch (stage_) {
    case Stage::Idle: return "idle";
    case Stage::FitFeatures: return "pca features";
    case Stage::Fit: return "pca";
    case Stage::TrainFeatures: return "train features";
    case Stage::TestFeatures: return "test features";
    case Stage::Softmax: return "softmax";
    case Stage::SoftmaxTest: return "softmax test";
    case Stage::Knn: return "knn";
    case Stage::Done: return "done";
  }
  return "?";
}

ProbeComparison compare_probes(Model& m, const Dataset& train, const Dataset& test, const ProbeSettings& s) {
  ProbeComparison c;
  auto run = [&](size_t dim, FeatureFn f, const ProbeSettings& settings) {
    Probe p;
    p.begin(train, test, dim, std::move(f), settings);
    while (!p.step(1e9)) {
    }
    return p.result();
  };
  const size_t pixels = train.rows * train.cols;
  c.code = run(m.code_size(), code_features(m), s);
  c.pixels = run(pixels, pixel_features(m.preset().normalize), s);
  ProbeSettings same_size = s;
  same_size.max_dims = std::min(c.code.dims, pixels);
  c.pca = run(pixels, pixel_features(m.preset().normalize), same_size);
  return c;
}

}  // namespace aep
