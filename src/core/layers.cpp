// Forward and backward of every layer. Dense layers and general convolutions go through gemm(), stride-1 and
// kernel == stride convolutions through direct kernels (conv_kernels.hpp); the rest are single
// passes over contiguous memory that the compiler vectorizes (Sigmoid and Tanh use mathfn.hpp's exp).
#include "core/layers.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>
#include <xsimd/xsimd.hpp>

#include "core/conv_kernels.hpp"
#include "core/gemm.hpp"
#include "core/mathfn.hpp"

namespace aep {

using nlohmann::json;

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  if (s[2] == 1 && s[3] == 1)
    o << "[" << s[0] << ", " << s[1] << "]";
  else
    o << "[" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << "]";
  return o.str();
}

size_t ParamSlot::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// Reads a layer's arguments, checking types and ranges, and rejects arguments the layer does not take.
class Args {
 public:
  Args(const json& j, std::string type) : j_(j), type_(std::move(type)) { used_.insert("type"); }
  size_t integer(const char* key, size_t lo, size_t hi, long long def = -1) {
    used_.insert(key);
    if (!j_.contains(key)) {
      if (def < 0) fail(type_ + ": missing argument '" + key + "'");
      return size_t(def);
    }
    const json& v = j_.at(key);
    if (!v.is_number_integer())
      fail(type_ + ": '" + key + "' must be an integer, got " + v.dump());
    // Values above 2^63 are stored unsigned (nlohmann); echo them as written, not wrapped to a negative number.
    const bool huge = v.is_number_unsigned() && v.get<unsigned long long>() > (unsigned long long)LLONG_MAX;
    long long x = huge ? LLONG_MAX : v.get<long long>();
    if (x < (long long)lo || x > (long long)hi)
      fail(type_ + ": '" + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
           ", got " + v.dump());
    return size_t(x);
  }
  float number(const char* key, double lo, double hi, double def, bool hi_open = false) {
    used_.insert(key);
    if (!j_.contains(key)) return float(def);
    const json& v = j_.at(key);
    if (!v.is_number()) fail(type_ + ": '" + key + "' must be a number, got " + v.dump());
    double x = v.get<double>();
    if (!(x >= lo && (hi_open ? x < hi : x <= hi))) {
      std::ostringstream o;
      o << type_ << ": '" << key << "' must be in [" << lo << ", " << hi << (hi_open ? ")" : "]") << ", got " << x;
      fail(o.str());
    }
    return float(x);
  }
  bool boolean(const char* key, bool def) {
    used_.insert(key);
    if (!j_.contains(key)) return def;
    if (!j_.at(key).is_boolean()) fail(type_ + ": '" + key + "' must be true or false, got " + j_.at(key).dump());
    return j_.at(key).get<bool>();
  }
  std::string string(const char* key, const std::string& def) {
    used_.insert(key);
    if (!j_.contains(key)) return def;
    if (!j_.at(key).is_string()) fail(type_ + ": '" + key + "' must be a string, got " + j_.at(key).dump());
    return j_.at(key).get<std::string>();
  }
  const json* raw(const char* key) {
    used_.insert(key);
    return j_.contains(key) ? &j_.at(key) : nullptr;
  }
  void done() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) fail(type_ + ": unknown argument '" + it.key() + "'");
  }

 private:
  const json& j_;
  std::string type_;
  std::set<std::string> used_;
};

constexpr size_t kMaxFeatures = 1 << 20;
constexpr size_t kMaxChannels = 4096;

ParamSlot slot(const char* name, std::vector<int64_t> shape, float bound,
               ParamSlot::Init init = ParamSlot::Init::Uniform) {
  ParamSlot s;
  s.name = name;
  s.shape = std::move(shape);
  s.init_bound = bound;
  s.init = init;
  return s;
}

inline const float* sample(const Tensor& t, size_t b) { return t.data() + b * per_sample(t.shape()); }
inline float* sample(Tensor& t, size_t b) { return t.data() + b * per_sample(t.shape()); }

// y[b, c, :] += bias[c] over `plane` elements per channel.
void add_channel_bias(float* y, const float* bias, size_t batch, size_t channels, size_t plane) {
  if (plane == 1) {  // Linear: one contiguous row per sample, a loop the compiler vectorizes
    for (size_t b = 0; b < batch; ++b) {
      float* row = y + b * channels;
      for (size_t c = 0; c < channels; ++c) row[c] += bias[c];
    }
    return;
  }
  for (size_t b = 0; b < batch; ++b)
    for (size_t c = 0; c < channels; ++c) {
      float* p = y + (b * channels + c) * plane;
      float v = bias[c];
      for (size_t i = 0; i < plane; ++i) p[i] += v;
    }
}

void accumulate_channel_sums(const float* dy, float* dbias, size_t batch, size_t channels, size_t plane) {
  if (plane == 1) {  // Linear: column sums; 0.f + x is what sum16 of one value returns (it turns -0 into +0)
    for (size_t b = 0; b < batch; ++b) {
      const float* row = dy + b * channels;
      for (size_t c = 0; c < channels; ++c) dbias[c] += 0.f + row[c];
    }
    return;
  }
  for (size_t b = 0; b < batch; ++b)
    for (size_t c = 0; c < channels; ++c) {
      dbias[c] += sum16(dy + (b * channels + c) * plane, plane);
    }
}

// One sample's gradient w.r.t. a layer's output y: dy itself, or (an activation fused into the layer) dy = da taken
// through the activation's derivative into `scratch`, where the layer's reads that follow find it in cache.
const float* output_grad(const Tensor& dy, const ActivationLayer* act, const Tensor* a, size_t b,
                         std::vector<float>& scratch) {
  if (!act) return sample(dy, b);
  const size_t n = per_sample(dy.shape());
  scratch.resize(n);
  act->gradient(sample(*a, b), sample(dy, b), scratch.data(), n);
  return scratch.data();
}

// The weight packings of the direct convolution kernels (conv_s1_flat reads w[t * cols + c]):
// packed[c * rows + r] = w[r * cols + c], a [rows][cols] matrix transposed.
void pack_transposed(const float* w, size_t rows, size_t cols, std::vector<float>& packed) {
  packed.resize(rows * cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) packed[c * rows + r] = w[r * cols + c];
}
// w: [A][C][k][k] (Conv2d: A = Cout, C = Cin; ConvTranspose2d: A = Cin, C = Cout), packed [A * k * k][C] with each
// kernel turned by 180 degrees: the other direction of the convolution as a stride-1 convolution.
void pack_flipped(const float* w, size_t A, size_t C, size_t k, std::vector<float>& packed) {
  packed.resize(A * C * k * k);
  for (size_t a = 0; a < A; ++a)
    for (size_t c = 0; c < C; ++c)
      for (size_t q = 0; q < k; ++q)
        for (size_t r = 0; r < k; ++r)
          packed[((a * k + q) * k + r) * C + c] = w[((a * C + c) * k + (k - 1 - q)) * k + (k - 1 - r)];
}

size_t conv_out(size_t in, size_t k, size_t stride, size_t pad) {
  if (in + 2 * pad < k) return 0;
  return (in + 2 * pad - k) / stride + 1;
}

}  // namespace

void Layer::forward_fused(const Tensor&, Tensor&, const ActivationLayer&, Tensor&, const RunContext&) {
  fail(type() + " cannot fuse an activation");
}
void Layer::backward_fused(const Tensor&, const ActivationLayer&, const Tensor&, const Tensor&, Tensor*) {
  fail(type() + " cannot fuse an activation");
}

// ---------------------------------------------------------------------------------------------- Linear

