// Reading gzip files (RFC 1952) with zlib's inflate: the system library natively, zlib compiled from Debian's
// source package in the WebAssembly builds. Adds what a loader of untrusted files needs on top of zlib.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aep {

// True when the buffer starts with the gzip magic 1f 8b.
bool is_gzip(const uint8_t* data, size_t size);

// Decompresses a whole .gz buffer (one or more members concatenated, as gzip(1) writes for `cat a.gz b.gz`).
// zlib checks each member's header flags, header CRC, CRC-32 and ISIZE. Throws std::runtime_error("<name>: ...")
// on corruption, truncation or trailing data; refuses output larger than max_output bytes (gzip bombs) before
// allocating beyond it.
std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, const std::string& name,
                            size_t max_output = size_t(1) << 30);

// The same, appended to `out` after what it holds: a large file decoded straight into its destination (e.g. more
// images after a dataset's) is never twice in memory. On error `out` is as it was.
void gunzip_append(const uint8_t* data, size_t size, const std::string& name, std::vector<uint8_t>& out,
                   size_t max_output = size_t(1) << 30);

}  // namespace aep
