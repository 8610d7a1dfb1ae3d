// safetensors parsing and writing; see safetensors.hpp. The reader follows the reference implementation's
// rules (contiguous, non-overlapping tensors covering the whole data buffer) and adds duplicate-key checks.
#include "core/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/idx.hpp"  // read_file
#include "core/utf8.hpp"

namespace aep {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100000000;  // same cap as the reference implementation
constexpr size_t kMaxRank = 8;
constexpr int kMaxJsonDepth = 8;  // a valid header nests 3 deep; anything deeper is hostile or broken
const char* const kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw std::runtime_error(name + ": " + what); }

size_t itemsize(DType dtype) { return dtype == DType::F32 ? 4 : 8; }

std::string quoted(const std::string& tensor) { return "tensor '" + shorten_utf8(tensor) + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A JSON value for an error message: ASCII-only and cut short, so a hostile header cannot make a huge message.
std::string brief(const json& v) {
    std::string s = v.dump(-1, ' ', true);
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    return s;
}

std::string range_string(uint64_t begin, uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) {
    if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
    out = a * b;
    return true;
}

// Byte count of a tensor, or throws when the shape is negative or does not fit in memory.
size_t checked_nbytes(const std::vector<int64_t>& shape, DType dtype, const std::string& where) {
    uint64_t total = itemsize(dtype);
    for (int64_t dim : shape) {
        if (dim < 0) throw std::runtime_error(where + ": shape " + shape_string(shape) + " has a negative dimension");
        if (!checked_mul(total, uint64_t(dim), total) || total > std::numeric_limits<size_t>::max())
            throw std::runtime_error(where + ": shape " + shape_string(shape) + " is too large to address");
    }
    return size_t(total);
}

uint64_t load_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

void store_le(uint8_t* p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i, v >>= 8) p[i] = uint8_t(v & 0xFFu);
}

uint64_t load_le(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

// nlohmann::json silently keeps the last of duplicate keys, which would let two tensors share a name unnoticed;
// the parser callback sees every key, so duplicates are caught there (along with absurd nesting).
json parse_header_json(const uint8_t* p, size_t n, const std::string& name) {
    std::vector<std::set<std::string>> open_objects;
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
        if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
            depth >= kMaxJsonDepth)
            fail(name, "header JSON is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        if (event == json::parse_event_t::object_end) open_objects.pop_back();
        if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second) {
            const std::string key = parsed.get<std::string>();
            if (open_objects.size() == 1) fail(name, "duplicate tensor name '" + shorten_utf8(key) + "' in header");
            fail(name, "duplicate key '" + shorten_utf8(key) + "' in header");
        }
        return true;
    };
    try {
        return json::parse(p, p + n, callback);
    } catch (const json::exception& e) {
        fail(name, "header is not valid JSON: " + shorten_utf8(e.what(), 200));
    }
}

// Reads a JSON number that must be a non-negative integer representable as int64.
uint64_t non_negative_int(const json& v, const std::string& where, const std::string& what) {
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > uint64_t(std::numeric_limits<int64_t>::max())) throw std::runtime_error(where + ": " + what + " is too large");
        return u;
    }
    if (v.is_number_integer()) {
        const int64_t s = v.get<int64_t>();
        if (s < 0) throw std::runtime_error(where + ": " + what + " is negative (" + std::to_string(s) + ")");
        return uint64_t(s);  // "-0"
    }
    throw std::runtime_error(where + ": " + what + " must be a non-negative integer, got " + brief(v));
}

DType parse_dtype(const json& v, const std::string& where) {
    if (!v.is_string()) throw std::runtime_error(where + ": dtype must be a string, got " + brief(v));
    const std::string s = v.get<std::string>();
    if (s == "F32") return DType::F32;
    if (s == "I64") return DType::I64;
    throw std::runtime_error(where + ": dtype " + shorten_utf8(s) + " is not supported (expected F32 or I64)");
}

std::vector<int64_t> parse_shape(const json& v, const std::string& where) {
    if (!v.is_array()) throw std::runtime_error(where + ": shape must be an array, got " + brief(v));
    if (v.size() > kMaxRank)
        throw std::runtime_error(where + ": shape has rank " + std::to_string(v.size()) + ", more than the supported " +
                                 std::to_string(kMaxRank));
    std::vector<int64_t> shape;
    for (size_t i = 0; i < v.size(); ++i)
        shape.push_back(int64_t(non_negative_int(v[i], where, "shape[" + std::to_string(i) + "]")));
    return shape;
}