Linear::Linear(const json& spec) : FusingLayer(spec) {
  Args a(spec, "Linear");
  in_features = a.integer("in_features", 1, kMaxFeatures);
  out_features = a.integer("out_features", 1, kMaxFeatures);
  has_bias = a.boolean("bias", true);
  const json* tied = a.raw("tied_to");
  if (tied && !tied->is_string()) fail("Linear: 'tied_to' must name a layer, e.g. \"encoder.1\"");
  a.done();
  // PyTorch: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in) for the weight; the bias uses the same.
  float bound = 1.f / std::sqrt(float(in_features));
  if (!tied) params.push_back(slot("weight", {int64_t(out_features), int64_t(in_features)}, bound));
  if (has_bias) params.push_back(slot("bias", {int64_t(out_features)}, bound));
}

void Linear::tie_to(Linear* enc) {
  if (enc->in_features != out_features || enc->out_features != in_features || enc->tied())
    fail("Linear " + std::to_string(in_features) + "->" + std::to_string(out_features) +
         " cannot be tied to Linear " + std::to_string(enc->in_features) + "->" + std::to_string(enc->out_features) +
         ": the tied layer must be its mirror image");
  tied_ = enc;
}

const float* Linear::weight() const { return tied_ ? tied_->params[0].value : params[0].value; }
float* Linear::weight_grad() const { return tied_ ? tied_->params[0].grad : params[0].grad; }
float* Linear::bias() const { return has_bias ? params.back().value : nullptr; }
float* Linear::bias_grad() const { return has_bias ? params.back().grad : nullptr; }

Shape Linear::output_shape(const Shape& in) const {
  if (in[2] != 1 || in[3] != 1)
    fail("Linear expects a flat input [batch, " + std::to_string(in_features) + "], got " + shape_str(in) +
         " - add a Flatten before it");
  if (in[1] != in_features)
    fail("Linear expects " + std::to_string(in_features) + " input features, got " + std::to_string(in[1]));
  return {in[0], out_features, 1, 1};
}

void Linear::run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) {
  size_t B = x.shape()[0];
  ensure_shape(y, {B, out_features, 1, 1});
  // Computed as y^T = W x^T, written straight into y's [batch, out] layout: the weight matrix is gemm's A
  // operand, which it reads in place instead of packing (see gemm.hpp).
  if (tied_)  // y^T = W_enc^T x^T, W_enc: [in_features(=enc out), out_features(=enc in)]
    gemm_transposed_c(true, true, out_features, B, in_features, 1.f, weight(), out_features, x.data(), in_features,
                      0.f, y.data(), out_features);
  else  // y^T = W x^T, W: [out, in]
    gemm_transposed_c(false, true, out_features, B, in_features, 1.f, weight(), in_features, x.data(), in_features,
                      0.f, y.data(), out_features);
  if (!act) {
    if (has_bias) add_channel_bias(y.data(), bias(), B, out_features, 1);
    return;
  }
  ensure_shape(*a, y.shape());
  for (size_t b = 0; b < B; ++b) {  // bias and activation of a row while it is in cache
    float* row = y.data() + b * out_features;
    if (has_bias) add_channel_bias(row, bias(), 1, out_features, 1);
    act->apply(row, a->data() + b * out_features, out_features);
  }
}

// dy: [B, out] (the gradient w.r.t. y; fused: w.r.t. a = act(y), taken through act's derivative first).
void Linear::run_backward(const Tensor& x, const Tensor& dy_in, const ActivationLayer* act, const Tensor* a,
                          Tensor* dx) {
  size_t B = x.shape()[0];
  if (dx) ensure_shape(*dx, x.shape());
  const Tensor* dyp = &dy_in;
  if (act) {
    ensure_shape(dz_, dy_in.shape());
    act->gradient(a->data(), dy_in.data(), dz_.data(), dz_.size());
    dyp = &dz_;
  }
  const Tensor& dy = *dyp;
  if (tied_) {
    if (dx)  // dx = dy W_enc^T (gemm picks the operand order; see pack_a_instead)
      gemm(false, true, B, in_features, out_features, 1.f, dy.data(), out_features, weight(), out_features, 0.f,
           dx->data(), in_features);
    gemm(true, false, in_features, out_features, B, 1.f, x.data(), in_features, dy.data(), out_features, 1.f,
         weight_grad(), out_features);
  } else {
    if (dx)  // dx = dy W: natively computed as dx^T = W^T dy^T (see pack_a_instead), in WebAssembly as it stands
      gemm(false, false, B, in_features, out_features, 1.f, dy.data(), out_features, weight(), in_features, 0.f,
           dx->data(), in_features);
    gemm(true, false, out_features, in_features, B, 1.f, dy.data(), out_features, x.data(), in_features, 1.f,
         weight_grad(), in_features);
  }
  if (has_bias) accumulate_channel_sums(dy.data(), bias_grad(), B, out_features, 1);
}

// ------------------------------------------------------------------------------------- im2col / col2im

void im2col(const float* img, const ConvGeometry& g, float* col) {
  const size_t plane = g.OH * g.OW;
  for (size_t c = 0; c < g.C; ++c)
    for (size_t ki = 0; ki < g.k; ++ki)
      for (size_t kj = 0; kj < g.k; ++kj) {
        float* dst = col + ((c * g.k + ki) * g.k + kj) * plane;
        const float* src = img + c * g.H * g.W;
        for (size_t oh = 0; oh < g.OH; ++oh) {
          float* row = dst + oh * g.OW;
          long ih = long(oh * g.stride + ki) - long(g.pad);
          if (ih < 0 || ih >= long(g.H)) {
            std::fill(row, row + g.OW, 0.f);
            continue;
          }
          const float* srow = src + size_t(ih) * g.W;
          for (size_t ow = 0; ow < g.OW; ++ow) {
            long iw = long(ow * g.stride + kj) - long(g.pad);
            row[ow] = (iw >= 0 && iw < long(g.W)) ? srow[iw] : 0.f;
          }
        }
      }
}

void col2im(const float* col, const ConvGeometry& g, float* img) {
  const size_t plane = g.OH * g.OW;
  for (size_t c = 0; c < g.C; ++c)
    for (size_t ki = 0; ki < g.k; ++ki)
      for (size_t kj = 0; kj < g.k; ++kj) {
        const float* src = col + ((c * g.k + ki) * g.k + kj) * plane;
        float* dst = img + c * g.H * g.W;
        for (size_t oh = 0; oh < g.OH; ++oh) {
          long ih = long(oh * g.stride + ki) - long(g.pad);
          if (ih < 0 || ih >= long(g.H)) continue;
          float* drow = dst + size_t(ih) * g.W;
          const float* row = src + oh * g.OW;
          for (size_t ow = 0; ow < g.OW; ++ow) {
            long iw = long(ow * g.stride + kj) - long(g.pad);
            if (iw >= 0 && iw < long(g.W)) drow[iw] += row[ow];
          }
        }
      }
}

// ---------------------------------------------------------------------------------------------- Conv2d

Conv2d::Conv2d(const json& spec) : FusingLayer(spec) {
  Args a(spec, "Conv2d");
  in_channels = a.integer("in_channels", 1, kMaxChannels);
  out_channels = a.integer("out_channels", 1, kMaxChannels);
  kernel_size = a.integer("kernel_size", 1, 15);
  stride = a.integer("stride", 1, 8, 1);
  padding = a.integer("padding", 0, 7, 0);
  has_bias = a.boolean("bias", true);
  a.done();
  if (padding >= kernel_size) fail("Conv2d: 'padding' must be smaller than 'kernel_size'");
  float bound = 1.f / std::sqrt(float(in_channels * kernel_size * kernel_size));
  int64_t k = int64_t(kernel_size);
  params.push_back(slot("weight", {int64_t(out_channels), int64_t(in_channels), k, k}, bound));
  if (has_bias) params.push_back(slot("bias", {int64_t(out_channels)}, bound));
}

