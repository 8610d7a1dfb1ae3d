// What app.cpp (state, training, views, commands) and panels.cpp (the panels' drawing) share; private to src/app.
#pragma once
#include <deque>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "app/app.hpp"
#include "app/instrument_views.hpp"
#include "app/views.hpp"
#include "core/instruments.hpp"
#include "core/lesson.hpp"
#include "core/safetensors.hpp"
#include "core/metrics.hpp"
#include "core/umap.hpp"

namespace aep {

// A command's number (App::command, the instruments' commands): a JSON number, or a string that is one number and
// nothing else (URL parameters arrive as strings); NaN otherwise.
double command_number(const nlohmann::json& v);

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kReconCount = 8;          // fixed test digits in the reconstruction panel
constexpr int kGrid = 15;               // decoded manifold grid side
inline const ImU32 kDigitColors[10] = {
    IM_COL32(31, 119, 180, 255),  IM_COL32(255, 127, 14, 255),  IM_COL32(44, 160, 44, 255), IM_COL32(214, 39, 40, 255),
    IM_COL32(148, 103, 189, 255), IM_COL32(140, 86, 75, 255),   IM_COL32(227, 119, 194, 255),
    IM_COL32(127, 127, 127, 255), IM_COL32(188, 189, 34, 255), IM_COL32(23, 190, 207, 255)};
inline const char* kPanelKeys[kPanelCount] = {"model",    "data", "training", "recon",   "latent",
                                              "generate", "draw", "anomaly",  "inside", "save"};
inline const char* kPanelTitles[kPanelCount] = {"Model",        "Data & corruption",      "Training",
                                                "Reconstructions", "Latent space",        "Generate & interpolate",
                                                "Draw",         "Anomaly detection",      "Inside the model",
                                                "Save & share"};

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// FNV-1a over bytes, chained through `h`: a cheap fingerprint of what a picture was painted from.
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

void help_marker(const char* text);  // a "(?)" after the last item, showing `text` on hover
std::string loss_text(double v);     // "%.5g", or "-" while there is no value yet (NaN)
// Per-image errors under a row of digits (a Picture of width picture_w shown at `at`, digits every 30 pixels from x = 2).
void image_errors_row(const float* errors, int n, ImVec2 at, float scale, float picture_w);
void plot_range(const std::vector<float>& xy, size_t n, float& x0, float& x1, float& y0, float& y1);
// n codes of `dim` numbers as 2-d points [n, 2]: the codes themselves when 2-d, else their first two principal
// components (the fitted PCA into *pca when given).
std::vector<float> codes_2d(const float* codes, size_t n, size_t dim, Pca* pca = nullptr);
bool with_code_size(Preset& p, size_t d);
// A loss curve in the plot box at p0 (x from 0 to x1 steps, y0..y1, log or linear), exponentially smoothed by `smooth`.
// Points [range.first, range.second) of a curve (one segment: a loss's values), as one line.
void draw_curve(ImDrawList* dl, ImVec2 p0, ImVec2 size, const std::vector<float>& xs, const std::vector<float>& ys,
                std::pair<size_t, size_t> range, float x1, float y0, float y1, bool log_scale, ImU32 col, float smooth);
std::string described_with_lesson(const Preset& p);  // the description as the Model panel shows it

// Where each panel goes (see update()); per App, so two apps (tests) do not share it.
struct PanelLayout {
  struct Rect { float x, y, w, h; } rect[kPanelCount] = {};
  bool relayout = true;
  ImVec2 last_size;
  float last_left = 0;
  bool last_visible[kPanelCount] = {};
  // The panels fill the display right of `left` (the lesson panel's strip) and below `top` (the menu bar).
  void update(const bool* visible, ImVec2 display, float top, float left = 0);
  // Where each panel was last drawn (screen rect; w = 0 while collapsed): status() reports it, so that tests can
  // check a screenshot's panel regions.
  mutable Rect shown[kPanelCount] = {};
  Rect lesson_shown = {};  // the lesson panel's
  bool begin(int id, bool* open) const;  // ImGui::Begin of panel id, placed and sized when the layout changed
};

// A lesson being followed in the page (src/app/lessons.cpp): its runs' configurations, the twin run trained in
// lockstep with the app's own run, the goal values measured in slices, and the learner's progress.
struct LessonPlay {
  std::vector<Lesson> library;  // the built-in lessons (assets/lessons), sorted by section
  bool picker = false;          // the start screen listing them
  bool active = false;
  bool comparing = false;  // a twin outside lessons: the Training panel's "compare with..."
  bool custom = false;  // handed over by a course page (aep.loadLesson), not built in
  Lesson lesson;
  std::vector<LessonConfig> configs;  // [0] the app's run, [1] the twin's
  std::unique_ptr<Run> twin;
  std::string twin_error;  // why the twin stopped (diverged)
  size_t step = 0;               // the open step
  std::vector<int> progress;     // per step: 0 not reached, 1 goal reached, 2 skipped
  std::vector<double> reached_value;  // the goal's value when it was reached
  std::vector<size_t> applied;        // the steps whose action settings were applied, in order (for the autosave)
  size_t action_left = 0;        // training steps of the running action still to take
  RunMeasure measure[2];
  bool measuring = false;
  bool measure_in_action = false;  // the running measurement began while an action trained
  size_t measured_step = size_t(-1);  // the app run's step at the last finished measurement
  Clock::time_point measure_start = Clock::now();
  PcaErrors pca_errors;  // PCA's test error per code size (pcaError)
  nlohmann::json values;  // the last measurement as LessonRunner::status() has it (null before the first)
  Goal::Result result;    // the open step's goal on it
  nlohmann::json events = nlohmann::json::array();  // this lesson's events so far, for the page to pass to its parent
  size_t next_event = 1;                             // their numbers (seq), never reused in a session
  Picture twin_recon;     // the twin's reconstructions of the Reconstructions panel's digits
  float twin_recon_err[8] = {};
  Picture twin_scatter;   // the twin's codes of the measured test digits, 2-d or their first two principal components
  size_t twin_code_dim = 0;
  // A lesson on noisy foreign data (its goal reads foreignTestError): the first Fashion-MNIST images with the noise the
  // measurement drew, each run's output and its error against the clean image, from the measurement's snapshots.
  Picture foreign_row;
  int foreign_count = 0;
  float foreign_err[2][kReconCount] = {};
};

// A lesson taken out of an autosave (App::take_lesson_session).
struct App::LessonSession {
  Lesson lesson;
  bool custom = false;
  size_t step = 0, twin_steps = 0;
  std::vector<int> progress;
  std::vector<double> reached;
  std::vector<size_t> applied;
  SafeTensors twin;  // its weights and optimizer, names without the "lesson.twin." prefix
  LossCurve twin_curve;
};

// Training elsewhere (host_sync.cpp): what the host has been sent, so that only changes go.
struct HostSync {
  App::HostLink* link = nullptr;
  uint64_t seq = 0, gen = 0;              // the last order's number; the runs' generation (reports of older are stale)
  uint64_t runs_rev = 1, sent_rev = 0;    // runs_changed() counts; the count the host has
  bool data_sent = false;
  size_t sent_train_images = 0, sent_test_images = 0;  // images the host has (more go as an "append" data order)
  std::vector<const Run*> sent_runs;  // the runs as sent or last brought up to date (a change of any object or
  std::vector<size_t> sent_steps;     // step count not from a report also sends them again)
  std::string sent_settings;              // the runs' settings as the host has them
  HostTrain sent_train;
  size_t pending_steps = 0;               // the Step button's (or {steps: n}'s) count, until the host took them
  uint64_t reports = 0;                   // reports taken in (for tests)
  uint64_t acked = 0;                     // the last order the host had applied in the latest report
  uint64_t samples = 0;                   // the host's running count at the last report
  bool have_samples = false;
  // Per hosted run, from the last report: in lockstep with run 0 on the host. The app's copies of the other runs come
  // at most once a second (RunHost::report), so their positions here may lag run 0's; empty: none since the runs were
  // sent, the app's copies tell.
  std::vector<bool> lockstep;
  bool runs_moved(const std::vector<Run*>& runs) const;
  void sent(const std::vector<Run*>& runs);  // the runs as the host has them now
};

// The Anomaly panel (anomaly.cpp): the reconstruction error as an anomaly score, its threshold, the worst digits,
// and how well it separates the view images from out-of-distribution ones (AUC, ROC).
struct AnomalyView {
  int mode = 0;   // out-of-distribution images: 0 uniform noise, 1 one digit vs the rest (held out or not), 2 Fashion
  int digit = 0;  // mode 1's digit
  float threshold = 0;
  bool threshold_set_by_user = false;  // otherwise it follows the 99th percentile as the model trains
  double auc = NAN;
  std::vector<float> outlier_errors;   // per out-of-distribution image (modes 0 and 2), from the views
  std::vector<ImVec2> roc;             // ROC curve points (false positive rate, true positive rate)
  Picture worst;                       // the 16 worst-reconstructed view images
  // Scores the view images' errors (test images 0..n-1) against outlier_errors (modes 0, 2) or the chosen digit's.
  void score(const std::vector<float>& errors, const Dataset& test, Normalization norm);
};

struct App::State {
  PanelLayout layout;
  std::vector<Preset> presets;
  int preset_index = 0;
  Preset preset;  // the current model's description, with the user's edits
  std::unique_ptr<Run> run;  // the model training: weights, optimizer, batch order, loss curve, step count
  uint64_t seed = 1;
  bool running = false;
  double step_ms = 0;  // running estimate of a training step, to stop a slice before it overruns its budget
  // Speed: samples trained per second of wall time while training runs (what the learner gets, drawing included), and
  // the engine's own speed inside the training slices.
  double samples_per_s = 0, engine_samples_per_s = 0;
  uint64_t samples_trained = 0;  // a running count (only differences are used)
  std::deque<std::pair<double, uint64_t>> wall;  // (seconds, samples_trained) at the frames of the last 3 s of training
  double last_train = NAN, last_test = NAN, last_test_kl = NAN;
  std::vector<LossCurve> past;
  bool log_scale = true, show_recon_kl = true;
  Clock::time_point last_refresh = Clock::now();
  Clock::time_point last_frame = Clock::now();
  double main_credit_ms = 0;  // what the views may still spend while a host trains (App::main_share)
  size_t refreshed_step = size_t(-1);
  bool views_dirty = true;

