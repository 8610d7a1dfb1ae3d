// Per-image reconstruction errors and the ROC AUC of scores: what the anomaly panel and lesson goals measure.
#pragma once
#include <cstddef>
#include <vector>

namespace aep {

// Mean squared error per pixel of each of n 28x28 images: a and b hold n * 784 values; out receives n errors.
void per_image_mse(const float* a, const float* b, size_t n, float* out);

// Area under the ROC curve: the probability that a random positive scores above a random negative (ties count half).
// NaN when either list is empty.
double roc_auc(const std::vector<float>& pos, const std::vector<float>& neg);

}  // namespace aep
