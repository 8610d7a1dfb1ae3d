// A training run (see run.hpp): the seed rule, the training subset, the batch order and the curve in one place.
#include "core/run.hpp"

#include "core/losses.hpp"
#include "core/weights.hpp"

#include <cstring>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace aep {

std::vector<uint32_t> training_subset(const Dataset& d, int held_out_digit, size_t from) {
  std::vector<uint32_t> idx;
  idx.reserve(d.count > from ? d.count - from : 0);
  for (size_t i = from; i < d.count; ++i)
    if (held_out_digit < 0 || d.labels.empty() || d.labels[i] != held_out_digit) idx.push_back(uint32_t(i));
  return idx;
}

Run::Run(const Preset& p, uint64_t s) : preset(p), seed(s) {
  model = std::make_unique<Model>(p);
  if (p.loss.contractive > 0) model->contractive_layer();  // throws when the encoder does not end as it must
  model->init(seed);
  trainer = std::make_unique<Trainer>(*model, seed + 1);
  curve.segments.push_back({0, 0, reconstruction_loss_label(p.loss)});
}

std::pair<size_t, size_t> LossCurve::train_range(size_t k) const {
  return {segments[k].train_begin, k + 1 < segments.size() ? segments[k + 1].train_begin : step.size()};
}

void LossCurve::begin_segment(const std::string& loss) {
  const Segment next{step.size(), test.size(), loss};
  auto empty = [&](const Segment& g) { return g.train_begin == next.train_begin && g.test_begin == next.test_begin; };
  if (segments.empty()) return segments.push_back({0, 0, loss});
  if (loss == segments.back().loss) return;
  // A last segment that holds no point yet is dropped rather than closed (the picker went past it).
  if (segments.size() > 1 && empty(segments.back())) segments.pop_back();
  if (segments.back().loss == loss) return;
  if (empty(segments.back())) segments.back() = next;
  else segments.push_back(next);
}

std::pair<size_t, size_t> LossCurve::test_range(size_t k) const {
  return {segments[k].test_begin, k + 1 < segments.size() ? segments[k + 1].test_begin : test.size()};
}

void Run::set_data(const Dataset& train, int held_out_digit, bool shuffle, bool complete) {
  std::vector<uint32_t> subset = training_subset(train, held_out_digit);
  auto s = std::make_unique<BatchSampler>(subset.size(), preset.training.batch_size, shuffle, seed + 2);
  train_ = &train;
  data_count_ = train.count;
  held_out = held_out_digit;
  subset_ = std::move(subset);
  shuffle_ = shuffle;
  sampler = std::move(s);
  full_from = complete ? 0 : kNotYet;
}

void Run::add_data(const Dataset& train, bool complete) {
  if (!sampler) return set_data(train, held_out, shuffle_, complete);
  if (train.count < data_count_)
    throw std::runtime_error("the training images cannot shrink from " + std::to_string(data_count_) + " to " +
                             std::to_string(train.count));
  const std::vector<uint32_t> more = training_subset(train, held_out, data_count_);
  sampler->grow(subset_.size() + more.size());  // (throws before anything changed)
  subset_.insert(subset_.end(), more.begin(), more.end());
  train_ = &train;
  data_count_ = train.count;
  // The epoch under way finishes over the images it had: the first over all of them is the next (or this one, when
  // its order covers them all already).
  if (complete && full_from == kNotYet)
    full_from = sampler->epoch_images() == subset_.size() ? sampler->epoch : sampler->epoch + 1;
}

bool Run::epochs_done() const {
  return sampler && full_from != kNotYet && sampler->epoch >= full_from + preset.training.epochs;
}

LossTerms Run::step() {
  if (!sampler) throw std::logic_error("Run::step before set_data");
  size_t n;
  const uint32_t* pos = sampler->next(n);
  batch_.resize(n);
  for (size_t i = 0; i < n; ++i) batch_[i] = subset_[pos[i]];
  make_batch(*train_, batch_.data(), n, preset, trainer->rng, input, target);
  const Tensor* eps = nullptr;
  if (!sample_z && model->is_vae()) {
    ensure_shape(zero_eps_, model->code_shape(n));
    std::fill(zero_eps_.begin(), zero_eps_.end(), 0.f);
    eps = &zero_eps_;
  }
  LossTerms L = trainer->train_step(input, target, eps);
  ++steps;
  curve.step.push_back(float(steps));
  curve.train.push_back(float(L.total));
  curve.recon.push_back(float(L.reconstruction));
  curve.kl.push_back(float(L.kl));
  return L;
}

