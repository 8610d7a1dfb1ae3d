// Layers of an autoencoder, named, parameterized and laid out like PyTorch's (weights match a state_dict).
// Each layer is forward(x -> y) and backward(dy -> dx) over [batch, C, H, W] tensors; backward overwrites dx
// and ADDS into parameter gradients, so shared (tied) weights and multi-path graphs accumulate correctly.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace aep {

struct RunContext {
  bool training = false;
  Rng* rng = nullptr;  // Dropout draws its masks from here
};

// A parameter or buffer of a layer. The Model points value/grad into its one contiguous buffer.
struct ParamSlot {
  std::string name;            // state_dict suffix: "weight", "bias", "running_mean", ...
  std::vector<int64_t> shape;  // PyTorch layout
  float* value = nullptr;
  float* grad = nullptr;       // nullptr for buffers
  float init_bound = 0.f;      // uniform(-b, b); see init below
  enum class Init { Uniform, Ones, Zeros } init = Init::Uniform;
  size_t numel() const;
};

struct CounterSlot {  // integer buffers such as BatchNorm's num_batches_tracked (int64 in PyTorch)
  std::string name;
  int64_t* value = nullptr;
};

class ActivationLayer;

class Layer {
 public:
  explicit Layer(nlohmann::json spec) : spec_(std::move(spec)) {}
  virtual ~Layer() = default;
  const nlohmann::json& spec() const { return spec_; }
  std::string type() const { return spec_.at("type").get<std::string>(); }
  // Throws std::runtime_error explaining why `in` does not fit this layer.
  virtual Shape output_shape(const Shape& in) const = 0;
  virtual void forward(const Tensor& x, Tensor& y, const RunContext& ctx) = 0;
  // dx == nullptr: the input gradient is not needed (the input is data), only the parameter gradients.
  virtual void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) = 0;
  // Does backward add into any parameter gradient (a tied Linear owns no weight but adds to its encoder's)?
  virtual bool has_param_grads() const { return !params.empty(); }

  // An activation fused into the layer before it (Linear, Conv2d, ConvTranspose2d; Sequential pairs them): forward
  // writes y and a = act(y) sample by sample while y is in cache, and backward takes da (the gradient w.r.t. a) through
  // act's derivative as it reads it, so the activation costs no pass of its own over the batch. Results are exactly
  // those of the two layers run one after the other.
  virtual bool fuses_activation() const { return false; }
  virtual void forward_fused(const Tensor& x, Tensor& y, const ActivationLayer& act, Tensor& a, const RunContext& ctx);
  virtual void backward_fused(const Tensor& x, const ActivationLayer& act, const Tensor& a, const Tensor& da, Tensor* dx);
  // Parameters are initialized by the Model from their slots (PyTorch's default schemes).
  std::vector<ParamSlot> params;
  std::vector<ParamSlot> buffers;
  std::vector<CounterSlot> counters;

 protected:
  nlohmann::json spec_;
};

// Builds a layer from its preset description, e.g. {"type": "Conv2d", "in_channels": 1, "out_channels": 16,
// "kernel_size": 3, "padding": 1}. Rejects unknown types, unknown or missing arguments and absurd values.
std::unique_ptr<Layer> make_layer(const nlohmann::json& spec);

// Every layer type make_layer accepts, in a stable order (for UIs and docs).
const std::vector<std::string>& layer_types();

// A layer an activation can be fused into (Linear, Conv2d, ConvTranspose2d): forward, backward and their fused
// forms all come down to run_forward / run_backward, with act == nullptr when nothing is fused.
class FusingLayer : public Layer {
 public:
  using Layer::Layer;
  void forward(const Tensor& x, Tensor& y, const RunContext&) final { run_forward(x, y, nullptr, nullptr); }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) final {
    run_backward(x, dy, nullptr, nullptr, dx);
  }
  bool fuses_activation() const final { return true; }
  void forward_fused(const Tensor& x, Tensor& y, const ActivationLayer& act, Tensor& a, const RunContext&) final {
    run_forward(x, y, &act, &a);
  }
  void backward_fused(const Tensor& x, const ActivationLayer& act, const Tensor& a, const Tensor& da, Tensor* dx) final {
    run_backward(x, da, &act, &a, dx);
  }

 protected:
  // y = layer(x), and a = act(y) if act; dy is the gradient w.r.t. y, or w.r.t. a = act(y) if act.
  virtual void run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) = 0;
  virtual void run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act, const Tensor* a, Tensor* dx) = 0;
};

class Linear : public FusingLayer {
 public:
  explicit Linear(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  // Decoder weight = encoder weight transposed (the course's tied AE): this layer then owns only its bias.
  void tie_to(Linear* encoder_layer);
  bool tied() const { return tied_ != nullptr; }
  bool has_param_grads() const override { return true; }
  size_t in_features, out_features;
  bool has_bias;

 private:
  void run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) override;
  void run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act, const Tensor* a, Tensor* dx) override;
  Linear* tied_ = nullptr;
  Tensor dz_;  // fused backward: the gradient w.r.t. y
  const float* weight() const;
  float* weight_grad() const;
  float* bias() const;
  float* bias_grad() const;
};

