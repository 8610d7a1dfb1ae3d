// IDX (MNIST) parsing: header checks with actionable messages, all sizes validated before allocating.
// See idx.hpp for the API.
#include "core/idx.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/gzip.hpp"

namespace aep {
namespace {

constexpr uint32_t kMaxSide = 4096;
constexpr uint32_t kMaxCount = 10000000;
// Cap on the inflated size of a gzipped IDX file: ~20x MNIST's training images, small enough that a gzip bomb
// or corrupt trailer cannot exhaust memory (the browser build has a few GB at most).
constexpr size_t kMaxInflatedBytes = size_t(1) << 30;
constexpr uint8_t kTypeUnsignedByte = 0x08;

uint32_t load_be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string hex(uint32_t v, int digits) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%0*x", digits, static_cast<unsigned>(v));
    return buf;
}

const char* idx_type_name(uint8_t type) {
    switch (type) {
        case 0x08: return "unsigned byte";
        case 0x09: return "signed byte";
        case 0x0B: return "int16";
        case 0x0C: return "int32";
        case 0x0D: return "float32";
        case 0x0E: return "float64";
        default: return "unknown";
    }
}

// What the caller expects, used for both validation and hints in messages.
struct IdxKind {
    uint8_t rank;
    const char* what;        // "images"
    const char* other_hint;  // shown when the rank belongs to the other kind of file
    uint8_t other_rank;
};

constexpr IdxKind kImages{3, "images", "is this a labels file?", 1};
constexpr IdxKind kLabels{1, "labels", "is this an images file?", 3};

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw std::runtime_error(name + ": " + what); }

void check_magic(const uint8_t* data, size_t size, const std::string& name, const IdxKind& kind) {
    if (size < 4)
        fail(name, "file is only " + std::to_string(size) + " bytes, too short for an IDX header — is it truncated?");
    const uint32_t magic = load_be32(data);
    const uint32_t expected = (uint32_t(kTypeUnsignedByte) << 8) | kind.rank;
    const std::string prefix = "expected magic " + hex(expected, 8) + ", got " + hex(magic, 8);
    if (data[0] != 0 || data[1] != 0) {
        if (is_gzip(data, size)) fail(name, prefix + " — the data is still gzipped after decompressing; was it gzipped twice?");
        fail(name, prefix + " — this is not an IDX file");
    }
    if (data[2] != kTypeUnsignedByte)
        fail(name, prefix + ": IDX data type " + hex(data[2], 2) + " (" + idx_type_name(data[2]) +
                       ") — only unsigned-byte IDX files are supported");
    if (data[3] != kind.rank) {
        std::string msg = "expected rank " + std::to_string(kind.rank) + " (" + kind.what + "), got rank " +
                          std::to_string(data[3]);
        if (data[3] == kind.other_rank) msg += std::string(" — ") + kind.other_hint;
        fail(name, msg);
    }
}

// Returns the dimensions after checking the header fits in the buffer.
std::vector<uint32_t> read_dims(const uint8_t* data, size_t size, const std::string& name, const IdxKind& kind) {
    check_magic(data, size, name, kind);
    const size_t header_bytes = 4 + 4 * size_t(kind.rank);
    if (size < header_bytes)
        fail(name, "truncated header: an IDX " + std::string(kind.what) + " header needs " + std::to_string(header_bytes) +
                       " bytes, the file has " + std::to_string(size));
    std::vector<uint32_t> dims(kind.rank);
    for (size_t i = 0; i < dims.size(); ++i) dims[i] = load_be32(data + 4 + 4 * i);
    return dims;
}

void check_count(uint32_t count, const std::string& name, const char* what) {
    if (count > kMaxCount)
        fail(name, "header claims " + std::to_string(count) + " " + what + ", more than the limit of " +
                       std::to_string(kMaxCount) + " — is the header corrupt?");
}

