// Reader/writer for the safetensors checkpoint format (8-byte header length, JSON header, raw tensor bytes),
// strict enough to load files from untrusted sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace aep {

enum class DType { F32, I64 };

// "F32" / "I64", as spelled in safetensors headers.
const char* dtype_name(DType dtype);

struct StTensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // {} for a scalar
    std::vector<uint8_t> bytes;  // little-endian raw data, unless borrowed (view)
    // Borrowed bytes instead of `bytes` (parse_safetensors_view, SafeTensors::borrow_f32): not copied, so whoever
    // made the tensor keeps them alive and unchanged while it is used. Copying the tensor copies the pointer.
    const uint8_t* view = nullptr;
    size_t view_size = 0;

    const uint8_t* data() const { return view ? view : bytes.data(); }
    size_t nbytes() const { return view ? view_size : bytes.size(); }
    size_t numel() const;
    std::vector<float> as_f32() const;    // throws if dtype is not F32
    std::vector<int64_t> as_i64() const;  // throws if dtype is not I64
};

struct SafeTensors {
    std::map<std::string, std::string> metadata;
    std::vector<StTensor> tensors;  // in file order of data offsets

    const StTensor* find(const std::string& name) const;  // nullptr if absent
    // Both copy `data` (numel elements; may be null when numel is 0) and throw on a duplicate or reserved name,
    // a negative dimension, or a shape too large to address.
    void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
    void add_i64(const std::string& name, std::vector<int64_t> shape, const int64_t* data);
    // As add_f32, but the tensor borrows `data` (see StTensor::view) where floats are stored little-endian (they
    // are on every target here; copied otherwise): serializing a model's state then needs no copy of it first.
    void borrow_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
};

// `name` is used in error messages.
SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& name);
// The same checks, but the tensors borrow their bytes from `data` (StTensor::view), which must outlive them: a large
// message read once (a training host's report or order) costs no second copy.
SafeTensors parse_safetensors_view(const uint8_t* data, size_t size, const std::string& name);
// Header padded with spaces to a multiple of 8 like the reference implementation; tensors written in
// insertion order, contiguous.
std::vector<uint8_t> serialize_safetensors(const SafeTensors& st);

SafeTensors read_safetensors(const std::string& path);
// Writes to path + ".tmp" then renames, so an interrupted write never clobbers the old file.
void write_safetensors(const std::string& path, const SafeTensors& st);

}  // namespace aep
