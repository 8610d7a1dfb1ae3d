// Instruments that read a trained model without changing it: a VAE's posterior (per-dimension KL, active units,
// samples of z), how sparse a code is, and how strongly the encoder reacts to its input (the Jacobian's norm), plus
// all of them as named numbers for the CLI, the page's status() and the lessons' goals.
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/model.hpp"

namespace aep {

// Codes of the images idx[0..n) of d in eval mode, flat: out [n, code_size] row-major (a VAE's code is its mean mu).
// Runs in batches of at most 256 images.
void encode_images(Model& m, const Dataset& d, const uint32_t* idx, size_t n, float* out);
// The same for the first n images of d (all of them when n is 0 or larger than d).
std::vector<float> encode_first(Model& m, const Dataset& d, size_t n);

// Images without labels to evaluate a model on (foreign data: the learner's own file, or another dataset's): checks
// that they are 28x28 and that there is at least one; `name` names the set and its errors.
Dataset image_set(IdxImages images, const std::string& name);

// The reconstruction error (mean squared error per pixel) of the clean images [begin, end) of d, in eval mode (a VAE
// decodes its mu): out[i - begin] for image i. Chunks of at most 100 images, as the lessons' measurement (foreignError)
// takes them, so that the page's foreign-data view, `aep eval --foreign` and foreignError give the same numbers.
void reconstruction_errors(Model& m, const Dataset& d, size_t begin, size_t end, float* out);

// A unit of a VAE's latent is active when the variance over data of its mean code E[z_j | x] = mu_j(x) exceeds
// 0.01: the definition and threshold of Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders".
// An inactive unit ignores its input: its posterior is the same for every digit (usually the prior, "posterior
// collapse", which a large beta brings about).
constexpr double kActiveUnitThreshold = 0.01;

struct PosteriorStats {
  size_t digits = 0, latent = 0;
  // Mean over digits of KL(N(mu_j, exp(logvar_j)) || N(0, 1)) = 0.5 (mu_j^2 + exp(logvar_j) - 1 - logvar_j), per unit.
  // Their sum is the VAE loss's KL term per digit (before beta).
  std::vector<double> kl_per_dim;
  std::vector<double> mean_variance;  // per unit: the variance over digits of mu_j (population form, divided by n)
  size_t active_units = 0;            // units whose mean_variance exceeds the threshold
  double kl_total() const;
};

// mu, logvar: [n, latent] row-major.
PosteriorStats posterior_stats(const float* mu, const float* logvar, size_t n, size_t latent,
                               double threshold = kActiveUnitThreshold);
// Over the first n images of d (all when n is 0). Throws when the model is not a VAE.
PosteriorStats posterior_stats(Model& m, const Dataset& d, size_t n = 0);

// n samples of z ~ N(mu, exp(logvar)) for one digit (mu, logvar: [latent]): [n, latent] row-major, from rng.
std::vector<float> sample_posterior(const float* mu, const float* logvar, size_t latent, size_t n, Rng& rng);

// Sparsity of codes. A unit counts as silent for a digit when |h_j| <= 0.01 * max_k |h_k| over that digit's code:
// relative to the digit's strongest unit because the L1 penalty of a sparse autoencoder can also be lowered by
// scaling the whole code down (and the decoder's weights up), which an absolute threshold would count as sparsity;
// a relative one measures how many units carry the digit. An all-zero code counts as all silent. mean_abs gives the
// scale the share leaves out.
constexpr double kSilentRelativeThreshold = 0.01;

struct SparsityStats {
  size_t digits = 0, units = 0;
  double sparsity = 0;  // share of (digit, unit) pairs that are silent, 0..1
  double mean_abs = 0;  // mean |h| over digits and units
};

// codes: [n, units] row-major.
SparsityStats code_sparsity(const float* codes, size_t n, size_t units, double relative = kSilentRelativeThreshold);

// Per image of x [B, 1, 28, 28]: ||d code / d x||_F^2, the squared Frobenius norm of the encoder's Jacobian (a VAE's
// code is mu), in eval mode. Exact for any encoder: one backward pass through the engine's own layers per code unit,
// each giving one row of the Jacobian for every image of the batch (cost: code_size backward passes). For the
// contractive preset's Linear -> Sigmoid encoder this is the penalty term itself, sum_j (h_j (1 - h_j))^2 ||W_j||^2.
// Leaves the model's gradients as they were (the trainer owns them between steps).
std::vector<double> jacobian_frobenius_sq(Model& m, const Tensor& x);
// The share of rows [unit_begin, unit_end) of each image's Jacobian (one backward pass per row, after one forward
// pass), so that the work can be sliced (the page computes it between frames): the shares of consecutive ranges add up
// to the whole norm. Throws when the range is not within the code.
std::vector<double> jacobian_frobenius_sq(Model& m, const Tensor& x, size_t unit_begin, size_t unit_end);
// The mean of the above over the first n images of d.
double mean_jacobian_frobenius_sq(Model& m, const Dataset& d, size_t n);

struct ProbeSettings;

// What `instrument_values` computes.
struct InstrumentOptions {
  size_t test_images = 0;        // digits for KL, active units and sparsity (0: all of the test set)
  size_t jacobian_images = 200;  // digits for the Jacobian norm
  size_t jacobian_max_code = 512;  // skip the Jacobian for larger codes (one backward pass per unit), unless forced
  bool force_jacobian = false;
  std::vector<size_t> probe_labels;  // the probe at these label counts (none: no probe; needs a training set)
};

// The instruments that apply to the model, as a JSON object of named numbers (the names the page's status() and the
// lessons' goals use):
//   codeSize       numbers per code (a VAE: the latent size)
//   sparsity       share of silent code units (see SparsityStats), 0..1;   meanAbsCode: mean |h|
//   jacobianNorm   mean over digits of ||d code / d x||_F^2 (absent when skipped: see InstrumentOptions)
//   VAE only: activeUnits (count), klPerDim (array, nats per digit), klTotal (their sum), latentVariance (array:
//             the variance over digits of each mu_j, which activeUnits thresholds)
//   with probe_labels: probe, an array of {labels, code: {softmax, knn, dims}, pixels: {...}, pca: {...}} test
//             accuracies, and for the first label count the flat names probeLabels, probeAccuracy (softmax
//             regression on codes), probeKnnAccuracy, probePixelsAccuracy, probePixelsKnnAccuracy,
//             probePcaAccuracy, probePcaKnnAccuracy
// train is needed for the probe only (it may be null otherwise); throws when the probe is asked for but the data
// have no labels.
nlohmann::json instrument_values(Model& m, const Dataset& test, const Dataset* train, const InstrumentOptions& o,
                                 const ProbeSettings* probe = nullptr);

}  // namespace aep
