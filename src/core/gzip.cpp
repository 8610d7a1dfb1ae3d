// gzip decoding on zlib's inflate (see gzip.hpp). zlib decodes and checks each member; this file walks the
// members, keeps the output under the caller's cap and turns zlib's terse errors into messages naming the file.
#include "core/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>

namespace aep {
namespace {

uint32_t load_le32(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

std::string hex32(uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xFu];
    return s;
}

// zlib counts in uInt (32 bits); larger buffers are handed over in pieces.
uInt clamp_uint(size_t n) { return uInt(std::min<size_t>(n, UINT_MAX)); }

// 16 + MAX_WBITS: a gzip wrapper only (a zlib or raw stream is an error), 32 KB window.
class InflateStream {
public:
    explicit InflateStream(const std::string& name) {
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            throw std::runtime_error(name + ": cannot start zlib's inflate (out of memory?)");
    }
    ~InflateStream() { inflateEnd(&z); }
    InflateStream(const InflateStream&) = delete;
    InflateStream& operator=(const InflateStream&) = delete;

    z_stream z{};
};

class Gunzipper {
public:
    // `out`: the decoded bytes go after what it holds (gunzip_append).
    Gunzipper(const uint8_t* data, size_t size, const std::string& name, size_t max_output,
              std::vector<uint8_t> out = {})
        : data_(data), size_(size), name_(name), max_output_(max_output), stream_(name), out_(std::move(out)),
          base_(out_.size()), n_(base_) {}

    std::vector<uint8_t> run() {
        if (!is_gzip(data_, size_)) throw std::runtime_error(name_ + ": not a gzip file (does not start with bytes 1f 8b)");
        reserve_from_trailer();
        for (int member = 1;; ++member) {
            inflate_member(member);
            if (pos_ == size_) break;
            if (!is_gzip(data_ + pos_, size_ - pos_))
                throw std::runtime_error(name_ + ": " + std::to_string(size_ - pos_) +
                                         " bytes of trailing data after the gzip stream at byte offset " +
                                         std::to_string(pos_) + " (not another gzip member) — is the file corrupt?");
            inflateReset(&stream_.z);
        }
        out_.resize(n_);
        // Geometric growth can leave up to half the buffer unused; give it back when it matters.
        if (out_.capacity() - n_ > n_ / 8) out_.shrink_to_fit();
        return std::move(out_);
    }

private:
    const uint8_t* data_;
    size_t size_;
    const std::string& name_;
    size_t max_output_;
    InflateStream stream_;
    size_t pos_ = 0;            // first input byte zlib has not consumed
    std::vector<uint8_t> out_;  // out_[base_, n_) is decoded data; the rest is room for zlib to write into
    size_t base_, n_;

public:
    // The caller's bytes back, as they were, after a failure (gunzip_append).
    std::vector<uint8_t> give_back() {
        out_.resize(base_);
        return std::move(out_);
    }

private:

    // The last member's ISIZE is usually the whole output size; sizing the buffer once avoids regrowth and the
    // final shrink. It is only a hint from untrusted input, so it stays within what a stream of this length
    // could legitimately expand to (DEFLATE tops out near 1032:1) and within max_output.
    void reserve_from_trailer() {
        if (size_ < 18) return;
        const uint64_t hint = load_le32(data_ + size_ - 4);
        if (hint > uint64_t(size_) * 1032 || hint > max_output_) return;
        out_.reserve(base_ + size_t(hint));  // exactly (resize alone may double a large buffer's capacity)
        out_.resize(base_ + size_t(hint));
    }

    // Room for more output: doubling, up to one byte past max_output, so that a stream going over the cap is
    // seen (n_ > max_output_) without ever allocating more than the cap.
    void grow() {
        const size_t limit = max_output_ >= SIZE_MAX - base_ - 1 ? SIZE_MAX : base_ + max_output_ + 1;
        const size_t doubled = out_.size() > limit / 2 ? limit : out_.size() * 2;
        out_.resize(std::max({doubled, std::min(limit, base_ + (size_t(1) << 16)), n_ + 1}));
    }

