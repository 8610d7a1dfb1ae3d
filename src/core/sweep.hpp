// A beta sweep (issue 15): K runs of one VAE that differ only in beta, trained from the same seed on the same batches
// (lockstep), and measured side by side - reconstruction error, KL (in all and per latent unit), active units - so
// that posterior collapse under a large beta can be seen. The page (src/app/beta_sweep.cpp) and `aep sweep` both
// build the runs and their rows here.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/lesson.hpp"
#include "core/run.hpp"

namespace aep {

constexpr size_t kMaxSweepRuns = 5;
constexpr double kMaxSweepBeta = 1000;   // beta in [0, 1000]: a larger weight only drowns the reconstruction term
constexpr size_t kSweepTestImages = 1000;  // test images behind each row (as the lessons' values)

// Checks a list of betas: 1 to kMaxSweepRuns numbers, each finite and in [0, kMaxSweepBeta], none twice. Throws
// std::runtime_error saying what is wrong.
void check_sweep_betas(const std::vector<double>& betas);
// "0.25,1,4,16" -> {0.25, 1, 4, 16}, checked as above.
std::vector<double> parse_sweep_betas(const std::string& list);
// "0.25, 1, 4, 16" (the shortest form of each).
std::string sweep_betas_text(const std::vector<double>& betas);

// The sweep's runs: p (a VAE) with each beta, all from `seed`, labelled "beta 0.25". Throws when p is not a VAE or
// the betas do not pass check_sweep_betas. The runs have no data yet (Run::set_data).
std::vector<std::unique_ptr<Run>> make_sweep_runs(const Preset& p, uint64_t seed, const std::vector<double>& betas);

// One row of the comparison, from a finished measurement (RunMeasure) of a sweep run.
struct SweepRow {
  double beta = 0;
  size_t step = 0;
  double recon = 0;       // testError: mean squared error per pixel between the output (z = mu) and the clean digit
  double recon_loss = 0;  // testReconstruction: the loss's own reconstruction term (e.g. BCE summed per image)
  double kl = 0;          // KL(q(z|x) || N(0, I)) in nats per digit, summed over the latent units (before beta)
  std::vector<double> kl_per_dim;
  size_t active_units = 0, latent = 0;
  std::string error;  // the run diverged: why (its last good weights are measured)
};
MeasureOptions sweep_measure_options();
SweepRow sweep_row(const RunMeasure& m, double beta);
nlohmann::json sweep_row_json(const SweepRow& r);
// The rows as a text table (the CLI's output).
std::string sweep_table(const std::vector<SweepRow>& rows);

}  // namespace aep
