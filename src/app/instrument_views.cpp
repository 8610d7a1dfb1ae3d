// The instruments of issue 15 in the page: the loss picker, the encoder Jacobian's norm, the code probe and the errors
// on foreign data computed between frames, the selected digit's VAE posterior, and their commands and status.
#include "app/app_state.hpp"

#include <algorithm>
#include <cmath>

#include "core/idx.hpp"
#include "core/instruments.hpp"
#include "core/losses.hpp"

namespace aep {

size_t jacobian_digits(size_t code_size, size_t test_count) {
  const size_t by_cost = kJacobianRows / std::max<size_t>(code_size, 1);
  return std::min(test_count, std::max(kJacobianMinDigits, std::min(kJacobianDigits, by_cost)));
}

namespace {
// A snapshot of the run's weights in a model of its own, which training does not touch.
void snapshot(std::unique_ptr<Model>& into, const Run& run) {
  if (!into) into = std::make_unique<Model>(run.preset);
  std::copy(run.model->values.begin(), run.model->values.end(), into->values.begin());
  std::copy(run.model->buffer_values.begin(), run.model->buffer_values.end(), into->buffer_values.begin());
}

json probe_json(const ProbeResult& r) {
  if (r.labels == 0) return nullptr;
  return {{"softmax", r.softmax_accuracy}, {"knn", r.knn_accuracy}, {"dims", r.dims}, {"inputDims", r.input_dims},
          {"softmaxTested", r.softmax_tested}, {"knnTested", r.knn_tested}};
}

const char* kProbeNames[3] = {"codes", "pixels", "PCA codes"};

// What a pixel PCA of the probe is fitted on: the first pca_fit_images training images, normalized.
uint64_t pixels_pca_key(const Dataset& train, Normalization norm, const ProbeSettings& ps) {
  const size_t n = std::min(ps.pca_fit_images, train.count) * train.rows * train.cols;
  const int kind = norm == Normalization::MinusOneOne;
  return fnv1a(train.pixels.data(), n, fnv1a(&kind, sizeof kind, fnv1a(&ps.max_dims, sizeof ps.max_dims)));
}
}  // namespace

// The model changed wholesale (reset, new preset, loaded weights, new data): nothing measured so far applies.
void App::cancel_instruments() {
  InstrumentViews& v = s_->instr;
  v.jacobian = JacobianJob();
  ProbeJob& p = v.probe;
  p.probe.clear();
  p.model.reset();
  p.running = -1;
  p.code = p.pixels = p.pca = ProbeResult();
  p.pca_is_pixels = false;
  p.error.clear();
  v.posterior.step = size_t(-1);
  v.posterior.samples.clear();
  if (!s_->preset.is_vae()) v.posterior.digit = -1;
  ForeignView& f = v.foreign;  // the choice and the learner's images stay
  f.model.reset();
  f.active = false;
  f.compared = ErrorComparison();
  f.row_count = 0;
}

// One slice of the Jacobian norm: a few rows of the Jacobian of a batch of digits at a time (the row count from a
// running estimate of their cost); a measurement of the newest weights starts when the last one is done. Returns
// whether it worked.
bool App::step_jacobian(double budget_ms) {
  State& s = *s_;
  JacobianJob& J = s.instr.jacobian;
  if (!J.active) {
    if (!std::isnan(J.value) && J.value_step == s.run->steps) return false;  // up to date
    snapshot(J.model, *s.run);
    J.active = true;
    J.first = std::isnan(J.value);
    J.step = s.run->steps;
    J.digits = jacobian_digits(J.model->code_size(), test_.count);
    J.image_pos = J.unit_pos = 0;
    J.total = 0;
  }
  // Small batches: every call runs the encoder forward once before its rows, so the forward of a batch must be
  // small beside the budget, or a call affords a single row (conv in wasm: 50 digits' forward is ~ a whole slice).
  constexpr size_t kBatch = 10;
  const size_t units = J.model->code_size();
  const auto t0 = Clock::now();
  for (;;) {
    const double spent = seconds_since(t0) * 1000;
    if (spent >= budget_ms) return true;
    if (J.unit_pos == 0) {  // the next batch of digits
      const size_t b = std::min(kBatch, J.digits - J.image_pos);
      std::vector<uint32_t> idx(b);
      for (size_t i = 0; i < b; ++i) idx[i] = uint32_t(J.image_pos + i);
      fill_batch(test_, idx.data(), b, J.model->preset().normalize, J.x);
      J.sum.assign(b, 0.0);
    }
    const size_t rows = std::clamp<size_t>(J.row_ms > 0 ? size_t((budget_ms - spent) / J.row_ms) : 4, 1,
                                           units - J.unit_pos);
    const auto tr = Clock::now();
    const std::vector<double> part = jacobian_frobenius_sq(*J.model, J.x, J.unit_pos, J.unit_pos + rows);
    const double ms = seconds_since(tr) * 1000 / double(rows);
    J.row_ms = J.row_ms > 0 ? 0.7 * J.row_ms + 0.3 * ms : ms;
    for (size_t i = 0; i < part.size(); ++i) J.sum[i] += part[i];
    if ((J.unit_pos += rows) < units) continue;
    for (double v : J.sum) J.total += v;
    J.unit_pos = 0;
    J.image_pos += J.sum.size();
    // Until a model's first measurement is done, the mean of its digits so far is shown, with their count (conv's 65
    // digits took 12 s in the page while it trained; its first 10 take a sixth of that).
    if (J.first) J.value = J.total / double(J.image_pos), J.value_step = J.step, J.value_digits = J.image_pos;
    if (J.image_pos < J.digits) continue;
    J.value = J.total / double(J.digits);
    J.value_step = J.step;
    J.value_digits = J.digits;
    J.active = false;
    return true;
  }
}

// One slice of the code probe: the codes first, then (once per label count) pixels and PCA codes of the code's size,
// then the codes again whenever the model has trained since. Returns whether it worked.
bool App::step_probe(double budget_ms) {
  State& s = *s_;
  ProbeJob& P = s.instr.probe;
  if (!(P.open || P.requested) || !P.error.empty()) return false;
  if (P.running < 0) {
    int next = P.code.labels == 0 ? 0 : P.pixels.labels == 0 ? 1 : P.pca.labels == 0 ? 2 : -1;
    if (next < 0 && P.code_step != s.run->steps) next = 0;
    if (next < 0) return false;
    ProbeSettings ps;
    ps.labels = P.labels;
    ps.knn_tile = size_t(1) << 25;  // k-NN in units of a few ms (the same predictions as the CLI's larger units)
    const size_t pixels = train_.rows * train_.cols;
    try {
      if (next == 0) {
        snapshot(P.model, *s.run);
        P.code_step = s.run->steps;  // of the codes this probe encodes
        P.probe.begin(train_, test_, P.model->code_size(), code_features(*P.model), ps);
      } else if (next == 1) {
        const uint64_t key = pixels_pca_key(train_, s.preset.normalize, ps);
        P.probe.begin(train_, test_, pixels, pixel_features(s.preset.normalize), ps,
                      key == P.pixels_pca_key && P.pixels_pca.k ? &P.pixels_pca : nullptr);
      } else {
        // PCA codes of the size the code probe's classifiers saw. When that is not below the pixels' own reduction,
        // both see the same inputs: the pixels' result is the PCA codes' too.
        ps.max_dims = std::min(P.code.dims, pixels);
        if (ps.max_dims >= P.pixels.dims) {
          P.pca = P.pixels;
          P.pca_is_pixels = true;
          return true;
        }
        P.pca_is_pixels = false;
        P.probe.begin(train_, test_, pixels, pixel_features(s.preset.normalize), ps);
      }
    } catch (const std::exception& e) {
      P.error = e.what();
      return false;
    }
    P.running = next;
  }
  if (!P.probe.step(budget_ms)) return true;
  const ProbeResult r = P.probe.result();
  (P.running == 0 ? P.code : P.running == 1 ? P.pixels : P.pca) = r;
  if (P.running == 1 && P.probe.reduction().k) {
    ProbeSettings ps;
    P.pixels_pca = P.probe.reduction();
    P.pixels_pca_key = pixels_pca_key(train_, s.preset.normalize, ps);
  }
  P.running = -1;
  P.probe.clear();
  return true;
}

// One slice of the foreign-data comparison: the test digits' errors, then the foreign images', in chunks of
// kForeignChunk images (as many as fit the budget, at least one); then the comparison and the row of reconstructions.
// A measurement of the newest weights starts when the last one is done. Returns whether it worked.
bool App::step_foreign(double budget_ms) {
  State& s = *s_;
  ForeignView& F = s.instr.foreign;
  const Dataset* d = foreign_data();
  if (!d) return false;
  if (!F.active) {
    if (F.compared.test_count && F.value_step == s.run->steps) return false;  // up to date
    snapshot(F.model, *s.run);
    F.active = true;
    F.step = s.run->steps;
    F.pos = 0;
    F.test_errors.assign(std::min(kForeignImages, test_.count), 0.f);
    F.foreign_errors.assign(std::min(kForeignImages, d->count), 0.f);
  }
  constexpr size_t kForeignChunk = 25;
  const size_t n_test = F.test_errors.size(), total = n_test + F.foreign_errors.size();
  const auto t0 = Clock::now();
  while (F.pos < total) {
    const bool test = F.pos < n_test;
    std::vector<float>& out = test ? F.test_errors : F.foreign_errors;
    const size_t begin = test ? F.pos : F.pos - n_test, end = std::min(begin + kForeignChunk, out.size());
    const auto tc = Clock::now();
    reconstruction_errors(*F.model, test ? test_ : *d, begin, end, out.data() + begin);
    const double ms = seconds_since(tc) * 1000;
    F.chunk_ms = F.chunk_ms > 0 ? 0.7 * F.chunk_ms + 0.3 * ms : ms;
    F.pos += end - begin;
    if (F.pos < total && seconds_since(t0) * 1000 + F.chunk_ms > budget_ms) return true;
  }
  F.compared = compare_errors(F.test_errors, F.foreign_errors, kForeignBins);
  F.value_step = F.step;
  F.value_name = d == &s.ood ? "Fashion-MNIST" : d->name;
  // The first foreign images over their reconstructions, by the same weights.
  F.row_count = int(std::min<size_t>(kForeignRow, d->count));
  std::vector<uint32_t> idx(size_t(F.row_count));
  for (int i = 0; i < F.row_count; ++i) idx[i] = uint32_t(i);
  const Normalization norm = F.model->preset().normalize;
  Tensor x;
  fill_batch(*d, idx.data(), idx.size(), norm, x);
  const Tensor y = F.model->reconstruct(x);
  per_image_mse(y.data(), x.data(), idx.size(), F.row_err);
  F.row.resize(F.row_count * 30 + 2, 2 * 30 + 2);
  for (int i = 0; i < F.row_count; ++i) {
    F.row.put_digit(2 + i * 30, 2, x.data() + i * 784, range_min(norm), range_max(norm));
    F.row.put_digit(2 + i * 30, 32, y.data() + i * 784, range_min(norm), range_max(norm));
  }
  F.active = false;
  return true;
}

// The free view budget goes to the jobs in turn: a job with nothing to do hands the slice on, and the next slice starts
// after the job that worked, so the jobs with work share the slices equally. Except that a model's first Jacobian norm
// comes first: its readout has nothing to show until then (conv's took 35 s in the page while the probe ran).
bool App::step_instruments(double budget_ms, bool alternate) {
  State& s = *s_;
  if (!has_data() || s.n_view == 0) return false;
  if (alternate) {  // only for a first value (or a beta sweep): the views (and the posterior drawn from them) keep their
                    // pace otherwise
    const InstrumentViews& v = s.instr;
    const bool first = std::isnan(v.jacobian.value) ||
                       ((v.probe.open || v.probe.requested) && v.probe.error.empty() && !v.probe.code.labels) ||
                       (foreign_data() && !v.foreign.compared.test_count) ||
                       !v.sweep.runs.empty();  // a beta sweep's table: the views, always busy while a worker
                                               // trains, left it none (its rows stayed at their first step)
    if (!first || (s.instr.skip = !s.instr.skip)) return false;
  }
  if (std::isnan(s.instr.jacobian.value) && step_jacobian(budget_ms)) return true;
  for (int k = 0; k < 4; ++k) {
    const int job = (s.instr.turn + k) % 4;
    if (job == 0   ? step_jacobian(budget_ms)
        : job == 1 ? step_probe(budget_ms)
        : job == 2 ? step_foreign(budget_ms)
                   : step_sweep_measure(budget_ms)) {
      s.instr.turn = (job + 1) % 4;
      return true;
    }
  }
  return false;
}

void App::refresh_instruments() {
  if (!has_data()) return;
  refresh_views();
  while (step_jacobian(1e9) && s_->instr.jacobian.active) {
  }
  while (step_probe(1e9)) {
  }
  step_foreign(1e9);
  while (step_sweep_measure(1e9)) {
  }
}

// ---- foreign data (Anomaly panel) ----------------------------------------------------------------------------------

const Dataset* App::foreign_data() const {
  const State& s = *s_;
  const ForeignView& F = s.instr.foreign;
  if (F.source == ForeignSource::Fashion) return s.ood.count ? &s.ood : nullptr;
  if (F.source == ForeignSource::Own) return F.own.count ? &F.own : nullptr;
  return nullptr;
}

void App::set_foreign_source(ForeignSource source) {
  State& s = *s_;
  ForeignView& F = s.instr.foreign;
  if (source == F.source) return;
  F.source = source;
  F.active = false;
  F.compared = ErrorComparison();
  F.row_count = 0;
  if (source == ForeignSource::Fashion) want_fashion();  // the driver loads it (set_ood)
}

void App::load_foreign_file(const std::vector<uint8_t>& bytes, const std::string& name) {
  ForeignView& F = s_->instr.foreign;
  IdxImages im;
  try {
    im = parse_idx_images(bytes.data(), bytes.size(), name);
  } catch (const std::exception&) {
    bool labels = true;
    try {
      parse_idx_labels(bytes.data(), bytes.size(), name);
    } catch (const std::exception&) {
      labels = false;
    }
    if (labels)
      throw std::runtime_error(name + " holds labels: foreign data needs only an images file (idx3-ubyte, 28x28)");
    throw;
  }
  const size_t slash = name.find_last_of("/\\");  // a desktop drop gives a path
  F.own = image_set(std::move(im), slash == std::string::npos ? name : name.substr(slash + 1));
  F.active = false;
  F.compared = ErrorComparison();
  F.row_count = 0;
  message = "Foreign data: " + std::to_string(F.own.count) + " images from " + F.own.name +
            ", evaluated with the model as it is (the training data and the model stay).";
}

void App::foreign_section() {
  State& s = *s_;
  ForeignView& F = s.instr.foreign;
  ImGui::SeparatorText("Foreign data: the model as it is, on other images");
  int source = int(F.source);
  bool changed = ImGui::RadioButton("none##foreign", &source, 0);
  ImGui::SameLine();
  changed |= ImGui::RadioButton("Fashion-MNIST##foreign", &source, 1);
  ImGui::SameLine();
  changed |= ImGui::RadioButton("my own images", &source, 2);
  help_marker("Autoencoders are data-specific: one trained on digits reconstructs digits. Here the model, as it is "
              "now, reconstructs images of another kind: Fashion-MNIST's test images (clothes), or your own IDX "
              "images file (idx3-ubyte, 28x28, raw or .gz). Nothing trains on them and nothing is reset. Both "
              "histograms count the reconstruction error (mean squared error per pixel of the clean image) of the "
              "first 1,000 images of each set, as a share of that set, over the same bins; the lines are their "
              "means. Measured between frames on a snapshot of the weights, again as the model trains.");
  if (changed) set_foreign_source(ForeignSource(source));
  if (F.source == ForeignSource::None) return;
  if (F.source == ForeignSource::Own) {
    ImGui::TextDisabled("While this is chosen, a dropped IDX file goes here, not into the training data.");
    if (ImGui::SmallButton("Choose an IDX images file ...")) driver_->open_file();
    if (F.own.count) {
      ImGui::SameLine();
      ImGui::TextDisabled("%s: %zu images", F.own.name.c_str(), F.own.count);
    }
  }
  if (!foreign_data()) {
    ImGui::TextDisabled(F.source == ForeignSource::Fashion ? "loading Fashion-MNIST test images ..."
                                                           : "Drop an images file (idx3-ubyte, 28x28, raw or .gz) on "
                                                             "the page.");
    return;
  }
  const ErrorComparison& c = F.compared;
  if (c.test_count == 0) {
    ImGui::TextDisabled("measuring the errors ...");
    return;
  }
  ImGui::PushTextWrapPos(0);
  ImGui::TextDisabled("%s at step %zu: input over reconstruction, each image's MSE under it", F.value_name.c_str(),
                      F.value_step);
  ImGui::PopTextWrapPos();
  const float scale = std::max(1.f, std::min(2.f, std::floor(ImGui::GetContentRegionAvail().x / float(F.row.w))));
  const ImVec2 at = F.row.show(tex_, scale);
  image_errors_row(F.row_err, F.row_count, at, scale, float(F.row.w));
  // The two histograms over each other, each as shares of its own set (the sets may differ in size).
  const ImU32 test_col = IM_COL32(80, 160, 255, 255), foreign_col = IM_COL32(255, 150, 60, 255);
  const float w = std::max(100.f, ImGui::GetContentRegionAvail().x - 30), h = 80;
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p0, ImVec2(p0.x + w, p0.y + h), IM_COL32(20, 20, 24, 255));
  const size_t bins = c.test_hist.size();
  double top = 0;
  for (size_t k = 0; k < bins; ++k)
    top = std::max({top, c.test_hist[k] / double(c.test_count), c.foreign_hist[k] / double(c.foreign_count)});
  const float bw = w / float(bins);
  auto bars = [&](const std::vector<size_t>& hist, size_t n, ImU32 col) {
    for (size_t k = 0; k < bins; ++k) {
      if (!hist[k]) continue;
      const float share = float(hist[k] / double(n) / top);
      dl->AddRectFilled(ImVec2(p0.x + k * bw + 1, p0.y + h * (1 - share)), ImVec2(p0.x + (k + 1) * bw, p0.y + h),
                        (col & 0x00ffffff) | (140u << 24));
    }
  };
  bars(c.test_hist, c.test_count, test_col);
  bars(c.foreign_hist, c.foreign_count, foreign_col);
  for (auto [mean, col] : {std::pair{c.test_mean, test_col}, std::pair{c.foreign_mean, foreign_col}}) {
    const float x = p0.x + w * float(c.hi > 0 ? mean / c.hi : 0);
    dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p0.y + h), col, 2.f);
  }
  ImGui::Dummy(ImVec2(w, h));
  char hi[32];
  std::snprintf(hi, sizeof hi, "%.3g", c.hi);
  ImGui::TextDisabled("0");
  ImGui::SameLine(std::max(0.f, w - ImGui::CalcTextSize(hi).x));
  ImGui::TextDisabled("%s", hi);
  ImGui::PushTextWrapPos(0);
  ImGui::TextDisabled("across: reconstruction error (MSE per pixel); up: share of each set; lines: the means");
  ImGui::PopTextWrapPos();
  ImGui::TextColored(ImColor(test_col).Value, "test digits: mean %.4f (%zu images)", c.test_mean, c.test_count);
  ImGui::TextColored(ImColor(foreign_col).Value, "%s: mean %.4f (%zu images)", F.value_name.c_str(), c.foreign_mean,
                     c.foreign_count);
  ImGui::Text("foreign / test mean error: %.2fx; ROC AUC %.3f", c.ratio, c.auc);
  help_marker("The ratio of the two mean errors, and the chance that a foreign image's error exceeds a test digit's "
              "(the ROC AUC of the error as a detector of foreign images: 0.5 is chance, 1 perfect separation).");
}

