// Lesson files (strict parsing, like presets) and the runner that trains a lesson's run and twin and checks its goals.
#include "core/lesson.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <numeric>
#include <stdexcept>

#include "core/idx.hpp"
#include "core/instruments.hpp"
#include "core/json_section.hpp"
#include "core/metrics.hpp"
#include "core/model.hpp"
#include "core/pca.hpp"

namespace aep {

using nlohmann::json;

const std::vector<std::string>& lesson_panel_keys() {
  static const std::vector<std::string> keys = {"model",    "data", "training", "recon",  "latent",
                                                "generate", "draw", "anomaly",  "inside", "save"};
  return keys;
}

namespace {

constexpr int kMaxLessonDepth = 20;  // lesson, steps, step, action, settings, an inline preset's 4 levels
constexpr size_t kMaxSteps = 20;
constexpr size_t kMaxTrainSteps = 5000;  // per action

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// "training,recon" or "all" -> checked; returns the text as given.
std::string panel_list(const json& v) {
  if (!v.is_string()) throw std::runtime_error("panels must be a comma-separated list like \"training,recon\", got " + brief(v));
  const std::string list = v.get<std::string>();
  if (list == "all") return list;
  size_t pos = 0;
  for (;;) {
    const size_t end = list.find(',', pos);
    const std::string key = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    const auto& keys = lesson_panel_keys();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      throw std::runtime_error("unknown panel '" + shorten_utf8(key) + "' (known: " + join(keys) + ", all)");
    if (end == std::string::npos) return list;
    pos = end + 1;
  }
}

double number_setting(const json& v, const char* key, double lo, double hi, bool integer) {
  char range[128];
  std::snprintf(range, sizeof range, " must be %s between %g and %g, got ", integer ? "an integer" : "a number", lo, hi);
  const bool ok = v.is_number() && v.get<double>() >= lo && v.get<double>() <= hi &&
                  (!integer || std::floor(v.get<double>()) == v.get<double>());
  if (!ok) throw std::runtime_error(key + std::string(range) + brief(v));
  return v.get<double>();
}

std::string choice_setting(const json& v, const char* key, std::initializer_list<const char*> allowed) {
  if (v.is_string())
    for (const char* a : allowed)
      if (v.get<std::string>() == a) return a;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw std::runtime_error(std::string(key) + " must be one of " + list + ", got " + brief(v));
}

Preset named_preset(const json& v) {
  if (v.is_object()) return parse_preset(v, "preset");
  const std::vector<std::string> names = list_presets();
  if (!v.is_string() || std::find(names.begin(), names.end(), v.get<std::string>()) == names.end())
    throw std::runtime_error("unknown preset " + brief(v) + " (known: " + join(names) + ")");
  return load_preset(v.get<std::string>());
}

// The model of a configuration must build and fit the memory budget at its batch size.
void check_config(const LessonConfig& c) {
  Model m(c.preset);
  if (c.preset.loss.contractive > 0) m.contractive_layer();
  m.check_memory(c.preset.training.batch_size);
}

// A run's configuration: start (base == nullptr) or the twin (a copy of start with its own settings).
LessonConfig parse_config(const json& j, const std::string& where, const LessonConfig* base) {
  Section s(j, where);
  LessonConfig c;
  if (base) c = *base, c.label.clear();
  if (s.has("label")) {
    c.label = s.str("label", "");
    if (c.label.empty() || c.label.size() > 40) s.fail("'label' must be 1 to 40 characters");
  }
  if (!base && !s.has("preset")) s.fail("missing 'preset' (a preset name or an inline preset)");
  json settings = json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "label") continue;
    if (base && (it.key() == "seed" || it.key() == "batch" || it.key() == "holdout"))
      s.fail("'" + it.key() + "' is shared by both runs (they train in lockstep on the same batches): set it in 'start'");
    if (base && it.key() == "panels") s.fail("'panels' belongs to 'start' (both runs show in the same panels)");
    s.has(it.key().c_str());
    settings[it.key()] = it.value();
  }
  try {
    apply_lesson_settings(settings, c);
    if (base) c.preset.training.batch_size = base->preset.training.batch_size;  // lockstep: one batch size
    check_config(c);
  } catch (const std::exception& e) {
    s.fail(e.what());
  }
  s.done();
  return c;
}

