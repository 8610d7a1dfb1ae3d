// The instruments that take more than a view refresh to compute (issue 15): the encoder Jacobian's norm, the code
// probe and the errors on foreign data, each worked on between frames on its own snapshot of the weights, and the
// selected digit's VAE posterior. Private to src/app; the code is in instrument_views.cpp.
#pragma once
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "app/app.hpp"
#include "core/data.hpp"
#include "core/metrics.hpp"
#include "core/model.hpp"
#include "core/probe.hpp"
#include "core/rng.hpp"
#include "core/sweep.hpp"

namespace aep {

// Digits the Jacobian norm is measured on: kJacobianDigits (the first 200 test digits, as aep eval and the lessons'
// jacobianNorm), fewer for large codes so that one measurement costs at most kJacobianRows backward passes of one
// image (one per code number and digit), and never fewer than kJacobianMinDigits.
constexpr size_t kJacobianDigits = 200, kJacobianRows = 200 * 64, kJacobianMinDigits = 2;
size_t jacobian_digits(size_t code_size, size_t test_count);

struct JacobianJob {
  std::unique_ptr<Model> model;  // snapshot of the weights at `step`
  bool active = false;
  size_t step = 0, digits = 0, image_pos = 0, unit_pos = 0;
  Tensor x;                  // the current batch of digits
  std::vector<double> sum;   // per digit of the batch, rows done so far
  double total = 0;          // finished digits' norms
  double row_ms = 0;         // running estimate of one Jacobian row over the batch
  bool first = false;        // the model's first measurement: its mean so far is the value after each batch of digits
  // The last finished measurement: mean ||d code / d x||_F^2 over `value_digits` test digits at training step
  // `value_step` (NaN before the first).
  double value = NAN;
  size_t value_step = 0, value_digits = 0;
};

// The code probe (core/probe.hpp): codes, then pixels and PCA codes of the same size once per label count, then the
// codes again for every newer snapshot.
struct ProbeJob {
  size_t labels = 1000;   // the slider: labelled training images the classifiers may use
  bool requested = false; // asked for by a command (probeLabels): computed even while the section is closed
  bool open = false;      // the Latent panel's probe section is open (set as it is drawn)
  bool open_request = false;  // a command asked for the probe: the section opens the next time it is drawn
  std::unique_ptr<Model> model;  // the weights the running code probe encodes with (unchanged until it finishes)
  Probe probe;
  int running = -1;       // which probe runs: 0 codes, 1 pixels, 2 PCA codes; -1 none
  // Finished results for `labels` (labels == 0: none yet); code_step: the training step of the codes probed.
  ProbeResult code, pixels, pca;
  size_t code_step = 0;
  bool pca_is_pixels = false;  // the PCA codes' size is at least the pixels' reduction: the same classifier inputs
  std::string error;           // why it cannot run (e.g. test images without labels)
  // The pixels' PCA (784 -> 128), fitted once: it depends on the training images it was fitted on and their
  // normalization (pixels_pca_key), not on the label count.
  Pca pixels_pca;
  uint64_t pixels_pca_key = 0;
};

struct PosteriorView {
  int digit = -1;           // selected test digit (a VAE: its posterior is drawn), -1 none
  size_t step = size_t(-1);  // training step of mu / logvar
  std::vector<float> mu, logvar;
  std::vector<float> samples;  // [kPosteriorSamples, latent] z drawn live, oldest first
  Rng rng{0x9a55};
};
constexpr size_t kPosteriorSamples = 300, kPosteriorSamplesPerFrame = 6;

// Foreign data without a reset: the model as it is, on images of another dataset (Fashion-MNIST's test images, or the
// learner's own IDX images) beside its own test digits. Both sets' per-image errors from one snapshot of the weights,
// in slices, refreshed as the model trains; a row of foreign reconstructions. The training data and the model stay.
enum class ForeignSource { None, Fashion, Own };
constexpr size_t kForeignImages = 1000;  // images measured of each set (as the lessons' foreignError)
constexpr size_t kForeignBins = 60;      // histogram bins
constexpr int kForeignRow = 8;           // reconstructions shown: the first foreign images

struct ForeignView {
  ForeignSource source = ForeignSource::None;
  Dataset own;           // the learner's images (labels not needed); kept while another source is chosen
  // The running measurement, of the weights at `step`: the test digits' errors, then the foreign images'.
  std::unique_ptr<Model> model;
  bool active = false;
  size_t step = 0, pos = 0;
  std::vector<float> test_errors, foreign_errors;
  double chunk_ms = 0;   // running estimate of one chunk (100 images)
  // The last finished measurement (compared.test_count == 0: none yet).
  ErrorComparison compared;
  size_t value_step = 0;
  std::string value_name;  // the foreign set it measured
  Picture row;             // the first foreign images over their reconstructions
  int row_count = 0;
  float row_err[kForeignRow] = {};
};

// A command's instrument settings, validated (App::parse_instrument_command) before anything is applied.
struct InstrumentCommand {
  bool loss_given = false;     // loss or reduction (already in the command's preset)
  long probe_labels = -1;      // probeLabels, -1: not given
  int posterior_digit = -2;    // posteriorDigit (-1: none), -2: not given
  int foreign = -1;            // foreignData as a ForeignSource, -1: not given
  bool sweep_given = false;    // betaSweep: the betas to sweep, or none to end the sweep
  std::vector<double> sweep;
  std::vector<std::string> warnings;
};

// A beta sweep (core/sweep.hpp) beside the app's run (src/app/beta_sweep.cpp): the run's VAE at K betas, from fresh
// weights with the run's seed, so that they take the run's batches (lockstep) wherever the run trains - in the frames
// or by the host - and are measured together, in slices on snapshots, as they train.
struct SweepView {
  std::vector<double> betas;  // empty: no sweep
  std::vector<std::unique_ptr<Run>> runs;
  std::vector<std::string> errors;  // per run: the divergence that stopped it ("" while it trains)
  std::vector<RunMeasure> measure;  // every run's snapshot, taken together
  bool measuring = false;
  size_t measured_key = size_t(-1);  // the runs' summed step counts at the last measurement
  std::chrono::steady_clock::time_point measure_start;
  std::vector<SweepRow> rows;  // the last finished measurement
  char text[96] = "0.25, 1, 4, 16";  // the section's list of betas as typed
  std::string refused;               // why the last list was not used
  bool open_request = false;         // a command started a sweep: the section opens the next time it is drawn
  bool open = false;                 // the section is open (set as it is drawn)
};

struct InstrumentViews {
  std::vector<float> logvars;  // a VAE's log sigma^2 of the view images [n_view, code_dim], beside their mu (codes)
  JacobianJob jacobian;
  ProbeJob probe;
  PosteriorView posterior;
  ForeignView foreign;
  std::string loss_refused;  // the Model panel's loss picker: why the last choice was not applied
  SweepView sweep;
  int turn = 0;              // the jobs take turns at the free view budget
  bool skip = false;         // step_instruments(alternate): this call's turn is the views'
};

}  // namespace aep
