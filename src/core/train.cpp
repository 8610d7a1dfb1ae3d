// The loss of a batch and its backward pass through encoder, VAE heads and decoder.
#include "core/train.hpp"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/losses.hpp"
#include "core/mathfn.hpp"

namespace aep {

namespace {
// NaN or Inf anywhere? An integer OR over exponent bits: vectorizes, and needs no float reassociation.
bool all_finite(const float* p, size_t n) {
  uint32_t acc = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    acc |= uint32_t((bits & 0x7f800000u) == 0x7f800000u);
  }
  return acc == 0;
}
}  // namespace

Trainer::Trainer(Model& m, uint64_t seed)
    : model(m), optimizer(m.preset().optimizer, m.parameter_count()), rng(seed) {}

LossTerms Trainer::forward_backward(const Tensor& input, const Tensor& target, bool training, bool backward,
                                    const Tensor* eps) {
  const Preset& p = model.preset();
  const size_t B = input.shape()[0];
  if (input.shape() != model.input_shape(B))
    throw std::runtime_error("input must be " + shape_str(model.input_shape(B)) + ", got " + shape_str(input.shape()));
  if (target.size() != input.size()) throw std::runtime_error("target and input sizes differ");
  RunContext ctx{training, &rng};
  LossTerms L;
  if (backward) {
    if (!grads_zero_) model.zero_grad();
    grads_zero_ = false;
  }

  const Tensor& h = model.encoder.forward(input, ctx);
  const Tensor* code = &h;
  if (model.is_vae()) {
    const Tensor& mu = model.mu.forward(h, ctx);
    const Tensor& lv = model.logvar.forward(h, ctx);
    ensure_shape(z_, mu.shape());
    ensure_shape(eps_, mu.shape());
    if (!training) {
      std::fill(eps_.begin(), eps_.end(), 0.f);  // eval: z = mu
    } else if (eps) {
      if (eps->size() != mu.size()) throw std::runtime_error("eps must have the latent's shape " + shape_str(mu.shape()));
      std::copy(eps->begin(), eps->end(), eps_.begin());
    } else {
      for (float& e : eps_) e = rng.normal();
    }
    for (size_t i = 0; i < z_.size(); ++i) z_.data()[i] = mu.data()[i] + exp_f32(0.5f * lv.data()[i]) * eps_.data()[i];
    code = &z_;
    if (backward) {
      ensure_shape(dmu_, mu.shape());
      ensure_shape(dlogvar_, lv.shape());
      std::fill(dmu_.begin(), dmu_.end(), 0.f);
      std::fill(dlogvar_.begin(), dlogvar_.end(), 0.f);
    }
    L.kl = kl_divergence(mu.data(), lv.data(), mu.size(), B, p.loss.beta, backward ? dmu_.data() : nullptr,
                         backward ? dlogvar_.data() : nullptr);
  }
  const Tensor& out = model.decoder.forward(*code, ctx);

  // Reconstruction. BCE after a final Sigmoid is computed on its input (logits): stable, and saturated outputs
  // keep their gradient.
  const size_t nd = model.decoder.size();
  const bool fuse = p.loss.reconstruction == "bce" && nd > 0 && model.decoder.layers[nd - 1]->type() == "Sigmoid";
  if (backward) ensure_shape(dout_, fuse ? model.decoder.input_of(nd - 1).shape() : out.shape());
  float* dout = backward ? dout_.data() : nullptr;
  if (fuse)
    L.reconstruction = bce_with_logits_loss(model.decoder.input_of(nd - 1).data(), target.data(), out.size(), B,
                                            p.loss.reduction, dout);
  else if (p.loss.reconstruction == "bce")
    L.reconstruction = bce_loss(out.data(), target.data(), out.size(), B, p.loss.reduction, dout);
  else if (p.loss.reconstruction == "l1")
    L.reconstruction = l1_loss(out.data(), target.data(), out.size(), B, p.loss.reduction, dout);
  else
    L.reconstruction = mse_loss(out.data(), target.data(), out.size(), B, p.loss.reduction, dout);

  // Penalties on the code need its gradient even without backward, for the value only.
  const bool penalize = p.loss.l1 > 0.f || p.loss.contractive > 0.f;
  if (penalize) {
    if (backward) {
      ensure_shape(dh_, h.shape());
      std::fill(dh_.begin(), dh_.end(), 0.f);
    }
    if (p.loss.l1 > 0.f) L.penalty += l1_penalty(h.data(), h.size(), B, p.loss.l1, backward ? dh_.data() : nullptr);
    if (p.loss.contractive > 0.f) {
      Linear& lin = model.contractive_layer();
      L.penalty += contractive_penalty(h.data(), lin.params[0].value, B, lin.out_features, lin.in_features,
                                       p.loss.contractive, backward ? dh_.data() : nullptr,
                                       backward ? lin.params[0].grad : nullptr);
    }
  }
  L.total = L.reconstruction + L.kl + L.penalty;
  if (!backward) return L;

  // Backward (the contractive term above already added its share of dW).
  const Tensor& dcode = model.decoder.backward(dout_, fuse ? nd - 1 : nd);
  if (model.is_vae()) {
    const Tensor& lv = model.logvar.output();
    for (size_t i = 0; i < dcode.size(); ++i) {
      float g = dcode.data()[i];
      dmu_.data()[i] += g;
      dlogvar_.data()[i] += g * eps_.data()[i] * 0.5f * exp_f32(0.5f * lv.data()[i]);
    }
    const Tensor& dh_mu = model.mu.backward(dmu_);
    ensure_shape(dcode_, dh_mu.shape());
    std::copy(dh_mu.begin(), dh_mu.end(), dcode_.begin());
    const Tensor& dh_lv = model.logvar.backward(dlogvar_);
    for (size_t i = 0; i < dcode_.size(); ++i) dcode_.data()[i] += dh_lv.data()[i];
  } else {
    ensure_shape(dcode_, dcode.shape());
    std::copy(dcode.begin(), dcode.end(), dcode_.begin());
  }
  if (penalize)
    for (size_t i = 0; i < dcode_.size(); ++i) dcode_.data()[i] += dh_.data()[i];
  model.encoder.backward(dcode_, size_t(-1), false);  // the input images need no gradient
  return L;
}

