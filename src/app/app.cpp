// The playground's state and its frame: training in time slices, views refreshed from the model as it learns. Commands and
// status are in commands.cpp, the panels in panels.cpp.
#include "app/app_state.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/gemm.hpp"
#include "core/losses.hpp"
#include "core/parallel.hpp"
#include "core/safetensors.hpp"
#include "core/umap.hpp"
#include "core/weights.hpp"

namespace aep {

std::string loss_text(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.5g", v);
  return b;
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

namespace {
struct NoDriver : Driver {  // tests without a driver: nothing to download to, no file picker, no Fashion-MNIST
  void download(const std::string&, const std::vector<uint8_t>&) override {}
  void open_file() override {}
  void copy_link(const std::string&) override {}
  void load_fashion() override {}
} no_driver;
}  // namespace

App::App(TextureApi textures, Driver* driver)
    : s_(new State), tex_(textures), driver_(driver ? driver : &no_driver) {
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
  load_lesson_library();
}

App::~App() = default;

void App::set_data(Dataset train, Dataset test, bool complete) {
  train_ = std::move(train);
  test_ = std::move(test);
  data_complete_ = complete;
  s_->host.data_sent = false;
  if (complete) loading_.clear();
  bool autostart = s_->running;  // a Train/autostart that came before the data
  reset_training();
  s_->running = autostart;
}

void App::add_data(Dataset train, Dataset test, bool complete) {
  if (!has_data()) return set_data(std::move(train), std::move(test), complete);
  if (data_complete_) throw std::runtime_error("the data is complete (the learner's own files replaced MNIST's)");
  const size_t had = train_.count;
  append_dataset(train_, std::move(train));  // throws, changing nothing, when they do not fit
  try {
    append_dataset(test_, std::move(test));
  } catch (...) {
    truncate_dataset(train_, had);
    throw;
  }
  data_grew(complete);
}

void App::add_mnist(const MnistFiles& rest) {
  if (!has_data()) throw std::runtime_error("the rest of MNIST before its first part");
  if (data_complete_) throw std::runtime_error("the data is complete (the learner's own files replaced MNIST's)");
  append_mnist(rest, train_, test_);  // throws, changing nothing
  data_grew(true);
}

void App::data_grew(bool complete) {
  State& s = *s_;
  data_complete_ = complete;
  if (complete) loading_.clear();
  for (Run* r : hosted_runs()) r->add_data(train_, complete);
  cancel_views();  // the views start over on the larger test set
  s.views_dirty = true;
  s.draw_dirty = true;
}

bool App::select_preset(const Preset& p, std::string* error) {
  try {
    auto run = std::make_unique<Run>(p, s_->seed);  // throws if the model does not build
    s_->preset = p;
    s_->json_text = preset_to_json(p).dump(2);
    s_->json_error.clear();
    s_->code_text = model_code(p, s_->code_keras);
    s_->draft = p;  // a new model replaces any unapplied layer edits
    s_->draft_edited = false;
    reset_training(std::move(run));
    return true;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
}

// Starts the run over from fresh weights (the current settings and seed), or with `fresh` (a Run of them just built).
void App::reset_training(std::unique_ptr<Run> fresh) {
  State& s = *s_;
  if (s.run && !s.run->curve.step.empty()) {
    s.past.push_back(std::move(s.run->curve));
    if (s.past.size() > 4) s.past.erase(s.past.begin());
  }
  cancel_views();
  s.run = fresh ? std::move(fresh) : std::make_unique<Run>(s.preset, s.seed);
  char label[200];
  std::snprintf(label, sizeof label, "%s, %s lr %g, batch %zu, seed %llu, %s", s.preset.name.c_str(),
                s.preset.optimizer.type.c_str(), double(s.preset.optimizer.lr), s.preset.training.batch_size,
                (unsigned long long)s.seed, reconstruction_loss_label(s.preset.loss).c_str());
  s.run->curve.label = label;
  if (has_data()) s.run->set_data(train_, s.held_out, true, data_complete_);
  s.running = false;
  s.samples_per_s = s.engine_samples_per_s = 0;
  s.wall.clear();
  s.last_train = s.last_test = s.last_test_kl = NAN;
  s.refreshed_step = size_t(-1);
  s.views_dirty = true;
  s.draw_dirty = true;
  s.pca_mse = NAN;
  if (s.lesson.active || s.lesson.comparing) rebuild_twin();  // a twin starts over with the run it steps beside
  rebuild_sweep();  // and a beta sweep's runs
  runs_changed();
}

void App::load_data_file(const std::vector<uint8_t>& bytes, const std::string& name) {
  State& s = *s_;
  if (s.instr.foreign.source == ForeignSource::Own) return load_foreign_file(bytes, name);
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
  data_complete_ = true;  // the learner's own images: the rest of MNIST, if it is still coming, is not added to them
  s.host.data_sent = false;
  s.held_out = -1;
  reset_training();
}

void App::want_fashion() {
  if (s_->ood.count || s_->fashion_asked) return;
  s_->fashion_asked = true;
  driver_->load_fashion();
}

void App::set_ood(Dataset d) {
  s_->ood = std::move(d);
  s_->views_dirty = true;
  s_->lesson.measured_step = size_t(-1);  // a lesson's foreignError can be measured now
}

// Hyper-parameters that can change between steps without rebuilding the model.
void App::apply_hyper_parameters() {
  State& s = *s_;
  if (s.run->sampler && s.run->sampler->batch_size() != s.preset.training.batch_size) {
    try {
      s.run->model->check_memory(s.preset.training.batch_size);
    } catch (const std::exception& e) {
      message = std::string("Batch size not changed: ") + e.what();
      s.preset.training.batch_size = s.run->sampler->batch_size();
    }
  }
  s.run->apply_settings(s.preset);
  sync_twin();
  sync_sweep();
}

bool App::step_once() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  try {
    step_sweep();  // a beta sweep's runs take the batch the run takes next
    if (L.twin && L.twin_error.empty() && twin_in_lockstep()) {  // a lesson's twin takes the same batch
      const std::vector<LockstepStep> out = step_lockstep({s.run.get(), L.twin.get()});
      if (!out[1].error.empty()) L.twin_error = out[1].error;
      if (!out[0].error.empty()) throw DivergenceError(out[0].error);
      s.last_train = out[0].loss.total;
    } else {
      s.last_train = s.run->step().total;
    }
    if (L.action_left > 0 && --L.action_left == 0) s.running = false;  // a lesson's "train N steps" is done
    return true;
  } catch (const DivergenceError& e) {
    diverged(e.what());
    return false;
  }
}

void App::diverged(const std::string& what) {
  s_->lesson.action_left = 0;
  s_->running = false;
  message = what;  // "training stopped at step N: ... Try a smaller learning rate ..."
  if (!message.empty()) message[0] = char(std::toupper((unsigned char)message[0]));
  message += " Reset starts again from fresh weights.";
}

// Samples trained per second of wall time over the last 3 s of running (all that happened between: drawing, views,
// the browser); kept when training pauses, started afresh when it runs again.
void App::track_wall_speed() {
  State& s = *s_;
  if (!s.running) {
    s.wall.clear();
    return;
  }
  const double now = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  s.wall.emplace_back(now, s.samples_trained);
  while (s.wall.size() > 2 && now - s.wall[1].first >= 3.0) s.wall.pop_front();
  const double span = now - s.wall.front().first;
  if (span >= 0.5) s.samples_per_s = double(s.samples_trained - s.wall.front().second) / span;
}

bool App::train_steps(size_t n) {
  if (!has_data()) {
    message = "The MNIST data is not loaded yet.";
    return false;
  }
  apply_hyper_parameters();
  if (training_elsewhere()) {  // the host takes them in the background
    s_->host.pending_steps = n;
    s_->running = true;
    sync_host();
    return true;
  }
  auto t0 = Clock::now();
  size_t samples = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!step_once()) return false;
    samples += s_->run->input.shape()[0];
  }
  double dt = seconds_since(t0);
  s_->samples_trained += samples;
  if (dt > 0)
    s_->engine_samples_per_s = s_->engine_samples_per_s == 0 ? samples / dt : 0.8 * s_->engine_samples_per_s + 0.2 * samples / dt;
  s_->views_dirty = true;
  return true;
}

