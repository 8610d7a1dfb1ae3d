// Loss values are accumulated in double so the reported loss does not depend on summation order.
#include "core/losses.hpp"
#include "core/mathfn.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

namespace aep {

namespace {
double denominator(size_t n, size_t batch, Reduction r) { return r == Reduction::Mean ? double(n) : double(batch); }
}  // namespace

double mse_loss(const float* pred, const float* target, size_t n, size_t batch, Reduction r, float* grad) {
  const double den = denominator(n, batch, r);
  const float g = float(2.0 / den);
  // Four partial sums (element i into sum i % 4, combined as (s0 + s1) + (s2 + s3)) rather than one: a single
  // chain of dependent double adds was ~1% of model A's step. The same order on every target.
  double s[4] = {0, 0, 0, 0};
  const size_t n4 = n - n % 4;
  for (size_t i = 0; i < n; i += 4)
    for (size_t l = 0; l < (i < n4 ? 4 : n - n4); ++l) {
      const float d = pred[i + l] - target[i + l];
      s[l] += double(d) * d;
      if (grad) grad[i + l] = g * d;
    }
  return ((s[0] + s[1]) + (s[2] + s[3])) / den;
}

double l1_loss(const float* pred, const float* target, size_t n, size_t batch, Reduction r, float* grad) {
  const double den = denominator(n, batch, r);
  const float g = float(1.0 / den);
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const float d = pred[i] - target[i];
    s += std::fabs(double(d));
    if (grad) grad[i] = d > 0 ? g : (d < 0 ? -g : 0.f);
  }
  return s / den;
}

double bce_loss(const float* prob, const float* target, size_t n, size_t batch, Reduction r, float* grad) {
  const double den = denominator(n, batch, r);
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    double p = prob[i], t = target[i];
    double lp = std::max(std::log(p), -100.0), l1p = std::max(std::log1p(-p), -100.0);
    s -= t * lp + (1 - t) * l1p;
    if (grad) grad[i] = float((p - t) / std::max(p * (1 - p), 1e-12) / den);
  }
  return s / den;
}

double bce_with_logits_loss(const float* logits, const float* target, size_t n, size_t batch, Reduction r,
                            float* grad) {
  const double den = denominator(n, batch, r);
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    double z = logits[i], t = target[i];
    s += std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::fabs(z)));
    if (grad) grad[i] = float((sigmoid_f32(logits[i]) - target[i]) / den);
  }
  return s / den;
}

double kl_divergence(const float* mu, const float* logvar, size_t n, size_t batch, float beta, float* dmu,
                     float* dlogvar) {
  double s = 0;
  const float k = beta / float(batch);
  for (size_t i = 0; i < n; ++i) {
    double e = exp_f32(logvar[i]);  // float exp: identical in every build
    s += -0.5 * (1.0 + logvar[i] - double(mu[i]) * mu[i] - e);
    if (dmu) dmu[i] += k * mu[i];
    if (dlogvar) dlogvar[i] += k * 0.5f * float(e - 1.0);
  }
  return beta * s / double(batch);
}

double l1_penalty(const float* z, size_t n, size_t batch, float weight, float* dz) {
  double s = 0;
  const float k = weight / float(batch);
  for (size_t i = 0; i < n; ++i) {
    s += std::fabs(z[i]);
    if (dz) dz[i] += z[i] > 0 ? k : (z[i] < 0 ? -k : 0.f);
  }
  return weight * s / double(batch);
}

double contractive_penalty(const float* h, const float* W, size_t batch, size_t out, size_t in, float weight,
                           float* dh, float* dW) {
  std::vector<double> row_norm(out, 0.0), coef(out, 0.0);  // sum_i W_ji^2, and sum_b (h(1-h))^2
  for (size_t j = 0; j < out; ++j)
    for (size_t i = 0; i < in; ++i) row_norm[j] += double(W[j * in + i]) * W[j * in + i];
  const double k = double(weight) / double(batch);
  double s = 0;
  for (size_t b = 0; b < batch; ++b)
    for (size_t j = 0; j < out; ++j) {
      double hv = h[b * out + j], a = hv * (1 - hv);
      s += a * a * row_norm[j];
      coef[j] += a * a;
      // d (a^2) / dh = 2 a (1 - 2h)
      if (dh) dh[b * out + j] += float(k * 2 * a * (1 - 2 * hv) * row_norm[j]);
    }
  if (dW)
    for (size_t j = 0; j < out; ++j)
      for (size_t i = 0; i < in; ++i) dW[j * in + i] += float(k * coef[j] * 2 * W[j * in + i]);
  return k * s;
}

std::string bce_range_problem(const Preset& p) {
  if (p.loss.reconstruction != "bce") return "";
  if (p.normalize == Normalization::MinusOneOne)
    return "BCE needs targets in [0, 1], but the inputs are normalized to [-1, 1]: use MSE or L1, or normalize to 0_1";
  // Layers that only reshape (conv-dense ends in Sigmoid, Unflatten) keep the Sigmoid's range.
  size_t last = p.decoder.size();
  while (last > 0 && p.decoder[last - 1].is_object() &&
         (p.decoder[last - 1].value("type", "") == "Unflatten" || p.decoder[last - 1].value("type", "") == "Flatten"))
    --last;
  if (last == 0 || !p.decoder[last - 1].is_object() || p.decoder[last - 1].value("type", "") != "Sigmoid")
    return "BCE needs outputs in [0, 1], but the decoder does not end in a Sigmoid: add one, or use MSE or L1";
  return "";
}

std::string reconstruction_loss_label(const LossConfig& loss) {
  std::string name = loss.reconstruction;
  for (char& c : name) c = char(std::toupper((unsigned char)c));
  return name + (loss.reduction == Reduction::Sum ? ", sum" : ", mean");
}

}  // namespace aep
