// Image datasets kept as bytes (60k MNIST images = 47 MB, not 188 MB of floats), converted to float per batch,
// and the input corruptions used for denoising, inpainting and super-resolution.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/idx.hpp"
#include "core/preset.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace aep {

struct Dataset {
  std::string name;
  size_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count, rows, cols]
  std::vector<uint8_t> labels;  // [count], empty when unknown
  const uint8_t* image(size_t i) const { return pixels.data() + i * rows * cols; }
};

// Checks that the label and image counts agree and that images are 28x28 (names are for error messages).
Dataset make_dataset(IdxImages images, IdxLabels labels, const std::string& images_name, const std::string& labels_name,
                     const std::string& name);
// MNIST's four files as bytes (raw or gzip): training images and labels, test images and labels, as the page
// fetched them. `part` names them in error messages ("" or e.g. "first part of ").
struct MnistFiles {
  const uint8_t* data[4];
  size_t size[4];
};
void parse_mnist(const MnistFiles& f, Dataset& train, Dataset& test, const std::string& part = "");
// More of MNIST (the rest after a first part) appended to train and test in place, each file inflated straight into
// its dataset (the rest of MNIST is never twice in memory). Throws, changing nothing, on a bad file or images that do
// not fit the ones there.
void append_mnist(const MnistFiles& f, Dataset& train, Dataset& test, const std::string& part = "the rest of ");
// Appends `more` (images of the same size; labels on both or on neither) to d, e.g. the rest of MNIST after a first
// part the page trained on at once. Throws, changing nothing, when they do not fit together.
void append_dataset(Dataset& d, Dataset more);
// Room for `count` images in all (e.g. all of MNIST when a first part comes), so that the rest is appended where it
// will stay: no second copy while it grows.
void reserve_dataset(Dataset& d, size_t count);
// Keeps the first `count` images (count <= d.count).
void truncate_dataset(Dataset& d, size_t count);
// The images from index `from` on (a copy), e.g. what a training host does not have yet.
Dataset dataset_tail(const Dataset& d, size_t from);
// Reads DIR/{train,t10k}-images-idx3-ubyte and -labels-idx1-ubyte (raw or .gz); checks that counts agree
// and that images are 28x28.
Dataset load_mnist(const std::string& dir, bool train);
// Default data folder: assets/data/mnist (fetched by scripts/bootstrap.sh).
std::string default_mnist_dir();

// x: [B, 1, rows, cols] from images indices[0..B), scaled per the normalization; copy, if given, gets the same.
void fill_batch(const Dataset& d, const uint32_t* indices, size_t batch, Normalization norm, Tensor& x,
                Tensor* copy = nullptr);

// Corrupts a normalized batch in place. Values stay within the normalization range except for the lesson's
// dropout mask with scale=true, which (like nn.Dropout) multiplies kept pixels by 1/(1-p).
void corrupt(const CorruptionConfig& c, Normalization norm, Rng& rng, Tensor& x);

inline float range_min(Normalization n) { return n == Normalization::MinusOneOne ? -1.f : 0.f; }
inline float range_max(Normalization) { return 1.f; }

}  // namespace aep