struct Entry {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
};

void check_entry_keys(const json& v, const std::string& where) {
    if (!v.is_object())
        throw std::runtime_error(where + ": header entry must be an object with dtype, shape and data_offsets");
    for (const auto& item : v.items())
        if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
            throw std::runtime_error(where + ": unexpected key '" + shorten_utf8(item.key()) + "' (expected dtype, shape, data_offsets)");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!v.contains(key)) throw std::runtime_error(where + ": missing \"" + key + "\"");
}

Entry parse_entry(const std::string& tensor, const json& v, uint64_t buffer_size) {
    const std::string where = quoted(tensor);
    check_entry_keys(v, where);
    Entry e;
    e.name = tensor;
    e.dtype = parse_dtype(v.at("dtype"), where);
    e.shape = parse_shape(v.at("shape"), where);
    const json& offsets = v.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2)
        throw std::runtime_error(where + ": data_offsets must be an array [begin, end], got " + brief(offsets));
    e.begin = non_negative_int(offsets[0], where, "data_offsets[0]");
    e.end = non_negative_int(offsets[1], where, "data_offsets[1]");
    if (e.begin > e.end)
        throw std::runtime_error(where + ": data_offsets " + range_string(e.begin, e.end) + " are reversed (begin > end)");
    if (e.end > buffer_size)
        throw std::runtime_error(where + ": data_offsets " + range_string(e.begin, e.end) + " lie outside the " +
                                 std::to_string(buffer_size) + "-byte data buffer");
    const uint64_t nbytes = checked_nbytes(e.shape, e.dtype, where);
    if (nbytes != e.end - e.begin)
        throw std::runtime_error(where + ": shape " + shape_string(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                                 std::to_string(nbytes) + " bytes, but data_offsets " + range_string(e.begin, e.end) +
                                 " span " + std::to_string(e.end - e.begin));
    return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& name) {
    if (!v.is_object()) fail(name, std::string(kMetadataKey) + " must be an object mapping strings to strings, got " + brief(v));
    std::map<std::string, std::string> out;
    for (const auto& item : v.items()) {
        if (!item.value().is_string())
            fail(name, std::string(kMetadataKey) + " value for key '" + shorten_utf8(item.key()) + "' is not a string (got " +
                           brief(item.value()) + ")");
        out[item.key()] = item.value().get<std::string>();
    }
    return out;
}

// Tensors sorted by offset must tile the buffer exactly: no overlap (aliasing), no holes (hidden data).
void check_coverage(const std::vector<Entry>& sorted, uint64_t buffer_size, const std::string& name) {
    uint64_t cursor = 0;
    const Entry* prev = nullptr;
    for (const Entry& e : sorted) {
        if (e.begin < cursor)
            fail(name, "tensors '" + shorten_utf8(prev->name) + "' " + range_string(prev->begin, prev->end) + " and '" + shorten_utf8(e.name) + "' " +
                           range_string(e.begin, e.end) + " overlap");
        if (e.begin > cursor)
            fail(name, "hole of " + std::to_string(e.begin - cursor) + " unused bytes " +
                           (prev ? "between tensors '" + shorten_utf8(prev->name) + "' and '" + shorten_utf8(e.name) + "'"
                                 : "before the first tensor '" + shorten_utf8(e.name) + "'"));
        cursor = e.end;
        prev = &e;
    }
    if (cursor != buffer_size)
        fail(name, std::to_string(buffer_size - cursor) + " unused bytes after the last tensor in the data buffer");
}

std::vector<Entry> parse_entries(const json& header, uint64_t buffer_size, SafeTensors& st, const std::string& name) {
    std::vector<Entry> entries;
    for (const auto& item : header.items()) {
        if (item.key() == kMetadataKey) {
            st.metadata = parse_metadata(item.value(), name);
            continue;
        }
        try {
            entries.push_back(parse_entry(item.key(), item.value(), buffer_size));
        } catch (const std::runtime_error& e) {
            fail(name, e.what());
        }
    }
    // Stable, so zero-size tensors at the same offset keep name order.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    return entries;
}

