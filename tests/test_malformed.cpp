// One table of malformed inputs for every parser of untrusted data (IDX, gzip, safetensors and loading it into a
// model, preset JSON and building its model), each with the error it must produce. All inputs are built here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/gzip.hpp"
#include "core/idx.hpp"
#include "core/model.hpp"
#include "core/optim.hpp"
#include "core/preset.hpp"
#include "core/safetensors.hpp"
#include "core/weights.hpp"
#include "test_bytes.hpp"

namespace {

using namespace aep::test;

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes head(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + std::ptrdiff_t(n)); }
Bytes drop_last(const Bytes& b, size_t n) { return head(b, b.size() - n); }

Bytes with_byte(Bytes b, size_t at, uint8_t v) {
  b[at] = v;
  return b;
}

Bytes flip_byte(Bytes b, size_t at) {
  b[at] ^= 0xFF;
  return b;
}

// ------------------------------------------------------------------------------------------------ IDX

Bytes pixels(size_t n) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = uint8_t(i * 37);
  return p;
}

Bytes images_2x3x4() { return idx_file(0x803, {2, 3, 4}, pixels(24)); }
Bytes labels_n(uint32_t n) { return idx_file(0x801, {n}, Bytes(n, 7)); }

// ----------------------------------------------------------------------------------------------- gzip

// A gzip bomb: one fixed-Huffman block of a literal 0 then `matches` copies of (length 258, distance 1), 13 bits
// each, so about 40 input bytes per 10 KB of zeros. The trailer is correct for the whole output.
Bytes gzip_bomb(size_t matches) {
  BitWriter w;
  w.bits(1, 1);          // BFINAL
  w.bits(1, 2);          // BTYPE = fixed Huffman
  w.code(0x30, 8);       // literal 0
  for (size_t i = 0; i < matches; ++i) {
    w.code(0xC0 + 5, 8);  // symbol 285: length 258, no extra bits
    w.code(0, 5);         // distance symbol 0: distance 1
  }
  w.code(0, 7);  // end of block (symbol 256)
  const Bytes zeros(1 + 258 * matches, 0);
  return gzip_member(w.bytes, zeros);
}

// Fixed-Huffman block that copies from distance 5 when only 1 byte has been written.
Bytes gzip_far_distance() {
  BitWriter w;
  w.bits(1, 1);
  w.bits(1, 2);
  w.code(0x30 + 'a', 8);
  w.code(257 - 256, 7);  // symbol 257: length 3
  w.code(4, 5);          // distance symbol 4: distances 5-6, 1 extra bit
  w.bits(0, 1);
  w.code(0, 7);
  return gzip_member(w.bytes, text("aaaa"));
}

const Bytes kHello = text("hello, hello, hello gzip\n");

// ---------------------------------------------------------------------------------------- safetensors

Bytes st_file(const std::string& header, const Bytes& data) {
  Bytes b;
  put_le(b, header.size(), 8);
  return concat(concat(b, text(header)), data);
}

Bytes floats(std::vector<float> v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// The model the weight cases load into: 784 tied weights and a BatchNorm (buffers and a counter), trained by Adam.
const char* const kTinyPreset = R"({"name": "tiny",
  "encoder": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 1, "bias": false},
              {"type": "BatchNorm1d", "num_features": 1}],
  "decoder": [{"type": "Linear", "in_features": 1, "out_features": 784, "bias": false, "tied_to": "encoder.1"}]})";

// A correct weight file for the tiny model (with Adam state), changed by `edit` before it is serialized.
Bytes weights(const std::function<void(aep::SafeTensors&)>& edit) {
  aep::Model m(aep::parse_preset_text(kTinyPreset, "tiny"));
  aep::Optimizer opt(m.preset().optimizer, m.values.size());
  aep::SafeTensors st = aep::model_state(m, &opt);
  edit(st);
  return aep::serialize_safetensors(st);
}

aep::StTensor& tensor(aep::SafeTensors& st, const std::string& name) {
  for (aep::StTensor& t : st.tensors)
    if (t.name == name) return t;
  throw std::logic_error("no tensor " + name);
}

void set_f32(aep::SafeTensors& st, const std::string& name, size_t i, float v) {
  std::memcpy(tensor(st, name).bytes.data() + 4 * i, &v, 4);
}

void set_i64(aep::SafeTensors& st, const std::string& name, int64_t v) {
  std::memcpy(tensor(st, name).bytes.data(), &v, 8);
}

// ------------------------------------------------------------------------------------------------ presets

const std::string kFlatten = R"({"type": "Flatten"})";

