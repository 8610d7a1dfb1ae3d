// Tests for the file-format readers: gzip (our layer over zlib), IDX (MNIST) and safetensors, including malformed
// inputs that must be rejected with a useful message rather than crash or allocate wildly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/gzip.hpp"
#include "core/idx.hpp"
#include "core/safetensors.hpp"
#include "test_bytes.hpp"

namespace {

using namespace aep::test;

// Produced once with the system gzip tool (`gzip -<level> -n`); the inputs are regenerated below (lcg_bytes,
// fox_text, tiny_pixels) so the decoded bytes can be compared exactly.

// gzip -1 of lcg_bytes(300): incompressible, so gzip emits one stored block.
const uint8_t kGzStored[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03, 0x01, 0x2c, 0x01, 0xd3, 0xfe, 0xdc,
    0x04, 0x65, 0xaa, 0x1f, 0xad, 0x1d, 0x5a, 0xda, 0xe5, 0xac, 0x1b, 0x1e, 0x5f, 0x13, 0x70, 0x79,
    0x6c, 0xfd, 0x10, 0xff, 0x19, 0xaf, 0x60, 0x1d, 0x04, 0xac, 0xb4, 0x1d, 0x02, 0x2b, 0x46, 0x78,
    0x73, 0x3a, 0xf2, 0xdf, 0x5f, 0xae, 0xb7, 0x08, 0x59, 0xd1, 0xee, 0x39, 0x10, 0xcb, 0x48, 0x95,
    0xb5, 0xcc, 0x89, 0x29, 0x11, 0xff, 0x06, 0xb6, 0x62, 0x2e, 0xdf, 0x3c, 0xf9, 0x35, 0xfd, 0x4b,
    0x94, 0x28, 0xca, 0x09, 0x7c, 0x44, 0xb3, 0x02, 0x5e, 0x96, 0x5f, 0xb3, 0xea, 0x6d, 0xac, 0xd4,
    0x2d, 0x81, 0x6e, 0x69, 0xaf, 0xe0, 0xe6, 0x87, 0x4c, 0x9c, 0x04, 0xe7, 0xd2, 0x36, 0x5d, 0x2c,
    0x60, 0xc9, 0xea, 0xf4, 0x79, 0xf6, 0x86, 0xa0, 0xeb, 0x93, 0x26, 0xe4, 0x62, 0x12, 0xd5, 0x0d,
    0xcb, 0xb3, 0x77, 0x15, 0x6a, 0x6a, 0x3a, 0x68, 0xba, 0x8e, 0xdb, 0x74, 0x08, 0x46, 0x9e, 0xf3,
    0xce, 0xb3, 0x0a, 0xf8, 0xd0, 0xdd, 0x68, 0xbb, 0xf8, 0x5f, 0xfa, 0x24, 0xf2, 0xd2, 0xfc, 0x18,
    0x87, 0xfb, 0x5c, 0x87, 0xba, 0xb4, 0x38, 0x32, 0xa5, 0x9b, 0x1b, 0x3d, 0x10, 0x7c, 0xf7, 0x78,
    0xd6, 0x7f, 0xe2, 0x6d, 0xf8, 0x11, 0x91, 0x29, 0x7e, 0x93, 0x95, 0xcb, 0x12, 0xc5, 0x57, 0xce,
    0x5a, 0xf1, 0xd4, 0x16, 0x18, 0xd7, 0x19, 0xbc, 0x04, 0x5b, 0x7e, 0x99, 0x65, 0xf1, 0xa2, 0x94,
    0x71, 0xc4, 0x2a, 0xac, 0x6a, 0xa9, 0x38, 0xc4, 0x75, 0xc7, 0xad, 0x32, 0x38, 0x02, 0x1f, 0x05,
    0x3b, 0x2c, 0x99, 0x1a, 0xfc, 0xeb, 0x15, 0xde, 0xcf, 0x68, 0xba, 0xe0, 0x7c, 0xbc, 0xd6, 0x1e,
    0x97, 0x1b, 0x9a, 0x0b, 0x9d, 0xbe, 0x97, 0x63, 0xd3, 0x92, 0xfc, 0xaf, 0xdf, 0xa2, 0x8c, 0x97,
    0x23, 0x45, 0x62, 0xeb, 0xdd, 0x07, 0x65, 0x70, 0xff, 0x58, 0x89, 0x6a, 0xcf, 0xf7, 0xca, 0xee,
    0x3f, 0x1c, 0xe9, 0xe4, 0x0a, 0x68, 0xe5, 0xde, 0x93, 0x8d, 0x38, 0x9c, 0x7d, 0xbd, 0xd7, 0x5b,
    0x09, 0xd4, 0xe7, 0xe2, 0x33, 0x44, 0x3f, 0x4a, 0x8c, 0xc4, 0xa1, 0x90, 0xd6, 0xb8, 0xb8, 0xdc,
    0x61, 0x5f, 0xd1, 0x8e, 0x28, 0xbe, 0x59, 0x0e, 0xaa, 0x50, 0x1b, 0x5f, 0x0e, 0x2f, 0x63, 0x2c,
    0x01, 0x00, 0x00,
};
// gzip -9 of "hello hello hello world\n": fixed Huffman codes with back-references.
const uint8_t kGzFixed[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
    0xc8, 0x40, 0x22, 0xcb, 0xf3, 0x8b, 0x72, 0x52, 0xb8, 0x00, 0x88, 0xd9, 0x5b, 0xe0, 0x18, 0x00,
    0x00, 0x00,
};
// gzip -9 of fox_text(): dynamic Huffman block.
const uint8_t kGzDynamic[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x9d, 0xda, 0xcb, 0x71, 0x13, 0x41,
    0x00, 0x45, 0xd1, 0x3d, 0x51, 0x4c, 0x08, 0xf3, 0xfa, 0xdf, 0x64, 0xc3, 0x47, 0x80, 0x41, 0x58,
    0x60, 0x63, 0xc0, 0x8e, 0x9e, 0x82, 0x0c, 0x38, 0x6b, 0xd5, 0x5b, 0xe9, 0x94, 0x34, 0x73, 0xbb,
    0xaf, 0x77, 0xf7, 0x97, 0xe3, 0x7c, 0x7d, 0xfc, 0xf8, 0x74, 0x39, 0xbe, 0x3f, 0xdd, 0xbd, 0xfb,
    0x72, 0xbc, 0x7d, 0xb8, 0xfd, 0xba, 0x3f, 0x3e, 0xdc, 0x7e, 0x1f, 0x9f, 0x9f, 0xbe, 0x7e, 0x7b,
    0x3c, 0x6e, 0x3f, 0x2f, 0x0f, 0xff, 0x3e, 0xbe, 0xbe, 0x79, 0x79, 0x3e, 0xde, 0xdf, 0x3e, 0xbe,
    0xba, 0xfe, 0xdd, 0x04, 0x36, 0x05, 0x36, 0x15, 0x36, 0x0d, 0x36, 0x1d, 0x36, 0x03, 0x36, 0x13,
    0x36, 0x0b, 0x36, 0x5b, 0xbe, 0x53, 0x82, 0x20, 0x12, 0x22, 0x14, 0x22, 0x16, 0x22, 0x18, 0x22,
    0x1a, 0x22, 0x1c, 0x22, 0x1e, 0x22, 0x20, 0x22, 0x22, 0x8a, 0x88, 0x28, 0xf4, 0xdb, 0x20, 0x22,
    0x8a, 0x88, 0x28, 0x22, 0xa2, 0x88, 0x88, 0x22, 0x22, 0x8a, 0x88, 0x28, 0x22, 0xa2, 0x88, 0x88,
    0x2a, 0x22, 0xaa, 0x88, 0xa8, 0xf4, 0x77, 0x21, 0x22, 0xaa, 0x88, 0xa8, 0x22, 0xa2, 0x8a, 0x88,
    0x2a, 0x22, 0xaa, 0x88, 0xa8, 0x22, 0xa2, 0x89, 0x88, 0x26, 0x22, 0x9a, 0x88, 0x68, 0xf4, 0x04,
    0x21, 0x22, 0x9a, 0x88, 0x68, 0x22, 0xa2, 0x89, 0x88, 0x26, 0x22, 0x9a, 0x88, 0xe8, 0x22, 0xa2,
    0x8b, 0x88, 0x2e, 0x22, 0xba, 0x88, 0xe8, 0xf4, 0x50, 0x29, 0x22, 0xba, 0x88, 0xe8, 0x22, 0xa2,
    0x8b, 0x88, 0x2e, 0x22, 0x86, 0x88, 0x18, 0x22, 0x62, 0x88, 0x88, 0x21, 0x22, 0x86, 0x88, 0x18,
    0xf4, 0x9e, 0x21, 0x22, 0x86, 0x88, 0x18, 0x22, 0x62, 0x88, 0x88, 0x29, 0x22, 0xa6, 0x88, 0x98,
    0x22, 0x62, 0x8a, 0x88, 0x29, 0x22, 0xa6, 0x88, 0x98, 0xf4, 0xea, 0x29, 0x22, 0xa6, 0x88, 0x98,
    0x22, 0x62, 0x89, 0x88, 0x25, 0x22, 0x96, 0x88, 0x58, 0x22, 0x62, 0x89, 0x88, 0x25, 0x22, 0x96,
    0x88, 0x58, 0x54, 0x23, 0x44, 0xc4, 0x12, 0x11, 0x5b, 0x44, 0x6c, 0x11, 0xb1, 0x45, 0xc4, 0x16,
    0x11, 0x5b, 0x44, 0x6c, 0x11, 0xb1, 0x45, 0xc4, 0x16, 0x11, 0x9b, 0x02, 0x95, 0x15, 0x2a, 0x4a,
    0x54, 0x27, 0x35, 0xaa, 0x93, 0x22, 0xd5, 0x49, 0x95, 0xea, 0xa4, 0x4c, 0x75, 0x52, 0xa7, 0x3a,
    0x29, 0x54, 0x9d, 0x54, 0xaa, 0x4e, 0x4a, 0x55, 0x27, 0xd9, 0xc0, 0x7c, 0x49, 0x36, 0x2c, 0x60,
    0x5a, 0xc1, 0xb4, 0x84, 0x69, 0x0d, 0xd3, 0x22, 0xa6, 0x55, 0x4c, 0xcb, 0x98, 0xd4, 0x31, 0x43,
    0x21, 0x33, 0xc5, 0xda, 0x36, 0xd9, 0xa0, 0x96, 0x19, 0x8a, 0x99, 0xa1, 0x9a, 0x19, 0xca, 0x99,
    0xa1, 0x9e, 0x19, 0x0a, 0x9a, 0xa1, 0xa2, 0x19, 0x4a, 0x9a, 0xa1, 0xa6, 0x99, 0x6a, 0x07, 0x1f,
    0x64, 0x83, 0xb2, 0x66, 0xa8, 0x6b, 0x86, 0xc2, 0x66, 0xa8, 0x6c, 0x86, 0xd2, 0x66, 0xa8, 0x6d,
    0x86, 0xe2, 0x66, 0xa8, 0x6e, 0x86, 0xf2, 0x66, 0x9a, 0x9d, 0x8a, 0x91, 0x0d, 0x2a, 0x9c, 0xa1,
    0xc4, 0x19, 0x6a, 0x9c, 0xa1, 0xc8, 0x19, 0xaa, 0x9c, 0xa1, 0xcc, 0x19, 0xea, 0x9c, 0xa1, 0xd0,
    0x19, 0x2a, 0x9d, 0xe9, 0x76, 0x64, 0x4a, 0x36, 0x28, 0x76, 0x86, 0x6a, 0x67, 0x28, 0x77, 0x86,
    0x7a, 0x67, 0x28, 0x78, 0x86, 0x8a, 0x67, 0x28, 0x79, 0x86, 0x9a, 0x67, 0x28, 0x7a, 0x66, 0xd8,
    0x79, 0x3a, 0xd9, 0xa0, 0xee, 0x19, 0x0a, 0x9f, 0xa1, 0xf2, 0x19, 0x4a, 0x9f, 0xa1, 0xf6, 0x19,
    0x8a, 0x9f, 0xa1, 0xfa, 0x19, 0xca, 0x9f, 0xa1, 0xfe, 0x99, 0x69, 0x97, 0x2d, 0xc8, 0x06, 0x25,
    0xd0, 0x50, 0x03, 0x0d, 0x45, 0xd0, 0x50, 0x05, 0x0d, 0x65, 0xd0, 0x50, 0x07, 0x0d, 0x85, 0xd0,
    0x50, 0x09, 0x0d, 0xa5, 0xd0, 0x2c, 0xbb, 0x89, 0x43, 0x36, 0xa8, 0x86, 0x86, 0x72, 0x68, 0xa8,
    0x87, 0x86, 0x82, 0x68, 0xa8, 0x88, 0x86, 0x92, 0x68, 0xa8, 0x89, 0x86, 0xa2, 0x68, 0xa8, 0x8a,
    0x66, 0xdb, 0x35, 0xad, 0xff, 0xb4, 0xf1, 0x07, 0xf3, 0x2d, 0x39, 0xf2, 0xc2, 0x29, 0x00, 0x00,
};
// gzip -9 of "first member\n" and of "second\n", for concatenated members.
const uint8_t kGzMember1[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x4b, 0xcb, 0x2c, 0x2a, 0x2e, 0x51,
    0xc8, 0x4d, 0xcd, 0x4d, 0x4a, 0x2d, 0xe2, 0x02, 0x00, 0xa7, 0xf4, 0x85, 0x0a, 0x0d, 0x00, 0x00,
    0x00,
};
const uint8_t kGzMember2[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x2b, 0x4e, 0x4d, 0xce, 0xcf, 0x4b,
    0xe1, 0x02, 0x00, 0x7e, 0xc0, 0x0f, 0x06, 0x07, 0x00, 0x00, 0x00,
};
// gzip -9 of an empty input.
const uint8_t kGzEmpty[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
};
// gzip -9 of 100000 zero bytes: a small bomb for max_output tests.
const uint8_t kGzZeros100k[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xc1, 0x31, 0x01, 0x00, 0x00,
    0x00, 0xc2, 0xa0, 0xf5, 0x4f, 0x6d, 0x0d, 0x0f, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x57, 0x03, 0x7d, 0x95, 0x11, 0xd4,
    0xa0, 0x86, 0x01, 0x00,
};
// gzip -9 of tiny_images(): IDX header 00000803, dims 2, 3, 4, then pixels (i * 7) % 256.
const uint8_t kGzIdxImages[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xe0, 0x60, 0x66, 0x60,
    0x60, 0x60, 0x02, 0x62, 0x10, 0xcd, 0xc2, 0xc0, 0xce, 0x27, 0x2a, 0xa3, 0xac, 0x65, 0x68, 0x61,
    0xef, 0xe6, 0x1b, 0x12, 0x9d, 0x94, 0x59, 0x50, 0x5e, 0xd7, 0xda, 0x33, 0x79, 0xd6, 0x42, 0x00,
    0xa8, 0x0d, 0x1f, 0xac, 0x28, 0x00, 0x00, 0x00,
};
template <size_t N>
Bytes to_bytes(const uint8_t (&a)[N]) { return Bytes(a, a + N); }
Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes drop_last(Bytes b, size_t n) {
    b.resize(b.size() - n);
    return b;
}

// Input of kGzStored: an LCG keeps the test independent of any random source.
Bytes lcg_bytes(size_t n) {
    Bytes out;
    uint32_t x = 12345;
    for (size_t i = 0; i < n; ++i) {
        x = (x * 1103515245u + 12345u) & 0x7fffffffu;
        out.push_back(uint8_t((x >> 16) & 0xffu));
    }
    return out;
}

// Input of kGzDynamic.
std::string fox_text() {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
    return s;
}

// Input of kGzIdxImages and the valid in-memory IDX tests.
Bytes tiny_pixels() {
    Bytes p;
    for (int i = 0; i < 2 * 3 * 4; ++i) p.push_back(uint8_t((i * 7) % 256));
    return p;
}

Bytes gunzip_bytes(const Bytes& b, size_t max_output = size_t(1) << 30) {
    return aep::gunzip(b.data(), b.size(), "test.gz", max_output);
}

// Runs f and returns the runtime_error message, or "<no exception>".
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "<no exception>";
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}


}  // namespace