    void inflate_member(int member) {
        z_stream& z = stream_.z;
        const size_t member_start = pos_, member_output = n_;
        z.next_in = const_cast<Bytef*>(data_ + pos_);
        z.avail_in = clamp_uint(size_ - pos_);
        for (;;) {
            if (n_ == out_.size()) grow();
            z.next_out = out_.data() + n_;
            z.avail_out = clamp_uint(out_.size() - n_);
            const int rc = inflate(&z, Z_NO_FLUSH);
            n_ = size_t(z.next_out - out_.data());
            pos_ = size_t(z.next_in - data_);
            if (n_ - base_ > max_output_) too_large();
            if (rc == Z_STREAM_END) return;
            if (rc == Z_MEM_ERROR) throw std::runtime_error(name_ + ": out of memory while inflating");
            if (rc != Z_OK && rc != Z_BUF_ERROR) data_error(member, member_start, member_output);
            // zlib stopped for room or for input. Room comes first: the last bits of a stream may be fully read
            // and still wait for output space.
            if (z.avail_out != 0 && z.avail_in == 0) {
                if (pos_ == size_) truncated();
                z.avail_in = clamp_uint(size_ - pos_);
            }
        }
    }

    [[noreturn]] void truncated() const {
        throw std::runtime_error(name_ + ": gzip data is truncated (input ends after " + std::to_string(size_) +
                                 " bytes, in the middle of a member) — is the download incomplete?");
    }

    [[noreturn]] void too_large() const {
        throw std::runtime_error(name_ + ": decompressed data is larger than the limit of " + std::to_string(max_output_) +
                                 " bytes — refusing to inflate (corrupt file or gzip bomb?)");
    }

    // zlib's message says what broke; the cases a user may meet in practice get the numbers that show it.
    // When zlib rejects a trailer field it has just read it, so pos_ is right after that field.
    [[noreturn]] void data_error(int member, size_t member_start, size_t member_output) const {
        const std::string msg = stream_.z.msg != nullptr ? stream_.z.msg : "zlib error";
        const std::string where = std::to_string(member_start);
        if (msg == "unknown compression method")
            throw std::runtime_error(name_ + ": unsupported gzip compression method " +
                                     std::to_string(data_[member_start + 2]) + " at byte offset " + where +
                                     " (only 8 = deflate exists)");
        if (msg == "unknown header flags set")
            throw std::runtime_error(name_ + ": gzip header at byte offset " + where +
                                     " has reserved flag bits set — corrupt file or unsupported gzip variant");
        if (msg == "header crc mismatch")
            throw std::runtime_error(name_ + ": gzip header checksum mismatch at byte offset " + where +
                                     " — the file is corrupt");
        const size_t produced = n_ - member_output;
        if (msg == "incorrect data check" && pos_ >= 4) {
            const uint32_t computed = uint32_t(crc32_z(0, out_.data() + member_output, produced));
            throw std::runtime_error(name_ + ": CRC-32 mismatch in gzip member " + std::to_string(member) +
                                     " (ending at byte offset " + std::to_string(pos_ + 4) + "): stored " +
                                     hex32(load_le32(data_ + pos_ - 4)) + ", computed " + hex32(computed) +
                                     " — the file is corrupt");
        }
        if (msg == "incorrect length check" && pos_ >= 4)
            throw std::runtime_error(name_ + ": size mismatch in gzip member " + std::to_string(member) +
                                     " (ending at byte offset " + std::to_string(pos_) + "): trailer says " +
                                     std::to_string(load_le32(data_ + pos_ - 4)) + " bytes (mod 2^32), decoded " +
                                     std::to_string(produced) + " — the file is corrupt");
        throw std::runtime_error(name_ + ": corrupt gzip data in member " + std::to_string(member) + ": " + msg +
                                 " (near byte offset " + std::to_string(pos_) + ") — the file is damaged");
    }
};

}  // namespace

bool is_gzip(const uint8_t* data, size_t size) { return size >= 2 && data[0] == 0x1F && data[1] == 0x8B; }

std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, const std::string& name, size_t max_output) {
    return Gunzipper(data, size, name, max_output).run();
}

void gunzip_append(const uint8_t* data, size_t size, const std::string& name, std::vector<uint8_t>& out,
                   size_t max_output) {
    Gunzipper g(data, size, name, max_output, std::move(out));
    try {
        out = g.run();
    } catch (...) {
        out = g.give_back();
        throw;
    }
}

}  // namespace aep
