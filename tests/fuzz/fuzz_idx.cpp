// libFuzzer target: IDX images and labels (raw or gzip) must be parsed or refused with a runtime_error,
// and anything accepted must be self-consistent. Build and run with tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "core/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const aep::IdxImages im = aep::parse_idx_images(data, size, "fuzz-images");
        if (im.pixels.size() != size_t(im.count) * im.rows * im.cols || im.rows == 0 || im.cols == 0) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    try {
        const aep::IdxLabels lb = aep::parse_idx_labels(data, size, "fuzz-labels");
        if (lb.labels.size() != lb.count) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
