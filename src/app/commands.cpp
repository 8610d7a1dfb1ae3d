// The JS API, postMessage and URL parameters (command), what the page and the course see (status), and the settings
// as URL parameters (config_query): the app's outside, apart from its panels.
#include "app/app_state.hpp"

#include <algorithm>
#include <cmath>

#include "core/gemm.hpp"
#include "core/losses.hpp"
#include "core/parallel.hpp"

namespace aep {

double command_number(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return NAN;
  const std::string text = v.get<std::string>();  // a named copy: end points into it below
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  return end == text.c_str() || *end ? NAN : d;
}

json App::command(const json& cmd) {
  State& s = *s_;
  std::vector<std::string> errors;
  if (!cmd.is_object()) return {{"ok", false}, {"errors", {"a command must be a JSON object"}}};
  auto number = [&](const char* key, double lo, double hi, double& out) {
    if (!cmd.contains(key)) return false;
    const json& v = cmd.at(key);
    const double d = command_number(v);
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
  int anomaly = s.anomaly.mode;
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
  if (anomaly != s.anomaly.mode) {
    s.anomaly.mode = anomaly;
    s.views_dirty = true;
    if (anomaly == 2) want_fashion();
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
          {"dataReady", data_complete()},  // all of it: the page may train on a first part before
          {"data", {{"train", train_.count}, {"test", test_.count}, {"complete", data_complete()}}},
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
          {"anomaly", s.anomaly.mode == 0 ? "noise" : s.anomaly.mode == 1 ? "digit" : "fashion"},
          {"latent", s.code_dim > 2 ? (s.latent_umap ? "umap" : "pca") : "code"},
          {"umapPoints", s.umap_n},
          {"umapStep", s.umap_n ? json(s.umap_step) : json(nullptr)},
          {"umapProgress", s.umap.running() ? json(s.umap.progress()) : json(nullptr)},
          {"anomalyAuc", num(s.anomaly.auc)},
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

}  // namespace aep
