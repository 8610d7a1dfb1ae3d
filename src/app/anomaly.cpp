// Anomaly detection by reconstruction error: the Anomaly panel, and the scores it shows, from the views' per-image
// errors (the threshold, the worst digits, how well the error separates out-of-distribution images: AUC and ROC).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "app/app_state.hpp"
#include "core/metrics.hpp"

namespace aep {

void AnomalyView::score(const std::vector<float>& errors, const Dataset& test, Normalization norm) {
  if (errors.empty()) return;
  // The threshold follows the 99th percentile until the learner moves it; the 16 worst digits.
  std::vector<float> sorted = errors;
  std::sort(sorted.begin(), sorted.end());
  if (!threshold_set_by_user) threshold = sorted[size_t(0.99 * (sorted.size() - 1))];
  std::vector<uint32_t> order(errors.size());
  for (size_t i = 0; i < errors.size(); ++i) order[i] = uint32_t(i);
  std::partial_sort(order.begin(), order.begin() + std::min<size_t>(16, order.size()), order.end(),
                    [&](uint32_t a, uint32_t b) { return errors[a] > errors[b]; });
  worst.resize(8 * 30, 2 * 30);
  const float lo = range_min(norm), hi = range_max(norm);
  Tensor x;
  for (int i = 0; i < 16 && i < int(order.size()); ++i) {
    fill_batch(test, &order[i], 1, norm, x);
    worst.put_digit((i % 8) * 30, (i / 8) * 30, x.data(), lo, hi);
  }
  // Out-of-distribution scores: uniform noise images, or one digit against the others.
  std::vector<float> pos, neg;
  if (mode != 1) {
    pos = outlier_errors;
    neg = errors;
  } else if (!test.labels.empty()) {
    for (size_t i = 0; i < errors.size(); ++i) (test.labels[i] == digit ? pos : neg).push_back(errors[i]);
  }
  auc = pos.empty() || neg.empty() ? NAN : roc_auc(pos, neg);
  // ROC curve: sweep the threshold down through every score.
  roc.clear();
  if (!pos.empty() && !neg.empty()) {
    std::vector<std::pair<float, int>> all;
    for (float v : pos) all.push_back({v, 1});
    for (float v : neg) all.push_back({v, 0});
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
    size_t tp = 0, fp = 0, stride = std::max<size_t>(1, all.size() / 200);
    roc.push_back(ImVec2(0, 0));
    for (size_t i = 0; i < all.size(); ++i) {
      (all[i].second ? tp : fp)++;
      if (i % stride == 0 || i + 1 == all.size()) roc.push_back(ImVec2(float(fp) / neg.size(), float(tp) / pos.size()));
    }
  }
}

void App::panel_anomaly() {
  State& s = *s_;
  if (!s.layout.begin(kPanelAnomaly, &show_panel[kPanelAnomaly])) return ImGui::End();
  if (s.errors.empty()) {
    ImGui::TextUnformatted(has_data() ? "Encoding the test digits..." : "Waiting for data.");
    return ImGui::End();
  }
  float emax = *std::max_element(s.errors.begin(), s.errors.end());
  const int bins = 50;
  float hist[bins] = {};
  for (float e : s.errors) hist[std::min(bins - 1, int(e / (emax + 1e-12f) * bins))] += 1;
  ImGui::Text("Reconstruction error (MSE) of %zu test digits", s.errors.size());
  ImGui::PlotHistogram("##hist", hist, bins, 0, nullptr, 0, FLT_MAX, ImVec2(-1, 80));
  ImGui::SetNextItemWidth(-120);
  if (ImGui::SliderFloat("threshold", &s.anomaly.threshold, 0.f, emax, "%.4f")) s.anomaly.threshold_set_by_user = true;
  size_t above = size_t(std::count_if(s.errors.begin(), s.errors.end(), [&](float e) { return e > s.anomaly.threshold; }));
  ImGui::Text("%zu digits (%.1f%%) above the threshold are flagged as anomalies", above, 100.0 * above / s.errors.size());
  ImGui::TextDisabled("The 16 worst-reconstructed test digits:");
  s.anomaly.worst.show(tex_, 1.5f);
  ImGui::SeparatorText("Separate normal from abnormal");
  bool ch = ImGui::RadioButton("noise images", &s.anomaly.mode, 0);
  ImGui::SameLine();
  ch |= ImGui::RadioButton("one digit vs the rest", &s.anomaly.mode, 1);
  ImGui::SameLine();
  ch |= ImGui::RadioButton("Fashion-MNIST", &s.anomaly.mode, 2);
  if (s.anomaly.mode == 1) {
    ImGui::SetNextItemWidth(100);
    ch |= ImGui::SliderInt("digit", &s.anomaly.digit, 0, 9);
    ImGui::SameLine();
    if (s.held_out == s.anomaly.digit) {
      ImGui::TextDisabled("(held out of training)");
    } else if (ImGui::SmallButton("hold it out of training")) {
      s.held_out = s.anomaly.digit;
      reset_training();
      message = "Training now leaves out every " + std::to_string(s.held_out) + ": train, then see how well its "
                "reconstruction error separates it from the other digits.";
    }
  }
  if (s.anomaly.mode == 2 && s.ood.count == 0) {
    want_fashion();
    ImGui::TextDisabled("loading Fashion-MNIST test images ...");
  }
  if (ch) s.views_dirty = true;
  const char* what = s.anomaly.mode == 0 ? "uniform-noise images" : s.anomaly.mode == 2 ? "Fashion-MNIST images"
                                                                   : "the chosen digit";
  ImGui::Text("ROC AUC %.3f  (%s vs test digits)", s.anomaly.auc, what);
  help_marker("The reconstruction error as an anomaly score. The ROC curve plots the share of anomalies caught "
              "(up) against the share of normal digits wrongly flagged (right) as the threshold falls; its area is 1 "
              "for perfect separation and 0.5 for chance.");
  if (!s.anomaly.roc.empty()) {
    float side = std::min(160.f, ImGui::GetContentRegionAvail().x);
    ImVec2 p0 = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + side, p0.y + side), IM_COL32(20, 20, 24, 255));
    dl->AddLine(ImVec2(p0.x, p0.y + side), ImVec2(p0.x + side, p0.y), IM_COL32(90, 90, 90, 255));
    std::vector<ImVec2> pts;
    for (ImVec2 r : s.anomaly.roc) pts.push_back(ImVec2(p0.x + r.x * side, p0.y + (1 - r.y) * side));
    dl->AddPolyline(pts.data(), int(pts.size()), IM_COL32(255, 200, 60, 255), 0, 2.f);
    ImGui::Dummy(ImVec2(side, side));
  }
  ImGui::End();
}

}  // namespace aep
