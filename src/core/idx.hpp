// Reader for the IDX format used by MNIST-style datasets (raw or gzipped), validating untrusted input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aep {

struct IdxImages {
    uint32_t count = 0, rows = 0, cols = 0;
    std::vector<uint8_t> pixels;  // [count*rows*cols], row-major
};

struct IdxLabels {
    uint32_t count = 0;
    std::vector<uint8_t> labels;
};

// Parse from memory. `name` is used in error messages. Accepts raw or gzip (detected by magic; inflated with
// gunzip, capped).
IdxImages parse_idx_images(const uint8_t* data, size_t size, const std::string& name);
IdxLabels parse_idx_labels(const uint8_t* data, size_t size, const std::string& name);

// The same, appended to `into` (a dataset's pixels or labels) after what it holds, inflated straight into it: a large
// .gz file is never twice in memory. The result has the counts and sizes, no data. On error `into` is unchanged.
IdxImages append_idx_images(std::vector<uint8_t>& into, const uint8_t* data, size_t size, const std::string& name);
IdxLabels append_idx_labels(std::vector<uint8_t>& into, const uint8_t* data, size_t size, const std::string& name);

// Read a file (raw or .gz) and parse; error messages name the path. If `path` does not exist but
// `path + ".gz"` does, read that.
IdxImages read_idx_images(const std::string& path);
IdxLabels read_idx_labels(const std::string& path);

// Whole file into memory; throws "<path>: cannot open file (<reason>)" or "<path>: read error (<reason>)".
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace aep
