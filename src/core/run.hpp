// A training run: one model with its optimizer, the training images it samples, the seed rule and its loss curve.
// The app (one run or several side by side), the CLI and the bench all drive this type, so a seed gives the same
// weights wherever it is trained.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.hpp"
#include "core/train.hpp"

namespace aep {

struct LossCurve {
  std::string label;
  std::vector<float> step, train, recon, kl;  // per training step
  std::vector<float> test_step, test;         // per evaluation
  // The reconstruction loss can change while a run trains (the Model panel's picker): values of different losses are
  // different quantities and must never be drawn as one line. Segment k holds the train points from its train_begin
  // to the next segment's, and the test points likewise; the first starts at 0, and a run always has one.
  struct Segment {
    size_t train_begin = 0, test_begin = 0;
    std::string loss;  // reconstruction_loss_label: "MSE, mean"
  };
  std::vector<Segment> segments;
  // [begin, end) of segment k's train (or test) points.
  std::pair<size_t, size_t> train_range(size_t k) const;
  std::pair<size_t, size_t> test_range(size_t k) const;
  // From the next point on, values of `loss`: a new segment unless the last one is of that loss already.
  void begin_segment(const std::string& loss);
};

// The training images a run samples from: all of d, or all but one digit (held out, e.g. for anomaly detection;
// -1: none). A dataset without labels has no digit to leave out.
// Images from index `from` on only, for data that grew (Run::add_data).
std::vector<uint32_t> training_subset(const Dataset& d, int held_out_digit, size_t from = 0);

class Run {
 public:
  // The seed rule: weights from `seed`, the trainer's random numbers (corruption, the VAE's eps, Dropout masks)
  // from seed + 1, the batch order from seed + 2. Throws when the preset does not build.
  Run(const Preset& p, uint64_t seed);

  // The images to train on (`train` must outlive the run, or be replaced by another call): all of it, or all but
  // one digit. Starts the batch order over at epoch 0; the weights are kept.
  // `complete`: false while more images are still to come (the page's first part of MNIST; see add_data).
  void set_data(const Dataset& train, int held_out_digit = -1, bool shuffle = true, bool complete = true);
  // The same dataset, grown (append_dataset): its new images join the batch order from the next epoch on
  // (BatchSampler::grow); the epoch under way finishes over the images it had. Nothing else changes. `complete`: no
  // more images will come.
  void add_data(const Dataset& train, bool complete = true);
  // Whether the preset's epochs are done: epochs over all of the data, counted from the first that covered it all
  // (epochs over a first part of it, while the rest was still coming, do not count).
  bool epochs_done() const;
  bool has_data() const { return sampler != nullptr; }
  size_t train_images() const { return subset_.size(); }

  // One optimizer step on the next batch. On divergence throws DivergenceError and keeps the weights, the optimizer
  // and the batch order of the last good step (the failed batch is used up).
  LossTerms step();
  // A new batch size from the next batch on: the rest of this epoch is drawn anew (from seed + 2 + epoch).
  void set_batch_size(size_t batch_size);
  // The settings that may change while a run trains, from p (whose layers must be the run's): learning rate and
  // weight decay, the loss terms (reconstruction loss and reduction, beta, L1, contractive), the corruption, the
  // batch size. The weights stay. A new reconstruction loss or reduction starts a new curve segment. Throws (changing
  // nothing) when the model refuses the loss (BCE on [-1, 1] data).
  void apply_settings(const Preset& p);
  // Epochs done, with the current one as a fraction (1.5: halfway through the second): over all of the data, counted
  // from full_from (0 until the first epoch over all of it begins); passes over a first part while more is to come.
  double epoch() const;
  // The images of the last batch (indices into the dataset given to set_data).
  const std::vector<uint32_t>& last_batch() const { return batch_; }

  bool sample_z = true;  // a VAE samples z = mu + sigma * eps in training; false: z = mu (eps = 0, for comparisons)
  Preset preset;  // the run's model and its current settings (apply_settings)
  uint64_t seed;
  std::unique_ptr<Model> model;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<BatchSampler> sampler;
  size_t steps = 0;  // optimizer steps taken by this run
  int held_out = -1;  // the digit left out of the training images (set_data), -1 none
  // The sampler's first epoch over all of the data (epochs_done); kNotYet while more data is to come.
  static constexpr size_t kNotYet = size_t(-1);
  size_t full_from = 0;
  LossCurve curve;
  Tensor input, target;  // the last batch: corrupted input and clean target

 private:
  const Dataset* train_ = nullptr;
  std::vector<uint32_t> subset_, batch_;
  size_t data_count_ = 0;  // train_->count when the subset was last built
  Tensor zero_eps_;
  bool shuffle_ = true;
};

// A run's whole state - settings, seed, weights, optimizer, batch order and position, random streams, step count and
// curve - as safetensors tensors and metadata under `prefix`, so that it continues bit for bit elsewhere (the page's
// training worker, the desktop's training thread). The curve's points before curve_from (train) and test_from (test)
// are left out: the receiver has them (update_run). Without `optimizer` the optimizer's state is left out too, and the
// receiver keeps its own (a training host's frequent reports send it now and then). Without `order` the batch order
// is left out (its position is not): the receiver has it, as the order changes only when an epoch begins. With
// `borrow` the weights, optimizer state and curve are not copied but borrowed from `r` (StTensor::view): serialize
// `st` before r changes (a training host's report: no copy of every run's state before the message itself).
void save_run(const Run& r, SafeTensors& st, const std::string& prefix, size_t curve_from = 0, size_t test_from = 0,
              bool optimizer = true, bool order = true, bool borrow = false);
// A run rebuilt from save_run's output (curve_from 0), training on `train` when given (it must outlive the run).
// Throws on anything malformed or of another shape.
std::unique_ptr<Run> load_run(const SafeTensors& st, const std::string& prefix, const Dataset* train);
// Brings `r` (the same model) to the state save_run wrote, keeping the object: its curve is cut to the points the
// writer left out and the rest appended. Validates everything first: on error `r` is unchanged.
void update_run(Run& r, const SafeTensors& st, const std::string& prefix);

// Lockstep: one step of every run on the same training images. Runs share their batches when they have the same
// seed, data, held-out digit and batch size (their samplers then draw the same order); this checks that they did and
// throws std::logic_error otherwise. A run that diverges keeps its last good weights and reports why in `error`; the
// others step on.
struct LockstepStep {
  LossTerms loss;
  std::string error;  // the DivergenceError's message, empty when the step was taken
};
std::vector<LockstepStep> step_lockstep(const std::vector<Run*>& runs);
// Whether b takes a's next batch: the same seed, training images, batch size and position in the epoch.
bool in_lockstep(const Run& a, const Run& b);

}  // namespace aep
