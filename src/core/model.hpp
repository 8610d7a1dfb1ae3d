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
  Shape infer(const Shape& in) const;  // output shape; throws "encoder.3 (Conv2d): ..." on mismatch
  const Tensor& forward(const Tensor& x, const RunContext& ctx);
  // dy is the gradient w.r.t. the output of layer end-1 (end defaults to all layers); returns d input.
  const Tensor& backward(const Tensor& dy, size_t end = size_t(-1));
  const Tensor& output() const { return layers.empty() ? *input_ : acts_.back(); }
  const Tensor& input_of(size_t i) const { return i == 0 ? *input_ : acts_[i - 1]; }
  size_t size() const { return layers.size(); }
  std::vector<std::unique_ptr<Layer>> layers;
  std::string prefix;

 private:
  const Tensor* input_ = nullptr;
  std::vector<Tensor> acts_, grads_;
};

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
  void zero_grad();

  // Eval-mode inference. x: [B, 1, 28, 28]. encode gives the code (VAE: the mean mu); decode gives [B, 1, 28, 28].
  Tensor encode(const Tensor& x);
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
  void bind();
  void resolve_ties();
  Preset preset_;
};

// Reshapes a decoder output to images [B, 1, 28, 28] (the lesson's `.reshape(x.shape[0], 1, 28, 28)`).
Tensor as_images(const Tensor& y);

}  // namespace aep