  // Views over the first view_images test images.
  size_t n_view = 0, code_dim = 0;
  std::vector<float> codes, xy, errors;
  // Instruments over the view images' codes (core/instruments): sparsity for every model, the posterior's per-unit KL
  // and active units for a VAE (empty / 0 otherwise).
  SparsityStats code_stats;
  PosteriorStats posterior;
  Pca code_pca;
  bool latent_pca = false;
  float lx0 = -1, lx1 = 1, ly0 = -1, ly1 = 1;  // visible latent range
  // UMAP view of a code larger than 2-d: computed a slice per frame from the finished views' codes; the last
  // finished embedding stays on show while the next one computes.
  bool latent_umap = false;  // the view chosen for codes larger than 2-d: UMAP, else PCA
  Umap umap;
  size_t umap_codes_step = size_t(-1);  // training step of the codes the running (or last) UMAP started from
  std::vector<float> umap_xy;           // [umap_n, 2], the last finished embedding
  size_t umap_n = 0, umap_step = 0;     // its points and the training step of its codes
  size_t umap_runs = 0;                 // embeddings started since the last reset
  float ux0 = -1, ux1 = 1, uy0 = -1, uy1 = 1;  // its plot range
  int hovered = -1;
  bool have_click = false;
  float click[2] = {0, 0};
  Picture recon, preview, manifold, decoded, hover_pic, generated, interp, weights_pic, draw_pad, draw_out;
  Picture scatter;               // the Latent panel's dots
  uint64_t scatter_key = 0;      // what they were painted from (repainted when it changes)
  int hover_shown = -1;
  float recon_err[kReconCount] = {};  // per-image MSE against the clean digit
  std::vector<float> code_mean, code_std;  // Gaussian fitted to the codes (generation for a plain AE)
  int interp_a = 0, interp_b = 1;
  uint64_t gen_seed = 1;
  int traverse_dim = 0, draw_pick = 0;
  int held_out = -1;              // digit left out of the training set, -1 none
  int code_edit = 0;
  float draw_canvas[28 * 28] = {};
  float draw_score = NAN;
  std::vector<float> draw_code;
  bool draw_dirty = true;
  double pca_mse = NAN, model_mse = NAN;
  size_t pca_k = 0;

