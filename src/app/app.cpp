// The playground's state and its frame: training in time slices, views refreshed from the model as it learns.
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
  load_lesson_library();
}

App::~App() = default;

void App::set_data(Dataset train, Dataset test) {
  train_ = std::move(train);
  test_ = std::move(test);
  s_->host.data_sent = false;
  loading_.clear();
  bool autostart = s_->running;  // a Train/autostart that came before the data
  reset_training();
  s_->running = autostart;
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
  if (has_data()) s.run->set_data(train_, s.held_out);
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
  s.host.data_sent = false;
  s.held_out = -1;
  reset_training();
}

void App::set_ood(Dataset d) {
  s_->ood = std::move(d);
  ood_requested = false;
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
  State::ViewJob& j = s.job;
  if (!j.model) {
    j.model = std::make_unique<Model>(s.preset);
    j.trainer = std::make_unique<Trainer>(*j.model, 0);
  }
  j.model->set_loss(s.preset.loss);
  j.loss = reconstruction_loss_label(s.preset.loss);
  std::copy(s.run->model->values.begin(), s.run->model->values.end(), j.model->values.begin());
  std::copy(s.run->model->buffer_values.begin(), s.run->model->buffer_values.end(), j.model->buffer_values.begin());
  j.active = true;
  j.stage = training_elsewhere() ? 1 : 0;  // the host measures the test loss
  j.pos = 0;
  j.step = s.run->steps;
  j.noise = Rng(0x5eed);
  j.total = j.kl = 0;
  j.n_view = std::min(view_images, test_.count);
  j.code_dim = j.model->code_size();
  j.codes.assign(j.n_view * j.code_dim, 0.f);
  j.logvars.assign(j.model->is_vae() ? j.n_view * j.code_dim : 0, 0.f);
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
      Tensor z;
      if (m.is_vae()) {  // the posterior: mu is the code, logvar feeds the KL bars
        Model::Posterior q = m.encode_posterior(x);
        std::copy(q.logvar.data(), q.logvar.data() + n * j.code_dim, j.logvars.data() + j.pos * j.code_dim);
        z = std::move(q.mu);
      } else {
        z = m.encode(x);
      }
      std::copy(z.data(), z.data() + n * j.code_dim, j.codes.data() + j.pos * j.code_dim);
      Tensor y = m.decode(z);
      per_image_mse(x.data(), y.data(), n, j.errors.data() + j.pos);
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
      per_image_mse(noise.data(), y.data(), n, j.noise_errors.data() + j.pos);
      if ((j.pos += n) >= total) j.stage = 3;
    } else {
      finish_views();
      j.active = false;
      return false;
    }
    s.chunk_ms = 0.8 * s.chunk_ms + 0.2 * seconds_since(tc) * 1000;
    if (j.stage == 3) return true;  // finishing takes a frame of its own (frame() trains none in it)
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
  // A test loss measured with a loss the run has since left is of another quantity: not shown, measured again.
  LossCurve& curve = s.run->curve;
  const bool current_loss = curve.segments.empty() || j.loss == curve.segments.back().loss;
  if (!training_elsewhere()) s.last_test = current_loss ? j.total : NAN;
  if (!training_elsewhere()) s.last_test_kl = current_loss ? j.kl : NAN;
  if (!current_loss) s.views_dirty = true;
  const bool in_segment = !curve.segments.empty() && curve.test.size() > curve.segments.back().test_begin;
  if (!training_elsewhere() && current_loss && (!in_segment || curve.test_step.back() != float(j.step))) {
    curve.test_step.push_back(float(j.step));
    curve.test.push_back(float(j.total));
  }
  s.n_view = j.n_view;
  s.code_dim = j.code_dim;
  s.codes.swap(j.codes);
  s.errors.swap(j.errors);
  s.code_stats = code_sparsity(s.codes.data(), s.n_view, s.code_dim);
  s.posterior = m.is_vae() ? posterior_stats(s.codes.data(), j.logvars.data(), s.n_view, s.code_dim) : PosteriorStats();
  s.instr.logvars.swap(j.logvars);  // the posterior view's sigma
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
                                "holdout", "anomaly", "latent", "trainMs", "download", "target", "lesson",
                                "lessonJson", "lessonStep", "lessonAction", "lessonRestore", "lessonPicker", "compare"};
  static const char* instrument_keys[] = {"loss", "reduction", "probeLabels", "posteriorDigit", "foreignData",
                                          "betaSweep"};
  for (auto it = cmd.begin(); it != cmd.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) == std::end(known) &&
        std::find_if(std::begin(instrument_keys), std::end(instrument_keys), [&](const char* k) { return it.key() == k; }) ==
            std::end(instrument_keys))
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
  int download = -1;  // 0: weights (strict state_dict), 1: weights + optimizer
  if (cmd.contains("download")) {
    const json& v = cmd.at("download");
    if (v == "weights" || v == "weights+optimizer") download = v == "weights+optimizer";
    else errors.push_back("download must be \"weights\" or \"weights+optimizer\", got " + v.dump());
  }
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
  if (cmd.contains("target")) {  // what the model learns to output: the clean digit, or the corrupted input itself
    const json& v = cmd.at("target");
    if (v == "clean" || v == "corrupted") p.corruption.corrupted_target = v == "corrupted";
    else errors.push_back("target must be \"clean\" or \"corrupted\", got " + v.dump());
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
      s.run->model->check_memory(p.training.batch_size);
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }
  lesson_command(cmd, errors, false);
  InstrumentCommand instrument;  // loss, reduction (into p), probeLabels, posteriorDigit
  parse_instrument_command(cmd, p, instrument, errors);
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
  apply_instrument_command(instrument);
  lesson_command(cmd, errors, true);  // after the settings: a lesson sets its own
  if (!errors.empty()) return {{"ok", false}, {"errors", errors}};
  // Last: a lesson or a comparison starts its runs over (paused), and then trains if asked to.
  if (autostart == 1 || train == 1) s.running = true;
  if (pause == 1) s.running = false;
  if (steps > 0) train_steps(size_t(steps));
  if (download >= 0) request_download(download == 1);
  if (!cmd.contains("lessonPicker")) s.lesson.picker = false;  // the page was set up: the start screen gives way
  if (training_elsewhere() && has_data()) {  // the host gets what this command changed now, in the commands' order
    apply_hyper_parameters();
    sync_host();
  }
  if (!instrument.warnings.empty()) return {{"ok", true}, {"warnings", instrument.warnings}};
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
  json panels = json::array(), rects = json::object();
  for (int i = 0; i < kPanelCount; ++i) {
    if (!show_panel[i]) continue;
    panels.push_back(kPanelKeys[i]);
    const PanelLayout::Rect& r = s.layout.shown[i];
    if (r.w > 0) rects[kPanelKeys[i]] = {r.x, r.y, r.w, r.h};
  }
  if (const PanelLayout::Rect& r = s.layout.lesson_shown; r.w > 0) rects["lesson"] = {r.x, r.y, r.w, r.h};
  json lessons = json::array();
  for (const Lesson& l : s.lesson.library) lessons.push_back(l.id);
  json st = {{"preset", s.preset.name},
          {"step", s.run->steps},
          {"epoch", s.run->epoch()},
          {"trainLoss", num(s.last_train)},
          {"testLoss", num(s.last_test)},
          {"testStep", s.refreshed_step == size_t(-1) ? json(nullptr) : json(s.refreshed_step)},
          {"samplesPerSec", s.samples_per_s},  // per second of wall time while training runs
          {"engineSamplesPerSec", s.engine_samples_per_s},  // inside the training slices
          {"trainingIn", training_elsewhere() ? "host" : "frames"},  // a worker or thread, or the page's own frames
          // The training host's counts; synced: its latest report came after the app's last order (a Pause has taken).
          {"host", {{"orders", s.host.seq}, {"generation", s.host.gen}, {"reports", s.host.reports},
                    {"synced", !training_elsewhere() || s.host.acked >= s.host.seq}}},
          {"trainMs", train_budget_ms},
          {"memoryBytes", memory_bytes ? json(memory_bytes) : json(nullptr)},
          {"hostMemoryBytes", host_memory_bytes ? json(host_memory_bytes) : json(nullptr)},  // the training worker's
          {"trainingBytes", s.run->model->training_bytes(s.preset.training.batch_size)},
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
          {"target", s.preset.corruption.corrupted_target ? "corrupted" : "clean"},
          {"panels", panels},
          {"panelRects", rects},  // {key: [x, y, w, h]} in display pixels, as last drawn
          {"compact", compact},
          {"simd", simd_arch_name()},
          {"threads", thread_count()},
          {"parameters", s.run->model->parameter_count()},
          {"codeSize", s.run->model->code_size()},
          {"holdout", s.held_out},
          {"trainImages", s.run->train_images()},
          {"anomaly", s.anomaly_mode == 0 ? "noise" : s.anomaly_mode == 1 ? "digit" : "fashion"},
          {"latent", s.code_dim > 2 ? (s.latent_umap ? "umap" : "pca") : "code"},
          {"umapPoints", s.umap_n},
          {"umapStep", s.umap_n ? json(s.umap_step) : json(nullptr)},
          {"umapProgress", s.umap.running() ? json(s.umap.progress()) : json(nullptr)},
          {"anomalyAuc", num(s.auc)},
          // Instruments over the view images (names as core/instruments.hpp's instrument_values): null before the
          // first views, and the VAE's only for a VAE.
          {"sparsity", s.n_view ? json(s.code_stats.sparsity) : json(nullptr)},
          {"meanAbsCode", s.n_view ? json(s.code_stats.mean_abs) : json(nullptr)},
          {"activeUnits", s.posterior.digits ? json(s.posterior.active_units) : json(nullptr)},
          {"klPerDim", s.posterior.digits ? json(s.posterior.kl_per_dim) : json(nullptr)},
          {"klTotal", s.posterior.digits ? json(s.posterior.kl_total()) : json(nullptr)},
          {"oodImages", s.ood.count},
          {"lesson", lesson_status()},
          {"lessons", lessons},
          {"lessonPicker", s.lesson.picker},
          {"compare", compare_status()},
          {"message", message}};
  st.update(instrument_status());  // loss, lossSegments, jacobianNorm, probe, posterior
  return st;
}

