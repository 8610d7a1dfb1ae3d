// Saving and loading model (and optionally optimizer) state; loading is all-or-nothing.
#include "core/weights.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "core/utf8.hpp"

namespace aep {

namespace {
// Far beyond any real run (1000 epochs of MNIST at batch size 1 is 6e7 steps), and small enough that
// Optimizer::set_steps, which multiplies its way to beta^t one step at a time, stays well under a second.
constexpr int64_t kMaxOptimizerSteps = 100000000;

// Variances (BatchNorm running_var, Adam's exp_avg_sq) go under a square root: a negative one means NaN later.
bool holds_variance(const std::string& key) {
  const auto ends_with = [&](const std::string& suffix) {
    return key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".running_var") || key.rfind("optimizer.exp_avg_sq.", 0) == 0;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}
}  // namespace

SafeTensors model_state(const Model& m, const Optimizer* opt, bool borrow) {
  SafeTensors st;
  const auto add_f32 = [&](const std::string& name, const std::vector<int64_t>& shape, const float* data) {
    borrow ? st.borrow_f32(name, shape, data) : st.add_f32(name, shape, data);
  };
  st.metadata["format"] = "aep-weights-1";
  st.metadata["preset"] = preset_to_json(m.preset()).dump();
  for (const auto& e : m.entries) add_f32(e.name, e.shape, e.value);
  for (const auto& c : m.counters) st.add_i64(c.name, {}, c.value);
  if (opt) {
    int64_t steps = opt->steps();
    st.add_i64("optimizer.step", {}, &steps);
    for (const auto& e : m.entries) {
      if (!e.grad) continue;
      size_t off = size_t(e.value - m.values.data());
      add_f32("optimizer.exp_avg." + e.name, e.shape, opt->exp_avg.data() + off);
      if (!opt->exp_avg_sq.empty())
        add_f32("optimizer.exp_avg_sq." + e.name, e.shape, opt->exp_avg_sq.data() + off);
    }
  }
  return st;
}

void load_state(Model& m, const SafeTensors& st, const std::string& name, Optimizer* opt) {
  auto fail = [&](const std::string& msg) { throw std::runtime_error(name + ": " + msg); };
  std::set<std::string> expected;
  // Stage everything first so that a bad tensor halfway through changes nothing.
  std::vector<float> values = m.values, buffers = m.buffer_values;
  std::vector<int64_t> counters(m.counters.size());
  auto fetch_f32 = [&](const std::string& key, const std::vector<int64_t>& shape, float* dst) {
    expected.insert(key);
    const StTensor* t = st.find(key);
    if (!t) fail("tensor '" + key + "' is missing - was this file saved from a different model?");
    if (t->dtype != DType::F32) fail("tensor '" + key + "' has dtype " + dtype_name(t->dtype) + ", expected F32");
    if (t->shape != shape)
      fail("tensor '" + key + "' has shape " + shape_text(t->shape) + " but the model expects " + shape_text(shape));
    std::vector<float> v = t->as_f32();
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i])) fail("tensor '" + key + "' holds NaN or infinite values (element " + std::to_string(i) + ")");
    if (holds_variance(key))
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] < 0.f) fail("tensor '" + key + "' is a variance but holds a negative value (element " + std::to_string(i) + ")");
    std::copy(v.begin(), v.end(), dst);
  };
  auto fetch_i64 = [&](const std::string& key, int64_t& dst) {
    expected.insert(key);
    const StTensor* t = st.find(key);
    if (!t) fail("tensor '" + key + "' is missing");
    if (t->dtype != DType::I64 || t->numel() != 1) fail("tensor '" + key + "' must be an I64 scalar");
    int64_t v = t->as_i64()[0];
    if (v < 0) fail("tensor '" + key + "' is negative");
    dst = v;
  };
  for (const auto& e : m.entries) {
    float* dst = e.grad ? values.data() + (e.value - m.values.data()) : buffers.data() + (e.value - m.buffer_values.data());
    fetch_f32(e.name, e.shape, dst);
  }
  for (size_t i = 0; i < m.counters.size(); ++i) fetch_i64(m.counters[i].name, counters[i]);

  std::vector<float> avg, avg_sq;
  int64_t steps = 0;
  const bool with_opt = opt && st.find("optimizer.step");
  if (with_opt) {
    avg.assign(m.values.size(), 0.f);
    if (!opt->exp_avg_sq.empty()) avg_sq.assign(m.values.size(), 0.f);
    fetch_i64("optimizer.step", steps);
    if (steps > kMaxOptimizerSteps)
      fail("tensor 'optimizer.step' is " + std::to_string(steps) + ", more than the limit of " +
           std::to_string(kMaxOptimizerSteps) + " steps - is the file corrupt?");
    for (const auto& e : m.entries) {
      if (!e.grad) continue;
      size_t off = size_t(e.value - m.values.data());
      fetch_f32("optimizer.exp_avg." + e.name, e.shape, avg.data() + off);
      if (!avg_sq.empty()) fetch_f32("optimizer.exp_avg_sq." + e.name, e.shape, avg_sq.data() + off);
    }
  }
  for (const auto& t : st.tensors) {
    if (expected.count(t.name)) continue;
    if (t.name.rfind("optimizer.", 0) == 0) continue;  // optimizer state not asked for, or of another optimizer
    fail("unexpected tensor '" + shorten_utf8(t.name) + "' - was this file saved from a different model?");
  }
  // Copy into the existing buffers: every layer points into them.
  std::copy(values.begin(), values.end(), m.values.begin());
  std::copy(buffers.begin(), buffers.end(), m.buffer_values.begin());
  for (size_t i = 0; i < m.counters.size(); ++i) *m.counters[i].value = counters[i];
  if (with_opt) {
    opt->exp_avg = std::move(avg);
    if (!avg_sq.empty()) opt->exp_avg_sq = std::move(avg_sq);
    opt->set_steps(steps);
  }
}

void save_weights(const std::string& path, const Model& m, const Optimizer* opt) {
  write_safetensors(path, model_state(m, opt));
}

void load_weights(const std::string& path, Model& m, Optimizer* opt) { load_state(m, read_safetensors(path), path, opt); }

}  // namespace aep