ConvGeometry Conv2d::geometry(const Shape& in) const {
  return {in[1], in[2], in[3], kernel_size, stride, padding, conv_out(in[2], kernel_size, stride, padding),
          conv_out(in[3], kernel_size, stride, padding)};
}

Shape Conv2d::output_shape(const Shape& in) const {
  if (in[1] != in_channels)
    fail("Conv2d expects " + std::to_string(in_channels) + " input channels, got " + shape_str(in));
  ConvGeometry g = geometry(in);
  if (g.OH == 0 || g.OW == 0)
    fail("Conv2d: kernel " + std::to_string(kernel_size) + " does not fit the " + std::to_string(in[2]) + "x" +
         std::to_string(in[3]) + " input");
  return {in[0], out_channels, g.OH, g.OW};
}

// Stride 1: direct kernel over the padded image (conv_kernels.hpp). Weights packed [Cin * k * k][Cout].
void Conv2d::run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* a) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], plane = g.OH * g.OW, ckk = in_channels * kernel_size * kernel_size;
  ensure_shape(y, {B, out_channels, g.OH, g.OW});
  if (act) ensure_shape(*a, y.shape());
  if (stride == 1) {
    FlatConv f = flat_conv(g.H + 2 * padding, g.W + 2 * padding, kernel_size);
    pack_transposed(params[0].value, out_channels, ckk, wpk_);
    pad_.resize(in_channels * f.in_plane);
    flat_.resize(out_channels * f.out_plane);
    for (size_t b = 0; b < B; ++b) {
      pad_image(sample(x, b), in_channels, g.H, g.W, padding, f, pad_.data());
      conv_s1_flat(pad_.data(), in_channels, wpk_.data(), out_channels, f, flat_.data());
      float* yb = sample(y, b);
      for (size_t co = 0; co < out_channels; ++co) {
        float bias = has_bias ? params[1].value[co] : 0.f;
        for (size_t oh = 0; oh < g.OH; ++oh) {
          const float* src = flat_.data() + co * f.out_plane + oh * f.Wp;
          float* dst = yb + (co * g.OH + oh) * g.OW;
          if (has_bias)
            for (size_t ow = 0; ow < g.OW; ++ow) dst[ow] = src[ow] + bias;
          else
            std::memcpy(dst, src, g.OW * sizeof(float));
        }
      }
      if (act) act->apply(yb, sample(*a, b), out_channels * plane);
    }
    return;
  }
  col_.resize(ckk * plane);
  for (size_t b = 0; b < B; ++b) {
    im2col(sample(x, b), g, col_.data());
    gemm(false, false, out_channels, plane, ckk, 1.f, params[0].value, ckk, col_.data(), plane, 0.f, sample(y, b),
         plane);
  }
  if (has_bias) add_channel_bias(y.data(), params[1].value, B, out_channels, plane);
  if (act) act->apply(y.data(), a->data(), y.size());
}

// dW[a][c][ki][kj] += sum over the grid of grid[a][o] * padded[c][o + ki * Wp + kj]: the weight gradient of a
// stride-1 convolution whose output gradient (Conv2d) or input (ConvTranspose2d) lies on the flat grid. Added into
// dW_lanes (16 per weight, dot16_lanes), which the caller sums up once per batch.
// offsets: scratch for the C * k * k shifts of the padded input.
static void flat_weight_grad(const float* grid, size_t A, size_t grid_stride, const float* padded, size_t C,
                             const FlatConv& g, float* dW_lanes, std::vector<size_t>& offsets) {
  const size_t k = g.k, ckk = C * k * k;
  offsets.resize(ckk);
  for (size_t c = 0; c < C; ++c)
    for (size_t ki = 0; ki < k; ++ki)
      for (size_t kj = 0; kj < k; ++kj) offsets[(c * k + ki) * k + kj] = c * g.in_plane + ki * g.Wp + kj;
  // every weight of output a: dots of its grid plane against shifted inputs
  dot16_lanes(grid, grid_stride, A, padded, offsets.data(), ckk, g.out_plane, dW_lanes);
}

// dy: the gradient w.r.t. y (fused: w.r.t. a = act(y), taken through act's derivative one sample at a time).
void Conv2d::run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act, const Tensor* a,
                          Tensor* dx) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], plane = g.OH * g.OW, ckk = in_channels * kernel_size * kernel_size;
  if (dx) ensure_shape(*dx, in);
  if (stride == 1) {
    // dx: the full correlation of dy (padded by k - 1 - padding) with the flipped kernel, W as [Cout * k * k][Cin].
    const size_t k = kernel_size, pb = k - 1 - padding;
    FlatConv f = flat_conv(g.H + 2 * padding, g.W + 2 * padding, k);
    FlatConv fb = flat_conv(g.OH + 2 * pb, g.OW + 2 * pb, k);
    pack_flipped(params[0].value, out_channels, in_channels, kernel_size, wpk_);
    pad_.resize(std::max(in_channels * f.in_plane, out_channels * fb.in_plane));
    flat_.resize(std::max(out_channels * f.out_plane, in_channels * fb.out_plane));
    lanes_.assign(params[0].numel() * 16, 0.f);
    for (size_t b = 0; b < B; ++b) {
      const float* dyb = output_grad(dy, act, a, b, dz_);
      if (dx) {
        pad_image(dyb, out_channels, g.OH, g.OW, pb, fb, pad_.data());
        conv_s1_flat(pad_.data(), out_channels, wpk_.data(), in_channels, fb, flat_.data());
        from_flat_grid(flat_.data(), in_channels, g.H, g.W, fb, sample(*dx, b));
      }
      pad_image(sample(x, b), in_channels, g.H, g.W, padding, f, pad_.data());
      to_flat_grid(dyb, out_channels, f, flat_.data());
      flat_weight_grad(flat_.data(), out_channels, f.out_plane, pad_.data(), in_channels, f, lanes_.data(), offsets_);
      // The bias gradient sums the same grid (zeros past each row add nothing), so forward_relu_pool's matches it.
      if (has_bias)
        for (size_t co = 0; co < out_channels; ++co) params[1].grad[co] += sum16(flat_.data() + co * f.out_plane, f.out_plane);
    }
    add_lanes(lanes_.data(), params[0].numel(), params[0].grad);
    return;
  }
  if (dx) std::fill(dx->begin(), dx->end(), 0.f);
  col_.resize(ckk * plane);
  dcol_.resize(ckk * plane);
  for (size_t b = 0; b < B; ++b) {
    const float* dyb = output_grad(dy, act, a, b, dz_);
    if (has_bias) accumulate_channel_sums(dyb, params[1].grad, 1, out_channels, plane);
    im2col(sample(x, b), g, col_.data());
    // dW[Cout, CKK] += dy_b[Cout, P] * col^T
    gemm(false, true, out_channels, ckk, plane, 1.f, dyb, plane, col_.data(), plane, 1.f, params[0].grad, ckk);
    if (!dx) continue;
    // dcol[CKK, P] = W^T * dy_b
    gemm(true, false, ckk, plane, out_channels, 1.f, params[0].value, ckk, dyb, plane, 0.f, dcol_.data(), plane);
    col2im(dcol_.data(), g, sample(*dx, b));
  }
}