// Only what the forward pass changes (BatchNorm's running statistics): the optimizer changes the weights only
// after checking that the step keeps them finite.
void Trainer::save_state() {
  saved_buffers_.assign(model.buffer_values.begin(), model.buffer_values.end());
  saved_counters_.resize(model.counters.size());
  for (size_t i = 0; i < model.counters.size(); ++i) saved_counters_[i] = *model.counters[i].value;
}

void Trainer::restore_state() {
  std::copy(saved_buffers_.begin(), saved_buffers_.end(), model.buffer_values.begin());
  for (size_t i = 0; i < model.counters.size(); ++i) *model.counters[i].value = saved_counters_[i];
}

LossTerms Trainer::train_step(const Tensor& input, const Tensor& target, const Tensor* eps) {
  save_state();
  const int64_t step = optimizer.steps() + 1;
  auto diverged = [&](const char* what) {
    restore_state();
    std::ostringstream o;
    o << "training stopped at step " << step << ": " << what
      << " became NaN or infinite. The weights from before this step are kept. Try a smaller learning rate (now "
      << optimizer.config.lr << ") or a smaller KL/penalty weight.";
    throw DivergenceError(o.str());
  };
  LossTerms L = forward_backward(input, target, true, true, eps);
  if (!std::isfinite(L.total)) diverged("the loss");
  // A non-finite gradient makes try_step refuse too (its results would be non-finite), so the gradients get a pass of
  // their own only to name the culprit once something failed.
  auto grads_finite = [&] { return all_finite(model.grads.data(), model.grads.size()); };
  if (!all_finite(model.buffer_values.data(), model.buffer_values.size()))
    diverged(grads_finite() ? "a running statistic" : "a gradient");
  float* p = model.values.data();
  float* g = model.grads.data();
  if (!(keep_gradients ? optimizer.try_step(p, g) : optimizer.try_step_and_zero(p, g)))
    diverged(grads_finite() ? "a weight" : "a gradient");
  grads_zero_ = !keep_gradients;
  return L;
}

BatchSampler::BatchSampler(size_t count, size_t batch_size, bool shuffle, uint64_t seed)
    : order_(count), count_(count), batch_(batch_size), shuffle_(shuffle), rng_(seed) {
  if (count == 0) throw std::runtime_error("the dataset is empty");
  if (batch_size == 0) throw std::runtime_error("the batch size must be at least 1");
  std::iota(order_.begin(), order_.end(), 0u);
  if (shuffle_) rng_.shuffle(order_);
}