void Run::set_batch_size(size_t batch_size) {
  preset.training.batch_size = batch_size;
  if (!sampler || sampler->batch_size() == batch_size) return;
  size_t epoch = sampler->epoch;
  sampler = std::make_unique<BatchSampler>(subset_.size(), batch_size, shuffle_, seed + 2 + epoch);
  sampler->epoch = epoch;
}

void Run::apply_settings(const Preset& p) {
  model->set_loss(p.loss);  // throws, before anything changed, when the model refuses the loss
  trainer->optimizer.config.lr = p.optimizer.lr;
  trainer->optimizer.config.weight_decay = p.optimizer.weight_decay;
  preset.optimizer.lr = p.optimizer.lr;
  preset.optimizer.weight_decay = p.optimizer.weight_decay;
  curve.begin_segment(reconstruction_loss_label(p.loss));
  preset.loss = p.loss;
  preset.corruption = p.corruption;
  set_batch_size(p.training.batch_size);
  preset.training.epochs = p.training.epochs;
}

double Run::epoch() const {
  if (!sampler) return 0;
  const double e = double(sampler->epoch) + double(sampler->step_in_epoch) / double(sampler->steps_per_epoch());
  if (full_from == kNotYet || full_from == 0) return e;  // (passes over a first part while the rest is coming)
  return sampler->epoch < full_from ? 0.0 : e - double(full_from);  // epochs over all of the data
}

namespace {

using nlohmann::json;

json rng_json(const Rng::State& r) {
  uint32_t spare;
  std::memcpy(&spare, &r.spare, 4);
  return json::array({r.state, r.inc, r.has_spare, spare});
}

Rng::State rng_from(const json& j) {
  if (!j.is_array() || j.size() != 4 || !j[0].is_number_unsigned() || !j[1].is_number_unsigned() || !j[2].is_boolean() ||
      !j[3].is_number_unsigned())
    throw std::runtime_error("run state: a random stream is not [state, inc, has_spare, spare]");
  Rng::State r;
  r.state = j[0].get<uint64_t>(), r.inc = j[1].get<uint64_t>(), r.has_spare = j[2].get<bool>();
  const uint32_t spare = j[3].get<uint32_t>();
  std::memcpy(&r.spare, &spare, 4);
  return r;
}

const char* kCurveArrays[6] = {"step", "train", "recon", "kl", "test_step", "test"};

std::vector<float>* curve_array(LossCurve& c, int k) {
  std::vector<float>* a[6] = {&c.step, &c.train, &c.recon, &c.kl, &c.test_step, &c.test};
  return a[k];
}

// What update_run and load_run read, checked before anything changes.
struct RunState {
  json meta;
  Preset preset;
  SafeTensors model;  // weights, buffers, optimizer (names without the prefix)
  BatchSampler::State sampler;
  bool has_sampler = false;
  bool order_kept = false;  // the batch order was left out: the receiver's is kept
  Rng::State trainer_rng;
  size_t curve_from = 0, test_from = 0;
  std::vector<float> curve[6];
  std::vector<LossCurve::Segment> segments;
};

RunState read_run(const SafeTensors& st, const std::string& prefix) {
  RunState r;
  auto it = st.metadata.find(prefix + "run");
  if (it == st.metadata.end()) throw std::runtime_error("run state: '" + prefix + "run' missing");
  r.meta = json::parse(it->second, nullptr, false);
  if (r.meta.is_discarded() || !r.meta.is_object()) throw std::runtime_error("run state: not JSON");
  const json& m = r.meta;
  for (const char* k : {"seed", "steps", "curve_from", "test_from"})
    if (!m.contains(k) || !m[k].is_number_unsigned()) throw std::runtime_error(std::string("run state: '") + k + "' missing");
  r.preset = parse_preset(m.at("preset"), "run state");
  r.trainer_rng = rng_from(m.at("trainer_rng"));
  r.curve_from = m["curve_from"].get<size_t>(), r.test_from = m["test_from"].get<size_t>();
  if (m.contains("sampler") && !m["sampler"].is_null()) {
    const json& q = m["sampler"];
    r.has_sampler = true;
    r.sampler.batch = q.at("batch").get<size_t>(), r.sampler.pos = q.at("pos").get<size_t>();
    r.sampler.epoch = q.at("epoch").get<size_t>(), r.sampler.step_in_epoch = q.at("step_in_epoch").get<size_t>();
    r.sampler.shuffle = q.at("shuffle").get<bool>();
    r.sampler.rng = rng_from(q.at("rng"));
    r.order_kept = q.value("order_kept", false);
    const StTensor* order = st.find(prefix + "sampler.order");
    if (!r.order_kept && (!order || order->dtype != DType::I64))
      throw std::runtime_error("run state: the batch order is missing");
    const std::vector<int64_t> o = r.order_kept ? std::vector<int64_t>() : order->as_i64();
    r.sampler.order.resize(o.size());
    for (size_t i = 0; i < o.size(); ++i) {
      if (o[i] < 0 || o[i] > int64_t(UINT32_MAX)) throw std::runtime_error("run state: a batch index out of range");
      r.sampler.order[i] = uint32_t(o[i]);
    }
  }
  for (int k = 0; k < 6; ++k) {
    const StTensor* t = st.find(prefix + "curve." + kCurveArrays[k]);
    if (!t) throw std::runtime_error(std::string("run state: curve '") + kCurveArrays[k] + "' missing");
    r.curve[k] = t->as_f32();
  }
  for (const json& g : m.at("segments"))
    r.segments.push_back({g.at(0).get<size_t>(), g.at(1).get<size_t>(), g.at(2).get<std::string>()});
  const std::string model_prefix = prefix + "model.";
  for (const StTensor& t : st.tensors)
    if (t.name.rfind(model_prefix, 0) == 0) {
      StTensor c = t;
      c.name = t.name.substr(model_prefix.size());
      r.model.tensors.push_back(std::move(c));
    }
  return r;
}

// The curve r.curve_from.. appended to c cut there; throws (c unchanged) when it does not fit.
void join_curve(LossCurve& c, const RunState& r) {
  if (r.curve_from > c.step.size() || r.test_from > c.test.size())
    throw std::runtime_error("run state: the curve continues points this run does not have");
  const size_t n_train = r.curve_from + r.curve[0].size(), n_test = r.test_from + r.curve[4].size();
  for (int k = 1; k < 6; ++k)
    if (r.curve[k].size() != r.curve[k < 4 ? 0 : 4].size())
      throw std::runtime_error("run state: the curve's arrays have different lengths");
  for (const auto& g : r.segments)
    if (g.train_begin > n_train || g.test_begin > n_test) throw std::runtime_error("run state: a curve segment out of range");
  if (r.segments.empty()) throw std::runtime_error("run state: the curve has no segment");
  for (int k = 0; k < 6; ++k) {
    std::vector<float>& a = *curve_array(c, k);
    a.resize(k < 4 ? r.curve_from : r.test_from);
    a.insert(a.end(), r.curve[k].begin(), r.curve[k].end());
  }
  c.segments = r.segments;
  c.label = r.meta.value("label", c.label);
}

}  // namespace

