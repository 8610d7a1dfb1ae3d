// Per-image reconstruction errors, the checkerboard index of reconstructions and the ROC AUC of scores: what the
// anomaly panel and lesson goals measure.
#pragma once
#include <cstddef>
#include <vector>

namespace aep {

// Mean squared error per pixel of each of n 28x28 images: a and b hold n * 784 values; out receives n errors.
void per_image_mse(const float* a, const float* b, size_t n, float* out);

// Checkerboard index of each of n 28x28 images (images: n * 784 values, row-major; out: n values in [0, 1]): the share
// of the image's variation that repeats every 2 pixels, i.e. the spectral energy at the three Nyquist frequencies of
// the 2-D DFT, (pi, 0), (0, pi) and (pi, pi), over the energy at all non-zero frequencies:
//   (R^2 + C^2 + D^2) / (784 * sum x^2 - (sum x)^2),
//   R = sum_ij (-1)^i x_ij,  C = sum_ij (-1)^j x_ij,  D = sum_ij (-1)^(i+j) x_ij.
// Equivalently: split the pixels into the four classes of (row parity, column parity); the index is the share of the
// image's sum of squared deviations from its mean that the four class means explain. A transposed convolution whose
// kernel does not divide by its stride gives the pixels of the four classes different numbers of kernel taps, which
// shows as this pattern (Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts"); a smooth image
// has almost none (MNIST test digits: about 0.0002). A constant image has no variation and gets 0.
void checkerboard_index(const float* images, size_t n, float* out);

// Area under the ROC curve: the probability that a random positive scores above a random negative (ties count half).
// NaN when either list is empty.
double roc_auc(const std::vector<float>& pos, const std::vector<float>& neg);

// A model's reconstruction errors on its own test images beside those on foreign images (another dataset, evaluated
// with the model as it is): their means and a histogram of each over the same bins.
struct ErrorComparison {
  size_t test_count = 0, foreign_count = 0;
  double test_mean = 0, foreign_mean = 0;
  double ratio = 0;  // foreign_mean / test_mean (infinite when test_mean is 0 and foreign_mean is not)
  double auc = 0;    // roc_auc(foreign, test): the chance that a foreign image's error exceeds a test image's
  // Equal bins over [0, hi], hi = the largest error of either list: bin k counts the errors e with
  // k * hi / bins <= e < (k + 1) * hi / bins, the largest error in the last bin.
  double hi = 0;
  std::vector<size_t> test_hist, foreign_hist;
};
// Throws when either list is empty or holds a negative or non-finite error, or bins is 0.
ErrorComparison compare_errors(const std::vector<float>& test, const std::vector<float>& foreign, size_t bins = 40);

}  // namespace aep