std::string model_code(const Preset& p, bool keras) {
  if (!keras) return pytorch_code(p);
  try {
    return keras_code(p);
  } catch (const std::exception& e) {
    return std::string("# No Keras code for this model: ") + e.what() + "\n";
  }
}

std::string App::config_query() const {
  const State& s = *s_;
  std::string q = "preset=" + s.preset.name;
  char buf[64];
  std::snprintf(buf, sizeof buf, "&lr=%g", double(s.preset.optimizer.lr));
  q += buf;
  q += "&optimizer=" + s.preset.optimizer.type + "&batch=" + std::to_string(s.preset.training.batch_size) +
       "&epochs=" + std::to_string(s.preset.training.epochs) + "&seed=" + std::to_string(s.seed);
  if (s.run->model->is_vae()) std::snprintf(buf, sizeof buf, "&beta=%g", double(s.preset.loss.beta)), q += buf;
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
  if (s.instr.foreign.source == ForeignSource::Fashion) q += "&foreignData=fashion";  // own files stay on this computer
  // The loss, when the picker changed it from the preset's.
  auto named = std::find_if(s.presets.begin(), s.presets.end(), [&](const Preset& p) { return p.name == s.preset.name; });
  if (named == s.presets.end() || named->loss.reconstruction != s.preset.loss.reconstruction ||
      named->loss.reduction != s.preset.loss.reduction)
    q += "&loss=" + s.preset.loss.reconstruction + "&reduction=" + (s.preset.loss.reduction == Reduction::Sum ? "sum" : "mean");
  return q;
}

