// The speed benchmark behind `aep bench` (native, and the same code in wasm under node): full training steps
// per model and GEMM kernels alone. A program that prints numbers, not a test with time limits.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

namespace aep {

struct BenchOptions {
  double seconds = 1.0;  // length of one timed run
  int runs = 5;          // timed runs per workload; the median is reported
  double warmup = 0.5;   // untimed seconds before the runs
  std::vector<std::string> only;  // workload groups: "A", "B", "gemm", "umap", "presets", or a preset name; empty: all
  std::string model_a;   // preset file of model A (default: bench/model-a.json of the source tree)
  std::string data_dir;  // MNIST folder (default: the fetched MNIST)
};

struct BenchRecord {
  std::string system;    // "aep native" or "aep wasm"
  std::string arch;      // SIMD instruction set the engine was compiled for
  std::string workload;  // "train A", "train B", "train preset conv", "gemm fwd 64x256x784", ...
  double samples_per_s = 0;  // training workloads
  double gflops = 0;         // GEMM workloads (and the training workloads' achieved rate when known)
  double spread = 0;         // (max - min) / median of the timed runs
};

// Runs the selected workloads, printing a table row as each finishes.
std::vector<BenchRecord> run_bench(const BenchOptions& o, std::FILE* out);

// One JSON document: {"records": [{"system": ..., "workload": ..., "samples_per_s": ...}, ...]}.
void write_bench_json(const std::string& path, const std::vector<BenchRecord>& records);

}  // namespace aep
