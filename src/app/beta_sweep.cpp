// The beta sweep in the page (issue 15): the run's VAE at several betas beside it, trained on its batches, compared as
// they train in the Latent panel - reconstruction error, KL in all and per unit, active units - and in status().
#include "app/app_state.hpp"

#include <algorithm>
#include <cmath>

namespace aep {

// The sweep's runs start from fresh weights with the run's seed and data, and so does the run: all take the same
// batches from here on. Throws (changing nothing) when the model is not a VAE or the betas are refused.
void App::start_beta_sweep(const std::vector<double>& betas) {
  State& s = *s_;
  make_sweep_runs(s.preset, s.seed, betas);  // checks the model and the betas before anything changes
  if (s.lesson.active) throw std::runtime_error("beta sweep: leave the lesson first (a lesson sets up its own runs)");
  SweepView& W = s.instr.sweep;
  W.betas = betas;
  W.refused.clear();
  const std::string text = sweep_betas_text(betas);
  std::snprintf(W.text, sizeof W.text, "%s", text.c_str());
  reset_training();  // the sweep's runs are built beside the fresh run (rebuild_sweep)
  message = "Beta sweep: " + s.preset.name + " at beta = " + text +
            " beside this run, all from fresh weights on the same batches. Train to compare them.";
}

void App::end_beta_sweep(const std::string& why) {
  SweepView& W = s_->instr.sweep;
  if (W.betas.empty()) return;
  W.betas.clear();
  W.runs.clear();
  W.errors.clear();
  W.measure.clear();
  W.measuring = false;
  W.measured_key = size_t(-1);
  W.rows.clear();
  runs_changed();
  if (!why.empty()) message = why;
}

void App::rebuild_sweep() {
  State& s = *s_;
  SweepView& W = s.instr.sweep;
  if (W.betas.empty()) return;
  if (!s.preset.is_vae()) return end_beta_sweep("Beta sweep ended: " + s.preset.name + " is not a VAE.");
  if (s.lesson.active) return end_beta_sweep("Beta sweep ended: the lesson sets up its own runs.");
  if (s.run->steps != 0)  // restored or loaded weights: fresh sweep runs could not take its batches
    return end_beta_sweep("Beta sweep ended: the run continues from trained weights.");
  W.runs = make_sweep_runs(s.preset, s.seed, W.betas);
  for (auto& r : W.runs)
    if (has_data()) r->set_data(train_, s.held_out, true, data_complete_);
  W.errors.assign(W.runs.size(), "");
  W.measure.clear();
  W.measuring = false;
  W.measured_key = size_t(-1);
  W.rows.clear();
  runs_changed();
}

// The run's learning rate, loss, corruption and batch size, each run with its own beta.
void App::sync_sweep() {
  State& s = *s_;
  SweepView& W = s.instr.sweep;
  for (size_t i = 0; i < W.runs.size(); ++i) {
    Preset p = s.run->preset;
    p.loss.beta = float(W.betas[i]);
    p.training.batch_size = s.run->sampler ? s.run->sampler->batch_size() : s.preset.training.batch_size;
    W.runs[i]->apply_settings(p);
  }
}

bool App::sweep_in_lockstep() const {
  const State& s = *s_;
  const SweepView& W = s.instr.sweep;
  const size_t first = s.lesson.twin ? 2 : 1;  // the sweep's runs among the hosted ones (hosted_runs)
  for (size_t i = 0; i < W.runs.size(); ++i)
    if (W.errors[i].empty() && hosted_in_lockstep(first + i, *W.runs[i])) return true;
  return false;
}

// Training in the frames: before the run's step, the sweep's runs still at its position take the same batch.
void App::step_sweep() {
  State& s = *s_;
  SweepView& W = s.instr.sweep;
  std::vector<Run*> runs;
  std::vector<size_t> index;
  for (size_t i = 0; i < W.runs.size(); ++i)
    if (W.errors[i].empty() && in_lockstep(*s.run, *W.runs[i])) runs.push_back(W.runs[i].get()), index.push_back(i);
  if (runs.empty()) return;
  const std::vector<LockstepStep> out = step_lockstep(runs);
  for (size_t k = 0; k < out.size(); ++k)
    if (!out[k].error.empty()) W.errors[index[k]] = out[k].error;
}

// A measurement of every run starts from snapshots taken together when they have trained since the last, at most once
// a second while training; then a slice of one run's measurement per call. Returns whether it worked.
bool App::step_sweep_measure(double budget_ms) {
  State& s = *s_;
  SweepView& W = s.instr.sweep;
  if (W.runs.empty() || !has_data()) return false;
  if (!W.measuring) {
    size_t key = 0;
    for (const auto& r : W.runs) key += r->steps;
    if (key == W.measured_key || (s.running && seconds_since(W.measure_start) < 1.0)) return false;
    W.measure.resize(W.runs.size());
    MeasureOptions o = sweep_measure_options();
    o.digit_anomaly = true;  // no noise images (anomalyAuc): the sweep reads none of it
    for (size_t i = 0; i < W.runs.size(); ++i) W.measure[i].begin(*W.runs[i], test_, o);
    W.measuring = true;
    W.measured_key = key;
    W.measure_start = Clock::now();
    return true;
  }
  const auto add_row = [&](size_t i) {
    W.rows.push_back(sweep_row(W.measure[i], W.betas[i]));
    W.rows.back().error = W.errors[i];
  };
  for (size_t i = 0; i < W.measure.size(); ++i)
    if (W.measure[i].active()) {
      W.measure[i].step(budget_ms);
      if (W.measure[i].active()) return true;
      // The first measurement shows each row when it is done: the page measures in a quarter of its time while a
      // worker trains, and four vae-mlp-16 runs took it over 20 s (the table said "measuring" all along).
      if (W.rows.size() == i) add_row(i);
      if (i + 1 < W.measure.size()) return true;
      break;  // the last one: done
    }
  W.rows.clear();
  for (size_t i = 0; i < W.runs.size(); ++i) add_row(i);
  W.measuring = false;
  return true;
}

json App::sweep_status() const {
  const SweepView& W = s_->instr.sweep;
  if (W.betas.empty()) return nullptr;
  json rows = json::array();
  for (const SweepRow& r : W.rows) rows.push_back(sweep_row_json(r));
  json steps = json::array();
  for (const auto& r : W.runs) steps.push_back(r->steps);
  return {{"betas", W.betas},
          {"step", W.rows.empty() ? json(nullptr) : json(W.rows[0].step)},  // of the rows (measured together)
          {"runSteps", steps},
          {"testImages", kSweepTestImages},
          {"inLockstep", sweep_in_lockstep()},
          {"measuring", W.measuring},
          {"rows", rows}};
}

// ---- drawing (Latent panel, VAE only) ------------------------------------------------------------------------------

void App::beta_sweep_section() {
  State& s = *s_;
  SweepView& W = s.instr.sweep;
  if (!s.run->model->is_vae()) return;
  if (W.open_request) ImGui::SetNextItemOpen(true), W.open_request = false;
  W.open = ImGui::CollapsingHeader("Beta sweep: the same VAE at several betas");
  if (!W.open) return;
  ImGui::SetNextItemWidth(std::max(120.f, ImGui::GetContentRegionAvail().x - 260));
  const bool enter = ImGui::InputText("betas", W.text, sizeof W.text, ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  if (ImGui::SmallButton(W.betas.empty() ? "Start" : "Start over") || enter) {
    try {
      start_beta_sweep(parse_sweep_betas(W.text));
    } catch (const std::exception& e) {
      W.refused = e.what();
    }
  }
  if (!W.betas.empty()) {
    ImGui::SameLine();
    if (ImGui::SmallButton("End")) end_beta_sweep("Beta sweep ended.");
  }
  char help[700];
  std::snprintf(help, sizeof help,
                "Up to %zu runs of this model, one per beta (the weight of the KL term), trained beside this run from "
                "fresh weights with its seed on the same batches; starting a sweep starts this run over too. Each row: "
                "the reconstruction error (MSE per pixel against the clean digit, decoding the mean mu), the KL of "
                "q(z|x) from the prior N(0, I) in nats per digit (before beta), one bar per latent unit, and the "
                "active units (the variance over digits of the unit's mu exceeds 0.01, Burda et al. 2016), on the "
                "first %zu test digits, measured again as they train. A large beta trades reconstruction for a small "
                "KL: units collapse onto the prior (posterior collapse); vae-mlp-16 has room to show it.",
                kMaxSweepRuns, kSweepTestImages);
  help_marker(help);
  if (!W.refused.empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", W.refused.c_str());
    ImGui::PopTextWrapPos();
  }
  if (W.betas.empty()) {
    ImGui::TextDisabled("A list of up to %zu betas, e.g. 0.25, 1, 4, 16; then Train.", kMaxSweepRuns);
    return;
  }
  if (!sweep_in_lockstep() && std::all_of(W.errors.begin(), W.errors.end(), [](const std::string& e) { return e.empty(); }))
    ImGui::TextColored(ImVec4(1, 0.7f, 0.3f, 1), "paused: the batches no longer match this run's (Reset starts all over)");
  if (W.rows.empty()) {
    ImGui::TextDisabled(W.measuring ? "measuring the runs ..." : "Train to compare them.");
    return;
  }
  ImGui::TextDisabled("step %zu, %zu test digits%s", W.rows[0].step, kSweepTestImages,
                      !W.measuring                       ? ""
                      : W.rows.size() < W.runs.size()    ? " (measuring the others)"
                                                         : " (measuring again)");
  double kl_top = 0, recon_top = 0;  // one scale per column, so that the rows compare
  for (const SweepRow& r : W.rows) {
    for (double k : r.kl_per_dim) kl_top = std::max(kl_top, k);
    if (std::isfinite(r.recon)) recon_top = std::max(recon_top, r.recon);
  }
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchProp;
  if (!ImGui::BeginTable("sweep", 5, flags)) return;
  ImGui::TableSetupColumn("beta");
  ImGui::TableSetupColumn("recon. error");
  ImGui::TableSetupColumn("KL (nats)");
  ImGui::TableSetupColumn("active");
  ImGui::TableSetupColumn("KL per unit", ImGuiTableColumnFlags_WidthStretch, 2.f);
  ImGui::TableHeadersRow();
  const float bar_h = ImGui::GetTextLineHeight();
  for (const SweepRow& r : W.rows) {
    ImGui::PushID(&r);
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::Text("%g", r.beta);
    ImGui::TableNextColumn();
    // The value over a bar of its share of the column's largest.
    const ImVec2 c0 = ImGui::GetCursorScreenPos();
    const float cw = ImGui::GetContentRegionAvail().x;
    if (recon_top > 0 && std::isfinite(r.recon))
      ImGui::GetWindowDrawList()->AddRectFilled(c0, ImVec2(c0.x + cw * float(r.recon / recon_top), c0.y + bar_h),
                                                IM_COL32(80, 160, 255, 90));
    ImGui::Text("%.4f", r.recon);
    ImGui::TableNextColumn();
    ImGui::Text("%.2f", r.kl);
    ImGui::TableNextColumn();
    if (!r.error.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "diverged");
    else ImGui::Text("%zu of %zu", r.active_units, r.latent);
    if (!r.error.empty() && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", r.error.c_str());
    ImGui::TableNextColumn();
    std::vector<float> kl(r.kl_per_dim.begin(), r.kl_per_dim.end());
    ImGui::PlotHistogram("##klunits", kl.data(), int(kl.size()), 0, nullptr, 0.f, float(kl_top > 0 ? kl_top * 1.05 : 1),
                         ImVec2(ImGui::GetContentRegionAvail().x, bar_h));
    ImGui::PopID();
  }
  ImGui::EndTable();
}

}  // namespace aep
