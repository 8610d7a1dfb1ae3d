// The playground's state and its frame: training in time slices, views refreshed from the model as it learns.
#include "app/app.hpp"

#include <misc/cpp/imgui_stdlib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/gemm.hpp"
#include "core/safetensors.hpp"
#include "core/umap.hpp"
#include "core/weights.hpp"

namespace aep {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kReconCount = 8;          // fixed test digits in the reconstruction panel
constexpr int kGrid = 15;               // decoded manifold grid side
const ImU32 kDigitColors[10] = {IM_COL32(31, 119, 180, 255), IM_COL32(255, 127, 14, 255), IM_COL32(44, 160, 44, 255),
                                IM_COL32(214, 39, 40, 255),  IM_COL32(148, 103, 189, 255), IM_COL32(140, 86, 75, 255),
                                IM_COL32(227, 119, 194, 255), IM_COL32(127, 127, 127, 255), IM_COL32(188, 189, 34, 255),
                                IM_COL32(23, 190, 207, 255)};
const char* kPanelKeys[kPanelCount] = {"model", "data", "training", "recon", "latent",
                                       "generate", "draw", "anomaly", "inside", "save"};
const char* kPanelTitles[kPanelCount] = {"Model", "Data & corruption", "Training", "Reconstructions", "Latent space",
                                         "Generate & interpolate", "Draw", "Anomaly detection", "Inside the model",
                                         "Save & share"};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// FNV-1a over bytes, chained through `h`: a cheap fingerprint of what a picture was painted from.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::BeginItemTooltip()) {
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30.f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

// Mean squared error per image between two [n, 1, 28, 28] tensors.
void per_image_mse(const Tensor& a, const Tensor& b, size_t n, float* out) {
  const size_t d = 28 * 28;
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) {
      double e = double(a.data()[i * d + j]) - double(b.data()[i * d + j]);
      s += e * e;
    }
    out[i] = float(s / d);
  }
}

// Area under the ROC curve: probability that a random positive scores above a random negative (ties count half).
double roc_auc(const std::vector<float>& pos, const std::vector<float>& neg) {
  std::vector<std::pair<float, int>> all;
  for (float v : pos) all.push_back({v, 1});
  for (float v : neg) all.push_back({v, 0});
  std::sort(all.begin(), all.end());
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    double avg_rank = (i + j + 1) / 2.0;  // 1-based ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += avg_rank;
    i = j;
  }
  double np = double(pos.size()), nn = double(neg.size());
  return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

}  // namespace

static bool with_code_size(Preset& p, size_t d);

const char* panel_key(int id) { return id >= 0 && id < kPanelCount ? kPanelKeys[id] : ""; }

// ---- Picture -------------------------------------------------------------------------------------------------------

void Picture::resize(int width, int height) {
  w = width, h = height;
  rgba.assign(size_t(w) * h * 4, 0);
  for (size_t i = 0; i < rgba.size(); i += 4) rgba[i] = rgba[i + 1] = rgba[i + 2] = 40, rgba[i + 3] = 255;
  dirty = true;
}

void Picture::put_digit(int x0, int y0, const float* img, float lo, float hi) {
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      int px = x0 + x, py = y0 + y;
      if (px < 0 || py < 0 || px >= w || py >= h) continue;
      float v = (img[y * 28 + x] - lo) / (hi - lo);
      v = std::isfinite(v) ? std::clamp(v, 0.f, 1.f) : 0.f;
      uint8_t g = uint8_t(v * 255.f + 0.5f);
      uint8_t* p = &rgba[(size_t(py) * w + px) * 4];
      p[0] = p[1] = p[2] = g, p[3] = 255;
    }
  dirty = true;
}

void Picture::put_dot(float x, float y, float radius, ImU32 color) {
  const int x0 = std::max(0, int(std::floor(x - radius - 1))), x1 = std::min(w - 1, int(std::ceil(x + radius + 1)));
  const int y0 = std::max(0, int(std::floor(y - radius - 1))), y1 = std::min(h - 1, int(std::ceil(y + radius + 1)));
  const float c[3] = {float(color & 0xff), float((color >> 8) & 0xff), float((color >> 16) & 0xff)};
  for (int py = y0; py <= y1; ++py)
    for (int px = x0; px <= x1; ++px) {
      // coverage of the pixel (centre px + 0.5) by the disc, with a one-pixel soft edge
      const float d = std::hypot(px + 0.5f - x, py + 0.5f - y);
      const float a = std::clamp(radius + 0.5f - d, 0.f, 1.f);
      if (a <= 0) continue;
      uint8_t* p = &rgba[(size_t(py) * w + px) * 4];
      for (int k = 0; k < 3; ++k) p[k] = uint8_t(p[k] + a * (c[k] - p[k]) + 0.5f);
    }
  dirty = true;
}

ImTextureID Picture::texture(const TextureApi& api) {
  if (api.create && (!tex || tex_w != w || tex_h != h) && w > 0) {
    if (tex && api.destroy) api.destroy(tex);
    tex = api.create(w, h);
    tex_w = w, tex_h = h;
    dirty = true;
  }
  if (dirty && api.update && tex) api.update(tex, w, h, rgba.data());
  dirty = false;
  return tex;
}

ImVec2 Picture::show(const TextureApi& api, float scale) {
  ImTextureID t = texture(api);
  ImVec2 at = ImGui::GetCursorScreenPos();
  ImGui::Image(t, ImVec2(w * scale, h * scale));
  return at;
}

// ---- state ---------------------------------------------------------------------------------------------------------

// Where each panel goes (see update()); per App, so two apps (tests) do not share it.
struct PanelLayout {
  struct Rect { float x, y, w, h; } rect[kPanelCount] = {};
  bool relayout = true;
  ImVec2 last_size;
  bool last_visible[kPanelCount] = {};
  void update(const bool* visible, ImVec2 display, float top);
  bool begin(int id, bool* open) const;  // ImGui::Begin of panel id, placed and sized when the layout changed
};

struct App::State {
  PanelLayout layout;
  std::vector<Preset> presets;
  int preset_index = 0;
  Preset preset;  // the current model's description, with the user's edits
  std::unique_ptr<Model> model;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<BatchSampler> sampler;
  uint64_t seed = 1;
  bool running = false;
  size_t step = 0;
  double step_ms = 0, chunk_ms = 0;  // running estimates, to stop a slice before it overruns its budget
  double samples_per_s = 0, last_train = NAN, last_test = NAN, last_test_kl = NAN;
  LossCurve curve;
  std::vector<LossCurve> past;
  bool log_scale = true, show_recon_kl = true;
  Tensor input, target;
  std::vector<uint32_t> batch_idx;
  Clock::time_point last_refresh = Clock::now();
  size_t refreshed_step = size_t(-1);
  bool views_dirty = true;

  // Views over the first view_images test images.
  size_t n_view = 0, code_dim = 0;
  std::vector<float> codes, xy, errors;
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
  std::vector<uint32_t> train_map;  // training images used (all, or all but the held-out digit)
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
};

App::App(TextureApi textures) : s_(new State), tex_(textures) {
  for (bool& b : show_panel) b = true;
  for (const auto& name : list_presets()) {
    try {
      s_->presets.push_back(load_preset(name));
    } catch (const std::exception& e) {
      message = e.what();
    }
  }
  if (s_->presets.empty()) throw std::runtime_error("no presets found in " + assets_dir() + "/presets");
  auto it = std::find_if(s_->presets.begin(), s_->presets.end(), [](const Preset& p) { return p.name == "conv"; });
  s_->preset_index = it == s_->presets.end() ? 0 : int(it - s_->presets.begin());
  std::string err;
  if (!select_preset(s_->presets[s_->preset_index], &err)) throw std::runtime_error(err);
}

App::~App() = default;

void App::set_data(Dataset train, Dataset test) {
  train_ = std::move(train);
  test_ = std::move(test);
  loading_.clear();
  bool autostart = s_->running;  // a Train/autostart that came before the data
  reset_training();
  s_->running = autostart;
}

bool App::select_preset(const Preset& p, std::string* error) {
  try {
    auto m = std::make_unique<Model>(p);
    if (p.loss.contractive > 0) m->contractive_layer();
    s_->preset = p;
    s_->model = std::move(m);
    s_->json_text = preset_to_json(p).dump(2);
    s_->json_error.clear();
    s_->code_text = pytorch_code(p);
    s_->draft = p;  // a new model replaces any unapplied layer edits
    s_->draft_edited = false;
    reset_training();
    return true;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
}

void App::reset_training() {
  State& s = *s_;
  if (!s.curve.step.empty()) {
    s.past.push_back(std::move(s.curve));
    if (s.past.size() > 4) s.past.erase(s.past.begin());
  }
  s.curve = LossCurve();
  char label[160];
  std::snprintf(label, sizeof label, "%s, %s lr %g, batch %zu, seed %llu", s.preset.name.c_str(),
                s.preset.optimizer.type.c_str(), double(s.preset.optimizer.lr), s.preset.training.batch_size,
                (unsigned long long)s.seed);
  s.curve.label = label;
  cancel_views();
  s.model->init(s.seed);
  s.trainer = std::make_unique<Trainer>(*s.model, s.seed + 1);
  s.sampler.reset();
  rebuild_train_map();
  if (has_data()) s.sampler = std::make_unique<BatchSampler>(s.train_map.size(), s.preset.training.batch_size, true, s.seed + 2);
  s.step = 0;
  s.running = false;
  s.samples_per_s = 0;
  s.last_train = s.last_test = s.last_test_kl = NAN;
  s.refreshed_step = size_t(-1);
  s.views_dirty = true;
  s.draw_dirty = true;
  s.pca_mse = NAN;
}

void App::rebuild_train_map() {
  State& s = *s_;
  s.train_map.clear();
  for (size_t i = 0; i < train_.count; ++i)
    if (s.held_out < 0 || train_.labels.empty() || train_.labels[i] != s.held_out) s.train_map.push_back(uint32_t(i));
}

void App::load_data_file(const std::vector<uint8_t>& bytes, const std::string& name) {
  State& s = *s_;
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  const int set = lower.find("t10k") != std::string::npos || lower.find("test") != std::string::npos;
  const char* set_name = set ? "test" : "training";
  bool is_images = true;
  try {
    s.pending_images[set] = parse_idx_images(bytes.data(), bytes.size(), name);
    s.pending_names[set][0] = name;
  } catch (const std::exception& e_images) {
    try {
      s.pending_labels[set] = parse_idx_labels(bytes.data(), bytes.size(), name);
      s.pending_names[set][1] = name;
      is_images = false;
    } catch (const std::exception& e_labels) {
      throw std::runtime_error(std::string(e_images.what()) + "; as a label file: " + e_labels.what());
    }
  }
  IdxImages& im = s.pending_images[set];
  IdxLabels& lb = s.pending_labels[set];
  if (im.count == 0 || lb.count == 0) {
    message = std::string("Got ") + set_name + (is_images ? " images" : " labels") + " from " + name + " (" +
              std::to_string(is_images ? im.count : lb.count) + "); drop the matching " +
              (is_images ? "labels" : "images") + " file too (names with 't10k' or 'test' count as the test set).";
    return;
  }
  // Either way the pair is used up: on a mismatch the user drops both files again.
  IdxImages images = std::move(im);
  IdxLabels labels = std::move(lb);
  im = IdxImages();
  lb = IdxLabels();
  Dataset d = make_dataset(std::move(images), std::move(labels), s.pending_names[set][0], s.pending_names[set][1],
                           set ? "test" : "train");
  message = std::string("Now using ") + std::to_string(d.count) + " " + set_name + " images from " +
            s.pending_names[set][0] + ".";
  if (set) test_ = std::move(d);
  else train_ = std::move(d);
  s.held_out = -1;
  reset_training();
}

void App::set_ood(Dataset d) {
  s_->ood = std::move(d);
  ood_requested = false;
  s_->views_dirty = true;
}

// Hyper-parameters that can change between steps without rebuilding the model.
void App::apply_hyper_parameters() {
  State& s = *s_;
  s.trainer->optimizer.config.lr = s.preset.optimizer.lr;
  s.trainer->optimizer.config.weight_decay = s.preset.optimizer.weight_decay;
  s.model->set_loss(s.preset.loss);
  if (s.sampler && s.sampler->batch_size() != s.preset.training.batch_size) {
    try {
      s.model->check_memory(s.preset.training.batch_size);
    } catch (const std::exception& e) {
      message = std::string("Batch size not changed: ") + e.what();
      s.preset.training.batch_size = s.sampler->batch_size();
      return;
    }
    size_t epoch = s.sampler->epoch;
    s.sampler = std::make_unique<BatchSampler>(s.train_map.size(), s.preset.training.batch_size, true, s.seed + 2 + epoch);
    s.sampler->epoch = epoch;
  }
}

bool App::step_once() {
  State& s = *s_;
  size_t n;
  const uint32_t* pos = s.sampler->next(n);
  std::vector<uint32_t>& idx = s.batch_idx;
  idx.resize(n);
  for (size_t i = 0; i < n; ++i) idx[i] = s.train_map[pos[i]];
  make_batch(train_, idx.data(), n, s.preset, s.trainer->rng, s.input, s.target);
  try {
    LossTerms L = s.trainer->train_step(s.input, s.target);
    ++s.step;
    s.last_train = L.total;
    s.curve.step.push_back(float(s.step));
    s.curve.train.push_back(float(L.total));
    s.curve.recon.push_back(float(L.reconstruction));
    s.curve.kl.push_back(float(L.kl));
    return true;
  } catch (const DivergenceError& e) {
    s.running = false;
    message = e.what();  // "training stopped at step N: ... Try a smaller learning rate ..."
    if (!message.empty()) message[0] = char(std::toupper((unsigned char)message[0]));
    message += " Reset starts again from fresh weights.";
    return false;
  }
}

bool App::train_steps(size_t n) {
  if (!has_data()) {
    message = "The MNIST data is not loaded yet.";
    return false;
  }
  apply_hyper_parameters();
  auto t0 = Clock::now();
  size_t samples = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!step_once()) return false;
    samples += s_->input.shape()[0];
  }
  double dt = seconds_since(t0);
  if (dt > 0) s_->samples_per_s = s_->samples_per_s == 0 ? samples / dt : 0.8 * s_->samples_per_s + 0.2 * samples / dt;
  s_->views_dirty = true;
  return true;
}

