// The numbers behind the playground's views, computed from a snapshot of the weights a chunk at a time, so training
// goes on meanwhile and no frame stalls; shaped like core::Umap (begin, step until done, then take the result).
// Stages: the test loss (when the app trains in its frames; a training host measures its own), the view images'
// codes and reconstruction errors (a VAE's log sigma^2 beside its mu), the out-of-distribution images' errors
// (uniform noise or Fashion-MNIST) for the anomaly scores. The pictures drawn from them are the panels' business
// (App::finish_views).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/model.hpp"
#include "core/train.hpp"

namespace aep {

class ViewJob {
 public:
  struct Options {
    size_t eval_images = 0;        // test loss over the first n test images (batches of 64); 0: not measured here
    size_t view_images = 2000;     // the view images: the first n test images
    bool outliers = false;         // score out-of-distribution images as well:
    const Dataset* fashion = nullptr;  // the first 1000 of these, or (null) 500 uniform-noise images
  };
  struct Result {
    size_t step = 0;                  // the training step of the snapshot
    size_t n_view = 0, code_dim = 0;
    LossTerms test;                   // the test loss (when measured)
    bool test_measured = false;
    std::string loss;                 // the loss it was measured with (reconstruction_loss_label)
    std::vector<float> codes;         // [n_view, code_dim] (a VAE's mu)
    std::vector<float> logvars;       // [n_view, code_dim] for a VAE, else empty
    std::vector<float> errors;        // per view image: MSE of its reconstruction
    std::vector<float> outlier_errors;  // per out-of-distribution image
  };

  // Starts over from the weights of `model` (copied: the model may train on), with `preset`'s current settings for the
  // corruption and the loss. `test` (and the Fashion images) must stay until the job is done or cancelled.
  void begin(const Model& model, const Preset& preset, size_t step, const Dataset& test, const Options& o);
  // Works for about budget_ms (at least one chunk of 64 images); returns true while there is more to compute.
  bool step(double budget_ms);
  bool active() const { return active_; }
  bool ready() const { return active_ && stage_ == kDone; }  // computed; the result is waiting to be taken
  Result take();                     // the finished result; the job is idle after
  Model& model() { return *model_; }  // the snapshot (for the pictures drawn from the result)
  void cancel();                     // drops the job and its snapshot (the model changed shape)

 private:
  enum Stage { kTestLoss, kCodes, kOutliers, kDone };
  bool active_ = false;
  Stage stage_ = kTestLoss;
  size_t pos_ = 0;
  double chunk_ms_ = 0;  // running estimate of one chunk, to stop before the budget is overrun
  Options o_;
  const Dataset* test_ = nullptr;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Trainer> trainer_;
  std::optional<Evaluation> eval_;
  Result r_;
};

}  // namespace aep
