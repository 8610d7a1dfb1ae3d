// A beta sweep (see sweep.hpp).
#include "core/sweep.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace aep {

namespace {
std::string number_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

double value_or_nan(const nlohmann::json& v, const char* key) {
  return v.contains(key) && v[key].is_number() ? v[key].get<double>() : NAN;
}
}  // namespace

void check_sweep_betas(const std::vector<double>& betas) {
  if (betas.empty()) throw std::runtime_error("beta sweep: give 1 to 5 values of beta (e.g. 0.25,1,4,16), got none");
  if (betas.size() > kMaxSweepRuns)
    throw std::runtime_error("beta sweep: at most " + std::to_string(kMaxSweepRuns) + " values of beta (each is a run "
                             "trained beside the others), got " + std::to_string(betas.size()));
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!(betas[i] >= 0 && betas[i] <= kMaxSweepBeta))
      throw std::runtime_error("beta sweep: each beta must be a number from 0 to " + number_text(kMaxSweepBeta) +
                               ", got " + number_text(betas[i]));
    for (size_t j = 0; j < i; ++j)
      if (betas[j] == betas[i]) throw std::runtime_error("beta sweep: beta " + number_text(betas[i]) + " is listed twice");
  }
}

std::vector<double> parse_sweep_betas(const std::string& list) {
  std::vector<double> betas;
  size_t pos = 0;
  while (pos <= list.size() && list.find_first_not_of(" \t", pos) != std::string::npos) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string item = list.substr(pos, comma - pos);
    const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    const std::string word = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    char* end = nullptr;
    const double v = std::strtod(word.c_str(), &end);
    if (word.empty() || *end) throw std::runtime_error("beta sweep: '" + word + "' is not a number (give a list such as 0.25,1,4,16)");
    betas.push_back(v);
    pos = comma + 1;
  }
  check_sweep_betas(betas);
  return betas;
}

std::string sweep_betas_text(const std::vector<double>& betas) {
  std::string s;
  for (double b : betas) s += (s.empty() ? "" : ", ") + number_text(b);
  return s;
}

std::vector<std::unique_ptr<Run>> make_sweep_runs(const Preset& p, uint64_t seed, const std::vector<double>& betas) {
  if (!p.is_vae())
    throw std::runtime_error("beta sweep: " + p.name + " is not a VAE (beta weighs the KL term of a VAE's loss)");
  check_sweep_betas(betas);
  std::vector<std::unique_ptr<Run>> runs;
  for (double beta : betas) {
    Preset q = p;
    q.loss.beta = float(beta);
    runs.push_back(std::make_unique<Run>(q, seed));
    runs.back()->curve.label = "beta " + number_text(beta);
  }
  return runs;
}

MeasureOptions sweep_measure_options() {
  MeasureOptions o;
  o.test_images = kSweepTestImages;
  return o;
}

SweepRow sweep_row(const RunMeasure& m, double beta) {
  SweepRow r;
  const nlohmann::json& v = m.values();
  const PosteriorStats& q = m.posterior();
  r.beta = beta;
  r.step = m.snapshot_step();
  r.recon = value_or_nan(v, "testError");
  r.recon_loss = value_or_nan(v, "testReconstruction");
  r.kl = q.digits ? q.kl_total() : NAN;
  r.kl_per_dim = q.kl_per_dim;
  r.active_units = q.active_units;
  r.latent = q.latent;
  return r;
}

nlohmann::json sweep_row_json(const SweepRow& r) {
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  return {{"beta", r.beta},         {"step", r.step},         {"recon", num(r.recon)},
          {"reconLoss", num(r.recon_loss)}, {"kl", num(r.kl)}, {"klPerDim", r.kl_per_dim},
          {"activeUnits", r.active_units}, {"latent", r.latent},
          {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)}};
}

std::string sweep_table(const std::vector<SweepRow>& rows) {
  std::string out = "    beta     step  recon error (MSE/pixel)  recon loss     KL (nats)  active units  KL per unit\n";
  char line[256];
  for (const SweepRow& r : rows) {
    std::snprintf(line, sizeof line, "%8g %8zu  %23.5f  %10.3f  %12.3f  %6zu of %-3zu  ", r.beta, r.step, r.recon,
                  r.recon_loss, r.kl, r.active_units, r.latent);
    out += line;
    for (size_t j = 0; j < r.kl_per_dim.size(); ++j) {
      std::snprintf(line, sizeof line, "%s%.2f", j ? " " : "", r.kl_per_dim[j]);
      out += line;
    }
    if (!r.error.empty()) out += "  (diverged: " + r.error + ")";
    out += "\n";
  }
  return out;
}

}  // namespace aep