// ---- views ---------------------------------------------------------------------------------------------------------

// The box around n 2-d points (xy: [n, 2]) with a 5% margin; non-finite points are left out.
static void plot_range(const std::vector<float>& xy, size_t n, float& x0, float& x1, float& y0, float& y1) {
  x0 = y0 = 1e30f, x1 = y1 = -1e30f;
  for (size_t i = 0; i < n; ++i) {
    float a = xy[2 * i], b = xy[2 * i + 1];
    if (!std::isfinite(a) || !std::isfinite(b)) continue;
    x0 = std::min(x0, a), x1 = std::max(x1, a), y0 = std::min(y0, b), y1 = std::max(y1, b);
  }
  if (x1 <= x0) x0 = -1, x1 = 1;
  if (y1 <= y0) y0 = -1, y1 = 1;
  float mx = 0.05f * (x1 - x0), my = 0.05f * (y1 - y0);
  x0 -= mx, x1 += mx, y0 -= my, y1 += my;
}

void App::refresh_views() {
  if (!has_data()) return;
  start_views();
  while (step_views(1e9)) {
  }
  while (umap_due()) step_umap(1e9);
}

const std::vector<float>& App::latent_points(std::string* kind) const {
  const State& s = *s_;
  const bool umap = s.code_dim > 2 && s.latent_umap;
  if (kind) *kind = s.code_dim == 2 ? "code" : umap ? "umap" : "pca";
  return umap ? s.umap_xy : s.xy;
}

// The UMAP view wants an embedding of the current codes (and the panel is open to show it).
bool App::umap_due() const {
  const State& s = *s_;
  if (!s.latent_umap || s.code_dim <= 2 || s.n_view == 0 || !show_panel[kPanelLatent]) return false;
  return s.umap.running() || s.umap_codes_step != s.refreshed_step;
}

// A slice of the UMAP of the view codes: started from the newest codes whenever the last one is done, so the
// embedding follows training a refresh or so behind; a finished one replaces the one on show. A refresh starts
// from the embedding on show and runs fewer, gentler epochs: the layout keeps its shape (islands stay where the
// learner saw them) and is ready sooner.
void App::step_umap(double budget_ms) {
  State& s = *s_;
  if (!s.umap.running()) {
    s.umap_codes_step = s.refreshed_step;  // tried once per refresh, even if it fails
    // Refreshes start from the embedding on show (islands stay where the learner saw them, ~3x cheaper); every
    // 5th run starts over from PCA so an arrangement formed early in training (a digit split in two) can heal.
    const bool refresh = s.umap_n == s.n_view && ++s.umap_runs % 5 != 0;
    UmapParams p;
    if (refresh) p.n_epochs = 60, p.learning_rate = 0.5f;
    try {
      s.umap.begin(s.codes.data(), s.n_view, s.code_dim, p, refresh ? s.umap_xy.data() : nullptr);
    } catch (const std::exception& e) {
      message = std::string("UMAP view: ") + e.what();
      return;
    }
  }
  if (!s.umap.step(budget_ms)) return;
  s.umap_xy = s.umap.embedding();
  s.umap_n = s.umap.size();
  s.umap_step = s.umap_codes_step;
  plot_range(s.umap_xy, s.umap_n, s.ux0, s.ux1, s.uy0, s.uy1);
  s.hover_shown = -1;
}

void App::start_views() {
  State& s = *s_;
  State::ViewJob& j = s.job;
  if (!j.model) {
    j.model = std::make_unique<Model>(s.preset);
    j.trainer = std::make_unique<Trainer>(*j.model, 0);
  }
  j.model->set_loss(s.preset.loss);
  std::copy(s.model->values.begin(), s.model->values.end(), j.model->values.begin());
  std::copy(s.model->buffer_values.begin(), s.model->buffer_values.end(), j.model->buffer_values.begin());
  j.active = true;
  j.stage = 0;
  j.pos = 0;
  j.step = s.step;
  j.noise = Rng(0x5eed);
  j.total = j.kl = 0;
  j.n_view = std::min(view_images, test_.count);
  j.code_dim = j.model->code_size();
  j.codes.assign(j.n_view * j.code_dim, 0.f);
  j.errors.assign(j.n_view, 0.f);
  j.noise_errors.clear();
  s.views_dirty = false;
}

// The model changed shape or weights wholesale: drop the running job, its snapshot and the old views.
void App::cancel_views() {
  State& s = *s_;
  s.job.active = false;
  s.job.trainer.reset();
  s.job.model.reset();
  s.n_view = 0;
  s.code_dim = 0;
  s.codes.clear();
  s.errors.clear();
  s.xy.clear();
  s.umap.clear();
  s.umap_xy.clear();
  s.umap_n = 0;
  s.umap_runs = 0;
  s.umap_codes_step = size_t(-1);
  s.views_dirty = true;
}

// Works on the view job for about budget_ms (at least one chunk); returns true while there is more to do.
bool App::step_views(double budget_ms) {
  State& s = *s_;
  State::ViewJob& j = s.job;
  if (!j.active) return false;
  Model& m = *j.model;
  const Preset& p = m.preset();
  const size_t B = 64;
  std::vector<uint32_t> idx(B);
  Tensor x, clean;
  auto t0 = Clock::now();
  for (;;) {
    auto tc = Clock::now();
    if (j.stage == 0) {  // test loss, like evaluate(): eval mode, corruption from a fixed seed
      size_t n_eval = std::min(eval_images, test_.count), n = std::min(B, n_eval - j.pos);
      for (size_t i = 0; i < n; ++i) idx[i] = uint32_t(j.pos + i);
      make_batch(test_, idx.data(), n, s.preset, j.noise, x, clean);  // the corruption as set now
      LossTerms L = j.trainer->forward_backward(x, clean, false, false);
      j.total += L.total * n / n_eval, j.kl += L.kl * n / n_eval;
      if ((j.pos += n) >= n_eval) j.stage = 1, j.pos = 0;
    } else if (j.stage == 1) {  // codes and per-image errors of the view images
      size_t n = std::min(B, j.n_view - j.pos);
      for (size_t i = 0; i < n; ++i) idx[i] = uint32_t(j.pos + i);
      fill_batch(test_, idx.data(), n, p.normalize, x);
      Tensor z = m.encode(x);
      std::copy(z.data(), z.data() + n * j.code_dim, j.codes.data() + j.pos * j.code_dim);
      Tensor y = m.decode(z);
      per_image_mse(x, y, n, j.errors.data() + j.pos);
      bool outliers = s.anomaly_mode == 0 || (s.anomaly_mode == 2 && s.ood.count > 0);
      if ((j.pos += n) >= j.n_view) j.stage = outliers ? 2 : 3, j.pos = 0;
    } else if (j.stage == 2) {  // the out-of-distribution set of the anomaly panel: noise or Fashion-MNIST images
      const bool fashion = s.anomaly_mode == 2 && s.ood.count > 0;
      const size_t total = fashion ? std::min<size_t>(1000, s.ood.count) : 500, n = std::min(B, total - j.pos);
      const float lo = range_min(p.normalize), hi = range_max(p.normalize);
      Tensor noise(m.input_shape(n));
      if (fashion) {
        for (size_t i = 0; i < n; ++i) idx[i] = uint32_t(j.pos + i);
        fill_batch(s.ood, idx.data(), n, p.normalize, noise);
      } else {
        Rng r(99 + j.pos);
        for (float& v : noise) v = lo + (hi - lo) * r.uniform();
      }
      Tensor y = m.reconstruct(noise);
      j.noise_errors.resize(j.pos + n);
      per_image_mse(noise, y, n, j.noise_errors.data() + j.pos);
      if ((j.pos += n) >= total) j.stage = 3;
    } else {
      finish_views();
      j.active = false;
      return false;
    }
    s.chunk_ms = 0.8 * s.chunk_ms + 0.2 * seconds_since(tc) * 1000;
    if (seconds_since(t0) * 1000 + s.chunk_ms > budget_ms) return true;
  }
}

