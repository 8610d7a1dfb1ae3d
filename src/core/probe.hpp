// The code probe: what is a code good for? Classifiers trained on a few labelled codes (softmax regression and k-NN),
// scored on test digits, beside the same classifiers on pixels and on PCA codes of the same size. Computed in slices
// (begin, then step(budget_ms) until done, like Umap) so the playground can refresh it between frames.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "core/data.hpp"
#include "core/model.hpp"
#include "core/optim.hpp"
#include "core/pca.hpp"

namespace aep {

struct ProbeSettings {
  // Labelled training images the classifiers may use (10 to 60,000): a class-balanced subset, taken round-robin over
  // the digits 0-9 from a seeded shuffle of each digit's images (10 labels: one of each digit).
  size_t labels = 1000;
  // Features with more numbers per image than this (pixels: 784; conv's code: 196; a 32x7x7 code: 1,568) are
  // projected on their top max_dims principal components, fitted on the first pca_fit_images training images'
  // features (no labels used), before either classifier sees them: memory (labels x max_dims floats: 31 MB at 60,000
  // labels) and time stay bounded. On MNIST's pixels at 60,000 labels, 128 rather than 256 dimensions cost softmax
  // regression 0.5% of accuracy (91.2% vs 91.7%; k-NN: 96.5% vs 96.1%) and halve its time; the PCA fit (one unit of
  // work) takes 0.45 s natively instead of 1.6 s.
  size_t max_dims = 128;
  size_t pca_fit_images = 2000;
  size_t test_images = 10000;     // softmax regression is scored on the first test_images test digits
  size_t knn_test_images = 2000;  // k-NN classifies the first knn_test_images test digits (each costs a pass over
                                  // every labelled example)
  size_t k = 5;                   // neighbours that vote (fewer when fewer labels)
  // Multiply-adds per k-NN unit of work (see KnnSearch): the result does not depend on it, only how finely the search
  // is sliced (the page, which keeps its frames short, takes 2^25: a few ms of wasm).
  size_t knn_tile = size_t(1) << 28;
  // Softmax regression: features centred and divided by one scale (their RMS over the labelled set, so that l2 means
  // the same for any code), weights from 0, `steps` full-batch Adam steps (PyTorch's defaults but lr) on the mean
  // cross-entropy + l2 / 2 * ||W||^2 (bias not penalized). The problem is strictly convex: 200 steps reach its
  // optimum to about 0.1% of accuracy on MNIST's pixels, so the result does not hinge on when it stopped.
  size_t steps = 200;
  float lr = 0.05f;
  float l2 = 0.01f;
  uint64_t seed = 1;
};

// The labelled subset described at ProbeSettings::labels: indices into d. Throws when d has no labels (e.g. uploaded
// images) or n is out of range.
std::vector<uint32_t> balanced_label_subset(const Dataset& d, size_t n, uint64_t seed);

// Multinomial logistic regression, full batch, trained by the engine's Adam.
class SoftmaxRegression {
 public:
  static constexpr size_t kClasses = 10;
  // X: [n, dim] row-major raw features (copied, then centred and scaled), y: [n] labels < kClasses.
  void begin(const float* X, const uint8_t* y, size_t n, size_t dim, float lr, float l2);
  double step();  // one Adam step on the whole set; returns the loss before it (cross-entropy + l2 term)
  size_t steps() const { return steps_; }
  // Class scores [m, kClasses] of raw features X [m, dim] (scaled like the training set).
  std::vector<float> logits(const float* X, size_t m) const;
  std::vector<uint8_t> predict(const float* X, size_t m) const;
  size_t dim() const { return dim_; }
  // Weights in PyTorch's nn.Linear layout: W [kClasses, dim], b [kClasses]; mean [dim] and scale as fitted.
  std::vector<float> W, b, mean;
  float scale = 1.f;

 private:
  size_t n_ = 0, dim_ = 0, steps_ = 0;
  float l2_ = 0.f;
  std::vector<float> X_, params_, grads_, logits_;  // params_ = [W, b] flat: the optimizer's one buffer
  std::vector<uint8_t> y_;
  std::unique_ptr<Optimizer> opt_;
  void unpack();
};

// k-nearest neighbours by Euclidean distance. Distances that are equal rank by training index (lower first); the
// vote goes to the digit with most of the k neighbours, and a tie between digits to the one whose nearest member is
// nearest (k is cut to the number of labelled examples).
// Tiled: a unit compares a block of test rows with a chunk of training rows (one GEMM of about 2^28 multiply-adds,
// a few ms), keeping each test row's k best across chunks, so the training features stream through the cache once
// per block of 256 test rows rather than once per row. The arrays are borrowed: they must outlive the search.
class KnnSearch {
 public:
  // train [n, dim], labels [n], test [m, dim], all row-major. tile: multiply-adds per unit (about; at least a
  // 256-row chunk); the predictions are the same for any tile.
  void begin(const float* train, const uint8_t* labels, size_t n, const float* test, size_t m, size_t dim, size_t k,
             size_t tile = size_t(1) << 28);
  bool unit();  // one tile; true once every test row has its prediction
  bool done() const { return row_ >= m_; }
  double progress() const;
  const std::vector<uint8_t>& predictions() const { return pred_; }  // [m]

