// Byte builders for the parser tests (test_io, test_malformed): IDX files, gzip members and raw DEFLATE bit streams
// written by hand, so every input, valid or broken, is made in the test itself.
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace aep::test {

using Bytes = std::vector<uint8_t>;

inline Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline void put_le(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i, v >>= 8) b.push_back(uint8_t(v & 0xffu));
}

inline void put_be32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(uint8_t((v >> shift) & 0xffu));
}

// An IDX file: big-endian magic and dimensions, then the payload.
inline Bytes idx_file(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes b;
  put_be32(b, magic);
  for (uint32_t d : dims) put_be32(b, d);
  return concat(b, payload);
}

// DEFLATE's LSB-first bit stream, for cases no real encoder produces.
struct BitWriter {
  Bytes bytes;
  int nbits = 0;
  void bit(uint32_t b) {
    if (nbits % 8 == 0) bytes.push_back(0);
    bytes.back() = uint8_t(bytes.back() | ((b & 1u) << (nbits % 8)));
    ++nbits;
  }
  void bits(uint32_t v, int n) {  // header fields and extra bits: LSB first
    for (int i = 0; i < n; ++i) bit(v >> i);
  }
  void code(uint32_t c, int n) {  // Huffman codes: MSB first (RFC 1951 section 3.1.1)
    for (int i = n - 1; i >= 0; --i) bit(c >> i);
  }
};

// A gzip member (10-byte header, no optional fields) around a raw deflate stream; the trailer describes `content`.
inline Bytes gzip_member(const Bytes& deflate, const Bytes& content) {
  Bytes out = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff};
  out.insert(out.end(), deflate.begin(), deflate.end());
  put_le(out, crc32_z(0, content.data(), content.size()), 4);
  put_le(out, content.size() & 0xffffffffu, 4);
  return out;
}

// gzip in stored blocks of at most 65535 bytes, so tests can wrap any bytes (e.g. IDX files) without a compressor.
inline Bytes gzip_stored(const Bytes& content) {
  Bytes deflate;
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, content.size() - pos);
    deflate.push_back(pos + len == content.size() ? 1 : 0);  // BFINAL, BTYPE=00, padding to the byte boundary
    put_le(deflate, len, 2);
    put_le(deflate, ~len & 0xffffu, 2);
    deflate.insert(deflate.end(), content.begin() + std::ptrdiff_t(pos), content.begin() + std::ptrdiff_t(pos + len));
    pos += len;
  } while (pos < content.size());
  return gzip_member(deflate, content);
}

}  // namespace aep::test
