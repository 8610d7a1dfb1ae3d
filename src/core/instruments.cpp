// Posterior statistics, sparsity, the encoder Jacobian's norm, and the named values of all instruments.
#include "core/instruments.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/mathfn.hpp"
#include "core/metrics.hpp"
#include "core/probe.hpp"

namespace aep {

using nlohmann::json;

namespace {
constexpr size_t kEncodeBatch = 256;

size_t first_count(const Dataset& d, size_t n) { return n == 0 ? d.count : std::min(n, d.count); }

std::vector<uint32_t> first_indices(size_t n) {
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  return idx;
}
}  // namespace

void encode_images(Model& m, const Dataset& d, const uint32_t* idx, size_t n, float* out) {
  const size_t code = m.code_size();
  Tensor x;
  for (size_t start = 0; start < n; start += kEncodeBatch) {
    const size_t b = std::min(kEncodeBatch, n - start);
    fill_batch(d, idx + start, b, m.preset().normalize, x);
    Tensor h = m.encode(x);
    std::copy(h.begin(), h.end(), out + start * code);
  }
}

std::vector<float> encode_first(Model& m, const Dataset& d, size_t n) {
  n = first_count(d, n);
  std::vector<float> codes(n * m.code_size());
  const std::vector<uint32_t> idx = first_indices(n);
  encode_images(m, d, idx.data(), n, codes.data());
  return codes;
}

Dataset image_set(IdxImages im, const std::string& name) {
  if (im.rows != 28 || im.cols != 28)
    throw std::runtime_error(name + ": images are " + std::to_string(im.rows) + "x" + std::to_string(im.cols) +
                             "; the models expect 28x28");
  if (im.count == 0) throw std::runtime_error(name + ": holds no images");
  Dataset d;
  d.name = name;
  d.count = im.count, d.rows = im.rows, d.cols = im.cols;
  d.pixels = std::move(im.pixels);
  return d;
}

void reconstruction_errors(Model& m, const Dataset& d, size_t begin, size_t end, float* out) {
  if (begin > end || end > d.count)
    throw std::runtime_error("reconstruction errors of images " + std::to_string(begin) + ".." + std::to_string(end) +
                             " asked for, but " + d.name + " holds " + std::to_string(d.count));
  const size_t chunk = std::max<size_t>(1, std::min<size_t>(100, m.max_batch()));
  std::vector<uint32_t> idx(chunk);
  Tensor x;
  for (size_t pos = begin; pos < end;) {
    const size_t n = std::min(chunk, end - pos);
    std::iota(idx.begin(), idx.begin() + n, uint32_t(pos));
    fill_batch(d, idx.data(), n, m.preset().normalize, x);
    const Tensor y = m.reconstruct(x);
    per_image_mse(y.data(), x.data(), n, out + (pos - begin));
    pos += n;
  }
}

double PosteriorStats::kl_total() const { return std::accumulate(kl_per_dim.begin(), kl_per_dim.end(), 0.0); }

PosteriorStats posterior_stats(const float* mu, const float* logvar, size_t n, size_t latent, double threshold) {
  if (n == 0) throw std::runtime_error("posterior statistics need at least one digit");
  PosteriorStats s;
  s.digits = n;
  s.latent = latent;
  s.kl_per_dim.assign(latent, 0.0);
  s.mean_variance.assign(latent, 0.0);
  std::vector<double> mean(latent, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < latent; ++j) {
      const double m = mu[i * latent + j], lv = logvar[i * latent + j];
      s.kl_per_dim[j] += 0.5 * (m * m + std::exp(lv) - 1.0 - lv);
      mean[j] += m;
    }
  for (size_t j = 0; j < latent; ++j) mean[j] /= double(n), s.kl_per_dim[j] /= double(n);
  // Two passes (mean first): the variance of nearly constant units is tiny next to their mean squared.
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < latent; ++j) {
      const double dm = mu[i * latent + j] - mean[j];
      s.mean_variance[j] += dm * dm;
    }
  for (size_t j = 0; j < latent; ++j) {
    s.mean_variance[j] /= double(n);
    s.active_units += s.mean_variance[j] > threshold;
  }
  return s;
}

PosteriorStats posterior_stats(Model& m, const Dataset& d, size_t n) {
  n = first_count(d, n);
  const size_t latent = m.code_size();
  std::vector<float> mu(n * latent), logvar(n * latent);
  const std::vector<uint32_t> idx = first_indices(n);
  Tensor x;
  for (size_t start = 0; start < n; start += kEncodeBatch) {
    const size_t b = std::min(kEncodeBatch, n - start);
    fill_batch(d, idx.data() + start, b, m.preset().normalize, x);
    Model::Posterior q = m.encode_posterior(x);
    std::copy(q.mu.begin(), q.mu.end(), mu.begin() + start * latent);
    std::copy(q.logvar.begin(), q.logvar.end(), logvar.begin() + start * latent);
  }
  return posterior_stats(mu.data(), logvar.data(), n, latent);
}

std::vector<float> sample_posterior(const float* mu, const float* logvar, size_t latent, size_t n, Rng& rng) {
  std::vector<float> z(n * latent);
  for (size_t s = 0; s < n; ++s)
    for (size_t j = 0; j < latent; ++j)
      z[s * latent + j] = mu[j] + exp_f32(0.5f * logvar[j]) * rng.normal();  // as training samples z
  return z;
}

