// A training run (see run.hpp): the seed rule, the training subset, the batch order and the curve in one place.
#include "core/run.hpp"

#include "core/losses.hpp"

#include <algorithm>
#include <stdexcept>

namespace aep {

std::vector<uint32_t> training_subset(const Dataset& d, int held_out_digit) {
  std::vector<uint32_t> idx;
  idx.reserve(d.count);
  for (size_t i = 0; i < d.count; ++i)
    if (held_out_digit < 0 || d.labels.empty() || d.labels[i] != held_out_digit) idx.push_back(uint32_t(i));
  return idx;
}

Run::Run(const Preset& p, uint64_t s) : preset(p), seed(s) {
  model = std::make_unique<Model>(p);
  if (p.loss.contractive > 0) model->contractive_layer();  // throws when the encoder does not end as it must
  model->init(seed);
  trainer = std::make_unique<Trainer>(*model, seed + 1);
  curve.segments.push_back({0, 0, reconstruction_loss_label(p.loss)});
}

std::pair<size_t, size_t> LossCurve::train_range(size_t k) const {
  return {segments[k].train_begin, k + 1 < segments.size() ? segments[k + 1].train_begin : step.size()};
}

void LossCurve::begin_segment(const std::string& loss) {
  const Segment next{step.size(), test.size(), loss};
  auto empty = [&](const Segment& g) { return g.train_begin == next.train_begin && g.test_begin == next.test_begin; };
  if (segments.empty()) return segments.push_back({0, 0, loss});
  if (loss == segments.back().loss) return;
  // A last segment that holds no point yet is dropped rather than closed (the picker went past it).
  if (segments.size() > 1 && empty(segments.back())) segments.pop_back();
  if (segments.back().loss == loss) return;
  if (empty(segments.back())) segments.back() = next;
  else segments.push_back(next);
}

std::pair<size_t, size_t> LossCurve::test_range(size_t k) const {
  return {segments[k].test_begin, k + 1 < segments.size() ? segments[k + 1].test_begin : test.size()};
}

void Run::set_data(const Dataset& train, int held_out_digit, bool shuffle) {
  std::vector<uint32_t> subset = training_subset(train, held_out_digit);
  auto s = std::make_unique<BatchSampler>(subset.size(), preset.training.batch_size, shuffle, seed + 2);
  train_ = &train;
  subset_ = std::move(subset);
  shuffle_ = shuffle;
  sampler = std::move(s);
}

LossTerms Run::step() {
  if (!sampler) throw std::logic_error("Run::step before set_data");
  size_t n;
  const uint32_t* pos = sampler->next(n);
  batch_.resize(n);
  for (size_t i = 0; i < n; ++i) batch_[i] = subset_[pos[i]];
  make_batch(*train_, batch_.data(), n, preset, trainer->rng, input, target);
  const Tensor* eps = nullptr;
  if (!sample_z && model->is_vae()) {
    ensure_shape(zero_eps_, model->code_shape(n));
    std::fill(zero_eps_.begin(), zero_eps_.end(), 0.f);
    eps = &zero_eps_;
  }
  LossTerms L = trainer->train_step(input, target, eps);
  ++steps;
  curve.step.push_back(float(steps));
  curve.train.push_back(float(L.total));
  curve.recon.push_back(float(L.reconstruction));
  curve.kl.push_back(float(L.kl));
  return L;
}

void Run::set_batch_size(size_t batch_size) {
  preset.training.batch_size = batch_size;
  if (!sampler || sampler->batch_size() == batch_size) return;
  size_t epoch = sampler->epoch;
  sampler = std::make_unique<BatchSampler>(subset_.size(), batch_size, shuffle_, seed + 2 + epoch);
  sampler->epoch = epoch;
}

void Run::apply_settings(const Preset& p) {
  model->set_loss(p.loss);  // throws, before anything changed, when the model refuses the loss
  trainer->optimizer.config.lr = p.optimizer.lr;
  trainer->optimizer.config.weight_decay = p.optimizer.weight_decay;
  preset.optimizer.lr = p.optimizer.lr;
  preset.optimizer.weight_decay = p.optimizer.weight_decay;
  curve.begin_segment(reconstruction_loss_label(p.loss));
  preset.loss = p.loss;
  preset.corruption = p.corruption;
  set_batch_size(p.training.batch_size);
  preset.training.epochs = p.training.epochs;
}

double Run::epoch() const {
  if (!sampler) return 0;
  return double(sampler->epoch) + double(sampler->step_in_epoch) / double(sampler->steps_per_epoch());
}

std::vector<LockstepStep> step_lockstep(const std::vector<Run*>& runs) {
  for (const Run* r : runs) {
    const Run& a = *runs[0];
    if (!r->sampler || r->seed != a.seed || r->train_images() != a.train_images() ||
        r->sampler->batch_size() != a.sampler->batch_size() || r->sampler->epoch != a.sampler->epoch ||
        r->sampler->step_in_epoch != a.sampler->step_in_epoch)
      throw std::logic_error("runs in lockstep need the same seed, data, batch size and position in the epoch");
  }
  std::vector<LockstepStep> out(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    try {
      out[i].loss = runs[i]->step();
    } catch (const DivergenceError& e) {
      out[i].error = e.what();
    }
    if (runs[i]->last_batch() != runs[0]->last_batch())
      throw std::logic_error("runs in lockstep drew different batches");
  }
  return out;
}

}  // namespace aep
