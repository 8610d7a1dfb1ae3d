// Lessons: a course section as a guided experiment (assets/lessons/*.json, format in assets/lessons/README.md),
// parsed and validated like presets, and the platform-free runner that the app and `aep lesson` both drive: it holds
// the run (and its twin, trained in lockstep), applies settings and actions, measures the values goals name and
// checks the current step's goal.
#pragma once
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/goal.hpp"
#include "core/instruments.hpp"
#include "core/preset.hpp"
#include "core/run.hpp"

namespace aep {

// The panels a lesson may show or point at (the page's keys, as in ?panels=).
const std::vector<std::string>& lesson_panel_keys();

// One run's configuration: a preset and the settings of App::command's vocabulary that apply to it.
struct LessonConfig {
  std::string label;        // shown beside the run ("clean target"); empty for a lesson without twin
  std::string preset_name;  // the preset picked, or "custom" for an inline one
  Preset preset;            // with the settings applied (lr, batch, beta, l1, optimizer, corruption, noise, target)
  uint64_t seed = 1;
  int holdout = -1;               // digit left out of training, -1: none
  std::string anomaly = "noise";  // what anomalyAuc scores against the test digits: "noise", "digit" (holdout) or
                                  // "fashion" (Fashion-MNIST's test images)
  std::string panels;             // the page's panels=..., empty: unchanged
};

struct LessonAction {
  std::string label;                                    // the button
  nlohmann::json settings = nlohmann::json::object();  // App::command vocabulary, applied to both runs
  size_t train = 0;                                     // training steps after the settings
  bool reset = false;                                   // start both runs over (new weights) after the settings
};

struct LessonStep {
  std::string instruction;
  std::optional<LessonAction> action;
  std::vector<std::string> look;  // panel keys to show
  Goal goal;
};

struct Lesson {
  std::string id, title, section, summary;
  LessonConfig start;              // the first run
  std::optional<LessonConfig> twin;  // the second run, trained in lockstep
  std::vector<LessonStep> steps;
  nlohmann::json json;  // as written, for the page
  // True when a goal reads the value `name` of any run ("pcaError", "a.pcaError", "b.pcaError"): the values that cost
  // extra work or data are measured only then.
  bool names_value(const std::string& name) const;
  // True when a run needs Fashion-MNIST: a goal reads foreignError or foreignTestError, or a run's anomalyAuc scores
  // Fashion-MNIST.
  bool uses_fashion() const;
};

// Validates everything and throws std::runtime_error("lesson 'ID': step 3: goal: ...") (or the source name before
// the id is known).
Lesson parse_lesson(const nlohmann::json& j, const std::string& source);
Lesson parse_lesson_text(const std::string& text, const std::string& source);
// A lesson id from assets/lessons ("denoising"), or a path to a .json file.
Lesson load_lesson(const std::string& id_or_path);
// Ids of all lessons in assets/lessons, sorted.
std::vector<std::string> list_lessons();

// Applies settings (App::command's vocabulary, checked as a lesson's) to a configuration. Returns true when the run
// must be built again (preset, seed, holdout or optimizer changed). Throws with the setting's name.
bool apply_lesson_settings(const nlohmann::json& settings, LessonConfig& config);

// The values goals name (goal_values()), measured on one run: test loss terms and errors on the first
// `test_images` test images, code statistics, the settings. Values not available are null.
struct MeasureOptions {
  size_t test_images = 1000;
  int holdout = -1;
  bool digit_anomaly = false;  // anomalyAuc: the held-out digit against the others (else uniform noise images)
  bool foreign_anomaly = false;  // anomalyAuc: the foreign images against the test digits (null without them)
  const double* pca_error = nullptr;  // pcaError, when a goal needs it
  bool jacobian = false;              // jacobianNorm, on the first kJacobianImages clean test images
  const Dataset* foreign = nullptr;   // foreignError: Fashion-MNIST's test images, or null (then foreignError is null)
  bool interpolation = false;         // pixelMidpointDistance and latentMidpointDistance
};
// Images jacobianNorm averages over (one backward pass through the encoder per code unit and chunk of 100 images).
constexpr size_t kJacobianImages = 200;
// The interpolation values blend interpolation_pairs(n) pairs of the n measured test images, image k with image P + k
// (P pairs, at most kInterpolationPairs), and compare each midpoint with the test images after them, 2P to n - 1.
constexpr size_t kInterpolationPairs = 100;
inline size_t interpolation_pairs(size_t test_images) { return std::min(kInterpolationPairs, test_images / 5); }
nlohmann::json measure_run(const Run& run, const Dataset& test, const MeasureOptions& options);

// The same measurement in slices, on a snapshot of the run's weights taken at begin(): the page measures while it
// draws and trains on. measure_run() is begin() and step() until done, so both give the same numbers.
// The seed of the noise foreignTestError's images get (the same for every measurement).
constexpr uint64_t kForeignNoiseSeed = 0xf0e1;

class RunMeasure {
 public:
  // Starts over on a copy of the run's weights; `test` must outlive the measurement. options.pca_error is read now.
  void begin(const Run& run, const Dataset& test, const MeasureOptions& options);
  // Measures for about budget_ms (at least one chunk of 100 images); true when the measurement is finished.
  bool step(double budget_ms);
  bool active() const { return active_; }
  void cancel() { active_ = false; }
  // The copy of the run's weights taken at begin() (null before the first): the page draws the twin run from it.
  Model* snapshot() { return model_.get(); }
  size_t snapshot_step() const { return snap_step_; }  // the run's step count at begin()
  const nlohmann::json& values() const { return values_; }  // the last finished measurement (null before the first)
  // The test images' codes (a VAE's mu), [test images, code size], from the last begin(); empty for codes of more than
  // 4096 numbers. The page plots a twin run's latent space from them.
  const std::vector<float>& codes() const { return codes_; }
  // A VAE's posterior over the measured test images (per-unit KL, active units) from the last finished measurement;
  // empty (digits 0) for other models. activeUnits in values() is its count.
  const PosteriorStats& posterior() const { return posterior_; }
  // Per foreign image, the error behind foreignTestError (empty unless measured): the page shows the first few.
  const std::vector<float>& foreign_test_errors() const { return foreign_test_errors_; }

