// `aep bench`: times full training steps (forward + backward + Adam on MNIST batches) and the GEMM products
// of model A, each as the median of several timed runs after a warm-up.
#include "bench/bench.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/gemm.hpp"
#include "core/parallel.hpp"
#include "core/run.hpp"
#include "core/umap.hpp"

namespace aep {

namespace {

using Clock = std::chrono::steady_clock;

#ifdef __EMSCRIPTEN__
constexpr const char* kSystem = "aep wasm";
#else
constexpr const char* kSystem = "aep native";
#endif

// The system column: "aep native", or "aep native fast" in fast mode (bench/table.js keeps them apart).
std::string system_name() { return fast_mode() ? std::string(kSystem) + " fast" : kSystem; }

// The arch column: the SIMD set, the GEMM path in fast mode, and the thread count when above 1.
std::string arch() {
  size_t t = thread_count();
  std::string s = simd_arch_name();
  if (fast_mode()) s += std::string(", ") + gemm_path_name(gemm_path());
  return s + (t > 1 ? ", " + std::to_string(t) + " threads" : "");
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Timing {
  double median = 0, spread = 0;
};

// Calls `work` (which does `units` of work per call) for `warmup` seconds, then `runs` times for `seconds` each;
// returns units per second, median over the runs.
Timing measure(const BenchOptions& o, double units, const std::function<void()>& work) {
  for (auto t0 = Clock::now(); seconds_since(t0) < o.warmup;) work();
  std::vector<double> rates;
  for (int r = 0; r < o.runs; ++r) {
    size_t calls = 0;
    auto t0 = Clock::now();
    double el = 0;
    do {
      work();
      ++calls;
      el = seconds_since(t0);
    } while (el < o.seconds);
    rates.push_back(double(calls) * units / el);
  }
  std::sort(rates.begin(), rates.end());
  Timing t;
  t.median = rates.size() % 2 ? rates[rates.size() / 2] : 0.5 * (rates[rates.size() / 2 - 1] + rates[rates.size() / 2]);
  t.spread = (rates.back() - rates.front()) / t.median;
  return t;
}

// Multiply-add work of one sample's forward pass through the dense and convolution layers; a training step costs
// about three times this (forward, input gradient, weight gradient).
double forward_flops_per_sample(Model& m) {
  double f = 0;
  Shape shape = m.input_shape(1);
  auto walk = [&](Sequential& s, Shape in) {
    for (size_t i = 0; i < s.size(); ++i) {
      Layer* l = s.layers[i].get();
      Shape out = l->output_shape(in);
      if (auto* lin = dynamic_cast<Linear*>(l)) f += 2.0 * double(lin->in_features) * double(lin->out_features);
      if (auto* c = dynamic_cast<Conv2d*>(l))
        f += 2.0 * double(c->in_channels * c->kernel_size * c->kernel_size) * double(per_sample(out));
      if (auto* t = dynamic_cast<ConvTranspose2d*>(l))
        f += 2.0 * double(t->out_channels * t->kernel_size * t->kernel_size) * double(per_sample(in));
      in = out;
    }
    return in;
  };
  Shape code = walk(m.encoder, shape);
  if (m.is_vae()) {
    walk(m.logvar, code);
    code = walk(m.mu, code);
  }
  walk(m.decoder, code);
  return f;
}

struct Printer {
  std::FILE* out;
  void header() {
    std::fprintf(out, "%-15s %-22s %-34s %12s %9s %7s\n", "system", "arch", "workload", "samples/s", "GFLOP/s",
                 "spread");
  }
  void row(const BenchRecord& r) {
    char sps[32] = "-", gf[32] = "-";
    if (r.samples_per_s > 0) std::snprintf(sps, sizeof sps, "%.0f", r.samples_per_s);
    if (r.gflops > 0) std::snprintf(gf, sizeof gf, "%.1f", r.gflops);
    std::fprintf(out, "%-15s %-22s %-34s %12s %9s %6.0f%%\n", r.system.c_str(), r.arch.c_str(), r.workload.c_str(),
                 sps, gf, 100 * r.spread);
    std::fflush(out);
  }
};

BenchRecord train_workload(const BenchOptions& o, const std::string& workload, const Preset& preset_in,
                           const Dataset& data) {
  Preset p = preset_in;
  p.training.batch_size = 64;
  Run run(p, 1);  // as `aep train --seed 1` and the page
  run.set_data(data);
  Timing t = measure(o, 64.0, [&] { run.step(); });
  BenchRecord r{system_name(), arch(), workload, t.median, 0, t.spread};
  r.gflops = 3.0 * forward_flops_per_sample(*run.model) * t.median * 1e-9;
  return r;
}

struct GemmCase {
  const char* name;
  bool ta, tb, tc;  // tc: gemm_transposed_c
  size_t M, N, K;
  float beta;
};

BenchRecord gemm_workload(const BenchOptions& o, const GemmCase& c) {
  std::vector<float> A(c.M * c.K), B(c.K * c.N), C(c.M * c.N, 0.f);
  Rng rng(5);
  for (float& v : A) v = rng.uniform(-1, 1);
  for (float& v : B) v = rng.uniform(-1, 1);
  size_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  Timing t = measure(o, 2.0 * double(c.M) * double(c.N) * double(c.K) * 1e-9, [&] {
    if (c.tc)
      gemm_transposed_c(c.ta, c.tb, c.M, c.N, c.K, 1.f, A.data(), lda, B.data(), ldb, c.beta, C.data(), c.M);
    else
      gemm(c.ta, c.tb, c.M, c.N, c.K, 1.f, A.data(), lda, B.data(), ldb, c.beta, C.data(), c.N);
  });
  return {system_name(), arch(), c.name, 0, t.median, t.spread};
}

// UMAP of n points in d dimensions (ten Gaussian clusters, like a model's codes) to 2-D, start to finish; a row
// of points per second, then the seconds of one run split by stage.
BenchRecord umap_workload(const BenchOptions& o, size_t n, size_t d, std::string& stage_line) {
  Rng rng(9);
  std::vector<float> centres(10 * d), x(n * d);
  for (float& c : centres) c = rng.normal();
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) x[i * d + j] = centres[(i % 10) * d + j] + rng.normal();
  Umap u;
  Timing t = measure(o, double(n), [&] {
    u.begin(x.data(), n, d);
    while (!u.step(1e9)) {
    }
  });
  BenchRecord r{system_name(), arch(), "umap " + std::to_string(n) + " x " + std::to_string(d) + " -> 2", t.median,
                0, t.spread};
  std::vector<std::pair<std::string, double>> stages;
  u.begin(x.data(), n, d);
  for (bool done = false; !done;) {
    std::string stage = u.stage_name();
    auto t0 = Clock::now();
    done = u.step(0);
    if (stages.empty() || stages.back().first != stage) stages.push_back({stage, 0});
    stages.back().second += seconds_since(t0);
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%-10s one run %.3f s, by stage:", "", double(n) / t.median);
  stage_line = buf;
  for (const auto& s : stages) {
    std::snprintf(buf, sizeof buf, " %s %.3f", s.first.c_str(), s.second);
    stage_line += buf;
  }
  return r;
}

bool selected(const BenchOptions& o, const std::string& group) {
  return o.only.empty() || std::find(o.only.begin(), o.only.end(), group) != o.only.end();
}

}  // namespace

std::vector<BenchRecord> run_bench(const BenchOptions& o, std::FILE* out) {
  if (o.runs < 1 || o.seconds <= 0) throw std::runtime_error("bench: --runs must be >= 1 and --seconds > 0");
  std::vector<BenchRecord> records;
  Printer pr{out};
  pr.header();
  auto add = [&](BenchRecord r) {
    pr.row(r);
    records.push_back(std::move(r));
  };

  if (selected(o, "gemm")) {
    // Model A's 784x256 layers at batch 64, called as Linear calls them: y^T = W x^T written transposed into the
    // [batch, features] tensor, dx = dy W (gemm picks the operand order), dW += dy^T x accumulated.
    const GemmCase cases[] = {
        {"gemm W*x^T 256x64x784 (enc fwd)", false, true, true, 256, 64, 784, 0.f},
        {"gemm dy*W 64x784x256 (enc dx)", false, false, false, 64, 784, 256, 0.f},
        {"gemm dy^T*x 256x784x64 (enc dW)", true, false, false, 256, 784, 64, 1.f},
        {"gemm W*x^T 784x64x256 (dec fwd)", false, true, true, 784, 64, 256, 0.f},
        {"gemm dy*W 64x256x784 (dec dx)", false, false, false, 64, 256, 784, 0.f},
        {"gemm dy^T*x 784x256x64 (dec dW)", true, false, false, 784, 256, 64, 1.f},
    };
    for (const GemmCase& c : cases) add(gemm_workload(o, c));
    Timing peak = measure(o, gemm_micro_kernel_flops() * 1e-9, [] { gemm_micro_kernel_run(); });
    add({system_name(), arch(), "gemm micro-kernel peak (L1)", 0, peak.median, peak.spread});
  }

  if (selected(o, "umap")) {
    // The Latent panel's case: 2000 test codes of the 32x7x7 conv preset (lesson 000), and smaller codes.
    for (size_t d : {1568, 196, 32}) {
      std::string stage_line;
      add(umap_workload(o, 2000, d, stage_line));
      std::fprintf(out, "%s\n", stage_line.c_str());
    }
  }

  const bool want_a = selected(o, "A"), want_b = selected(o, "B");
  bool want_presets = selected(o, "presets");
  std::vector<std::string> named;
  for (const std::string& name : list_presets())
    if (want_presets || std::find(o.only.begin(), o.only.end(), name) != o.only.end()) named.push_back(name);
  if (!want_a && !want_b && named.empty()) return records;

  Dataset data = load_mnist(o.data_dir.empty() ? default_mnist_dir() : o.data_dir, true);
  if (want_a) {
    std::string path = o.model_a.empty() ? assets_dir() + "/../bench/model-a.json" : o.model_a;
    add(train_workload(o, "train A (mlp 784-256-32-256-784)", load_preset(path), data));
  }
  if (want_b) add(train_workload(o, "train B (preset conv)", load_preset("conv"), data));
  for (const std::string& name : named) add(train_workload(o, "train preset " + name, load_preset(name), data));
  return records;
}

void write_bench_json(const std::string& path, const std::vector<BenchRecord>& records) {
  nlohmann::json j = nlohmann::json::array();
  for (const BenchRecord& r : records) {
    nlohmann::json e = {{"system", r.system}, {"arch", r.arch}, {"workload", r.workload}, {"spread", r.spread}};
    if (r.samples_per_s > 0) e["samples_per_s"] = r.samples_per_s;
    if (r.gflops > 0) e["gflops"] = r.gflops;
    j.push_back(e);
  }
  std::ofstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open for writing");
  f << nlohmann::json{{"records", j}}.dump(1) << "\n";
  if (!f) throw std::runtime_error(path + ": write failed");
}

}  // namespace aep
