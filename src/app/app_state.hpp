// What app.cpp (state, training, views, commands) and panels.cpp (the panels' drawing) share; private to src/app.
#pragma once
#include <deque>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "app/app.hpp"
#include "app/instrument_views.hpp"
#include "core/instruments.hpp"
#include "core/metrics.hpp"
#include "core/umap.hpp"

namespace aep {

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
void plot_range(const std::vector<float>& xy, size_t n, float& x0, float& x1, float& y0, float& y1);
bool with_code_size(Preset& p, size_t d);
std::string described_with_lesson(const Preset& p);  // the description as the Model panel shows it

// Where each panel goes (see update()); per App, so two apps (tests) do not share it.
struct PanelLayout {
  struct Rect { float x, y, w, h; } rect[kPanelCount] = {};
  bool relayout = true;
  ImVec2 last_size;
  bool last_visible[kPanelCount] = {};
  void update(const bool* visible, ImVec2 display, float top);
  // Where each panel was last drawn (screen rect; w = 0 while collapsed): status() reports it, so that tests can
  // check a screenshot's panel regions.
  mutable Rect shown[kPanelCount] = {};
  bool begin(int id, bool* open) const;  // ImGui::Begin of panel id, placed and sized when the layout changed
};

struct App::State {
  PanelLayout layout;
  std::vector<Preset> presets;
  int preset_index = 0;
  Preset preset;  // the current model's description, with the user's edits
  std::unique_ptr<Run> run;  // the model training: weights, optimizer, batch order, loss curve, step count
  uint64_t seed = 1;
  bool running = false;
  double step_ms = 0, chunk_ms = 0;  // running estimates, to stop a slice before it overruns its budget
  // Speed: samples trained per second of wall time while training runs (what the learner gets, drawing included), and
  // the engine's own speed inside the training slices.
  double samples_per_s = 0, engine_samples_per_s = 0;
  uint64_t samples_trained = 0;  // a running count (only differences are used)
  std::deque<std::pair<double, uint64_t>> wall;  // (seconds, samples_trained) at the frames of the last 3 s of training
  double last_train = NAN, last_test = NAN, last_test_kl = NAN;
  std::vector<LossCurve> past;
  bool log_scale = true, show_recon_kl = true;
  Clock::time_point last_refresh = Clock::now();
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
  Picture recon, preview, manifold, decoded, hover_pic, generated, interp, worst, weights_pic, draw_pad, draw_out;
  Picture scatter;               // the Latent panel's dots
  uint64_t scatter_key = 0;      // what they were painted from (repainted when it changes)
  int hover_shown = -1;
  float recon_err[kReconCount] = {};  // per-image MSE against the clean digit
  std::vector<float> code_mean, code_std;  // Gaussian fitted to the codes (generation for a plain AE)
  int interp_a = 0, interp_b = 1;
  float threshold = 0;
  bool threshold_set_by_user = false;  // otherwise it follows the 99th percentile as the model trains
  uint64_t gen_seed = 1;
  int traverse_dim = 0, draw_pick = 0;
  double auc = NAN;
  std::vector<float> noise_errors;
  int anomaly_mode = 0;  // 0 noise images, 1 one digit vs the rest (held out of training or not), 2 Fashion-MNIST
  int held_digit = 0;
  int held_out = -1;              // digit left out of the training set, -1 none
  std::vector<ImVec2> roc;          // ROC curve points (false positive rate, true positive rate)
  int code_edit = 0;
  float draw_canvas[28 * 28] = {};
  float draw_score = NAN;
  std::vector<float> draw_code;
  bool draw_dirty = true;
  double pca_mse = NAN, model_mse = NAN;
  size_t pca_k = 0;

  // Views are computed a chunk per frame on a snapshot of the weights, so training goes on meanwhile and no frame
  // stalls: stage 0 test loss, 1 codes and errors, 2 noise images, then finish().
  struct ViewJob {
    bool active = false;
    int stage = 0;
    size_t pos = 0, step = 0, n_view = 0, code_dim = 0;
    std::unique_ptr<Model> model;
    std::unique_ptr<Trainer> trainer;
    Rng noise{0x5eed};
    double total = 0, kl = 0;
    std::vector<float> codes, errors, noise_errors;
    std::vector<float> logvars;  // a VAE's log sigma^2 per view image, beside its mu in codes
    std::string loss;            // the loss its test loss is measured with (reconstruction_loss_label)
  } job;
  IdxImages pending_images[2];  // a user's own IDX files, [0] train, [1] test, until images and labels are both in
  IdxLabels pending_labels[2];
  std::string pending_names[2][2];
  Dataset ood;  // Fashion-MNIST test images, loaded when the anomaly panel asks for them

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

  InstrumentViews instr;  // the loss picker, Jacobian norm, code probe and posterior view (instrument_views.cpp)
};

}  // namespace aep
