// A preset is the one description of a model: layers, loss, optimizer, normalization and corruption.
// The engine, the CLI, the app, weight files and the PyTorch export all read this struct (format: assets/presets/README.md).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aep {

enum class Normalization { ZeroOne, MinusOneOne };  // pixels/255, or pixels/127.5 - 1 (Normalize((0.5,), (0.5,)))
enum class Reduction { Mean, Sum };                 // mean over all elements, or sum per sample averaged over the batch

struct LossConfig {
  std::string reconstruction = "mse";  // "mse" | "bce" | "l1" (mean absolute error)
  Reduction reduction = Reduction::Mean;
  float beta = 1.f;         // KL weight (VAE)
  float l1 = 0.f;           // L1 activity penalty on the code (sparse AE), per-sample sum averaged over the batch
  float contractive = 0.f;  // squared Frobenius norm of d code / d input (contractive AE), same reduction
};

struct OptimizerConfig {
  std::string type = "adam";  // "adam" | "sgd"
  float lr = 1e-3f;
  float momentum = 0.f;  // sgd
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam
  float weight_decay = 0.f;
};

struct TrainingConfig {
  size_t batch_size = 64;
  size_t epochs = 1;
};

struct CorruptionConfig {
  std::string type = "none";  // none | gaussian | dropout | salt_pepper | occlusion | downsample
  float std = 0.5f;           // gaussian
  float p = 0.5f;             // dropout, salt_pepper
  size_t size = 12;           // occlusion box side in pixels
  size_t factor = 2;          // downsample
  bool clip = true;           // gaussian: clip to the normalization range
  bool scale = false;         // dropout: multiply kept pixels by 1/(1-p) like nn.Dropout (lesson 002)
  // The training target: the clean image (a denoising autoencoder), or the corrupted input itself - the mistake
  // lesson 000 warns about, kept so that a lesson can show what it does.
  bool corrupted_target = false;
};

struct Preset {
  std::string name, title, description, lesson;
  Normalization normalize = Normalization::ZeroOne;
  nlohmann::json encoder = nlohmann::json::array(), decoder = nlohmann::json::array();
  nlohmann::json mu = nlohmann::json::array(), logvar = nlohmann::json::array();  // VAE heads; empty for an AE
  LossConfig loss;
  OptimizerConfig optimizer;
  TrainingConfig training;
  CorruptionConfig corruption;
  bool is_vae() const { return !mu.empty(); }
};

// Validates everything (unknown keys, types, ranges) and throws std::runtime_error("<source>: ...").
Preset parse_preset(const nlohmann::json& j, const std::string& source);
Preset parse_preset_text(const std::string& text, const std::string& source);
nlohmann::json preset_to_json(const Preset& p);

// Folder holding presets/ and data/ (AEP_ASSETS environment variable, else the source tree's assets/).
std::string assets_dir();
// A preset name ("conv") from assets/presets, or a path to a .json file.
Preset load_preset(const std::string& name_or_path);
// Names of all presets in assets/presets, sorted.
std::vector<std::string> list_presets();

}  // namespace aep
