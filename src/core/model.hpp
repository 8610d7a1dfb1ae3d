// Models built from a preset: an autoencoder (encoder + decoder) or a VAE (encoder, mu and logvar heads,
// reparameterization, decoder). All trainable parameters live in one contiguous buffer (and their gradients
// in another), so the optimizer and the weight files walk single arrays.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/layers.hpp"
#include "core/preset.hpp"

namespace aep {

// Layers applied in order; keeps every activation for the backward pass.
class Sequential {
 public:
  void build(const nlohmann::json& specs, const std::string& prefix);
  // Output shape; throws "encoder.3 (Conv2d): ..." on a mismatch or when a layer's output would hold more than
  // kMaxActivation values per sample. activations (optional) receives the sum of every layer's per-sample output.
  Shape infer(const Shape& in, uint64_t* activations = nullptr) const;
  static constexpr uint64_t kMaxActivation = uint64_t(1) << 24;  // 64 MB per sample and layer
  const Tensor& forward(const Tensor& x, const RunContext& ctx);
  // dy is the gradient w.r.t. the output of layer end-1 (end defaults to all layers); returns d input, which is
  // only computed when need_input_grad (otherwise the returned tensor is stale: only parameter gradients are made).
  const Tensor& backward(const Tensor& dy, size_t end = size_t(-1), bool need_input_grad = true);
  const Tensor& output() const { return layers.empty() ? *input_ : acts_.back(); }
  const Tensor& input_of(size_t i) const { return i == 0 ? *input_ : acts_[i - 1]; }
  size_t size() const { return layers.size(); }
  bool is_fused(size_t i) const { return fused_[i] != nullptr; }  // layer i applies the activation i + 1
  // Layer i runs layers i + 1 (ReLU) and i + 2 (MaxPool2d) too (Conv2d::forward_relu_pool): input_of(i + 1) and
  // input_of(i + 2), the convolution's and the ReLU's outputs, are then not made.
  bool is_pooled(size_t i) const { return pooled_[i] != nullptr; }
  std::vector<std::unique_ptr<Layer>> layers;
  std::string prefix;

 private:
  const Tensor* input_ = nullptr;
  std::vector<Tensor> acts_, grads_;  // grads_[i]: d input of layer i (not made for an activation fused into i - 1)
  std::vector<const ActivationLayer*> fused_;  // fused_[i]: layer i + 1, when layer i applies it (forward_fused)
  std::vector<Conv2d*> pooled_;  // pooled_[i]: layer i when it also runs the ReLU and MaxPool2d after it
};

// For layer lists edited by hand (a layer added, removed or resized): sets each layer's input-size arguments
// (Linear in_features, Conv in_channels, BatchNorm num_features, Unflatten's channel count when the rest divides)
// from the shape that reaches it, through encoder, heads and decoder. Stops quietly at the first layer that cannot
// take its input (building the Model then reports it). Returns how many arguments changed.
size_t chain_layer_sizes(Preset& p);
// A layer of the given type with sensible arguments for an editor's "add layer" (input sizes are then chained).
nlohmann::json default_layer_spec(const std::string& type);

class Model {
 public:
  explicit Model(const Preset& preset);  // builds and checks every shape; call init() or load weights next
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const Preset& preset() const { return preset_; }
  // Changes the loss weights between steps (beta, l1, contractive); throws if the penalty does not fit the model.
  void set_loss(const LossConfig& loss);
  bool is_vae() const { return preset_.is_vae(); }
  void init(uint64_t seed);  // PyTorch's default initialization schemes, drawn from our seeded RNG

  static constexpr size_t kImageSide = 28;
  Shape input_shape(size_t batch) const { return {batch, 1, kImageSide, kImageSide}; }
  Shape code_shape(size_t batch) const;  // encoder output (AE) or latent z (VAE)
  size_t code_size() const { return per_sample(code_shape(1)); }
  size_t parameter_count() const { return values.size(); }

  // Memory for training at a batch size, estimated from the shapes: parameters, gradients and Adam's two moments,
  // plus per sample the input and target, every layer's output, its gradient and conv workspace. Computed in 64 bits.
  uint64_t training_bytes(size_t batch) const;
  // What one model may use, so that a browser tab (4 GB of wasm address space at most, usually much less) never
  // runs out of memory mid-training: refused with a message instead.
  static constexpr uint64_t kMemoryBudget = uint64_t(1) << 30;
  // Throws "training ... needs about N MB at batch B; the limit is ..." when training_bytes(batch) > kMemoryBudget.
  void check_memory(size_t batch) const;
  size_t max_batch() const;  // largest batch (<= 4096) within the budget; 0 if none
  void zero_grad();

  // Eval-mode inference. x: [B, 1, 28, 28]. encode gives the code (VAE: the mean mu); decode gives [B, 1, 28, 28].
  Tensor encode(const Tensor& x);
  // VAE: the posterior q(z|x) = N(mu, diag(exp(logvar))) of each image, mu and logvar in the code's shape
  // [B, latent, 1, 1]. Throws for a plain autoencoder (it has no distribution over codes).
  struct Posterior {
    Tensor mu, logvar;
  };
  Posterior encode_posterior(const Tensor& x);
  Tensor decode(const Tensor& z);
  Tensor reconstruct(const Tensor& x);
  Tensor sample_prior(size_t n, Rng& rng);  // VAE: decode z ~ N(0, I)

  // Named tensors in PyTorch state_dict form ("encoder.1.weight", "decoder.0.bias", "encoder.3.running_mean", ...).
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    float* value;
    float* grad;  // nullptr for buffers
  };
  struct Counter {
    std::string name;
    int64_t* value;
  };
  std::vector<Entry> entries;
  std::vector<Counter> counters;

  Sequential encoder, mu, logvar, decoder;
  std::vector<float> values, grads;  // trainable parameters and their gradients, one buffer each
  std::vector<float> buffer_values;  // running statistics

  // The Linear + Sigmoid pair ending the encoder, for the contractive penalty; throws if the encoder ends otherwise.
  Linear& contractive_layer();

 private:
  void check_shapes();
  uint64_t activations_per_sample_ = 0;
  void bind();
  void resolve_ties();
  Preset preset_;
};

// Reshapes a decoder output to images [B, 1, 28, 28] (the lesson's `.reshape(x.shape[0], 1, 28, 28)`).
Tensor as_images(const Tensor& y);

}  // namespace aep