  ViewJob job;  // the views' numbers, a chunk per frame on a snapshot of the weights (views.hpp)
  IdxImages pending_images[2];  // a user's own IDX files, [0] train, [1] test, until images and labels are both in
  IdxLabels pending_labels[2];
  std::string pending_names[2][2];
  AnomalyView anomaly;
  Dataset ood;  // Fashion-MNIST test images, loaded when the anomaly panel asks for them
  bool fashion_asked = false;  // the driver was asked for them (once per session)

  // Model panel: the preset as editable JSON.
  std::vector<float> frame_ms;  // ring buffer of the last 240 frames' main-thread times
  std::vector<float> app_ms;    // the same frames' time in App::frame + ImGui::Render alone (NaN if not given)
  size_t frame_pos = 0;

  std::string json_text, json_error;
  // Model panel: the layer editor works on a draft (the layer lists of the preset, taken when a model is selected);
  // Apply builds the current settings with the draft's layers.
  Preset draft;
  std::unique_ptr<Model> draft_model;  // null while the edited draft does not build
  std::string draft_error;
  bool draft_edited = false;
  bool show_json = false, show_code = false;
  std::string code_text;
  bool code_keras = false;  // the code view shows Keras instead of PyTorch

  LessonPlay lesson;
  HostSync host;
  InstrumentViews instr;  // the loss picker, Jacobian norm, code probe and posterior view (instrument_views.cpp)
};

}  // namespace aep