bool Conv2d::fuses_relu_pool(const ActivationLayer& act, const MaxPool2d& pool) const {
  // "Same" padding makes the padded output gradient (for dx) and the flat grid (for dW) one buffer.
  return stride == 1 && 2 * padding + 1 == kernel_size && act.kind == Activation::ReLU && pool.kernel_size == 2 &&
         pool.stride == 2;
}

void Conv2d::forward_relu_pool(const Tensor& x, Tensor& out) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], PH = g.OH / 2, PW = g.OW / 2, pooled = out_channels * PH * PW;
  ensure_shape(out, {B, out_channels, PH, PW});
  FlatConv f = flat_conv(g.H + 2 * padding, g.W + 2 * padding, kernel_size);
  pack_transposed(params[0].value, out_channels, in_channels * kernel_size * kernel_size, wpk_);
  padx_.resize(B * in_channels * f.in_plane);
  flat_.resize(out_channels * f.out_plane);
  where_.resize(B * pooled);
  for (size_t b = 0; b < B; ++b) {
    float* px = padx_.data() + b * in_channels * f.in_plane;
    pad_image(sample(x, b), in_channels, g.H, g.W, padding, f, px);
    conv_s1_flat(px, in_channels, wpk_.data(), out_channels, f, flat_.data(), has_bias ? params[1].value : nullptr, true);
    for (size_t co = 0; co < out_channels; ++co)
      max_pool_2x2(flat_.data() + co * f.out_plane, f.Wp, PH, PW, sample(out, b) + co * PH * PW,
                   where_.data() + b * pooled + co * PH * PW);
  }
}

// The convolution's output gradient is the pooled gradient at each window's maximum where the ReLU passed it (the
// maximum > 0), zero elsewhere. It is written into the padded plane the dx convolution reads, which, shifted by
// padding * (Wp + 1), is also the flat grid of the weight and bias gradients. Each sample writes all places of all
// windows; the rest of the buffer (borders, a last odd row or column) stays zero.
void Conv2d::backward_relu_pool(const Tensor& x, const Tensor& out, const Tensor& dout, Tensor* dx) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], PH = g.OH / 2, PW = g.OW / 2, pooled = out_channels * PH * PW;
  FlatConv f = flat_conv(g.H + 2 * padding, g.W + 2 * padding, kernel_size);
  const size_t shift = padding * f.Wp + padding;
  if (dx) {
    ensure_shape(*dx, in);
    pack_flipped(params[0].value, out_channels, in_channels, kernel_size, wpk_);
  }
  pad_.assign(out_channels * f.in_plane, 0.f);
  flat_.resize(in_channels * f.out_plane);
  lanes_.assign(params[0].numel() * 16, 0.f);
  for (size_t b = 0; b < B; ++b) {
    for (size_t co = 0; co < out_channels; ++co) {
      float* d = pad_.data() + co * f.in_plane + shift;
      const size_t o = b * pooled + co * PH * PW;
      relu_max_unpool_2x2(out.data() + o, dout.data() + o, where_.data() + o, PH, PW, d, f.Wp);
      if (has_bias) params[1].grad[co] += sum16(d, f.out_plane);  // as the unpooled path: over the flat grid
    }
    if (dx) {
      conv_s1_flat(pad_.data(), out_channels, wpk_.data(), in_channels, f, flat_.data());
      from_flat_grid(flat_.data(), in_channels, g.H, g.W, f, sample(*dx, b));
    }
    flat_weight_grad(pad_.data() + shift, out_channels, f.in_plane, padx_.data() + b * in_channels * f.in_plane,
                     in_channels, f, lanes_.data(), offsets_);
  }
  add_lanes(lanes_.data(), params[0].numel(), params[0].grad);
}

// ------------------------------------------------------------------------------------- ConvTranspose2d

ConvTranspose2d::ConvTranspose2d(const json& spec) : FusingLayer(spec) {
  Args a(spec, "ConvTranspose2d");
  in_channels = a.integer("in_channels", 1, kMaxChannels);
  out_channels = a.integer("out_channels", 1, kMaxChannels);
  kernel_size = a.integer("kernel_size", 1, 15);
  stride = a.integer("stride", 1, 8, 1);
  padding = a.integer("padding", 0, 7, 0);
  output_padding = a.integer("output_padding", 0, 7, 0);
  has_bias = a.boolean("bias", true);
  a.done();
  if (output_padding >= stride)
    fail("ConvTranspose2d: 'output_padding' must be smaller than 'stride' (as in PyTorch)");
  if (padding >= kernel_size) fail("ConvTranspose2d: 'padding' must be smaller than 'kernel_size'");
  // PyTorch computes fan_in from weight.size(1) = out_channels for transposed convolutions.
  float bound = 1.f / std::sqrt(float(out_channels * kernel_size * kernel_size));
  int64_t k = int64_t(kernel_size);
  params.push_back(slot("weight", {int64_t(in_channels), int64_t(out_channels), k, k}, bound));
  if (has_bias) params.push_back(slot("bias", {int64_t(out_channels)}, bound));
}

ConvGeometry ConvTranspose2d::geometry(const Shape& in) const {
  size_t oh = (in[2] - 1) * stride + kernel_size + output_padding - 2 * padding;
  size_t ow = (in[3] - 1) * stride + kernel_size + output_padding - 2 * padding;
  return {out_channels, oh, ow, kernel_size, stride, padding, in[2], in[3]};
}

Shape ConvTranspose2d::output_shape(const Shape& in) const {
  if (in[1] != in_channels)
    fail("ConvTranspose2d expects " + std::to_string(in_channels) + " input channels, got " + shape_str(in));
  if ((in[2] - 1) * stride + kernel_size + output_padding <= 2 * padding)
    fail("ConvTranspose2d: padding " + std::to_string(padding) + " leaves no output for a " + std::to_string(in[2]) +
         "x" + std::to_string(in[3]) + " input");
  ConvGeometry g = geometry(in);
  return {in[0], out_channels, g.H, g.W};
}