// ---- views ---------------------------------------------------------------------------------------------------------

// The box around n 2-d points (xy: [n, 2]) with a 5% margin; non-finite points are left out.
void plot_range(const std::vector<float>& xy, size_t n, float& x0, float& x1, float& y0, float& y1) {
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

std::vector<float> codes_2d(const float* codes, size_t n, size_t dim, Pca* pca) {
  if (dim == 2) return std::vector<float>(codes, codes + n * 2);
  // Randomized for large codes: the covariance of 2000 codes of 1568 dimensions alone costs a second in wasm.
  const size_t k = std::min<size_t>(2, dim);
  Pca p = dim > 64 ? fit_pca_randomized(codes, n, dim, k) : fit_pca(codes, n, dim, k, 1, 30);
  std::vector<float> c(n * p.k), xy(n * 2, 0.f);
  p.project(codes, n, c.data());
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < p.k; ++j) xy[i * 2 + j] = c[i * p.k + j];
  if (pca) *pca = std::move(p);
  return xy;
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
  ViewJob::Options o;
  o.eval_images = training_elsewhere() ? 0 : eval_images;  // the host measures the test loss
  o.view_images = view_images;
  o.outliers = s.anomaly.mode == 0 || (s.anomaly.mode == 2 && s.ood.count > 0);
  o.fashion = s.anomaly.mode == 2 ? &s.ood : nullptr;
  s.job.begin(*s.run->model, s.preset, s.run->steps, test_, o);
  s.views_dirty = false;
}