SparsityStats code_sparsity(const float* codes, size_t n, size_t units, double relative) {
  if (n == 0 || units == 0) throw std::runtime_error("sparsity needs at least one digit and one code unit");
  SparsityStats s;
  s.digits = n;
  s.units = units;
  size_t silent = 0;
  double sum_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* h = codes + i * units;
    double top = 0;
    for (size_t j = 0; j < units; ++j) top = std::max(top, double(std::fabs(h[j])));
    for (size_t j = 0; j < units; ++j) {
      const double a = std::fabs(h[j]);
      silent += a <= relative * top;
      sum_abs += a;
    }
  }
  s.sparsity = double(silent) / double(n * units);
  s.mean_abs = sum_abs / double(n * units);
  return s;
}

std::vector<double> jacobian_frobenius_sq(Model& m, const Tensor& x) {
  return jacobian_frobenius_sq(m, x, 0, m.code_size());
}

std::vector<double> jacobian_frobenius_sq(Model& m, const Tensor& x, size_t unit_begin, size_t unit_end) {
  if (unit_begin > unit_end || unit_end > m.code_size())
    throw std::runtime_error("the Jacobian's rows " + std::to_string(unit_begin) + ".." + std::to_string(unit_end) +
                             " are not within the code's " + std::to_string(m.code_size()));
  const size_t B = x.shape()[0];
  if (x.shape() != m.input_shape(B))
    throw std::runtime_error("the Jacobian needs images " + shape_str(m.input_shape(B)) + ", got " + shape_str(x.shape()));
  // Backward passes add into the parameter gradients, which belong to the trainer between steps: kept aside.
  const std::vector<float> saved = m.grads;
  RunContext ctx;
  const Tensor& h = m.encoder.forward(x, ctx);
  if (m.is_vae()) m.mu.forward(h, ctx);
  const Shape code_shape = m.code_shape(B);
  const size_t units = per_sample(code_shape), pixels = per_sample(x.shape());
  Tensor seed = xt::zeros<float>(code_shape);
  std::vector<double> norm(B, 0.0);
  for (size_t j = unit_begin; j < unit_end; ++j) {
    for (size_t b = 0; b < B; ++b) seed.data()[b * units + j] = 1.f;  // row j of every image's Jacobian
    const Tensor* g = &seed;
    if (m.is_vae()) g = &m.mu.backward(*g, size_t(-1), true);
    const Tensor& dx = m.encoder.backward(*g, size_t(-1), true);
    for (size_t b = 0; b < B; ++b) {
      double s = 0;
      for (size_t i = 0; i < pixels; ++i) s += double(dx.data()[b * pixels + i]) * dx.data()[b * pixels + i];
      norm[b] += s;
    }
    for (size_t b = 0; b < B; ++b) seed.data()[b * units + j] = 0.f;
  }
  std::copy(saved.begin(), saved.end(), m.grads.begin());
  return norm;
}

double mean_jacobian_frobenius_sq(Model& m, const Dataset& d, size_t n) {
  n = first_count(d, n);
  constexpr size_t kBatch = 100;
  const std::vector<uint32_t> idx = first_indices(n);
  Tensor x;
  double sum = 0;
  for (size_t start = 0; start < n; start += kBatch) {
    const size_t b = std::min(kBatch, n - start);
    fill_batch(d, idx.data() + start, b, m.preset().normalize, x);
    for (double v : jacobian_frobenius_sq(m, x)) sum += v;
  }
  return sum / double(n);
}

json instrument_values(Model& m, const Dataset& test, const Dataset* train, const InstrumentOptions& o,
                       const ProbeSettings* probe) {
  json v = json::object();
  const size_t n = first_count(test, o.test_images), units = m.code_size();
  v["codeSize"] = units;
  const std::vector<float> codes = encode_first(m, test, n);
  const SparsityStats sp = code_sparsity(codes.data(), n, units);
  v["sparsity"] = sp.sparsity;
  v["meanAbsCode"] = sp.mean_abs;
  if (m.is_vae()) {
    const PosteriorStats ps = posterior_stats(m, test, n);
    v["activeUnits"] = ps.active_units;
    v["klPerDim"] = ps.kl_per_dim;
    v["klTotal"] = ps.kl_total();
    v["latentVariance"] = ps.mean_variance;
  }
  if (o.force_jacobian || units <= o.jacobian_max_code)
    v["jacobianNorm"] = mean_jacobian_frobenius_sq(m, test, std::min(n, o.jacobian_images));
  if (!o.probe_labels.empty()) {
    if (!train) throw std::runtime_error("the probe needs a labelled training set");
    ProbeSettings s = probe ? *probe : ProbeSettings{};
    json all = json::array();
    for (size_t labels : o.probe_labels) {
      s.labels = labels;
      const ProbeComparison c = compare_probes(m, *train, test, s);
      auto one = [](const ProbeResult& r) {
        return json{{"softmax", r.softmax_accuracy}, {"knn", r.knn_accuracy}, {"dims", r.dims}};
      };
      all.push_back({{"labels", c.code.labels}, {"code", one(c.code)}, {"pixels", one(c.pixels)}, {"pca", one(c.pca)}});
      if (all.size() == 1) {
        v["probeLabels"] = c.code.labels;
        v["probeAccuracy"] = c.code.softmax_accuracy;
        v["probeKnnAccuracy"] = c.code.knn_accuracy;
        v["probePixelsAccuracy"] = c.pixels.softmax_accuracy;
        v["probePixelsKnnAccuracy"] = c.pixels.knn_accuracy;
        v["probePcaAccuracy"] = c.pca.softmax_accuracy;
        v["probePcaKnnAccuracy"] = c.pca.knn_accuracy;
      }
    }
    v["probe"] = all;
  }
  return v;
}

}  // namespace aep