template <class T, class Bits>
void append_le(std::vector<uint8_t>& out, const T* data, size_t count) {
    const size_t start = out.size();
    out.resize(start + count * sizeof(T));
    for (size_t i = 0; i < count; ++i) {
        Bits bits;
        std::memcpy(&bits, &data[i], sizeof bits);
        store_le(out.data() + start + i * sizeof(T), uint64_t(bits), sizeof(T));
    }
}

template <class T, class Bits>
std::vector<T> decode_le(const StTensor& t, DType want) {
    if (t.dtype != want)
        throw std::runtime_error(quoted(t.name) + ": dtype is " + dtype_name(t.dtype) + ", expected " + dtype_name(want));
    const size_t n = t.numel();
    if (t.nbytes() != n * sizeof(T))
        throw std::runtime_error(quoted(t.name) + ": has " + std::to_string(t.nbytes()) + " bytes but shape " +
                                 shape_string(t.shape) + " needs " + std::to_string(n * sizeof(T)));
    std::vector<T> out(n);
    for (size_t i = 0; i < n; ++i) {
        const Bits bits = Bits(load_le(t.data() + i * sizeof(T), sizeof(T)));
        std::memcpy(&out[i], &bits, sizeof bits);
    }
    return out;
}

void check_new_name(const SafeTensors& st, const std::string& name) {
    if (name == kMetadataKey) throw std::runtime_error("safetensors: tensor name '__metadata__' is reserved");
    if (find_invalid_utf8(reinterpret_cast<const uint8_t*>(name.data()), name.size()) != std::string::npos)
        throw std::runtime_error("safetensors: tensor name '" + name + "' is not valid UTF-8");
    if (st.find(name) != nullptr) throw std::runtime_error("safetensors: duplicate tensor name '" + name + "'");
}

template <class T, class Bits>
void add_tensor(SafeTensors& st, const std::string& name, std::vector<int64_t> shape, const T* data, DType dtype,
                bool borrow = false) {
    check_new_name(st, name);
    if (shape.size() > kMaxRank)
        throw std::runtime_error(quoted(name) + ": rank " + std::to_string(shape.size()) + " exceeds the supported " +
                                 std::to_string(kMaxRank));
    const size_t count = checked_nbytes(shape, dtype, quoted(name)) / sizeof(T);
    if (count != 0 && data == nullptr) throw std::runtime_error(quoted(name) + ": data is null");
    StTensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    if (borrow) t.view = reinterpret_cast<const uint8_t*>(data), t.view_size = count * sizeof(T);
    else if (count != 0) append_le<T, Bits>(t.bytes, data, count);
    st.tensors.push_back(std::move(t));
}

std::string header_json(const SafeTensors& st) {
    // ordered_json keeps __metadata__ first and tensors in insertion order, which makes files easy to diff.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!st.metadata.empty()) header[kMetadataKey] = st.metadata;
    uint64_t offset = 0;
    for (const StTensor& t : st.tensors) {
        const size_t nbytes = checked_nbytes(t.shape, t.dtype, quoted(t.name));
        if (t.nbytes() != nbytes)
            throw std::runtime_error("serialize_safetensors: " + quoted(t.name) + " has " + std::to_string(t.nbytes()) +
                                     " bytes but shape " + shape_string(t.shape) + " needs " + std::to_string(nbytes));
        if (t.name == kMetadataKey || header.contains(t.name))
            throw std::runtime_error("serialize_safetensors: duplicate or reserved tensor name '" + t.name + "'");
        header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
    }
    try {
        return header.dump();
    } catch (const nlohmann::ordered_json::exception& e) {
        throw std::runtime_error(std::string("serialize_safetensors: cannot encode header (names and metadata must be "
                                             "valid UTF-8): ") + e.what());
    }
}

}  // namespace

const char* dtype_name(DType dtype) { return dtype == DType::F32 ? "F32" : "I64"; }

size_t StTensor::numel() const { return checked_nbytes(shape, dtype, quoted(name)) / itemsize(dtype); }

std::vector<float> StTensor::as_f32() const { return decode_le<float, uint32_t>(*this, DType::F32); }

std::vector<int64_t> StTensor::as_i64() const { return decode_le<int64_t, uint64_t>(*this, DType::I64); }

const StTensor* SafeTensors::find(const std::string& name) const {
    for (const StTensor& t : tensors)
        if (t.name == name) return &t;
    return nullptr;
}

void SafeTensors::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
    add_tensor<float, uint32_t>(*this, name, std::move(shape), data, DType::F32);
}