void App::set_probe_labels(size_t labels) {
  ProbeJob& P = s_->instr.probe;
  if (labels == P.labels) return;
  P.labels = labels;
  P.probe.clear();
  P.running = -1;
  P.code = P.pixels = P.pca = ProbeResult();
  P.error.clear();
}

// ---- the loss picker (Model panel) ------------------------------------------------------------------------------------

void App::loss_picker() {
  State& s = *s_;
  static const char* kLosses[] = {"mse", "bce", "l1"};
  static const char* kShown[] = {"MSE", "BCE", "L1"};
  LossConfig loss = s.preset.loss;
  int which = int(std::find(std::begin(kLosses), std::end(kLosses), loss.reconstruction) - std::begin(kLosses));
  int sum = loss.reduction == Reduction::Sum;
  ImGui::AlignTextToFramePadding();
  ImGui::TextUnformatted("reconstruction loss");
  ImGui::SameLine();
  bool changed = false;
  for (int i = 0; i < 3; ++i) {
    if (i) ImGui::SameLine();
    changed |= ImGui::RadioButton(kShown[i], &which, i);
  }
  ImGui::SameLine(0, 16);
  ImGui::SetNextItemWidth(80);
  changed |= ImGui::Combo("reduction", &sum, "mean\0sum\0");
  help_marker("The reconstruction term of the loss, changed on the running model (the weights stay):\n"
              "MSE: mean squared error; BCE: binary cross-entropy, for outputs and targets in [0, 1] (a Sigmoid "
              "output, inputs normalized to [0, 1]); L1: mean absolute error.\n"
              "mean: averaged over every pixel (PyTorch's default); sum: summed over each image's pixels, averaged "
              "over the batch (the usual VAE form: 784 times larger, so the KL term weighs less).\n"
              "The loss curve starts a new segment at each change: values of different losses are not comparable.");
  if (changed && which >= 0 && which < 3) {
    Preset p = s.preset;
    p.loss.reconstruction = kLosses[which];
    p.loss.reduction = sum ? Reduction::Sum : Reduction::Mean;
    const std::string why = bce_range_problem(p);
    if (p.loss.reconstruction == "bce" && p.normalize == Normalization::MinusOneOne) {
      s.instr.loss_refused = "BCE not applied: " + why;
    } else {
      s.instr.loss_refused.clear();
      s.preset.loss = p.loss;
      apply_hyper_parameters();
      s.views_dirty = true;
    }
  }
  if (!s.instr.loss_refused.empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", s.instr.loss_refused.c_str());
    ImGui::PopTextWrapPos();
  }
  const std::string warn = bce_range_problem(s.preset);
  if (!warn.empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(ImVec4(1, 0.8f, 0.3f, 1), "Warning: %s (log of a value outside (0, 1) is undefined: training "
                       "will likely stop).", warn.c_str());
    ImGui::PopTextWrapPos();
  }
}