// ============================================================================ gzip

TEST_CASE("is_gzip looks at the magic bytes") {
    const uint8_t gz[] = {0x1f, 0x8b}, other[] = {0x1f, 0x8c};
    CHECK(aep::is_gzip(gz, 2));
    CHECK_FALSE(aep::is_gzip(gz, 1));
    CHECK_FALSE(aep::is_gzip(other, 2));
    CHECK_FALSE(aep::is_gzip(nullptr, 0));
}

TEST_CASE("gunzip decodes stored, fixed and dynamic Huffman blocks") {
    CHECK(gunzip_bytes(to_bytes(kGzStored)) == lcg_bytes(300));
    CHECK(gunzip_bytes(to_bytes(kGzFixed)) == to_bytes(std::string("hello hello hello world\n")));
    CHECK(gunzip_bytes(to_bytes(kGzDynamic)) == to_bytes(fox_text()));
    CHECK(gunzip_bytes(to_bytes(kGzZeros100k)) == Bytes(100000, 0));
    CHECK(gunzip_bytes(to_bytes(kGzEmpty)).empty());
}

TEST_CASE("gunzip concatenates multiple members") {
    const Bytes both = concat(concat(to_bytes(kGzMember1), to_bytes(kGzEmpty)), to_bytes(kGzMember2));
    CHECK(gunzip_bytes(both) == to_bytes(std::string("first member\nsecond\n")));
}