void SafeTensors::borrow_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
    const uint32_t one = 1;
    uint8_t first;
    std::memcpy(&first, &one, 1);
    add_tensor<float, uint32_t>(*this, name, std::move(shape), data, DType::F32, first == 1);
}

void SafeTensors::add_i64(const std::string& name, std::vector<int64_t> shape, const int64_t* data) {
    add_tensor<int64_t, uint64_t>(*this, name, std::move(shape), data, DType::I64);
}

namespace {

SafeTensors parse(const uint8_t* data, size_t size, const std::string& name, bool borrow) {
    if (size < 8)
        fail(name, "file is only " + std::to_string(size) +
                       " bytes; a safetensors file starts with an 8-byte header length — is it truncated?");
    const uint64_t header_len = load_le64(data);
    if (header_len > kMaxHeaderBytes)
        fail(name, "header length " + std::to_string(header_len) + " exceeds the " + std::to_string(kMaxHeaderBytes) +
                       "-byte limit — is this really a safetensors file?");
    if (header_len > size - 8)
        fail(name, "header length " + std::to_string(header_len) + " runs past the end of the file (only " +
                       std::to_string(size - 8) + " bytes follow the length field) — is it truncated?");
    const uint8_t* header_bytes = data + 8;
    const size_t bad = find_invalid_utf8(header_bytes, size_t(header_len));
    if (bad != std::string::npos) fail(name, "header is not valid UTF-8 (bad byte at header offset " + std::to_string(bad) + ")");
    const json header = parse_header_json(header_bytes, size_t(header_len), name);
    if (!header.is_object()) fail(name, std::string("header must be a JSON object, got ") + header.type_name());

    const uint8_t* buffer = header_bytes + header_len;
    const uint64_t buffer_size = size - 8 - header_len;
    SafeTensors st;
    const std::vector<Entry> entries = parse_entries(header, buffer_size, st, name);
    check_coverage(entries, buffer_size, name);
    st.tensors.reserve(entries.size());
    for (const Entry& e : entries) {
        StTensor t;
        t.name = e.name;
        t.dtype = e.dtype;
        t.shape = e.shape;
        if (borrow) t.view = buffer + e.begin, t.view_size = size_t(e.end - e.begin);
        else t.bytes.assign(buffer + e.begin, buffer + e.end);
        st.tensors.push_back(std::move(t));
    }
    return st;
}

}  // namespace

SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& name) {
    return parse(data, size, name, false);
}

SafeTensors parse_safetensors_view(const uint8_t* data, size_t size, const std::string& name) {
    return parse(data, size, name, true);
}

std::vector<uint8_t> serialize_safetensors(const SafeTensors& st) {
    std::string header = header_json(st);
    header.append((8 - header.size() % 8) % 8, ' ');
    size_t data_bytes = 0;
    for (const StTensor& t : st.tensors) data_bytes += t.nbytes();
    std::vector<uint8_t> out(8);
    out.reserve(8 + header.size() + data_bytes);
    store_le(out.data(), header.size(), 8);
    out.insert(out.end(), header.begin(), header.end());
    for (const StTensor& t : st.tensors) out.insert(out.end(), t.data(), t.data() + t.nbytes());
    return out;
}

SafeTensors read_safetensors(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    return parse_safetensors(bytes.data(), bytes.size(), path);
}

void write_safetensors(const std::string& path, const SafeTensors& st) {
    const std::vector<uint8_t> bytes = serialize_safetensors(st);
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) fail(tmp, std::string("cannot open for writing (") + std::strerror(errno) + ")");
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
    int error = errno;
    if (std::fclose(f) != 0 && ok) {
        ok = false;
        error = errno;
    }
    if (!ok) {
        std::remove(tmp.c_str());
        fail(tmp, std::string("write failed (") + std::strerror(error) + ") — is the disk full?");
    }
#ifdef __EMSCRIPTEN__
    // Emscripten 3.1's in-memory FS keeps a ghost of a file replaced by rename() (it reappears after remove());
    // that FS cannot be interrupted mid-write anyway, so dropping the old file first costs no safety.
    std::remove(path.c_str());
#endif
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        error = errno;
        std::remove(tmp.c_str());
        fail(path, "cannot replace the file with " + tmp + " (" + std::strerror(error) + ")");
    }
}

}  // namespace aep