// The model changed shape or weights wholesale: drop the running job, its snapshot and the old views.
void App::cancel_views() {
  State& s = *s_;
  s.job.cancel();
  s.n_view = 0;
  s.code_dim = 0;
  s.codes.clear();
  s.errors.clear();
  s.code_stats = SparsityStats();
  s.posterior = PosteriorStats();
  s.xy.clear();
  s.umap.clear();
  s.umap_xy.clear();
  s.umap_n = 0;
  s.umap_runs = 0;
  s.umap_codes_step = size_t(-1);
  s.views_dirty = true;
  cancel_instruments();
}

// Works on the view job for about budget_ms (at least one chunk); returns true while there is more to do. Finishing
// (finish_views) takes a call, and a frame, of its own: frame() trains none in it.
bool App::step_views(double budget_ms) {
  State& s = *s_;
  if (s.job.ready()) {
    finish_views();
    return false;
  }
  if (!s.job.active()) return false;
  s.job.step(budget_ms);
  return true;
}

// The cheap rest of the views, from the finished job: test-loss point, pictures, projections.
void App::finish_views() {
  State& s = *s_;
  ViewJob::Result j = s.job.take();
  Model& m = s.job.model();
  const Preset& p = m.preset();
  const float lo = range_min(p.normalize), hi = range_max(p.normalize);
  // A test loss measured with a loss the run has since left is of another quantity: not shown, measured again.
  LossCurve& curve = s.run->curve;
  const bool current_loss = curve.segments.empty() || j.loss == curve.segments.back().loss;
  if (j.test_measured) s.last_test = current_loss ? j.test.total : NAN;
  if (j.test_measured) s.last_test_kl = current_loss ? j.test.kl : NAN;
  if (!current_loss) s.views_dirty = true;
  const bool in_segment = !curve.segments.empty() && curve.test.size() > curve.segments.back().test_begin;
  if (j.test_measured && current_loss && (!in_segment || curve.test_step.back() != float(j.step))) {
    curve.test_step.push_back(float(j.step));
    curve.test.push_back(float(j.test.total));
  }
  s.n_view = j.n_view;
  s.code_dim = j.code_dim;
  s.codes.swap(j.codes);
  s.errors.swap(j.errors);
  s.code_stats = code_sparsity(s.codes.data(), s.n_view, s.code_dim);
  s.posterior = m.is_vae() ? posterior_stats(s.codes.data(), j.logvars.data(), s.n_view, s.code_dim) : PosteriorStats();
  s.instr.logvars.swap(j.logvars);  // the posterior view's sigma
  s.anomaly.outlier_errors.swap(j.outlier_errors);
  Tensor x;

  // Reconstructions of fixed test digits: input | corrupted | output.
  {
    std::vector<uint32_t> idx(kReconCount);
    for (int i = 0; i < kReconCount; ++i) idx[i] = uint32_t(i * 37 % test_.count);
    Rng noise(0x5eed);
    Tensor in, clean;
    make_batch(test_, idx.data(), kReconCount, s.preset, noise, in, clean);
    Tensor out = m.reconstruct(in);
    per_image_mse(clean.data(), out.data(), kReconCount, s.recon_err);
    s.recon.resize(kReconCount * 30 + 2, 3 * 30 + 2);
    for (int i = 0; i < kReconCount; ++i) {
      s.recon.put_digit(2 + i * 30, 2, clean.data() + i * 784, lo, hi);
      s.recon.put_digit(2 + i * 30, 32, in.data() + i * 784, lo, hi);
      s.recon.put_digit(2 + i * 30, 62, out.data() + i * 784, lo, hi);
    }
  }

  // 2-D view: the code itself, or its first two principal components.
  s.latent_pca = s.code_dim != 2;
  s.xy = codes_2d(s.codes.data(), s.n_view, s.code_dim, &s.code_pca);
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

  s.anomaly.score(s.errors, test_, p.normalize);

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

std::vector<uint8_t> App::save_weights_bytes(bool with_optimizer) const {
  SafeTensors st = model_state(*s_->run->model, with_optimizer ? &s_->run->trainer->optimizer : nullptr);
  return serialize_safetensors(st);
}

void App::request_download(bool with_optimizer) {
  driver_->download(s_->preset.name + "-step" + std::to_string(s_->run->steps) +
                        (with_optimizer ? "-with-optimizer" : "") + ".safetensors",
                    save_weights_bytes(with_optimizer));
}

void App::load_weights_bytes(const std::vector<uint8_t>& bytes, const std::string& name) {
  load_weights_state(parse_safetensors(bytes.data(), bytes.size(), name), name);
}

void App::load_weights_state(const SafeTensors& st, const std::string& name) {
  State& s = *s_;
  // A file saved by the engine names its preset: switch to it first if it differs, on a scratch model.
  auto meta = st.metadata.find("preset");
  Preset p = s.preset;
  if (meta != st.metadata.end()) p = parse_preset_text(meta->second, name + " (metadata 'preset')");
  auto run = std::make_unique<Run>(p, s.seed);
  load_state(*run->model, st, name, &run->trainer->optimizer);  // throws before anything of ours changed
  s.running = false;
  s.preset = p;
  cancel_views();
  run->curve = std::move(s.run->curve);  // the curve goes on from here
  run->curve.begin_segment(reconstruction_loss_label(p.loss));
  run->steps = size_t(run->trainer->optimizer.steps());
  s.run = std::move(run);
  if (has_data()) s.run->set_data(train_, s.held_out, true, data_complete_);
  runs_changed();
  s.json_text = preset_to_json(p).dump(2);
  s.code_text = model_code(p, s.code_keras);
  s.draft = p;
  s.draft_edited = false;
  s.views_dirty = true;
  for (const auto& q : s.presets)
    if (q.name == p.name) s.preset_index = int(&q - s.presets.data());
  message = "Loaded " + name + (st.find("optimizer.step") ? "." : " (weights only: the optimizer starts afresh).");
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
// The index a point keeps in thin(v, n) (or the next kept one's when it is dropped), for the curve's segments.
size_t thinned_index(size_t i, size_t size, size_t n) {
  const size_t stride = std::max<size_t>(1, (size + n - 1) / n);
  return (i + stride - 1) / stride;
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
  SafeTensors st = model_state(*s.run->model, &s.run->trainer->optimizer);
  const LossCurve& c = s.run->curve;
  json curve = {{"label", c.label}, {"step", thin(c.step, 2000)}, {"train", thin(c.train, 2000)},
                {"recon", thin(c.recon, 2000)}, {"kl", thin(c.kl, 2000)},
                {"test_step", thin(c.test_step, 2000)}, {"test", thin(c.test, 2000)}};
  json segments = json::array();  // [train begin, test begin, loss] in the thinned curves
  for (const auto& g : c.segments)
    segments.push_back({thinned_index(g.train_begin, c.step.size(), 2000), thinned_index(g.test_begin, c.test.size(), 2000),
                        g.loss});
  curve["segments"] = segments;
  st.metadata["aep_session"] = json{{"version", kSessionVersion}, {"seed", s.seed}, {"step", s.run->steps},
                                    {"epoch", s.run->sampler ? s.run->sampler->epoch : 0}, {"curve", curve}}.dump();
  save_lesson_session(st);
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
  // Segments of different losses (older autosaves have none: one segment of the preset's loss).
  const json segments = c.value("segments", json::array());
  if (!segments.is_array()) throw std::runtime_error("autosave: 'segments' must be an array");
  for (const json& g : segments) {
    if (!g.is_array() || g.size() != 3 || !g[0].is_number_unsigned() || !g[1].is_number_unsigned() || !g[2].is_string())
      throw std::runtime_error("autosave: a loss curve segment is not [train begin, test begin, loss]");
    const size_t a = g[0].get<size_t>(), b = g[1].get<size_t>();
    const LossCurve::Segment* last = curve.segments.empty() ? nullptr : &curve.segments.back();
    if (a > curve.step.size() || b > curve.test.size() || (last && (a < last->train_begin || b < last->test_begin)) ||
        (!last && (a != 0 || b != 0)))
      throw std::runtime_error("autosave: the loss curve segments are out of order");
    curve.segments.push_back({a, b, g[2].get<std::string>()});
  }
  uint64_t seed = meta["seed"].get<uint64_t>();
  size_t epoch = meta.value("epoch", size_t(0));
  // A lesson in progress: its part is checked whole (the twin's weights on a scratch run) before anything changes.
  std::unique_ptr<LessonSession> lesson = take_lesson_session(st, seed);
  if (lesson) restart_lesson_session(*lesson);  // the lesson's runs as its actions left them, from fresh weights
  const uint64_t seed_before = s.seed;
  s.seed = seed;  // the restored run's seed rule
  try {
    load_weights_state(st, "autosave");  // validates and swaps the model in, or throws having changed nothing
  } catch (...) {
    s.seed = seed_before;
    throw;
  }
  if (curve.segments.empty()) curve.segments.push_back({0, 0, reconstruction_loss_label(s.preset.loss)});
  s.run->curve = std::move(curve);
  s.run->steps = meta["step"].get<size_t>();
  if (s.run->sampler) s.run->sampler->epoch = epoch;
  s.last_train = s.run->curve.train.empty() ? NAN : s.run->curve.train.back();
  message = "Restored your autosaved session: " + s.preset.name + " at step " + std::to_string(s.run->steps) + ".";
  if (lesson) finish_lesson_session(*lesson, epoch);
  runs_changed();
}

// ---- frame -----------------------------------------------------------------------------------------------------------

void App::frame() {
  State& s = *s_;
  ImGuiIO& io = ImGui::GetIO();
  if (!io.WantTextInput && ImGui::IsKeyPressed(ImGuiKey_Space, false) && has_data()) s.running = !s.running;

  // The frame that finishes the views (~15 ms in wasm: projections, pictures, anomaly scores) trains none: with a
  // training step on top it would be one of the few frames that take three display refreshes.
  const bool finishing_views = s.job.ready();
  if (training_elsewhere()) {
    apply_hyper_parameters();
    sync_host();
  } else if (s.running && has_data() && !finishing_views) {
    apply_hyper_parameters();
    auto t0 = Clock::now();
    size_t samples = 0;
    for (;;) {  // at least one step, then more while the next one is expected to fit the budget
      auto ts = Clock::now();
      if (!step_once() || !s.running) break;
      s.step_ms = 0.8 * s.step_ms + 0.2 * seconds_since(ts) * 1000;
      samples += s.run->input.shape()[0];
      if (s.run->epochs_done()) {
        s.running = false;
        message = "Finished " + std::to_string(s.preset.training.epochs) + " epoch(s).";
        break;
      }
      if (seconds_since(t0) * 1000 + s.step_ms > train_budget_ms) break;
    }
    double dt = seconds_since(t0);
    s.samples_trained += samples;
    if (samples && dt > 0)
      s.engine_samples_per_s = s.engine_samples_per_s == 0 ? samples / dt : 0.9 * s.engine_samples_per_s + 0.1 * samples / dt;
    s.views_dirty = true;
  }
  track_wall_speed();
  // Views refresh a few times a second while training, and soon after any change when idle; a chunk per frame.
  if (has_data() && s.views_dirty && !s.job.active() && (!s.running || seconds_since(s.last_refresh) > 0.7)) start_views();
  // The views get 40% of the training time per frame while training (8 ms of 20), more when idle.
  double view_ms = s.running ? std::max(2.0, 0.4 * train_budget_ms) : 16;
  // While a host trains, all of this together may take at most main_share of the wall clock (a bucket the clock
  // fills, emptied by the time spent): on a machine with few cores the page's thread leaves the worker its core.
  const bool metered = training_elsewhere() && s.running && main_share < 1;
  const auto tv = Clock::now();
  if (metered) {
    s.main_credit_ms = std::min(20.0, s.main_credit_ms + main_share * seconds_since(s.last_frame) * 1000);
    view_ms = std::min(view_ms, s.main_credit_ms);
  }
  if (view_ms >= 1) {
    // The instruments (Jacobian norm, code probe, foreign data, beta sweep) take the views' budget when they are
    // done, and every other frame while they refresh (all the time while training) until each has its first value.
    if (!s.job.active()) step_instruments(view_ms);
    else if (!step_instruments(view_ms, true)) step_views(view_ms);
    if (umap_due()) step_umap(view_ms);  // as much again for the UMAP view
    step_lesson(view_ms);                // and for a lesson's goal values
  }
  if (metered) s.main_credit_ms = std::max(-50.0, s.main_credit_ms - seconds_since(tv) * 1000);
  s.last_frame = tv;

  main_menu();
  const ImVec2 display = ImGui::GetIO().DisplaySize;
  const float lesson_w = s.lesson.active ? std::clamp(display.x * 0.28f, 260.f, 420.f) : 0.f;
  s.layout.update(show_panel, display, compact ? 0.f : ImGui::GetFrameHeight(), lesson_w);
  if (s.lesson.active) panel_lesson(lesson_w);
  else s.layout.lesson_shown = {};
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
  lesson_picker();
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
  lessons_menu();
  ImGui::Separator();
  if (!loading_.empty()) ImGui::TextUnformatted(loading_.c_str());
  else ImGui::Text("%s | step %zu | %.0f samples/s | SIMD: %s, %zu thread%s", s.preset.name.c_str(), s.run->steps,
                   s.samples_per_s, simd_arch_name(), thread_count(), thread_count() == 1 ? "" : "s");
  if (!message.empty()) {
    ImGui::Separator();
    ImGui::TextColored(ImVec4(1, 0.8f, 0.4f, 1), "%s", message.c_str());
    if (ImGui::SmallButton("x")) message.clear();
  }
  ImGui::EndMainMenuBar();
}

// Window placement: with every panel shown, a fixed 3-column arrangement; with a subset (an embedded lesson's
// panels=...), the visible panels tiled in up to 3 columns. Redone whenever the display size or the set changes.
void PanelLayout::update(const bool* visible, ImVec2 display, float top, float left) {
  relayout = display.x != last_size.x || display.y != last_size.y || left != last_left ||
             !std::equal(visible, visible + kPanelCount, last_visible);
  if (!relayout) return;
  last_size = display;
  last_left = left;
  std::copy(visible, visible + kPanelCount, last_visible);
  const ImVec2 d(display.x - left, display.y);
  float h = d.y - top;
  int n = int(std::count(visible, visible + kPanelCount, true));
  if (n == kPanelCount) {
    struct Slot { int col; float y0, y1; };
    static const Slot L[kPanelCount] = {
        {0, 0, 0.40f},     {0, 0.40f, 0.62f}, {1, 0, 0.45f}, {1, 0.45f, 0.64f}, {2, 0, 0.52f},
        {2, 0.52f, 0.78f}, {1, 0.64f, 1},     {2, 0.78f, 1}, {0, 0.62f, 0.84f}, {0, 0.84f, 1}};
    for (int i = 0; i < kPanelCount; ++i)
      rect[i] = {left + L[i].col * d.x / 3, top + L[i].y0 * h, d.x / 3, (L[i].y1 - L[i].y0) * h};
    return;
  }
  int cols = n <= 3 ? std::max(n, 1) : n == 4 ? 2 : 3;
  int rows = (n + cols - 1) / std::max(cols, 1);
  for (int i = 0, k = 0; i < kPanelCount; ++i) {
    if (!visible[i]) continue;
    int c = k / rows, r = k % rows;
    int in_col = std::min(rows, n - c * rows);  // the last column may hold fewer panels: they grow
    rect[i] = {left + c * d.x / cols, top + r * h / in_col, d.x / cols, h / in_col};
    ++k;
  }
}

bool PanelLayout::begin(int id, bool* open) const {
  const Rect& r = rect[id];
  ImGuiCond cond = relayout ? ImGuiCond_Always : ImGuiCond_FirstUseEver;
  ImGui::SetNextWindowPos(ImVec2(r.x, r.y), cond);
  ImGui::SetNextWindowSize(ImVec2(r.w, r.h), cond);
  bool visible = ImGui::Begin(kPanelTitles[id], open);
  ImVec2 pos = ImGui::GetWindowPos(), size = ImGui::GetWindowSize();
  shown[id] = visible ? Rect{pos.x, pos.y, size.x, size.y} : Rect{};
  return visible;
}

}  // namespace aep