// `payload` is computed in 64 bits by the caller, so no overflow is possible for in-limit dimensions.
void check_total_size(size_t size, size_t header_bytes, uint64_t payload, const std::string& name,
                      const std::string& layout) {
    const uint64_t expected = uint64_t(header_bytes) + payload;
    const uint64_t actual = size;
    const std::string both = "expected " + std::to_string(expected) + " bytes (" + std::to_string(header_bytes) +
                             "-byte header + " + layout + "), got " + std::to_string(actual);
    if (actual < expected)
        fail(name, "file is truncated: " + both + " (" + std::to_string(expected - actual) + " bytes missing)");
    if (actual > expected)
        fail(name, "unexpected trailing data: " + both + " (" + std::to_string(actual - expected) +
                       " extra bytes after the last item)");
}

// The payload after a validated header. An inflated buffer (`owned`) is moved rather than copied, so a large
// .gz file needs its inflated size once in memory, not twice.
// kept_at: the file sits in *owned from that byte on, after other data (append_idx_*): only its header is cut out, and
// the payload stays where it is (nothing is returned).
constexpr size_t kNotKept = size_t(-1);
std::vector<uint8_t> take_payload(const uint8_t* data, size_t size, size_t header_bytes, std::vector<uint8_t>* owned,
                                  size_t kept_at = kNotKept) {
    if (owned == nullptr) return std::vector<uint8_t>(data + header_bytes, data + size);
    if (kept_at != kNotKept) {
        owned->erase(owned->begin() + std::ptrdiff_t(kept_at), owned->begin() + std::ptrdiff_t(kept_at + header_bytes));
        return {};
    }
    owned->erase(owned->begin(), owned->begin() + std::ptrdiff_t(header_bytes));
    return std::move(*owned);
}

IdxImages parse_raw_images(const uint8_t* data, size_t size, const std::string& name, std::vector<uint8_t>* owned,
                           size_t kept_at = kNotKept) {
    const std::vector<uint32_t> dims = read_dims(data, size, name, kImages);
    IdxImages out;
    out.count = dims[0];
    out.rows = dims[1];
    out.cols = dims[2];
    const std::string shape = std::to_string(out.rows) + "x" + std::to_string(out.cols);
    if (out.rows == 0 || out.cols == 0) fail(name, "image size is " + shape + "; rows and columns must be nonzero");
    if (out.rows > kMaxSide || out.cols > kMaxSide)
        fail(name, "image size " + shape + " exceeds the limit of " + std::to_string(kMaxSide) + "x" +
                       std::to_string(kMaxSide) + " — is the header corrupt?");
    check_count(out.count, name, "images");
    const uint64_t payload = uint64_t(out.count) * out.rows * out.cols;  // <= 1e7 * 4096^2, fits easily
    check_total_size(size, 16, payload, name, std::to_string(out.count) + " images of " + shape + " pixels");
    out.pixels = take_payload(data, size, 16, owned, kept_at);
    return out;
}

IdxLabels parse_raw_labels(const uint8_t* data, size_t size, const std::string& name, std::vector<uint8_t>* owned,
                           size_t kept_at = kNotKept) {
    const std::vector<uint32_t> dims = read_dims(data, size, name, kLabels);
    IdxLabels out;
    out.count = dims[0];
    check_count(out.count, name, "labels");
    check_total_size(size, 8, out.count, name, std::to_string(out.count) + " one-byte labels");
    out.labels = take_payload(data, size, 8, owned, kept_at);
    return out;
}

// Calls parse on the raw bytes, inflating first when the buffer is gzip.
template <class Parse>
auto parse_maybe_gzipped(const uint8_t* data, size_t size, const std::string& name, Parse parse) {
    if (!is_gzip(data, size)) return parse(data, size, name, nullptr, kNotKept);
    std::vector<uint8_t> raw = gunzip(data, size, name, kMaxInflatedBytes);
    // Sizes in later messages refer to the inflated data, so say so.
    return parse(raw.data(), raw.size(), name + " (after gunzip)", &raw, kNotKept);
}

