// MNIST loading, batch conversion and corruptions.
#include "core/data.hpp"

#include <algorithm>
#include <stdexcept>
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

#include "core/idx.hpp"

namespace aep {

std::string default_mnist_dir() { return assets_dir() + "/data/mnist"; }

Dataset make_dataset(IdxImages im, IdxLabels lb, const std::string& images_name, const std::string& labels_name,
                     const std::string& name) {
  if (im.count != lb.count)
    throw std::runtime_error(labels_name + ": holds " + std::to_string(lb.count) + " labels but " + images_name +
                             " holds " + std::to_string(im.count) + " images");
  if (im.rows != 28 || im.cols != 28)
    throw std::runtime_error(images_name + ": images are " + std::to_string(im.rows) + "x" + std::to_string(im.cols) +
                             "; the models expect 28x28");
  if (im.count < 2) throw std::runtime_error(images_name + ": needs at least 2 images");
  Dataset d;
  d.name = name;
  d.count = im.count;
  d.rows = im.rows;
  d.cols = im.cols;
  d.pixels = std::move(im.pixels);
  d.labels = std::move(lb.labels);
  return d;
}

void parse_mnist(const MnistFiles& f, Dataset& train, Dataset& test, const std::string& part) {
  static const char* kNames[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                                  "t10k-labels-idx1-ubyte.gz"};
  Dataset d[2];
  for (int k = 0; k < 2; ++k) {
    const std::string im = part + kNames[2 * k], lb = part + kNames[2 * k + 1];
    d[k] = make_dataset(parse_idx_images(f.data[2 * k], f.size[2 * k], im),
                        parse_idx_labels(f.data[2 * k + 1], f.size[2 * k + 1], lb), im, lb, k ? "test" : "train");
  }
  train = std::move(d[0]);
  test = std::move(d[1]);
}

void append_mnist(const MnistFiles& f, Dataset& train, Dataset& test, const std::string& part) {
  static const char* kNames[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                                  "t10k-labels-idx1-ubyte.gz"};
  Dataset* d[2] = {&train, &test};
  const size_t had[2] = {train.count, test.count};
  try {
    for (int k = 0; k < 2; ++k) {
      const std::string im_name = part + kNames[2 * k], lb_name = part + kNames[2 * k + 1];
      Dataset& to = *d[k];
      if (to.count == 0 || to.labels.size() != to.count)
        throw std::runtime_error(im_name + ": more images for a set without labelled images yet");
      const IdxImages im = append_idx_images(to.pixels, f.data[2 * k], f.size[2 * k], im_name);
      if (im.rows != to.rows || im.cols != to.cols)
        throw std::runtime_error(im_name + ": images of " + std::to_string(im.rows) + "x" + std::to_string(im.cols) +
                                 " after images of " + std::to_string(to.rows) + "x" + std::to_string(to.cols));
      const IdxLabels lb = append_idx_labels(to.labels, f.data[2 * k + 1], f.size[2 * k + 1], lb_name);
      if (lb.count != im.count)
        throw std::runtime_error(lb_name + ": holds " + std::to_string(lb.count) + " labels but " + im_name + " holds " +
                                 std::to_string(im.count) + " images");
      to.count += im.count;
    }
  } catch (...) {
    for (int k = 0; k < 2; ++k) {  // back to what they were, whichever file failed
      d[k]->count = had[k];
      d[k]->pixels.resize(had[k] * d[k]->rows * d[k]->cols);
      d[k]->labels.resize(had[k]);
    }
    throw;
  }
}

void append_dataset(Dataset& d, Dataset more) {
  if (more.count == 0) return;
  if (d.count == 0) {
    const std::string name = d.name;
    d = std::move(more);
    if (!name.empty()) d.name = name;
    return;
  }
  if (more.rows != d.rows || more.cols != d.cols)
    throw std::runtime_error("more " + d.name + " images of " + std::to_string(more.rows) + "x" +
                             std::to_string(more.cols) + " for images of " + std::to_string(d.rows) + "x" +
                             std::to_string(d.cols));
  if (more.labels.empty() != d.labels.empty())
    throw std::runtime_error("more " + d.name + " images " + (d.labels.empty() ? "with" : "without") +
                             " labels for images " + (d.labels.empty() ? "without" : "with") + " them");
  d.pixels.insert(d.pixels.end(), more.pixels.begin(), more.pixels.end());
  d.labels.insert(d.labels.end(), more.labels.begin(), more.labels.end());
  d.count += more.count;
}

void reserve_dataset(Dataset& d, size_t count) {
  if (count <= d.count || count > (size_t(1) << 24)) return;  // (a hint: an absurd one is ignored)
  // (+ the IDX header that comes inflated with them and is then cut: see append_idx_images)
  d.pixels.reserve(count * d.rows * d.cols + 16);
  if (!d.labels.empty()) d.labels.reserve(count + 8);
}

void truncate_dataset(Dataset& d, size_t count) {
  if (count >= d.count) return;
  d.count = count;
  d.pixels.resize(count * d.rows * d.cols);
  if (!d.labels.empty()) d.labels.resize(count);
}

Dataset dataset_tail(const Dataset& d, size_t from) {
  Dataset t;
  t.name = d.name, t.rows = d.rows, t.cols = d.cols;
  if (from >= d.count) return t;
  t.count = d.count - from;
  t.pixels.assign(d.pixels.begin() + std::ptrdiff_t(from * d.rows * d.cols), d.pixels.end());
  if (!d.labels.empty()) t.labels.assign(d.labels.begin() + std::ptrdiff_t(from), d.labels.end());
  return t;
}

Dataset load_mnist(const std::string& dir, bool train) {
  std::string prefix = dir + (train ? "/train" : "/t10k");
  std::string images = prefix + "-images-idx3-ubyte", labels = prefix + "-labels-idx1-ubyte";
  return make_dataset(read_idx_images(images), read_idx_labels(labels), images, labels, train ? "train" : "test");
}

// Restrict: a byte pointer may alias anything. clang 14 still converts bytes to floats one lane at a time in
// WebAssembly (a load, convert and replace_lane per value), so there the widening is spelled out; the same
// multiply and add give the same bits.
// dst2, if not null, gets the same values.
static void bytes_to_float(const uint8_t* __restrict src, size_t n, float scale, float shift, float* __restrict dst,
                           float* __restrict dst2) {
  size_t i = 0;
#if defined(__wasm_simd128__)
  const v128_t vs = wasm_f32x4_splat(scale), vh = wasm_f32x4_splat(shift);
  for (; i + 16 <= n; i += 16) {
    v128_t b = wasm_v128_load(src + i);
    v128_t h[2] = {wasm_u16x8_extend_low_u8x16(b), wasm_u16x8_extend_high_u8x16(b)};
    for (int q = 0; q < 4; ++q) {
      v128_t w = q % 2 ? wasm_u32x4_extend_high_u16x8(h[q / 2]) : wasm_u32x4_extend_low_u16x8(h[q / 2]);
      v128_t f = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(w), vs), vh);
      wasm_v128_store(dst + i + 4 * q, f);
      if (dst2) wasm_v128_store(dst2 + i + 4 * q, f);
    }
  }
