// Lessons in the playground: the picker, the lesson panel with its steps and live goal, the twin run trained in
// lockstep beside the app's own, the goal values measured in slices (core RunMeasure, as `aep lesson` measures them),
// and the lesson's commands and status for the JS API.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "app/app_state.hpp"
#include "core/weights.hpp"

namespace aep {

namespace {

constexpr size_t kLessonTestImages = 1000;  // as LessonRunner: the goals' thresholds are set on these

const char* progress_name(int p) { return p == 1 ? "reached" : p == 2 ? "skipped" : "open"; }

// "000 · Denoising" -> "000"
std::string course_text(const std::string& section) { return section.substr(0, std::min<size_t>(3, section.size())); }

// An action's settings to every run's configuration (checked when the lesson was read); true when the runs must be
// built again.
bool apply_to_configs(const json& settings, std::vector<LessonConfig>& configs) {
  bool rebuild = false;
  for (LessonConfig& c : configs) rebuild |= apply_lesson_settings(settings, c);
  for (LessonConfig& c : configs) c.preset.training.batch_size = configs[0].preset.training.batch_size;  // lockstep
  return rebuild;
}

}  // namespace

void App::load_lesson_library() {
  LessonPlay& L = s_->lesson;
  std::vector<std::string> ids;
  try {
    ids = list_lessons();
  } catch (const std::exception& e) {
    message = e.what();
  }
  for (const std::string& id : ids) {
    try {
      L.library.push_back(load_lesson(id));
    } catch (const std::exception& e) {
      message = e.what();
    }
  }
  std::stable_sort(L.library.begin(), L.library.end(),
                   [](const Lesson& a, const Lesson& b) { return course_text(a.section) < course_text(b.section); });
}

// ---- following a lesson ------------------------------------------------------------------------------------------------

void App::start_lesson(const Lesson& l, size_t step) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  { Model probe(l.start.preset); }  // both models must build before anything changes
  if (l.twin) Model probe(l.twin->preset);
  L.lesson = l;
  L.active = true;
  L.custom = false;  // lessonJson marks a course page's own
  L.comparing = false;
  L.picker = false;
  L.configs = {l.start};
  if (l.twin) L.configs.push_back(*l.twin);
  L.progress.assign(l.steps.size(), 0);
  L.reached_value.assign(l.steps.size(), NAN);
  L.events = json::array();
  L.applied.clear();
  L.pca_errors = PcaErrors();
  L.step = 0;
  L.twin.reset();
  lesson_use_configs(true);
  if (!l.start.panels.empty()) command({{"panels", l.start.panels}});
  push_lesson_event({{"event", "start"}, {"steps", l.steps.size()}});
  lesson_goto(std::min(step, l.steps.size() - 1));  // the steps before count as skipped
  message = "Lesson: " + l.title;
}

void App::leave_lesson() {
  LessonPlay& L = s_->lesson;
  if (!L.active) return;
  L.active = false;
  L.twin.reset();
  L.action_left = 0;
  L.measuring = false;
  for (RunMeasure& m : L.measure) m.cancel();
  L.values = nullptr;
  for (bool& b : show_panel) b = true;
  message = "Left the lesson: the playground is yours.";
}

// The lesson's configurations into the app: the first one is the app's own run (every panel shows it), the second the
// twin. rebuild: both start over; else only the settings that may change while training (learning rate, loss terms,
// corruption, batch size).
void App::lesson_use_configs(bool rebuild) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  const LessonConfig& c = L.configs[0];
  s.anomaly.mode = c.anomaly == "digit" ? 1 : c.anomaly == "fashion" ? 2 : 0;  // the Anomaly panel scores what the goal does
  s.running = false;
  L.action_left = 0;
  if (rebuild) {
    s.seed = c.seed;
    s.held_out = c.holdout;
    std::string err;
    if (!select_preset(c.preset, &err)) throw std::runtime_error(err);  // resets the run, and the twin with it
    for (const Preset& q : s.presets)
      if (q.name == c.preset_name) s.preset_index = int(&q - s.presets.data());
  } else {
    s.preset = c.preset;
    apply_hyper_parameters();  // and the twin's (sync_twin)
  }
  for (RunMeasure& m : L.measure) m.cancel();
  L.measuring = false;
  L.measured_step = size_t(-1);
  s.views_dirty = true;
}

// The twin starts over from its configuration, with the app run's seed, data and batch size (lockstep).
void App::rebuild_twin() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  L.twin.reset();
  L.twin_error.clear();
  L.twin_recon = Picture();
  for (RunMeasure& m : L.measure) m.cancel();
  L.measuring = false;
  L.measured_step = size_t(-1);
  if (!(L.active || L.comparing) || L.configs.size() < 2) return;
  if (L.comparing) L.configs[0].label = s.preset.name;  // the learner may have picked another model for a
  Preset p = L.configs[1].preset;
  p.training.batch_size = s.preset.training.batch_size;
  L.twin = std::make_unique<Run>(p, s.seed);
  L.twin->curve.label = L.configs[1].label;
  if (has_data()) L.twin->set_data(train_, s.held_out, true, data_complete_);
  runs_changed();
}

// The twin follows the app run's batch size; its other settings are the lesson's.
void App::sync_twin() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (!L.twin) return;
  Preset p = L.configs[1].preset;
  p.training.batch_size = s.run->sampler ? s.run->sampler->batch_size() : s.preset.training.batch_size;
  L.twin->apply_settings(p);
}

// Whether the twin can take the app run's next batch: the conditions of step_lockstep. Loading weights, a new seed or
// held-out digit break it until the lesson's settings are put back.
bool App::twin_in_lockstep() const {
  const State& s = *s_;
  const Run* t = s.lesson.twin.get();
  return t && hosted_in_lockstep(1, *t);
}