// The same appended to `into`: inflated (or copied) after what it holds, parsed there, its header cut out.
template <class Parse>
auto append_maybe_gzipped(std::vector<uint8_t>& into, const uint8_t* data, size_t size, const std::string& name,
                          Parse parse) {
    const size_t base = into.size();
    try {
        const bool gz = is_gzip(data, size);
        if (gz) gunzip_append(data, size, name, into, kMaxInflatedBytes);
        else into.insert(into.end(), data, data + size);
        return parse(into.data() + base, into.size() - base, gz ? name + " (after gunzip)" : name, &into, base);
    } catch (...) {
        into.resize(base);
        throw;
    }
}

bool can_open(const std::string& path, int& error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        error = errno;
        return false;
    }
    std::fclose(f);
    return true;
}

// MNIST is often distributed only as .gz; accept the uncompressed name too.
std::string resolve_gz_fallback(const std::string& path) {
    int error = 0;
    if (can_open(path, error) || error != ENOENT) return path;
    const std::string gz = path + ".gz";
    int gz_error = 0;
    if (can_open(gz, gz_error)) return gz;
    fail(path, std::string("cannot open file (") + std::strerror(error) + "); " + gz + " does not exist either");
}

constexpr size_t kMinReadChunk = size_t(1) << 16;
constexpr size_t kMaxReadChunk = size_t(1) << 26;

// File size + 1 when the stream is seekable, so a regular file is read with one fread that hits EOF.
size_t first_read_size(std::FILE* f) {
    if (std::fseek(f, 0, SEEK_END) != 0) {
        std::clearerr(f);
        return kMinReadChunk;
    }
    const long end = std::ftell(f);
    if (std::fseek(f, 0, SEEK_SET) != 0 || end < 0) {
        std::clearerr(f);
        std::rewind(f);
        return kMinReadChunk;
    }
    // Only a hint: a huge size still grows in chunks, so a wrong value cannot force one giant allocation.
    return size_t(std::min<unsigned long>(static_cast<unsigned long>(end), kMaxReadChunk - 1)) + 1;
}

}  // namespace

IdxImages parse_idx_images(const uint8_t* data, size_t size, const std::string& name) {
    return parse_maybe_gzipped(data, size, name, parse_raw_images);
}

IdxLabels parse_idx_labels(const uint8_t* data, size_t size, const std::string& name) {
    return parse_maybe_gzipped(data, size, name, parse_raw_labels);
}

IdxImages append_idx_images(std::vector<uint8_t>& into, const uint8_t* data, size_t size, const std::string& name) {
    return append_maybe_gzipped(into, data, size, name, parse_raw_images);
}

IdxLabels append_idx_labels(std::vector<uint8_t>& into, const uint8_t* data, size_t size, const std::string& name) {
    return append_maybe_gzipped(into, data, size, name, parse_raw_labels);
}

IdxImages read_idx_images(const std::string& path) {
    const std::string actual = resolve_gz_fallback(path);
    const std::vector<uint8_t> bytes = read_file(actual);
    return parse_idx_images(bytes.data(), bytes.size(), actual);
}

IdxLabels read_idx_labels(const std::string& path) {
    const std::string actual = resolve_gz_fallback(path);
    const std::vector<uint8_t> bytes = read_file(actual);
    return parse_idx_labels(bytes.data(), bytes.size(), actual);
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) fail(path, std::string("cannot open file (") + std::strerror(errno) + ")");
    std::vector<uint8_t> out;
    // Reading until EOF (rather than trusting the size) also works for pipes and files that change size.
    size_t chunk = first_read_size(f);
    for (;;) {
        const size_t old = out.size();
        out.resize(old + chunk);
        const size_t got = std::fread(out.data() + old, 1, chunk, f);
        out.resize(old + got);
        if (got < chunk) break;
        chunk = std::min(chunk * 2, kMaxReadChunk);
    }
    const bool failed = std::ferror(f) != 0;
    const int error = errno;
    std::fclose(f);
    if (failed) fail(path, std::string("read error (") + std::strerror(error) + ")");
    return out;
}

}  // namespace aep