// act_out (fused): act(y), written sample by sample.
void ConvTranspose2d::run_forward(const Tensor& x, Tensor& y, const ActivationLayer* act, Tensor* act_out) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], hw = in[2] * in[3], okk = out_channels * kernel_size * kernel_size;
  const size_t out_per_sample = out_channels * g.H * g.W;
  ensure_shape(y, {B, out_channels, g.H, g.W});
  if (act) ensure_shape(*act_out, y.shape());
  if (stride == 1) {
    // A stride-1 convolution of x padded by k - 1 - padding with the flipped kernel, packed [Cin * k * k][Cout].
    const size_t k = kernel_size;
    FlatConv f = flat_conv(in[2] + 2 * (k - 1 - padding), in[3] + 2 * (k - 1 - padding), k);
    pack_flipped(params[0].value, in_channels, out_channels, k, wpk_);
    pad_.resize(in_channels * f.in_plane);
    flat_.resize(out_channels * f.out_plane);
    for (size_t b = 0; b < B; ++b) {
      pad_image(sample(x, b), in_channels, in[2], in[3], k - 1 - padding, f, pad_.data());
      conv_s1_flat(pad_.data(), in_channels, wpk_.data(), out_channels, f, flat_.data());
      float* yb = sample(y, b);
      for (size_t co = 0; co < out_channels; ++co) {
        float bias = has_bias ? params[1].value[co] : 0.f;
        for (size_t oh = 0; oh < g.H; ++oh) {
          const float* src = flat_.data() + co * f.out_plane + oh * f.Wp;
          float* dst = yb + (co * g.H + oh) * g.W;
          for (size_t ow = 0; ow < g.W; ++ow) dst[ow] = src[ow] + bias;
        }
      }
      if (act) act->apply(yb, sample(*act_out, b), out_per_sample);
    }
    return;
  }
  if (direct()) {
    // kernel_size == stride: windows do not overlap, and the layer is a 1x1 convolution from the input planes to one
    // plane per (co, a, c) tap (W as stored, [Cin][Cout * k * k], is that kernel's packing), then each output pixel is
    // one tap value (+ bias): y[co][i * k + a][j * k + c] = col[(co, a, c)][i * W + j]. Sums over ci in order from 0.
    const size_t k = kernel_size, IH = in[2], IW = in[3];
    FlatConv f = flat_conv(IH, IW, 1);
    xs_.resize(in_channels * f.in_plane);
    col_.resize(okk * f.out_plane);
    for (size_t b = 0; b < B; ++b) {
      pad_image(sample(x, b), in_channels, IH, IW, 0, f, xs_.data());
      conv_s1_flat(xs_.data(), in_channels, params[0].value, okk, f, col_.data());
      float* yb = sample(y, b);
      for (size_t co = 0; co < out_channels; ++co) {
        const float bias = has_bias ? params[1].value[co] : 0.f;
        for (size_t a = 0; a < k; ++a) {
          const float* src = col_.data() + (co * k + a) * k * f.out_plane;
          for (size_t i = 0; i < IH; ++i) {
            float* dst = yb + (co * g.H + i * k + a) * g.W;
            if (k == 2) {
              interleave2(src + i * IW, src + f.out_plane + i * IW, IW, bias, dst);
              continue;
            }
            for (size_t c = 0; c < k; ++c)
              for (size_t j = 0; j < IW; ++j) dst[j * k + c] = src[c * f.out_plane + i * IW + j] + bias;
          }
        }
      }
      if (act) act->apply(yb, sample(*act_out, b), out_per_sample);
    }
    return;
  }
  std::fill(y.begin(), y.end(), 0.f);
  col_.resize(okk * hw);
  for (size_t b = 0; b < B; ++b) {
    // col[OKK, HW] = W^T * x_b with W viewed as [Cin, OKK]
    gemm(true, false, okk, hw, in_channels, 1.f, params[0].value, okk, sample(x, b), hw, 0.f, col_.data(), hw);
    col2im(col_.data(), g, sample(y, b));
  }
  if (has_bias) add_channel_bias(y.data(), params[1].value, B, out_channels, g.H * g.W);
  if (act) act->apply(y.data(), act_out->data(), y.size());
}

// dy: the gradient w.r.t. y (fused: w.r.t. act_out = act(y), taken through act's derivative one sample at a time).
void ConvTranspose2d::run_backward(const Tensor& x, const Tensor& dy, const ActivationLayer* act,
                                   const Tensor* act_out, Tensor* dx) {
  const Shape& in = x.shape();
  ConvGeometry g = geometry(in);
  const size_t B = in[0], hw = in[2] * in[3], okk = out_channels * kernel_size * kernel_size, plane = g.H * g.W;
  if (dx) ensure_shape(*dx, in);
  if (stride == 1) {
    // dx: a stride-1 convolution of dy padded by `padding`, W packed [Cout * k * k][Cin]; dW from the flat grid.
    const size_t k = kernel_size;
    FlatConv f = flat_conv(g.H + 2 * padding, g.W + 2 * padding, k);
    pack_transposed(params[0].value, in_channels, okk, wpk_);
    pad_.resize(out_channels * f.in_plane);
    flat_.resize(in_channels * f.out_plane);
    lanes_.assign(params[0].numel() * 16, 0.f);
    for (size_t b = 0; b < B; ++b) {
      const float* dyb = output_grad(dy, act, act_out, b, dz_);
      if (has_bias) accumulate_channel_sums(dyb, params[1].grad, 1, out_channels, plane);
      pad_image(dyb, out_channels, g.H, g.W, padding, f, pad_.data());
      if (dx) {
        conv_s1_flat(pad_.data(), out_channels, wpk_.data(), in_channels, f, flat_.data());
        float* dxb = sample(*dx, b);
        for (size_t ci = 0; ci < in_channels; ++ci)
          for (size_t i = 0; i < in[2]; ++i)
            std::memcpy(dxb + (ci * in[2] + i) * in[3], flat_.data() + ci * f.out_plane + i * f.Wp,
                        in[3] * sizeof(float));
      }
      to_flat_grid(sample(x, b), in_channels, f, flat_.data());
      flat_weight_grad(flat_.data(), in_channels, f.out_plane, pad_.data(), out_channels, f, lanes_.data(), offsets_);
    }
    add_lanes(lanes_.data(), params[0].numel(), params[0].grad);
    return;
  }
  if (direct()) {
    // Gather dy into per-tap planes (zero past hw), then dW[ci][tap] += dot(x[ci], plane) and dx = the 1x1 convolution
    // of the tap planes with W as [Cout * k * k][Cin] (dx[ci] = sum over taps, in order, of W[ci][tap] * plane).
    const size_t k = kernel_size, IH = in[2], IW = in[3];
    FlatConv f = flat_conv(IH, IW, 1);
    col_.assign(okk * f.in_plane, 0.f);
    xs_.resize(in_channels * f.in_plane);
    flat_.resize(in_channels * f.out_plane);
    lanes_.assign(params[0].numel() * 16, 0.f);
    offsets_.resize(okk);
    for (size_t t = 0; t < okk; ++t) offsets_[t] = t * f.in_plane;
    if (dx) pack_transposed(params[0].value, in_channels, okk, wpk_);
    for (size_t b = 0; b < B; ++b) {
      const float* dyb = output_grad(dy, act, act_out, b, dz_);
      if (has_bias) accumulate_channel_sums(dyb, params[1].grad, 1, out_channels, plane);
      for (size_t co = 0; co < out_channels; ++co)
        for (size_t a = 0; a < k; ++a) {
          float* dst = col_.data() + (co * k + a) * k * f.in_plane;
          for (size_t i = 0; i < IH; ++i) {
            const float* src = dyb + (co * g.H + i * k + a) * g.W;
            if (k == 2) {
              deinterleave2(src, IW, dst + i * IW, dst + f.in_plane + i * IW);
              continue;
            }
            for (size_t c = 0; c < k; ++c)
              for (size_t j = 0; j < IW; ++j) dst[c * f.in_plane + i * IW + j] = src[j * k + c];
          }
        }
      pad_image(sample(x, b), in_channels, IH, IW, 0, f, xs_.data());
      dot16_lanes(xs_.data(), f.in_plane, in_channels, col_.data(), offsets_.data(), okk, f.out_plane, lanes_.data());
      if (!dx) continue;
      conv_s1_flat(col_.data(), okk, wpk_.data(), in_channels, f, flat_.data());
      from_flat_grid(flat_.data(), in_channels, IH, IW, f, sample(*dx, b));
    }
    add_lanes(lanes_.data(), params[0].numel(), params[0].grad);
    return;
  }
  col_.resize(okk * hw);
  for (size_t b = 0; b < B; ++b) {
    const float* dyb = output_grad(dy, act, act_out, b, dz_);
    if (has_bias) accumulate_channel_sums(dyb, params[1].grad, 1, out_channels, plane);
    im2col(dyb, g, col_.data());
    // dx_b[Cin, HW] = W[Cin, OKK] * dcol
    if (dx) gemm(false, false, in_channels, hw, okk, 1.f, params[0].value, okk, col_.data(), hw, 0.f, sample(*dx, b), hw);
    // dW[Cin, OKK] += x_b[Cin, HW] * dcol^T
    gemm(false, true, in_channels, okk, hw, 1.f, sample(x, b), hw, col_.data(), hw, 1.f, params[0].grad, okk);
  }
}

