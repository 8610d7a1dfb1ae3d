// aep: the command line of Autoencoder Playground - list presets, train on MNIST, evaluate weights, export PyTorch and
// Keras code, PCA baseline, follow a lesson headless, a VAE's beta sweep.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench.hpp"
#include "core/export.hpp"
#include "core/gemm.hpp"
#include "core/instruments.hpp"
#include "core/losses.hpp"
#include "core/metrics.hpp"
#include "core/lesson.hpp"
#include "core/parallel.hpp"
#include "core/pca.hpp"
#include "core/probe.hpp"
#include "core/run.hpp"
#include "core/sweep.hpp"
#include "core/train.hpp"
#include "core/weights.hpp"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
// Emscripten's stdio streams report themselves as terminals even when node's are pipes: ask node (in a browser
// worker there is no terminal).
static bool stderr_is_terminal() {
  return EM_ASM_INT({ return typeof process == 'object' && process.stderr && process.stderr.isTTY ? 1 : 0; }) != 0;
}
#else
static bool stderr_is_terminal() { return isatty(fileno(stderr)) != 0; }
#endif

namespace {

using namespace aep;
using Clock = std::chrono::steady_clock;

const char* kUsage =
    "usage: aep <command> [options]\n"
    "  presets                          list the presets with their parameter counts\n"
    "  train --preset NAME|FILE [--data DIR] [--epochs N | --steps N] [--batch B] [--lr X] [--seed S]\n"
    "        [--init W.safetensors] [--save W.safetensors] [--save-optimizer] [--no-shuffle] [--log FILE.csv]\n"
    "        [--test-samples N] [--threads T] [--clean] [--beta X] [--loss mse|bce|l1] [--fast]\n"
    "  eval  --preset NAME|FILE --weights W.safetensors [--data DIR] [--test-samples N] [--clean]\n"
    "        [--probe] [--probe-labels N,N...] [--probe-dims D] [--jacobian] [--foreign PATH] [--json FILE]\n"
    "        the test loss, then the instruments that apply: code sparsity, the encoder Jacobian's norm (codes of at\n"
    "        most 512 numbers, or --jacobian), a VAE's active units and KL per dimension; --probe: classifiers on\n"
    "        100 and 1000 labelled codes (or --probe-labels) vs pixels vs PCA; --foreign: the reconstruction errors\n"
    "        of the first 1000 images of PATH (an IDX images file, raw or .gz, or a folder with\n"
    "        t10k-images-idx3-ubyte, e.g. /usr/share/datasets/fashion-mnist) beside the first 1000 test digits':\n"
    "        means and a histogram, as the page's Anomaly panel shows them; --json: the values as named numbers\n"
    "  export --preset NAME|FILE --pytorch|--keras|--keras-plan [--weights W.safetensors]\n"
    "        prints a PyTorch or Keras script for the model (loading W by default), or the Keras layer plan (JSON)\n"
    "  pca   --k K [--data DIR] [--normalize 0_1|-1_1]   PCA baseline: test reconstruction MSE\n"
    "  lessons                          list the lessons\n"
    "  lesson ID|FILE [--data DIR] [--test-images N] [--fashion DIR] [--values]\n"
    "        follows a lesson headless: each step's action, then its goal's value; exits 1 unless every goal is\n"
    "        false when its step opens and holds after its action (--values: every value after each step;\n"
    "        --fashion: Fashion-MNIST for foreignError, foreignTestError and anomaly \"fashion\", default\n"
    "        /usr/share/datasets/fashion-mnist)\n"
    "  sweep --preset NAME|FILE --beta B,B... --steps N [--data DIR] [--seed S] [--lr X] [--batch B] [--json FILE]\n"
    "        a beta sweep: the VAE at each beta (1 to 5 values), trained from the same seed on the same batches, then\n"
    "        per beta the reconstruction error, the KL term (in all and per latent unit) and the active units on the\n"
    "        first 1000 test digits (the page's beta sweep)\n"
    "  bench [--only A,B,gemm,umap,presets,NAME...] [--seconds S] [--runs N] [--warmup S] [--json FILE]\n"
    "        [--model-a FILE] [--data DIR] [--threads T] [--fast]   training speed (batch 64, Adam) and GEMM GFLOP/s\n"
    "T: threads for GEMM and the optimizer (default 1; the same results for any T).\n"
    "--fast: fast mode, GEMM with fused multiply-add for this CPU (AVX2+FMA or AVX-512; AEP_GEMM_PATH=avx2+fma\n"
    "forces the AVX2 one): results differ in the last bits from the default deterministic mode, whose weights are the\n"
    "same natively and in wasm. Native builds only.\n"
    "--clean: eval on uncorrupted test digits (the number the exported scripts' --eval reproduce); train without\n"
    "corruption and with a VAE's z = mu (to compare steps with the scripts' --train-steps K --clean).\n"
    "DIR holds the MNIST IDX files (raw or .gz) under their standard names; default: the fetched MNIST.\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --key value options; flags listed in `flags` take no value.
std::map<std::string, std::string> parse_options(int argc, char** argv, int first,
                                                 const std::vector<std::string>& valued,
                                                 const std::vector<std::string>& flags) {
  std::map<std::string, std::string> o;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    bool is_flag = std::find(flags.begin(), flags.end(), a) != flags.end();
    bool is_valued = std::find(valued.begin(), valued.end(), a) != valued.end();
    if (is_flag) {
      o[a] = "1";
    } else if (is_valued) {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      o[a] = argv[++i];
    } else {
      throw UsageError("unknown option '" + a + "'");
    }
  }
  return o;
}