TEST_CASE("gunzip handles multi-block stored streams built by hand") {
    const Bytes content = lcg_bytes(70000);  // needs two stored blocks (max 65535 each)
    CHECK(gunzip_bytes(gzip_stored(content)) == content);
    CHECK(gunzip_bytes(gzip_stored(Bytes())).empty());
}

TEST_CASE("gunzip skips optional header fields and checks the header CRC") {
    const Bytes fixed = to_bytes(kGzFixed);
    Bytes header = {0x1f, 0x8b, 0x08, 0x1e /* FHCRC|FEXTRA|FNAME|FCOMMENT */, 0, 0, 0, 0, 0x02, 0x03};
    put_le(header, 3, 2);
    header.insert(header.end(), {'x', 'y', 'z'});
    for (const char* s : {"name.txt", "a comment"}) header.insert(header.end(), s, s + std::strlen(s) + 1);
    put_le(header, crc32_z(0, header.data(), header.size()) & 0xffffu, 2);
    const Bytes rest(fixed.begin() + 10, fixed.end());
    const Bytes good = concat(header, rest);
    CHECK(gunzip_bytes(good) == to_bytes(std::string("hello hello hello world\n")));

    Bytes bad_hcrc = good;
    bad_hcrc[header.size() - 1] ^= 0x01;
    CHECK(contains(error_of([&] { gunzip_bytes(bad_hcrc); }), "header checksum mismatch"));

    Bytes reserved = fixed;
    reserved[3] = 0x20;
    CHECK(contains(error_of([&] { gunzip_bytes(reserved); }), "reserved flag bits"));

    Bytes method = fixed;
    method[2] = 7;
    CHECK(contains(error_of([&] { gunzip_bytes(method); }), "compression method 7"));
}

