// libFuzzer target: aep::gunzip (zlib underneath, with our member walk, output cap and messages) against a plain
// zlib loop written here on its own (4 KB chunks, a fresh stream per member): both must accept and refuse the same
// inputs, accepted ones with the same output, and every refusal must name the file. Build and run with
// tests/fuzz/run.sh.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/gzip.hpp"

namespace {

constexpr size_t kCap = size_t(1) << 20;

// All members of a gzip stream with zlib, as gzip(1) would decode them; false on any error or past kCap.
bool zlib_gunzip(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
    size_t pos = 0;
    while (pos < size) {
        z_stream z{};
        if (inflateInit2(&z, 16 + 15) != Z_OK) return false;
        z.next_in = const_cast<Bytef*>(data + pos);
        z.avail_in = uInt(size - pos);
        int rc = Z_OK;
        uint8_t chunk[4096];
        while (rc == Z_OK) {
            z.next_out = chunk;
            z.avail_out = sizeof chunk;
            rc = inflate(&z, Z_NO_FLUSH);
            out.insert(out.end(), chunk, chunk + (sizeof chunk - z.avail_out));
            if (out.size() > kCap) rc = Z_MEM_ERROR;
            if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0)) rc = Z_DATA_ERROR;
        }
        pos = size - z.avail_in;
        inflateEnd(&z);
        if (rc != Z_STREAM_END) return false;
        if (pos < size && !aep::is_gzip(data + pos, size - pos)) return false;  // trailing garbage
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> ours;
    bool ours_ok = true;
    try {
        ours = aep::gunzip(data, size, "fuzz.gz", kCap);
    } catch (const std::runtime_error& e) {
        ours_ok = false;
        if (std::strncmp(e.what(), "fuzz.gz: ", 9) != 0) {
            std::fprintf(stderr, "error message does not name the file: %s\n", e.what());
            __builtin_trap();
        }
    }
    std::vector<uint8_t> theirs;
    const bool theirs_ok = size > 0 && zlib_gunzip(data, size, theirs);
    if (ours_ok != theirs_ok || (ours_ok && ours != theirs)) {
        std::fprintf(stderr, "gunzip disagrees with zlib: ours %s (%zu bytes), zlib %s (%zu bytes)\n",
                     ours_ok ? "ok" : "refused", ours.size(), theirs_ok ? "ok" : "refused", theirs.size());
        __builtin_trap();
    }
    return 0;
}