long long parse_int(const std::string& key, const std::string& v, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo || x > hi)
    throw UsageError(key + " must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi) +
                     ", got '" + v + "'");
  return x;
}

double parse_double(const std::string& key, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x) || x <= lo || x > hi)
    throw UsageError(key + " must be a number in (" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" +
                     v + "'");
  return x;
}

std::string fmt_time(double s) {
  char b[32];
  int t = int(s + 0.5);
  std::snprintf(b, sizeof b, "%d:%02d", t / 60, t % 60);
  return b;
}

void print_loss(const char* what, const LossTerms& L, bool vae) {
  if (vae)
    std::printf("%s: total %.6f (reconstruction %.6f, kl %.6f)\n", what, L.total, L.reconstruction, L.kl);
  else if (L.penalty > 0)
    std::printf("%s: total %.6f (reconstruction %.6f, penalty %.6f)\n", what, L.total, L.reconstruction, L.penalty);
  else
    std::printf("%s: %.6f\n", what, L.total);
}

// The instruments' values (instrument_values) as lines of text; the names in [brackets] are their JSON names.
void print_instruments(const nlohmann::json& v, size_t digits, const InstrumentOptions& io, const ProbeSettings& ps) {
  const size_t units = v.at("codeSize").get<size_t>();
  std::printf("code: %zu numbers per digit; sparsity %.4f [sparsity: share of units with |h| <= %g x the digit's "
              "largest |h|], mean |h| %.4g [meanAbsCode] (%zu test digits)\n",
              units, v.at("sparsity").get<double>(), kSilentRelativeThreshold, v.at("meanAbsCode").get<double>(), digits);
  if (v.contains("jacobianNorm"))
    std::printf("encoder Jacobian: mean ||d code / d x||_F^2 %.6g [jacobianNorm] (%zu test digits)\n",
                v.at("jacobianNorm").get<double>(), std::min(digits, io.jacobian_images));
  else
    std::printf("encoder Jacobian: not computed for a code of %zu numbers (one backward pass per number; --jacobian "
                "computes it)\n", units);
  if (v.contains("activeUnits")) {
    std::printf("VAE posterior: %zu of %zu latent units active [activeUnits: variance over test digits of mu_j > %g, "
                "Burda et al. 2016]\n", v.at("activeUnits").get<size_t>(), units, kActiveUnitThreshold);
    std::printf("KL per latent dimension (nats per digit) [klPerDim]:");
    for (const auto& k : v.at("klPerDim")) std::printf(" %.4f", k.get<double>());
    std::printf("; summed %.4f [klTotal]\n", v.at("klTotal").get<double>());
    std::printf("variance of mu per latent dimension [latentVariance]:");
    for (const auto& k : v.at("latentVariance")) std::printf(" %.4g", k.get<double>());
    std::printf("\n");
  }
  if (!v.contains("probe")) return;
  std::printf("probe: test accuracy of softmax regression (%zu full-batch Adam steps, l2 %g; %zu test digits) / "
              "%zu-NN (Euclidean; first %zu test digits); features above %zu numbers reduced by PCA to %zu\n",
              ps.steps, double(ps.l2), std::min<size_t>(ps.test_images, 10000), ps.k,
              std::min(ps.knn_test_images, ps.test_images), ps.max_dims, ps.max_dims);
  for (const auto& r : v.at("probe")) {
    auto dims = [&](const char* what, size_t in) {
      const size_t d = r.at(what).at("dims").get<size_t>();
      return d == in ? std::to_string(d) + " dims" : std::to_string(in) + " -> PCA " + std::to_string(d) + " dims";
    };
    std::printf("probe %5zu labels: code %.4f / %.4f (%s), pixels %.4f / %.4f (%s), PCA %.4f / %.4f (%s)\n",
                r.at("labels").get<size_t>(), r["code"]["softmax"].get<double>(), r["code"]["knn"].get<double>(),
                dims("code", units).c_str(), r["pixels"]["softmax"].get<double>(), r["pixels"]["knn"].get<double>(),
                dims("pixels", 784).c_str(), r["pca"]["softmax"].get<double>(), r["pca"]["knn"].get<double>(),
                ("pixels -> PCA " + std::to_string(r["pca"]["dims"].get<size_t>()) + " dims").c_str());
  }
}

