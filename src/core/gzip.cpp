// DEFLATE (RFC 1951) and gzip member (RFC 1952) decoding, written from the RFCs; see gzip.hpp.
// Everything read from the input is treated as untrusted: every failure is a runtime_error naming the file.
#include "core/gzip.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace aep {
namespace {

// ---------------------------------------------------------------- CRC-32

// Slice-by-8 keeps the checksum pass over the 47 MB MNIST file far below the inflate cost.
struct CrcTables {
    uint32_t t[8][256];
    CrcTables() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
};

const CrcTables& crc_tables() {
    static const CrcTables tables;
    return tables;
}

uint32_t load_le32(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

uint32_t load_le16(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }

// ---------------------------------------------------------------- Huffman tables

constexpr int kMaxBits = 15;   // longest code DEFLATE allows
constexpr int kFastBits = 10;  // codes up to this length resolve with one table lookup
constexpr uint32_t kFastMask = (1u << kFastBits) - 1;
constexpr int kMaxSymbols = 288;

// Canonical Huffman code: count/symbol arrays drive the bit-by-bit slow path (any length), `fast` maps the
// next kFastBits input bits to (symbol << 4 | length); 0 means "longer code or no code, use the slow path".
struct Huffman {
    uint16_t count[kMaxBits + 1];
    uint16_t symbol[kMaxSymbols];
    uint16_t fast[1u << kFastBits];
};

// DEFLATE sends codes MSB-first but packs bits LSB-first, so the fast table is indexed by reversed codes.
uint32_t reverse_bits(uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) {
        r = (r << 1) | (code & 1u);
        code >>= 1;
    }
    return r;
}

void fill_fast_table(Huffman& h) {
    std::fill(std::begin(h.fast), std::end(h.fast), uint16_t(0));
    uint32_t code = 0;
    int index = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
        for (int i = 0; i < h.count[len]; ++i, ++code, ++index) {
            if (len > kFastBits) continue;
            const uint16_t entry = uint16_t((h.symbol[index] << 4) | len);
            for (uint32_t slot = reverse_bits(code, len); slot <= kFastMask; slot += 1u << len) h.fast[slot] = entry;
        }
        code <<= 1;
    }
}

// Returns nullptr on success, otherwise why the lengths do not form a usable prefix code.
// zlib accepts two incomplete shapes for literal/length and distance codes (an empty code, and a single
// 1-bit code), and real encoders emit them, so `allow_incomplete` permits exactly those.
const char* build_huffman(Huffman& h, const uint8_t* lengths, int n, bool allow_incomplete) {
    std::fill(std::begin(h.count), std::end(h.count), uint16_t(0));
    for (int i = 0; i < n; ++i) ++h.count[lengths[i]];
    int left = 1;
    for (int len = 1; len <= kMaxBits; ++len) {
        left = (left << 1) - h.count[len];
        if (left < 0) return "over-subscribed code lengths";
    }
    if (left > 0) {
        const int used = n - h.count[0];
        const bool lone_one_bit_code = used == 1 && h.count[1] == 1;
        if (!allow_incomplete || (used != 0 && !lone_one_bit_code)) return "incomplete set of code lengths";
    }
    uint16_t offset[kMaxBits + 2];
    offset[1] = 0;
    for (int len = 1; len <= kMaxBits; ++len) offset[len + 1] = uint16_t(offset[len] + h.count[len]);
    for (int sym = 0; sym < n; ++sym)
        if (lengths[sym] != 0) h.symbol[offset[lengths[sym]]++] = uint16_t(sym);
    fill_fast_table(h);
    return nullptr;
}

constexpr uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kCodeLengthOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// ---------------------------------------------------------------- inflater

// FTEXT (1) is only a hint about the content, so it needs no handling.
enum : uint8_t { kFlagHcrc = 2, kFlagExtra = 4, kFlagName = 8, kFlagComment = 16, kFlagReserved = 0xE0 };

class Gunzipper {
public:
    Gunzipper(const uint8_t* data, size_t size, const std::string& name, size_t max_output)
        : data_(data), size_(size), name_(name), max_output_(max_output) {}

