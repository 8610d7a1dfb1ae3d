// Building, binding and running models described by presets.
#include "core/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace aep {

using nlohmann::json;

void Sequential::build(const json& specs, const std::string& pfx) {
  prefix = pfx;
  layers.clear();
  for (size_t i = 0; i < specs.size(); ++i) {
    try {
      layers.push_back(make_layer(specs[i]));
    } catch (const std::exception& e) {
      throw std::runtime_error(prefix + "." + std::to_string(i) + ": " + e.what());
    }
  }
  acts_.resize(layers.size());
  grads_.resize(layers.size());
  // Activations that directly follow a layer able to apply them run inside that layer (Layer::forward_fused).
  fused_.assign(layers.size(), nullptr);
  for (size_t i = 0; i + 1 < layers.size(); ++i)
    if (layers[i]->fuses_activation())
      fused_[i] = dynamic_cast<const ActivationLayer*>(layers[i + 1].get());
  pooled_.assign(layers.size(), nullptr);
  for (size_t i = 0; i + 2 < layers.size(); ++i) {
    auto* conv = dynamic_cast<Conv2d*>(layers[i].get());
    auto* pool = dynamic_cast<const MaxPool2d*>(layers[i + 2].get());
    if (conv && fused_[i] && pool && conv->fuses_relu_pool(*fused_[i], *pool)) pooled_[i] = conv;
  }
}

Shape Sequential::infer(const Shape& in, uint64_t* activations) const {
  Shape s = in;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto where = [&] { return prefix + "." + std::to_string(i) + " (" + layers[i]->type() + "): "; };
    try {
      s = layers[i]->output_shape(s);
    } catch (const std::exception& e) {
      throw std::runtime_error(where() + e.what());
    }
    // Every dimension of the input was bounded by this check one layer earlier, so the layer's own size arithmetic
    // (at most a factor 8 per dimension) cannot have wrapped in 32-bit size_t; the product is taken in 64 bits.
    uint64_t n = uint64_t(s[1]) * s[2] * s[3];
    if (n > Sequential::kMaxActivation || s[2] > kMaxActivation || s[3] > kMaxActivation)
      throw std::runtime_error(where() + "the output would hold " + std::to_string(n) +
                               " values per image; the limit is " + std::to_string(kMaxActivation));
    if (activations) *activations += n;
  }
  return s;
}

const Tensor& Sequential::forward(const Tensor& x, const RunContext& ctx) {
  input_ = &x;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (pooled_[i]) {  // layers i + 1 and i + 2 (ReLU, MaxPool2d) run inside layer i
      pooled_[i]->forward_relu_pool(input_of(i), acts_[i + 2]);
      i += 2;
    } else if (fused_[i]) {  // layer i + 1 is the activation layer i applies
      layers[i]->forward_fused(input_of(i), acts_[i], *fused_[i], acts_[i + 1], ctx);
      ++i;
    } else {
      layers[i]->forward(input_of(i), acts_[i], ctx);
    }
  }
  return output();
}

const Tensor& Sequential::backward(const Tensor& dy, size_t end, bool need_input_grad) {
  if (end > layers.size()) end = layers.size();
  if (end == 0) return dy;
  // Layer i's input gradient is needed only if some layer before it has parameters (or the caller wants it):
  // the encoder's first layers then skip it (PyTorch's autograd skips it too: the images need no gradient).
  size_t first_params = end;  // the first layer with parameters
  for (size_t i = 0; i < end && first_params == end; ++i)
    if (layers[i]->has_param_grads()) first_params = i;
  for (size_t i = end; i-- > 0;) {
    const Tensor& g = i + 1 == end ? dy : grads_[i + 1];
    const bool trio = i > 1 && pooled_[i - 2];  // layer i is the MaxPool2d run by layer i - 2
    const bool pair = !trio && i > 0 && fused_[i - 1];  // layer i is the activation fused into layer i - 1
    const size_t l = trio ? i - 2 : pair ? i - 1 : i;
    const bool need_dx = need_input_grad || l > first_params;
    if (!need_dx && !layers[l]->has_param_grads()) break;
    Tensor* dx = need_dx ? &grads_[l] : nullptr;
    if (trio) {
      pooled_[l]->backward_relu_pool(input_of(l), acts_[i], g, dx);
    } else if (pair && pooled_[l]) {  // `end` cuts a trio after its ReLU, whose output the forward did not make
      layers[l]->forward_fused(input_of(l), acts_[l], *fused_[l], acts_[i], RunContext{});
      layers[l]->backward_fused(input_of(l), *fused_[l], acts_[i], g, dx);
    } else if (pair)
      layers[l]->backward_fused(input_of(l), *fused_[l], acts_[i], g, dx);
    else
      layers[i]->backward(input_of(i), acts_[i], g, dx);
    i = l;
  }
  return grads_[0];
}