// A preset around the given encoder and decoder layer lists (JSON text), plus extra top-level keys.
Bytes preset(const std::string& encoder, const std::string& decoder, const std::string& extra = "") {
  return text(R"({"name": "t", "encoder": [)" + encoder + R"(], "decoder": [)" + decoder + "]" +
              (extra.empty() ? "" : ", " + extra) + "}");
}

std::string linear(long long in, long long out) {
  return R"({"type": "Linear", "in_features": )" + std::to_string(in) + R"(, "out_features": )" + std::to_string(out) + "}";
}

Bytes linear_ae(const std::string& extra) { return preset(kFlatten + ", " + linear(784, 8), linear(8, 784), extra); }

std::string nested(int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); }

// ------------------------------------------------------------------------------------------ the table

enum class Parser {
  IdxImages,    // parse_idx_images(input, "images.idx")
  IdxLabels,    // parse_idx_labels(input, "labels.idx")
  Dataset,      // make_dataset(images = input, labels = second)
  Gunzip,       // gunzip(input, "data.gz") with a 1 MiB cap
  SafeTensors,  // parse_safetensors(input, "weights.safetensors")
  Weights,      // parse_safetensors, then load_state into the tiny model and an Adam optimizer
  Preset,       // parse_preset_text(input, "preset.json")
  Model,        // parse_preset_text, then build the Model: shape errors name the layer, not the file
};

constexpr size_t kGunzipCap = size_t(1) << 20;

const char* file_name(Parser p) {
  switch (p) {
    case Parser::IdxImages: return "images.idx";
    case Parser::IdxLabels: return "labels.idx";
    case Parser::Dataset: return "labels.idx";
    case Parser::Gunzip: return "data.gz";
    case Parser::SafeTensors:
    case Parser::Weights: return "weights.safetensors";
    case Parser::Preset: return "preset.json";
    case Parser::Model: return "";
  }
  return "";
}

void run(Parser p, const Bytes& input, const Bytes& second) {
  const uint8_t* d = input.data();
  const size_t n = input.size();
  switch (p) {
    case Parser::IdxImages: aep::parse_idx_images(d, n, "images.idx"); return;
    case Parser::IdxLabels: aep::parse_idx_labels(d, n, "labels.idx"); return;
    case Parser::Dataset:
      aep::make_dataset(aep::parse_idx_images(d, n, "images.idx"),
                        aep::parse_idx_labels(second.data(), second.size(), "labels.idx"), "images.idx", "labels.idx",
                        "train");
      return;
    case Parser::Gunzip: aep::gunzip(d, n, "data.gz", kGunzipCap); return;
    case Parser::SafeTensors: aep::parse_safetensors(d, n, "weights.safetensors"); return;
    case Parser::Weights: {
      aep::Model m(aep::parse_preset_text(kTinyPreset, "tiny"));
      aep::Optimizer opt(m.preset().optimizer, m.values.size());
      aep::load_state(m, aep::parse_safetensors(d, n, "weights.safetensors"), "weights.safetensors", &opt);
      return;
    }
    case Parser::Preset: aep::parse_preset_text(std::string(input.begin(), input.end()), "preset.json"); return;
    case Parser::Model: aep::Model(aep::parse_preset_text(std::string(input.begin(), input.end()), "preset.json")); return;
  }
}

// The runtime_error's message; anything else (no error, another exception type) is reported as such.
std::string error_of(Parser p, const Bytes& input, const Bytes& second) {
  try {
    run(p, input, second);
  } catch (const std::runtime_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a runtime_error: ") + e.what() + ">";
  }
  return "<no error>";
}

struct Case {
  const char* what;
  Parser parser;
  Bytes input;
  std::string error;  // must appear in the message, which must also start with "<file>: "
  Bytes second = {};  // the labels file, for Parser::Dataset
};