// ---- the Latent panel ---------------------------------------------------------------------------------------------------

float App::instruments_height() const {
  const State& s = *s_;
  const float line = ImGui::GetTextLineHeightWithSpacing(), frame = ImGui::GetFrameHeightWithSpacing();
  float h = line + frame;  // the Jacobian line, the probe's header
  if (s.run->model->is_vae()) h += line;  // the posterior line
  if (s.instr.probe.open) h += frame + line + 4 * (line + 4);  // slider, progress, table
  if (s.run->model->is_vae()) h += frame;  // the beta sweep's header, its list, state line and table
  if (s.run->model->is_vae() && s.instr.sweep.open)
    h += 2 * frame + 2 * line + float(s.instr.sweep.rows.size() + 1) * (line + 6);
  return h;
}

void App::jacobian_readout() {
  State& s = *s_;
  const JacobianJob& J = s.instr.jacobian;
  if (std::isnan(J.value)) {
    ImGui::TextDisabled("encoder Jacobian ||d code / d x||_F^2: computing on %zu test digits...",
                        jacobian_digits(s.code_dim, test_.count));
  } else {
    ImGui::Text("encoder Jacobian ||d code / d x||_F^2 = %.4g", J.value);
    ImGui::SameLine();
    if (J.active && J.first)
      ImGui::TextDisabled("(mean over %zu of %zu test digits so far, step %zu)", J.value_digits, J.digits, J.value_step);
    else
      ImGui::TextDisabled("(mean over %zu test digits, step %zu)", J.value_digits, J.value_step);
  }
  char help[640];
  std::snprintf(help, sizeof help,
                "The squared Frobenius norm of the encoder's Jacobian: the sum over every code number and every pixel "
                "of (d code / d pixel)^2, i.e. how strongly the code moves when the input moves. A contractive "
                "autoencoder (lesson 002) penalizes exactly this, so its value is lower there. Exact: one backward "
                "pass per code number (%zu here) over %zu clean test digits (fewer digits for larger codes, to bound "
                "the work), computed between frames on a snapshot of the weights, refreshed as the model trains.",
                s.code_dim, jacobian_digits(s.code_dim, test_.count));
  help_marker(help);
}

