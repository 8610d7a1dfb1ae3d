// Training: the loss of a batch with its gradients, optimizer steps that never keep non-finite weights,
// seeded batch sampling, and test-set evaluation.
#pragma once
#include <stdexcept>
#include <vector>

#include "core/data.hpp"
#include "core/model.hpp"
#include "core/optim.hpp"

namespace aep {

struct LossTerms {
  double total = 0;           // what is minimized
  double reconstruction = 0;  // MSE, BCE or L1
  double kl = 0;              // beta * KL (VAE)
  double penalty = 0;         // L1 + contractive
};

// Thrown when a step would make the loss, gradients or weights non-finite; the weights, optimizer state and
// running statistics are those from before the step.
class DivergenceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  Trainer(Model& model, uint64_t seed);

  // Loss of a batch. input: [B, 1, 28, 28] (possibly corrupted), target: the clean [B, 1, 28, 28].
  // With `backward`, model.grads are zeroed (unless known to be 0) and filled. `training` selects train-mode BatchNorm/Dropout and, for a
  // VAE, a sampled z (eval uses z = mu). eps: the VAE's N(0, I) noise [B, latent], drawn from rng when null.
  LossTerms forward_backward(const Tensor& input, const Tensor& target, bool training, bool backward,
                             const Tensor* eps = nullptr);
  // One optimizer step; throws DivergenceError (nothing changed) if anything turns non-finite. Afterwards
  // model.grads are 0 (the optimizer zeroes them in its own pass, and the next step skips its zeroing pass) unless
  // keep_gradients is set. Between steps model.grads then belong to this Trainer: write them only through it.
  LossTerms train_step(const Tensor& input, const Tensor& target, const Tensor* eps = nullptr);

  Model& model;
  Optimizer optimizer;
  Rng rng;
  bool keep_gradients = false;  // leave the step's gradients in model.grads after train_step, for inspection

 private:
  bool grads_zero_ = false;  // the last train_step left model.grads 0 and nothing has written them since
  Tensor z_, eps_, dout_, dcode_, dmu_, dlogvar_, dh_;
  std::vector<float> saved_buffers_;
  std::vector<int64_t> saved_counters_;
  void save_state();
  void restore_state();
};

// Index batches over a dataset: reshuffled every epoch from a seeded RNG (or file order), the last batch kept
// unless it would hold a single image (BatchNorm cannot train on one).
class BatchSampler {
 public:
  BatchSampler(size_t count, size_t batch_size, bool shuffle, uint64_t seed);
  // Indices of the next batch; n receives its size. Advances epoch / step counters.
  const uint32_t* next(size_t& n);
  size_t epoch = 0, step_in_epoch = 0;
  size_t steps_per_epoch() const;
  size_t batch_size() const { return batch_; }
  // The batch order and position, to continue it elsewhere: save, then load into a sampler over as many images.
  struct State {
    std::vector<uint32_t> order;
    size_t batch = 0, pos = 0, epoch = 0, step_in_epoch = 0;
    bool shuffle = true;
    Rng::State rng;
  };
  State save() const;
  // Throws when s is out of range or over more images than this sampler has (fewer is fine: the writer's data had not
  // grown yet, and its epoch finishes over them; see grow).
  void load(const State& s);
  // The same with s.order ignored: this sampler's order is kept (the writer's is the same; see save_run's `order`).
  void load_position(const State& s);
  // The data grew to `count` images (the rest of MNIST joined a first part): the epoch under way finishes over the
  // images it had, and every later epoch covers all `count`. Throws if count is smaller than before.
  void grow(size_t count);
  size_t count() const { return count_; }
  size_t epoch_images() const { return order_.size(); }  // what the epoch under way covers (< count() after grow)

 private:
  std::vector<uint32_t> order_;  // this epoch's (over its first order_.size() of the count_ images)
  size_t count_, batch_, pos_ = 0;
  bool shuffle_;
  Rng rng_;
};

// Fills input (corrupted per the preset) and target (clean, or the corrupted input when the preset's corruption says
// "target": "corrupted") for the given images.
void make_batch(const Dataset& d, const uint32_t* idx, size_t n, const Preset& p, Rng& rng, Tensor& input,
                Tensor& target);

// Mean loss over the first max_samples images (all if 0), in eval mode (a VAE decodes z = mu). The inputs are
// corrupted like the preset's training inputs, with a fixed seed so the number is comparable from call to call, unless
// `clean`: then it is the number PyTorch and Keras reproduce from the same weights (the exports' --eval).
LossTerms evaluate(Trainer& t, const Dataset& d, size_t max_samples = 0, size_t batch_size = 500, bool clean = false);

// evaluate() a batch at a time, so that a frame or a worker's slice can take it in parts: step() until it returns
// false, then result(). The corruption follows `p` (the settings as they are now, which a snapshot's model may
// predate). The playground's test loss is this over the first 1000 test images in batches of 64; the data must
// outlive the evaluation.
class Evaluation {
 public:
  Evaluation(const Dataset& d, const Preset& p, size_t max_samples = 0, size_t batch_size = 500, bool clean = false);
  bool step(Trainer& t);  // one batch; false once every image is counted
  bool done() const { return pos_ >= total_; }
  LossTerms result() const;  // the mean over the images (once done)

 private:
  const Dataset* d_;
  Preset p_;
  size_t total_, batch_, pos_ = 0;
  bool clean_;
  Rng noise_{0x5eed};
  Tensor input_, target_;
  std::vector<uint32_t> idx_;
  LossTerms sum_;
};

}  // namespace aep