namespace {

// Walks one layer list from the input shape x; false at the first layer that does not fit.
bool chain_list(json& list, Shape& x, size_t& changed) {
  if (!list.is_array()) return false;
  for (json& spec : list) {
    if (!spec.is_object() || !spec.contains("type") || !spec.at("type").is_string()) return false;
    const std::string t = spec.at("type").get<std::string>();
    auto set = [&](const char* key, size_t v) {
      if (!spec.contains(key) || !spec.at(key).is_number_unsigned() || spec.at(key).get<size_t>() != v) {
        spec[key] = v;
        ++changed;
      }
    };
    const uint64_t flat = uint64_t(x[1]) * x[2] * x[3];
    if (t == "Linear" && x[2] == 1 && x[3] == 1) set("in_features", x[1]);
    else if (t == "Conv2d" || t == "ConvTranspose2d") set("in_channels", x[1]);
    else if (t == "BatchNorm1d" || t == "BatchNorm2d") set("num_features", x[1]);
    else if (t == "Unflatten" && spec.contains("unflattened_size")) {
      json& u = spec.at("unflattened_size");
      if (u.is_array() && u.size() == 3 && u[1].is_number_unsigned() && u[2].is_number_unsigned()) {
        uint64_t hw = u[1].get<uint64_t>() * u[2].get<uint64_t>();
        if (hw > 0 && flat % hw == 0 && flat / hw <= 4096 && (!u[0].is_number_unsigned() || u[0].get<uint64_t>() != flat / hw)) {
          u[0] = flat / hw;
          ++changed;
        }
      }
    }
    try {
      x = make_layer(spec)->output_shape(x);
    } catch (const std::exception&) {
      return false;
    }
    if (uint64_t(x[1]) * x[2] * x[3] > Sequential::kMaxActivation) return false;
  }
  return true;
}

}  // namespace

size_t chain_layer_sizes(Preset& p) {
  size_t changed = 0;
  Shape x = {1, 1, Model::kImageSide, Model::kImageSide};
  if (!chain_list(p.encoder, x, changed)) return changed;
  if (p.is_vae()) {
    Shape lv = x;
    chain_list(p.logvar, lv, changed);
    if (!chain_list(p.mu, x, changed)) return changed;
  }
  chain_list(p.decoder, x, changed);
  return changed;
}

json default_layer_spec(const std::string& type) {
  if (type == "Linear") return {{"type", type}, {"in_features", 1}, {"out_features", 64}};
  if (type == "Conv2d")
    return {{"type", type}, {"in_channels", 1}, {"out_channels", 16}, {"kernel_size", 3}, {"padding", 1}};
  if (type == "ConvTranspose2d")
    return {{"type", type}, {"in_channels", 1}, {"out_channels", 16}, {"kernel_size", 2}, {"stride", 2}};
  if (type == "MaxPool2d") return {{"type", type}, {"kernel_size", 2}};
  if (type == "Upsample") return {{"type", type}, {"scale_factor", 2}};
  if (type == "BatchNorm1d" || type == "BatchNorm2d") return {{"type", type}, {"num_features", 1}};
  if (type == "Dropout") return {{"type", type}, {"p", 0.2}};
  if (type == "LeakyReLU") return {{"type", type}, {"negative_slope", 0.01}};
  if (type == "Unflatten") return {{"type", type}, {"unflattened_size", {16, 7, 7}}};
  return {{"type", type}};
}

Model::Model(const Preset& preset) : preset_(preset) {
  encoder.build(preset_.encoder, "encoder");
  decoder.build(preset_.decoder, "decoder");
  if (preset_.is_vae()) {
    mu.build(preset_.mu, "mu");
    logvar.build(preset_.logvar, "logvar");
  }
  resolve_ties();
  check_shapes();
  bind();
  check_memory(preset_.training.batch_size);
}