void save_run(const Run& r, SafeTensors& st, const std::string& prefix, size_t curve_from, size_t test_from,
              bool optimizer, bool order, bool borrow) {
  const LossCurve& c = r.curve;
  curve_from = std::min(curve_from, c.step.size());
  test_from = std::min(test_from, c.test.size());
  json segments = json::array();
  for (const auto& g : c.segments) segments.push_back({g.train_begin, g.test_begin, g.loss});
  json sampler = nullptr;
  if (r.sampler) {
    const BatchSampler::State q = r.sampler->save();
    sampler = {{"batch", q.batch}, {"pos", q.pos}, {"epoch", q.epoch}, {"step_in_epoch", q.step_in_epoch},
               {"shuffle", q.shuffle}, {"rng", rng_json(q.rng)}};
    if (order) {
      const std::vector<int64_t> o(q.order.begin(), q.order.end());
      st.add_i64(prefix + "sampler.order", {int64_t(o.size())}, o.data());
    } else {
      sampler["order_kept"] = true;
    }
  }
  st.metadata[prefix + "run"] =
      json{{"preset", preset_to_json(r.preset)}, {"seed", r.seed}, {"steps", r.steps}, {"held_out", r.held_out},
           {"full_from", r.full_from == Run::kNotYet ? int64_t(-1) : int64_t(r.full_from)},
           {"sample_z", r.sample_z}, {"trainer_rng", rng_json(r.trainer->rng.save())}, {"sampler", sampler},
           {"label", c.label}, {"segments", segments}, {"curve_from", curve_from}, {"test_from", test_from}}
          .dump();
  SafeTensors m = model_state(*r.model, optimizer ? &r.trainer->optimizer : nullptr, borrow);
  for (StTensor& t : m.tensors) {
    t.name = prefix + "model." + t.name;
    st.tensors.push_back(std::move(t));
  }
  for (int k = 0; k < 6; ++k) {
    const std::vector<float>& a = *curve_array(const_cast<LossCurve&>(c), k);
    const size_t from = k < 4 ? curve_from : test_from;
    const std::string name = prefix + "curve." + kCurveArrays[k];
    borrow ? st.borrow_f32(name, {int64_t(a.size() - from)}, a.data() + from)
           : st.add_f32(name, {int64_t(a.size() - from)}, a.data() + from);
  }
}