LessonAction parse_action(const json& j, const std::string& where, std::vector<LessonConfig>& configs) {
  Section s(j, where);
  LessonAction a;
  if (!s.has("label")) s.fail("missing 'label' (the button's text)");
  a.label = s.str("label", "");
  if (a.label.empty() || a.label.size() > 60) s.fail("'label' must be 1 to 60 characters");
  a.train = s.integer("train", 0, 1, kMaxTrainSteps);
  a.reset = s.boolean("reset", false);
  if (s.has("settings")) {
    a.settings = s.sub("settings");
    if (!a.settings.is_object()) s.fail("'settings' must be a JSON object, got " + brief(a.settings));
    if (a.settings.empty()) s.fail("'settings' is empty");
    // Applied here to the configurations as they will be when the learner gets to this step.
    for (size_t i = 0; i < configs.size(); ++i) {
      try {
        apply_lesson_settings(a.settings, configs[i]);
        configs[i].preset.training.batch_size = configs[0].preset.training.batch_size;  // lockstep: one batch size
        check_config(configs[i]);
      } catch (const std::exception& e) {
        s.fail(std::string("settings: ") + e.what());
      }
    }
  }
  if (a.train == 0 && !a.reset && a.settings.empty()) s.fail("does nothing: give 'settings', 'train' or 'reset'");
  s.done();
  return a;
}

LessonStep parse_step(const json& j, const std::string& where, std::vector<LessonConfig>& configs, bool has_twin) {
  Section s(j, where);
  if (!s.has("instruction")) s.fail("missing 'instruction'");
  std::string instruction = s.str("instruction", "");
  if (instruction.empty() || instruction.size() > 600) s.fail("'instruction' must be 1 to 600 characters");
  std::optional<LessonAction> action;
  if (s.has("action")) action = parse_action(s.sub("action"), where + ": action", configs);
  std::vector<std::string> look;
  if (s.has("look")) {
    const json& v = s.sub("look");
    if (!v.is_array() || v.empty()) s.fail("'look' must be a list of panel keys, e.g. [\"training\", \"recon\"]");
    for (const json& k : v) {
      const auto& keys = lesson_panel_keys();
      if (!k.is_string() || std::find(keys.begin(), keys.end(), k.get<std::string>()) == keys.end())
        s.fail("look: unknown panel " + brief(k) + " (known: " + join(keys) + ")");
      look.push_back(k.get<std::string>());
    }
  }
  if (!s.has("goal")) s.fail("missing 'goal' (a condition, e.g. \"testLoss < 0.03\")");
  std::string text = s.str("goal", "");
  std::optional<Goal> goal;
  try {
    goal.emplace(text, has_twin);
  } catch (const std::exception& e) {
    s.fail(std::string("goal: ") + e.what());
  }
  s.done();
  return {std::move(instruction), std::move(action), std::move(look), std::move(*goal)};
}

bool valid_id(const std::string& id) {
  return !id.empty() && id.size() <= 48 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

}  // namespace