size_t BatchSampler::steps_per_epoch() const {
  size_t full = order_.size() / batch_, rest = order_.size() % batch_;
  return full + (rest >= 2 || full == 0 ? 1 : 0);
}

BatchSampler::State BatchSampler::save() const {
  return {order_, batch_, pos_, epoch, step_in_epoch, shuffle_, rng_.save()};
}

void BatchSampler::load(const State& s) {
  if (s.order.size() > count_ || s.order.empty())
    throw std::runtime_error("batch order of " + std::to_string(s.order.size()) + " images for a sampler of " +
                             std::to_string(count_));
  if (s.batch == 0 || s.pos > s.order.size()) throw std::runtime_error("batch order: position out of range");
  for (uint32_t i : s.order)
    if (i >= s.order.size()) throw std::runtime_error("batch order: an index out of range");
  order_ = s.order;
  load_position(s);
}

void BatchSampler::load_position(const State& s) {
  if (s.batch == 0 || s.pos > order_.size()) throw std::runtime_error("batch order: position out of range");
  batch_ = s.batch, pos_ = s.pos, epoch = s.epoch, step_in_epoch = s.step_in_epoch, shuffle_ = s.shuffle;
  rng_.load(s.rng);
}

void BatchSampler::grow(size_t count) {
  if (count < count_)
    throw std::runtime_error("the data cannot shrink from " + std::to_string(count_) + " to " + std::to_string(count) +
                             " images");
  count_ = count;
}

const uint32_t* BatchSampler::next(size_t& n) {
  size_t left = order_.size() - pos_;
  if (left == 0 || (left == 1 && order_.size() > 1)) {  // epoch over (a lone last image is skipped)
    pos_ = 0;
    ++epoch;
    step_in_epoch = 0;
    if (order_.size() < count_) {  // the data grew: this epoch covers it all (in file order before any shuffle)
      const size_t had = order_.size();
      order_.resize(count_);
      std::iota(order_.begin() + std::ptrdiff_t(had), order_.end(), uint32_t(had));
    }
    if (shuffle_) rng_.shuffle(order_);
    left = order_.size();
  }
  n = std::min(batch_, left);
  const uint32_t* p = order_.data() + pos_;
  pos_ += n;
  ++step_in_epoch;
  return p;
}

void make_batch(const Dataset& d, const uint32_t* idx, size_t n, const Preset& p, Rng& rng, Tensor& input,
                Tensor& target) {
  fill_batch(d, idx, n, p.normalize, target, &input);  // written together: no second pass to copy
  corrupt(p.corruption, p.normalize, rng, input);
  if (p.corruption.corrupted_target) std::copy(input.begin(), input.end(), target.begin());
}

Evaluation::Evaluation(const Dataset& d, const Preset& p, size_t max_samples, size_t batch_size, bool clean)
    : d_(&d), p_(p), total_(max_samples == 0 ? d.count : std::min(max_samples, d.count)),
      batch_(std::max<size_t>(1, batch_size)), clean_(clean), idx_(batch_) {}

bool Evaluation::step(Trainer& t) {
  if (done()) return false;
  const size_t n = std::min(batch_, total_ - pos_);
  std::iota(idx_.begin(), idx_.begin() + n, uint32_t(pos_));
  if (clean_) fill_batch(*d_, idx_.data(), n, p_.normalize, input_);
  else make_batch(*d_, idx_.data(), n, p_, noise_, input_, target_);
  const LossTerms L = t.forward_backward(input_, clean_ ? input_ : target_, false, false);
  sum_.total += L.total * n;
  sum_.reconstruction += L.reconstruction * n;
  sum_.kl += L.kl * n;
  sum_.penalty += L.penalty * n;
  pos_ += n;
  return !done();
}

LossTerms Evaluation::result() const {
  LossTerms r = sum_;
  const double n = double(std::max<size_t>(1, total_));
  r.total /= n, r.reconstruction /= n, r.kl /= n, r.penalty /= n;
  return r;
}

LossTerms evaluate(Trainer& t, const Dataset& d, size_t max_samples, size_t batch_size, bool clean) {
  Evaluation e(d, t.model.preset(), max_samples, batch_size, clean);
  while (e.step(t)) {
  }
  return e.result();
}

}  // namespace aep