// Whether the learner changed what the lesson set up (model, seed, data, hyper-parameters).
bool App::lesson_settings_changed(std::string* what) const {
  const State& s = *s_;
  const LessonPlay& L = s.lesson;
  if (!L.active) return false;
  const Preset& a = s.preset;
  const Preset& b = L.configs[0].preset;
  std::string w;
  auto note = [&](bool differs, const char* name) {
    if (differs) w += (w.empty() ? "" : ", ") + std::string(name);
  };
  note(a.encoder != b.encoder || a.decoder != b.decoder || a.mu != b.mu || a.logvar != b.logvar ||
           a.normalize != b.normalize, "the model");
  note(s.seed != L.configs[0].seed, "the seed");
  note(s.held_out != L.configs[0].holdout, "the held-out digit");
  note(a.optimizer.type != b.optimizer.type || a.optimizer.lr != b.optimizer.lr, "the optimizer");
  note(a.training.batch_size != b.training.batch_size, "the batch size");
  note(a.loss.beta != b.loss.beta || a.loss.l1 != b.loss.l1 || a.loss.reconstruction != b.loss.reconstruction || a.loss.reduction != b.loss.reduction, "the loss");
  note(a.corruption.type != b.corruption.type || a.corruption.std != b.corruption.std ||
           a.corruption.corrupted_target != b.corruption.corrupted_target, "the corruption");
  note(L.twin && !twin_in_lockstep(), "the twin's batches");
  if (what) *what = w;
  return !w.empty();
}

void App::lesson_action() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (!L.active || !has_data()) return;
  const std::optional<LessonAction>& a = L.lesson.steps[L.step].action;
  if (!a) return;
  if (!a->settings.empty()) {
    L.applied.push_back(L.step);
    lesson_use_configs(apply_to_configs(a->settings, L.configs));
  }
  if (a->reset) lesson_use_configs(true);
  if (a->train > 0) {
    L.action_left = a->train;
    s.running = true;
  }
}

// Opens step k; the steps passed over without reaching their goal count as skipped.
void App::lesson_goto(size_t k) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (!L.active || k >= L.lesson.steps.size()) return;
  for (size_t i = L.step; i < k; ++i)
    if (L.progress[i] == 0) {
      L.progress[i] = 2;
      push_lesson_event({{"event", "skip"}, {"step", i + 1}});
    }
  L.step = k;  // an action still training goes on to its end: the next step's button waits for it
  const LessonStep& st = L.lesson.steps[k];
  if (!st.look.empty()) {
    std::string list;
    for (const std::string& p : st.look) list += (list.empty() ? "" : ",") + p;
    command({{"panels", list}});
  }
  L.result = L.values.is_object() ? st.goal.evaluate(L.values) : Goal::Result();
  if (L.values.is_object() && L.result.holds) lesson_measured();  // already there (the learner trained ahead)
}

// Events for the page to pass on to its parent: numbered across lessons, so the page posts each once.
void App::push_lesson_event(json ev) {
  LessonPlay& L = s_->lesson;
  ev["type"] = "aep-event";
  ev["lesson"] = L.lesson.id;
  ev["seq"] = L.next_event++;
  L.events.push_back(std::move(ev));
}

// ---- measuring ---------------------------------------------------------------------------------------------------------

// A measurement starts when the runs have moved since the last one, at most once a second while training, and goes on
// a slice per frame on snapshots of the weights.
void App::step_lesson(double budget_ms) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (!(L.active || L.comparing) || !has_data()) return;
  if (!L.measuring) {
    const bool moved = s.run->steps != L.measured_step;
    if (!moved || (s.running && seconds_since(L.measure_start) < 1.0)) return;
    const size_t n = L.twin ? 2 : 1;
    for (size_t i = 0; i < n; ++i) {
      const Run& r = i ? *L.twin : *s.run;
      const LessonConfig& c = L.configs[i];
      if (L.lesson.uses_fashion()) want_fashion();  // the driver loads Fashion-MNIST
      MeasureOptions o = lesson_measure_options(L.lesson, c, kLessonTestImages, s.ood.count ? &s.ood : nullptr);
      if (!i) o.holdout = s.held_out;  // the app run's, which the learner may have changed
      double pca = NAN;
      if (L.lesson.names_value("pcaError")) {
        pca = L.pca_errors.get(train_, test_, r.preset.normalize, r.model->code_size(), kLessonTestImages);
        o.pca_error = &pca;
      }
      L.measure[i].begin(r, test_, o);
    }
    L.measuring = true;
    L.measure_in_action = L.action_left > 0;
    L.measure_start = Clock::now();
    return;
  }
  const auto t0 = Clock::now();
  bool done = true;
  for (size_t i = 0; i < (L.twin ? 2u : 1u); ++i) {
    const double left = budget_ms - seconds_since(t0) * 1000;
    if (L.measure[i].active()) done &= L.measure[i].step(std::max(0.0, left));
  }
  if (!done) return;
  L.measuring = false;
  L.measured_step = L.measure[0].snapshot_step();
  std::vector<json> values{L.measure[0].values()};
  if (L.twin) values.push_back(L.measure[1].values());
  L.values = lesson_values(values, L.configs, L.twin_error);
  if (L.twin && values[1].contains("testLoss") && values[1]["testLoss"].is_number()) {  // the twin's test curve
    LossCurve& c = L.twin->curve;
    if (c.test_step.empty() || c.test_step.back() != float(L.measure[1].snapshot_step())) {
      c.test_step.push_back(float(L.measure[1].snapshot_step()));
      c.test.push_back(values[1]["testLoss"].get<float>());
    }
  }
  paint_twin_views();
  if (L.active) lesson_measured();
}