std::vector<Case> malformed_cases() {
  using P = Parser;
  const Bytes img = images_2x3x4();
  const Bytes img_gz = gzip_stored(img);
  const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const Bytes f1 = floats({1.f}), f2 = floats({1.f, 2.f}), f3 = floats({1.f, 2.f, 3.f});
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::string w = "tensor 'encoder.1.weight'";
  return {
      // ---- IDX: every section truncated, wrong magic / type / rank, absurd sizes
      {"IDX empty", P::IdxImages, {}, "images.idx: file is only 0 bytes, too short for an IDX header — is it truncated?"},
      {"IDX truncated in the magic", P::IdxImages, head(img, 3), "file is only 3 bytes, too short for an IDX header"},
      {"IDX truncated in the dimensions", P::IdxImages, head(img, 10),
       "images.idx: truncated header: an IDX images header needs 16 bytes, the file has 10"},
      {"IDX truncated in the pixels", P::IdxImages, drop_last(img, 4),
       "images.idx: file is truncated: expected 40 bytes (16-byte header + 2 images of 3x4 pixels), got 36 (4 bytes missing)"},
      {"IDX labels truncated in the dimensions", P::IdxLabels, head(labels_n(5), 6),
       "labels.idx: truncated header: an IDX labels header needs 8 bytes, the file has 6"},
      {"IDX labels truncated in the data", P::IdxLabels, drop_last(labels_n(5), 2),
       "labels.idx: file is truncated: expected 13 bytes (8-byte header + 5 one-byte labels), got 11 (2 bytes missing)"},
      {"IDX trailing bytes", P::IdxImages, concat(img, {0}),
       "images.idx: unexpected trailing data: expected 40 bytes (16-byte header + 2 images of 3x4 pixels), got 41 (1 extra bytes after the last item)"},
      {"IDX wrong magic", P::IdxImages, idx_file(0x12345678, {2, 3, 4}, pixels(24)),
       "images.idx: expected magic 0x00000803, got 0x12345678 — this is not an IDX file"},
      {"IDX float32 data type", P::IdxImages, idx_file(0xD03, {2, 3, 4}, pixels(24)),
       "images.idx: expected magic 0x00000803, got 0x00000d03: IDX data type 0x0d (float32) — only unsigned-byte IDX files are supported"},
      {"IDX wrong rank: labels given as images", P::IdxImages, labels_n(5),
       "images.idx: expected rank 3 (images), got rank 1 — is this a labels file?"},
      {"IDX wrong rank: images given as labels", P::IdxLabels, img,
       "labels.idx: expected rank 1 (labels), got rank 3 — is this an images file?"},
      {"IDX wrong rank 4", P::IdxImages, idx_file(0x804, {2, 3, 4, 1}, pixels(24)), "images.idx: expected rank 3 (images), got rank 4"},
      {"IDX 2^32-1 images in a 16-byte file", P::IdxImages, idx_file(0x803, {0xFFFFFFFFu, 28, 28}, {}),
       "images.idx: header claims 4294967295 images, more than the limit of 10000000 — is the header corrupt?"},
      {"IDX 2^32-1 labels in an 8-byte file", P::IdxLabels, idx_file(0x801, {0xFFFFFFFFu}, {}),
       "labels.idx: header claims 4294967295 labels, more than the limit of 10000000"},
      {"IDX 10M images in a 16-byte file", P::IdxImages, idx_file(0x803, {10000000, 28, 28}, {}),
       "images.idx: file is truncated: expected 7840000016 bytes (16-byte header + 10000000 images of 28x28 pixels), got 16"},
      {"IDX huge rows", P::IdxImages, idx_file(0x803, {1, 0xFFFFFFFFu, 28}, {}),
       "images.idx: image size 4294967295x28 exceeds the limit of 4096x4096 — is the header corrupt?"},
      {"IDX zero columns", P::IdxImages, idx_file(0x803, {1, 28, 0}, {}), "images.idx: image size is 28x0; rows and columns must be nonzero"},
      // ---- IDX through gzip: truncated gzip header, body and trailer, the IDX inside it, gzipped twice
      {"IDX.gz truncated gzip header", P::IdxImages, head(img_gz, 5),
       "images.idx: gzip data is truncated (input ends after 5 bytes, in the middle of a member) — is the download incomplete?"},
      {"IDX.gz truncated body", P::IdxImages, head(img_gz, 20), "images.idx: gzip data is truncated (input ends after 20 bytes"},
      {"IDX.gz truncated trailer", P::IdxImages, drop_last(img_gz, 3), "images.idx: gzip data is truncated"},
      {"IDX.gz holding a truncated IDX", P::IdxImages, gzip_stored(drop_last(img, 1)),
       "images.idx (after gunzip): file is truncated: expected 40 bytes"},
      {"IDX.gz holding a labels file", P::IdxImages, gzip_stored(labels_n(5)),
       "images.idx (after gunzip): expected rank 3 (images), got rank 1"},
      {"IDX gzipped twice", P::IdxImages, gzip_stored(img_gz),
       "images.idx (after gunzip): expected magic 0x00000803, got 0x1f8b0800 — the data is still gzipped after decompressing; was it gzipped twice?"},
      // ---- a dataset from two files that disagree
      {"label count != image count", P::Dataset, img, "labels.idx: holds 3 labels but images.idx holds 2 images", labels_n(3)},
      // ---- gzip: header, body, trailer
      {"gzip not gzip at all", P::Gunzip, text("plain text"), "data.gz: not a gzip file (does not start with bytes 1f 8b)"},
      {"gzip truncated header", P::Gunzip, Bytes{0x1f, 0x8b, 8}, "data.gz: gzip data is truncated (input ends after 3 bytes"},
      {"gzip unterminated file name", P::Gunzip, concat({0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3}, text("name")),
       "data.gz: gzip data is truncated"},
      {"gzip extra field past the end", P::Gunzip, Bytes{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 200, 0, 1, 2},
       "data.gz: gzip data is truncated"},
      {"gzip header CRC mismatch", P::Gunzip, Bytes{0x1f, 0x8b, 8, 2, 0, 0, 0, 0, 0, 3, 0x12, 0x34},
       "data.gz: gzip header checksum mismatch at byte offset 0 — the file is corrupt"},
      {"gzip reserved flags", P::Gunzip, with_byte(gzip_stored(kHello), 3, 0x20),
       "data.gz: gzip header at byte offset 0 has reserved flag bits set"},
      {"gzip method 7", P::Gunzip, with_byte(gzip_stored(kHello), 2, 7),
       "data.gz: unsupported gzip compression method 7 at byte offset 0 (only 8 = deflate exists)"},
      {"gzip truncated stored block", P::Gunzip, head(gzip_stored(kHello), 20), "data.gz: gzip data is truncated (input ends after 20 bytes"},
      {"gzip truncated fixed-Huffman block", P::Gunzip, head(gzip_bomb(100), 40), "data.gz: gzip data is truncated (input ends after 40 bytes"},
      {"gzip truncated trailer", P::Gunzip, drop_last(gzip_stored(kHello), 5), "data.gz: gzip data is truncated"},
      {"gzip CRC mismatch", P::Gunzip, flip_byte(gzip_stored(kHello), 15 + kHello.size()),
       "data.gz: CRC-32 mismatch in gzip member 1 (ending at byte offset 48): stored 0x"},
      {"gzip size mismatch", P::Gunzip, with_byte(gzip_stored(kHello), 19 + kHello.size(), 99),
       "data.gz: size mismatch in gzip member 1 (ending at byte offset 48): trailer says 99 bytes (mod 2^32), decoded 25"},
      {"gzip block type 3", P::Gunzip, gzip_member({0x07}, {}), "data.gz: corrupt gzip data in member 1: invalid block type (near byte offset 11) — the file is damaged"},
      {"gzip stored length complement", P::Gunzip, with_byte(gzip_stored(kHello), 13, 0),
       "data.gz: corrupt gzip data in member 1: invalid stored block lengths"},
      {"gzip distance too far back", P::Gunzip, gzip_far_distance(),
       "data.gz: corrupt gzip data in member 1: invalid distance too far back"},
      {"gzip trailing garbage", P::Gunzip, concat(gzip_stored(kHello), text("junk")),
       "data.gz: 4 bytes of trailing data after the gzip stream at byte offset 48 (not another gzip member)"},
      {"gzip bomb: 7 KB inflating past the 1 MiB cap", P::Gunzip, gzip_bomb(4100),
       "data.gz: decompressed data is larger than the limit of 1048576 bytes — refusing to inflate (corrupt file or gzip bomb?)"},
      {"gzip bomb in the second member", P::Gunzip, concat(gzip_bomb(2100), gzip_bomb(2100)),
       "data.gz: decompressed data is larger than the limit of 1048576 bytes"},
      // ---- safetensors: length, header and data sections
      {"safetensors empty", P::SafeTensors, {},
       "weights.safetensors: file is only 0 bytes; a safetensors file starts with an 8-byte header length — is it truncated?"},
      {"safetensors truncated length", P::SafeTensors, head(st_file("{" + a4 + "}", f1), 5), "weights.safetensors: file is only 5 bytes"},
      {"safetensors truncated header", P::SafeTensors, head(st_file("{" + a4 + "}", f1), 30),
       "weights.safetensors: header length 54 runs past the end of the file (only 22 bytes follow the length field) — is it truncated?"},
      {"safetensors truncated data", P::SafeTensors, drop_last(st_file("{" + a4 + "}", f1), 1),
       "weights.safetensors: tensor 'a': data_offsets [0, 4] lie outside the 3-byte data buffer"},
      {"safetensors header length 2^64-1", P::SafeTensors, concat(Bytes(8, 0xFF), text("{}")),
       "weights.safetensors: header length 18446744073709551615 exceeds the 100000000-byte limit — is this really a safetensors file?"},
      {"safetensors invalid UTF-8 in the header", P::SafeTensors, st_file("{\"\xC3\x28\":1}", {}),
       "weights.safetensors: header is not valid UTF-8 (bad byte at header offset 2)"},
      {"safetensors overlong UTF-8 in a name", P::SafeTensors, st_file("{\"\xC0\xAF\":1}", {}),
       "weights.safetensors: header is not valid UTF-8 (bad byte at header offset 2)"},
      {"safetensors invalid JSON", P::SafeTensors, st_file("{\"a\": {", {}), "weights.safetensors: header is not valid JSON: "},
      {"safetensors header not an object", P::SafeTensors, st_file("[1, 2]", {}), "weights.safetensors: header must be a JSON object, got array"},
      {"safetensors header nested too deep", P::SafeTensors, st_file("{\"a\":" + nested(20) + "}", {}),
       "weights.safetensors: header JSON is nested more than 8 levels deep"},
      {"safetensors duplicate tensor names", P::SafeTensors, st_file("{" + a4 + "," + a4 + "}", f1),
       "weights.safetensors: duplicate tensor name 'a' in header"},
      {"safetensors overlapping offsets", P::SafeTensors,
       st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", f3),
       "weights.safetensors: tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
      {"safetensors gap between tensors", P::SafeTensors,
       st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", f3),
       "weights.safetensors: hole of 4 unused bytes between tensors 'a' and 'b'"},
      {"safetensors unused bytes after the data", P::SafeTensors, st_file("{" + a4 + "}", f2),
       "weights.safetensors: 4 unused bytes after the last tensor in the data buffer"},
      {"safetensors unsupported dtype", P::SafeTensors, st_file(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", f1),
       "weights.safetensors: tensor 'a': dtype F16 is not supported (expected F32 or I64)"},
      {"safetensors negative dimension", P::SafeTensors, st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f1),
       "weights.safetensors: tensor 'a': shape[0] is negative (-1)"},
      {"safetensors huge dimensions", P::SafeTensors,
       st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", {}),
       "weights.safetensors: tensor 'a': shape [4294967296, 4294967296, 0] is too large to address"},
      {"safetensors dimension beyond int64", P::SafeTensors,
       st_file(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", f1),
       "weights.safetensors: tensor 'a': shape[0] is too large"},
      {"safetensors shape disagrees with offsets", P::SafeTensors,
       st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f2),
       "weights.safetensors: tensor 'a': shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] span 8"},
      {"safetensors reversed offsets", P::SafeTensors, st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", f2),
       "weights.safetensors: tensor 'a': data_offsets [8, 4] are reversed (begin > end)"},
      {"safetensors metadata value not a string", P::SafeTensors, st_file(R"({"__metadata__":{"k":1}})", {}),
       "weights.safetensors: __metadata__ value for key 'k' is not a string (got 1)"},
      // ---- weights into a model: names, shapes, dtypes, finiteness
      {"weights NaN", P::Weights, weights([&](aep::SafeTensors& st) { set_f32(st, "encoder.1.weight", 5, nan); }),
       "weights.safetensors: " + w + " holds NaN or infinite values (element 5)"},
      {"weights +Inf", P::Weights, weights([&](aep::SafeTensors& st) { set_f32(st, "encoder.1.weight", 783, inf); }),
       "weights.safetensors: " + w + " holds NaN or infinite values (element 783)"},
      {"weights -Inf in a buffer", P::Weights, weights([&](aep::SafeTensors& st) { set_f32(st, "encoder.2.running_mean", 0, -inf); }),
       "weights.safetensors: tensor 'encoder.2.running_mean' holds NaN or infinite values (element 0)"},
      {"weights NaN in the optimizer state", P::Weights,
       weights([&](aep::SafeTensors& st) { set_f32(st, "optimizer.exp_avg.encoder.1.weight", 1, nan); }),
       "weights.safetensors: tensor 'optimizer.exp_avg.encoder.1.weight' holds NaN or infinite values (element 1)"},
      {"weights negative running variance", P::Weights, weights([&](aep::SafeTensors& st) { set_f32(st, "encoder.2.running_var", 0, -1.f); }),
       "weights.safetensors: tensor 'encoder.2.running_var' is a variance but holds a negative value (element 0)"},
      {"weights negative Adam second moment", P::Weights,
       weights([&](aep::SafeTensors& st) { set_f32(st, "optimizer.exp_avg_sq.encoder.1.weight", 7, -0.5f); }),
       "weights.safetensors: tensor 'optimizer.exp_avg_sq.encoder.1.weight' is a variance but holds a negative value (element 7)"},
      {"weights dtype mismatch", P::Weights,
       weights([&](aep::SafeTensors& st) {
         aep::StTensor& t = tensor(st, "encoder.1.weight");
         t.dtype = aep::DType::I64;
         t.bytes.resize(t.bytes.size() * 2);
       }),
       "weights.safetensors: " + w + " has dtype I64, expected F32"},
      {"weights shape mismatch", P::Weights, weights([&](aep::SafeTensors& st) { tensor(st, "encoder.1.weight").shape = {784, 1}; }),
       "weights.safetensors: " + w + " has shape [784, 1] but the model expects [1, 784]"},
      {"weights missing tensor", P::Weights, weights([&](aep::SafeTensors& st) { tensor(st, "encoder.1.weight").name = "encoder.0.weight"; }),
       "weights.safetensors: " + w + " is missing - was this file saved from a different model?"},
      {"weights unexpected tensor", P::Weights, weights([&](aep::SafeTensors& st) { st.add_f32("decoder.0.bias", {784}, std::vector<float>(784).data()); }),
       "weights.safetensors: unexpected tensor 'decoder.0.bias' - was this file saved from a different model?"},
      {"weights counter of the wrong dtype", P::Weights,
       weights([&](aep::SafeTensors& st) { tensor(st, "encoder.2.num_batches_tracked").dtype = aep::DType::F32; tensor(st, "encoder.2.num_batches_tracked").bytes.resize(4); }),
       "weights.safetensors: tensor 'encoder.2.num_batches_tracked' must be an I64 scalar"},
      {"weights negative counter", P::Weights, weights([&](aep::SafeTensors& st) { set_i64(st, "encoder.2.num_batches_tracked", -3); }),
       "weights.safetensors: tensor 'encoder.2.num_batches_tracked' is negative"},
      {"weights huge optimizer step", P::Weights, weights([&](aep::SafeTensors& st) { set_i64(st, "optimizer.step", int64_t(1) << 62); }),
       "weights.safetensors: tensor 'optimizer.step' is 4611686018427387904, more than the limit of 100000000 steps - is the file corrupt?"},
      // ---- preset JSON
      {"preset empty", P::Preset, {}, "preset.json: not valid JSON: "},
      {"preset truncated JSON", P::Preset, drop_last(linear_ae(""), 2), "preset.json: not valid JSON: "},
      {"preset invalid UTF-8", P::Preset, text("{\"name\": \"\xFF\"}"), "preset.json: not valid UTF-8 (bad byte at offset 10)"},
      {"preset UTF-16 surrogate encoded as UTF-8", P::Preset, text("{\"name\": \"\xED\xA0\x80\"}"),
       "preset.json: not valid UTF-8 (bad byte at offset 10)"},
      {"preset not an object", P::Preset, text("[1, 2]"), "preset.json: must be a JSON object, got [1,2]"},
      {"preset nested too deep", P::Preset, text(R"({"encoder": )" + nested(100000) + "}"),
       "preset.json: JSON is nested more than 16 levels deep"},
      {"preset duplicate key", P::Preset, text(R"({"encoder": [], "encoder": []})"), "preset.json: duplicate key 'encoder'"},
      {"preset unknown key", P::Preset, linear_ae(R"("learning_rate": 1)"), "preset.json: unknown key 'learning_rate'"},
      {"preset missing decoder", P::Preset, text(R"({"encoder": [{"type": "Flatten"}]})"), "preset.json: missing 'decoder' (a list of layers)"},
      {"preset empty encoder", P::Preset, preset("", linear(8, 784)), "preset.json: 'encoder' must list at least one layer"},
      {"preset 65 layers", P::Preset, preset([] { std::string s = kFlatten; for (int i = 0; i < 64; ++i) s += R"(, {"type": "ReLU"})"; return s; }(), linear(8, 784)),
       "preset.json: 'encoder' has 65 layers; at most 64"},
      {"preset unknown layer", P::Preset, preset(kFlatten + R"(, {"type": "Conv3d"})", linear(8, 784)),
       "preset.json: encoder.1: unknown layer type 'Conv3d' (known: Linear, Conv2d, "},
      {"preset layer without a type", P::Preset, preset(kFlatten, R"({"in_features": 8})"),
       "preset.json: decoder.0: a layer needs a \"type\" string"},
      {"preset unknown layer argument", P::Preset, preset(kFlatten, R"({"type": "ReLU", "inplace": true})"),
       "preset.json: decoder.0: ReLU: unknown argument 'inplace'"},
      {"preset negative layer size", P::Preset, preset(kFlatten + ", " + linear(784, -5), linear(8, 784)),
       "preset.json: encoder.1: Linear: 'out_features' must be between 1 and 1048576, got -5"},
      {"preset huge layer size", P::Preset, preset(kFlatten + ", " + linear(784, 1000000000000LL), linear(8, 784)),
       "preset.json: encoder.1: Linear: 'out_features' must be between 1 and 1048576, got 1000000000000"},
      {"preset layer size 2^64-1", P::Preset, preset(kFlatten + R"(, {"type": "Linear", "in_features": 784, "out_features": 18446744073709551615})", linear(8, 784)),
       "preset.json: encoder.1: Linear: 'out_features' must be between 1 and 1048576, got 18446744073709551615"},
      {"preset fractional layer size", P::Preset, preset(kFlatten + R"(, {"type": "Linear", "in_features": 784, "out_features": 2.5})", linear(8, 784)),
       "preset.json: encoder.1: Linear: 'out_features' must be an integer, got 2.5"},
      {"preset negative Unflatten size", P::Preset, preset(kFlatten, linear(8, 784) + R"(, {"type": "Unflatten", "unflattened_size": [1, -28, 28]})"),
       "preset.json: decoder.1: Unflatten: 'unflattened_size' entries must be integers between 1 and 4096"},
      {"preset zero kernel", P::Preset, preset(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 0})", linear(8, 784)),
       "preset.json: encoder.0: Conv2d: 'kernel_size' must be between 1 and 15, got 0"},
      {"preset negative batch size", P::Preset, linear_ae(R"("training": {"batch_size": -1})"),
       "preset.json: training: 'batch_size' must be an integer between 1 and 4096, got -1"},
      {"preset huge batch size", P::Preset, linear_ae(R"("training": {"batch_size": 1e30})"),
       "preset.json: training: 'batch_size' must be an integer between 1 and 4096, got 1e+30"},
      {"preset batch size 2^64-1", P::Preset, linear_ae(R"("training": {"batch_size": 18446744073709551615})"),
       "preset.json: training: 'batch_size' must be an integer between 1 and 4096, got 18446744073709551615"},
      {"preset negative learning rate", P::Preset, linear_ae(R"("optimizer": {"lr": -0.1})"),
       "preset.json: optimizer: 'lr' must be in (0, 10], got -0.1"},
      {"preset wrong value type", P::Preset, linear_ae(R"("normalize": 1)"), "preset.json: 'normalize' must be a string, got 1"},
      {"preset huge value echoed briefly", P::Preset, linear_ae(R"("title": [)" + [] { std::string s; for (int i = 0; i < 50000; ++i) s += "1,"; return s; }() + "1]"),
       "preset.json: 'title' must be a string, got [1,1,1,1,1,1,1,1,1,1,1,1,"},
      // ---- presets whose layers are fine one by one but do not make a model
      {"model shapes do not chain", P::Model, preset(kFlatten + ", " + linear(784, 8), linear(9, 784)),
       "decoder.0 (Linear): Linear expects 9 input features, got 8"},
      {"model output is not an image", P::Model, preset(kFlatten + ", " + linear(784, 8), linear(8, 100)),
       "the decoder must produce 784 values per image (28x28), but gives [2, 100]"},
      {"model too many parameters", P::Model, preset(kFlatten + ", " + linear(784, 1048576), linear(1048576, 784)),
       "the model has 1645216528 parameters; the limit is 67108864"},
      // In wasm (32-bit size_t) the [4096, 1048576] weight once counted as 0 elements: the model was accepted and
      // training read outside memory. The 2^20 inputs come from 8x8 upsampled twice to 512x512, 4 channels.
      {"model whose parameter count wraps 32 bits", P::Model,
       preset(kFlatten + ", " + linear(784, 64) + R"(, {"type": "Unflatten", "unflattened_size": [1, 8, 8]},
                {"type": "Upsample", "scale_factor": 8}, {"type": "Upsample", "scale_factor": 8},
                {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 1}, )" + kFlatten + ", " +
                  linear(1048576, 4096),
              linear(4096, 784)),
       "the model has 4298233688 parameters; the limit is 67108864"},
      {"model with a huge Unflatten", P::Model,
       preset(kFlatten + ", " + linear(784, 8), linear(8, 784) + R"(, {"type": "Unflatten", "unflattened_size": [4096, 4096, 4096]})"),
       "decoder.1 (Unflatten): Unflatten to [4096, 4096, 4096] needs 68719476736 features per sample, got [2, 784]"},
      // 28x28 upsampled 8x three times is 14336x14336 per channel (and 2^31 bytes per image).
      {"model whose activations are too large", P::Model,
       preset(kFlatten + ", " + linear(784, 8), linear(8, 784) + R"(, {"type": "Unflatten", "unflattened_size": [1, 28, 28]},
                {"type": "Upsample", "scale_factor": 8}, {"type": "Upsample", "scale_factor": 8},
                {"type": "Upsample", "scale_factor": 8})"),
       "decoder.4 (Upsample): the output would hold 205520896 values per image; the limit is 16777216"},
      // 409,112 parameters (x4 with gradients and Adam moments), 101,144 activations per image (x3 with gradients
      // and workspace) + 4 x 784 for the batch's input and target: 4 * (1636448 + 4096 * 306568) bytes.
      {"model too large for memory at its batch size", P::Model,
       preset(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 64, "kernel_size": 3, "padding": 1}, )" + kFlatten +
                  ", " + linear(50176, 8),
              linear(8, 784), R"("training": {"batch_size": 4096})"),
       "training this model at batch size 4096 would need about 4797 MB of memory; the limit is 1024 MB - use a batch "
       "size of at most 870 or a smaller model"},
      {"model tied to a layer that is not Linear", P::Model,
       preset(kFlatten + ", " + linear(784, 8), R"({"type": "Linear", "in_features": 8, "out_features": 784, "tied_to": "encoder.0"})"),
       "decoder.0 (Linear): 'tied_to' names \"encoder.0\", which is not a Linear layer"},
  };
}

}  // namespace