// -------------------------------------------------------------------------------------------- MaxPool2d

MaxPool2d::MaxPool2d(const json& spec) : Layer(spec) {
  Args a(spec, "MaxPool2d");
  kernel_size = a.integer("kernel_size", 1, 15);
  stride = a.integer("stride", 1, 15, (long long)kernel_size);
  a.integer("padding", 0, 0, 0);
  a.done();
}

Shape MaxPool2d::output_shape(const Shape& in) const {
  if (in[2] < kernel_size || in[3] < kernel_size)
    fail("MaxPool2d: window " + std::to_string(kernel_size) + " is larger than the " + std::to_string(in[2]) + "x" +
         std::to_string(in[3]) + " input " + shape_str(in));
  return {in[0], in[1], (in[2] - kernel_size) / stride + 1, (in[3] - kernel_size) / stride + 1};
}

void MaxPool2d::forward(const Tensor& x, Tensor& y, const RunContext&) {
  const Shape& in = x.shape();
  Shape out = output_shape(in);
  ensure_shape(y, out);
  argmax_.resize(numel(out));
  const size_t H = in[2], W = in[3], OH = out[2], OW = out[3];
  if (kernel_size == 2 && stride == 2) {  // the conv presets' pooling, unrolled; same tie and NaN rules as below
    for (size_t bc = 0; bc < in[0] * in[1]; ++bc) {
      const float* src = x.data() + bc * H * W;
      float* dst = y.data() + bc * OH * OW;
      uint32_t* arg = argmax_.data() + bc * OH * OW;
      const uint32_t base = uint32_t(bc * H * W);
      for (size_t oh = 0; oh < OH; ++oh) {
        const float* s0 = src + 2 * oh * W;
        const float* s1 = s0 + W;
        const uint32_t i0 = base + uint32_t(2 * oh * W), i1 = i0 + uint32_t(W);
        // Branch-free selects over stride-2 loads, which the compiler vectorizes.
        for (size_t ow = 0; ow < OW; ++ow) {
          float m = s0[2 * ow];
          uint32_t best = i0 + uint32_t(2 * ow);
          const float v1 = s0[2 * ow + 1], v2 = s1[2 * ow], v3 = s1[2 * ow + 1];
          const bool t1 = v1 > m || v1 != v1;
          m = t1 ? v1 : m;
          best = t1 ? i0 + uint32_t(2 * ow + 1) : best;
          const bool t2 = v2 > m || v2 != v2;
          m = t2 ? v2 : m;
          best = t2 ? i1 + uint32_t(2 * ow) : best;
          const bool t3 = v3 > m || v3 != v3;
          m = t3 ? v3 : m;
          best = t3 ? i1 + uint32_t(2 * ow + 1) : best;
          dst[oh * OW + ow] = m;
          arg[oh * OW + ow] = best;
        }
      }
    }
    return;
  }
  for (size_t bc = 0; bc < in[0] * in[1]; ++bc) {
    const float* src = x.data() + bc * H * W;
    float* dst = y.data() + bc * OH * OW;
    uint32_t* arg = argmax_.data() + bc * OH * OW;
    for (size_t oh = 0; oh < OH; ++oh)
      for (size_t ow = 0; ow < OW; ++ow) {
        size_t best = (oh * stride) * W + ow * stride;
        float m = src[best];
        for (size_t i = 0; i < kernel_size; ++i)
          for (size_t j = 0; j < kernel_size; ++j) {
            size_t idx = (oh * stride + i) * W + ow * stride + j;
            if (src[idx] > m || std::isnan(src[idx])) m = src[idx], best = idx;
          }
        dst[oh * OW + ow] = m;
        arg[oh * OW + ow] = uint32_t(bc * H * W + best);
      }
  }
}

void MaxPool2d::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dxp) {
  if (!dxp) return;  // no parameters: nothing to compute
  Tensor& dx = *dxp;
  ensure_shape(dx, x.shape());
  const float* g = dy.data();
  if (kernel_size == stride) {
    // Disjoint windows: zero a window row's input rows and drop its outputs' gradients in while they are in
    // cache (one pass, not a fill then a scatter). 0.f + g is what the += below gives (-0 becomes +0).
    const Shape& in = x.shape();
    const size_t H = in[2], W = in[3], OH = dy.shape()[2], OW = dy.shape()[3], s = stride;
    for (size_t bc = 0; bc < in[0] * in[1]; ++bc) {
      float* plane = dx.data() + bc * H * W;
      for (size_t oh = 0; oh < OH; ++oh) {
        std::fill(plane + oh * s * W, plane + (oh + 1) * s * W, 0.f);
        const size_t o = (bc * OH + oh) * OW;
        for (size_t ow = 0; ow < OW; ++ow) dx.data()[argmax_[o + ow]] = 0.f + g[o + ow];
      }
      std::fill(plane + OH * s * W, plane + H * W, 0.f);  // rows below the last window
    }
    return;
  }
  std::fill(dx.begin(), dx.end(), 0.f);
  for (size_t i = 0; i < argmax_.size(); ++i) dx.data()[argmax_[i]] += g[i];
}

// --------------------------------------------------------------------------------------------- Upsample

Upsample::Upsample(const json& spec) : Layer(spec) {
  Args a(spec, "Upsample");
  scale = a.integer("scale_factor", 1, 8);
  std::string mode = a.string("mode", "nearest");
  a.done();
  if (mode != "nearest") fail("Upsample: only mode \"nearest\" is supported, got \"" + mode + "\"");
}

Shape Upsample::output_shape(const Shape& in) const {
  if (in[2] == 1 && in[3] == 1 && in[1] > 1)
    fail("Upsample expects an image [batch, C, H, W], got the flat " + shape_str(in) + " - add an Unflatten first");
  return {in[0], in[1], in[2] * scale, in[3] * scale};
}

void Upsample::forward(const Tensor& x, Tensor& y, const RunContext&) {
  const Shape& in = x.shape();
  ensure_shape(y, output_shape(in));
  const size_t H = in[2], W = in[3], s = scale, OW = W * s;
  for (size_t bc = 0; bc < in[0] * in[1]; ++bc) {
    const float* src = x.data() + bc * H * W;
    float* dst = y.data() + bc * H * W * s * s;
    for (size_t i = 0; i < H; ++i) {
      float* row = dst + i * s * OW;  // the first of the s output rows of input row i, then copies of it
      if (s == 2) {
        repeat2(src + i * W, W, row);
      } else {
        for (size_t j = 0; j < W; ++j)
          for (size_t c = 0; c < s; ++c) row[j * s + c] = src[i * W + j];
      }
      for (size_t a = 1; a < s; ++a) std::copy(row, row + OW, row + a * OW);
    }
  }
}

// dx[i][j] = the sum of dy over the s x s block of (i, j), row by row, each row left to right (from 0).
void Upsample::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dxp) {
  if (!dxp) return;  // no parameters: nothing to compute
  Tensor& dx = *dxp;
  const Shape& in = x.shape();
  ensure_shape(dx, in);
  std::fill(dx.begin(), dx.end(), 0.f);
  const size_t H = in[2], W = in[3], s = scale, OW = W * s;
  for (size_t bc = 0; bc < in[0] * in[1]; ++bc) {
    const float* src = dy.data() + bc * H * W * s * s;
    float* dst = dx.data() + bc * H * W;
    for (size_t i = 0; i < H; ++i)
      for (size_t a = 0; a < s; ++a) {
        const float* row = src + (i * s + a) * OW;
        float* d = dst + i * W;
        if (s == 2) {
          add_pairs2(row, W, d);
          continue;
        }
        for (size_t j = 0; j < W; ++j)
          for (size_t c = 0; c < s; ++c) d[j] += row[j * s + c];
      }
  }
}