// A new measurement: the open step's goal on it; reaching it is recorded once and told to the page.
void App::lesson_measured() {
  LessonPlay& L = s_->lesson;
  const LessonStep& st = L.lesson.steps[L.step];
  L.result = st.goal.evaluate(L.values);
  // While a step's action trains, the value is shown as it goes; the goal counts once the action is over (as
  // `aep lesson` checks it), or at any time when the learner trains on their own.
  if (!L.result.holds || L.progress[L.step] != 0 || L.measure_in_action) return;
  L.progress[L.step] = 1;
  L.reached_value[L.step] = L.result.value;
  const bool all = std::all_of(L.progress.begin(), L.progress.end(), [](int p) { return p == 1; });
  push_lesson_event({{"event", "goal"}, {"step", L.step + 1}, {"goal", st.goal.text()},
                     {"value", std::isfinite(L.result.value) ? json(L.result.value) : json(nullptr)}, {"done", all}});
}

// The twin's reconstructions of the Reconstructions panel's digits, from the measurement's snapshot, and its latent
// space from the measurement's codes.
void App::paint_twin_views() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  Model* m = L.twin ? L.measure[1].snapshot() : nullptr;
  if (!m) return;
  const Preset& p = L.twin->preset;
  const float lo = range_min(p.normalize), hi = range_max(p.normalize);
  std::vector<uint32_t> idx(kReconCount);
  for (int i = 0; i < kReconCount; ++i) idx[i] = uint32_t(i * 37 % test_.count);
  Rng noise(0x5eed);
  Tensor in, clean;
  make_batch(test_, idx.data(), kReconCount, p, noise, in, clean);
  fill_batch(test_, idx.data(), kReconCount, p.normalize, clean);  // against the clean digit, whatever the target
  const Tensor out = m->reconstruct(in);
  per_image_mse(clean.data(), out.data(), kReconCount, L.twin_recon_err);
  L.twin_recon.resize(kReconCount * 30 + 2, 2 * 30 + 2);
  for (int i = 0; i < kReconCount; ++i) {
    L.twin_recon.put_digit(2 + i * 30, 2, in.data() + i * 784, lo, hi);
    L.twin_recon.put_digit(2 + i * 30, 32, out.data() + i * 784, lo, hi);
  }
  paint_foreign_row();
  const std::vector<float>& codes = L.measure[1].codes();
  L.twin_code_dim = m->code_size();
  const size_t n = L.twin_code_dim ? codes.size() / L.twin_code_dim : 0;
  if (!n) return L.twin_scatter.resize(0, 0);
  const std::vector<float> xy = codes_2d(codes.data(), n, L.twin_code_dim);
  float x0, x1, y0, y1;
  plot_range(xy, n, x0, x1, y0, y1);
  const int side = 200;
  L.twin_scatter.resize(side, side);
  for (size_t i = 0; i < L.twin_scatter.rgba.size(); i += 4)
    L.twin_scatter.rgba[i] = L.twin_scatter.rgba[i + 1] = 20, L.twin_scatter.rgba[i + 2] = 24;
  for (size_t i = 0; i < n; ++i) {
    const float px = (xy[2 * i] - x0) / (x1 - x0) * side, py = (1 - (xy[2 * i + 1] - y0) / (y1 - y0)) * side;
    if (std::isfinite(px) && std::isfinite(py))
      L.twin_scatter.put_dot(px, py, 1.6f, kDigitColors[test_.labels.empty() ? 0 : test_.labels[i] % 10]);
  }
}

// The first Fashion-MNIST images as RunMeasure corrupts them for foreignTestError (the same noise draws: images 0..7
// of its first chunk), over both runs' outputs; their errors are the first of the 1000 behind the goal's value.
void App::paint_foreign_row() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  L.foreign_count = 0;
  Model* m[2] = {L.measure[0].snapshot(), L.measure[1].snapshot()};
  if (!L.twin || !m[0] || !m[1] || !s.ood.count || !L.lesson.names_value("foreignTestError")) return;
  const Preset& p = m[0]->preset();
  const CorruptionConfig& ca = s.run->preset.corruption;
  const CorruptionConfig& cb = L.twin->preset.corruption;
  if (ca.type == "none" || ca.type != cb.type || ca.std != cb.std) return;  // the runs were measured on other noise
  const int n = int(std::min<size_t>(kReconCount, s.ood.count));
  std::vector<uint32_t> idx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) idx[i] = uint32_t(i);
  Rng noise(kForeignNoiseSeed);
  Tensor in, clean;
  Preset noisy = p;
  noisy.corruption = ca;
  make_batch(s.ood, idx.data(), size_t(n), noisy, noise, in, clean);
  fill_batch(s.ood, idx.data(), size_t(n), p.normalize, clean);
  const float lo = range_min(p.normalize), hi = range_max(p.normalize);
  L.foreign_row.resize(n * 30 + 2, 3 * 30 + 2);
  for (int i = 0; i < n; ++i) L.foreign_row.put_digit(2 + i * 30, 2, in.data() + i * 784, lo, hi);
  for (int r = 0; r < 2; ++r) {
    const Tensor out = m[r]->reconstruct(in);
    per_image_mse(out.data(), clean.data(), size_t(n), L.foreign_err[r]);
    for (int i = 0; i < n; ++i) L.foreign_row.put_digit(2 + i * 30, 32 + r * 30, out.data() + i * 784, lo, hi);
  }
  L.foreign_count = n;
}