    std::vector<uint8_t> run() {
        if (!is_gzip(data_, size_)) throw std::runtime_error(name_ + ": not a gzip file (does not start with bytes 1f 8b)");
        reserve_from_trailer();
        for (int member = 1;; ++member) {
            read_member_header();
            const size_t member_start = n_;
            inflate_member(member_start);
            check_member_trailer(member, member_start);
            if (pos_ == size_) break;
            if (!is_gzip(data_ + pos_, size_ - pos_))
                throw std::runtime_error(name_ + ": " + std::to_string(size_ - pos_) +
                                         " bytes of trailing data after the gzip stream at byte offset " +
                                         std::to_string(pos_) + " (not another gzip member) — is the file corrupt?");
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
    size_t pos_ = 0;         // next input byte not yet loaded into bitbuf_
    uint64_t bitbuf_ = 0;    // pending input bits, LSB first; bits above bitcount_ are always zero
    int bitcount_ = 0;
    std::vector<uint8_t> out_;  // out_[0, n_) is decoded data; the rest is spare capacity
    size_t n_ = 0;
    bool fixed_built_ = false;
    Huffman fixed_lit_, fixed_dist_, lit_, dist_, codelen_;

    // Byte offset of the next unconsumed bit, for error messages.
    size_t offset() const { return pos_ - size_t(bitcount_ / 8); }

    [[noreturn]] void corrupt(const std::string& what) const {
        throw std::runtime_error(name_ + ": corrupt gzip data: " + what + " (near byte offset " + std::to_string(offset()) +
                                 ")");
    }

    [[noreturn]] void truncated() const {
        throw std::runtime_error(name_ + ": gzip data is truncated (input ends after " + std::to_string(size_) +
                                 " bytes, in the middle of a member) — is the download incomplete?");
    }

    [[noreturn]] void too_large() const {
        throw std::runtime_error(name_ + ": decompressed data is larger than the limit of " + std::to_string(max_output_) +
                                 " bytes — refusing to inflate (corrupt file or gzip bomb?)");
    }

    // The last member's ISIZE is usually the whole output size; sizing the buffer once avoids regrowth and the
    // final shrink. It is only a hint from untrusted input, so it stays within what a stream of this length
    // could legitimately expand to (DEFLATE tops out near 1032:1) and within max_output.
    void reserve_from_trailer() {
        if (size_ < 18) return;
        const uint64_t hint = load_le32(data_ + size_ - 4);
        const uint64_t plausible = uint64_t(size_) * 1032;
        if (hint > plausible || hint > max_output_) return;
        out_.resize(size_t(hint));
    }

    // ---- byte-level access (headers, trailers, stored blocks)

    void need_bytes(size_t n) const {
        if (size_ - pos_ < n) truncated();
    }

    void read_member_header() {
        const size_t start = pos_;
        need_bytes(10);
        const uint8_t method = data_[pos_ + 2], flags = data_[pos_ + 3];
        if (method != 8)
            throw std::runtime_error(name_ + ": unsupported gzip compression method " + std::to_string(method) +
                                     " at byte offset " + std::to_string(pos_) + " (only 8 = deflate exists)");
        if (flags & kFlagReserved)
            throw std::runtime_error(name_ + ": gzip header at byte offset " + std::to_string(pos_) +
                                     " has reserved flag bits set — corrupt file or unsupported gzip variant");
        pos_ += 10;
        if (flags & kFlagExtra) {
            need_bytes(2);
            const size_t xlen = load_le16(data_ + pos_);
            pos_ += 2;
            need_bytes(xlen);
            pos_ += xlen;
        }
        if (flags & kFlagName) skip_zero_terminated();
        if (flags & kFlagComment) skip_zero_terminated();
        if (flags & kFlagHcrc) {
            need_bytes(2);
            const uint32_t expected = load_le16(data_ + pos_);
            const uint32_t actual = crc32(data_ + start, pos_ - start) & 0xFFFFu;
            if (expected != actual)
                throw std::runtime_error(name_ + ": gzip header checksum mismatch at byte offset " + std::to_string(start) +
                                         " — the file is corrupt");
            pos_ += 2;
        }
    }

    void skip_zero_terminated() {
        const void* zero = std::memchr(data_ + pos_, 0, size_ - pos_);
        if (zero == nullptr) truncated();
        pos_ = size_t(static_cast<const uint8_t*>(zero) - data_) + 1;
    }

    void check_member_trailer(int member, size_t member_start) {
        need_bytes(8);
        const uint32_t expected_crc = load_le32(data_ + pos_);
        const uint32_t expected_size = load_le32(data_ + pos_ + 4);
        const size_t produced = n_ - member_start;
        const uint32_t actual_crc = crc32(out_.data() + member_start, produced);
        const std::string where = "gzip member " + std::to_string(member) + " (ending at byte offset " +
                                  std::to_string(pos_ + 8) + ")";
        if (actual_crc != expected_crc)
            throw std::runtime_error(name_ + ": CRC-32 mismatch in " + where + ": stored " + hex32(expected_crc) +
                                     ", computed " + hex32(actual_crc) + " — the file is corrupt");
        if (uint32_t(produced) != expected_size)
            throw std::runtime_error(name_ + ": size mismatch in " + where + ": trailer says " +
                                     std::to_string(expected_size) + " bytes (mod 2^32), decoded " +
                                     std::to_string(produced) + " — the file is corrupt");
        pos_ += 8;
    }

    static std::string hex32(uint32_t v) {
        static const char digits[] = "0123456789abcdef";
        std::string s = "0x";
        for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xFu];
        return s;
    }

    // ---- bit-level access (compressed blocks)

    void refill() {
        while (bitcount_ <= 56 && pos_ < size_) {
            bitbuf_ |= uint64_t(data_[pos_++]) << bitcount_;
            bitcount_ += 8;
        }
    }

    void consume(int n) {
        bitbuf_ >>= n;
        bitcount_ -= n;
    }

    uint32_t bits(int n) {
        if (bitcount_ < n) {
            refill();
            if (bitcount_ < n) truncated();
        }
        const uint32_t v = uint32_t(bitbuf_ & ((uint64_t(1) << n) - 1));
        consume(n);
        return v;
    }

    // Drops the rest of the current byte and hands bytes already loaded into bitbuf_ back to the byte reader.
    void align_to_byte() {
        pos_ -= size_t(bitcount_ / 8);
        bitbuf_ = 0;
        bitcount_ = 0;
    }

    int decode(const Huffman& h) {
        if (bitcount_ < kMaxBits) refill();
        const uint16_t entry = h.fast[bitbuf_ & kFastMask];
        const int len = entry & 15;
        if (entry != 0 && len <= bitcount_) {
            consume(len);
            return entry >> 4;
        }
        return decode_slow(h);
    }

    // Walks the canonical code one bit at a time: codes of each length are consecutive integers.
    int decode_slow(const Huffman& h) {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len <= kMaxBits; ++len) {
            if (len > bitcount_) truncated();
            code |= int((bitbuf_ >> (len - 1)) & 1u);
            const int count = h.count[len];
            if (code - first < count) {
                consume(len);
                return h.symbol[index + (code - first)];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        corrupt("invalid Huffman code");
    }

    // ---- output

    void ensure(size_t k) {
        if (out_.size() - n_ >= k) return;
        if (k > max_output_ - n_) too_large();
        const size_t doubled = out_.size() > max_output_ / 2 ? max_output_ : out_.size() * 2;
        const size_t want = std::max({n_ + k, doubled, std::min(max_output_, size_t(1) << 16)});
        out_.resize(want);
    }

    // ---- blocks

    void inflate_member(size_t member_start) {
        bitbuf_ = 0;
        bitcount_ = 0;
        bool last = false;
        while (!last) {
            last = bits(1) != 0;
            const uint32_t type = bits(2);
            if (type == 0) {
                stored_block();
            } else if (type == 1) {
                build_fixed_tables();
                compressed_block(fixed_lit_, fixed_dist_, member_start);
            } else if (type == 2) {
                read_dynamic_tables();
                compressed_block(lit_, dist_, member_start);
            } else {
                corrupt("invalid block type 3");
            }
        }
        align_to_byte();
    }

    void stored_block() {
        align_to_byte();
        need_bytes(4);
        const uint32_t len = load_le16(data_ + pos_), nlen = load_le16(data_ + pos_ + 2);
        if (len != (~nlen & 0xFFFFu)) corrupt("stored block length does not match its complement");
        pos_ += 4;
        need_bytes(len);
        ensure(len);
        if (len != 0) std::memcpy(out_.data() + n_, data_ + pos_, len);
        n_ += len;
        pos_ += len;
    }

    void build_fixed_tables() {
        if (fixed_built_) return;
        uint8_t lengths[kMaxSymbols];
        std::fill(lengths, lengths + 144, uint8_t(8));
        std::fill(lengths + 144, lengths + 256, uint8_t(9));
        std::fill(lengths + 256, lengths + 280, uint8_t(7));
        std::fill(lengths + 280, lengths + 288, uint8_t(8));
        build_huffman(fixed_lit_, lengths, 288, false);
        // 32 five-bit codes make a complete code; 30 and 31 are rejected when decoded.
        std::fill(lengths, lengths + 32, uint8_t(5));
        build_huffman(fixed_dist_, lengths, 32, false);
        fixed_built_ = true;
    }

    void read_dynamic_tables() {
        const int nlen = int(bits(5)) + 257, ndist = int(bits(5)) + 1, ncode = int(bits(4)) + 4;
        if (nlen > 286 || ndist > 30)
            corrupt("dynamic block declares " + std::to_string(nlen) + " literal/length and " + std::to_string(ndist) +
                    " distance codes (at most 286 and 30 exist)");
        uint8_t codelen_lengths[19] = {};
        for (int i = 0; i < ncode; ++i) codelen_lengths[kCodeLengthOrder[i]] = uint8_t(bits(3));
        if (const char* err = build_huffman(codelen_, codelen_lengths, 19, false))
            corrupt(std::string("code-length code: ") + err);
        uint8_t lengths[286 + 30] = {};
        read_code_lengths(lengths, nlen + ndist);
        if (lengths[256] == 0) corrupt("dynamic block has no end-of-block code");
        if (const char* err = build_huffman(lit_, lengths, nlen, true)) corrupt(std::string("literal/length code: ") + err);
        if (const char* err = build_huffman(dist_, lengths + nlen, ndist, true)) corrupt(std::string("distance code: ") + err);
    }

    void read_code_lengths(uint8_t* lengths, int total) {
        int i = 0;
        while (i < total) {
            const int sym = decode(codelen_);
            if (sym < 16) {
                lengths[i++] = uint8_t(sym);
                continue;
            }
            uint8_t value = 0;
            int repeat = 0;
            if (sym == 16) {
                if (i == 0) corrupt("code length repeat with no previous length");
                value = lengths[i - 1];
                repeat = 3 + int(bits(2));
            } else if (sym == 17) {
                repeat = 3 + int(bits(3));
            } else {
                repeat = 11 + int(bits(7));
            }
            if (repeat > total - i) corrupt("code length repeat runs past the declared number of codes");
            std::fill(lengths + i, lengths + i + repeat, value);
            i += repeat;
        }
    }

    void compressed_block(const Huffman& lit, const Huffman& dist, size_t member_start) {
        for (;;) {
            const int sym = decode(lit);
            if (sym < 256) {
                if (n_ == out_.size()) ensure(1);
                out_[n_++] = uint8_t(sym);
            } else if (sym == 256) {
                return;
            } else {
                copy_match(sym - 257, dist, member_start);
            }
        }
    }

    void copy_match(int len_sym, const Huffman& dist, size_t member_start) {
        if (len_sym >= 29) corrupt("invalid literal/length symbol " + std::to_string(len_sym + 257));
        const size_t len = kLenBase[len_sym] + bits(kLenExtra[len_sym]);
        const int dist_sym = decode(dist);
        if (dist_sym >= 30) corrupt("invalid distance symbol " + std::to_string(dist_sym));
        const size_t distance = kDistBase[dist_sym] + bits(kDistExtra[dist_sym]);
        if (distance > n_ - member_start)
            corrupt("back-reference distance " + std::to_string(distance) + " reaches before the start of the output (" +
                    std::to_string(n_ - member_start) + " bytes so far)");
        ensure(len);
        uint8_t* out = out_.data() + n_;
        const uint8_t* from = out - distance;
        if (distance >= len) {
            std::memcpy(out, from, len);
        } else {
            // Overlapping copy is how DEFLATE encodes runs; it must go byte by byte.
            for (size_t k = 0; k < len; ++k) out[k] = from[k];
        }
        n_ += len;
    }
};

}  // namespace

bool is_gzip(const uint8_t* data, size_t size) { return size >= 2 && data[0] == 0x1F && data[1] == 0x8B; }

std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, const std::string& name, size_t max_output) {
    return Gunzipper(data, size, name, max_output).run();
}

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
    const auto& t = crc_tables().t;
    crc = ~crc;
    while (size >= 8) {
        const uint32_t lo = crc ^ load_le32(data), hi = load_le32(data + 4);
        crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
              t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
        data += 8;
        size -= 8;
    }
    while (size-- > 0) crc = t[0][(crc ^ *data++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

}  // namespace aep