// -------------------------------------------------------------------------------------------- BatchNorm

BatchNorm::BatchNorm(const json& spec) : Layer(spec) {
  std::string t = spec.at("type").get<std::string>();
  two_d = t == "BatchNorm2d";
  Args a(spec, t);
  num_features = a.integer("num_features", 1, kMaxFeatures);
  eps = a.number("eps", 1e-12, 1.0, 1e-5);
  momentum = a.number("momentum", 0.0, 1.0, 0.1);
  if (!a.boolean("affine", true)) fail(t + ": only affine=true is supported");
  if (!a.boolean("track_running_stats", true)) fail(t + ": only track_running_stats=true is supported");
  a.done();
  int64_t n = int64_t(num_features);
  params.push_back(slot("weight", {n}, 0.f, ParamSlot::Init::Ones));
  params.push_back(slot("bias", {n}, 0.f, ParamSlot::Init::Zeros));
  buffers.push_back(slot("running_mean", {n}, 0.f, ParamSlot::Init::Zeros));
  buffers.push_back(slot("running_var", {n}, 0.f, ParamSlot::Init::Ones));
  counters.push_back({"num_batches_tracked", &num_batches_tracked});
}

Shape BatchNorm::output_shape(const Shape& in) const {
  std::string t = two_d ? "BatchNorm2d" : "BatchNorm1d";
  if (!two_d && (in[2] != 1 || in[3] != 1))
    fail("BatchNorm1d expects [batch, features], got " + shape_str(in) + " - use BatchNorm2d for images");
  if (two_d && in[2] == 1 && in[3] == 1 && in[1] > 1)
    fail("BatchNorm2d expects [batch, C, H, W], got the flat " + shape_str(in) + " - use BatchNorm1d");
  if (in[1] != num_features)
    fail(t + " expects " + std::to_string(num_features) + " channels, got " + shape_str(in));
  return in;
}

void BatchNorm::forward(const Tensor& x, Tensor& y, const RunContext& ctx) {
  const Shape& in = x.shape();
  const size_t B = in[0], C = in[1], plane = in[2] * in[3], n = B * plane;
  ensure_shape(y, in);
  mean_.resize(C);
  invstd_.resize(C);
  float* gamma = params[0].value;
  float* beta = params[1].value;
  float* rmean = buffers[0].value;
  float* rvar = buffers[1].value;
  last_training_ = ctx.training;
  if (ctx.training) {
    if (n < 2)
      fail(std::string(two_d ? "BatchNorm2d" : "BatchNorm1d") +
           ": training needs more than 1 value per channel (batch size 1?)");
    for (size_t c = 0; c < C; ++c) {
      double s = 0, s2 = 0;
      for (size_t b = 0; b < B; ++b) {
        const float* p = x.data() + (b * C + c) * plane;
        for (size_t i = 0; i < plane; ++i) s += p[i];
      }
      double m = s / double(n);
      for (size_t b = 0; b < B; ++b) {
        const float* p = x.data() + (b * C + c) * plane;
        for (size_t i = 0; i < plane; ++i) s2 += (p[i] - m) * (p[i] - m);
      }
      double var = s2 / double(n);
      mean_[c] = float(m);
      invstd_[c] = float(1.0 / std::sqrt(var + eps));
      rmean[c] = (1.f - momentum) * rmean[c] + momentum * float(m);
      rvar[c] = (1.f - momentum) * rvar[c] + momentum * float(s2 / double(n - 1));
    }
    ++num_batches_tracked;
  } else {
    for (size_t c = 0; c < C; ++c) {
      mean_[c] = rmean[c];
      invstd_[c] = 1.f / std::sqrt(rvar[c] + eps);
    }
  }
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < C; ++c) {
      const float* p = x.data() + (b * C + c) * plane;
      float* q = y.data() + (b * C + c) * plane;
      float scale = gamma[c] * invstd_[c], shift = beta[c] - mean_[c] * scale;
      for (size_t i = 0; i < plane; ++i) q[i] = p[i] * scale + shift;
    }
}

