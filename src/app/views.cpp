// The views' numbers from a snapshot of the weights, a chunk at a time (views.hpp).
#include "app/views.hpp"

#include <algorithm>
#include <chrono>

#include "core/losses.hpp"
#include "core/metrics.hpp"
#include "core/rng.hpp"

namespace aep {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

void ViewJob::begin(const Model& model, const Preset& preset, size_t step, const Dataset& test, const Options& o) {
  if (!model_ || model_->values.size() != model.values.size() ||
      model_->buffer_values.size() != model.buffer_values.size() || model_->code_size() != model.code_size()) {
    model_ = std::make_unique<Model>(preset);
    trainer_ = std::make_unique<Trainer>(*model_, 0);
  }
  model_->set_loss(preset.loss);
  std::copy(model.values.begin(), model.values.end(), model_->values.begin());
  std::copy(model.buffer_values.begin(), model.buffer_values.end(), model_->buffer_values.begin());
  o_ = o;
  test_ = &test;
  active_ = true;
  pos_ = 0;
  r_ = Result();
  r_.step = step;
  r_.loss = reconstruction_loss_label(preset.loss);
  r_.n_view = std::min(o.view_images, test.count);
  r_.code_dim = model_->code_size();
  r_.codes.assign(r_.n_view * r_.code_dim, 0.f);
  r_.logvars.assign(model_->is_vae() ? r_.n_view * r_.code_dim : 0, 0.f);
  r_.errors.assign(r_.n_view, 0.f);
  eval_.reset();
  if (o.eval_images) eval_.emplace(test, preset, o.eval_images, 64);
  stage_ = o.eval_images ? kTestLoss : kCodes;
}

bool ViewJob::step(double budget_ms) {
  if (!active_) return false;
  Model& m = *model_;
  const Preset& p = m.preset();
  const size_t B = 64;
  std::vector<uint32_t> idx(B);
  Tensor x;
  const auto t0 = Clock::now();
  while (stage_ != kDone) {
    const auto tc = Clock::now();
    if (stage_ == kTestLoss) {  // like the CLI's evaluate(): eval mode, corruption from a fixed seed
      if (!eval_->step(*trainer_)) {
        r_.test = eval_->result();
        r_.test_measured = true;
        stage_ = kCodes;
      }
    } else if (stage_ == kCodes) {  // codes and per-image errors of the view images
      const size_t n = std::min(B, r_.n_view - pos_);
      for (size_t i = 0; i < n; ++i) idx[i] = uint32_t(pos_ + i);
      fill_batch(*test_, idx.data(), n, p.normalize, x);
      Tensor z;
      if (m.is_vae()) {  // the posterior: mu is the code, logvar feeds the KL bars
        Model::Posterior q = m.encode_posterior(x);
        std::copy(q.logvar.data(), q.logvar.data() + n * r_.code_dim, r_.logvars.data() + pos_ * r_.code_dim);
        z = std::move(q.mu);
      } else {
        z = m.encode(x);
      }
      std::copy(z.data(), z.data() + n * r_.code_dim, r_.codes.data() + pos_ * r_.code_dim);
      Tensor y = m.decode(z);
      per_image_mse(x.data(), y.data(), n, r_.errors.data() + pos_);
      if ((pos_ += n) >= r_.n_view) stage_ = o_.outliers ? kOutliers : kDone, pos_ = 0;
    } else {  // the out-of-distribution set of the anomaly panel: noise or Fashion-MNIST images
      const Dataset* fashion = o_.fashion && o_.fashion->count ? o_.fashion : nullptr;
      const size_t total = fashion ? std::min<size_t>(1000, fashion->count) : 500, n = std::min(B, total - pos_);
      const float lo = range_min(p.normalize), hi = range_max(p.normalize);
      Tensor images(m.input_shape(n));
      if (fashion) {
        for (size_t i = 0; i < n; ++i) idx[i] = uint32_t(pos_ + i);
        fill_batch(*fashion, idx.data(), n, p.normalize, images);
      } else {
        Rng r(99 + pos_);
        for (float& v : images) v = lo + (hi - lo) * r.uniform();
      }
      Tensor y = m.reconstruct(images);
      r_.outlier_errors.resize(pos_ + n);
      per_image_mse(images.data(), y.data(), n, r_.outlier_errors.data() + pos_);
      if ((pos_ += n) >= total) stage_ = kDone;
    }
    chunk_ms_ = 0.8 * chunk_ms_ + 0.2 * ms_since(tc);
    if (ms_since(t0) + chunk_ms_ > budget_ms) break;
  }
  return stage_ != kDone;
}

ViewJob::Result ViewJob::take() {
  active_ = false;
  eval_.reset();
  return std::move(r_);
}

void ViewJob::cancel() {
  active_ = false;
  eval_.reset();
  trainer_.reset();
  model_.reset();
  r_ = Result();
}

}  // namespace aep
