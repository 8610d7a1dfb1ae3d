// Adam and SGD exactly as torch.optim computes them (same operation order, so float results agree closely).
#include "core/optim.hpp"

#include <cmath>

namespace aep {

Optimizer::Optimizer(const OptimizerConfig& cfg, size_t n) : config(cfg) {
  exp_avg.assign(n, 0.f);
  if (cfg.type == "adam") exp_avg_sq.assign(n, 0.f);
}

void Optimizer::set_steps(int64_t s) {
  steps_ = s;
  beta1_pow_ = beta2_pow_ = 1.0;
  for (int64_t t = 0; t < s; ++t) beta1_pow_ *= config.beta1, beta2_pow_ *= config.beta2;
}

void Optimizer::step(float* p, const float* g) {
  ++steps_;
  const size_t n = exp_avg.size();
  const float lr = config.lr, wd = config.weight_decay;
  if (config.type == "sgd") {
    const float mom = config.momentum;
    for (size_t i = 0; i < n; ++i) {
      float d = g[i] + wd * p[i];
      if (mom != 0.f) {
        exp_avg[i] = steps_ == 1 ? d : mom * exp_avg[i] + d;
        d = exp_avg[i];
      }
      p[i] -= lr * d;
    }
    return;
  }
  const float b1 = config.beta1, b2 = config.beta2, eps = config.eps;
  beta1_pow_ *= b1;
  beta2_pow_ *= b2;
  const double bc1 = 1.0 - beta1_pow_, bc2 = 1.0 - beta2_pow_;
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  for (size_t i = 0; i < n; ++i) {
    float d = g[i] + wd * p[i];
    exp_avg[i] = b1 * exp_avg[i] + (1.f - b1) * d;
    exp_avg_sq[i] = b2 * exp_avg_sq[i] + (1.f - b2) * d * d;
    float denom = std::sqrt(exp_avg_sq[i]) / bc2_sqrt + eps;
    p[i] -= step_size * exp_avg[i] / denom;
  }
}

}  // namespace aep