 private:
  void finish();
  void measure_midpoints(size_t n);  // the next n pairs of the interpolation values
  bool active_ = false;
  int stage_ = 0;  // 0: the test images, 1: the noise images (anomalyAuc against noise), 2: the Jacobian, 3: the
                   // foreign images, 4: the interpolation midpoints
  size_t pos_ = 0, total_ = 0, snap_step_ = 0;
  const Dataset* test_ = nullptr;
  MeasureOptions options_;
  double pca_error_ = 0;
  Preset preset_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Trainer> trainer_;
  nlohmann::json base_;  // the run's values that need no measuring (step, epoch, settings)
  Rng noise_{0x5eed};
  Tensor input_, target_, clean_;
  LossTerms sum_;
  double code_abs_ = 0;
  size_t code_count_ = 0;
  std::vector<float> errors_, clean_errors_, noise_errors_, codes_;
  nlohmann::json values_;
  std::vector<float> checkerboard_;  // per test image: the checkerboard index of its output
  std::vector<float> input_errors_;  // per test image: MSE of the (corrupted) input against the clean digit
  std::vector<float> mu_, logvar_;   // a VAE's posterior over the test images, for activeUnits
  PosteriorStats posterior_;
  size_t jacobian_total_ = 0;
  double jacobian_sum_ = 0;
  std::vector<float> foreign_errors_;  // per foreign image (clean input)
  std::vector<float> foreign_test_errors_;  // per foreign image, the input corrupted as in training (empty: no corruption)
  Rng foreign_noise_{kForeignNoiseSeed};               // that corruption, from its own fixed seed
  size_t interp_pairs_ = 0;                 // interpolation_pairs(), or 0 when not measured
  std::vector<uint64_t> ink_reference_;     // the ink masks of the test images the midpoints are compared with
  std::vector<float> pixel_mid_, latent_mid_;  // per pair: the midpoints' distance to the nearest of those digits
};

// What a lesson's measurement of one of its runs needs: its held-out digit, anomaly kind, the Jacobian and the foreign
// data when a goal reads them (pca_error is the caller's, see PcaErrors).
MeasureOptions lesson_measure_options(const Lesson& l, const LessonConfig& c, size_t test_images, const Dataset* foreign);
// The status goals read: run a's values at the top level, both runs' under "a" and "b", the labels and the message.
nlohmann::json lesson_values(const std::vector<nlohmann::json>& values, const std::vector<LessonConfig>& configs,
                             const std::string& message);

// The mean squared test error of PCA with k components, fitted on the first 10000 training images.
double pca_test_error(const Dataset& train, const Dataset& test, Normalization norm, size_t k, size_t test_images);

// pca_test_error per code size and normalization, fitted once each (about a second).
class PcaErrors {
 public:
  double get(const Dataset& train, const Dataset& test, Normalization norm, size_t k, size_t test_images);

 private:
  std::vector<std::pair<size_t, double>> cache_;  // (k * 2 + normalization, error)
};

class LessonRunner {
 public:
  // train and test must outlive the runner. test_images: how many test images the measurements use.
  // foreign: Fashion-MNIST's test images for foreignError (it must outlive the runner too), or null.
  LessonRunner(const Lesson& lesson, const Dataset& train, const Dataset& test, size_t test_images = 1000,
               const Dataset* foreign = nullptr);

  const Lesson& lesson() const { return lesson_; }
  size_t runs() const { return runs_.size(); }
  Run& run(size_t i) { return *runs_[i]; }
  const LessonConfig& config(size_t i) const { return configs_[i]; }

  // Settings to both runs (the twin keeps what only it sets); builds the runs again when the model changes.
  void apply_settings(const nlohmann::json& settings);
  // n steps of every run on the same batches, then a new measurement.
  void train(size_t n);
  // The step's action (settings, reset, training) and a new measurement.
  void apply_action(size_t step);
  void reset();  // both runs start over from the current configuration

  // {step, epoch, ..., "a": {...}, "b": {...}, "labels": [...], "message": ...}: run a's values at the top level.
  const nlohmann::json& status() const { return status_; }
  Goal::Result check(size_t step) const { return lesson_.steps.at(step).goal.evaluate(status_); }

 private:
  void build();
  void set(const nlohmann::json& settings);  // apply_settings without measuring
  void steps(size_t n);                      // train without measuring
  void measure();
  Lesson lesson_;
  const Dataset& train_;
  const Dataset& test_;
  size_t test_images_;
  bool wants_pca_ = false;
  const Dataset* foreign_ = nullptr;
  std::vector<LessonConfig> configs_;
  std::vector<std::unique_ptr<Run>> runs_;
  PcaErrors pca_errors_;
  std::string message_;  // the last divergence, if any
  nlohmann::json status_;
};

}  // namespace aep