TEST_CASE("malformed inputs are refused with the expected message") {
  const std::vector<Case> cases = malformed_cases();
  for (const Case& c : cases) {
    INFO(std::string(c.what));
    const std::string msg = error_of(c.parser, c.input, c.second);
    INFO("message: " << msg);
    CHECK(msg.find(c.error) != std::string::npos);
    CHECK(msg.rfind(file_name(c.parser), 0) == 0);
    CHECK(msg.size() < 1000);  // never echoes a large input back
  }
  MESSAGE(cases.size() << " malformed cases");
}

TEST_CASE("the valid inputs the malformed cases are made from are accepted") {
  const Bytes img = images_2x3x4();
  CHECK(aep::parse_idx_images(img.data(), img.size(), "images.idx").pixels == pixels(24));
  const Bytes img_gz = gzip_stored(img);
  CHECK(aep::parse_idx_images(img_gz.data(), img_gz.size(), "images.idx").pixels == pixels(24));
  CHECK(error_of(Parser::Dataset, idx_file(0x803, {2, 28, 28}, pixels(2 * 784)), labels_n(2)) == "<no error>");
  const Bytes bomb = gzip_bomb(100);
  CHECK(aep::gunzip(bomb.data(), bomb.size(), "bomb.gz", kGunzipCap) == Bytes(1 + 258 * 100, 0));
  const Bytes far = gzip_far_distance();
  CHECK(error_of(Parser::Gunzip, far, {}).find("invalid distance too far back") != std::string::npos);
  const Bytes w = weights([](aep::SafeTensors&) {});
  CHECK(error_of(Parser::Weights, w, {}) == "<no error>");
  CHECK(error_of(Parser::Model, linear_ae(""), {}) == "<no error>");
  CHECK(error_of(Parser::Model, preset(kFlatten + ", " + linear(784, 8), linear(8, 784) + R"(, {"type": "Unflatten", "unflattened_size": [1, 28, 28]})"), {}) ==
        "<no error>");
}