int cmd_presets() {
  for (const std::string& name : list_presets()) {
    try {
      Preset p = load_preset(name);
      Model m(p);
      std::printf("%-20s %9zu params  code %-14s %s\n", name.c_str(), m.parameter_count(),
                  shape_str(m.code_shape(1)).c_str(), p.title.c_str());
    } catch (const std::exception& e) {
      std::printf("%-20s INVALID: %s\n", name.c_str(), e.what());
    }
  }
  return 0;
}

std::string vae_beta(const Preset& p) {
  if (!p.is_vae()) return "";
  char b[48];
  std::snprintf(b, sizeof b, ", beta %g", double(p.loss.beta));
  return b;
}

// --threads N: worker threads for GEMM and the optimizer (results are the same for any count).
void use_threads(std::map<std::string, std::string>& o) {
  if (!o.count("--threads")) return;
  size_t want = size_t(parse_int("--threads", o["--threads"], 1, 64));
  size_t got = set_thread_count(want);
  if (got < want) std::fprintf(stderr, "aep: running %zu thread%s (%zu asked for)\n", got, got == 1 ? "" : "s", want);
}

// --fast: fast mode for the whole process (an error where this build or CPU has none, never a silent fallback).
void use_fast_mode(std::map<std::string, std::string>& o) {
  if (o.count("--fast")) set_fast_mode(true);
}

// "avx512f" or "avx512f, fast mode avx2+fma": the instruction set compiled for and the GEMM path running.
std::string arch_and_mode() {
  std::string s = simd_arch_name();
  return fast_mode() ? s + ", fast mode " + gemm_path_name(gemm_path()) : s;
}