void App::probe_section() {
  State& s = *s_;
  ProbeJob& P = s.instr.probe;
  if (P.open_request) ImGui::SetNextItemOpen(true), P.open_request = false;
  P.open = ImGui::CollapsingHeader("Code probe: what is the code good for?");
  if (!P.open) return;
  if (!P.error.empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(ImVec4(1, 0.6f, 0.4f, 1), "The probe cannot run: %s", P.error.c_str());
    ImGui::PopTextWrapPos();
    return;
  }
  const int top = int(std::min<size_t>(60000, train_.count));
  int labels = int(std::clamp<size_t>(P.labels, 10, size_t(std::max(top, 10))));
  ImGui::SetNextItemWidth(std::max(120.f, ImGui::GetContentRegionAvail().x - 220));
  if (ImGui::SliderInt("labelled examples", &labels, 10, std::max(top, 10), "%d", ImGuiSliderFlags_Logarithmic |
                       ImGuiSliderFlags_AlwaysClamp))
    set_probe_labels(size_t(labels));
  char help[900];
  const size_t code = s.code_dim;
  std::snprintf(help, sizeof help,
                "Two classifiers learn the digit from a few labelled training images (a class-balanced subset of "
                "that many), then are scored on test digits: softmax regression (200 full-batch Adam steps, on the "
                "10,000 test digits) and 5-nearest-neighbours (on the first 2,000 test digits). Rows: the model's "
                "codes (%zu numbers), the raw pixels, and the pixels' PCA codes of the same size as the code. "
                "Reduced: features of more than 128 numbers are first projected on their top 128 principal "
                "components (fitted on 2,000 training images, no labels): the pixels always (784 -> 128)%s. "
                "The codes are probed again whenever the model has trained since; pixels and PCA once per label "
                "count.",
                code, code > 128 ? ", and this code too (so its PCA row equals the pixels' row)" : "");
  help_marker(help);
  if (P.running >= 0) ImGui::TextDisabled("computing the %s probe (%s)...", kProbeNames[P.running], P.probe.stage_name());
  else ImGui::TextDisabled("test accuracy; %zu labelled training images", P.labels);
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchProp;
  if (ImGui::BeginTable("probe", 4, flags)) {
    ImGui::TableSetupColumn("features");
    ImGui::TableSetupColumn("numbers");
    ImGui::TableSetupColumn("softmax acc.");
    ImGui::TableSetupColumn("5-NN acc.");
    ImGui::TableHeadersRow();
    const ProbeResult* rows[3] = {&P.code, &P.pixels, &P.pca};
    for (int i = 0; i < 3; ++i) {
      const ProbeResult& r = *rows[i];
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      if (i == 0 && r.labels) ImGui::Text("codes (step %zu)", P.code_step);
      else ImGui::TextUnformatted(i == 0 ? "codes" : i == 1 ? "pixels" : P.pca_is_pixels ? "PCA (= pixels)" : "PCA codes");
      ImGui::TableNextColumn();
      if (r.labels == 0) ImGui::TextDisabled("-");
      else if (r.dims != r.input_dims) ImGui::Text("%zu -> %zu", r.input_dims, r.dims);
      else ImGui::Text("%zu", r.dims);
      for (double acc : {r.softmax_accuracy, r.knn_accuracy}) {
        ImGui::TableNextColumn();
        if (r.labels == 0 || !std::isfinite(acc)) ImGui::TextDisabled("...");
        else ImGui::Text("%.1f%%", 100 * acc);
      }
    }
    ImGui::EndTable();
  }
}