// The cheap rest of the views, from the finished job: test-loss point, pictures, projections.
void App::finish_views() {
  State& s = *s_;
  State::ViewJob& j = s.job;
  Model& m = *j.model;
  const Preset& p = m.preset();
  const float lo = range_min(p.normalize), hi = range_max(p.normalize);
  s.last_test = j.total;
  s.last_test_kl = j.kl;
  if (s.curve.test_step.empty() || s.curve.test_step.back() != float(j.step)) {
    s.curve.test_step.push_back(float(j.step));
    s.curve.test.push_back(float(j.total));
  }
  s.n_view = j.n_view;
  s.code_dim = j.code_dim;
  s.codes.swap(j.codes);
  s.errors.swap(j.errors);
  s.noise_errors.swap(j.noise_errors);
  Tensor x;

  // Reconstructions of fixed test digits: input | corrupted | output.
  {
    std::vector<uint32_t> idx(kReconCount);
    for (int i = 0; i < kReconCount; ++i) idx[i] = uint32_t(i * 37 % test_.count);
    Rng noise(0x5eed);
    Tensor in, clean;
    make_batch(test_, idx.data(), kReconCount, s.preset, noise, in, clean);
    Tensor out = m.reconstruct(in);
    per_image_mse(clean, out, kReconCount, s.recon_err);
    s.recon.resize(kReconCount * 30 + 2, 3 * 30 + 2);
    for (int i = 0; i < kReconCount; ++i) {
      s.recon.put_digit(2 + i * 30, 2, clean.data() + i * 784, lo, hi);
      s.recon.put_digit(2 + i * 30, 32, in.data() + i * 784, lo, hi);
      s.recon.put_digit(2 + i * 30, 62, out.data() + i * 784, lo, hi);
    }
  }

  // 2-D view: the code itself, or its first two principal components.
  s.latent_pca = s.code_dim != 2;
  s.xy.assign(s.n_view * 2, 0.f);
  if (s.latent_pca) {
    // Randomized for large codes: the covariance of 2000 codes of 1568 dimensions alone costs a second in wasm.
    const size_t k = std::min<size_t>(2, s.code_dim);
    s.code_pca = s.code_dim > 64 ? fit_pca_randomized(s.codes.data(), s.n_view, s.code_dim, k)
                                 : fit_pca(s.codes.data(), s.n_view, s.code_dim, k, 1, 30);
    std::vector<float> c(s.n_view * s.code_pca.k);
    s.code_pca.project(s.codes.data(), s.n_view, c.data());
    for (size_t i = 0; i < s.n_view; ++i)
      for (size_t k = 0; k < s.code_pca.k; ++k) s.xy[i * 2 + k] = c[i * s.code_pca.k + k];
  } else {
    s.xy = s.codes;
  }
  plot_range(s.xy, s.n_view, s.lx0, s.lx1, s.ly0, s.ly1);
  s.hover_shown = -1;

  // A diagonal Gaussian fitted to the codes: how a plain AE "generates".
  s.code_mean.assign(s.code_dim, 0.f);
  s.code_std.assign(s.code_dim, 0.f);
  for (size_t i = 0; i < s.n_view; ++i)
    for (size_t d = 0; d < s.code_dim; ++d) s.code_mean[d] += s.codes[i * s.code_dim + d] / s.n_view;
  for (size_t i = 0; i < s.n_view; ++i)
    for (size_t d = 0; d < s.code_dim; ++d) {
      float e = s.codes[i * s.code_dim + d] - s.code_mean[d];
      s.code_std[d] += e * e / s.n_view;
    }
  for (float& v : s.code_std) v = std::sqrt(v);

  // Manifold grid over the visible 2-D range (2-D codes only).
  if (s.code_dim == 2) {
    Tensor z(m.code_shape(kGrid * kGrid));
    for (int r = 0; r < kGrid; ++r)
      for (int c = 0; c < kGrid; ++c) {
        z.data()[(r * kGrid + c) * 2] = s.lx0 + (s.lx1 - s.lx0) * (c + 0.5f) / kGrid;
        z.data()[(r * kGrid + c) * 2 + 1] = s.ly1 - (s.ly1 - s.ly0) * (r + 0.5f) / kGrid;
      }
    Tensor g = m.decode(z);
    s.manifold.resize(kGrid * 28, kGrid * 28);
    for (int i = 0; i < kGrid * kGrid; ++i) s.manifold.put_digit((i % kGrid) * 28, (i / kGrid) * 28, g.data() + i * 784, lo, hi);
  }

  // Anomaly: threshold default at the 99th percentile; worst digits.
  {
    std::vector<float> sorted = s.errors;
    std::sort(sorted.begin(), sorted.end());
    if (!s.threshold_set_by_user) s.threshold = sorted[size_t(0.99 * (sorted.size() - 1))];
    std::vector<uint32_t> order(s.n_view);
    for (size_t i = 0; i < s.n_view; ++i) order[i] = uint32_t(i);
    std::partial_sort(order.begin(), order.begin() + std::min<size_t>(16, order.size()), order.end(),
                      [&](uint32_t a, uint32_t b) { return s.errors[a] > s.errors[b]; });
    s.worst.resize(8 * 30, 2 * 30);
    for (int i = 0; i < 16 && i < int(order.size()); ++i) {
      fill_batch(test_, &order[i], 1, p.normalize, x);
      s.worst.put_digit((i % 8) * 30, (i / 8) * 30, x.data(), lo, hi);
    }
    // Out-of-distribution scores: uniform noise images, or one digit against the others.
    std::vector<float> pos, neg;
    if (s.anomaly_mode != 1) {
      pos = s.noise_errors;
      neg = s.errors;
    } else if (!test_.labels.empty()) {
      for (size_t i = 0; i < s.n_view; ++i) (test_.labels[i] == s.held_digit ? pos : neg).push_back(s.errors[i]);
    }
    s.auc = pos.empty() || neg.empty() ? NAN : roc_auc(pos, neg);
    // ROC curve: sweep the threshold down through every score.
    s.roc.clear();
    if (!pos.empty() && !neg.empty()) {
      std::vector<std::pair<float, int>> all;
      for (float v : pos) all.push_back({v, 1});
      for (float v : neg) all.push_back({v, 0});
      std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
      size_t tp = 0, fp = 0, stride = std::max<size_t>(1, all.size() / 200);
      s.roc.push_back(ImVec2(0, 0));
      for (size_t i = 0; i < all.size(); ++i) {
        (all[i].second ? tp : fp)++;
        if (i % stride == 0 || i + 1 == all.size()) s.roc.push_back(ImVec2(float(fp) / neg.size(), float(tp) / pos.size()));
      }
    }
  }

  // First-layer weights as pictures.
  {
    const Model::Entry* w = nullptr;
    for (const auto& e : m.entries)
      if (e.grad && e.name.size() > 7 && e.name.compare(e.name.size() - 7, 7, ".weight") == 0 && e.shape.size() >= 2) {
        w = &e;
        break;
      }
    s.weights_pic.resize(0, 0);
    if (w && w->shape.size() == 2 && w->shape[1] == 784) {
      int rows = int(std::min<int64_t>(w->shape[0], 32));
      s.weights_pic.resize(8 * 30, ((rows + 7) / 8) * 30);
      for (int r = 0; r < rows; ++r) {
        const float* row = w->value + size_t(r) * 784;
        float a = *std::min_element(row, row + 784), b = *std::max_element(row, row + 784);
        s.weights_pic.put_digit((r % 8) * 30, (r / 8) * 30, row, a, b);
      }
    } else if (w && w->shape.size() == 4) {
      // Conv kernels [out, in, k, k] (ConvTranspose2d: [in, out, k, k]), each drawn 6x enlarged.
      int o = int(std::min<int64_t>(w->shape[0], 32)), in = int(std::min<int64_t>(w->shape[1], 8));
      int k = int(w->shape[2]), cell = k * 6 + 2;
      // One input channel (the first layer of an image model): the kernels wrap 8 to a row; else a row per output.
      const bool wrap = in == 1;
      const int cols = wrap ? std::min(o, 8) : in, rows = wrap ? (o + 7) / 8 : o;
      s.weights_pic.resize(cols * cell, rows * cell);
      size_t per = size_t(w->shape[1]) * k * k;
      float a = *std::min_element(w->value, w->value + size_t(w->shape[0]) * per);
      float b = *std::max_element(w->value, w->value + size_t(w->shape[0]) * per);
      for (int oi = 0; oi < o; ++oi)
        for (int ii = 0; ii < in; ++ii)
          for (int y = 0; y < k * 6; ++y)
            for (int xx = 0; xx < k * 6; ++xx) {
              float v = (w->value[oi * per + size_t(ii) * k * k + (y / 6) * k + xx / 6] - a) / (b - a + 1e-12f);
              const int cx = wrap ? oi % 8 : ii, cy = wrap ? oi / 8 : oi;
              uint8_t* px = &s.weights_pic.rgba[((size_t(cy) * cell + y) * s.weights_pic.w + cx * cell + xx) * 4];
              px[0] = px[1] = px[2] = uint8_t(std::clamp(v, 0.f, 1.f) * 255.f);
            }
    }
    double sum = 0;
    for (float e : s.errors) sum += e;
    s.model_mse = s.n_view ? sum / s.n_view : NAN;
  }

  s.draw_dirty = true;
  s.generated.w = 0;
  s.refreshed_step = j.step;
  s.last_refresh = Clock::now();
}

// ---- commands and status ---------------------------------------------------------------------------------------------

json App::command(const json& cmd) {
  State& s = *s_;
  std::vector<std::string> errors;
  if (!cmd.is_object()) return {{"ok", false}, {"errors", {"a command must be a JSON object"}}};
  auto number = [&](const char* key, double lo, double hi, double& out) {
    if (!cmd.contains(key)) return false;
    const json& v = cmd.at(key);
    double d = v.is_number() ? v.get<double>() : NAN;
    if (v.is_string()) {  // URL parameters arrive as strings
      const std::string text = v.get<std::string>();  // a named copy: end points into it below
      char* end = nullptr;
      d = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end) d = NAN;
    }
    if (!(d >= lo && d <= hi)) {
      char range[96];
      std::snprintf(range, sizeof range, " must be a number between %g and %g, got ", lo, hi);
      errors.push_back(key + std::string(range) + v.dump());
      return false;
    }
    out = d;
    return true;
  };
  auto flag = [&](const char* key) {
    if (!cmd.contains(key)) return -1;
    const json& v = cmd.at(key);
    if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
    if (v == "1" || v == "true" || v == 1) return 1;
    if (v == "0" || v == "false" || v == 0) return 0;
    errors.push_back(std::string(key) + " must be true/false or 1/0, got " + v.dump());
    return -1;
  };
  static const char* known[] = {"preset", "lr", "batch", "seed", "beta", "l1", "optimizer", "panels", "compact",
                                "autostart", "train", "pause", "step", "reset", "corruption", "noise", "epochs", "code",
                                "holdout", "anomaly", "latent", "trainMs"};
  for (auto it = cmd.begin(); it != cmd.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) == std::end(known))
      errors.push_back("unknown setting '" + it.key() + "'");

  // Validate everything first; apply only if all is well.
  Preset p = s.preset;
  bool new_model = false;
  int new_index = s.preset_index;
  if (cmd.contains("preset")) {
    const json& v = cmd.at("preset");
    auto it = v.is_string() ? std::find_if(s.presets.begin(), s.presets.end(),
                                           [&](const Preset& q) { return q.name == v.get<std::string>(); })
                            : s.presets.end();
    if (it == s.presets.end()) {
      std::string names;
      for (const auto& q : s.presets) names += (names.empty() ? "" : ", ") + q.name;
      errors.push_back("unknown preset " + v.dump() + " (known: " + names + ")");
    } else {
      p = *it;
      new_model = true;
      new_index = int(it - s.presets.begin());
    }
  }
  double d;
  if (number("lr", 1e-6, 10, d)) p.optimizer.lr = float(d);
  if (number("batch", 1, 4096, d)) p.training.batch_size = size_t(d);
  if (number("epochs", 1, 1000, d)) p.training.epochs = size_t(d);
  if (number("beta", 0, 1000, d)) p.loss.beta = float(d);
  if (number("l1", 0, 100, d)) p.loss.l1 = float(d);
  if (number("noise", 0, 10, d)) p.corruption.type = d > 0 ? "gaussian" : "none", p.corruption.std = float(d);
  uint64_t seed = s.seed;
  if (number("seed", 0, 4294967295.0, d)) seed = uint64_t(d);
  if (number("code", 1, 4096, d)) {
    if (with_code_size(p, size_t(d))) new_model = true;
    else errors.push_back("code: this model's code size cannot be changed here (edit its layers instead)");
  }
  int anomaly = s.anomaly_mode;
  if (cmd.contains("anomaly")) {
    const json& v = cmd.at("anomaly");
    if (v == "noise") anomaly = 0;
    else if (v == "digit") anomaly = 1;
    else if (v == "fashion") anomaly = 2;
    else errors.push_back("anomaly must be \"noise\", \"digit\" or \"fashion\", got " + v.dump());
  }
  bool latent_umap = s.latent_umap;
  if (cmd.contains("latent")) {
    const json& v = cmd.at("latent");
    if (v == "pca" || v == "umap") latent_umap = v == "umap";
    else errors.push_back("latent must be \"pca\" or \"umap\" (the Latent panel's view of codes larger than 2-d), got " + v.dump());
  }
  int holdout = s.held_out;
  if (number("holdout", -1, 9, d)) holdout = int(d);
  double train_ms = train_budget_ms;
  if (number("trainMs", 1, 100, d)) train_ms = d;
  if (cmd.contains("optimizer")) {
    const json& v = cmd.at("optimizer");
    if (v == "adam" || v == "sgd") p.optimizer.type = v.get<std::string>();
    else errors.push_back("optimizer must be \"adam\" or \"sgd\", got " + v.dump());
  }
  if (cmd.contains("corruption")) {
    static const char* types[] = {"none", "gaussian", "dropout", "salt_pepper", "occlusion", "downsample"};
    const json& v = cmd.at("corruption");
    if (v.is_string() && std::find(std::begin(types), std::end(types), v.get<std::string>()) != std::end(types))
      p.corruption.type = v.get<std::string>();
    else errors.push_back("corruption must be one of none, gaussian, dropout, salt_pepper, occlusion, downsample, got " + v.dump());
  }
  bool panels_given = cmd.contains("panels");
  bool panels[kPanelCount];
  if (panels_given) {
    const json& v = cmd.at("panels");
    std::string list = v.is_string() ? v.get<std::string>() : "";
    if (!v.is_string()) errors.push_back("panels must be a comma-separated list like \"training,recon\"");
    for (bool& b : panels) b = list == "all";
    size_t pos = 0;
    while (list != "all" && pos <= list.size() && !list.empty()) {
      size_t end = list.find(',', pos);
      std::string key = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      int i = int(std::find(std::begin(kPanelKeys), std::end(kPanelKeys), key) - std::begin(kPanelKeys));
      if (i < kPanelCount) panels[i] = true;
      else errors.push_back("unknown panel '" + key + "' (known: model, data, training, recon, latent, generate, draw, anomaly, inside, save, all)");
      if (end == std::string::npos) break;
      pos = end + 1;
    }
  }
  int compact_flag = flag("compact"), autostart = flag("autostart"), train = flag("train"), pause = flag("pause"),
      reset = flag("reset");
  double steps = 0;
  number("step", 0, 100000, steps);
  if (!new_model && p.training.batch_size != s.preset.training.batch_size) {
    try {
      s.model->check_memory(p.training.batch_size);
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }
  if (!errors.empty()) return {{"ok", false}, {"errors", errors}};

  bool hyper_changed = p.optimizer.lr != s.preset.optimizer.lr || p.loss.beta != s.preset.loss.beta ||
                       p.loss.l1 != s.preset.loss.l1 || p.training.batch_size != s.preset.training.batch_size;
  bool optimizer_changed = p.optimizer.type != s.preset.optimizer.type;
  if (holdout != s.held_out) s.held_out = holdout, new_model = true;
  if (anomaly != s.anomaly_mode) {
    s.anomaly_mode = anomaly;
    s.views_dirty = true;
    if (anomaly == 2 && s.ood.count == 0) ood_requested = true;
  }
  if (new_model || optimizer_changed) {
    std::string err;
    s.seed = seed;
    if (!select_preset(p, &err)) return {{"ok", false}, {"errors", {err}}};
    s.preset_index = new_index;
  } else {
    s.preset = p;
    if (seed != s.seed || reset == 1) {
      s.seed = seed;
      reset_training();
    } else if (hyper_changed) {
      apply_hyper_parameters();
    }
  }
  s.latent_umap = latent_umap;
  train_budget_ms = train_ms;
  if (panels_given) std::copy(std::begin(panels), std::end(panels), show_panel);
  if (compact_flag >= 0) compact = compact_flag == 1;
  if (autostart == 1 || train == 1) s.running = true;
  if (pause == 1) s.running = false;
  if (steps > 0) train_steps(size_t(steps));
  return {{"ok", true}};
}

void App::record_frame_time(double ms, double app_ms) {
  State& s = *s_;
  if (s.frame_ms.size() < 240) {
    s.frame_ms.push_back(float(ms));
    s.app_ms.push_back(float(app_ms));
  } else {
    s.frame_ms[s.frame_pos % 240] = float(ms);
    s.app_ms[s.frame_pos++ % 240] = float(app_ms);
  }
}