std::unique_ptr<Run> load_run(const SafeTensors& st, const std::string& prefix, const Dataset* train) {
  const RunState r = read_run(st, prefix);
  if (r.curve_from != 0 || r.test_from != 0) throw std::runtime_error("run state: a curve's tail, not a whole run");
  if (r.order_kept) throw std::runtime_error("run state: the batch order is missing");
  auto run = std::make_unique<Run>(r.preset, r.meta["seed"].get<uint64_t>());
  run->curve = LossCurve();
  if (train) run->set_data(*train, r.meta.value("held_out", -1), r.has_sampler ? r.sampler.shuffle : true);
  update_run(*run, st, prefix);
  return run;
}

void update_run(Run& run, const SafeTensors& st, const std::string& prefix) {
  const RunState r = read_run(st, prefix);
  const json& ff = r.meta.contains("full_from") ? r.meta["full_from"] : json(0);
  if (!ff.is_number_integer()) throw std::runtime_error("run state: 'full_from' is not a whole number");
  const int64_t full_from = ff.get<int64_t>();
  if (r.has_sampler && run.sampler && !r.order_kept && r.sampler.order.size() > run.train_images())
    throw std::runtime_error("run state: a batch order over another number of images");
  if (r.order_kept && !(r.has_sampler && run.sampler))
    throw std::runtime_error("run state: the batch order is missing");
  if (preset_to_json(r.preset)["encoder"] != preset_to_json(run.preset)["encoder"] ||
      preset_to_json(r.preset)["decoder"] != preset_to_json(run.preset)["decoder"])
    throw std::runtime_error("run state: of another model");
  LossCurve curve = run.curve;
  join_curve(curve, r);
  if (r.has_sampler && run.sampler) {  // throws on a bad order or position
    BatchSampler check(*run.sampler);
    r.order_kept ? check.load_position(r.sampler) : check.load(r.sampler);
  }
  run.model->set_loss(r.preset.loss);  // throws before anything changed when the model refuses it
  try {
    load_state(*run.model, r.model, "run state", &run.trainer->optimizer);
  } catch (...) {
    run.model->set_loss(run.preset.loss);
    throw;
  }
  run.trainer->optimizer.config.lr = r.preset.optimizer.lr;
  run.trainer->optimizer.config.weight_decay = r.preset.optimizer.weight_decay;
  run.preset = r.preset;
  run.seed = r.meta["seed"].get<uint64_t>();
  run.steps = r.meta["steps"].get<size_t>();
  run.held_out = r.meta.value("held_out", -1);
  run.full_from = full_from < 0 ? Run::kNotYet : size_t(full_from);
  run.sample_z = r.meta.value("sample_z", true);
  run.trainer->rng.load(r.trainer_rng);
  if (r.has_sampler && run.sampler) r.order_kept ? run.sampler->load_position(r.sampler) : run.sampler->load(r.sampler);
  run.curve = std::move(curve);
}

bool in_lockstep(const Run& a, const Run& b) {
  return a.sampler && b.sampler && b.seed == a.seed && b.train_images() == a.train_images() &&
         b.sampler->batch_size() == a.sampler->batch_size() && b.sampler->epoch == a.sampler->epoch &&
         b.sampler->step_in_epoch == a.sampler->step_in_epoch;
}

std::vector<LockstepStep> step_lockstep(const std::vector<Run*>& runs) {
  for (const Run* r : runs)
    if (!in_lockstep(*runs[0], *r))
      throw std::logic_error("runs in lockstep need the same seed, data, batch size and position in the epoch");
  std::vector<LockstepStep> out(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    try {
      out[i].loss = runs[i]->step();
    } catch (const DivergenceError& e) {
      out[i].error = e.what();
    }
    if (runs[i]->last_batch() != runs[0]->last_batch())
      throw std::logic_error("runs in lockstep drew different batches");
  }
  return out;
}

}  // namespace aep