// In the Latent panel, beside the app run's: the twin's codes of the measured test digits.
void App::twin_latent_view() {
  LessonPlay& L = s_->lesson;
  if (!L.twin || !L.twin_scatter.w) return;
  ImGui::TextColored(ImVec4(1, 0.55f, 0.75f, 1), "b: %s", L.configs[1].label.c_str());
  ImGui::SameLine();
  ImGui::TextDisabled("%zu test digits, %s (at step %zu)", L.measure[1].codes().size() / std::max<size_t>(1, L.twin_code_dim),
                      L.twin_code_dim == 2 ? "2-d code" : "PCA projection of its code", L.measure[1].snapshot_step());
  L.twin_scatter.show(tex_, 1);
}

// ---- compare with... ------------------------------------------------------------------------------------------------

// A twin outside lessons: the learner's run beside another preset, both from fresh weights with the run's seed,
// batches, held-out digit and batch size, trained in lockstep and shown side by side. An empty name ends it.
void App::compare_with(const std::string& preset_name) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (preset_name.empty()) {
    if (!L.comparing) return;
    L.comparing = false;
    L.twin.reset();
    L.values = nullptr;
    L.measuring = false;
    for (RunMeasure& m : L.measure) m.cancel();
    message = "Comparison ended.";
    return;
  }
  auto it = std::find_if(s.presets.begin(), s.presets.end(), [&](const Preset& q) { return q.name == preset_name; });
  if (it == s.presets.end()) throw std::runtime_error("compare: unknown preset '" + preset_name + "'");
  { Model probe(*it); }  // it must build before anything changes
  if (L.active) leave_lesson();
  LessonConfig a, b;
  a.label = s.preset.name;
  a.preset_name = s.preset.name;
  a.preset = s.preset;
  b.label = it->name + (it->name == s.preset.name ? " (2)" : "");
  b.preset_name = it->name;
  b.preset = *it;
  for (LessonConfig* c : {&a, &b}) c->seed = s.seed, c->holdout = s.held_out;
  L.configs = {a, b};
  L.comparing = true;
  L.values = nullptr;
  reset_training();  // both start over together (lockstep), the twin in rebuild_twin
  message = "Comparing " + a.label + " (a) with " + b.label + " (b): both from fresh weights, on the same batches.";
}

// The Training panel's "compare with..." picker.
void App::compare_picker() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (L.active) return;  // a lesson sets its own twin
  const std::string current = L.comparing ? L.configs[1].preset_name : "nothing";
  ImGui::SetNextItemWidth(180);
  if (ImGui::BeginCombo("compare with", current.c_str())) {
    if (ImGui::Selectable("nothing", !L.comparing)) compare_with("");
    for (const Preset& p : s.presets)
      if (ImGui::Selectable(p.name.c_str(), L.comparing && p.name == current)) {
        try {
          compare_with(p.name);
        } catch (const std::exception& e) {
          message = e.what();
        }
      }
    ImGui::EndCombo();
  }
  help_marker("Trains a second model beside this one, from the same seed on the same batches, starting both over. "
              "Its loss curves are drawn over these (pink), its reconstructions and latent space beside this model's; "
              "its test values are measured on 1000 test digits. Twice the work: training runs at half the speed.");
  if (L.comparing && L.twin && !twin_in_lockstep())
    ImGui::TextColored(ImVec4(1, 0.7f, 0.3f, 1), "b is paused: its batches no longer match a's (Reset starts both over)");
  if (L.comparing && L.values.is_object() && L.values.contains("b")) {
    const json& a = L.values["a"];
    const json& b = L.values["b"];
    auto v = [](const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN; };
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("test loss a %s | b %s, error per pixel a %s | b %s (1000 test digits, step %zu)",
                       loss_text(v(a, "testLoss")).c_str(), loss_text(v(b, "testLoss")).c_str(),
                       loss_text(v(a, "testError")).c_str(), loss_text(v(b, "testError")).c_str(), L.measured_step);
    ImGui::PopStyleColor();
  }
}

// ---- commands and status -------------------------------------------------------------------------------------------

