// Self-contained gzip (RFC 1952) / DEFLATE (RFC 1951) decoder, so the MNIST .gz files
// can be read natively and in the browser without linking zlib.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aep {

// True when the buffer starts with the gzip magic 1f 8b.
bool is_gzip(const uint8_t* data, size_t size);

// Decompresses a whole .gz buffer (one or more members concatenated). Checks header flags (FEXTRA, FNAME,
// FCOMMENT, FHCRC), CRC32 and ISIZE of each member. Throws std::runtime_error("<name>: ...") on any
// corruption or truncation; refuses output larger than max_output bytes (gzip bombs) with a clear message.
std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, const std::string& name,
                            size_t max_output = size_t(1) << 30);

// CRC-32 as used by gzip/zlib/PNG. Pass a previous result as `crc` to continue a running checksum.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace aep