int cmd_train(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2,
                         {"--preset", "--data", "--epochs", "--steps", "--batch", "--lr", "--seed", "--init", "--save",
                          "--log", "--test-samples", "--threads", "--beta", "--loss"},
                         {"--no-shuffle", "--save-optimizer", "--clean", "--fast"});
  if (!o.count("--preset")) throw UsageError("train needs --preset");
  use_threads(o);
  use_fast_mode(o);
  if (o.count("--epochs") && o.count("--steps")) throw UsageError("give --epochs or --steps, not both");
  Preset p = load_preset(o["--preset"]);
  const bool clean = o.count("--clean") > 0;
  if (clean) p.corruption = CorruptionConfig{};
  if (o.count("--batch")) p.training.batch_size = size_t(parse_int("--batch", o["--batch"], 1, 4096));
  if (o.count("--lr")) p.optimizer.lr = float(parse_double("--lr", o["--lr"], 0.0, 10.0));
  if (o.count("--epochs")) p.training.epochs = size_t(parse_int("--epochs", o["--epochs"], 1, 1000));
  if (o.count("--beta")) {
    if (!p.is_vae()) throw UsageError("--beta weights a VAE's KL term, and '" + p.name + "' is not a VAE");
    p.loss.beta = float(parse_double("--beta", o["--beta"], -1e-300, 1000.0));
  }
  if (o.count("--loss")) {
    const std::string l = o["--loss"];
    if (l != "mse" && l != "bce" && l != "l1") throw UsageError("--loss must be mse, bce or l1, got '" + l + "'");
    p.loss.reconstruction = l;
    const std::string problem = bce_range_problem(p);
    if (!problem.empty()) throw UsageError("--loss bce: " + problem);
  }
  uint64_t seed = o.count("--seed") ? uint64_t(parse_int("--seed", o["--seed"], 0, 1LL << 62)) : 1;
  size_t test_samples = o.count("--test-samples") ? size_t(parse_int("--test-samples", o["--test-samples"], 1, 1 << 24)) : 0;
  std::string dir = o.count("--data") ? o["--data"] : default_mnist_dir();

  Run run(p, seed);  // the seed rule of the page and the desktop app
  Model& model = *run.model;
  Trainer& trainer = *run.trainer;
  run.sample_z = !clean;  // --clean: a VAE trains with z = mu, as the exported scripts' --clean
  if (o.count("--init")) load_weights(o["--init"], model, &trainer.optimizer);
  Dataset train = load_mnist(dir, true), test = load_mnist(dir, false);
  run.set_data(train, -1, !o.count("--no-shuffle"));
  BatchSampler& sampler = *run.sampler;
  size_t total = o.count("--steps") ? size_t(parse_int("--steps", o["--steps"], 1, 100000000))
                                    : sampler.steps_per_epoch() * p.training.epochs;

  std::FILE* log = nullptr;
  if (o.count("--log")) {
    log = std::fopen(o["--log"].c_str(), "w");
    if (!log) throw std::runtime_error(o["--log"] + ": cannot open for writing (" + std::strerror(errno) + ")");
    std::fprintf(log, "step,epoch,loss,reconstruction,kl,penalty,samples_per_s\n");
  }
  const bool tty = stderr_is_terminal();
  std::fprintf(stderr, "training %s (%zu parameters, %s) on %zu images: %zu steps of batch %zu, %s lr %g, %s loss%s\n",
               p.name.c_str(), model.parameter_count(), arch_and_mode().c_str(), train.count, total, p.training.batch_size,
               p.optimizer.type.c_str(), double(p.optimizer.lr), p.loss.reconstruction.c_str(),
               vae_beta(p).c_str());

  auto t0 = Clock::now();
  size_t samples = 0;
  double running = 0;
  for (size_t step = 1; step <= total; ++step) {
    LossTerms L;
    try {
      L = run.step();
    } catch (const DivergenceError& e) {
      // The weights are those of the last good step: keep them (--save) rather than lose the run.
      if (log) std::fclose(log);
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "aep: %s\n", e.what());
      if (o.count("--save")) {
        save_weights(o["--save"], model, o.count("--save-optimizer") ? &trainer.optimizer : nullptr);
        std::fprintf(stderr, "aep: saved the last good weights (after step %zu) to %s\n", step - 1, o["--save"].c_str());
      }
      return 1;
    }
    const size_t n = run.last_batch().size();
    samples += n;
    running = step == 1 ? L.total : 0.98 * running + 0.02 * L.total;
    double el = std::chrono::duration<double>(Clock::now() - t0).count();
    double sps = samples / std::max(el, 1e-9);
    if (log)
      std::fprintf(log, "%zu,%zu,%.7g,%.7g,%.7g,%.7g,%.1f\n", step, sampler.epoch + 1, L.total, L.reconstruction,
                   L.kl, L.penalty, sps);
    double eta = el / step * (total - step);
    if (tty) {
      if (step % 10 == 0 || step == total) {
        int w = 30, done = int(w * step / total);
        std::fprintf(stderr, "\r[%s%s] step %zu/%zu epoch %zu loss %.5f %.0f samples/s ETA %s  ",
                     std::string(done, '=').c_str(), std::string(w - done, ' ').c_str(), step, total,
                     sampler.epoch + 1, running, sps, fmt_time(eta).c_str());
        if (step == total) std::fprintf(stderr, "\n");
      }
    } else if (step % std::max<size_t>(1, total / 10) == 0 || step == total || step == 1) {
      std::fprintf(stderr, "step %zu/%zu epoch %zu loss %.5f (%.0f samples/s, ETA %s)\n", step, total,
                   sampler.epoch + 1, L.total, sps, fmt_time(eta).c_str());
    }
  }
  double train_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (log) std::fclose(log);
  std::printf("trained %zu steps in %.1f s (%.0f samples/s)\n", total, train_s, samples / train_s);
  LossTerms T = evaluate(trainer, test, test_samples, std::min<size_t>(500, model.max_batch()));
  print_loss("test loss", T, model.is_vae());
  if (o.count("--save")) {
    save_weights(o["--save"], model, o.count("--save-optimizer") ? &trainer.optimizer : nullptr);
    std::printf("saved %s\n", o["--save"].c_str());
  }
  return 0;
}