 private:
  const float *train_ = nullptr, *test_ = nullptr;
  const uint8_t* labels_ = nullptr;
  size_t n_ = 0, m_ = 0, dim_ = 0, k_ = 0, row_ = 0, col_ = 0, block_ = 0, chunk_ = 0;
  std::vector<float> sq_, G_;
  std::vector<std::pair<float, uint32_t>> best_;  // [block rows, k]: the nearest so far, nearest first
  std::vector<size_t> found_;                     // [block rows]: how many of best_ are filled
  std::vector<uint8_t> pred_;
};
// Runs a KnnSearch on test rows [row_begin, row_end) of test [m, dim], writing pred[row_begin .. row_end).
void knn_predict(const float* train, const uint8_t* labels, size_t n, const float* test, size_t row_begin,
                 size_t row_end, size_t dim, size_t k, uint8_t* pred, size_t tile = size_t(1) << 28);

// Features of images: out [n, dim] for the images idx[0..n) of d.
using FeatureFn = std::function<void(const Dataset& d, const uint32_t* idx, size_t n, float* out)>;
FeatureFn pixel_features(Normalization norm);
// The model's codes (eval mode; a VAE's mu). The model must stay unchanged until the probe is done.
FeatureFn code_features(Model& m);

struct ProbeResult {
  size_t labels = 0;      // labelled examples used
  size_t input_dims = 0;  // numbers per image of the features
  size_t dims = 0;        // after the PCA reduction (= input_dims when none was needed)
  size_t softmax_tested = 0, knn_tested = 0;  // test digits scored
  double softmax_accuracy = std::numeric_limits<double>::quiet_NaN();
  double knn_accuracy = std::numeric_limits<double>::quiet_NaN();
};

// One feature set through both classifiers. Usage: begin(...), then step(budget_ms) until it returns true.
// Stages: features of the PCA-fit images and the fit (only when reducing), features of the labelled training images
// and of the test digits (a batch of 250 per unit), the softmax regression (one Adam step per unit) and its test
// score, k-NN over the k-NN test digits (a tile per unit, see KnnSearch). The same inputs give the same result however
// the work is sliced.
class Probe {
 public:
  // train and test must outlive the probe (and features' model stay unchanged). Throws for data without labels or
  // settings out of range; max_dims caps the dimension (the PCA baseline passes the code's).
  // reduction: the PCA an earlier probe of the same features, training images and settings fitted (its reduction()),
  // to skip the fit (the page probes pixels again at each label count: the fit of 784 -> 128 is ~0.7 s of wasm in one
  // piece). Throws when its sizes do not fit; that it was fitted on the same features is the caller's to ensure.
  void begin(const Dataset& train, const Dataset& test, size_t dim, FeatureFn features, const ProbeSettings& s,
             const Pca* reduction = nullptr);
  bool step(double budget_ms);
  bool done() const { return stage_ == Stage::Done; }
  double progress() const;  // 0..1
  const char* stage_name() const;
  const ProbeResult& result() const { return result_; }
  // The PCA the features were reduced with (k = 0 when none was needed, or before the fit).
  const Pca& reduction() const { return pca_; }
  void clear();

 private:
  enum class Stage { Idle, FitFeatures, Fit, TrainFeatures, TestFeatures, Softmax, SoftmaxTest, Knn, Done };
  void unit();
  void features_of(const Dataset& d, const uint32_t* idx, size_t n, float* out);

  Stage stage_ = Stage::Idle;
  const Dataset *train_ = nullptr, *test_ = nullptr;
  FeatureFn features_;
  ProbeSettings s_;
  ProbeResult result_;
  size_t dim_ = 0, pos_ = 0, test_n_ = 0;
  bool reduce_ = false;
  Pca pca_;
  std::vector<uint32_t> subset_;
  std::vector<uint8_t> train_labels_, test_labels_;
  KnnSearch knn_;
  std::vector<float> fit_x_, raw_, train_x_, test_x_;
  SoftmaxRegression softmax_;
  double work_done_ = 0, work_total_ = 1, knn_work_ = 0;
};

// Codes vs pixels vs PCA codes of the same size as the (reduced) code, each through both classifiers, run to the end.
struct ProbeComparison {
  ProbeResult code, pixels, pca;
};
ProbeComparison compare_probes(Model& m, const Dataset& train, const Dataset& test, const ProbeSettings& s);

}  // namespace aep
