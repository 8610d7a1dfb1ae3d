// The playground's panels: each draws from App::State and changes it only through the App's own functions.
#include "app/app_state.hpp"

#include <misc/cpp/imgui_stdlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/gemm.hpp"
#include "core/parallel.hpp"

namespace aep {

// "Lesson 003: " before a preset's description, unless the description names its lesson itself ("Lesson 003's
// denoiser: ...", "The lesson 000 conv exercise: ...").
std::string described_with_lesson(const Preset& p) {
  std::string lower = p.description;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (p.lesson.empty() || lower.find("lesson " + p.lesson) != std::string::npos) return p.description;
  return "Lesson " + p.lesson + ": " + p.description;
}

// The same model with another code size: the last encoder (or mu/logvar) Linear/Conv2d producing the code, the
// BatchNorm after it and the first decoder layer consuming it all change together. False if no such layers.
bool with_code_size(Preset& p, size_t d) {
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
  const Model* shown = s.draft_edited ? s.draft_model.get() : s.run->model.get();
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
  const bool can_apply = s.draft_model != nullptr;  // Apply resets it: Begin/EndDisabled must pair on this value
  if (!can_apply) ImGui::BeginDisabled();
  if (ImGui::Button("Apply the edited layers (training starts over)")) {
    Preset p = edited();
    if (p.title.rfind("edited: ", 0) != 0) p.title = "edited: " + p.title;
    std::string err;
    if (select_preset(p, &err)) s.draft_model.reset();
    else s.draft_error = err;
  }
  if (!can_apply) ImGui::EndDisabled();
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
  ImGui::TextWrapped("%s", described_with_lesson(s.preset).c_str());
  ImGui::Text("%zu parameters, code %s%s", s.run->model->parameter_count(), shape_str(s.run->model->code_shape(1)).c_str(),
              s.run->model->is_vae() ? " (VAE latent)" : "");
  layer_editor();  // may replace s.run->model (Apply)
  const Model& m = *s.run->model;
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
  loss_picker();
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
  if (ImGui::CollapsingHeader("Show PyTorch / Keras code")) {
    int keras = s.code_keras;
    bool changed = ImGui::RadioButton("PyTorch", &keras, 0);
    ImGui::SameLine();
    changed |= ImGui::RadioButton("Keras", &keras, 1);
    if (changed) s.code_keras = keras, s.code_text = model_code(s.preset, s.code_keras);
    ImGui::SameLine();
    if (ImGui::Button("Copy")) ImGui::SetClipboardText(s.code_text.c_str());
    ImGui::InputTextMultiline("##code", &s.code_text, ImVec2(-1, ImGui::GetTextLineHeight() * 16),
                              ImGuiInputTextFlags_ReadOnly);
  }
  ImGui::End();
}

void App::panel_data() {
  State& s = *s_;
  if (!s.layout.begin(kPanelData, &show_panel[kPanelData])) return ImGui::End();
  if (has_data()) {
    ImGui::Text("%zu training, %zu test images (%zux%zu, kept as bytes)", train_.count, test_.count, train_.rows, train_.cols);
    if (!data_complete_) {  // the page trains on a first part of MNIST while the rest downloads
      ImGui::TextWrapped("A first part of MNIST: the rest joins training at the next epoch once it is in. %s",
                         loading_.c_str());
    }
  } else
    ImGui::TextUnformatted(loading_.empty() ? "No data loaded." : loading_.c_str());
  if (ImGui::Button("Use your own IDX files ...")) driver_->open_file();
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

// Points [begin, end) of a curve (one segment: a loss's values), as one line.
void draw_curve(ImDrawList* dl, ImVec2 p0, ImVec2 size, const std::vector<float>& xs, const std::vector<float>& ys,
                std::pair<size_t, size_t> range, float x1, float y0, float y1, bool log_scale, ImU32 col,
                float smooth) {
  const size_t begin = range.first, end = std::min({range.second, xs.size(), ys.size()});
  if (begin >= end) return;
  auto Y = [&](float v) {
    float a = log_scale ? std::log10(std::max(v, 1e-12f)) : v;
    float lo = log_scale ? std::log10(std::max(y0, 1e-12f)) : y0, hi = log_scale ? std::log10(std::max(y1, 1e-12f)) : y1;
    return p0.y + size.y * (1 - (a - lo) / (hi - lo + 1e-12f));
  };
  // At most ~2 points per pixel: average runs of steps, with an exponential smoother for the noisy train loss.
  size_t stride = std::max<size_t>(1, xs.size() / size_t(std::max(size.x, 1.f)));
  std::vector<ImVec2> pts;
  float ema = ys[begin];
  for (size_t i = begin; i < end; ++i) {
    ema = smooth > 0 ? smooth * ema + (1 - smooth) * ys[i] : ys[i];
    if ((i - begin) % stride == 0 || i + 1 == end)
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
  double epoch = s.run->epoch();
  if (s.run->full_from == Run::kNotYet)  // the epochs asked for count once all of MNIST is in
    ImGui::Text("step %zu   epoch %.2f of a first part   %.0f samples/s", s.run->steps, epoch, s.samples_per_s);
  else
    ImGui::Text("step %zu   epoch %.2f / %zu   %.0f samples/s", s.run->steps, epoch, s.preset.training.epochs, s.samples_per_s);
  help_marker("Samples trained per second of wall time while training runs, drawing and views included: what you get. "
              "The engine alone, inside its training slices, is shown greyed beside it.");
  ImGui::SameLine();
  ImGui::TextDisabled("engine %.0f/s", s.engine_samples_per_s);
  ImGui::Text("train loss %s   test loss %s", loss_text(s.last_train).c_str(), loss_text(s.last_test).c_str());
  if (s.run->model->is_vae()) ImGui::Text("test KL term %s", loss_text(s.last_test_kl).c_str());
  ImGui::TextDisabled("SIMD: %s, threads: %zu", simd_arch_name(), thread_count());
  float train_ms = float(train_budget_ms);
  if (training_elsewhere()) {
    ImGui::TextDisabled("training runs beside the drawing, in a worker of its own");
    help_marker("The model trains continuously in a Web Worker (a thread on the desktop) and sends its weights here a "
                "few times a second, so drawing never slows training down. samples/s counts what it trained per second "
                "of wall time; 'engine' is its speed while training.");
  } else {
    ImGui::SetNextItemWidth(160);
    if (ImGui::SliderFloat("training ms per frame", &train_ms, 2, 50, "%.0f")) train_budget_ms = std::clamp(train_ms, 1.f, 100.f);
    help_marker("How long each frame trains before the page is drawn. More trains faster; less keeps the page smooth. "
                "On a slow computer, or a browser drawing without a GPU, try less.");
  }
  const double mb = 1 << 20;
  ImGui::TextDisabled("memory: training needs ~%.0f MB (limit %.0f MB)", s.run->model->training_bytes(s.preset.training.batch_size) / mb,
                      Model::kMemoryBudget / mb);
  if (memory_bytes) {  // on the same line where it fits, else below
    char used[96];
    if (host_memory_bytes) std::snprintf(used, sizeof used, "in use: %.0f MB page + %.0f MB training", memory_bytes / mb, host_memory_bytes / mb);
    else std::snprintf(used, sizeof used, "in use: %.0f MB", memory_bytes / mb);
    ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < ImGui::CalcTextSize(used).x + ImGui::CalcTextSize("| ").x) ImGui::NewLine();
    else ImGui::TextDisabled("|"), ImGui::SameLine();
    ImGui::TextDisabled("%s", used);
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
  if (s.run->model->is_vae()) {
    ImGui::SetNextItemWidth(w);
    ImGui::SliderFloat("beta (KL weight)", &s.preset.loss.beta, 0.f, 10.f, "%.3g");
  }

  compare_picker();
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
  range(s.run->curve);
  for (const auto& c : s.past) range(c);
  if (s.lesson.twin) range(s.lesson.twin->curve);
  if (y1 > y0) {
    if (!s.log_scale) y0 = std::min(y0, 0.f);
    // Each segment (a stretch of one loss: the loss can change while training) is its own line, never joined to
    // the next: values of different losses are different quantities.
    for (const auto& c : s.past)
      for (size_t k = 0; k < c.segments.size(); ++k) {
        draw_curve(dl, p0, size, c.step, c.train, c.train_range(k), x1, y0, y1, s.log_scale, IM_COL32(120, 160, 220, 70), 0.98f);
        draw_curve(dl, p0, size, c.test_step, c.test, c.test_range(k), x1, y0, y1, s.log_scale, IM_COL32(240, 160, 80, 70), 0);
      }
    const LossCurve& c = s.run->curve;
    for (size_t k = 0; k < c.segments.size(); ++k) {
      const auto tr = c.train_range(k), te = c.test_range(k);
      draw_curve(dl, p0, size, c.step, c.train, tr, x1, y0, y1, s.log_scale, IM_COL32(120, 170, 255, 255), 0.98f);
      draw_curve(dl, p0, size, c.test_step, c.test, te, x1, y0, y1, s.log_scale, IM_COL32(255, 170, 60, 255), 0);
      if (s.run->model->is_vae() && s.show_recon_kl) {
        draw_curve(dl, p0, size, c.step, c.recon, tr, x1, y0, y1, s.log_scale, IM_COL32(120, 220, 120, 200), 0.98f);
        draw_curve(dl, p0, size, c.step, c.kl, tr, x1, y0, y1, s.log_scale, IM_COL32(220, 120, 220, 200), 0.98f);
      }
      if (c.segments.size() < 2) continue;
      // Where the segment starts: a line and the loss's name.
      const float first = tr.second > tr.first ? c.step[tr.first] : te.second > te.first ? c.test_step[te.first] : NAN;
      if (!std::isfinite(first)) continue;
      const float x = p0.x + size.x * std::max(first - (k ? 1.f : 0.f), 0.f) / std::max(x1, 1.f);
      if (k) dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p0.y + size.y), IM_COL32(200, 200, 200, 110), 1.f);
      dl->AddText(ImVec2(x + 3, p0.y + size.y - 32), IM_COL32(230, 230, 230, 255), c.segments[k].loss.c_str());
    }
    draw_twin_curve(dl, p0, size, x1, y0, y1);
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
  if (s.run->model->is_vae() && s.show_recon_kl) {
    dl->AddText(ImVec2(p0.x + size.x - 150, ly + 28), IM_COL32(120, 220, 120, 255), "reconstruction");
    dl->AddText(ImVec2(p0.x + size.x - 150, ly + 42), IM_COL32(220, 120, 220, 255), "beta * KL");
  }
  if (s.lesson.twin) {  // a lesson's twin run: the curves above are run a's
    const float ty = ly + (s.run->model->is_vae() && s.show_recon_kl ? 56 : 28);
    dl->AddText(ImVec2(p0.x + size.x - 150, ty), IM_COL32(255, 140, 190, 255), ("b train: " + s.lesson.twin->curve.label).c_str());
    dl->AddText(ImVec2(p0.x + size.x - 150, ty + 14), IM_COL32(255, 220, 120, 255), "b test");
  }
  ImGui::InvisibleButton("##curves", size);
  if (ImGui::IsItemHovered() && !s.past.empty()) {
    ImGui::BeginTooltip();
    ImGui::Text("now: %s", s.run->curve.label.c_str());
    for (const auto& c : s.past) ImGui::TextDisabled("earlier: %s", c.label.c_str());
    ImGui::EndTooltip();
  }
  ImGui::End();
}

// Per-image errors under a row of digits drawn at `at` (a picture of width picture_w, digits every 30 pixels from x = 2,
// at `scale`): under each digit when there is room, else as a wrapped list.
void image_errors_row(const float* errors, int n, ImVec2 at, float scale, float picture_w) {
  if (30 * scale >= ImGui::CalcTextSize("0.0000 ").x) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    for (int i = 0; i < n; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", errors[i]);
      dl->AddText(ImVec2(at.x + (2 + i * 30) * scale, ImGui::GetCursorScreenPos().y), IM_COL32(220, 220, 220, 255), buf);
    }
    ImGui::Dummy(ImVec2(picture_w * scale, ImGui::GetTextLineHeight()));
  } else {
    std::string list;
    for (int i = 0; i < n; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.4f", i ? "  " : "", errors[i]);
      list += buf;
    }
    ImGui::TextWrapped("%s", list.c_str());
  }
}

void App::panel_recon() {
  State& s = *s_;
  if (!s.layout.begin(kPanelRecon, &show_panel[kPanelRecon])) return ImGui::End();
  if (s.recon.w) {
    ImGui::TextDisabled("rows: input | corrupted input | output");
    float scale = std::max(1.f, std::floor(ImGui::GetContentRegionAvail().x / s.recon.w));
    ImVec2 at = s.recon.show(tex_, scale);
    ImGui::TextDisabled("per-image MSE against the clean digit:");
    image_errors_row(s.recon_err, kReconCount, at, scale, float(s.recon.w));
    twin_recon_row();
    foreign_section();
  } else {
    ImGui::TextUnformatted(has_data() ? "Encoding the test digits..." : "Waiting for data.");
  }
  ImGui::End();
}

// Under the latent plot: how sparse the codes are, and for a VAE the KL of each latent unit with the active units.
void App::instruments_readout() {
  State& s = *s_;
  const SparsityStats& c = s.code_stats;
  if (c.digits == 0) return;
  ImGui::Text("code: %.1f%% of units silent, mean |h| %.3g", 100 * c.sparsity, c.mean_abs);
  help_marker("A unit is silent for a digit when |h| is at most 1% of that digit's largest |h| (relative, because an "
              "L1 penalty can also shrink the whole code). Over the test digits of this panel. A sparse autoencoder "
              "(lesson 004's L1 note) raises the silent share.");
  jacobian_readout();
  const PosteriorStats& q = s.posterior;
  if (q.digits == 0) return;
  std::vector<float> kl(q.kl_per_dim.begin(), q.kl_per_dim.end());
  const float top = kl.empty() ? 1.f : std::max(1.f, *std::max_element(kl.begin(), kl.end()));
  char overlay[96];
  std::snprintf(overlay, sizeof overlay, "KL %.2f nats in all; %zu of %zu units active", q.kl_total(), q.active_units,
                q.latent);
  ImGui::PlotHistogram("##kl", kl.data(), int(kl.size()), 0, overlay, 0.f, top * 1.1f,
                       ImVec2(ImGui::GetContentRegionAvail().x - 30, 60));
  help_marker("Each bar: the KL divergence of one latent unit's posterior N(mu, sigma^2) from the prior N(0, 1), "
              "averaged over the test digits (nats). A unit is active when the variance of its mu over the digits "
              "exceeds 0.01 (Burda et al. 2016): an inactive unit says the same for every digit. Raise beta to see "
              "units collapse onto the prior.");
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
  float side = std::max(120.f, std::min(grid ? avail.x * 0.5f - 6 : avail.x, avail.y - 70 - instruments_height()));
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
  if (s.run->model->is_vae()) posterior_overlay(dl, p0, side, x0, x1, y0, y1, umap);
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
  Model& m = *s.run->model;
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
      if (m.is_vae()) ImGui::TextDisabled("click: show its posterior");
      ImGui::EndTooltip();
      if (m.is_vae() && ImGui::IsMouseClicked(0)) select_posterior(best);
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

  twin_latent_view();
  posterior_readout(umap);
  instruments_readout();
  probe_section();
  beta_sweep_section();
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
    ImGui::TextUnformatted(has_data() ? "Encoding the test digits..." : "Waiting for data.");
    return ImGui::End();
  }
  Model& m = *s.run->model;
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
  Model& m = *s.run->model;
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
    per_image_mse(x.data(), y.data(), 1, &s.draw_score);
    s.draw_out.resize(28, 28);
    s.draw_out.put_digit(0, 0, y.data(), lo, hi);
    s.draw_dirty = false;
  }
  ImGui::Text("reconstruction:");
  s.draw_out.show(tex_, 4);
  ImGui::Text("anomaly score (MSE) %.4f", s.draw_score);
  if (s.anomaly.threshold > 0) {
    bool anomalous = s.draw_score > s.anomaly.threshold;
    ImGui::TextColored(anomalous ? ImVec4(1, 0.4f, 0.4f, 1) : ImVec4(0.5f, 1, 0.5f, 1), "%s (threshold %.4f)",
                       anomalous ? "anomaly" : "normal", s.anomaly.threshold);
  }
  ImGui::EndGroup();
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
  if (ImGui::Button("Download weights (.safetensors)")) request_download(false);
  help_marker("The model's state_dict, named and shaped like the module of 'Show PyTorch / Keras code' (or `aep export --pytorch`): "
              "model.load_state_dict(load_file(path)) loads it as it is (strict).");
  if (ImGui::Button("Download weights + optimizer")) request_download(true);
  ImGui::SameLine();
  ImGui::TextDisabled("to continue training here");
  help_marker("Adds the optimizer's state (keys optimizer.step, optimizer.exp_avg.<name> and, for Adam, "
              "optimizer.exp_avg_sq.<name>), so that training continues where it stopped when you upload the file "
              "again. PyTorch's strict load_state_dict refuses these keys: use the plain download there, or drop "
              "the optimizer.* keys first.");
  if (ImGui::Button("Upload weights ...")) driver_->open_file();
  ImGui::SameLine();
  ImGui::TextDisabled("or drop a .safetensors file on the page");
  if (ImGui::Button("Copy link")) driver_->copy_link(config_query());
  help_marker("A link that opens the playground with these settings (preset, hyper-parameters, seed, panels): "
              "for a course page's iframe or to share.");
  ImGui::TextWrapped("?%s", config_query().c_str());
  ImGui::End();
}

}  // namespace aep
