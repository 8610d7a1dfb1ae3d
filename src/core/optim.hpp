// Optimizers over one flat parameter buffer, with PyTorch's exact update rules (torch.optim.SGD / Adam,
// L2-style weight decay added to the gradient), so a run can be compared with PyTorch step for step.
#pragma once
#include <cstdint>
#include <vector>

#include "core/preset.hpp"

namespace aep {

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& cfg, size_t n_params);
  void step(float* params, const float* grads);
  // One step only if every updated value (weights and moments) stays finite; otherwise changes nothing and
  // returns false. Checks first (a read-only pass) instead of saving a copy of all state for a rollback.
  bool try_step(float* params, const float* grads);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s);  // when resuming from saved state
  OptimizerConfig config;
  std::vector<float> exp_avg, exp_avg_sq;  // Adam moments; SGD keeps its momentum buffer in exp_avg

 private:
  template <bool Commit>
  bool update(float* params, const float* grads);
  int64_t steps_ = 0;
  double beta1_pow_ = 1.0, beta2_pow_ = 1.0;  // beta^t by repeated multiplication: the same in every build, unlike pow()
};

}  // namespace aep