bool apply_lesson_settings(const json& settings, LessonConfig& c) {
  if (!settings.is_object()) throw std::runtime_error("settings must be a JSON object, got " + brief(settings));
  static const char* known[] = {"preset", "lr", "batch", "epochs", "seed", "beta", "l1", "optimizer", "corruption",
                                "noise", "target", "holdout", "anomaly", "panels", "latent"};
  for (auto it = settings.begin(); it != settings.end(); ++it) {
    const std::string& k = it.key();
    if (std::find(std::begin(known), std::end(known), k) != std::end(known)) continue;
    if (k == "step" || k == "train")
      throw std::runtime_error("'" + k + "' is not a lesson setting: an action trains with \"train\": N");
    if (k == "reset") throw std::runtime_error("'reset' is not a lesson setting: an action starts over with \"reset\": true");
    throw std::runtime_error("unknown setting '" + shorten_utf8(k) + "' (known: " +
                             join(std::vector<std::string>(std::begin(known), std::end(known))) + ")");
  }
  LessonConfig n = c;  // nothing changes unless all settings are valid
  bool rebuild = false;
  if (settings.contains("preset")) {
    const json& v = settings.at("preset");
    n.preset = named_preset(v);
    n.preset_name = v.is_string() ? v.get<std::string>() : n.preset.name;
    rebuild = true;
  }
  Preset& p = n.preset;
  auto has = [&](const char* k) { return settings.contains(k); };
  if (has("optimizer")) {
    const std::string type = choice_setting(settings.at("optimizer"), "optimizer", {"adam", "sgd"});
    rebuild |= type != p.optimizer.type;
    p.optimizer.type = type;
  }
  if (has("lr")) p.optimizer.lr = float(number_setting(settings.at("lr"), "lr", 1e-6, 10, false));
  if (has("batch")) p.training.batch_size = size_t(number_setting(settings.at("batch"), "batch", 1, 4096, true));
  if (has("epochs")) p.training.epochs = size_t(number_setting(settings.at("epochs"), "epochs", 1, 1000, true));
  if (has("beta")) p.loss.beta = float(number_setting(settings.at("beta"), "beta", 0, 1000, false));
  if (has("l1")) p.loss.l1 = float(number_setting(settings.at("l1"), "l1", 0, 100, false));
  if (has("noise")) {
    const float std = float(number_setting(settings.at("noise"), "noise", 0, 10, false));
    p.corruption.type = std > 0 ? "gaussian" : "none";
    p.corruption.std = std;
  }
  if (has("corruption"))
    p.corruption.type = choice_setting(settings.at("corruption"), "corruption",
                                       {"none", "gaussian", "dropout", "salt_pepper", "occlusion", "downsample"});
  if (has("target"))
    p.corruption.corrupted_target = choice_setting(settings.at("target"), "target", {"clean", "corrupted"}) == "corrupted";
  if (has("seed")) {
    const uint64_t seed = uint64_t(number_setting(settings.at("seed"), "seed", 0, 4294967295.0, true));
    rebuild |= seed != n.seed;
    n.seed = seed;
  }
  if (has("holdout")) {
    const int holdout = int(number_setting(settings.at("holdout"), "holdout", -1, 9, true));
    rebuild |= holdout != n.holdout;
    n.holdout = holdout;
  }
  if (has("anomaly")) n.anomaly = choice_setting(settings.at("anomaly"), "anomaly", {"noise", "digit", "fashion"});
  if (has("panels")) n.panels = panel_list(settings.at("panels"));
  if (has("latent")) choice_setting(settings.at("latent"), "latent", {"pca", "umap"});
  if (n.anomaly == "digit" && n.holdout < 0)
    throw std::runtime_error("anomaly \"digit\" scores the held-out digit: set holdout to a digit (0-9)");
  c = std::move(n);
  return rebuild;
}

Lesson parse_lesson(const json& j, const std::string& source) {
  Lesson l;
  {
    Section s(j, source);
    if (!s.has("id")) s.fail("missing 'id'");
    l.id = s.str("id", "");
    if (!valid_id(l.id)) s.fail("'id' must be 1 to 48 characters of a-z, 0-9 and '-', got \"" + shorten_utf8(l.id) + "\"");
  }
  const std::string where = "lesson '" + l.id + "'";
  Section s(j, where);
  s.has("id");
  if (!s.has("title")) s.fail("missing 'title'");
  l.title = s.str("title", "");
  if (l.title.empty() || l.title.size() > 100) s.fail("'title' must be 1 to 100 characters");
  if (!s.has("section")) s.fail("missing 'section' (the course section it serves, e.g. \"000 · Denoising\")");
  l.section = s.str("section", "");
  const std::string dot = " \xC2\xB7 ";  // " · "
  if (l.section.size() < 3 + dot.size() + 1 || l.section.compare(0, 2, "00") != 0 || l.section[2] < '0' ||
      l.section[2] > '4' || l.section.compare(3, dot.size(), dot) != 0 || l.section.size() > 100)
    s.fail("'section' must be a course text's number (000 to 004), \" · \" and a heading of that text, e.g. "
           "\"000 · Denoising\", got \"" + shorten_utf8(l.section) + "\"");
  l.summary = s.str("summary", "");
  if (l.summary.size() > 600) s.fail("'summary' must be at most 600 characters");
  if (!s.has("start")) s.fail("missing 'start' (the preset and settings the lesson begins with)");
  l.start = parse_config(s.sub("start"), where + ": start", nullptr);
  if (s.has("twin")) {
    l.twin = parse_config(s.sub("twin"), where + ": twin", &l.start);
    if (l.start.label.empty()) s.fail("start: a lesson with a twin names both runs: add 'label'");
    if (l.twin->label.empty()) s.fail("twin: missing 'label' (e.g. \"noisy target\")");
    if (l.twin->label == l.start.label) s.fail("twin: 'label' must differ from the start's");
  }
  if (!s.has("steps")) s.fail("missing 'steps'");
  const json& steps = s.sub("steps");
  if (!steps.is_array() || steps.empty() || steps.size() > kMaxSteps)
    s.fail("'steps' must be a list of 1 to " + std::to_string(kMaxSteps) + " steps");
  std::vector<LessonConfig> configs = {l.start};
  if (l.twin) configs.push_back(*l.twin);
  for (size_t i = 0; i < steps.size(); ++i)
    l.steps.push_back(parse_step(steps[i], where + ": step " + std::to_string(i + 1), configs, l.twin.has_value()));
  s.done();
  l.json = j;
  return l;
}