json App::status() const {
  const State& s = *s_;
  std::vector<float> f = s.frame_ms, a;
  std::sort(f.begin(), f.end());
  for (float x : s.app_ms)
    if (std::isfinite(x)) a.push_back(x);
  std::sort(a.begin(), a.end());
  auto pct_of = [](const std::vector<float>& v, double q) {
    return v.empty() ? json(nullptr) : json(v[std::min(v.size() - 1, size_t(q * v.size()))]);
  };
  auto pct = [&](double q) { return pct_of(f, q); };
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json panels = json::array();
  for (int i = 0; i < kPanelCount; ++i)
    if (show_panel[i]) panels.push_back(kPanelKeys[i]);
  return {{"preset", s.preset.name},
          {"step", s.step},
          {"epoch", s.sampler ? double(s.sampler->epoch) + double(s.sampler->step_in_epoch) / s.sampler->steps_per_epoch() : 0.0},
          {"trainLoss", num(s.last_train)},
          {"testLoss", num(s.last_test)},
          {"testStep", s.refreshed_step == size_t(-1) ? json(nullptr) : json(s.refreshed_step)},
          {"samplesPerSec", s.samples_per_s},
          {"trainMs", train_budget_ms},
          {"memoryBytes", memory_bytes ? json(memory_bytes) : json(nullptr)},
          {"trainingBytes", s.model->training_bytes(s.preset.training.batch_size)},
          {"memoryLimitBytes", Model::kMemoryBudget},
          {"frameMs", {{"p50", pct(0.5)}, {"p95", pct(0.95)}, {"max", pct(1.0)}, {"frames", f.size()},
                       {"appP50", pct_of(a, 0.5)}, {"appP95", pct_of(a, 0.95)}}},
          {"running", s.running},
          {"dataReady", train_.count > 0},
          {"lr", s.preset.optimizer.lr},
          {"batch", s.preset.training.batch_size},
          {"seed", s.seed},
          {"beta", s.preset.loss.beta},
          {"l1", s.preset.loss.l1},
          {"optimizer", s.preset.optimizer.type},
          {"corruption", s.preset.corruption.type},
          {"panels", panels},
          {"compact", compact},
          {"simd", simd_arch_name()},
          {"parameters", s.model->parameter_count()},
          {"codeSize", s.model->code_size()},
          {"holdout", s.held_out},
          {"trainImages", s.train_map.size()},
          {"anomaly", s.anomaly_mode == 0 ? "noise" : s.anomaly_mode == 1 ? "digit" : "fashion"},
          {"latent", s.code_dim > 2 ? (s.latent_umap ? "umap" : "pca") : "code"},
          {"umapPoints", s.umap_n},
          {"umapStep", s.umap_n ? json(s.umap_step) : json(nullptr)},
          {"umapProgress", s.umap.running() ? json(s.umap.progress()) : json(nullptr)},
          {"anomalyAuc", num(s.auc)},
          {"oodImages", s.ood.count},
          {"message", message}};
}

std::string App::config_query() const {
  const State& s = *s_;
  std::string q = "preset=" + s.preset.name;
  char buf[64];
  std::snprintf(buf, sizeof buf, "&lr=%g", double(s.preset.optimizer.lr));
  q += buf;
  q += "&optimizer=" + s.preset.optimizer.type + "&batch=" + std::to_string(s.preset.training.batch_size) +
       "&epochs=" + std::to_string(s.preset.training.epochs) + "&seed=" + std::to_string(s.seed);
  if (s.model->is_vae()) std::snprintf(buf, sizeof buf, "&beta=%g", double(s.preset.loss.beta)), q += buf;
  if (s.preset.loss.l1 > 0) std::snprintf(buf, sizeof buf, "&l1=%g", double(s.preset.loss.l1)), q += buf;
  if (s.preset.corruption.type == "gaussian") std::snprintf(buf, sizeof buf, "&noise=%g", double(s.preset.corruption.std)), q += buf;
  else q += "&corruption=" + s.preset.corruption.type;
  if (std::count(show_panel, show_panel + kPanelCount, true) != kPanelCount) {
    std::string list;
    for (int i = 0; i < kPanelCount; ++i)
      if (show_panel[i]) list += (list.empty() ? "" : ",") + std::string(kPanelKeys[i]);
    q += "&panels=" + list;
  }
  if (compact) q += "&compact=1";
  if (s.latent_umap) q += "&latent=umap";
  return q;
}

std::vector<uint8_t> App::save_weights_bytes() const {
  SafeTensors st = model_state(*s_->model, &s_->trainer->optimizer);
  return serialize_safetensors(st);
}

void App::load_weights_bytes(const std::vector<uint8_t>& bytes, const std::string& name) {
  State& s = *s_;
  SafeTensors st = parse_safetensors(bytes.data(), bytes.size(), name);
  // A file saved by the engine names its preset: switch to it first if it differs, on a scratch model.
  auto meta = st.metadata.find("preset");
  Preset p = s.preset;
  if (meta != st.metadata.end()) p = parse_preset_text(meta->second, name + " (metadata 'preset')");
  auto model = std::make_unique<Model>(p);
  auto trainer = std::make_unique<Trainer>(*model, s.seed + 1);
  load_state(*model, st, name, &trainer->optimizer);  // throws before anything of ours changed
  s.running = false;
  s.preset = p;
  cancel_views();
  s.model = std::move(model);
  s.trainer = std::move(trainer);
  s.json_text = preset_to_json(p).dump(2);
  s.code_text = pytorch_code(p);
  s.draft = p;
  s.draft_edited = false;
  rebuild_train_map();
  if (has_data()) s.sampler = std::make_unique<BatchSampler>(s.train_map.size(), p.training.batch_size, true, s.seed + 2);
  s.step = size_t(s.trainer->optimizer.steps());
  s.views_dirty = true;
  for (const auto& q : s.presets)
    if (q.name == p.name) s.preset_index = int(&q - s.presets.data());
  message = "Loaded " + name + ".";
}

// ---- session (autosave) ----------------------------------------------------------------------------------------------

namespace {
constexpr const char* kSessionVersion = "aep-session-1";

// At most n points of a curve, evenly spaced (the autosave stays small however long the run).
json thin(const std::vector<float>& v, size_t n) {
  json a = json::array();
  size_t stride = std::max<size_t>(1, (v.size() + n - 1) / n);
  for (size_t i = 0; i < v.size(); i += stride) a.push_back(std::isfinite(v[i]) ? json(v[i]) : json(nullptr));
  return a;
}
std::vector<float> floats(const json& a, const char* what) {
  if (!a.is_array()) throw std::runtime_error(std::string("session: '") + what + "' must be an array");
  std::vector<float> v;
  for (const auto& x : a) {
    if (!x.is_number() && !x.is_null()) throw std::runtime_error(std::string("session: '") + what + "' holds a non-number");
    v.push_back(x.is_number() ? x.get<float>() : NAN);
  }
  return v;
}
}  // namespace

std::vector<uint8_t> App::session_bytes() const {
  const State& s = *s_;
  SafeTensors st = model_state(*s.model, &s.trainer->optimizer);
  const LossCurve& c = s.curve;
  json curve = {{"label", c.label}, {"step", thin(c.step, 2000)}, {"train", thin(c.train, 2000)},
                {"recon", thin(c.recon, 2000)}, {"kl", thin(c.kl, 2000)},
                {"test_step", thin(c.test_step, 2000)}, {"test", thin(c.test, 2000)}};
  st.metadata["aep_session"] = json{{"version", kSessionVersion}, {"seed", s.seed}, {"step", s.step},
                                    {"epoch", s.sampler ? s.sampler->epoch : 0}, {"curve", curve}}.dump();
  return serialize_safetensors(st);
}