std::vector<uint8_t> App::save_weights_bytes(bool with_optimizer) const {
  SafeTensors st = model_state(*s_->run->model, with_optimizer ? &s_->run->trainer->optimizer : nullptr);
  return serialize_safetensors(st);
}

void App::request_download(bool with_optimizer) {
  download_request_bytes = save_weights_bytes(with_optimizer);
  download_request_name = s_->preset.name + "-step" + std::to_string(s_->run->steps) +
                          (with_optimizer ? "-with-optimizer" : "") + ".safetensors";
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
  if (has_data()) s.run->set_data(train_, s.held_out);
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
  const bool finishing_views = s.job.active && s.job.stage == 3;
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
      if (s.run->sampler->epoch >= s.preset.training.epochs) {
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
  if (has_data() && s.views_dirty && !s.job.active && (!s.running || seconds_since(s.last_refresh) > 0.7)) start_views();
  // The views get 40% of the training time per frame while training (8 ms of 20), more when idle.
  const double view_ms = s.running ? std::max(2.0, 0.4 * train_budget_ms) : 16;
  // The instruments (Jacobian norm, code probe, foreign data, beta sweep) take the views' budget when they are done,
  // and every other frame while they refresh (all the time while training) until each has its first value.
  if (!s.job.active) step_instruments(view_ms);
  else if (!step_instruments(view_ms, true)) step_views(view_ms);
  if (umap_due()) step_umap(view_ms);  // as much again for the UMAP view
  step_lesson(view_ms);                // and for a lesson's goal values

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