bool Lesson::names_value(const std::string& name) const {
  for (const LessonStep& s : steps)
    for (const std::string& n : s.goal.names())
      if (n == name || n == "a." + name || n == "b." + name) return true;
  return false;
}

bool Lesson::uses_fashion() const {
  if (names_value("foreignError") || names_value("foreignTestError") || start.anomaly == "fashion" || (twin && twin->anomaly == "fashion")) return true;
  for (const LessonStep& s : steps)
    if (s.action && s.action->settings.contains("anomaly") && s.action->settings.at("anomaly") == "fashion") return true;
  return false;
}

Lesson parse_lesson_text(const std::string& text, const std::string& source) {
  return parse_lesson(parse_json_text(text, source, kMaxLessonDepth), source);
}

Lesson load_lesson(const std::string& id_or_path) {
  const bool is_path = id_or_path.find('/') != std::string::npos ||
                       (id_or_path.size() > 5 && id_or_path.substr(id_or_path.size() - 5) == ".json");
  const std::string path = is_path ? id_or_path : assets_dir() + "/lessons/" + id_or_path + ".json";
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception&) {
    if (is_path) throw;
    throw std::runtime_error("unknown lesson '" + shorten_utf8(id_or_path) + "' (known: " + join(list_lessons()) + ")");
  }
  Lesson l = parse_lesson_text(std::string(bytes.begin(), bytes.end()), path);
  if (!is_path && l.id != id_or_path)
    throw std::runtime_error(path + ": 'id' is \"" + l.id + "\"; a lesson's id must be its file name");
  return l;
}