// The lesson keys of App::command: lesson (an id, or "" to leave), lessonJson (a lesson of the course page's own),
// lessonStep (open step K, 1-based), lessonAction (the open step's button), lessonRestore (put the lesson's settings
// back), lessonPicker (show or hide the start screen). Validates into `errors`; applies when `apply`.
json App::lesson_command(const json& cmd, std::vector<std::string>& errors, bool apply) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  std::optional<Lesson> start;
  if (cmd.contains("lesson")) {
    const json& v = cmd.at("lesson");
    if (v.is_null() || v == "" || v == "none") {
      if (apply) leave_lesson();
    } else {
      auto it = v.is_string() ? std::find_if(L.library.begin(), L.library.end(),
                                             [&](const Lesson& l) { return l.id == v.get<std::string>(); })
                              : L.library.end();
      if (it != L.library.end()) {
        start = *it;
      } else {
        std::string ids;
        for (const Lesson& l : L.library) ids += (ids.empty() ? "" : ", ") + l.id;
        errors.push_back("unknown lesson " + v.dump() + " (known: " + ids + ")");
      }
    }
  }
  if (cmd.contains("lessonJson")) {
    const json& v = cmd.at("lessonJson");
    try {
      start = v.is_string() ? parse_lesson_text(v.get<std::string>(), "lessonJson") : parse_lesson(v, "lessonJson");
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }
  long step = -1;
  if (cmd.contains("lessonStep")) {
    const json& v = cmd.at("lessonStep");
    double d = v.is_number() ? v.get<double>() : v.is_string() ? std::strtod(v.get<std::string>().c_str(), nullptr) : NAN;
    const size_t n = start ? start->steps.size() : L.active ? L.lesson.steps.size() : 0;
    if (!n) errors.push_back("lessonStep: no lesson is open");
    else if (!(d >= 1 && d <= double(n) && d == std::floor(d)))
      errors.push_back("lessonStep must be a whole number from 1 to " + std::to_string(n) + ", got " + v.dump());
    else step = long(d) - 1;
  }
  auto flag = [&](const char* key) {
    if (!cmd.contains(key)) return false;
    const json& v = cmd.at(key);
    if (v == true || v == 1 || v == "1" || v == "true") return true;
    if (!(v == false || v == 0 || v == "0" || v == "false")) errors.push_back(std::string(key) + " must be true or false");
    return false;
  };
  const bool action = flag("lessonAction"), restore = flag("lessonRestore");
  if ((action || restore) && !L.active && !start) errors.push_back("no lesson is open");
  if (action && L.active && !start && L.action_left > 0)
    errors.push_back("lessonAction: the last action is still training (" + std::to_string(L.action_left) + " steps to go)");
  if (action && !has_data()) errors.push_back("lessonAction: the MNIST data is not loaded yet");
  int picker = -1;
  if (cmd.contains("lessonPicker")) picker = flag("lessonPicker") ? 1 : 0;
  std::optional<std::string> compare;
  if (cmd.contains("compare")) {
    const json& v = cmd.at("compare");
    const bool known = v.is_string() && std::any_of(s.presets.begin(), s.presets.end(),
                                                    [&](const Preset& q) { return q.name == v.get<std::string>(); });
    if (known || v == "") {
      compare = v.get<std::string>();
    } else {
      std::string names;
      for (const Preset& q : s.presets) names += (names.empty() ? "" : ", ") + q.name;
      errors.push_back("compare must be a preset name to train beside this model (known: " + names +
                       "), or \"\" to end the comparison; got " + v.dump());
    }
  }
  if (!apply || !errors.empty()) return nullptr;
  if (start) {
    try {
      start_lesson(*start, step >= 0 ? size_t(step) : 0);
      L.custom = cmd.contains("lessonJson");
    } catch (const std::exception& e) {
      errors.push_back(e.what());
      return nullptr;
    }
  } else if (step >= 0) {
    lesson_goto(size_t(step));
  }
  if (restore) lesson_use_configs(true);
  if (action) lesson_action();
  if (picker >= 0) L.picker = picker == 1;
  if (compare) compare_with(*compare);
  return nullptr;
}

json App::compare_status() const {
  const LessonPlay& L = s_->lesson;
  if (!L.comparing || !L.twin) return nullptr;
  return {{"a", L.configs[0].label}, {"b", L.configs[1].label}, {"twinStep", L.twin->steps},
          {"error", L.twin_error}, {"measuredStep", L.measured_step == size_t(-1) ? json(nullptr) : json(L.measured_step)},
          {"values", L.values}};
}

json App::lesson_status() const {
  const LessonPlay& L = s_->lesson;
  if (!L.active) return nullptr;
  json steps = json::array();
  for (size_t i = 0; i < L.lesson.steps.size(); ++i)
    steps.push_back({{"goal", L.lesson.steps[i].goal.text()}, {"progress", progress_name(L.progress[i])},
                     {"value", std::isfinite(L.reached_value[i]) ? json(L.reached_value[i]) : json(nullptr)}});
  std::string changed;
  lesson_settings_changed(&changed);
  const Goal::Result& r = L.result;
  json foreign_row = nullptr;  // the noisy Fashion-MNIST row's errors (paint_foreign_row)
  if (L.foreign_count)
    foreign_row = {{"step", L.measure[0].snapshot_step()},
                   {"a", std::vector<float>(L.foreign_err[0], L.foreign_err[0] + L.foreign_count)},
                   {"b", std::vector<float>(L.foreign_err[1], L.foreign_err[1] + L.foreign_count)}};
  return {{"id", L.lesson.id},
          {"title", L.lesson.title},
          {"section", L.lesson.section},
          {"custom", L.custom},
          {"step", L.step + 1},
          {"steps", steps},
          {"goal", L.lesson.steps[L.step].goal.text()},
          {"holds", r.holds},
          {"value", std::isfinite(r.value) ? json(r.value) : json(nullptr)},
          {"missing", r.missing},
          {"problem", r.problem},
          {"measuring", L.measuring},
          {"measuredStep", L.measured_step == size_t(-1) ? json(nullptr) : json(L.measured_step)},
          {"actionLeft", L.action_left},
          {"changed", changed},
          {"twin", L.twin ? json{{"label", L.configs[1].label}, {"step", L.twin->steps}, {"error", L.twin_error}}
                          : json(nullptr)},
          {"values", L.values},
          {"foreignRow", foreign_row},
          {"done", std::all_of(L.progress.begin(), L.progress.end(), [](int p) { return p == 1; })},
          {"events", L.events}};
}

// ---- drawing -------------------------------------------------------------------------------------------------------------