void BatchNorm::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) {
  const Shape& in = x.shape();
  const size_t B = in[0], C = in[1], plane = in[2] * in[3];
  const double n = double(B * plane);
  if (dx) ensure_shape(*dx, in);
  float* gamma = params[0].value;
  for (size_t c = 0; c < C; ++c) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (size_t b = 0; b < B; ++b) {
      const float* p = x.data() + (b * C + c) * plane;
      const float* g = dy.data() + (b * C + c) * plane;
      for (size_t i = 0; i < plane; ++i) {
        sum_dy += g[i];
        sum_dy_xhat += g[i] * (p[i] - mean_[c]) * invstd_[c];
      }
    }
    params[0].grad[c] += float(sum_dy_xhat);
    params[1].grad[c] += float(sum_dy);
    if (!dx) continue;
    float k = gamma[c] * invstd_[c];
    // Eval mode: statistics are constants. Training: they depend on x (the usual three-term formula).
    float a = last_training_ ? float(sum_dy / n) : 0.f;
    float bcoef = last_training_ ? float(sum_dy_xhat / n) : 0.f;
    for (size_t b = 0; b < B; ++b) {
      const float* p = x.data() + (b * C + c) * plane;
      const float* g = dy.data() + (b * C + c) * plane;
      float* q = dx->data() + (b * C + c) * plane;
      for (size_t i = 0; i < plane; ++i) {
        float xhat = (p[i] - mean_[c]) * invstd_[c];
        q[i] = k * (g[i] - a - xhat * bcoef);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------- Dropout

Dropout::Dropout(const json& spec) : Layer(spec) {
  Args a(spec, "Dropout");
  p = a.number("p", 0.0, 1.0, 0.5, true);
  a.done();
}

void Dropout::forward(const Tensor& x, Tensor& y, const RunContext& ctx) {
  ensure_shape(y, x.shape());
  if (!ctx.training || p == 0.f) {
    mask_.clear();
    std::copy(x.begin(), x.end(), y.begin());
    return;
  }
  if (!ctx.rng) fail("Dropout: no random generator given for training");
  mask_.resize(x.size());
  const float keep = 1.f / (1.f - p);
  for (size_t i = 0; i < mask_.size(); ++i) {
    mask_[i] = ctx.rng->uniform() < p ? 0.f : keep;
    y.data()[i] = x.data()[i] * mask_[i];
  }
}

void Dropout::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dxp) {
  if (!dxp) return;  // no parameters: nothing to compute
  Tensor& dx = *dxp;
  ensure_shape(dx, x.shape());
  if (mask_.empty()) {
    std::copy(dy.begin(), dy.end(), dx.begin());
    return;
  }
  for (size_t i = 0; i < mask_.size(); ++i) dx.data()[i] = dy.data()[i] * mask_[i];
}

// ---------------------------------------------------------------------------------------- Activations

ActivationLayer::ActivationLayer(const json& spec, Activation k) : Layer(spec), kind(k) {
  Args a(spec, type());
  if (kind == Activation::LeakyReLU) negative_slope = a.number("negative_slope", 0.0, 1.0, 0.01);
  a.done();
}

void ActivationLayer::apply(const float* in, float* out, size_t n) const {
  using batch = xsimd::batch<float>;
  constexpr size_t W = batch::size;
  const size_t nv = n - n % W;
  switch (kind) {
    case Activation::ReLU:  // explicit selects: clang leaves `in > 0 ? in : 0` scalar in WebAssembly (see gradient)
      for (size_t i = 0; i < nv; i += W) {
        const batch v = batch::load_unaligned(in + i);
        xsimd::select(v > batch(0.f), v, batch(0.f)).store_unaligned(out + i);
      }
      for (size_t i = nv; i < n; ++i) out[i] = in[i] > 0.f ? in[i] : 0.f;
      break;
    case Activation::LeakyReLU:
      for (size_t i = 0; i < nv; i += W) {
        const batch v = batch::load_unaligned(in + i);
        xsimd::select(v > batch(0.f), v, v * batch(negative_slope)).store_unaligned(out + i);
      }
      for (size_t i = nv; i < n; ++i) out[i] = in[i] > 0.f ? in[i] : in[i] * negative_slope;
      break;
    case Activation::Sigmoid:
      for (size_t i = 0; i < nv; i += W) sigmoid_f32(batch::load_unaligned(in + i)).store_unaligned(out + i);
      for (size_t i = nv; i < n; ++i) out[i] = sigmoid_f32(in[i]);
      break;
    case Activation::Tanh:
      for (size_t i = 0; i < nv; i += W) tanh_f32(batch::load_unaligned(in + i)).store_unaligned(out + i);
      for (size_t i = nv; i < n; ++i) out[i] = tanh_f32(in[i]);
      break;
  }
}

// The ReLUs test their output: with a slope in [0, 1] it is > 0 exactly where the input is (NaN and -0 included).
void ActivationLayer::gradient(const float* out, const float* g, float* d, size_t n) const {
  using batch = xsimd::batch<float>;
  constexpr size_t W = batch::size;
  const size_t nv = n - n % W;
  switch (kind) {
    case Activation::ReLU:
      // Explicit selects: clang reads `out > 0 ? g : 0` as a conditional load of g and leaves it a scalar loop with an
      // unpredictable branch in WebAssembly (13% of model B's step there).
      for (size_t i = 0; i < nv; i += W) {
        const batch o = batch::load_unaligned(out + i);
        xsimd::select(o > batch(0.f), batch::load_unaligned(g + i), batch(0.f)).store_unaligned(d + i);
      }
      for (size_t i = nv; i < n; ++i) d[i] = out[i] > 0.f ? g[i] : 0.f;
      break;
    case Activation::LeakyReLU:
      for (size_t i = 0; i < n; ++i) d[i] = out[i] > 0.f ? g[i] : g[i] * negative_slope;
      break;
    case Activation::Sigmoid:
      for (size_t i = 0; i < n; ++i) d[i] = flush_tiny_gradient(g[i] * out[i] * (1.f - out[i]));  // see mathfn.hpp
      break;
    case Activation::Tanh:
      for (size_t i = 0; i < n; ++i) d[i] = g[i] * (1.f - out[i] * out[i]);
      break;
  }
}

void ActivationLayer::forward(const Tensor& x, Tensor& y, const RunContext&) {
  ensure_shape(y, x.shape());
  apply(x.data(), y.data(), x.size());
}

void ActivationLayer::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  if (!dx) return;  // no parameters: nothing to compute
  ensure_shape(*dx, x.shape());
  gradient(y.data(), dy.data(), dx->data(), x.size());
}

// --------------------------------------------------------------------------------- Flatten / Unflatten

Reshape::Reshape(const json& spec) : Layer(spec) {
  std::string t = spec.at("type").get<std::string>();
  flatten_ = t == "Flatten";
  Args a(spec, t);
  if (!flatten_) {
    const json* s = a.raw("unflattened_size");
    if (!s || !s->is_array() || s->size() != 3)
      fail("Unflatten: 'unflattened_size' must be [channels, height, width], e.g. [32, 7, 7]");
    for (size_t i = 0; i < 3; ++i) {
      if (!(*s)[i].is_number_integer() || (*s)[i].get<long long>() < 1 || (*s)[i].get<long long>() > 4096)
        fail("Unflatten: 'unflattened_size' entries must be integers between 1 and 4096, got " + s->dump());
      target_[i] = (*s)[i].get<size_t>();
    }
  }
  a.done();
}

Shape Reshape::output_shape(const Shape& in) const {
  if (flatten_) return {in[0], per_sample(in), 1, 1};
  uint64_t want = uint64_t(target_[0]) * target_[1] * target_[2];  // up to 2^36: would wrap in 32-bit size_t
  if (uint64_t(in[1]) * in[2] * in[3] != want)
    fail("Unflatten to [" + std::to_string(target_[0]) + ", " + std::to_string(target_[1]) + ", " +
         std::to_string(target_[2]) + "] needs " + std::to_string(want) + " features per sample, got " + shape_str(in));
  return {in[0], target_[0], target_[1], target_[2]};
}

void Reshape::forward(const Tensor& x, Tensor& y, const RunContext&) {
  ensure_shape(y, output_shape(x.shape()));
  std::copy(x.begin(), x.end(), y.begin());
}

void Reshape::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dxp) {
  if (!dxp) return;  // no parameters: nothing to compute
  Tensor& dx = *dxp;
  ensure_shape(dx, x.shape());
  std::copy(dy.begin(), dy.end(), dx.begin());
}

// ---------------------------------------------------------------------------------------------- factory

const std::vector<std::string>& layer_types() {
  static const std::vector<std::string> types = {
      "Linear", "Conv2d", "ConvTranspose2d", "MaxPool2d", "Upsample", "BatchNorm1d", "BatchNorm2d", "Dropout",
      "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Flatten", "Unflatten"};
  return types;
}

std::unique_ptr<Layer> make_layer(const json& spec) {
  if (!spec.is_object()) fail("a layer must be a JSON object like {\"type\": \"ReLU\"}, got " + spec.dump());
  if (!spec.contains("type") || !spec.at("type").is_string())
    fail("a layer needs a \"type\" string, e.g. \"Linear\"; got " + spec.dump());
  std::string t = spec.at("type").get<std::string>();
  if (t == "Linear") return std::make_unique<Linear>(spec);
  if (t == "Conv2d") return std::make_unique<Conv2d>(spec);
  if (t == "ConvTranspose2d") return std::make_unique<ConvTranspose2d>(spec);
  if (t == "MaxPool2d") return std::make_unique<MaxPool2d>(spec);
  if (t == "Upsample") return std::make_unique<Upsample>(spec);
  if (t == "BatchNorm1d" || t == "BatchNorm2d") return std::make_unique<BatchNorm>(spec);
  if (t == "Dropout") return std::make_unique<Dropout>(spec);
  if (t == "ReLU") return std::make_unique<ActivationLayer>(spec, Activation::ReLU);
  if (t == "LeakyReLU") return std::make_unique<ActivationLayer>(spec, Activation::LeakyReLU);
  if (t == "Sigmoid") return std::make_unique<ActivationLayer>(spec, Activation::Sigmoid);
  if (t == "Tanh") return std::make_unique<ActivationLayer>(spec, Activation::Tanh);
  if (t == "Flatten" || t == "Unflatten") return std::make_unique<Reshape>(spec);
  std::string known;
  for (const auto& k : layer_types()) known += (known.empty() ? "" : ", ") + k;
  fail("unknown layer type '" + t + "' (known: " + known + ")");
}

}  // namespace aep