void App::restore_session(const std::vector<uint8_t>& bytes) {
  State& s = *s_;
  SafeTensors st = parse_safetensors(bytes.data(), bytes.size(), "autosave");
  auto it = st.metadata.find("aep_session");
  if (it == st.metadata.end()) throw std::runtime_error("autosave: not a playground session");
  json meta = json::parse(it->second, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw std::runtime_error("autosave: the session description is not JSON");
  if (meta.value("version", "") != kSessionVersion)
    throw std::runtime_error("autosave: saved by another version of the playground (" + meta.value("version", "?") + ")");
  if (!meta.contains("seed") || !meta["seed"].is_number_unsigned() || !meta.contains("step") ||
      !meta["step"].is_number_unsigned() || !meta.contains("curve") || !meta["curve"].is_object())
    throw std::runtime_error("autosave: seed, step or curve missing");
  const json& c = meta["curve"];
  LossCurve curve;
  curve.label = c.value("label", "");
  curve.step = floats(c.value("step", json::array()), "step");
  curve.train = floats(c.value("train", json::array()), "train");
  curve.recon = floats(c.value("recon", json::array()), "recon");
  curve.kl = floats(c.value("kl", json::array()), "kl");
  curve.test_step = floats(c.value("test_step", json::array()), "test_step");
  curve.test = floats(c.value("test", json::array()), "test");
  if (curve.train.size() != curve.step.size() || curve.recon.size() != curve.step.size() ||
      curve.kl.size() != curve.step.size() || curve.test.size() != curve.test_step.size())
    throw std::runtime_error("autosave: the loss curves have different lengths");
  uint64_t seed = meta["seed"].get<uint64_t>();
  size_t epoch = meta.value("epoch", size_t(0));
  load_weights_bytes(bytes, "autosave");  // validates and swaps the model in, or throws having changed nothing
  s.seed = seed;
  s.curve = std::move(curve);
  s.step = meta["step"].get<size_t>();
  if (s.sampler) s.sampler->epoch = epoch;
  s.last_train = s.curve.train.empty() ? NAN : s.curve.train.back();
  message = "Restored your autosaved session: " + s.preset.name + " at step " + std::to_string(s.step) + ".";
}

// ---- frame -----------------------------------------------------------------------------------------------------------

void App::frame() {
  State& s = *s_;
  ImGuiIO& io = ImGui::GetIO();
  if (!io.WantTextInput && ImGui::IsKeyPressed(ImGuiKey_Space, false) && has_data()) s.running = !s.running;

  if (s.running && has_data()) {
    apply_hyper_parameters();
    auto t0 = Clock::now();
    size_t samples = 0;
    for (;;) {  // at least one step, then more while the next one is expected to fit the budget
      auto ts = Clock::now();
      if (!step_once()) break;
      s.step_ms = 0.8 * s.step_ms + 0.2 * seconds_since(ts) * 1000;
      samples += s.input.shape()[0];
      if (s.sampler->epoch >= s.preset.training.epochs) {
        s.running = false;
        message = "Finished " + std::to_string(s.preset.training.epochs) + " epoch(s).";
        break;
      }
      if (seconds_since(t0) * 1000 + s.step_ms > train_budget_ms) break;
    }
    double dt = seconds_since(t0);
    if (samples && dt > 0)
      s.samples_per_s = s.samples_per_s == 0 ? samples / dt : 0.9 * s.samples_per_s + 0.1 * samples / dt;
    s.views_dirty = true;
  }
  // Views refresh a few times a second while training, and soon after any change when idle; a chunk per frame.
  if (has_data() && s.views_dirty && !s.job.active && (!s.running || seconds_since(s.last_refresh) > 0.7)) start_views();
  if (s.job.active) step_views(s.running ? view_budget_ms : 2 * view_budget_ms);
  if (umap_due()) step_umap(s.running ? view_budget_ms : 2 * view_budget_ms);  // as much again for the UMAP view

  main_menu();
  s.layout.update(show_panel, ImGui::GetIO().DisplaySize, compact ? 0.f : ImGui::GetFrameHeight());
  if (show_panel[kPanelModel]) panel_model();
  if (show_panel[kPanelData]) panel_data();
  if (show_panel[kPanelTraining]) panel_training();
  if (show_panel[kPanelRecon]) panel_recon();
  if (show_panel[kPanelLatent]) panel_latent();
  if (show_panel[kPanelGenerate]) panel_generate();
  if (show_panel[kPanelDraw]) panel_draw();
  if (show_panel[kPanelAnomaly]) panel_anomaly();
  if (show_panel[kPanelInside]) panel_inside();
  if (show_panel[kPanelSave]) panel_save();
}

void App::main_menu() {
  State& s = *s_;
  if (compact) return;
  if (!ImGui::BeginMainMenuBar()) return;
  ImGui::TextUnformatted("Autoencoder Playground");
  if (ImGui::BeginMenu("Panels")) {
    for (int i = 0; i < kPanelCount; ++i) ImGui::MenuItem(kPanelTitles[i], nullptr, &show_panel[i]);
    ImGui::EndMenu();
  }
  ImGui::Separator();
  if (!loading_.empty()) ImGui::TextUnformatted(loading_.c_str());
  else ImGui::Text("%s | step %zu | %.0f samples/s | SIMD: %s, 1 thread", s.preset.name.c_str(), s.step, s.samples_per_s,
                   simd_arch_name());
  if (!message.empty()) {
    ImGui::Separator();
    ImGui::TextColored(ImVec4(1, 0.8f, 0.4f, 1), "%s", message.c_str());
    if (ImGui::SmallButton("x")) message.clear();
  }
  ImGui::EndMainMenuBar();
}

// Window placement: with every panel shown, a fixed 3-column arrangement; with a subset (an embedded lesson's
// panels=...), the visible panels tiled in up to 3 columns. Redone whenever the display size or the set changes.
void PanelLayout::update(const bool* visible, ImVec2 d, float top) {
  relayout = d.x != last_size.x || d.y != last_size.y || !std::equal(visible, visible + kPanelCount, last_visible);
  if (!relayout) return;
  last_size = d;
  std::copy(visible, visible + kPanelCount, last_visible);
  float h = d.y - top;
  int n = int(std::count(visible, visible + kPanelCount, true));
  if (n == kPanelCount) {
    struct Slot { int col; float y0, y1; };
    static const Slot L[kPanelCount] = {
        {0, 0, 0.40f},     {0, 0.40f, 0.62f}, {1, 0, 0.45f}, {1, 0.45f, 0.64f}, {2, 0, 0.52f},
        {2, 0.52f, 0.78f}, {1, 0.64f, 1},     {2, 0.78f, 1}, {0, 0.62f, 0.84f}, {0, 0.84f, 1}};
    for (int i = 0; i < kPanelCount; ++i)
      rect[i] = {L[i].col * d.x / 3, top + L[i].y0 * h, d.x / 3, (L[i].y1 - L[i].y0) * h};
    return;
  }
  int cols = n <= 3 ? std::max(n, 1) : n == 4 ? 2 : 3;
  int rows = (n + cols - 1) / std::max(cols, 1);
  for (int i = 0, k = 0; i < kPanelCount; ++i) {
    if (!visible[i]) continue;
    int c = k / rows, r = k % rows;
    int in_col = std::min(rows, n - c * rows);  // the last column may hold fewer panels: they grow
    rect[i] = {c * d.x / cols, top + r * h / in_col, d.x / cols, h / in_col};
    ++k;
  }
}

bool PanelLayout::begin(int id, bool* open) const {
  const Rect& r = rect[id];
  ImGuiCond cond = relayout ? ImGuiCond_Always : ImGuiCond_FirstUseEver;
  ImGui::SetNextWindowPos(ImVec2(r.x, r.y), cond);
  ImGui::SetNextWindowSize(ImVec2(r.w, r.h), cond);
  return ImGui::Begin(kPanelTitles[id], open);
}

// The same model with another code size: the last encoder (or mu/logvar) Linear/Conv2d producing the code, the
// BatchNorm after it and the first decoder layer consuming it all change together. False if no such layers.
static bool with_code_size(Preset& p, size_t d) {
  auto resize_last = [&](nlohmann::json& seq) {
    for (size_t i = seq.size(); i-- > 0;) {
      nlohmann::json& l = seq[i];
      const std::string t = l["type"];
      if (t == "Linear" || t == "Conv2d") {
        l[t == "Linear" ? "out_features" : "out_channels"] = d;
        for (size_t k = i + 1; k < seq.size(); ++k)
          if (seq[k]["type"] == "BatchNorm1d" || seq[k]["type"] == "BatchNorm2d") seq[k]["num_features"] = d;
        return true;
      }
      if (t == "ConvTranspose2d" || t == "Unflatten" || t == "Upsample") return false;
    }
    return false;
  };
  bool ok = p.is_vae() ? resize_last(p.mu) && resize_last(p.logvar) : resize_last(p.encoder);
  if (!ok) return false;
  for (auto& l : p.decoder) {
    const std::string t = l["type"];
    if (t == "Linear") return l["in_features"] = d, true;
    if (t == "Conv2d" || t == "ConvTranspose2d") return l["in_channels"] = d, true;
    if (t == "Unflatten") return false;
  }
  return false;
}

// The layer list as an editor on a draft of the preset: remove (x), add after (+), change integer arguments and
// activations; input sizes follow automatically (chain_layer_sizes). Output shapes and parameter counts come from
// the draft's model, so they update as you edit; an error names (and colours) the row it comes from. Apply starts
// training over with the edited model.
void App::layer_editor() {
  State& s = *s_;
  bool changed = false;
  const Model* shown = s.draft_edited ? s.draft_model.get() : s.model.get();
  std::string bad_row;  // "decoder.2" when the draft's error comes from that layer
  size_t sp = s.draft_error.find(" (");
  if (sp != std::string::npos && s.draft_error.find(' ') == sp) bad_row = s.draft_error.substr(0, sp);
  static const char* kActivations[] = {"ReLU", "LeakyReLU", "Sigmoid", "Tanh"};
  auto add_menu = [&](nlohmann::json& list, size_t at) {
    if (ImGui::SmallButton("+")) ImGui::OpenPopup("add");
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("Add a layer here");
    if (ImGui::BeginPopup("add")) {
      for (const std::string& t : layer_types())
        if (ImGui::MenuItem(t.c_str())) {
          list.insert(list.begin() + std::ptrdiff_t(at), default_layer_spec(t));
          changed = true;
        }
      ImGui::EndPopup();
    }
  };
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchProp;
  if (ImGui::BeginTable("layers", 4, flags)) {
    ImGui::TableSetupColumn("layer", ImGuiTableColumnFlags_WidthStretch, 1.1f);
    ImGui::TableSetupColumn("arguments (drag or type)", ImGuiTableColumnFlags_WidthStretch, 1.7f);
    ImGui::TableSetupColumn("output");
    ImGui::TableSetupColumn("params");
    ImGui::TableHeadersRow();
    auto rows = [&](nlohmann::json& list, const char* prefix, const Sequential* seq, Shape x) {
      ImGui::PushID(prefix);
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      add_menu(list, 0);
      ImGui::SameLine();
      ImGui::TextDisabled("%s", prefix);
      bool done = false;
      for (size_t i = 0; i < list.size() && !done; ++i) {
        nlohmann::json& spec = list[i];
        const std::string row = std::string(prefix) + "." + std::to_string(i);
        const std::string type = spec.value("type", std::string("?"));
        // Shapes from the model built from the draft, until an edit in this frame makes them stale.
        const Layer* l = !changed && seq && i < seq->size() ? seq->layers[i].get() : nullptr;
        try {
          if (l) x = l->output_shape(x);
        } catch (const std::exception&) {
          l = nullptr;
        }
        ImGui::PushID(int(i));
        ImGui::TableNextRow();
        if (row == bad_row) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg0, IM_COL32(120, 30, 30, 200));
        ImGui::TableNextColumn();
        ImGui::AlignTextToFramePadding();
        if (list.size() > 1) {
          if (ImGui::SmallButton("x")) list.erase(list.begin() + std::ptrdiff_t(i)), changed = done = true;
          if (ImGui::IsItemHovered()) ImGui::SetTooltip("Remove this layer");
          ImGui::SameLine();
        }
        add_menu(list, i + 1);
        ImGui::SameLine();
        if (done) {
          ImGui::PopID();
          break;
        }
        const bool is_act = std::find(std::begin(kActivations), std::end(kActivations), type) != std::end(kActivations);
        if (is_act) {
          ImGui::SetNextItemWidth(std::max(70.f, ImGui::GetContentRegionAvail().x));
          if (ImGui::BeginCombo("##act", (std::to_string(i) + " " + type).c_str())) {
            for (const char* a : kActivations)
              if (ImGui::Selectable(a, type == a) && type != a) spec = default_layer_spec(a), changed = true;
            ImGui::EndCombo();
          }
        } else {
          ImGui::Text("%zu %s", i, type.c_str());
        }
        ImGui::TableNextColumn();
        // Integer arguments as small drag fields; input sizes are chained, so they are shown, not edited.
        bool first = true;
        for (auto it = spec.begin(); it != spec.end(); ++it) {
          const std::string& key = it.key();
          if (key == "type") continue;
          const bool chained = key == "in_features" || key == "in_channels" || key == "num_features";
          if (!first) ImGui::SameLine();
          first = false;
          if (it->is_number_integer() && !chained) {
            int v = int(std::clamp<long long>(it->get<long long>(), 0, 1 << 20));
            ImGui::TextDisabled("%s", key.c_str());
            ImGui::SameLine(0, 4);
            ImGui::SetNextItemWidth(ImGui::CalcTextSize("00000").x + 8);
            if (ImGui::DragInt(("##" + key).c_str(), &v, 0.2f, 0, 1 << 20, "%d", ImGuiSliderFlags_AlwaysClamp) &&
                v != it->get<long long>())
              *it = v, changed = true;
          } else if (key == "unflattened_size" && it->is_array() && it->size() == 3 && (*it)[0].is_number_integer() &&
                     (*it)[1].is_number_integer() && (*it)[2].is_number_integer()) {
            int v[3] = {(*it)[0].get<int>(), (*it)[1].get<int>(), (*it)[2].get<int>()};
            ImGui::TextDisabled("C, H, W");
            ImGui::SameLine(0, 4);
            ImGui::SetNextItemWidth(3 * (ImGui::CalcTextSize("0000").x + 8));
            if (ImGui::DragInt3("##chw", v, 0.2f, 1, 4096, "%d", ImGuiSliderFlags_AlwaysClamp))
              *it = {v[0], v[1], v[2]}, changed = true;
          } else {
            ImGui::TextDisabled("%s %s", key.c_str(), it->dump().c_str());
          }
        }
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(l ? shape_str(x).c_str() : "?");
        ImGui::TableNextColumn();
        size_t params = 0;
        if (l)
          for (const auto& p : l->params) params += p.numel();
        if (params) ImGui::Text("%zu", params);
        ImGui::PopID();
      }
      ImGui::PopID();
      return x;
    };
    Shape x = {1, 1, Model::kImageSide, Model::kImageSide};
    x = rows(s.draft.encoder, "encoder", shown ? &shown->encoder : nullptr, x);
    if (s.draft.is_vae()) {
      rows(s.draft.logvar, "logvar", shown ? &shown->logvar : nullptr, x);
      x = rows(s.draft.mu, "mu", shown ? &shown->mu : nullptr, x);
    }
    rows(s.draft.decoder, "decoder", shown ? &shown->decoder : nullptr, x);
    ImGui::EndTable();
  }
  // The current settings (learning rate, batch, ... may have changed since the draft was taken) with the edited layers.
  auto edited = [&] {
    Preset p = s.preset;
    p.encoder = s.draft.encoder, p.mu = s.draft.mu, p.logvar = s.draft.logvar, p.decoder = s.draft.decoder;
    return p;
  };
  if (changed) {
    s.draft_edited = true;
    chain_layer_sizes(s.draft);
    try {
      s.draft_model = std::make_unique<Model>(edited());
      s.draft_error.clear();
    } catch (const std::exception& e) {
      s.draft_model.reset();
      s.draft_error = e.what();
    }
  }
  if (!s.draft_edited) return;
  if (!s.draft_model) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", s.draft_error.c_str());
  else ImGui::TextColored(ImVec4(0.5f, 0.9f, 0.5f, 1), "Edited: %zu parameters, code %s", s.draft_model->parameter_count(),
                          shape_str(s.draft_model->code_shape(1)).c_str());
  if (!s.draft_model) ImGui::BeginDisabled();
  if (ImGui::Button("Apply the edited layers (training starts over)")) {
    Preset p = edited();
    if (p.title.rfind("edited: ", 0) != 0) p.title = "edited: " + p.title;
    std::string err;
    if (select_preset(p, &err)) s.draft_model.reset();
    else s.draft_error = err;
  }
  if (!s.draft_model) ImGui::EndDisabled();
  ImGui::SameLine();
  if (ImGui::Button("Discard edits")) {
    s.draft = s.preset;
    s.draft_model.reset();
    s.draft_error.clear();
    s.draft_edited = false;
  }
}

