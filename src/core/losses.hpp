// Loss functions and penalties. Each returns its value and writes (or, for penalties, adds) its gradient.
// Reduction::Mean divides by the number of elements (PyTorch's default); Reduction::Sum sums per sample and
// averages over the batch (the usual VAE convention). Penalties always use the per-sample sum / batch form.
#pragma once
#include <cstddef>
#include <string>

#include "core/preset.hpp"

namespace aep {

// pred, target, grad: n = batch * per_sample elements. grad = d loss / d pred (overwritten).
double mse_loss(const float* pred, const float* target, size_t n, size_t batch, Reduction r, float* grad);
// Mean absolute error (like nn.L1Loss); the gradient is sign(pred - target) / denominator, 0 where they are equal
// (PyTorch's subgradient). grad may be nullptr.
double l1_loss(const float* pred, const float* target, size_t n, size_t batch, Reduction r, float* grad);
// Binary cross-entropy on probabilities (like nn.BCELoss: log clamped at -100). grad may be nullptr.
double bce_loss(const float* prob, const float* target, size_t n, size_t batch, Reduction r, float* grad);
// The numerically stable form on logits (nn.BCEWithLogitsLoss): used when the decoder ends in Sigmoid,
// so saturated outputs still get a gradient of sigmoid(z) - target.
double bce_with_logits_loss(const float* logits, const float* target, size_t n, size_t batch, Reduction r,
                            float* grad);
// KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent, averaged over the batch, times beta.
// Adds beta * gradients into dmu and dlogvar.
double kl_divergence(const float* mu, const float* logvar, size_t n, size_t batch, float beta, float* dmu,
                     float* dlogvar);
// weight * sum |z| / batch; adds the subgradient (sign(z), 0 at 0) into dz.
double l1_penalty(const float* z, size_t n, size_t batch, float weight, float* dz);
// Contractive penalty for h = sigmoid(W x + b), W: [out, in], h: [batch, out]:
// weight * sum_b ||dh/dx||_F^2 / batch = weight / batch * sum_b sum_j (h_bj (1 - h_bj))^2 * sum_i W_ji^2.
// Adds d/dh into dh and d/dW into dW.
double contractive_penalty(const float* h, const float* W, size_t batch, size_t out, size_t in, float weight,
                           float* dh, float* dW);

// Why BCE would meet values outside [0, 1] with this preset, or "" when it does not (or the loss is not BCE): targets
// normalized to [-1, 1], or a decoder whose last layer is not a Sigmoid (its outputs are not probabilities: log of a
// negative number is NaN). For the UI's warning; parse_preset refuses the first case outright.
std::string bce_range_problem(const Preset& p);

// The reconstruction loss as the loss curve and the Model panel name it: "MSE, mean", "BCE, sum", "L1, mean".
std::string reconstruction_loss_label(const LossConfig& loss);

}  // namespace aep