void App::panel_lesson(float width) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  const float top = compact ? 0.f : ImGui::GetFrameHeight();
  const ImVec2 d = ImGui::GetIO().DisplaySize;
  ImGui::SetNextWindowPos(ImVec2(0, top), s.layout.relayout ? ImGuiCond_Always : ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(width, d.y - top), s.layout.relayout ? ImGuiCond_Always : ImGuiCond_FirstUseEver);
  bool open = true;
  const bool visible = ImGui::Begin("Lesson", &open);
  const ImVec2 pos = ImGui::GetWindowPos(), size = ImGui::GetWindowSize();
  s.layout.lesson_shown = visible ? PanelLayout::Rect{pos.x, pos.y, size.x, size.y} : PanelLayout::Rect{};
  if (!open) {
    ImGui::End();
    return leave_lesson();
  }
  if (!visible) return ImGui::End();
  const Lesson& l = L.lesson;
  ImGui::TextDisabled("%s", l.section.c_str());
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted(l.title.c_str());
  if (!l.summary.empty()) ImGui::TextDisabled("%s", l.summary.c_str());
  ImGui::PopTextWrapPos();
  if (L.twin) {
    ImGui::TextColored(ImVec4(0.47f, 0.67f, 1, 1), "a: %s", L.configs[0].label.c_str());
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(1, 0.55f, 0.75f, 1), "  b: %s", L.configs[1].label.c_str());
  }
  // Progress: one box per step.
  for (size_t i = 0; i < l.steps.size(); ++i) {
    if (i) ImGui::SameLine(0, 4);
    const int p = L.progress[i];
    const ImVec4 col = p == 1 ? ImVec4(0.2f, 0.7f, 0.3f, 1) : p == 2 ? ImVec4(0.45f, 0.45f, 0.45f, 1)
                                                                      : ImVec4(0.2f, 0.3f, 0.45f, 1);
    ImGui::PushID(int(i));
    ImGui::PushStyleColor(ImGuiCol_Button, col);
    char label[16];
    std::snprintf(label, sizeof label, "%s%zu", i == L.step ? ">" : "", i + 1);
    if (ImGui::SmallButton(label)) lesson_goto(i);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("step %zu: %s", i + 1, progress_name(p));
    ImGui::PopStyleColor();
    ImGui::PopID();
  }
  ImGui::Separator();
  const LessonStep& st = l.steps[L.step];
  ImGui::Text("Step %zu of %zu", L.step + 1, l.steps.size());
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted(st.instruction.c_str());
  ImGui::PopTextWrapPos();
  if (!st.look.empty()) {
    std::string look;
    for (const std::string& k : st.look) {
      const int id = int(std::find(std::begin(kPanelKeys), std::end(kPanelKeys), k) - std::begin(kPanelKeys));
      if (id < kPanelCount) look += (look.empty() ? "" : ", ") + std::string(kPanelTitles[id]);
    }
    ImGui::TextDisabled("Look at: %s", look.c_str());
  }
  if (st.action) {
    const bool busy = L.action_left > 0;
    if (busy || !has_data()) ImGui::BeginDisabled();
    if (ImGui::Button(st.action->label.c_str())) lesson_action();
    if (busy || !has_data()) ImGui::EndDisabled();
    if (busy) {
      ImGui::SameLine();
      ImGui::TextDisabled("%zu steps to go", L.action_left);
    }
  }
  // The goal and its value now.
  ImGui::Spacing();
  ImGui::TextWrapped("Goal: %s", st.goal.text().c_str());
  const Goal::Result& r = L.result;
  if (L.progress[L.step] == 1) {
    ImGui::TextColored(ImVec4(0.3f, 0.85f, 0.4f, 1), "Reached (value %.4g)", L.reached_value[L.step]);
  } else if (!L.values.is_object()) {
    ImGui::TextDisabled("measuring...");
  } else if (!r.missing.empty()) {
    ImGui::TextDisabled("waiting for %s", r.missing.c_str());
  } else if (!r.problem.empty()) {
    ImGui::TextColored(ImVec4(1, 0.7f, 0.3f, 1), "%s", r.problem.c_str());
  } else {
    ImGui::Text(r.holds ? "now %.4g: holds, counted when the action's training is over" : "now %.4g: not yet", r.value);
  }
  if (L.measured_step != size_t(-1)) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("measured at step %zu on %zu test digits%s", L.measured_step, kLessonTestImages,
                       L.measuring ? " (measuring again)" : "");
    ImGui::PopStyleColor();
  }
  if (!L.twin_error.empty()) ImGui::TextColored(ImVec4(1, 0.6f, 0.3f, 1), "b stopped: %s", L.twin_error.c_str());
  std::string changed;
  if (lesson_settings_changed(&changed)) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(ImVec4(1, 0.8f, 0.4f, 1), "You changed %s: the goal was set for the lesson's settings.",
                       changed.c_str());
    ImGui::PopTextWrapPos();
    if (ImGui::Button("Put the lesson's settings back")) lesson_use_configs(true);
  }
  ImGui::Spacing();
  const bool last = L.step + 1 >= l.steps.size();
  if (!last) {
    if (L.progress[L.step] != 1) ImGui::BeginDisabled();
    if (ImGui::Button("Next step")) lesson_goto(L.step + 1);
    if (L.progress[L.step] != 1) ImGui::EndDisabled();
    ImGui::SameLine();
    if (L.progress[L.step] != 1 && ImGui::Button("Skip")) lesson_goto(L.step + 1);
  } else {
    const size_t reached = size_t(std::count(L.progress.begin(), L.progress.end(), 1));
    if (reached == l.steps.size()) ImGui::TextColored(ImVec4(0.3f, 0.85f, 0.4f, 1), "Lesson complete: every goal reached.");
    else ImGui::TextDisabled("%zu of %zu goals reached so far.", reached, l.steps.size());
  }
  ImGui::Separator();
  if (ImGui::Button("Start over")) {
    const Lesson copy = l;
    const bool custom = L.custom;
    start_lesson(copy);
    L.custom = custom;
  }
  ImGui::SameLine();
  if (ImGui::Button("Other lessons")) L.picker = true;
  ImGui::SameLine();
  if (ImGui::Button("Leave")) {
    ImGui::End();
    return leave_lesson();
  }
  ImGui::End();
}

