// Per-image reconstruction errors, the checkerboard index of reconstructions, the distance of an image's ink to the
// nearest real digit's and the ROC AUC of scores: what the anomaly panel and lesson goals measure.
#pragma once
#include <cstddef>
#include <cstdint>
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

// The ink of a 28x28 image: the set of its pixels above `threshold` (lessons use the middle of the normalization range:
// pixels at more than half intensity), as a bit mask of kInkWords 64-bit words. images: n * 784 values; out: n *
// kInkWords words.
constexpr size_t kInkWords = (28 * 28 + 63) / 64;
void ink_masks(const float* images, size_t n, float threshold, uint64_t* out);

// For each of n ink masks, the distance to the nearest of n_ref reference masks: the Jaccard distance of the two sets
// of pixels, 1 - |a and b| / |a or b| (0: the same ink, 1: no pixel in common; two empty masks: 0). A faint image whose
// pixels are all at most half intensity has no ink and is at distance 1 from every digit. Integer counts only: the
// same result on every platform. out[i] is 1 when n_ref is 0.
//
// Lessons measure how digit-like an image is by this distance to the nearest of a set of real digits: a cross-fade of
// two digits keeps ink only where their strokes cross, a digit-like image has ink in a digit's shape. (The squared
// error is no use for that: in squared error a cross-fade is barely further from the nearest digit than a real digit
// is, and a blurred image, being close to an average, is nearer than both.)
void nearest_ink_distance(const uint64_t* masks, size_t n, const uint64_t* reference, size_t n_ref, float* out);

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