void App::panel_model() {
  State& s = *s_;
  if (!s.layout.begin(kPanelModel, &show_panel[kPanelModel])) return ImGui::End();
  const Preset& cur = s.presets[s.preset_index];
  ImGui::SetNextItemWidth(-1);
  if (ImGui::BeginCombo("##preset", (cur.name + ": " + cur.title).c_str())) {
    for (int i = 0; i < int(s.presets.size()); ++i) {
      const Preset& p = s.presets[i];
      if (ImGui::Selectable((p.name + ": " + p.title).c_str(), i == s.preset_index)) {
        std::string err;
        if (select_preset(p, &err)) s.preset_index = i;
        else message = err;
      }
      if (ImGui::IsItemHovered() && !p.description.empty()) ImGui::SetTooltip("%s", p.description.c_str());
    }
    ImGui::EndCombo();
  }
  ImGui::TextWrapped("%s%s%s", s.preset.lesson.empty() ? "" : ("Lesson " + s.preset.lesson + ": ").c_str(),
                     s.preset.description.c_str(), "");
  ImGui::Text("%zu parameters, code %s%s", s.model->parameter_count(), shape_str(s.model->code_shape(1)).c_str(),
              s.model->is_vae() ? " (VAE latent)" : "");
  layer_editor();  // may replace s.model (Apply)
  const Model& m = *s.model;
  {
    // Code size: under- vs over-complete codes (lesson 002), a 2-d code to plot directly, a wider conv code.
    Preset p = s.preset;
    size_t cur = m.code_shape(1)[1];
    int d = int(cur);
    bool can = with_code_size(p, cur);
    if (!can) ImGui::BeginDisabled();
    ImGui::SetNextItemWidth(120);
    if (ImGui::InputInt(m.code_shape(1)[2] > 1 ? "code channels" : "code size", &d) && d >= 1 && d <= 4096 && size_t(d) != cur) {
      p = s.preset;
      std::string err;
      if (with_code_size(p, size_t(d)) && !select_preset(p, &err)) message = err;
    }
    if (!can) ImGui::EndDisabled();
    help_marker("Changes the layer that makes the code and the first decoder layer together (2 = plot the code "
                "directly; larger than the input = over-complete). Training starts over.");
  }
  if (ImGui::CollapsingHeader("Edit the model (JSON)")) {
    ImGui::TextDisabled("Layers, loss, optimizer, corruption: the preset format (assets/presets/README.md).");
    ImGui::InputTextMultiline("##json", &s.json_text, ImVec2(-1, ImGui::GetTextLineHeight() * 14));
    if (ImGui::Button("Apply")) {
      try {
        Preset p = parse_preset_text(s.json_text, "edited model");
        std::string err;
        if (select_preset(p, &err)) s.json_error.clear();
        else s.json_error = err;
      } catch (const std::exception& e) {
        s.json_error = e.what();
      }
    }
    ImGui::SameLine();
    if (ImGui::Button("Revert")) s.json_text = preset_to_json(s.preset).dump(2), s.json_error.clear();
    if (!s.json_error.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", s.json_error.c_str());
  }
  if (ImGui::CollapsingHeader("Show PyTorch code")) {
    if (ImGui::Button("Copy")) ImGui::SetClipboardText(s.code_text.c_str());
    ImGui::InputTextMultiline("##code", &s.code_text, ImVec2(-1, ImGui::GetTextLineHeight() * 16),
                              ImGuiInputTextFlags_ReadOnly);
  }
  ImGui::End();
}

void App::panel_data() {
  State& s = *s_;
  if (!s.layout.begin(kPanelData, &show_panel[kPanelData])) return ImGui::End();
  if (has_data())
    ImGui::Text("%zu training, %zu test images (%zux%zu, kept as bytes)", train_.count, test_.count, train_.rows, train_.cols);
  else
    ImGui::TextUnformatted(loading_.empty() ? "No data loaded." : loading_.c_str());
  if (ImGui::Button("Use your own IDX files ...")) upload_requested = true;
  help_marker("Pick or drop IDX files (raw or .gz) like MNIST's: images and labels, for the training set or the test "
              "set (file names with 't10k' or 'test'). 28x28 images only.");
  int norm = s.preset.normalize == Normalization::MinusOneOne;
  const char* norms[] = {"[0, 1]  (pixels / 255)", "[-1, 1]  (Normalize(0.5, 0.5))"};
  ImGui::SetNextItemWidth(220);
  if (ImGui::Combo("input range", &norm, norms, 2)) {
    Preset p = s.preset;
    p.normalize = norm ? Normalization::MinusOneOne : Normalization::ZeroOne;
    std::string err;
    if (!select_preset(p, &err)) message = err;
  }
  int held = s.held_out + 1;
  ImGui::SetNextItemWidth(220);
  if (ImGui::Combo("leave out of training", &held, "nothing\0digit 0\0digit 1\0digit 2\0digit 3\0digit 4\0digit 5\0"
                                                     "digit 6\0digit 7\0digit 8\0digit 9\0")) {
    s.held_out = held - 1;
    reset_training();
  }
  help_marker("Train without one digit, then ask the anomaly panel whether its reconstruction error gives it away.");
  CorruptionConfig& c = s.preset.corruption;
  static const char* types[] = {"none", "gaussian", "dropout", "salt_pepper", "occlusion", "downsample"};
  int t = int(std::find(std::begin(types), std::end(types), c.type) - std::begin(types));
  ImGui::SetNextItemWidth(220);
  bool changed = ImGui::Combo("corruption", &t, types, 6);
  if (changed) c.type = types[t];
  help_marker("Applied to the input only: the model learns to output the clean digit (denoising, inpainting, "
              "super-resolution).");
  if (c.type == "gaussian") changed |= ImGui::SliderFloat("noise sigma", &c.std, 0.f, 2.f);
  if (c.type == "dropout" || c.type == "salt_pepper") changed |= ImGui::SliderFloat("p", &c.p, 0.f, 0.95f);
  if (c.type == "occlusion") {
    int sz = int(c.size);
    if ((changed |= ImGui::SliderInt("box size", &sz, 1, 28))) c.size = size_t(sz);
  }
  if (c.type == "downsample") {
    int f = int(c.factor);
    if ((changed |= ImGui::SliderInt("factor", &f, 2, 4))) c.factor = size_t(f);
  }
  if (has_data() && (changed || s.preview.w == 0)) {
    std::vector<uint32_t> idx(8);
    for (int i = 0; i < 8; ++i) idx[i] = uint32_t(100 + i);
    Rng r(7);
    Tensor in, clean;
    make_batch(test_, idx.data(), 8, s.preset, r, in, clean);
    float lo = range_min(s.preset.normalize), hi = range_max(s.preset.normalize);
    s.preview.resize(8 * 30, 60);
    for (int i = 0; i < 8; ++i) {
      s.preview.put_digit(i * 30, 0, clean.data() + i * 784, lo, hi);
      s.preview.put_digit(i * 30, 30, in.data() + i * 784, lo, hi);
    }
    if (changed) s.views_dirty = true;
  }
  if (s.preview.w) {
    ImGui::TextDisabled("clean (top) | corrupted (bottom)");
    s.preview.show(tex_, 1.5f);
  }
  ImGui::End();
}

static void draw_curve(ImDrawList* dl, ImVec2 p0, ImVec2 size, const std::vector<float>& xs, const std::vector<float>& ys,
                       float x1, float y0, float y1, bool log_scale, ImU32 col, float smooth) {
  if (xs.empty()) return;
  auto Y = [&](float v) {
    float a = log_scale ? std::log10(std::max(v, 1e-12f)) : v;
    float lo = log_scale ? std::log10(std::max(y0, 1e-12f)) : y0, hi = log_scale ? std::log10(std::max(y1, 1e-12f)) : y1;
    return p0.y + size.y * (1 - (a - lo) / (hi - lo + 1e-12f));
  };
  // At most ~2 points per pixel: average runs of steps, with an exponential smoother for the noisy train loss.
  size_t n = xs.size(), stride = std::max<size_t>(1, n / size_t(std::max(size.x, 1.f)));
  std::vector<ImVec2> pts;
  float ema = ys[0];
  for (size_t i = 0; i < n; ++i) {
    ema = smooth > 0 ? smooth * ema + (1 - smooth) * ys[i] : ys[i];
    if (i % stride == 0 || i + 1 == n)
      pts.push_back(ImVec2(p0.x + size.x * xs[i] / std::max(x1, 1.f), Y(ema)));
  }
  dl->AddPolyline(pts.data(), int(pts.size()), col, 0, 1.5f);
}

void App::panel_training() {
  State& s = *s_;
  if (!s.layout.begin(kPanelTraining, &show_panel[kPanelTraining])) return ImGui::End();
  bool can = has_data();
  if (!can) ImGui::BeginDisabled();
  if (ImGui::Button(s.running ? "Pause" : "Train", ImVec2(80, 0))) s.running = !s.running;
  ImGui::SameLine();
  if (ImGui::Button("Step")) train_steps(1);
  ImGui::SameLine();
  if (ImGui::Button("Reset")) reset_training();
  if (!can) ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::TextDisabled("(Space: train/pause)");
  double epoch = s.sampler ? s.sampler->epoch + double(s.sampler->step_in_epoch) / s.sampler->steps_per_epoch() : 0;
  ImGui::Text("step %zu   epoch %.2f / %zu   %.0f samples/s", s.step, epoch, s.preset.training.epochs, s.samples_per_s);
  ImGui::Text("train loss %.5g   test loss %.5g", s.last_train, s.last_test);
  if (s.model->is_vae()) ImGui::Text("test KL term %.5g", s.last_test_kl);
  ImGui::TextDisabled("SIMD: %s, threads: 1", simd_arch_name());
  float train_ms = float(train_budget_ms);
  ImGui::SetNextItemWidth(160);
  if (ImGui::SliderFloat("training ms per frame", &train_ms, 2, 50, "%.0f")) train_budget_ms = std::clamp(train_ms, 1.f, 100.f);
  help_marker("How long each frame trains before the page is drawn. More trains faster; less keeps the page smooth. "
              "On a slow computer, or a browser drawing without a GPU, try less.");
  const double mb = 1 << 20;
  ImGui::TextDisabled("memory: training needs ~%.0f MB (limit %.0f MB)", s.model->training_bytes(s.preset.training.batch_size) / mb,
                      Model::kMemoryBudget / mb);
  if (memory_bytes) {
    ImGui::SameLine();
    ImGui::TextDisabled("| in use: %.0f MB", memory_bytes / mb);
  }

  OptimizerConfig& o = s.preset.optimizer;
  int opt = o.type == "sgd";
  ImGui::SetNextItemWidth(100);
  if (ImGui::Combo("optimizer", &opt, "Adam\0SGD\0")) {
    Preset p = s.preset;
    p.optimizer.type = opt ? "sgd" : "adam";
    if (opt && p.optimizer.momentum == 0) p.optimizer.momentum = 0.9f;
    std::string err;
    if (!select_preset(p, &err)) message = err;
  }
  ImGui::SameLine();
  float half = ImGui::GetContentRegionAvail().x * 0.5f;
  ImGui::SetNextItemWidth(std::max(60.f, half - 110));
  ImGui::SliderFloat("learning rate", &o.lr, 1e-5f, 1.f, "%.5g", ImGuiSliderFlags_Logarithmic);
  int batch = int(s.preset.training.batch_size), epochs = int(s.preset.training.epochs), seed = int(s.seed);
  float w = std::max(60.f, ImGui::GetContentRegionAvail().x * 0.5f - 110);
  ImGui::SetNextItemWidth(w);
  if (ImGui::SliderInt("batch size", &batch, 2, 512, "%d", ImGuiSliderFlags_Logarithmic)) s.preset.training.batch_size = size_t(batch);
  ImGui::SameLine(0, 20);
  ImGui::SetNextItemWidth(w);
  if (ImGui::SliderInt("epochs", &epochs, 1, 50)) s.preset.training.epochs = size_t(epochs);
  ImGui::SetNextItemWidth(w);
  if (ImGui::InputInt("seed", &seed) && seed >= 0) {
    s.seed = uint64_t(seed);
    reset_training();
  }
  ImGui::SameLine(0, 20);
  ImGui::SetNextItemWidth(w);
  ImGui::SliderFloat("L1 sparsity", &s.preset.loss.l1, 0.f, 1.f, "%.4g", ImGuiSliderFlags_Logarithmic);
  if (s.model->is_vae()) {
    ImGui::SetNextItemWidth(w);
    ImGui::SliderFloat("beta (KL weight)", &s.preset.loss.beta, 0.f, 10.f, "%.3g");
  }

  ImGui::Checkbox("log scale", &s.log_scale);
  ImGui::SameLine();
  ImGui::Checkbox("reconstruction / KL", &s.show_recon_kl);
  // Loss curves: this run bright, earlier runs faded; train (smoothed) solid, test as a second colour.
  ImVec2 size(ImGui::GetContentRegionAvail().x, std::max(160.f, ImGui::GetContentRegionAvail().y - 4));
  ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p0, ImVec2(p0.x + size.x, p0.y + size.y), IM_COL32(20, 20, 24, 255));
  float x1 = 1, y0 = 1e30f, y1 = -1e30f;
  auto range = [&](const LossCurve& c) {
    if (!c.step.empty()) x1 = std::max(x1, c.step.back());
    for (float v : c.train) if (std::isfinite(v)) y0 = std::min(y0, v), y1 = std::max(y1, v);
    for (float v : c.test) if (std::isfinite(v)) y0 = std::min(y0, v), y1 = std::max(y1, v);
  };
  range(s.curve);
  for (const auto& c : s.past) range(c);
  if (y1 > y0) {
    if (!s.log_scale) y0 = std::min(y0, 0.f);
    for (const auto& c : s.past) {
      draw_curve(dl, p0, size, c.step, c.train, x1, y0, y1, s.log_scale, IM_COL32(120, 160, 220, 70), 0.98f);
      draw_curve(dl, p0, size, c.test_step, c.test, x1, y0, y1, s.log_scale, IM_COL32(240, 160, 80, 70), 0);
    }
    draw_curve(dl, p0, size, s.curve.step, s.curve.train, x1, y0, y1, s.log_scale, IM_COL32(120, 170, 255, 255), 0.98f);
    draw_curve(dl, p0, size, s.curve.test_step, s.curve.test, x1, y0, y1, s.log_scale, IM_COL32(255, 170, 60, 255), 0);
    if (s.model->is_vae() && s.show_recon_kl) {
      draw_curve(dl, p0, size, s.curve.step, s.curve.recon, x1, y0, y1, s.log_scale, IM_COL32(120, 220, 120, 200), 0.98f);
      draw_curve(dl, p0, size, s.curve.step, s.curve.kl, x1, y0, y1, s.log_scale, IM_COL32(220, 120, 220, 200), 0.98f);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", y1);
    dl->AddText(ImVec2(p0.x + 4, p0.y + 2), IM_COL32(200, 200, 200, 255), buf);
    std::snprintf(buf, sizeof buf, "%.4g", y0);
    dl->AddText(ImVec2(p0.x + 4, p0.y + size.y - 16), IM_COL32(200, 200, 200, 255), buf);
    std::snprintf(buf, sizeof buf, "step %.0f", x1);
    dl->AddText(ImVec2(p0.x + size.x - 90, p0.y + size.y - 16), IM_COL32(200, 200, 200, 255), buf);
  }
  float ly = p0.y + 18;
  dl->AddText(ImVec2(p0.x + size.x - 150, ly), IM_COL32(120, 170, 255, 255), "train (smoothed)");
  dl->AddText(ImVec2(p0.x + size.x - 150, ly + 14), IM_COL32(255, 170, 60, 255), "test");
  if (s.model->is_vae() && s.show_recon_kl) {
    dl->AddText(ImVec2(p0.x + size.x - 150, ly + 28), IM_COL32(120, 220, 120, 255), "reconstruction");
    dl->AddText(ImVec2(p0.x + size.x - 150, ly + 42), IM_COL32(220, 120, 220, 255), "beta * KL");
  }
  ImGui::InvisibleButton("##curves", size);
  if (ImGui::IsItemHovered() && !s.past.empty()) {
    ImGui::BeginTooltip();
    ImGui::Text("now: %s", s.curve.label.c_str());
    for (const auto& c : s.past) ImGui::TextDisabled("earlier: %s", c.label.c_str());
    ImGui::EndTooltip();
  }
  ImGui::End();
}

void App::panel_recon() {
  State& s = *s_;
  if (!s.layout.begin(kPanelRecon, &show_panel[kPanelRecon])) return ImGui::End();
  if (s.recon.w) {
    ImGui::TextDisabled("rows: input | corrupted input | output");
    float scale = std::max(1.f, std::floor(ImGui::GetContentRegionAvail().x / s.recon.w));
    ImVec2 at = s.recon.show(tex_, scale);
    ImGui::TextDisabled("per-image MSE against the clean digit:");
    if (30 * scale >= ImGui::CalcTextSize("0.0000 ").x) {  // under each digit when there is room
      ImDrawList* dl = ImGui::GetWindowDrawList();
      for (int i = 0; i < kReconCount; ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.4f", s.recon_err[i]);
        dl->AddText(ImVec2(at.x + (2 + i * 30) * scale, ImGui::GetCursorScreenPos().y), IM_COL32(220, 220, 220, 255), buf);
      }
      ImGui::Dummy(ImVec2(s.recon.w * scale, ImGui::GetTextLineHeight()));
    } else {
      std::string list;
      for (int i = 0; i < kReconCount; ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.4f", i ? "  " : "", s.recon_err[i]);
        list += buf;
      }
      ImGui::TextWrapped("%s", list.c_str());
    }
  } else {
    ImGui::TextUnformatted("Waiting for data.");
  }
  ImGui::End();
}

void App::panel_latent() {
  State& s = *s_;
  if (!s.layout.begin(kPanelLatent, &show_panel[kPanelLatent])) return ImGui::End();
  if (s.n_view == 0) {
    ImGui::TextUnformatted(has_data() ? "Encoding the test digits..." : "Waiting for data.");
    return ImGui::End();
  }
  const float lo = range_min(s.preset.normalize), hi = range_max(s.preset.normalize);
  // Codes larger than 2-d: their PCA plane (a linear map, so any point of it decodes) or a UMAP embedding (only
  // neighbourhoods mean something: nothing to decode).
  const bool umap = s.code_dim > 2 && s.latent_umap;
  if (s.code_dim > 2) {
    ImGui::AlignTextToFramePadding();
    ImGui::TextUnformatted("view");
    ImGui::SameLine();
    if (ImGui::RadioButton("PCA", !s.latent_umap)) s.latent_umap = false;
    ImGui::SameLine();
    if (ImGui::RadioButton("UMAP", s.latent_umap)) s.latent_umap = true;
    help_marker("PCA: the plane of the two directions along which the codes vary most. A linear view, so digits "
                "often overlap; click any point of it to decode it.\n\n"
                "UMAP: a 2-d layout, computed here from the codes, that keeps each code's nearest neighbours near "
                "(as in lesson 000). Digits the encoder tells apart form separate islands, but the axes and the "
                "distances between islands mean nothing, and a point of it cannot be decoded: click-to-decode "
                "works in the PCA view. Recomputed from the newest codes as the model trains.");
  }
  // The points on show: the UMAP view keeps its last finished embedding while the next computes (the first time,
  // the layout as it converges).
  const std::vector<float>* xy = &s.xy;
  size_t n = s.n_view;
  float x0 = s.lx0, x1 = s.lx1, y0 = s.ly0, y1 = s.ly1;
  if (umap && s.umap_n) {
    xy = &s.umap_xy, n = s.umap_n;
    x0 = s.ux0, x1 = s.ux1, y0 = s.uy0, y1 = s.uy1;
  } else if (umap) {
    xy = &s.umap.embedding();
    n = s.umap.has_layout() ? s.umap.size() : 0;
    plot_range(*xy, n, x0, x1, y0, y1);
  }
  const std::string code = std::to_string(s.code_dim) + "-d code";
  if (!s.latent_pca) ImGui::Text("%zu test digits, 2-d code", s.n_view);
  else if (!umap) ImGui::Text("%zu test digits, PCA projection of the %s", s.n_view, code.c_str());
  else if (s.umap_n) ImGui::Text("%zu test digits, UMAP of the %s at step %zu", s.umap_n, code.c_str(), s.umap_step);
  else ImGui::Text("%zu test digits, UMAP of the %s (the first one, shown as it converges from PCA)", s.n_view,
                   code.c_str());
  if (umap && s.umap.running()) {
    ImGui::SameLine();
    ImGui::TextDisabled("  UMAP: computing... %d%%", int(100 * s.umap.progress()));
  }
  help_marker(umap ? "Hover a point to see its digit. A UMAP layout cannot be decoded: use the PCA view to click-decode."
                   : "Hover a point to see its digit; click anywhere to decode that point of the plane.");
  const bool grid = s.code_dim == 2 && s.manifold.w;
  ImVec2 avail = ImGui::GetContentRegionAvail();
  float side = std::max(120.f, std::min(grid ? avail.x * 0.5f - 6 : avail.x, avail.y - 70));
  side = std::floor(side);
  ImVec2 p0 = ImGui::GetCursorScreenPos();
  p0 = ImVec2(std::floor(p0.x), std::floor(p0.y));  // the dots' picture maps 1:1 onto screen pixels
  ImDrawList* dl = ImGui::GetWindowDrawList();
  auto to_screen = [&](float x, float y) {
    return ImVec2(p0.x + side * (x - x0) / (x1 - x0), p0.y + side * (1 - (y - y0) / (y1 - y0)));
  };
  // The dots are painted into a picture, repainted only when they move, and drawn as one textured square: as
  // 2000 small circles (~32,000 triangles) they cost a browser without a GPU ~15 ms of every frame.
  uint64_t key = fnv1a(xy->data(), 2 * n * sizeof(float), fnv1a(&side, sizeof side));
  key = fnv1a(&x0, sizeof x0, fnv1a(&x1, sizeof x1, fnv1a(&y0, sizeof y0, fnv1a(&y1, sizeof y1, key))));
  if (key != s.scatter_key || s.scatter.w != int(side)) {
    s.scatter.resize(int(side), int(side));
    for (size_t i = 0; i < s.scatter.rgba.size(); i += 4)
      s.scatter.rgba[i] = s.scatter.rgba[i + 1] = 20, s.scatter.rgba[i + 2] = 24;
    for (size_t i = 0; i < n; ++i) {
      int label = test_.labels.empty() ? 7 : test_.labels[i] % 10;
      ImVec2 q = to_screen((*xy)[2 * i], (*xy)[2 * i + 1]);
      s.scatter.put_dot(q.x - p0.x, q.y - p0.y, 2.f, kDigitColors[label]);
    }
    s.scatter_key = key;
  }
  dl->AddImage(s.scatter.texture(tex_), p0, ImVec2(p0.x + side, p0.y + side));
  if (umap && n == 0)
    dl->AddText(ImVec2(p0.x + 8, p0.y + 8), IM_COL32(160, 160, 160, 255), "computing the first UMAP...");
  if (!umap && !s.draw_code.empty() && s.draw_code.size() == s.code_dim) {
    float dx = s.draw_code[0], dy = s.code_dim > 1 ? s.draw_code[1] : 0;
    if (s.latent_pca) {
      float c[2] = {0, 0};
      s.code_pca.project(s.draw_code.data(), 1, c);
      dx = c[0], dy = s.code_pca.k > 1 ? c[1] : 0;
    }
    ImVec2 q = to_screen(dx, dy);
    dl->AddCircle(q, 7, IM_COL32(255, 255, 255, 255), 12, 2.f);
  }
  if (!umap && s.have_click) dl->AddCircle(to_screen(s.click[0], s.click[1]), 5, IM_COL32(255, 255, 0, 255), 12, 2.f);
  ImGui::InvisibleButton("##latent", ImVec2(side, side));
  if (grid) {
    ImGui::SameLine(0, 12);
    s.manifold.show(tex_, side / s.manifold.w);
  }
  for (int d = 0; d < 10; ++d) {
    if (d) ImGui::SameLine();
    ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kDigitColors[d]), "%d", d);
  }
  if (grid) {
    ImGui::SameLine(side + 20);
    ImGui::TextDisabled("right: the plotted plane decoded on a %dx%d grid", kGrid, kGrid);
  }
  Model& m = *s.model;
  ImVec2 mp = ImGui::GetIO().MousePos;
  bool inside = mp.x >= p0.x && mp.y >= p0.y && mp.x < p0.x + side && mp.y < p0.y + side && ImGui::IsWindowHovered();
  if (inside) {
    int best = -1;
    float bd = 36.f;
    for (size_t i = 0; i < n; ++i) {
      ImVec2 q = to_screen((*xy)[2 * i], (*xy)[2 * i + 1]);
      float d = (q.x - mp.x) * (q.x - mp.x) + (q.y - mp.y) * (q.y - mp.y);
      if (d < bd) bd = d, best = int(i);
    }
    if (best >= 0) {
      if (s.hover_shown != best) {
        Tensor x;
        uint32_t id = uint32_t(best);
        fill_batch(test_, &id, 1, s.preset.normalize, x);
        s.hover_pic.resize(28, 28);
        s.hover_pic.put_digit(0, 0, x.data(), lo, hi);
        s.hover_shown = best;
      }
      ImGui::BeginTooltip();
      ImGui::Text("test #%d, digit %d, error %.4f", best, test_.labels.empty() ? -1 : test_.labels[best],
                  size_t(best) < s.errors.size() ? s.errors[best] : NAN);
      s.hover_pic.show(tex_, 3);
      if (umap) ImGui::TextDisabled("(UMAP view: no click-to-decode; use PCA)");
      ImGui::EndTooltip();
    }
    if (!umap && ImGui::IsMouseClicked(0)) {
      s.click[0] = s.lx0 + (mp.x - p0.x) / side * (s.lx1 - s.lx0);
      s.click[1] = s.ly0 + (1 - (mp.y - p0.y) / side) * (s.ly1 - s.ly0);
      s.have_click = true;
      Tensor z(m.code_shape(1));
      if (s.latent_pca) {
        std::vector<float> c(s.code_pca.k, 0.f);
        for (size_t k = 0; k < s.code_pca.k; ++k) c[k] = s.click[k];
        s.code_pca.reconstruct(c.data(), 1, z.data());
      } else {
        z.data()[0] = s.click[0], z.data()[1] = s.click[1];
      }
      Tensor y = m.decode(z);
      s.decoded.resize(28, 28);
      s.decoded.put_digit(0, 0, y.data(), lo, hi);
    }
  }
  if (!umap && s.have_click && s.decoded.w) {
    ImGui::Text("decoded at (%.3g, %.3g):", s.click[0], s.click[1]);
    ImGui::SameLine();
    s.decoded.show(tex_, 2);
  }

  if (m.is_vae() && ImGui::CollapsingHeader("Traverse one latent dimension")) {
    int& dim = s.traverse_dim;
    ImGui::SliderInt("dimension", &dim, 0, int(s.code_dim) - 1);
    dim = std::clamp(dim, 0, int(s.code_dim) - 1);
    const int n = 11;
    Tensor z(m.code_shape(n));
    for (int i = 0; i < n; ++i)
      for (size_t d = 0; d < s.code_dim; ++d) z.data()[i * s.code_dim + d] = d == size_t(dim) ? -3.f + 6.f * i / (n - 1) : 0.f;
    Tensor y = m.decode(z);
    s.interp.resize(n * 28, 28);
    for (int i = 0; i < n; ++i) s.interp.put_digit(i * 28, 0, y.data() + i * 784, lo, hi);
    ImGui::TextDisabled("z[%d] from -3 to 3, other dimensions 0", dim);
    s.interp.show(tex_, 1);
  }
  ImGui::End();
}