// The model on foreign images (aep eval --foreign): kForeignEvalImages of them beside as many test digits, their mean
// errors and a histogram of each over the same bins, printed; the same as JSON (the page's status().foreign names).
constexpr size_t kForeignEvalImages = 1000, kForeignEvalBins = 10;  // the page: 1000 of each

// PATH: an IDX images file, or a folder holding t10k-images-idx3-ubyte (raw or .gz).
Dataset read_foreign(const std::string& path) {
  struct stat st;
  const bool folder = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  const std::string file = folder ? path + "/t10k-images-idx3-ubyte" : path;
  return image_set(read_idx_images(file), file);
}

nlohmann::json eval_foreign(Model& model, const Dataset& test, const Dataset& foreign) {
  const std::string& file = foreign.name;
  std::vector<float> te(std::min(kForeignEvalImages, test.count)), fe(std::min(kForeignEvalImages, foreign.count));
  reconstruction_errors(model, test, 0, te.size(), te.data());
  reconstruction_errors(model, foreign, 0, fe.size(), fe.data());
  const ErrorComparison c = compare_errors(te, fe, kForeignEvalBins);
  std::printf("foreign data %s: mean error %.6f [meanError] on %zu images vs %.6f [testMeanError] on %zu test digits: "
              "%.3gx [ratio], ROC AUC %.4f [auc] (mean squared error per pixel, clean inputs)\n",
              file.c_str(), c.foreign_mean, c.foreign_count, c.test_mean, c.test_count, c.ratio, c.auc);
  std::printf("  error histogram, %zu equal bins over [0, %.4g]: share of test digits | of foreign images\n",
              kForeignEvalBins, c.hi);
  for (size_t k = 0; k < kForeignEvalBins; ++k) {
    const double a = c.test_hist[k] / double(c.test_count), b = c.foreign_hist[k] / double(c.foreign_count);
    std::printf("  [%.4f, %.4f%c %5.1f%% %-25s| %5.1f%% %s\n", c.hi * k / kForeignEvalBins,
                c.hi * (k + 1) / kForeignEvalBins, k + 1 == kForeignEvalBins ? ']' : ')', 100 * a,
                std::string(size_t(std::lround(25 * a)), '#').c_str(), 100 * b,
                std::string(size_t(std::lround(25 * b)), '#').c_str());
  }
  return {{"name", file}, {"n", c.foreign_count}, {"meanError", c.foreign_mean}, {"testN", c.test_count},
          {"testMeanError", c.test_mean}, {"ratio", std::isfinite(c.ratio) ? nlohmann::json(c.ratio) : nlohmann::json()},
          {"auc", c.auc}, {"histogram", {{"hi", c.hi}, {"test", c.test_hist}, {"foreign", c.foreign_hist}}}};
}