void Model::resolve_ties() {
  std::vector<Sequential*> parts = {&encoder, &mu, &logvar, &decoder};
  for (Sequential* s : parts)
    for (size_t i = 0; i < s->size(); ++i) {
      const json& spec = s->layers[i]->spec();
      if (!spec.contains("tied_to")) continue;
      std::string target = spec.at("tied_to").get<std::string>();
      std::string where = s->prefix + "." + std::to_string(i) + " (Linear): ";
      Linear* found = nullptr;
      for (Sequential* t : parts)
        for (size_t j = 0; j < t->size(); ++j)
          if (t->prefix + "." + std::to_string(j) == target) found = dynamic_cast<Linear*>(t->layers[j].get());
      if (!found) throw std::runtime_error(where + "'tied_to' names \"" + target + "\", which is not a Linear layer");
      if (found == s->layers[i].get()) throw std::runtime_error(where + "a layer cannot be tied to itself");
      try {
        static_cast<Linear*>(s->layers[i].get())->tie_to(found);
      } catch (const std::exception& e) {
        throw std::runtime_error(where + e.what());
      }
    }
}

void Model::check_shapes() {
  uint64_t& acts = activations_per_sample_;
  acts = 0;
  Shape code = encoder.infer(input_shape(2), &acts);
  if (is_vae()) {
    Shape m = mu.infer(code, &acts), lv = logvar.infer(code, &acts);
    acts += 2 * per_sample(m);  // z and eps
    if (m != lv)
      throw std::runtime_error("the mu head gives " + shape_str(m) + " but the logvar head gives " + shape_str(lv));
    code = m;
  }
  Shape out = decoder.infer(code, &acts);
  if (per_sample(out) != kImageSide * kImageSide)
    throw std::runtime_error("the decoder must produce 784 values per image (28x28), but gives " + shape_str(out));
}

uint64_t Model::training_bytes(size_t batch) const {
  const uint64_t image = kImageSide * kImageSide;
  const uint64_t params = 4 * uint64_t(values.size()) + buffer_values.size();
  const uint64_t per_image = 3 * activations_per_sample_ + 4 * image;  // outputs, gradients, workspace; batch I/O
  return sizeof(float) * (params + uint64_t(batch) * per_image);
}