// Click a dot to select its digit; for a VAE its posterior q(z|x) = N(mu, sigma^2) is drawn over the plot: the 2-sigma
// ellipse (of the 2-d code, or of its projection on the PCA plane) and z samples drawn live.
void App::select_posterior(int digit) {
  PosteriorView& v = s_->instr.posterior;
  if (digit == v.digit) return;
  v.digit = digit;
  v.step = size_t(-1);
  v.samples.clear();
}

void App::posterior_overlay(ImDrawList* dl, ImVec2 p0, float side, float x0, float x1, float y0, float y1, bool umap) {
  State& s = *s_;
  PosteriorView& v = s.instr.posterior;
  const size_t d = s.code_dim;
  if (v.digit < 0 || size_t(v.digit) >= s.n_view || s.instr.logvars.size() != s.n_view * d) return;
  if (v.step != s.refreshed_step) {  // the dots moved: the digit's posterior as of the same weights
    v.mu.assign(s.codes.begin() + v.digit * d, s.codes.begin() + (v.digit + 1) * d);
    v.logvar.assign(s.instr.logvars.begin() + v.digit * d, s.instr.logvars.begin() + (v.digit + 1) * d);
    v.step = s.refreshed_step;
    v.samples = sample_posterior(v.mu.data(), v.logvar.data(), d, kPosteriorSamples, v.rng);  // a whole cloud at once
  }
  // Live: every frame the oldest few samples make way for new ones.
  const std::vector<float> z = sample_posterior(v.mu.data(), v.logvar.data(), d, kPosteriorSamplesPerFrame, v.rng);
  v.samples.erase(v.samples.begin(), v.samples.begin() + std::ptrdiff_t(z.size()));
  v.samples.insert(v.samples.end(), z.begin(), z.end());
  if (umap) return;  // a UMAP layout has no map for new points: the panel says so
  auto to_screen = [&](float x, float y) {
    return ImVec2(p0.x + side * (x - x0) / (x1 - x0), p0.y + side * (1 - (y - y0) / (y1 - y0)));
  };
  // The plane's coordinates of a code, and the 2x2 covariance of the posterior there.
  auto plane = [&](const float* code, float out[2]) {
    if (d == 2) out[0] = code[0], out[1] = code[1];
    else {
      float c[2] = {0, 0};
      s.code_pca.project(code, 1, c);
      out[0] = c[0], out[1] = s.code_pca.k > 1 ? c[1] : 0.f;
    }
  };
  double cov[3] = {0, 0, 0};  // xx, xy, yy
  for (size_t j = 0; j < d; ++j) {
    const double var = std::exp(double(v.logvar[j]));
    const double a = d == 2 ? (j == 0) : s.code_pca.components[j];
    const double b = d == 2 ? (j == 1) : s.code_pca.k > 1 ? s.code_pca.components[d + j] : 0.0;
    cov[0] += a * a * var, cov[1] += a * b * var, cov[2] += b * b * var;
  }
  // The 2-sigma ellipse: centre + 2 (sqrt(l1) cos t e1 + sqrt(l2) sin t e2), from the covariance's eigenvectors.
  const double tr = cov[0] + cov[2], det = cov[0] * cov[2] - cov[1] * cov[1];
  const double disc = std::sqrt(std::max(0.0, tr * tr / 4 - det));
  const double l1 = tr / 2 + disc, l2 = std::max(0.0, tr / 2 - disc);
  double e1[2] = {1, 0};
  if (std::fabs(cov[1]) > 1e-12) {
    e1[0] = l1 - cov[2], e1[1] = cov[1];
    const double len = std::hypot(e1[0], e1[1]);
    e1[0] /= len, e1[1] /= len;
  } else if (cov[2] > cov[0]) {
    e1[0] = 0, e1[1] = 1;
  }
  float c[2];
  plane(v.mu.data(), c);
  constexpr int kRim = 64;
  float rim[kRim][2];
  for (int k = 0; k < kRim; ++k) {
    const double t = 2 * 3.14159265358979 * k / kRim, a = 2 * std::sqrt(l1) * std::cos(t), b = 2 * std::sqrt(l2) * std::sin(t);
    rim[k][0] = float(c[0] + a * e1[0] - b * e1[1]), rim[k][1] = float(c[1] + a * e1[1] + b * e1[0]);
  }
  const size_t n = v.samples.size() / d;
  std::vector<float> zs(2 * n);
  for (size_t i = 0; i < n; ++i) plane(v.samples.data() + i * d, &zs[2 * i]);
  const ImU32 yellow = IM_COL32(255, 230, 80, 255);
  // Samples (newest brightest), ellipse and mu through a map from the plane to the screen.
  auto draw = [&](auto&& at, float dot) {
    for (size_t i = 0; i < n; ++i)
      dl->AddCircleFilled(at(zs[2 * i], zs[2 * i + 1]), dot, IM_COL32(255, 255, 255, int(60 + 170 * (i + 1) / n)), 6);
    ImVec2 pts[kRim];
    for (int k = 0; k < kRim; ++k) pts[k] = at(rim[k][0], rim[k][1]);
    dl->AddPolyline(pts, kRim, yellow, ImDrawFlags_Closed, 2.f);
    const ImVec2 m = at(c[0], c[1]);
    dl->AddLine(ImVec2(m.x - 4, m.y), ImVec2(m.x + 4, m.y), yellow, 1.5f);
    dl->AddLine(ImVec2(m.x, m.y - 4), ImVec2(m.x, m.y + 4), yellow, 1.5f);
  };
  draw(to_screen, 1.8f);
  const ImVec2 m = to_screen(c[0], c[1]);
  dl->AddCircle(m, 9, yellow, 16, 1.5f);  // the selected digit, findable however small its posterior
  // A close-up in the plot's top-right corner: the posterior is often a few percent of the plot's range. It spans
  // mu +- twice the ellipse's longest radius, at one scale on both axes, with the view's dots that fall inside.
  const double half = 4 * std::sqrt(l1);
  if (!(half > 0) || !std::isfinite(half)) return;
  const float box = std::floor(std::min(150.f, side * 0.38f));
  const ImVec2 b0(p0.x + side - box - 4, p0.y + 4), b1(b0.x + box, b0.y + box);
  auto to_box = [&](float x, float y) {
    return ImVec2(b0.x + box * float(0.5 + (x - c[0]) / (2 * half)), b0.y + box * float(0.5 - (y - c[1]) / (2 * half)));
  };
  dl->AddRectFilled(b0, b1, IM_COL32(14, 14, 18, 240));
  dl->PushClipRect(b0, b1, true);
  for (size_t i = 0; i < s.n_view && 2 * i + 1 < s.xy.size(); ++i) {
    const float x = s.xy[2 * i], y = s.xy[2 * i + 1];
    if (std::fabs(x - c[0]) > half * 1.1 || std::fabs(y - c[1]) > half * 1.1 || int(i) == v.digit) continue;
    dl->AddCircleFilled(to_box(x, y), 3.f, kDigitColors[test_.labels.empty() ? 7 : test_.labels[i] % 10], 8);
  }
  draw(to_box, 2.2f);
  dl->PopClipRect();
  dl->AddRect(b0, b1, IM_COL32(255, 230, 80, 160));
  char label[64];
  std::snprintf(label, sizeof label, "%.2g wide", 2 * half);  // the close-up's width in code units
  dl->AddText(ImVec2(b0.x + 4, b1.y - 16), IM_COL32(230, 230, 230, 255), label);
}