#endif
  for (; i < n; ++i) {
    dst[i] = float(src[i]) * scale + shift;
    if (dst2) dst2[i] = dst[i];
  }
}

void fill_batch(const Dataset& d, const uint32_t* indices, size_t batch, Normalization norm, Tensor& x, Tensor* copy) {
  ensure_shape(x, {batch, 1, d.rows, d.cols});
  if (copy) ensure_shape(*copy, x.shape());
  const size_t n = d.rows * d.cols;
  const float scale = norm == Normalization::MinusOneOne ? 1.f / 127.5f : 1.f / 255.f;
  const float shift = norm == Normalization::MinusOneOne ? -1.f : 0.f;
  for (size_t b = 0; b < batch; ++b)
    if (indices[b] >= d.count) throw std::runtime_error("batch index out of range");
  // A shuffled batch reads images scattered over tens of MB, mostly not in cache. Reading one byte of every cache
  // line first, with no load waiting for another, has the memory system fetch many lines at once (converting
  // image by image waited for each line in turn; a prefetch instruction does not exist in WebAssembly): model A in
  // WebAssembly, fill_batch's share of a step ~2.2% -> 1.1%.
  uint32_t touched = 0;
  for (size_t b = 0; b < batch; ++b) {
    const uint8_t* img = d.image(indices[b]);
    for (size_t i = 0; i < n; i += 64) touched += img[i];
    if (n > 0) touched += img[n - 1];
  }
  volatile uint32_t sink = touched;  // keeps the reads
  (void)sink;
  for (size_t b = 0; b < batch; ++b)
    bytes_to_float(d.image(indices[b]), n, scale, shift, x.data() + b * n, copy ? copy->data() + b * n : nullptr);
}

void corrupt(const CorruptionConfig& c, Normalization norm, Rng& rng, Tensor& x) {
  const float lo = range_min(norm), hi = range_max(norm);
  const size_t B = x.shape()[0], H = x.shape()[2], W = x.shape()[3], n = per_sample(x.shape());
  float* p = x.data();
  if (c.type == "none") return;
  if (c.type == "gaussian") {
    for (size_t i = 0; i < x.size(); ++i) {
      float v = p[i] + c.std * rng.normal();
      p[i] = c.clip ? std::min(std::max(v, lo), hi) : v;
    }
  } else if (c.type == "dropout") {
    const float keep = c.scale ? 1.f / (1.f - c.p) : 1.f;
    for (size_t i = 0; i < x.size(); ++i) p[i] = rng.uniform() < c.p ? 0.f : p[i] * keep;
  } else if (c.type == "salt_pepper") {
    for (size_t i = 0; i < x.size(); ++i)
      if (rng.uniform() < c.p) p[i] = rng.uniform() < 0.5f ? lo : hi;
  } else if (c.type == "occlusion") {
    const size_t s = std::min({c.size, H, W});
    for (size_t b = 0; b < B; ++b) {
      size_t top = rng.below(uint32_t(H - s + 1)), left = rng.below(uint32_t(W - s + 1));
      for (size_t ch = 0; ch < x.shape()[1]; ++ch)
        for (size_t i = top; i < top + s; ++i)
          std::fill_n(p + b * n + ch * H * W + i * W + left, s, lo);
    }
  } else if (c.type == "downsample") {
    // Average f x f blocks, then repeat each average over its block: a low-resolution image at full size.
    const size_t f = c.factor;
    for (size_t plane = 0; plane < B * x.shape()[1]; ++plane) {
      float* q = p + plane * H * W;
      for (size_t i0 = 0; i0 < H; i0 += f)
        for (size_t j0 = 0; j0 < W; j0 += f) {
          size_t i1 = std::min(H, i0 + f), j1 = std::min(W, j0 + f);
          float s = 0;
          for (size_t i = i0; i < i1; ++i)
            for (size_t j = j0; j < j1; ++j) s += q[i * W + j];
          s /= float((i1 - i0) * (j1 - j0));
          for (size_t i = i0; i < i1; ++i)
            for (size_t j = j0; j < j1; ++j) q[i * W + j] = s;
        }
    }
  } else {
    throw std::runtime_error("unknown corruption '" + c.type + "'");
  }
}

}  // namespace aep