std::vector<std::string> list_lessons() {
  std::vector<std::string> ids;
  const std::string dir = assets_dir() + "/lessons";
  DIR* d = opendir(dir.c_str());
  if (!d) throw std::runtime_error(dir + ": cannot open the lessons folder (set AEP_ASSETS to the assets folder)");
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") ids.push_back(n.substr(0, n.size() - 5));
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

// ---- measuring a run ------------------------------------------------------------------------------------------------

namespace {

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

void RunMeasure::begin(const Run& run, const Dataset& test, const MeasureOptions& o) {
  const Preset& p = run.preset;  // the corruption as set now (the model keeps the one it was built with)
  const bool same_model = model_ && p.normalize == preset_.normalize && p.encoder == preset_.encoder &&
                          p.decoder == preset_.decoder && p.mu == preset_.mu && p.logvar == preset_.logvar;
  preset_ = p;
  if (!same_model) {
    trainer_.reset();
    model_ = std::make_unique<Model>(p);
    trainer_ = std::make_unique<Trainer>(*model_, 0);
    // Measuring never steps: no optimizer state (Adam's is twice the weights; a beta sweep measures four snapshots).
    std::vector<float>().swap(trainer_->optimizer.exp_avg);
    std::vector<float>().swap(trainer_->optimizer.exp_avg_sq);
  }
  model_->set_loss(p.loss);
  std::copy(run.model->values.begin(), run.model->values.end(), model_->values.begin());
  std::copy(run.model->buffer_values.begin(), run.model->buffer_values.end(), model_->buffer_values.begin());
  test_ = &test;
  options_ = o;
  pca_error_ = o.pca_error ? *o.pca_error : NAN;
  options_.pca_error = nullptr;
  snap_step_ = run.steps;
  total_ = std::min(o.test_images, test.count);
  stage_ = 0;
  pos_ = 0;
  noise_ = Rng(0x5eed);  // the corruption of the test inputs: the same every time, as evaluate() and the app
  sum_ = LossTerms();
  code_abs_ = 0;
  code_count_ = 0;
  errors_.assign(total_, 0.f);
  codes_.assign(model_->code_size() <= 4096 ? total_ * model_->code_size() : 0, 0.f);
  clean_errors_.assign(preset_.corruption.type != "none" ? total_ : 0, 0.f);
  noise_errors_.assign(o.digit_anomaly || o.foreign_anomaly ? 0 : 500, 0.f);
  checkerboard_.assign(total_, 0.f);
  input_errors_.assign(total_, 0.f);
  mu_.clear(), logvar_.clear();
  jacobian_total_ = o.jacobian ? std::min(kJacobianImages, test.count) : 0;
  foreign_errors_.assign(o.foreign ? std::min(o.test_images, o.foreign->count) : 0, 0.f);
  foreign_test_errors_.assign(p.corruption.type != "none" ? foreign_errors_.size() : 0, 0.f);
  foreign_noise_ = Rng(kForeignNoiseSeed);
  interp_pairs_ = o.interpolation ? interpolation_pairs(total_) : 0;
  ink_reference_.clear();
  pixel_mid_.assign(interp_pairs_, 0.f);
  latent_mid_.assign(interp_pairs_, 0.f);
  jacobian_sum_ = 0;
  base_ = json::object();
  base_["step"] = run.steps;
  base_["epoch"] = run.epoch();
  base_["trainLoss"] = run.curve.train.empty() ? json(nullptr) : finite_or_null(run.curve.train.back());
  base_["lr"] = run.trainer->optimizer.config.lr;
  base_["seed"] = run.seed;
  active_ = true;
}

bool RunMeasure::step(double budget_ms) {
  if (!active_) return true;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  Model& m = *model_;
  const Preset& p = preset_;
  // Chunks of at most 100 images, the same in the page and headless, so both sum in the same order.
  const size_t B = std::max<size_t>(1, std::min<size_t>(100, m.max_batch()));
  std::vector<uint32_t> idx(B);
  do {
    if (stage_ == 0 && pos_ < total_) {
      const size_t n = std::min(B, total_ - pos_);
      std::iota(idx.begin(), idx.begin() + n, uint32_t(pos_));
      make_batch(*test_, idx.data(), n, p, noise_, input_, target_);
      const LossTerms L = trainer_->forward_backward(input_, target_, false, false);
      sum_.total += L.total * n, sum_.reconstruction += L.reconstruction * n, sum_.kl += L.kl * n;
      sum_.penalty += L.penalty * n;
      const Tensor& code = m.is_vae() ? m.mu.output() : m.encoder.output();
      for (float v : code) code_abs_ += std::fabs(double(v));
      code_count_ += code.size();
      if (!codes_.empty()) std::copy(code.begin(), code.end(), codes_.begin() + pos_ * m.code_size());
      fill_batch(*test_, idx.data(), n, p.normalize, clean_);
      per_image_mse(m.decoder.output().data(), clean_.data(), n, errors_.data() + pos_);
      checkerboard_index(m.decoder.output().data(), n, checkerboard_.data() + pos_);
      per_image_mse(input_.data(), clean_.data(), n, input_errors_.data() + pos_);
      if (m.is_vae()) {
        mu_.insert(mu_.end(), m.mu.output().begin(), m.mu.output().end());
        logvar_.insert(logvar_.end(), m.logvar.output().begin(), m.logvar.output().end());
      }
      if (!clean_errors_.empty()) {
        const Tensor out = m.reconstruct(clean_);
        per_image_mse(out.data(), clean_.data(), n, clean_errors_.data() + pos_);
      }
      pos_ += n;
      if (pos_ >= total_) stage_ = 1, pos_ = 0;
    } else if (stage_ == 0) {
      stage_ = 1, pos_ = 0;
    } else if (stage_ == 1 && pos_ < noise_errors_.size()) {
      // 500 images of uniform noise in the input range, drawn as the app draws them (Rng(99 + first index)).
      const float lo = range_min(p.normalize), hi = range_max(p.normalize);
      const size_t n = std::min<size_t>(64, noise_errors_.size() - pos_);
      Tensor x(m.input_shape(n));
      Rng r(99 + pos_);
      for (float& px : x) px = lo + (hi - lo) * r.uniform();
      const Tensor y = m.reconstruct(x);
      per_image_mse(y.data(), x.data(), n, noise_errors_.data() + pos_);
      pos_ += n;
    } else if (stage_ < 3 && (stage_ == 1 || pos_ >= jacobian_total_)) {
      ++stage_, pos_ = 0;  // 1 -> 2: the Jacobian; 2 -> 3: the foreign images
    } else if (stage_ == 2) {  // jacobianNorm: clean test images, in chunks of 100
      const size_t n = std::min<size_t>(100, jacobian_total_ - pos_);
      std::vector<uint32_t> jidx(n);
      std::iota(jidx.begin(), jidx.end(), uint32_t(pos_));
      fill_batch(*test_, jidx.data(), n, p.normalize, clean_);
      for (double v : jacobian_frobenius_sq(m, clean_)) jacobian_sum_ += v;
      pos_ += n;
    } else if (stage_ == 3 && pos_ < foreign_errors_.size()) {  // foreignError: clean images of the other dataset
      const size_t n = std::min(B, foreign_errors_.size() - pos_);
      std::iota(idx.begin(), idx.begin() + n, uint32_t(pos_));
      fill_batch(*options_.foreign, idx.data(), n, p.normalize, clean_);
      const Tensor out = m.reconstruct(clean_);
      per_image_mse(out.data(), clean_.data(), n, foreign_errors_.data() + pos_);
      if (!foreign_test_errors_.empty()) {  // foreignTestError: the same images corrupted as in training
        make_batch(*options_.foreign, idx.data(), n, p, foreign_noise_, input_, target_);
        const Tensor denoised = m.reconstruct(input_);
        per_image_mse(denoised.data(), clean_.data(), n, foreign_test_errors_.data() + pos_);
      }
      pos_ += n;
    } else if (stage_ == 3) {
      stage_ = 4, pos_ = 0;  // 3 -> 4: the interpolation midpoints
    } else if (pos_ < interp_pairs_) {
      measure_midpoints(std::min(B, interp_pairs_ - pos_));
    } else {
      finish();
      return true;
    }
  } while (elapsed_ms() < budget_ms);
  return false;
}

// Pairs pos_ to pos_ + n - 1 of the interpolation values: test images k and P + k (clean), their pixel midpoint and
// the decoded midpoint of their codes (a VAE's mu), each scored by the distance of its ink to the nearest test digit
// from 2P on.
void RunMeasure::measure_midpoints(size_t n) {
  Model& m = *model_;
  const Normalization norm = preset_.normalize;
  const float half = (range_min(norm) + range_max(norm)) / 2;  // ink: pixels at more than half intensity
  const size_t pairs = interp_pairs_, d = 28 * 28;
  if (ink_reference_.empty()) {
    const size_t refs = total_ - 2 * pairs;
    ink_reference_.resize(refs * kInkWords);
    std::vector<uint32_t> idx(refs);
    std::iota(idx.begin(), idx.end(), uint32_t(2 * pairs));
    for (size_t r = 0; r < refs; r += 100) {
      const size_t k = std::min<size_t>(100, refs - r);
      fill_batch(*test_, idx.data() + r, k, norm, clean_);
      ink_masks(clean_.data(), k, half, ink_reference_.data() + r * kInkWords);
    }
  }
  std::vector<uint32_t> first(n), second(n);
  std::iota(first.begin(), first.end(), uint32_t(pos_));
  std::iota(second.begin(), second.end(), uint32_t(pairs + pos_));
  Tensor a, b;
  fill_batch(*test_, first.data(), n, norm, a);
  fill_batch(*test_, second.data(), n, norm, b);
  const Tensor za = m.encode(a), zb = m.encode(b);
  Tensor z(m.code_shape(n));
  for (size_t i = 0; i < z.size(); ++i) z.data()[i] = 0.5f * za.data()[i] + 0.5f * zb.data()[i];
  const Tensor decoded = m.decode(z);
  std::vector<float> blend(n * d);
  for (size_t i = 0; i < n * d; ++i) blend[i] = 0.5f * a.data()[i] + 0.5f * b.data()[i];
  std::vector<uint64_t> masks(n * kInkWords);
  const size_t refs = ink_reference_.size() / kInkWords;
  ink_masks(blend.data(), n, half, masks.data());
  nearest_ink_distance(masks.data(), n, ink_reference_.data(), refs, pixel_mid_.data() + pos_);
  ink_masks(decoded.data(), n, half, masks.data());
  nearest_ink_distance(masks.data(), n, ink_reference_.data(), refs, latent_mid_.data() + pos_);
  pos_ += n;
}

void RunMeasure::finish() {
  active_ = false;
  const Model& m = *model_;
  const Preset& p = preset_;
  const Dataset& test = *test_;
  const size_t total = total_;
  const std::vector<float>& anomaly_errors = clean_errors_.empty() ? errors_ : clean_errors_;
  json v = base_;
  const double nt = double(total);
  v["testLoss"] = total ? finite_or_null(sum_.total / nt) : json(nullptr);
  v["testReconstruction"] = total ? finite_or_null(sum_.reconstruction / nt) : json(nullptr);
  v["testKl"] = total ? finite_or_null(sum_.kl / nt) : json(nullptr);
  v["testPenalty"] = total ? finite_or_null(sum_.penalty / nt) : json(nullptr);
  v["testError"] = total ? finite_or_null(std::accumulate(errors_.begin(), errors_.end(), 0.0) / nt) : json(nullptr);
  v["codeMeanAbs"] = code_count_ ? finite_or_null(code_abs_ / double(code_count_)) : json(nullptr);

  // The held-out digit against the rest, from clean inputs as the anomaly panel scores them.
  std::vector<float> held, other;
  if (options_.holdout >= 0 && !test.labels.empty())
    for (size_t i = 0; i < total; ++i) (test.labels[i] == options_.holdout ? held : other).push_back(anomaly_errors[i]);
  auto mean = [](const std::vector<float>& e) {
    return e.empty() ? json(nullptr) : finite_or_null(std::accumulate(e.begin(), e.end(), 0.0) / double(e.size()));
  };
  v["heldOutError"] = mean(held);
  v["otherError"] = mean(other);
  if (options_.digit_anomaly)
    v["anomalyAuc"] = held.empty() || other.empty() ? json(nullptr) : finite_or_null(roc_auc(held, other));
  else if (options_.foreign_anomaly)
    v["anomalyAuc"] = foreign_errors_.empty() || !total ? json(nullptr) : finite_or_null(roc_auc(foreign_errors_, anomaly_errors));
  else
    v["anomalyAuc"] = total ? finite_or_null(roc_auc(noise_errors_, anomaly_errors)) : json(nullptr);
  v["pcaError"] = finite_or_null(pca_error_);
  v["inputError"] = total ? finite_or_null(std::accumulate(input_errors_.begin(), input_errors_.end(), 0.0) / nt)
                          : json(nullptr);
  v["checkerboard"] = total ? finite_or_null(std::accumulate(checkerboard_.begin(), checkerboard_.end(), 0.0) / nt)
                            : json(nullptr);
  v["jacobianNorm"] = jacobian_total_ ? finite_or_null(jacobian_sum_ / double(jacobian_total_)) : json(nullptr);
  posterior_ = m.is_vae() && total ? posterior_stats(mu_.data(), logvar_.data(), total, m.code_size()) : PosteriorStats();
  v["activeUnits"] = posterior_.digits ? json(posterior_.active_units) : json(nullptr);
  v["foreignError"] = foreign_errors_.empty() ? json(nullptr) : mean(foreign_errors_);
  v["foreignTestError"] = foreign_test_errors_.empty() ? v["foreignError"] : mean(foreign_test_errors_);
  v["pixelMidpointDistance"] = interp_pairs_ ? mean(pixel_mid_) : json(nullptr);
  v["latentMidpointDistance"] = interp_pairs_ ? mean(latent_mid_) : json(nullptr);
  v["codeSize"] = m.code_size();
  v["parameters"] = m.parameter_count();
  v["batch"] = p.training.batch_size;
  v["beta"] = p.loss.beta;
  v["l1"] = p.loss.l1;
  v["noise"] = p.corruption.type == "gaussian" ? p.corruption.std : 0.f;
  v["holdout"] = options_.holdout;
  values_ = std::move(v);
}

json measure_run(const Run& run, const Dataset& test, const MeasureOptions& o) {
  RunMeasure m;
  m.begin(run, test, o);
  while (!m.step(1e9)) {
  }
  return m.values();
}

double pca_test_error(const Dataset& train, const Dataset& test, Normalization norm, size_t k, size_t test_images) {
  const Pca pca = fit_pca(train, norm, std::min<size_t>(k, 784), 10000);
  return pca_reconstruction_mse(pca, test, norm, test_images);
}

// ---- the runner ------------------------------------------------------------------------------------------------------

LessonRunner::LessonRunner(const Lesson& lesson, const Dataset& train, const Dataset& test, size_t test_images,
                           const Dataset* foreign)
    : lesson_(lesson), train_(train), test_(test), test_images_(test_images), foreign_(foreign) {
  wants_pca_ = lesson_.names_value("pcaError");
  configs_.push_back(lesson_.start);
  if (lesson_.twin) configs_.push_back(*lesson_.twin);
  build();
  measure();
}

void LessonRunner::build() {
  runs_.clear();
  message_.clear();
  for (const LessonConfig& c : configs_) {
    auto r = std::make_unique<Run>(c.preset, c.seed);
    r->set_data(train_, c.holdout);
    r->curve.label = c.label;
    runs_.push_back(std::move(r));
  }
}

void LessonRunner::reset() {
  build();
  measure();
}

void LessonRunner::apply_settings(const json& settings) {
  set(settings);
  measure();
}

void LessonRunner::set(const json& settings) {
  std::vector<LessonConfig> next = configs_;
  bool rebuild = false;
  for (LessonConfig& c : next) rebuild |= apply_lesson_settings(settings, c);
  for (LessonConfig& c : next) c.preset.training.batch_size = next[0].preset.training.batch_size;  // lockstep
  configs_ = std::move(next);
  if (rebuild) {
    build();
  } else {
    for (size_t i = 0; i < runs_.size(); ++i) {
      Run& r = *runs_[i];
      const Preset& p = configs_[i].preset;
      r.model->set_loss(p.loss);
      r.trainer->optimizer.config.lr = p.optimizer.lr;
      r.trainer->optimizer.config.weight_decay = p.optimizer.weight_decay;
      r.set_batch_size(p.training.batch_size);
      r.preset = p;
    }
  }
}

void LessonRunner::train(size_t n) {
  steps(n);
  measure();
}

void LessonRunner::steps(size_t n) {
  std::vector<Run*> runs;
  for (auto& r : runs_) runs.push_back(r.get());
  for (size_t i = 0; i < n; ++i) {
    if (runs.size() == 1) {
      try {
        runs[0]->step();
      } catch (const DivergenceError& e) {
        message_ = e.what();
        break;
      }
      continue;
    }
    const std::vector<LockstepStep> out = step_lockstep(runs);
    for (size_t k = 0; k < out.size(); ++k)
      if (!out[k].error.empty()) message_ = configs_[k].label + ": " + out[k].error;
  }
}

void LessonRunner::apply_action(size_t step) {
  const std::optional<LessonAction>& a = lesson_.steps.at(step).action;
  if (!a) return;
  if (!a->settings.empty()) set(a->settings);
  if (a->reset) build();
  steps(a->train);
  measure();
}

void LessonRunner::measure() {
  std::vector<json> values;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const LessonConfig& c = configs_[i];
    MeasureOptions o = lesson_measure_options(lesson_, c, test_images_, foreign_);
    double pca = NAN;
    if (wants_pca_) {
      pca = pca_errors_.get(train_, test_, c.preset.normalize, runs_[i]->model->code_size(), test_images_);
      o.pca_error = &pca;
    }
    values.push_back(measure_run(*runs_[i], test_, o));
  }
  status_ = lesson_values(values, configs_, message_);
}

MeasureOptions lesson_measure_options(const Lesson& l, const LessonConfig& c, size_t test_images, const Dataset* foreign) {
  MeasureOptions o;
  o.test_images = test_images;
  o.holdout = c.holdout;
  o.digit_anomaly = c.anomaly == "digit";
  o.foreign_anomaly = c.anomaly == "fashion";
  o.jacobian = l.names_value("jacobianNorm");
  o.foreign = foreign;
  o.interpolation = l.names_value("pixelMidpointDistance") || l.names_value("latentMidpointDistance");
  return o;
}

json lesson_values(const std::vector<json>& values, const std::vector<LessonConfig>& configs, const std::string& message) {
  json st = values.at(0);
  st["a"] = values[0];
  if (values.size() > 1) st["b"] = values[1];
  json labels = json::array();
  for (const LessonConfig& c : configs) labels.push_back(c.label);
  st["labels"] = labels;
  st["message"] = message;
  return st;
}

double PcaErrors::get(const Dataset& train, const Dataset& test, Normalization norm, size_t k, size_t test_images) {
  const size_t key = k * 2 + (norm == Normalization::MinusOneOne ? 1 : 0);
  for (const auto& e : cache_)
    if (e.first == key) return e.second;
  cache_.push_back({key, pca_test_error(train, test, norm, k, test_images)});
  return cache_.back().second;
}

}  // namespace aep