void App::posterior_readout(bool umap) {
  State& s = *s_;
  const PosteriorView& v = s.instr.posterior;
  if (!s.run->model->is_vae()) return;
  if (v.digit < 0 || v.mu.empty()) {
    ImGui::TextDisabled("Click a dot to see that digit's posterior q(z|x).");
    return;
  }
  std::string sig;
  for (size_t j = 0; j < v.logvar.size() && j < 4; ++j) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%.3g", j ? ", " : "", std::exp(0.5 * v.logvar[j]));
    sig += b;
  }
  if (v.logvar.size() > 4) sig += ", ...";
  ImGui::Text("test #%d (digit %d): sigma = (%s)", v.digit, test_.labels.empty() ? -1 : test_.labels[v.digit],
              sig.c_str());
  help_marker(umap ? "The VAE's encoder gives each digit a Gaussian N(mu, sigma^2), not a point. A UMAP layout has no "
                     "place for new points: switch to the PCA view to see its samples."
                   : s.code_dim == 2 ? "The VAE's encoder gives each digit a Gaussian N(mu, sigma^2), not a point: the "
                                       "yellow ellipse holds mu +- 2 sigma (about 86% of the samples of a 2-d Gaussian), "
                                       "the white dots are z drawn from it live, as training draws them. The box at the "
                                       "top right is a close-up of it (one scale on both axes), with the codes of other "
                                       "test digits that fall there."
                                     : "The VAE's encoder gives each digit a Gaussian N(mu, sigma^2), not a point: its "
                                       "samples z, drawn live, and the 2-sigma ellipse of their projection on the PCA "
                                       "plane; the box at the top right is a close-up of it.");
}