// A built-in lesson from the picker or the menu; a model that does not build is reported, nothing changed.
void App::open_lesson(const Lesson& l) {
  try {
    start_lesson(l);
  } catch (const std::exception& e) {
    message = e.what();
  }
}

// The start screen: the lessons grouped by course text.
void App::lesson_picker() {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (!L.picker) return;
  const ImVec2 d = ImGui::GetIO().DisplaySize;
  const ImVec2 size(std::min(680.f, d.x - 40), std::min(640.f, d.y - 60));
  ImGui::SetNextWindowPos(ImVec2((d.x - size.x) / 2, (d.y - size.y) / 2), ImGuiCond_Appearing);
  ImGui::SetNextWindowSize(size, ImGuiCond_Appearing);
  if (!ImGui::Begin("Lessons", &L.picker, ImGuiWindowFlags_NoCollapse)) return ImGui::End();
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted("Each lesson is an experiment from the course: a few steps, each with a goal the playground "
                         "checks on the model as it trains. Pick one, or explore on your own.");
  ImGui::PopTextWrapPos();
  if (ImGui::Button("Explore freely")) L.picker = false;
  std::string group;
  for (const Lesson& l : L.library) {
    if (course_text(l.section) != group) {
      group = course_text(l.section);
      ImGui::SeparatorText(("Course text " + group).c_str());
    }
    ImGui::PushID(l.id.c_str());
    if (ImGui::Button("Start")) open_lesson(l);
    ImGui::SameLine();
    const float x = ImGui::GetCursorPosX();
    ImGui::TextUnformatted(l.title.c_str());
    ImGui::SetCursorPosX(x);
    ImGui::TextDisabled("%s, %zu step%s%s", l.section.substr(std::min<size_t>(l.section.size(), 6)).c_str(),
                        l.steps.size(), l.steps.size() == 1 ? "" : "s", l.twin ? ", two models side by side" : "");
    ImGui::PopID();
  }
  ImGui::End();
}

void App::lessons_menu() {
  LessonPlay& L = s_->lesson;
  if (!ImGui::BeginMenu("Lessons")) return;
  if (ImGui::MenuItem("All lessons...")) L.picker = true;
  std::string group;
  for (const Lesson& l : L.library) {
    if (course_text(l.section) != group) {
      group = course_text(l.section);
      ImGui::SeparatorText(("Course text " + group).c_str());
    }
    if (ImGui::MenuItem(l.title.c_str(), nullptr, L.active && L.lesson.id == l.id)) open_lesson(l);
  }
  if (L.active) {
    ImGui::Separator();
    if (ImGui::MenuItem("Leave the lesson")) leave_lesson();
  }
  ImGui::EndMenu();
}

// The twin's loss curves over the Training panel's (pink: train, smoothed; test as measured for the lesson).
void App::draw_twin_curve(ImDrawList* dl, ImVec2 p0, ImVec2 size, float x1, float y0, float y1) {
  const LessonPlay& L = s_->lesson;
  if (!L.twin) return;
  const LossCurve& c = L.twin->curve;
  draw_curve(dl, p0, size, c.step, c.train, {0, c.step.size()}, x1, y0, y1, s_->log_scale, IM_COL32(255, 140, 190, 230), 0.98f);
  draw_curve(dl, p0, size, c.test_step, c.test, {0, c.test_step.size()}, x1, y0, y1, s_->log_scale,
             IM_COL32(255, 220, 120, 230), 0);
}

// Under the app run's reconstructions: the twin's, labelled.
void App::twin_recon_row() {
  LessonPlay& L = s_->lesson;
  if (!L.twin || !L.twin_recon.w) return;
  ImGui::Separator();
  ImGui::TextColored(ImVec4(1, 0.55f, 0.75f, 1), "b: %s", L.configs[1].label.c_str());
  ImGui::SameLine();
  ImGui::TextDisabled("rows: its input | output (at step %zu)", L.measure[1].snapshot_step());
  const float scale = std::max(1.f, std::floor(ImGui::GetContentRegionAvail().x / L.twin_recon.w));
  L.twin_recon.show(tex_, scale);
  std::string list;
  for (int i = 0; i < kReconCount; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4f", i ? "  " : "", L.twin_recon_err[i]);
    list += buf;
  }
  ImGui::TextDisabled("MSE vs clean: %s", list.c_str());
  if (!L.foreign_count) return;
  ImGui::Separator();
  ImGui::TextUnformatted("Noisy Fashion-MNIST, never trained on:");
  ImGui::SameLine();
  ImGui::TextDisabled("rows: noisy input | a | b (at step %zu)", L.measure[0].snapshot_step());
  L.foreign_row.show(tex_, std::max(1.f, std::floor(ImGui::GetContentRegionAvail().x / L.foreign_row.w)));
  for (int r = 0; r < 2; ++r) {
    std::string errs;
    for (int i = 0; i < L.foreign_count; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.4f", i ? "  " : "", L.foreign_err[r][i]);
      errs += buf;
    }
    ImGui::TextDisabled("%c MSE vs clean: %s", r ? 'b' : 'a', errs.c_str());
  }
  help_marker("The first Fashion-MNIST test images with the noise the lesson's measurement gave them, and what each "
              "model makes of them; each error is against the clean image. foreignTestError is the mean of such "
              "errors over 1000 images.");
}

// ---- autosave ------------------------------------------------------------------------------------------------------------


namespace {
constexpr const char* kTwinPrefix = "lesson.twin.";
}