void Model::check_memory(size_t batch) const {
  uint64_t need = training_bytes(batch);
  if (need <= kMemoryBudget) return;
  auto mb = [](uint64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MB"; };
  size_t fit = max_batch();
  throw std::runtime_error("training this model at batch size " + std::to_string(batch) + " would need about " +
                           mb(need) + " of memory; the limit is " + mb(kMemoryBudget) + " - " +
                           (fit > 0 ? "use a batch size of at most " + std::to_string(fit) + " or a smaller model"
                                    : "use fewer channels or features"));
}

size_t Model::max_batch() const {
  const uint64_t one = training_bytes(1), base = training_bytes(0);
  if (one > kMemoryBudget) return 0;
  return size_t(std::min<uint64_t>(4096, (kMemoryBudget - base) / (one - base)));
}

Shape Model::code_shape(size_t batch) const {
  Shape code = encoder.infer(input_shape(batch));
  return is_vae() ? mu.infer(code) : code;
}

void Model::bind() {
  // Sizes first, then point every slot into the two buffers (which never reallocate afterwards).
  // Counted in 64 bits from the shapes: size_t is 32 bits in WebAssembly, where a [4096, 1048576] weight would
  // wrap to 0 elements and pass the limit below (then the layer reads far outside the buffer).
  const auto numel64 = [](const ParamSlot& p) {
    uint64_t n = 1;
    for (int64_t d : p.shape) n *= uint64_t(d);  // every dimension < 2^21 and rank <= 4: no overflow
    return n;
  };
  uint64_t n_params = 0, n_buffers = 0;
  std::vector<Sequential*> parts = {&encoder, &mu, &logvar, &decoder};
  for (Sequential* s : parts)
    for (auto& l : s->layers) {
      for (auto& p : l->params) n_params += numel64(p);
      for (auto& b : l->buffers) n_buffers += numel64(b);
    }
  constexpr uint64_t kMaxParams = uint64_t(64) << 20;  // 256 MB of float32: more would not fit a browser tab
  if (n_params > kMaxParams)
    throw std::runtime_error("the model has " + std::to_string(n_params) + " parameters; the limit is " +
                             std::to_string(kMaxParams));
  values.assign(size_t(n_params), 0.f);
  grads.assign(size_t(n_params), 0.f);
  buffer_values.assign(size_t(n_buffers), 0.f);
  entries.clear();
  counters.clear();
  size_t po = 0, bo = 0;
  for (Sequential* s : parts)
    for (size_t i = 0; i < s->size(); ++i) {
      Layer& l = *s->layers[i];
      std::string base = s->prefix + "." + std::to_string(i) + ".";
      for (auto& p : l.params) {
        p.value = values.data() + po;
        p.grad = grads.data() + po;
        po += p.numel();
        entries.push_back({base + p.name, p.shape, p.value, p.grad});
      }
      for (auto& b : l.buffers) {
        b.value = buffer_values.data() + bo;
        bo += b.numel();
        entries.push_back({base + b.name, b.shape, b.value, nullptr});
      }
      for (auto& c : l.counters) counters.push_back({base + c.name, c.value});
    }
}

void Model::init(uint64_t seed) {
  Rng rng(seed);
  std::vector<Sequential*> parts = {&encoder, &mu, &logvar, &decoder};
  for (Sequential* s : parts)
    for (auto& l : s->layers) {
      auto fill = [&](ParamSlot& p) {
        for (size_t k = 0; k < p.numel(); ++k)
          p.value[k] = p.init == ParamSlot::Init::Ones    ? 1.f
                       : p.init == ParamSlot::Init::Zeros ? 0.f
                                                          : rng.uniform(-p.init_bound, p.init_bound);
      };
      for (auto& p : l->params) fill(p);
      for (auto& b : l->buffers) fill(b);
      for (auto& c : l->counters) *c.value = 0;
    }
  zero_grad();
}

void Model::zero_grad() { std::fill(grads.begin(), grads.end(), 0.f); }

Tensor as_images(const Tensor& y) {
  Tensor img = y;
  img.reshape({y.shape()[0], 1, Model::kImageSide, Model::kImageSide});
  return img;
}

Tensor Model::encode(const Tensor& x) {
  RunContext ctx;
  const Tensor& h = encoder.forward(x, ctx);
  return is_vae() ? Tensor(mu.forward(h, ctx)) : Tensor(h);
}

Model::Posterior Model::encode_posterior(const Tensor& x) {
  if (!is_vae())
    throw std::runtime_error("'" + preset_.name + "' is not a VAE: its encoder gives one code per image, not a posterior");
  RunContext ctx;
  const Tensor& h = encoder.forward(x, ctx);
  Posterior q;
  q.mu = mu.forward(h, ctx);
  q.logvar = logvar.forward(h, ctx);
  return q;
}

Tensor Model::decode(const Tensor& z) {
  RunContext ctx;
  Tensor out = decoder.forward(z, ctx);
  out.reshape({z.shape()[0], 1, kImageSide, kImageSide});
  return out;
}

Tensor Model::reconstruct(const Tensor& x) { return decode(encode(x)); }

Tensor Model::sample_prior(size_t n, Rng& rng) {
  Tensor z(code_shape(n));
  for (float& v : z) v = rng.normal();
  return decode(z);
}

void Model::set_loss(const LossConfig& loss) {
  if (loss.contractive > 0.f) contractive_layer();
  if (loss.reconstruction == "bce" && preset_.normalize == Normalization::MinusOneOne)
    throw std::runtime_error("BCE needs targets in [0, 1]: use MSE with [-1, 1] data");
  preset_.loss = loss;
}

Linear& Model::contractive_layer() {
  size_t n = encoder.size();
  const char* need = "the contractive penalty needs an encoder ending in Linear followed by Sigmoid";
  if (n < 2 || encoder.layers[n - 1]->type() != "Sigmoid") throw std::runtime_error(need);
  auto* lin = dynamic_cast<Linear*>(encoder.layers[n - 2].get());
  if (!lin || lin->tied()) throw std::runtime_error(need);
  return *lin;
}

}  // namespace aep
