// Shared helpers for the tests: owning parameter storage for a lone layer, random tensors, numerical gradients.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/layers.hpp"

namespace aep::test {

// A layer plus storage for its parameters and buffers (normally the Model owns these).
struct BoundLayer {
  std::unique_ptr<Layer> layer;
  std::vector<std::vector<float>> values, grads, buffers;
  explicit BoundLayer(const nlohmann::json& spec, Rng* init = nullptr) : layer(make_layer(spec)) {
    for (auto& p : layer->params) {
      values.emplace_back(p.numel());
      grads.emplace_back(p.numel(), 0.f);
      p.value = values.back().data();
      p.grad = grads.back().data();
      for (float& v : values.back())
        v = init ? init->uniform(-1.f, 1.f) : (p.init == ParamSlot::Init::Ones ? 1.f : 0.f);
    }
    for (auto& b : layer->buffers) {
      buffers.emplace_back(b.numel(), b.init == ParamSlot::Init::Ones ? 1.f : 0.f);
      b.value = buffers.back().data();
    }
  }
  void zero_grad() {
    for (auto& g : grads) std::fill(g.begin(), g.end(), 0.f);
  }
};

inline Tensor random_tensor(const Shape& s, Rng& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(s);
  for (float& v : t) v = rng.uniform(lo, hi);
  return t;
}

// Compares an analytic gradient with central differences of f at the given coordinates.
// Returns the worst relative error max|a - n| / max(|a|, |n|, floor). Float32 forward passes limit finite
// differences (rounding favours a large step, curvature a small one), so each coordinate takes the better of
// steps eps and eps / 10: a wrong gradient matches at neither.
inline double gradient_error(std::vector<float*> coords, const std::vector<float>& analytic,
                             const std::function<double()>& f, double eps = 1e-3, double floor = 1e-2) {
  double worst = 0;
  for (size_t i = 0; i < coords.size(); ++i) {
    double best = 1e300;
    for (double h : {eps, eps / 10}) {
      float keep = *coords[i];
      *coords[i] = keep + float(h);
      double fp = f();
      *coords[i] = keep - float(h);
      double fm = f();
      *coords[i] = keep;
      double num = (fp - fm) / (2 * h);
      best = std::min(best, std::fabs(num - analytic[i]) / std::max({std::fabs(num), std::fabs(double(analytic[i])), floor}));
    }
    worst = std::max(worst, best);
  }
  return worst;
}

// Directional check over a whole parameter vector: compares g.v with (f(p + h v) - f(p - h v)) / 2h for unit
// directions v (along g, g mixed with noise, pure noise). Errors are relative to max(|g.v|, 0.02 |g|).
inline double directional_gradient_error(std::vector<float>& params, const std::vector<float>& g,
                                         const std::function<double()>& f, Rng& rng, double h = 1e-3) {
  const size_t n = params.size();
  double gnorm = 0;
  for (float x : g) gnorm += double(x) * x;
  gnorm = std::sqrt(gnorm);
  if (gnorm == 0) return 0;
  const std::vector<float> start = params;
  double worst = 0;
  for (int d = 0; d < 3; ++d) {
    std::vector<double> v(n);
    double vn = 0;
    for (size_t i = 0; i < n; ++i) {
      double r = rng.normal() / std::sqrt(double(n));
      v[i] = d == 0 ? g[i] / gnorm : d == 1 ? g[i] / gnorm + r : r;
      vn += v[i] * v[i];
    }
    double gv = 0;
    for (size_t i = 0; i < n; ++i) gv += g[i] * (v[i] /= std::sqrt(vn));
    for (size_t i = 0; i < n; ++i) params[i] = float(start[i] + h * v[i]);
    double fp = f();
    for (size_t i = 0; i < n; ++i) params[i] = float(start[i] - h * v[i]);
    double fm = f();
    std::copy(start.begin(), start.end(), params.begin());
    worst = std::max(worst, std::fabs((fp - fm) / (2 * h) - gv) / std::max(std::fabs(gv), 0.02 * gnorm));
  }
  return worst;
}

}  // namespace aep::test