void App::save_lesson_session(SafeTensors& st) const {
  const LessonPlay& L = s_->lesson;
  if (!L.active) return;
  json reached = json::array();
  for (double v : L.reached_value) reached.push_back(std::isfinite(v) ? json(v) : json(nullptr));
  json j = {{"lesson", L.lesson.json}, {"custom", L.custom}, {"step", L.step}, {"progress", L.progress},
            {"reached", reached}, {"applied", L.applied}};
  if (L.twin) {
    for (StTensor t : model_state(*L.twin->model, &L.twin->trainer->optimizer).tensors) {
      t.name = kTwinPrefix + t.name;
      st.tensors.push_back(std::move(t));
    }
    const LossCurve& c = L.twin->curve;
    j["twinSteps"] = L.twin->steps;
    j["twinCurve"] = {{"step", c.step}, {"train", c.train}, {"test_step", c.test_step}, {"test", c.test}};
  }
  st.metadata["aep_lesson"] = j.dump();
}

// Takes the lesson part out of a session file (its tensors too, so the rest loads as the app run's), checked whole.
std::unique_ptr<App::LessonSession> App::take_lesson_session(SafeTensors& st, uint64_t seed) const {
  auto it = st.metadata.find("aep_lesson");
  if (it == st.metadata.end()) return nullptr;
  const json j = json::parse(it->second, nullptr, false);
  auto fail = [](const std::string& m) { throw std::runtime_error("autosave: the lesson's part: " + m); };
  if (j.is_discarded() || !j.is_object() || !j.contains("lesson")) fail("not JSON, or no lesson");
  auto ls = std::make_unique<LessonSession>();
  try {
    ls->lesson = parse_lesson(j.at("lesson"), "autosave");
    ls->custom = j.value("custom", false);
    ls->step = j.at("step").get<size_t>();
    ls->progress = j.at("progress").get<std::vector<int>>();
    for (const json& v : j.at("reached")) ls->reached.push_back(v.is_number() ? v.get<double>() : NAN);
    ls->applied = j.at("applied").get<std::vector<size_t>>();
  } catch (const std::exception& e) {
    fail(e.what());
  }
  const size_t n = ls->lesson.steps.size();
  if (ls->step >= n || ls->progress.size() != n || ls->reached.size() != n) fail("its progress does not fit the lesson");
  for (size_t k : ls->applied)
    if (k >= n || !ls->lesson.steps[k].action) fail("it names an action the lesson does not have");
  std::vector<StTensor> rest;
  for (StTensor& t : st.tensors) {
    if (t.name.rfind(kTwinPrefix, 0) == 0) {
      t.name = t.name.substr(std::strlen(kTwinPrefix));
      ls->twin.tensors.push_back(std::move(t));
    } else {
      rest.push_back(std::move(t));
    }
  }
  st.tensors = std::move(rest);
  if (ls->lesson.twin) {
    std::vector<LessonConfig> configs{ls->lesson.start, *ls->lesson.twin};
    for (size_t k : ls->applied) apply_to_configs(ls->lesson.steps[k].action->settings, configs);
    Run scratch(configs[1].preset, seed);
    load_state(*scratch.model, ls->twin, "autosave (the lesson's twin)", &scratch.trainer->optimizer);
    try {
      ls->twin_steps = j.at("twinSteps").get<size_t>();
      const json& c = j.at("twinCurve");
      ls->twin_curve.step = c.at("step").get<std::vector<float>>();
      ls->twin_curve.train = c.at("train").get<std::vector<float>>();
      ls->twin_curve.test_step = c.at("test_step").get<std::vector<float>>();
      ls->twin_curve.test = c.at("test").get<std::vector<float>>();
    } catch (const std::exception& e) {
      fail(std::string("the twin's curve: ") + e.what());
    }
    if (ls->twin_curve.train.size() != ls->twin_curve.step.size() || ls->twin_curve.test.size() != ls->twin_curve.test_step.size())
      fail("the twin's curves have different lengths");
  } else if (!ls->twin.tensors.empty()) {
    fail("twin weights for a lesson without a twin");
  }
  return ls;
}

// The lesson and its runs' settings as its actions left them (fresh weights: the autosave's come next).
void App::restart_lesson_session(const LessonSession& ls) {
  LessonPlay& L = s_->lesson;
  start_lesson(ls.lesson);
  for (size_t k : ls.applied) apply_to_configs(ls.lesson.steps[k].action->settings, L.configs);
  L.applied = ls.applied;
  L.custom = ls.custom;
  lesson_use_configs(true);
}

void App::finish_lesson_session(LessonSession& ls, size_t epoch) {
  State& s = *s_;
  LessonPlay& L = s.lesson;
  if (L.twin) {
    load_state(*L.twin->model, ls.twin, "autosave (the lesson's twin)", &L.twin->trainer->optimizer);  // checked above
    L.twin->steps = ls.twin_steps;
    if (L.twin->sampler) L.twin->sampler->epoch = epoch;  // where the app run's batches go on
    ls.twin_curve.label = L.twin->curve.label;
    ls.twin_curve.segments = L.twin->curve.segments;  // one, from the start: a lesson never changes the loss
    ls.twin_curve.recon.assign(ls.twin_curve.step.size(), NAN);
    ls.twin_curve.kl.assign(ls.twin_curve.step.size(), NAN);
    L.twin->curve = std::move(ls.twin_curve);
  }
  L.progress = ls.progress;
  L.reached_value = ls.reached;
  L.step = ls.step;
  L.events = json::array();  // the page told its parent about the earlier ones before the reload
  L.measured_step = size_t(-1);
  runs_changed();
  message += " Lesson: " + L.lesson.title + ", step " + std::to_string(L.step + 1) + ".";
}

}  // namespace aep