int cmd_eval(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2,
                         {"--preset", "--weights", "--data", "--test-samples", "--probe-labels", "--probe-dims", "--json",
                          "--foreign"},
                         {"--clean", "--probe", "--jacobian"});
  if (!o.count("--preset") || !o.count("--weights")) throw UsageError("eval needs --preset and --weights");
  Preset p = load_preset(o["--preset"]);
  Model model(p);
  load_weights(o["--weights"], model);
  Trainer trainer(model, 0);
  const std::string dir = o.count("--data") ? o["--data"] : default_mnist_dir();
  Dataset test = load_mnist(dir, false);
  const Dataset foreign = o.count("--foreign") ? read_foreign(o["--foreign"]) : Dataset();  // bad input: before the work
  size_t n = o.count("--test-samples") ? size_t(parse_int("--test-samples", o["--test-samples"], 1, 1 << 24)) : 0;
  InstrumentOptions io;
  io.test_images = n;
  io.force_jacobian = o.count("--jacobian") > 0;
  if (o.count("--probe") || o.count("--probe-labels")) {
    io.probe_labels = {100, 1000};
    if (o.count("--probe-labels")) {
      io.probe_labels.clear();
      const std::string s = o["--probe-labels"];
      for (size_t start = 0; start <= s.size();) {
        const size_t end = std::min(s.find(',', start), s.size());
        io.probe_labels.push_back(size_t(parse_int("--probe-labels", s.substr(start, end - start), 10, 60000)));
        start = end + 1;
      }
    }
  }
  ProbeSettings ps;
  if (o.count("--probe-dims")) ps.max_dims = size_t(parse_int("--probe-dims", o["--probe-dims"], 1, 100000));
  const size_t batch = std::min<size_t>(500, model.max_batch());
  if (!o.count("--clean")) {
    print_loss("test loss", evaluate(trainer, test, n, batch), model.is_vae());
  } else {
    // All digits and terms, in the exported scripts' format, for comparing with them.
    LossTerms L = evaluate(trainer, test, n, batch, true);
    std::printf("clean test loss: total %.9g reconstruction %.9g kl %.9g penalty %.9g\n", L.total, L.reconstruction,
                L.kl, L.penalty);
  }
  std::fflush(stdout);

  Dataset train;
  if (!io.probe_labels.empty()) train = load_mnist(dir, true);
  auto t0 = Clock::now();
  nlohmann::json v = instrument_values(model, test, io.probe_labels.empty() ? nullptr : &train, io, &ps);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  print_instruments(v, std::min(n == 0 ? test.count : n, test.count), io, ps);
  if (!io.probe_labels.empty()) std::printf("instruments computed in %.2f s\n", seconds);
  if (foreign.count) v["foreign"] = eval_foreign(model, test, foreign);
  if (o.count("--json")) {
    std::ofstream f(o["--json"]);
    f << v.dump(1) << "\n";
    if (!f) throw std::runtime_error(o["--json"] + ": cannot write");
  }
  return 0;
}

int cmd_export(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2, {"--preset", "--weights"}, {"--pytorch", "--keras", "--keras-plan"});
  if (!o.count("--preset")) throw UsageError("export needs --preset");
  if (o.count("--pytorch") + o.count("--keras") + o.count("--keras-plan") != 1)
    throw UsageError("export needs one of --pytorch, --keras, --keras-plan");
  Preset p = load_preset(o["--preset"]);
  std::string weights = o.count("--weights") ? o["--weights"] : "";
  if (!weights.empty()) {  // refuse a file the script could not load
    Model model(p);
    load_weights(weights, model);
  }
  if (o.count("--pytorch")) std::fputs(pytorch_code(p, weights).c_str(), stdout);
  if (o.count("--keras")) std::fputs(keras_code(p, weights).c_str(), stdout);
  if (o.count("--keras-plan")) std::printf("%s\n", keras_plan(p).dump(1).c_str());
  return 0;
}

int cmd_pca(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2, {"--k", "--data", "--normalize"}, {});
  if (!o.count("--k")) throw UsageError("pca needs --k");
  size_t k = size_t(parse_int("--k", o["--k"], 1, 784));
  Normalization norm = o.count("--normalize") && o["--normalize"] == "-1_1" ? Normalization::MinusOneOne
                                                                             : Normalization::ZeroOne;
  std::string dir = o.count("--data") ? o["--data"] : default_mnist_dir();
  Dataset train = load_mnist(dir, true), test = load_mnist(dir, false);
  auto t0 = Clock::now();
  Pca pca = fit_pca(train, norm, k);
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("PCA k=%zu fitted on %zu images in %.2f s; test reconstruction MSE %.6f\n", k,
              std::min<size_t>(10000, train.count), s, pca_reconstruction_mse(pca, test, norm));
  return 0;
}

int cmd_lessons() {
  for (const std::string& id : list_lessons()) {
    try {
      Lesson l = load_lesson(id);
      std::printf("%-24s %-36s %zu step%s%s  %s\n", id.c_str(), l.section.c_str(), l.steps.size(),
                  l.steps.size() == 1 ? "" : "s", l.twin ? ", twin" : "", l.title.c_str());
    } catch (const std::exception& e) {
      std::printf("%-24s INVALID: %s\n", id.c_str(), e.what());
    }
  }
  return 0;
}

std::string goal_line(const Goal& g, const Goal::Result& r) {
  char value[64];
  std::snprintf(value, sizeof value, "%.6g", r.value);
  std::string s = "goal " + g.text() + "  value " + (std::isnan(r.value) ? std::string("-") : std::string(value));
  if (!r.missing.empty()) return s + "  waiting for " + r.missing;
  if (!r.problem.empty()) return s + "  " + r.problem;
  return s + (r.holds ? "  holds" : "  does not hold");
}