void App::panel_generate() {
  State& s = *s_;
  if (!s.layout.begin(kPanelGenerate, &show_panel[kPanelGenerate])) return ImGui::End();
  if (s.n_view == 0) {
    ImGui::TextUnformatted("Waiting for data.");
    return ImGui::End();
  }
  Model& m = *s.model;
  const float lo = range_min(s.preset.normalize), hi = range_max(s.preset.normalize);
  if (ImGui::Button("Sample 16 digits")) ++s.gen_seed, s.generated.w = 0;
  if (s.generated.w == 0) {  // new samples on request, and the same z redrawn whenever the model changed
    Rng r(s.gen_seed);
    Tensor y;
    if (m.is_vae()) {
      y = m.sample_prior(16, r);
    } else {
      Tensor z(m.code_shape(16));
      for (size_t i = 0; i < 16; ++i)
        for (size_t d = 0; d < s.code_dim; ++d) z.data()[i * s.code_dim + d] = s.code_mean[d] + s.code_std[d] * r.normal();
      y = m.decode(z);
    }
    s.generated.resize(8 * 30, 60);
    for (int i = 0; i < 16; ++i) s.generated.put_digit((i % 8) * 30, (i / 8) * 30, y.data() + i * 784, lo, hi);
  }
  ImGui::SameLine();
  ImGui::TextDisabled(m.is_vae() ? "z ~ N(0, I), decoded" : "z ~ Gaussian fitted to the test codes, decoded");
  s.generated.show(tex_, 1.5f);

  ImGui::SeparatorText("Interpolate between two test digits");
  int n_test = int(test_.count);
  ImGui::SetNextItemWidth(100);
  bool ch = ImGui::InputInt("from test #", &s.interp_a);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(100);
  ch |= ImGui::InputInt("to test #", &s.interp_b);
  s.interp_a = std::clamp(s.interp_a, 0, n_test - 1);
  s.interp_b = std::clamp(s.interp_b, 0, n_test - 1);
  {
    const int n = 9;
    uint32_t id[2] = {uint32_t(s.interp_a), uint32_t(s.interp_b)};
    Tensor x;
    fill_batch(test_, id, 2, s.preset.normalize, x);
    Tensor z2 = m.encode(x);
    size_t d = s.code_dim;
    Tensor z(m.code_shape(n));
    for (int i = 0; i < n; ++i) {
      float t = float(i) / (n - 1);
      for (size_t k = 0; k < d; ++k) z.data()[i * d + k] = (1 - t) * z2.data()[k] + t * z2.data()[d + k];
    }
    Tensor y = m.decode(z);
    Picture& P = s.interp;
    P.resize(n * 28, 56);
    std::vector<float> mix(784);
    for (int i = 0; i < n; ++i) {
      float t = float(i) / (n - 1);
      P.put_digit(i * 28, 0, y.data() + i * 784, lo, hi);
      for (int k = 0; k < 784; ++k) mix[k] = (1 - t) * x.data()[k] + t * x.data()[784 + k];
      P.put_digit(i * 28, 28, mix.data(), lo, hi);
    }
    ImGui::TextDisabled("top: decoded latent interpolation; bottom: pixel cross-fade");
    P.show(tex_, 1.5f);
  }
  ImGui::End();
}