TEST_CASE("every truncation of a valid file is refused, never accepted or crashed on") {
  struct Valid {
    const char* what;
    Parser parser;
    Bytes bytes;
  };
  const std::vector<Valid> files = {
      {"IDX images", Parser::IdxImages, images_2x3x4()},
      {"IDX labels", Parser::IdxLabels, labels_n(5)},
      {"IDX images in gzip", Parser::IdxImages, gzip_stored(images_2x3x4())},
      {"fixed-Huffman gzip", Parser::Gunzip, gzip_bomb(20)},
      {"weights", Parser::Weights, weights([](aep::SafeTensors&) {})},
      {"preset", Parser::Preset, linear_ae(R"("training": {"batch_size": 32})")},
  };
  for (const Valid& f : files) {
    INFO(std::string(f.what));
    REQUIRE(error_of(f.parser, f.bytes, {}) == "<no error>");
    // Every prefix of the small files; for the large weight file, every prefix around each section boundary.
    for (size_t n = 0; n < f.bytes.size(); n += (f.bytes.size() < 2000 || n < 600 || n + 64 > f.bytes.size()) ? 1 : 97) {
      const std::string msg = error_of(f.parser, head(f.bytes, n), {});
      INFO("prefix of " << n << " bytes: " << msg);
      CHECK(msg.rfind(file_name(f.parser), 0) == 0);
    }
  }
}