TEST_CASE("gunzip decodes a hand-written fixed-Huffman back-reference") {
    BitWriter w;
    w.bits(1, 1);           // BFINAL
    w.bits(1, 2);           // fixed Huffman
    w.code(0x30 + 'a', 8);  // literal 'a'
    w.code(1, 7);           // length symbol 257: length 3
    w.code(0, 5);           // distance symbol 0: distance 1
    w.code(0, 7);           // end of block
    const Bytes expected = to_bytes(std::string("aaaa"));
    CHECK(gunzip_bytes(gzip_member(w.bytes, expected)) == expected);
}

TEST_CASE("gunzip rejects every truncation of valid streams") {
    for (const Bytes& full : {to_bytes(kGzStored), to_bytes(kGzFixed), to_bytes(kGzDynamic), to_bytes(kGzZeros100k),
                              to_bytes(kGzEmpty)}) {
        for (size_t len = 0; len < full.size(); ++len) {
            INFO("truncated to " << len << " of " << full.size() << " bytes");
            const Bytes cut(full.begin(), full.begin() + std::ptrdiff_t(len));
            const std::string msg = error_of([&] { gunzip_bytes(cut); });
            CHECK(msg != "<no exception>");
            CHECK(contains(msg, "test.gz: "));
        }
    }
}

TEST_CASE("gunzip survives single-byte corruption anywhere") {
    // Any outcome but a crash, hang or sanitizer report is acceptable for the all-zeros stream (a corrupted
    // back-reference still copies zeros); for the others, damage past the 10-byte header must be detected
    // (MTIME, XFL, OS and the FTEXT flag are not covered by any checksum, and neither are padding bits).
    const Bytes zeros = to_bytes(kGzZeros100k);
    for (const Bytes& good : {to_bytes(kGzStored), to_bytes(kGzFixed), to_bytes(kGzDynamic), zeros}) {
        size_t detected = 0, tried = 0;
        for (size_t i = 10; i < good.size(); ++i) {
            for (uint8_t mask : {uint8_t(0x01), uint8_t(0x10), uint8_t(0xff)}) {
                Bytes bad = good;
                bad[i] ^= mask;
                ++tried;
                if (error_of([&] { gunzip_bytes(bad, 1 << 20); }) != "<no exception>") ++detected;
            }
        }
        if (good != zeros) CHECK(detected * 100 >= tried * 95);
    }
}

TEST_CASE("gunzip rejects corrupt streams with specific messages") {
    const Bytes dynamic = to_bytes(kGzDynamic);
    SUBCASE("flipped CRC byte") {
        Bytes bad = dynamic;
        bad[bad.size() - 8] ^= 0x01;
        CHECK(contains(error_of([&] { gunzip_bytes(bad); }), "CRC-32 mismatch"));
    }
    SUBCASE("wrong ISIZE") {
        Bytes bad = dynamic;
        bad[bad.size() - 4] ^= 0x01;
        CHECK(contains(error_of([&] { gunzip_bytes(bad); }), "size mismatch"));
    }
    SUBCASE("block type 3") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(3, 2);
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }),
                       "corrupt gzip data in member 1: invalid block type"));
    }
    SUBCASE("distance before the start of the output") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(1, 2);
        w.code(1, 7);  // length 3 with nothing decoded yet
        w.code(0, 5);
        w.code(0, 7);
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }),
                       "member 1: invalid distance too far back"));
    }
    SUBCASE("distance before the start of the second member") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(1, 2);
        w.code(1, 7);
        w.code(0, 5);
        w.code(0, 7);
        const Bytes two = concat(to_bytes(kGzFixed), gzip_member(w.bytes, Bytes()));
        CHECK(contains(error_of([&] { gunzip_bytes(two); }), "member 2: invalid distance too far back"));
    }
    SUBCASE("fixed-Huffman distance symbol 30") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(1, 2);
        w.code(0x30 + 'a', 8);
        w.code(1, 7);
        w.code(30, 5);
        w.code(0, 7);
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }), "invalid distance code"));
    }
    SUBCASE("stored block length complement") {
        Bytes bad = gzip_stored(to_bytes(std::string("abc")));
        bad[13] ^= 0x01;  // NLEN low byte
        CHECK(contains(error_of([&] { gunzip_bytes(bad); }), "invalid stored block lengths"));
    }
    SUBCASE("over-subscribed code-length code") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(2, 2);
        w.bits(0, 5);
        w.bits(0, 5);
        w.bits(15, 4);  // all 19 code-length codes...
        for (int i = 0; i < 19; ++i) w.bits(1, 3);  // ...1 bit long: far too many
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }), "invalid code lengths set"));
    }
    SUBCASE("incomplete code-length code") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(2, 2);
        w.bits(0, 5);
        w.bits(0, 5);
        w.bits(0, 4);      // 4 code-length codes
        w.bits(1, 3);      // symbol 16: length 1, the rest 0 -> half the code space unused
        for (int i = 0; i < 3; ++i) w.bits(0, 3);
        w.bits(0, 32);
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }), "invalid code lengths set"));
    }
    SUBCASE("too many length codes") {
        BitWriter w;
        w.bits(1, 1);
        w.bits(2, 2);
        w.bits(30, 5);  // 287 literal/length codes
        w.bits(0, 5);
        w.bits(0, 4);
        CHECK(contains(error_of([&] { gunzip_bytes(gzip_member(w.bytes, Bytes())); }),
                       "too many length or distance symbols"));
    }
    SUBCASE("trailing garbage") {
        const Bytes bad = concat(to_bytes(kGzFixed), to_bytes(std::string("junk")));
        CHECK(contains(error_of([&] { gunzip_bytes(bad); }), "4 bytes of trailing data"));
    }
    SUBCASE("not gzip at all") {
        CHECK(contains(error_of([&] { gunzip_bytes(to_bytes(std::string("hello"))); }), "not a gzip file"));
    }
}