// ---- commands and status ------------------------------------------------------------------------------------------------

// Validates the instruments' settings of a command into p (loss, reduction) and `c`; errors and warnings appended.
void App::parse_instrument_command(const json& cmd, Preset& p, InstrumentCommand& c, std::vector<std::string>& errors) {
  if (cmd.contains("loss")) {
    const json& v = cmd.at("loss");
    if (v == "mse" || v == "bce" || v == "l1") p.loss.reconstruction = v.get<std::string>(), c.loss_given = true;
    else errors.push_back("loss must be \"mse\", \"bce\" or \"l1\" (the reconstruction loss), got " + v.dump());
  }
  if (cmd.contains("reduction")) {
    const json& v = cmd.at("reduction");
    if (v == "mean" || v == "sum") p.loss.reduction = v == "sum" ? Reduction::Sum : Reduction::Mean, c.loss_given = true;
    else errors.push_back("reduction must be \"mean\" or \"sum\", got " + v.dump());
  }
  if (c.loss_given) {
    const std::string why = bce_range_problem(p);
    if (!why.empty() && p.normalize == Normalization::MinusOneOne) errors.push_back("loss: " + why);
    else if (!why.empty()) c.warnings.push_back("loss: " + why);
  }
  auto integer = [&](const char* key, double lo, double hi, double& out) {
    if (!cmd.contains(key)) return false;
    const json& v = cmd.at(key);
    const double d = command_number(v);
    if (!(d >= lo && d <= hi) || d != std::floor(d)) {
      char range[96];
      std::snprintf(range, sizeof range, " must be a whole number from %g to %g, got ", lo, hi);
      errors.push_back(key + std::string(range) + v.dump());
      return false;
    }
    out = d;
    return true;
  };
  double d;
  const double max_labels = has_data() ? double(std::min<size_t>(60000, train_.count)) : 60000.0;
  if (integer("probeLabels", 10, max_labels, d)) c.probe_labels = long(d);
  const double max_digit = double(std::min(view_images, has_data() ? test_.count : view_images)) - 1;
  if (cmd.contains("foreignData")) {
    const json& v = cmd.at("foreignData");
    if (v == "none" || v == "fashion" || v == "own") c.foreign = v == "none" ? 0 : v == "fashion" ? 1 : 2;
    else errors.push_back("foreignData must be \"fashion\", \"own\" or \"none\", got " + v.dump());
  }
  if (cmd.contains("betaSweep")) {  // [0.25, 1, 4, 16] or "0.25,1,4,16"; [] or "" ends the sweep
    const json& v = cmd.at("betaSweep");
    try {
      std::vector<double> betas;
      if (v.is_string()) {
        const std::string text = v.get<std::string>();
        if (text.find_first_not_of(" \t") != std::string::npos) betas = parse_sweep_betas(text);
      } else if (v.is_array()) {
        for (const json& b : v) {
          if (!b.is_number()) throw std::runtime_error("beta sweep: each beta must be a number, got " + b.dump());
          betas.push_back(b.get<double>());
        }
        if (!betas.empty()) check_sweep_betas(betas);
      } else {
        throw std::runtime_error("betaSweep must be a list of betas such as [0.25, 1, 4, 16], or [] to end the sweep; got " +
                                 v.dump());
      }
      if (!betas.empty() && !p.is_vae())
        throw std::runtime_error("beta sweep: " + p.name + " is not a VAE (beta weighs the KL term of a VAE's loss)");
      if (!betas.empty() && s_->lesson.active)
        throw std::runtime_error("beta sweep: leave the lesson first (a lesson sets up its own runs)");
      c.sweep_given = true;
      c.sweep = betas;
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }
  if (integer("posteriorDigit", -1, max_digit, d)) {
    if (d >= 0 && !p.is_vae()) errors.push_back("posteriorDigit: this model is not a VAE (it has no posterior)");
    else c.posterior_digit = int(d);
  }
}

// Applies what parse_instrument_command validated, after the rest of the command.
void App::apply_instrument_command(const InstrumentCommand& c) {
  State& s = *s_;
  if (c.loss_given && (s.run->preset.loss.reconstruction != s.preset.loss.reconstruction ||
                       s.run->preset.loss.reduction != s.preset.loss.reduction)) {
    apply_hyper_parameters();
    s.views_dirty = true;
  }
  if (c.probe_labels > 0) {
    set_probe_labels(size_t(c.probe_labels));
    s.instr.probe.requested = s.instr.probe.open_request = true;
  }
  if (c.posterior_digit >= -1) select_posterior(c.posterior_digit);
  if (c.foreign >= 0) set_foreign_source(ForeignSource(c.foreign));
  if (c.sweep_given && c.sweep.empty()) end_beta_sweep("Beta sweep ended.");
  if (c.sweep_given && !c.sweep.empty()) {
    start_beta_sweep(c.sweep);  // checked: does not throw
    s.instr.sweep.open_request = true;
  }
  if (!c.warnings.empty()) message = c.warnings[0];
}

json App::instrument_status() const {
  const State& s = *s_;
  const JacobianJob& J = s.instr.jacobian;
  const ProbeJob& P = s.instr.probe;
  const PosteriorView& v = s.instr.posterior;
  const LossCurve& c = s.run->curve;
  json segments = json::array();
  for (size_t k = 0; k < c.segments.size(); ++k) {
    const auto tr = c.train_range(k), te = c.test_range(k);
    segments.push_back({{"loss", c.segments[k].loss},
                        {"fromStep", tr.second > tr.first ? json(c.step[tr.first]) : json(nullptr)},
                        {"trainPoints", tr.second - tr.first},
                        {"testPoints", te.second - te.first}});
  }
  const std::string warn = bce_range_problem(s.preset);
  json probe = nullptr;
  if (P.code.labels || P.running >= 0 || !P.error.empty())
    probe = {{"labels", P.labels},
             {"step", P.code.labels ? json(P.code_step) : json(nullptr)},
             {"code", probe_json(P.code)},
             {"pixels", probe_json(P.pixels)},
             {"pca", probe_json(P.pca)},
             {"pcaIsPixels", P.pca_is_pixels},
             {"running", P.running >= 0 ? json(kProbeNames[P.running]) : json(nullptr)},
             {"stage", P.running >= 0 ? json(P.probe.stage_name()) : json(nullptr)},
             {"error", P.error.empty() ? json(nullptr) : json(P.error)}};
  json posterior = nullptr;
  if (v.digit >= 0 && !v.mu.empty()) {
    std::vector<float> sigma(v.logvar.size());
    for (size_t j = 0; j < sigma.size(); ++j) sigma[j] = std::exp(0.5f * v.logvar[j]);
    // The cloud's own mean and standard deviation per unit, to compare with mu and sigma.
    const size_t d = v.mu.size(), n = d ? v.samples.size() / d : 0;
    std::vector<double> mean(d, 0.0), sd(d, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) mean[j] += v.samples[i * d + j] / double(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) sd[j] += (v.samples[i * d + j] - mean[j]) * (v.samples[i * d + j] - mean[j]) / double(n);
    for (double& x : sd) x = std::sqrt(x);
    posterior = {{"digit", v.digit}, {"step", v.step}, {"mu", v.mu}, {"sigma", sigma}, {"samples", n},
                 {"sampleMean", n ? json(mean) : json(nullptr)}, {"sampleStd", n ? json(sd) : json(nullptr)}};
  }
  const ForeignView& F = s.instr.foreign;
  const ErrorComparison& fc = F.compared;
  json foreign = nullptr;
  if (fc.test_count)
    foreign = {{"name", F.value_name},
               {"step", F.value_step},
               {"n", fc.foreign_count},
               {"meanError", fc.foreign_mean},
               {"testN", fc.test_count},
               {"testMeanError", fc.test_mean},
               {"ratio", std::isfinite(fc.ratio) ? json(fc.ratio) : json(nullptr)},
               {"auc", fc.auc},
               {"histogram", {{"hi", fc.hi}, {"test", fc.test_hist}, {"foreign", fc.foreign_hist}}},
               {"rowErrors", std::vector<float>(F.row_err, F.row_err + F.row_count)}};
  static const char* kSources[] = {"none", "fashion", "own"};
  const Dataset* fd = foreign_data();
  return {{"loss", s.preset.loss.reconstruction},
          {"reduction", s.preset.loss.reduction == Reduction::Sum ? "sum" : "mean"},
          {"lossWarning", warn.empty() ? json(nullptr) : json(warn)},
          {"lossSegments", segments},
          // ||d code / d x||_F^2, mean over jacobianDigits test digits at jacobianStep (instrument_values' name)
          {"jacobianNorm", std::isnan(J.value) ? json(nullptr) : json(J.value)},
          {"jacobianDigits", std::isnan(J.value) ? json(nullptr) : json(J.value_digits)},
          {"jacobianStep", std::isnan(J.value) ? json(nullptr) : json(J.value_step)},
          {"probeLabels", P.labels},
          {"probe", probe},
          {"posteriorDigit", v.digit},
          {"posterior", posterior},
          {"foreignData", kSources[int(F.source)]},
          {"foreignImages", fd ? fd->count : 0},  // of the chosen foreign set, loaded
          {"foreignRunning", F.active},
          {"foreign", foreign},
          {"betaSweep", sweep_status()}};
}

}  // namespace aep