void App::panel_draw() {
  State& s = *s_;
  if (!s.layout.begin(kPanelDraw, &show_panel[kPanelDraw])) return ImGui::End();
  Model& m = *s.model;
  const float lo = range_min(s.preset.normalize), hi = range_max(s.preset.normalize);
  ImGui::TextDisabled("Left mouse draws, right mouse erases (inpainting).");
  const float cell = 7;
  ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("##pad", ImVec2(28 * cell, 28 * cell), ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  if (ImGui::IsItemActive()) {
    ImVec2 mp = ImGui::GetIO().MousePos;
    float cx = (mp.x - p0.x) / cell, cy = (mp.y - p0.y) / cell;
    bool erase = ImGui::IsMouseDown(1);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        float d2 = (x + 0.5f - cx) * (x + 0.5f - cx) + (y + 0.5f - cy) * (y + 0.5f - cy);
        float v = erase ? (d2 < 4.f ? 1.f : 0.f) : std::exp(-d2 / 1.2f);
        float& px = s.draw_canvas[y * 28 + x];
        px = erase ? px * (1 - v) : std::max(px, std::min(1.f, v * 1.3f));
      }
    s.draw_dirty = true;
  }
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      int g = int(s.draw_canvas[y * 28 + x] * 255);
      dl->AddRectFilled(ImVec2(p0.x + x * cell, p0.y + y * cell), ImVec2(p0.x + (x + 1) * cell, p0.y + (y + 1) * cell),
                        IM_COL32(g, g, g, 255));
    }
  dl->AddRect(p0, ImVec2(p0.x + 28 * cell, p0.y + 28 * cell), IM_COL32(120, 120, 120, 255));
  ImGui::SameLine();
  ImGui::BeginGroup();
  if (ImGui::Button("Clear")) std::fill(std::begin(s.draw_canvas), std::end(s.draw_canvas), 0.f), s.draw_dirty = true;
  int& pick = s.draw_pick;
  ImGui::SetNextItemWidth(90);
  ImGui::InputInt("##pick", &pick);
  ImGui::SameLine();
  if (ImGui::Button("Load test #") && has_data()) {
    pick = std::clamp(pick, 0, int(test_.count) - 1);
    for (int i = 0; i < 784; ++i) s.draw_canvas[i] = test_.image(size_t(pick))[i] / 255.f;
    s.draw_dirty = true;
  }
  if (ImGui::Button("Erase the bottom half")) {
    for (int i = 14 * 28; i < 784; ++i) s.draw_canvas[i] = 0;
    s.draw_dirty = true;
  }
  if (ImGui::Button("Down-sample 2x")) {
    for (int y = 0; y < 28; y += 2)
      for (int x = 0; x < 28; x += 2) {
        float a = (s.draw_canvas[y * 28 + x] + s.draw_canvas[y * 28 + x + 1] + s.draw_canvas[(y + 1) * 28 + x] +
                   s.draw_canvas[(y + 1) * 28 + x + 1]) / 4;
        s.draw_canvas[y * 28 + x] = s.draw_canvas[y * 28 + x + 1] = s.draw_canvas[(y + 1) * 28 + x] =
            s.draw_canvas[(y + 1) * 28 + x + 1] = a;
      }
    s.draw_dirty = true;
  }
  if (s.draw_dirty) {
    Tensor x(m.input_shape(1));
    for (int i = 0; i < 784; ++i) x.data()[i] = lo + (hi - lo) * s.draw_canvas[i];
    Tensor z = m.encode(x);
    s.draw_code.assign(z.data(), z.data() + z.size());
    Tensor y = m.decode(z);
    per_image_mse(x, y, 1, &s.draw_score);
    s.draw_out.resize(28, 28);
    s.draw_out.put_digit(0, 0, y.data(), lo, hi);
    s.draw_dirty = false;
  }
  ImGui::Text("reconstruction:");
  s.draw_out.show(tex_, 4);
  ImGui::Text("anomaly score (MSE) %.4f", s.draw_score);
  if (s.threshold > 0) {
    bool anomalous = s.draw_score > s.threshold;
    ImGui::TextColored(anomalous ? ImVec4(1, 0.4f, 0.4f, 1) : ImVec4(0.5f, 1, 0.5f, 1), "%s (threshold %.4f)",
                       anomalous ? "anomaly" : "normal", s.threshold);
  }
  ImGui::EndGroup();
  ImGui::End();
}

void App::panel_anomaly() {
  State& s = *s_;
  if (!s.layout.begin(kPanelAnomaly, &show_panel[kPanelAnomaly])) return ImGui::End();
  if (s.errors.empty()) {
    ImGui::TextUnformatted("Waiting for data.");
    return ImGui::End();
  }
  float emax = *std::max_element(s.errors.begin(), s.errors.end());
  const int bins = 50;
  float hist[bins] = {};
  for (float e : s.errors) hist[std::min(bins - 1, int(e / (emax + 1e-12f) * bins))] += 1;
  ImGui::Text("Reconstruction error (MSE) of %zu test digits", s.errors.size());
  ImGui::PlotHistogram("##hist", hist, bins, 0, nullptr, 0, FLT_MAX, ImVec2(-1, 80));
  ImGui::SetNextItemWidth(-120);
  if (ImGui::SliderFloat("threshold", &s.threshold, 0.f, emax, "%.4f")) s.threshold_set_by_user = true;
  size_t above = size_t(std::count_if(s.errors.begin(), s.errors.end(), [&](float e) { return e > s.threshold; }));
  ImGui::Text("%zu digits (%.1f%%) above the threshold are flagged as anomalies", above, 100.0 * above / s.errors.size());
  ImGui::TextDisabled("The 16 worst-reconstructed test digits:");
  s.worst.show(tex_, 1.5f);
  ImGui::SeparatorText("Separate normal from abnormal");
  bool ch = ImGui::RadioButton("noise images", &s.anomaly_mode, 0);
  ImGui::SameLine();
  ch |= ImGui::RadioButton("one digit vs the rest", &s.anomaly_mode, 1);
  ImGui::SameLine();
  ch |= ImGui::RadioButton("Fashion-MNIST", &s.anomaly_mode, 2);
  if (s.anomaly_mode == 1) {
    ImGui::SetNextItemWidth(100);
    ch |= ImGui::SliderInt("digit", &s.held_digit, 0, 9);
    ImGui::SameLine();
    if (s.held_out == s.held_digit) {
      ImGui::TextDisabled("(held out of training)");
    } else if (ImGui::SmallButton("hold it out of training")) {
      s.held_out = s.held_digit;
      reset_training();
      message = "Training now leaves out every " + std::to_string(s.held_out) + ": train, then see how well its "
                "reconstruction error separates it from the other digits.";
    }
  }
  if (s.anomaly_mode == 2 && s.ood.count == 0) {
    ood_requested = true;
    ImGui::TextDisabled("loading Fashion-MNIST test images ...");
  }
  if (ch) s.views_dirty = true;
  const char* what = s.anomaly_mode == 0 ? "uniform-noise images" : s.anomaly_mode == 2 ? "Fashion-MNIST images"
                                                                   : "the chosen digit";
  ImGui::Text("ROC AUC %.3f  (%s vs test digits)", s.auc, what);
  help_marker("The reconstruction error as an anomaly score. The ROC curve plots the share of anomalies caught "
              "(up) against the share of normal digits wrongly flagged (right) as the threshold falls; its area is 1 "
              "for perfect separation and 0.5 for chance.");
  if (!s.roc.empty()) {
    float side = std::min(160.f, ImGui::GetContentRegionAvail().x);
    ImVec2 p0 = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + side, p0.y + side), IM_COL32(20, 20, 24, 255));
    dl->AddLine(ImVec2(p0.x, p0.y + side), ImVec2(p0.x + side, p0.y), IM_COL32(90, 90, 90, 255));
    std::vector<ImVec2> pts;
    for (ImVec2 r : s.roc) pts.push_back(ImVec2(p0.x + r.x * side, p0.y + (1 - r.y) * side));
    dl->AddPolyline(pts.data(), int(pts.size()), IM_COL32(255, 200, 60, 255), 0, 2.f);
    ImGui::Dummy(ImVec2(side, side));
  }
  ImGui::End();
}

void App::panel_inside() {
  State& s = *s_;
  if (!s.layout.begin(kPanelInside, &show_panel[kPanelInside])) return ImGui::End();
  if (s.weights_pic.w) {
    ImGui::TextDisabled("First layer's weights (Linear rows as 28x28, conv kernels per output x input channel)");
    s.weights_pic.show(tex_, 1.5f);
  }
  ImGui::SeparatorText("PCA baseline");
  size_t k = std::min<size_t>(s.code_dim, 784);
  ImGui::Text("Model: mean squared error per pixel %.5f (%zu test digits)", s.model_mse, s.n_view);
  if (s.pca_k != k) s.pca_mse = NAN;
  if (std::isnan(s.pca_mse)) {
    if (ImGui::Button(("Compute PCA with k = " + std::to_string(k)).c_str()) && has_data()) {
      Pca p = fit_pca(train_, s.preset.normalize, k, 5000, 1);
      s.pca_mse = pca_reconstruction_mse(p, test_, s.preset.normalize, view_images);
      s.pca_k = k;
    }
  } else {
    ImGui::Text("PCA, k = %zu components:  %.5f", s.pca_k, s.pca_mse);
  }
  ImGui::End();
}

void App::panel_save() {
  State& s = *s_;
  if (!s.layout.begin(kPanelSave, &show_panel[kPanelSave])) return ImGui::End();
  if (ImGui::Button("Download weights (.safetensors)")) {
    download_request_bytes = save_weights_bytes();
    download_request_name = s.preset.name + "-step" + std::to_string(s.step) + ".safetensors";
  }
  help_marker("Names and shapes are the PyTorch state_dict of the 'Show PyTorch code' module; optimizer state is "
              "under optimizer.* keys.");
  if (ImGui::Button("Upload weights ...")) upload_requested = true;
  ImGui::SameLine();
  ImGui::TextDisabled("or drop a .safetensors file on the page");
  if (ImGui::Button("Copy link")) link_request = config_query();
  help_marker("A link that opens the playground with these settings (preset, hyper-parameters, seed, panels): "
              "for a course page's iframe or to share.");
  ImGui::TextWrapped("?%s", config_query().c_str());
  ImGui::End();
}

}  // namespace aep