TEST_CASE("gunzip refuses output beyond max_output (gzip bomb)") {
    const Bytes bomb = to_bytes(kGzZeros100k);  // 132 bytes -> 100000 zeros
    const std::string msg = error_of([&] { gunzip_bytes(bomb, 1000); });
    CHECK(contains(msg, "larger than"));
    CHECK(contains(msg, "1000 bytes"));
    CHECK(gunzip_bytes(bomb, 100000).size() == 100000);
    CHECK(contains(error_of([&] { gunzip_bytes(bomb, 99999); }), "larger than"));
    CHECK(contains(error_of([&] { gunzip_bytes(gzip_stored(Bytes(100, 1)), 99); }), "larger than"));
}

// ============================================================================ IDX

namespace {

Bytes tiny_images() { return idx_file(0x803, {2, 3, 4}, tiny_pixels()); }
Bytes tiny_labels() { return idx_file(0x801, {5}, {3, 1, 4, 1, 5}); }

}  // namespace

TEST_CASE("IDX images and labels parse from memory") {
    const Bytes img = tiny_images();
    const aep::IdxImages images = aep::parse_idx_images(img.data(), img.size(), "imgs");
    CHECK(images.count == 2);
    CHECK(images.rows == 3);
    CHECK(images.cols == 4);
    CHECK(images.pixels == tiny_pixels());

    const Bytes lab = tiny_labels();
    const aep::IdxLabels labels = aep::parse_idx_labels(lab.data(), lab.size(), "labs");
    CHECK(labels.count == 5);
    CHECK(labels.labels == Bytes{3, 1, 4, 1, 5});

    const Bytes none = idx_file(0x803, {0, 28, 28}, {});
    CHECK(aep::parse_idx_images(none.data(), none.size(), "empty").pixels.empty());
}

TEST_CASE("IDX parses gzipped input") {
    const Bytes gz = to_bytes(kGzIdxImages);
    const aep::IdxImages images = aep::parse_idx_images(gz.data(), gz.size(), "imgs.gz");
    CHECK(images.count == 2);
    CHECK(images.rows == 3);
    CHECK(images.cols == 4);
    CHECK(images.pixels == tiny_pixels());

    const Bytes labels_gz = gzip_stored(tiny_labels());
    CHECK(aep::parse_idx_labels(labels_gz.data(), labels_gz.size(), "labs.gz").labels == Bytes{3, 1, 4, 1, 5});
}

