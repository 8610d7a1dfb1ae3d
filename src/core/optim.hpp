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
  // try_step that also leaves the gradients 0 when it steps: written in the step's own pass while each is in cache,
  // which saves the next backward pass a separate zeroing pass (6.7 MB of Adam state do not fit in L2). A refused
  // step leaves the gradients untouched too.
  bool try_step_and_zero(float* params, float* grads);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s);  // when resuming from saved state
  OptimizerConfig config;
  std::vector<float> exp_avg, exp_avg_sq;  // Adam moments; SGD keeps its momentum buffer in exp_avg

 private:
  template <bool Commit, bool ZeroGrads = false>
  bool update(float* params, const float* grads);
  void advance();
  bool adam_surely_finite(const float* params, const float* grads) const;
  int64_t steps_ = 0;
  double beta1_pow_ = 1.0, beta2_pow_ = 1.0;  // beta^t by repeated multiplication: the same in every build, unlike pow()
  // Largest |exp_avg| and |exp_avg_sq| after the last Adam commit, valid while the moments are the buffers this
  // optimizer wrote (a resume replaces them and calls set_steps): lets try_step prove finiteness from the
  // gradients and weights alone. Negative = unknown.
  float max_avg_ = -1.f, max_avg_sq_ = -1.f;
  const float* moments_seen_[2] = {nullptr, nullptr};
};

}  // namespace aep