// One convolution's geometry: an image C x H x W seen through k x k windows at `stride` with zero `pad`,
// giving OH x OW window positions. Shared by Conv2d (image = input) and ConvTranspose2d (image = output).
struct ConvGeometry {
  size_t C, H, W, k, stride, pad, OH, OW;
};
// col[(c * k + ki) * k + kj][oh * OW + ow] = img[c][oh * stride - pad + ki][ow * stride - pad + kj] (0 outside).
void im2col(const float* img, const ConvGeometry& g, float* col);
// The adjoint: img[...] += col[...] (img must be zeroed by the caller).
void col2im(const float* col, const ConvGeometry& g, float* img);

class MaxPool2d;

class Conv2d : public FusingLayer {
 public:
  explicit Conv2d(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  size_t in_channels, out_channels, kernel_size, stride, padding;
  bool has_bias;

  // Conv2d (stride 1, "same" padding) -> ReLU -> MaxPool2d(2, stride 2) run as one (Sequential groups them): the
  // window maxima are taken from the convolution's output while it is in cache, and backward builds the gradient of
  // the convolution's output straight from the pooled gradient, so neither the convolution's nor the ReLU's output is
  // ever written out. Results are exactly those of the three layers run one after the other (PyTorch's first-maximum
  // rule included). backward_relu_pool takes the output of the last forward_relu_pool and uses the
  // padded inputs and window positions it kept, the way MaxPool2d keeps its argmax.
  bool fuses_relu_pool(const ActivationLayer& act, const MaxPool2d& pool) const;
  void forward_relu_pool(const Tensor& x, Tensor& out);
  void backward_relu_pool(const Tensor& x, const Tensor& out, const Tensor& dout, Tensor* dx);

 private:
  void run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) override;
  void run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act, const Tensor* a, Tensor* dx) override;
  ConvGeometry geometry(const Shape& in) const;
  std::vector<float> col_, dcol_, dz_;  // dz_: fused backward, one sample's gradient w.r.t. y
  std::vector<float> lanes_;            // stride 1: dW as 16 partial sums per weight over the batch (dot16_lanes)
  std::vector<size_t> offsets_;         // and the input shift of each weight's dot
  std::vector<float> pad_, flat_, wpk_;  // direct stride-1 kernels (conv_kernels.hpp)
  std::vector<float> padx_;              // relu_pool: every sample's padded input, kept for backward
  std::vector<int32_t> where_;           // relu_pool: each maximum's place in its window, row * 2 + column
};

class ConvTranspose2d : public FusingLayer {
 public:
  explicit ConvTranspose2d(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  size_t in_channels, out_channels, kernel_size, stride, padding, output_padding;
  bool has_bias;

 private:
  void run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) override;
  void run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act, const Tensor* a, Tensor* dx) override;
  ConvGeometry geometry(const Shape& in) const;  // image = this layer's output
  std::vector<float> dz_;                        // fused backward: one sample's gradient w.r.t. y
  std::vector<float> lanes_;     // direct paths: dW as 16 partial sums per weight over the batch (dot16_lanes)
  std::vector<size_t> offsets_;  // and the plane each weight's dot reads
  bool direct() const { return kernel_size == stride && padding == 0 && output_padding == 0; }
  std::vector<float> col_, xs_;         // direct kernel_size == stride path: per-tap planes, padded input copy
  std::vector<float> pad_, flat_, wpk_;  // stride 1: the direct stride-1 convolution kernels
};

class MaxPool2d : public Layer {
 public:
  explicit MaxPool2d(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  size_t kernel_size, stride;

 private:
  std::vector<uint32_t> argmax_;  // flat input index of each output's maximum
};

class Upsample : public Layer {
 public:
  explicit Upsample(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  size_t scale;
};

// BatchNorm1d ([batch, features]) and BatchNorm2d ([batch, C, H, W]) normalize per channel over all other
// axes; with features as channels and H = W = 1 they are the same computation.
class BatchNorm : public Layer {
 public:
  explicit BatchNorm(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  size_t num_features;
  float eps, momentum;
  bool two_d;
  int64_t num_batches_tracked = 0;

 private:
  std::vector<float> mean_, invstd_;  // of the last forward (batch statistics in training, running in eval)
  bool last_training_ = false;
};

class Dropout : public Layer {
 public:
  explicit Dropout(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  float p;

 private:
  std::vector<float> mask_;  // 0 or 1/(1-p); empty after an eval forward
};

enum class Activation { ReLU, LeakyReLU, Sigmoid, Tanh };

class ActivationLayer : public Layer {
 public:
  ActivationLayer(const nlohmann::json& spec, Activation kind);
  Shape output_shape(const Shape& in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  // a[i] = act(y[i]) for i < n
  void apply(const float* y, float* a, size_t n) const;
  // dy[i] = da[i] * act'(y[i]) for i < n, from the activation's output a (a > 0 exactly where y > 0 for the ReLUs)
  void gradient(const float* a, const float* da, float* dy, size_t n) const;
  Activation kind;
  float negative_slope = 0.01f;
};

// Flatten: [B, C, H, W] -> [B, C*H*W]; Unflatten: [B, C*H*W] -> [B, C, H, W]. Both keep the memory order.
class Reshape : public Layer {
 public:
  explicit Reshape(const nlohmann::json& spec);
  Shape output_shape(const Shape& in) const override;
  void forward(const Tensor& x, Tensor& y, const RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;

 private:
  bool flatten_;
  std::array<size_t, 3> target_{};  // Unflatten's (C, H, W)
};

}  // namespace aep