// The check a course author runs before publishing: every goal false when its step opens, true after its action.
int cmd_lesson(int argc, char** argv) {
  if (argc < 3 || argv[2][0] == '-') throw UsageError("lesson needs a lesson id or file");
  auto o = parse_options(argc, argv, 3, {"--data", "--test-images", "--fashion"}, {"--values"});
  Lesson lesson = load_lesson(argv[2]);
  const size_t test_images =
      o.count("--test-images") ? size_t(parse_int("--test-images", o["--test-images"], 1, 10000)) : 1000;
  const std::string dir = o.count("--data") ? o["--data"] : default_mnist_dir();
  Dataset train = load_mnist(dir, true), test = load_mnist(dir, false);
  // Fashion-MNIST only when a run needs it (Debian's dataset-fashion-mnist, as the desktop app uses).
  Dataset fashion;
  if (lesson.uses_fashion()) {
    const std::string fdir = o.count("--fashion") ? o["--fashion"] : "/usr/share/datasets/fashion-mnist";
    try {
      fashion = load_mnist(fdir, false);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("this lesson needs Fashion-MNIST (foreignError, foreignTestError, or anomaly \"fashion\"): ") +
                               e.what() + " (apt-get install dataset-fashion-mnist, or --fashion DIR)");
    }
  }
  const auto t0 = Clock::now();
  LessonRunner runner(lesson, train, test, test_images, fashion.count ? &fashion : nullptr);
  std::printf("lesson %s: %s (%s), test loss on %zu test images\n", lesson.id.c_str(), lesson.title.c_str(),
              lesson.section.c_str(), std::min(test_images, test.count));
  for (size_t i = 0; i < runner.runs(); ++i)
    std::printf("  run %c: %s%s%s\n", char('a' + i), runner.config(i).preset_name.c_str(),
                runner.config(i).label.empty() ? "" : ", ", runner.config(i).label.c_str());
  size_t failed = 0;
  if (o.count("--values")) std::printf("  values: %s\n", runner.status().dump().c_str());
  for (size_t k = 0; k < lesson.steps.size(); ++k) {
    Goal::Result at_start = runner.check(k);
    if (k > 0 && at_start.holds) {  // the first step opens at the start, checked below
      std::printf("  goal of step %zu already holds at the start: %s\n", k + 1,
                  goal_line(lesson.steps[k].goal, at_start).c_str());
      ++failed;
    }
  }
  for (size_t k = 0; k < lesson.steps.size(); ++k) {
    const LessonStep& step = lesson.steps[k];
    const Goal::Result before = runner.check(k);
    const auto ts = Clock::now();
    runner.apply_action(k);
    const double s = std::chrono::duration<double>(Clock::now() - ts).count();
    const Goal::Result after = runner.check(k);
    std::printf("step %zu: %s (%.1f s)\n", k + 1, step.action ? step.action->label.c_str() : "no action", s);
    if (before.holds) {
      std::printf("  before the action: %s  (must not hold yet)\n", goal_line(step.goal, before).c_str());
      ++failed;
    }
    std::printf("  %s\n", goal_line(step.goal, after).c_str());
    if (!after.holds) ++failed;
    if (o.count("--values")) std::printf("  values: %s\n", runner.status().dump().c_str());
    const std::string message = runner.status()["message"];
    if (!message.empty()) std::printf("  %s\n", message.c_str());
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed) {
    std::printf("%zu goal check%s failed (%.1f s)\n", failed, failed == 1 ? "" : "s", total_s);
    return 1;
  }
  std::printf("every goal was false when its step opened and holds after its action (%.1f s)\n", total_s);
  return 0;
}