TEST_CASE("IDX rejects malformed files with actionable messages") {
    struct Case {
        const char* what;
        bool images;
        Bytes bytes;
        std::string expected;
    };
    const Bytes px = tiny_pixels();
    const std::vector<Case> cases = {
        {"empty file", true, {}, "imgs: file is only 0 bytes"},
        {"truncated header", true, Bytes{0, 0, 8, 3, 0, 0, 0, 2, 0, 0}, "truncated header: an IDX images header needs 16 bytes, the file has 10"},
        {"truncated data", true, idx_file(0x803, {2, 3, 4}, Bytes(px.begin(), px.end() - 4)),
         "file is truncated: expected 40 bytes (16-byte header + 2 images of 3x4 pixels), got 36 (4 bytes missing)"},
        {"trailing data", true, idx_file(0x803, {2, 3, 4}, concat(px, {9})), "unexpected trailing data: expected 40 bytes"},
        {"wrong magic", true, idx_file(0x12345678, {2, 3, 4}, px), "expected magic 0x00000803, got 0x12345678 — this is not an IDX file"},
        {"float IDX", true, idx_file(0xD03, {2, 3, 4}, px), "IDX data type 0x0d (float32) — only unsigned-byte IDX files are supported"},
        {"labels given to image parser", true, tiny_labels(), "expected rank 3 (images), got rank 1 — is this a labels file?"},
        {"images given to label parser", false, tiny_images(), "expected rank 1 (labels), got rank 3 — is this an images file?"},
        {"rank 2", true, idx_file(0x802, {2, 3}, {}), "expected rank 3 (images), got rank 2"},
        {"zero rows", true, idx_file(0x803, {2, 0, 4}, {}), "image size is 0x4; rows and columns must be nonzero"},
        {"zero cols", true, idx_file(0x803, {2, 4, 0}, {}), "rows and columns must be nonzero"},
        {"huge image", true, idx_file(0x803, {1, 5000, 28}, {}), "image size 5000x28 exceeds the limit of 4096x4096"},
        {"2^32-1 images in 16 bytes", true, idx_file(0x803, {0xFFFFFFFFu, 1, 1}, {}),
         "header claims 4294967295 images, more than the limit of 10000000"},
        {"10M 4096x4096 images in 16 bytes", true, idx_file(0x803, {10000000, 4096, 4096}, {}),
         "expected 167772160000016 bytes"},
        {"2^32-1 labels", false, idx_file(0x801, {0xFFFFFFFFu}, {}), "header claims 4294967295 labels"},
        {"truncated labels", false, idx_file(0x801, {5}, {1, 2}), "expected 13 bytes (8-byte header + 5 one-byte labels), got 10"},
        {"gzipped twice", true, gzip_stored(gzip_stored(tiny_images())), "was it gzipped twice?"},
        {"truncated gzip", true, drop_last(to_bytes(kGzIdxImages), 3), "gzip data is truncated"},
        {"gzip with truncated IDX", true, gzip_stored(drop_last(tiny_images(), 1)),
         "imgs (after gunzip): file is truncated"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        const std::string msg = error_of([&] {
            if (c.images)
                aep::parse_idx_images(c.bytes.data(), c.bytes.size(), "imgs");
            else
                aep::parse_idx_labels(c.bytes.data(), c.bytes.size(), "labs");
        });
        INFO("message: " << msg);
        CHECK(contains(msg, c.expected));
        CHECK(contains(msg, c.images ? "imgs" : "labs"));
    }
}

TEST_CASE("IDX files are read from disk, falling back to .gz") {
    const std::string base = "test_io_tmp-images-idx3-ubyte";
    const std::string gz_path = base + ".gz";
    const Bytes gz = to_bytes(kGzIdxImages);
    std::FILE* f = std::fopen(gz_path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(gz.data(), 1, gz.size(), f) == gz.size());
    std::fclose(f);

    CHECK(aep::read_file(gz_path) == gz);
    CHECK(aep::read_idx_images(base).pixels == tiny_pixels());
    CHECK(aep::read_idx_images(gz_path).count == 2);
    const std::string msg = error_of([&] { aep::read_idx_labels(base); });
    CHECK(contains(msg, gz_path + " (after gunzip): expected rank 1 (labels)"));
    std::remove(gz_path.c_str());

    const std::string missing = error_of([&] { aep::read_idx_images(base); });
    CHECK(contains(missing, base + ": cannot open file"));
    CHECK(contains(missing, gz_path + " does not exist either"));
    CHECK(contains(error_of([&] { aep::read_file("no/such/dir/file"); }), "no/such/dir/file: cannot open file"));
}

// ============================================================================ safetensors

namespace {

Bytes st_file(const std::string& header, const Bytes& data) {
    Bytes b;
    put_le(b, header.size(), 8);
    return concat(concat(b, to_bytes(header)), data);
}

aep::SafeTensors sample_tensors() {
    aep::SafeTensors st;
    const float w[6] = {0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 65504.0f};
    const float b[3] = {1.0f, 2.0f, 3.0f};
    const int64_t steps = 1234567890123LL;
    st.add_f32("encoder.weight", {2, 3}, w);
    st.add_f32("encoder.bias", {3}, b);
    st.add_i64("bn.num_batches_tracked", {}, &steps);
    st.add_f32("empty", {0, 4}, nullptr);
    st.metadata["format"] = "pt";
    st.metadata["note"] = "ünïcødé";
    return st;
}

void check_same(const aep::SafeTensors& a, const aep::SafeTensors& b) {
    CHECK(a.metadata == b.metadata);
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        INFO("tensor " << a.tensors[i].name);
        CHECK(a.tensors[i].name == b.tensors[i].name);
        CHECK(a.tensors[i].dtype == b.tensors[i].dtype);
        CHECK(a.tensors[i].shape == b.tensors[i].shape);
        CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
    }
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, data and metadata") {
    const aep::SafeTensors st = sample_tensors();
    const Bytes bytes = aep::serialize_safetensors(st);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[size_t(i)];
    CHECK(header_len % 8 == 0);
    CHECK(bytes[8] == '{');

    const aep::SafeTensors back = aep::parse_safetensors(bytes.data(), bytes.size(), "rt");
    check_same(st, back);
    CHECK(aep::serialize_safetensors(back) == bytes);

    const aep::StTensor* w = back.find("encoder.weight");
    REQUIRE(w != nullptr);
    CHECK(w->numel() == 6);
    CHECK(w->as_f32() == std::vector<float>{0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 65504.0f});
    const aep::StTensor* n = back.find("bn.num_batches_tracked");
    REQUIRE(n != nullptr);
    CHECK(n->shape.empty());
    CHECK(n->numel() == 1);
    CHECK(n->as_i64() == std::vector<int64_t>{1234567890123LL});
    CHECK(back.find("empty")->numel() == 0);
    CHECK(back.find("missing") == nullptr);
    CHECK(contains(error_of([&] { n->as_f32(); }), "tensor 'bn.num_batches_tracked': dtype is I64, expected F32"));
}

TEST_CASE("safetensors add_* validates its arguments") {
    aep::SafeTensors st;
    const float x[2] = {1, 2};
    st.add_f32("x", {2}, x);
    CHECK(contains(error_of([&] { st.add_f32("x", {2}, x); }), "duplicate tensor name 'x'"));
    CHECK(contains(error_of([&] { st.add_f32("__metadata__", {2}, x); }), "reserved"));
    CHECK(contains(error_of([&] { st.add_f32("neg", {-1}, x); }), "negative dimension"));
    CHECK(contains(error_of([&] { st.add_f32("null", {2}, nullptr); }), "data is null"));
    CHECK(contains(error_of([&] { st.add_f32("big", {int64_t(1) << 62, 8}, x); }), "too large"));
    CHECK(st.tensors.size() == 1);
}

TEST_CASE("safetensors parses a file laid out exactly like the reference implementation writes it") {
    // safetensors (Rust, used by the Python package) writes __metadata__ first, then tensors sorted by dtype
    // alignment and name with dtype/shape/data_offsets in that order, compact JSON padded with spaces to 8 bytes.
    const std::string header =
        R"({"__metadata__":{"format":"pt"},"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"
        "      ";
    REQUIRE(header.size() == 144);
    const Bytes file = concat(concat({144, 0, 0, 0, 0, 0, 0, 0}, to_bytes(header)),
                              {42, 0, 0, 0, 0, 0, 0, 0,                   // n = 42
                               0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0});  // a = {1.0, -2.5}
    const aep::SafeTensors st = aep::parse_safetensors(file.data(), file.size(), "fixture.safetensors");
    CHECK(st.metadata == std::map<std::string, std::string>{{"format", "pt"}});
    REQUIRE(st.tensors.size() == 2);
    CHECK(st.tensors[0].name == "n");
    CHECK(st.tensors[0].dtype == aep::DType::I64);
    CHECK(st.tensors[0].as_i64() == std::vector<int64_t>{42});
    CHECK(st.tensors[1].name == "a");
    CHECK(st.tensors[1].shape == std::vector<int64_t>{2});
    CHECK(st.tensors[1].as_f32() == std::vector<float>{1.0f, -2.5f});
    // Our writer produces the same bytes for the same tensors in the same order.
    CHECK(aep::serialize_safetensors(st) == file);
}

TEST_CASE("safetensors rejects malformed files with actionable messages") {
    struct Case {
        const char* what;
        Bytes bytes;
        std::string expected;
    };
    const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
    const Bytes four(4, 0), eight(8, 0), twelve(12, 0);
    Bytes length_too_big = st_file("{}", {});
    length_too_big[0] = 100;
    Bytes length_huge = st_file("{}", {});
    length_huge[0] = 0;
    length_huge[3] = 0x10;  // 2^28 > 100 MB
    const std::vector<Case> cases = {
        {"too short", Bytes{1, 2, 3, 4}, "m.st: file is only 4 bytes"},
        {"header length beyond file", length_too_big, "header length 100 runs past the end of the file (only 2 bytes follow"},
        {"header length over 100 MB", length_huge, "header length 268435456 exceeds the 100000000-byte limit"},
        {"invalid JSON", st_file(R"({"a": )", {}), "header is not valid JSON"},
        {"header not an object", st_file("[1, 2]", {}), "header must be a JSON object, got array"},
        {"entry not an object", st_file(R"({"a": 5})", {}), "tensor 'a': header entry must be an object"},
        {"missing dtype", st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", four), "tensor 'a': missing \"dtype\""},
        {"missing shape", st_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", four), "tensor 'a': missing \"shape\""},
        {"extra key", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four), "tensor 'a': unexpected key 'x'"},
        {"unsupported dtype F16", st_file(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", four),
         "tensor 'a': dtype F16 is not supported (expected F32 or I64)"},
        {"dtype not a string", st_file(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", four), "dtype must be a string"},
        {"negative shape", st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four), "tensor 'a': shape[0] is negative (-1)"},
        {"fractional shape", st_file(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four), "shape[0] must be a non-negative integer"},
        {"shape not an array", st_file(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", four), "shape must be an array"},
        {"rank 9", st_file(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", four), "rank 9"},
        {"shape overflow", st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", {}), "too large to address"},
        {"offsets out of range", st_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight), "data_offsets [0, 16] lie outside the 8-byte data buffer"},
        {"offsets reversed", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", eight), "data_offsets [8, 4] are reversed"},
        {"offsets not a pair", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four), "data_offsets must be an array [begin, end]"},
        {"size mismatch", st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
         "tensor 'a': shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] span 8"},
        {"I64 size mismatch", st_file(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}})", four), "shape [1] of I64 needs 8 bytes"},
        {"overlapping tensors", st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", twelve),
         "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
        {"hole between tensors", st_file("{" + a4 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", twelve),
         "hole of 4 unused bytes between tensors 'a' and 'b'"},
        {"hole at start", st_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "hole of 4 unused bytes before the first tensor 'b'"},
        {"unused tail", st_file("{" + a4 + "}", eight), "4 unused bytes after the last tensor"},
        {"data without tensors", st_file("{}", four), "4 unused bytes after the last tensor"},
        {"duplicate tensor names", st_file("{" + a4 + "," + a4 + "}", four), "duplicate tensor name 'a'"},
        {"duplicate key in entry", st_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four), "duplicate key 'dtype'"},
        {"metadata not an object", st_file(R"({"__metadata__":"x"})", {}), "__metadata__ must be an object mapping strings to strings"},
        {"metadata value not a string", st_file(R"({"__metadata__":{"epoch":3}})", {}), "__metadata__ value for key 'epoch' is not a string"},
        {"invalid UTF-8", st_file("{\"\xff\":1}", {}), "header is not valid UTF-8 (bad byte at header offset 2)"},
        {"overlong UTF-8", st_file("{\"\xc0\xaf\":1}", {}), "header is not valid UTF-8"},
        {"UTF-8 surrogate", st_file("{\"\xed\xa0\x80\":1}", {}), "header is not valid UTF-8"},
        {"truncated UTF-8", st_file("{\"\xe2\x82", {}), "header is not valid UTF-8"},
        {"deep nesting", st_file(R"({"__metadata__":[[[[[[[[[[1]]]]]]]]]]})", {}), "nested more than 8 levels"},
        {"truncated data", drop_last(st_file("{" + a4 + "}", four), 1),
         "data_offsets [0, 4] lie outside the 3-byte data buffer"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        const std::string msg = error_of([&] { aep::parse_safetensors(c.bytes.data(), c.bytes.size(), "m.st"); });
        INFO("message: " << msg);
        CHECK(contains(msg, c.expected));
        CHECK(msg.rfind("m.st: ", 0) == 0);
    }
}

TEST_CASE("safetensors accepts edge cases the format allows") {
    // Zero-size tensors may share an offset; an empty file with only "{}" is valid; padding spaces are fine.
    const std::string header = R"({"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    const Bytes file = st_file(header + "   ", Bytes(4, 0));
    const aep::SafeTensors st = aep::parse_safetensors(file.data(), file.size(), "edge");
    REQUIRE(st.tensors.size() == 2);
    CHECK(st.tensors[0].name == "z");
    CHECK(st.tensors[1].name == "a");
    const Bytes empty = st_file("{}", {});
    CHECK(aep::parse_safetensors(empty.data(), empty.size(), "empty").tensors.empty());
}

TEST_CASE("safetensors survives single-byte corruption anywhere") {
    const Bytes good = aep::serialize_safetensors(sample_tensors());
    for (size_t i = 0; i < good.size(); ++i) {
        for (uint8_t mask : {uint8_t(0x01), uint8_t(0x20), uint8_t(0x80)}) {
            Bytes bad = good;
            bad[i] ^= mask;
            error_of([&] { aep::parse_safetensors(bad.data(), bad.size(), "fuzz"); });
        }
    }
    for (size_t len = 0; len < good.size(); ++len)
        CHECK(error_of([&] { aep::parse_safetensors(good.data(), len, "cut"); }) != "<no exception>");
}

TEST_CASE("safetensors write/read through a file") {
    const std::string path = "test_io_tmp.safetensors";
    const aep::SafeTensors st = sample_tensors();
    aep::write_safetensors(path, st);
    std::FILE* leftover = std::fopen((path + ".tmp").c_str(), "rb");
    CHECK(leftover == nullptr);
    if (leftover != nullptr) std::fclose(leftover);
    check_same(st, aep::read_safetensors(path));

    aep::SafeTensors smaller;
    const float one = 1.0f;
    smaller.add_f32("only", {1}, &one);
    aep::write_safetensors(path, smaller);  // replaces the old file
    check_same(smaller, aep::read_safetensors(path));
    std::remove(path.c_str());

    CHECK(contains(error_of([&] { aep::write_safetensors("no/such/dir/x.safetensors", st); }),
                   "no/such/dir/x.safetensors.tmp: cannot open for writing"));
    const std::string msg = error_of([&] { aep::read_safetensors(path); });
    INFO("message: " << msg);
    CHECK(contains(msg, path + ": cannot open file"));
}

TEST_CASE("append_mnist: the rest of MNIST inflated straight into the data; a bad file changes nothing") {
  using namespace aep::test;
  // Two parts of a small labelled set: 5 + 7 training images, 3 + 4 test images.
  auto images = [](uint32_t n, uint8_t seed) {
    Bytes px(n * 784);
    for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 7 + seed);
    return idx_file(0x803, {n, 28, 28}, px);
  };
  auto labels = [](uint32_t n, uint8_t seed) {
    Bytes l(n);
    for (uint32_t i = 0; i < n; ++i) l[i] = uint8_t((i + seed) % 10);
    return idx_file(0x801, {n}, l);
  };
  const Bytes first[4] = {gzip_stored(images(5, 1)), gzip_stored(labels(5, 1)), images(3, 2), labels(3, 2)};
  const Bytes rest[4] = {gzip_stored(images(7, 3)), gzip_stored(labels(7, 3)), gzip_stored(images(4, 4)), labels(4, 4)};
  auto files = [](const Bytes (&b)[4]) {
    return aep::MnistFiles{{b[0].data(), b[1].data(), b[2].data(), b[3].data()}, {b[0].size(), b[1].size(), b[2].size(), b[3].size()}};
  };
  aep::Dataset train, test;
  aep::parse_mnist(files(first), train, test);
  REQUIRE(train.count == 5);
  const aep::Dataset train0 = train, test0 = test;
  auto unchanged = [&] {
    CHECK(train.count == 5);
    CHECK(train.pixels == train0.pixels);
    CHECK(train.labels == train0.labels);
    CHECK(test.count == 3);
    CHECK(test.pixels == test0.pixels);
    CHECK(test.labels == test0.labels);
  };
  SUBCASE("bad files") {
    Bytes bad[4] = {rest[0], rest[1], rest[2], rest[3]};
    SUBCASE("the test labels truncated (the last file: the training set was appended already)") {
      bad[3].resize(bad[3].size() - 1);
      CHECK_THROWS_WITH(aep::append_mnist(files(bad), train, test), doctest::Contains("truncated"));
    }
    SUBCASE("a corrupt gzip") {
      bad[2][bad[2].size() - 9] ^= 0xff;  // in the data: the CRC no longer matches
      CHECK_THROWS(aep::append_mnist(files(bad), train, test));
    }
    SUBCASE("more labels than images") {
      bad[1] = gzip_stored(labels(8, 3));
      CHECK_THROWS_WITH(aep::append_mnist(files(bad), train, test), doctest::Contains("holds 8 labels"));
    }
    SUBCASE("images of another size") {
      bad[0] = idx_file(0x803, {2, 14, 14}, Bytes(2 * 196, 9));
      CHECK_THROWS_WITH(aep::append_mnist(files(bad), train, test), doctest::Contains("14x14"));
    }
    unchanged();
  }
  SUBCASE("good files: the same as the whole files parsed at once") {
    aep::append_mnist(files(rest), train, test);
    auto whole = [](const Bytes& a, const Bytes& b, bool is_images) {  // one IDX file of both parts
      const size_t head = is_images ? 16 : 8;
      auto raw = [](const Bytes& x) { return aep::is_gzip(x.data(), x.size()) ? aep::gunzip(x.data(), x.size(), "t") : x; };
      const Bytes raw_a = raw(a), raw_b = raw(b);
      Bytes w(raw_a.begin(), raw_a.end());
      w.insert(w.end(), raw_b.begin() + std::ptrdiff_t(head), raw_b.end());
      const uint32_t n = uint32_t((w.size() - head) / (is_images ? 784 : 1));
      w[4] = uint8_t(n >> 24), w[5] = uint8_t(n >> 16), w[6] = uint8_t(n >> 8), w[7] = uint8_t(n);
      return w;
    };
    const Bytes all[4] = {whole(first[0], rest[0], true), whole(first[1], rest[1], false), whole(first[2], rest[2], true),
                          whole(first[3], rest[3], false)};
    aep::Dataset train1, test1;
    aep::parse_mnist(files(all), train1, test1);
    CHECK(train.count == 12);
    CHECK(test.count == 7);
    CHECK(train.pixels == train1.pixels);
    CHECK(train.labels == train1.labels);
    CHECK(test.pixels == test1.pixels);
    CHECK(test.labels == test1.labels);
  }
}