// A beta sweep: the runs of core/sweep.hpp trained in lockstep, then measured as the page measures them.
int cmd_sweep(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2, {"--preset", "--beta", "--steps", "--data", "--seed", "--lr", "--batch", "--json"},
                         {});
  if (!o.count("--preset") || !o.count("--beta") || !o.count("--steps"))
    throw UsageError("sweep needs --preset, --beta and --steps");
  Preset p = load_preset(o["--preset"]);
  if (o.count("--batch")) p.training.batch_size = size_t(parse_int("--batch", o["--batch"], 1, 4096));
  if (o.count("--lr")) p.optimizer.lr = float(parse_double("--lr", o["--lr"], 0.0, 10.0));
  const std::vector<double> betas = parse_sweep_betas(o["--beta"]);
  const uint64_t seed = o.count("--seed") ? uint64_t(parse_int("--seed", o["--seed"], 0, 1LL << 62)) : 1;
  const size_t steps = size_t(parse_int("--steps", o["--steps"], 1, 100000000));
  std::vector<std::unique_ptr<Run>> runs = make_sweep_runs(p, seed, betas);
  const std::string dir = o.count("--data") ? o["--data"] : default_mnist_dir();
  Dataset train = load_mnist(dir, true), test = load_mnist(dir, false);
  for (auto& r : runs) r->set_data(train);
  std::fprintf(stderr, "beta sweep of %s: beta = %s, %zu steps of batch %zu from seed %llu on the same batches\n",
               p.name.c_str(), sweep_betas_text(betas).c_str(), steps, p.training.batch_size, (unsigned long long)seed);
  const auto t0 = Clock::now();
  std::vector<std::string> errors(runs.size());
  for (size_t k = 0; k < steps; ++k) {
    std::vector<Run*> live;  // a run that diverged keeps its last good weights and stops
    std::vector<size_t> index;
    for (size_t i = 0; i < runs.size(); ++i)
      if (errors[i].empty()) live.push_back(runs[i].get()), index.push_back(i);
    if (live.empty()) break;
    const std::vector<LockstepStep> out = step_lockstep(live);
    for (size_t j = 0; j < out.size(); ++j)
      if (!out[j].error.empty()) errors[index[j]] = out[j].error;
  }
  std::vector<SweepRow> rows;
  nlohmann::json rows_json = nlohmann::json::array();
  for (size_t i = 0; i < runs.size(); ++i) {
    RunMeasure m;
    m.begin(*runs[i], test, sweep_measure_options());
    while (!m.step(1e9)) {
    }
    rows.push_back(sweep_row(m, betas[i]));
    rows.back().error = errors[i];
    rows_json.push_back(sweep_row_json(rows.back()));
  }
  std::printf("%s", sweep_table(rows).c_str());
  std::printf("(%zu test digits; a unit is active when the variance of its mean over them exceeds 0.01; %.1f s)\n",
              std::min(kSweepTestImages, test.count), std::chrono::duration<double>(Clock::now() - t0).count());
  if (o.count("--json")) {
    std::ofstream f(o["--json"]);
    f << nlohmann::json{{"preset", p.name}, {"seed", seed}, {"steps", steps}, {"rows", rows_json}}.dump(1) << "\n";
    if (!f) throw std::runtime_error(o["--json"] + ": cannot write");
  }
  return 0;
}

int cmd_bench(int argc, char** argv) {
  auto o = parse_options(argc, argv, 2,
                         {"--only", "--seconds", "--runs", "--warmup", "--json", "--model-a", "--data", "--threads"},
                         {"--fast"});
  use_threads(o);
  use_fast_mode(o);
  BenchOptions b;
  if (o.count("--seconds")) b.seconds = parse_double("--seconds", o["--seconds"], 0.0, 600.0);
  if (o.count("--warmup")) b.warmup = parse_double("--warmup", o["--warmup"], -1e-12, 600.0);
  if (o.count("--runs")) b.runs = int(parse_int("--runs", o["--runs"], 1, 1000));
  if (o.count("--model-a")) b.model_a = o["--model-a"];
  if (o.count("--data")) b.data_dir = o["--data"];
  if (o.count("--only")) {
    std::string s = o["--only"];
    for (size_t start = 0; start <= s.size();) {
      size_t end = std::min(s.find(',', start), s.size());
      if (end > start) b.only.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  std::vector<BenchRecord> records = run_bench(b, stdout);
  if (o.count("--json")) {
    write_bench_json(o["--json"], records);
    std::printf("wrote %s\n", o["--json"].c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "presets") return cmd_presets();
    if (cmd == "train") return cmd_train(argc, argv);
    if (cmd == "eval") return cmd_eval(argc, argv);
    if (cmd == "export") return cmd_export(argc, argv);
    if (cmd == "pca") return cmd_pca(argc, argv);
    if (cmd == "lessons") return cmd_lessons();
    if (cmd == "lesson") return cmd_lesson(argc, argv);
    if (cmd == "sweep") return cmd_sweep(argc, argv);
    if (cmd == "bench") return cmd_bench(argc, argv);
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "aep: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aep: error: %s\n", e.what());
    return 1;
  }
}
