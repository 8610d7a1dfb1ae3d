// The training side of the playground (see run_host.hpp).
#include "core/run_host.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/idx.hpp"
#include "core/losses.hpp"

namespace aep {

namespace {

using nlohmann::json;

std::vector<uint8_t> message(const json& head, SafeTensors st = {}) {
  st.metadata["aep_host"] = head.dump();
  return serialize_safetensors(st);
}

json head_of(const SafeTensors& st, const char* key) {
  auto it = st.metadata.find(key);
  if (it == st.metadata.end()) throw std::runtime_error(std::string("training host: a message without '") + key + "'");
  json j = json::parse(it->second, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("training host: a message head that is not JSON");
  return j;
}

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

// A byte string as an I64 tensor (safetensors here holds F32 and I64 only): padded to 8 bytes, its length in `n`.
void add_bytes(SafeTensors& st, const std::string& name, const std::vector<uint8_t>& bytes) {
  StTensor t;
  t.name = name;
  t.dtype = DType::I64;
  t.shape = {int64_t((bytes.size() + 7) / 8)};
  t.bytes = bytes;
  t.bytes.resize(size_t(t.shape[0]) * 8, 0);
  st.tensors.push_back(std::move(t));
}

std::vector<uint8_t> get_bytes(const SafeTensors& st, const std::string& name, size_t n) {
  const StTensor* t = st.find(name);
  if (!t || t->nbytes() < n) throw std::runtime_error("training host: '" + name + "' missing or short");
  return std::vector<uint8_t>(t->data(), t->data() + n);
}

std::vector<uint8_t> idx_images(const Dataset& d) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000803);
  put_be32(b, uint32_t(d.count));
  put_be32(b, uint32_t(d.rows));
  put_be32(b, uint32_t(d.cols));
  b.insert(b.end(), d.pixels.begin(), d.pixels.end());
  return b;
}

std::vector<uint8_t> idx_labels(const Dataset& d) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000801);
  put_be32(b, uint32_t(d.labels.size()));
  b.insert(b.end(), d.labels.begin(), d.labels.end());
  return b;
}

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double num_of(const json& v) { return v.is_number() ? v.get<double>() : NAN; }

// The test loss as the app's views measure it: eval mode, the first n test images, the corruption as set now drawn
// from a fixed seed, batches of 64. Runs nothing in training mode, so training goes on as if it had not been measured.
LossTerms test_loss(Run& r, const Dataset& test, size_t n_eval) {
  if (n_eval == 0) return LossTerms();
  Evaluation e(test, r.preset, n_eval, 64);
  while (e.step(*r.trainer)) {
  }
  return e.result();
}

// An optimizer that has not stepped: its moments are all +0, as those of the run load_run builds.
bool fresh_optimizer(const Optimizer& o) {
  const auto zero = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.f && !std::signbit(x); });
  };
  return o.steps() == 0 && zero(o.exp_avg) && zero(o.exp_avg_sq);
}

}  // namespace

// A run's optimizer is left out while it has not stepped (the host's run starts with such a one): a beta sweep starts
// five fresh vae-mlp-16 runs, whose Adam moments would be 43 MB of zeros in this order.
std::vector<uint8_t> host_order_runs(uint64_t seq, uint64_t gen, const std::vector<const Run*>& runs) {
  SafeTensors st;  // borrows the runs' state until serialized (message)
  for (size_t i = 0; i < runs.size(); ++i)
    save_run(*runs[i], st, "r" + std::to_string(i) + ".", 0, 0, !fresh_optimizer(runs[i]->trainer->optimizer), true,
             true);
  return message({{"kind", "runs"}, {"seq", seq}, {"gen", gen}, {"count", runs.size()}}, std::move(st));
}

std::vector<uint8_t> host_order_settings(uint64_t seq, const std::vector<const Preset*>& presets) {
  json p = json::array();
  for (const Preset* q : presets) p.push_back(preset_to_json(*q));
  return message({{"kind", "settings"}, {"seq", seq}, {"presets", p}});
}

std::vector<uint8_t> host_order_train(uint64_t seq, const HostTrain& t) {
  return message({{"kind", "train"}, {"seq", seq}, {"running", t.running}, {"steps", t.steps},
                  {"lockstep", t.lockstep}, {"eval_images", t.eval_images}, {"others_optimizer", t.others_optimizer}});
}

std::vector<uint8_t> host_order_data(uint64_t seq, const Dataset& train, const Dataset& test, bool append,
                                     bool complete) {
  SafeTensors st;
  json sizes = json::array();
  for (const Dataset* d : {&train, &test}) {
    const std::string k = d == &train ? "train" : "test";
    const std::vector<uint8_t> im = idx_images(*d), lb = idx_labels(*d);
    add_bytes(st, k + ".images", im);
    add_bytes(st, k + ".labels", lb);
    sizes.push_back({d->name, im.size(), lb.size()});
  }
  return message({{"kind", "data"}, {"seq", seq}, {"sets", sizes}, {"append", append}, {"complete", complete}},
                 std::move(st));
}

void RunHost::receive(const std::vector<uint8_t>& bytes) { receive(bytes.data(), bytes.size()); }

void RunHost::receive(const uint8_t* bytes, size_t size) {
  const SafeTensors st = parse_safetensors_view(bytes, size, "training host order");
  const json h = head_of(st, "aep_host");
  const std::string kind = h.value("kind", "");
  const uint64_t seq = h.at("seq").get<uint64_t>();
  if (kind == "runs") {
    const size_t n = h.at("count").get<size_t>();
    // Each old run goes once its successor is built: old and new side by side were the worker's peak (a beta sweep's
    // five vae-mlp-16 runs are 87 MB). A malformed run leaves the host without runs rather than with some new ones.
    try {
      for (size_t i = 0; i < n; ++i) {
        std::unique_ptr<Run> r = load_run(st, "r" + std::to_string(i) + ".", has_data() ? &train_ : nullptr);
        if (i < runs_.size()) runs_[i] = std::move(r);
        else runs_.push_back(std::move(r));
      }
      runs_.resize(n);
    } catch (...) {
      runs_.clear();
      errors_.clear(), last_train_.clear(), last_test_.clear(), last_test_kl_.clear();
      sent_curve_.clear(), sent_test_.clear(), sent_epoch_.clear(), evaluated_.clear();
      stop("");
      throw;
    }
    gen_ = h.at("gen").get<uint64_t>();
    errors_.assign(n, "");
    last_train_.assign(n, NAN), last_test_.assign(n, NAN), last_test_kl_.assign(n, NAN);
    sent_curve_.assign(n, 0), sent_test_.assign(n, 0), evaluated_.assign(n, {size_t(-1), 0});
    sent_epoch_.assign(n, size_t(-1));
    for (size_t i = 0; i < n; ++i) {
      const LossCurve& c = runs_[i]->curve;
      if (runs_[i]->sampler) sent_epoch_[i] = runs_[i]->sampler->epoch;  // the app sent this order
      sent_curve_[i] = c.step.size(), sent_test_[i] = c.test.size();
      if (!c.train.empty()) last_train_[i] = c.train.back();
      if (!c.test.empty() && c.test_step.back() == float(runs_[i]->steps))  // its test loss is of these weights
        evaluated_[i] = {runs_[i]->steps, c.segments.size()}, last_test_[i] = c.test.back();
    }
    steps_left_ = 0;
    train_order_.running = false;
    stopped_.clear();
  } else if (kind == "settings") {
    const json& p = h.at("presets");
    if (!p.is_array() || p.size() != runs_.size()) throw std::runtime_error("training host: settings for other runs");
    std::vector<Preset> presets;
    for (const json& j : p) presets.push_back(parse_preset(j, "training host settings"));
    sent_epoch_.assign(runs_.size(), size_t(-1));  // a new batch size may have rebuilt a sampler
    for (size_t i = 0; i < runs_.size(); ++i) {
      try {
        runs_[i]->apply_settings(presets[i]);
      } catch (const std::exception& e) {  // the app checked them: a refusal here is the app's bug, reported
        errors_[i] = e.what();
      }
    }
  } else if (kind == "train") {
    HostTrain t;
    t.running = h.at("running").get<bool>();
    t.steps = h.at("steps").get<size_t>();
    t.lockstep = h.at("lockstep").get<bool>();
    t.eval_images = h.at("eval_images").get<size_t>();
    t.others_optimizer = h.value("others_optimizer", false);
    train_order_ = t;
    steps_left_ = t.steps;
    if (t.running) stopped_.clear();
  } else if (kind == "data") {
    const json& sets = h.at("sets");
    Dataset d[2];
    for (int k = 0; k < 2; ++k) {
      const std::string key = k ? "test" : "train";
      const std::string name = sets.at(k).at(0).get<std::string>();
      const std::vector<uint8_t> im = get_bytes(st, key + ".images", sets.at(k).at(1).get<size_t>());
      const std::vector<uint8_t> lb = get_bytes(st, key + ".labels", sets.at(k).at(2).get<size_t>());
      d[k] = make_dataset(parse_idx_images(im.data(), im.size(), name), parse_idx_labels(lb.data(), lb.size(), name), name,
                          name, name);
    }
    const bool complete = h.value("complete", true);
    if (h.value("append", false)) add_data(std::move(d[0]), std::move(d[1]), complete);
    else set_data(std::move(d[0]), std::move(d[1]), complete);
  } else {
    throw std::runtime_error("training host: unknown order '" + kind + "'");
  }
  seq_ = seq;
  changed_ = true;
}

void RunHost::set_data(Dataset train, Dataset test, bool complete) {
  train_ = std::move(train);
  test_ = std::move(test);
  data_complete_ = complete;
  for (auto& r : runs_) r->set_data(train_, r->held_out, r->sampler ? r->sampler->save().shuffle : true, complete);
  sent_epoch_.assign(runs_.size(), size_t(-1));
  changed_ = true;
}

void RunHost::add_data(Dataset train, Dataset test, bool complete) {
  if (!has_data()) return set_data(std::move(train), std::move(test), complete);
  const size_t had = train_.count;
  append_dataset(train_, std::move(train));  // throws, changing nothing, when they do not fit
  try {
    append_dataset(test_, std::move(test));
  } catch (...) {
    truncate_dataset(train_, had);  // a refused order changes nothing
    throw;
  }
  data_grew(complete);
}

void RunHost::add_mnist(const MnistFiles& rest) {
  if (!has_data()) throw std::runtime_error("training host: the rest of MNIST before its first part");
  append_mnist(rest, train_, test_);  // throws, changing nothing
  data_grew(true);
}

void RunHost::data_grew(bool complete) {
  data_complete_ = complete;
  for (auto& r : runs_) r->add_data(train_, complete);
  changed_ = true;
}

void RunHost::stop(const std::string& why) {
  train_order_.running = false;
  steps_left_ = 0;
  stopped_ = why;
  changed_ = true;
}

bool RunHost::work(double budget_ms) {
  if (!train_order_.running || runs_.empty() || !has_data() || !runs_[0]->has_data()) {
    evaluate_due(false);
    return false;
  }
  Run& a = *runs_[0];
  // The runs that take run 0's batches (a twin, a beta sweep's runs): those still at its position and not diverged.
  std::vector<Run*> lockstep{&a};
  std::vector<size_t> index{0};
  for (size_t i = 1; train_order_.lockstep && i < runs_.size(); ++i)
    if (errors_[i].empty() && runs_[i]->has_data() && in_lockstep(a, *runs_[i]))
      lockstep.push_back(runs_[i].get()), index.push_back(i);
  const auto t0 = Clock::now();
  size_t samples = 0;
  for (;;) {
    const auto ts = Clock::now();
    if (lockstep.size() > 1) {
      const std::vector<LockstepStep> out = step_lockstep(lockstep);
      for (size_t k = 0; k < out.size(); ++k)
        if (out[k].error.empty()) last_train_[index[k]] = out[k].loss.total;
        else errors_[index[k]] = out[k].error;
    } else {
      try {
        last_train_[0] = a.step().total;
      } catch (const DivergenceError& e) {
        errors_[0] = e.what();
      }
    }
    changed_ = true;
    if (!errors_[0].empty()) {
      stop("diverged");
      break;
    }
    samples += a.input.shape()[0] * lockstep.size();
    step_ms_ = 0.8 * step_ms_ + 0.2 * std::chrono::duration<double, std::milli>(Clock::now() - ts).count();
    if (steps_left_ > 0 && --steps_left_ == 0) {
      stop("steps");
      break;
    }
    if (a.epochs_done()) {
      stop("epochs");
      break;
    }
    if (std::chrono::duration<double, std::milli>(Clock::now() - t0).count() + step_ms_ > budget_ms) break;
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  samples_ += samples;
  if (samples && dt > 0) engine_sps_ = engine_sps_ == 0 ? samples / dt : 0.9 * engine_sps_ + 0.1 * samples / dt;
  evaluate_due(!train_order_.running);
  return train_order_.running;
}

// A test-loss point for each run, every 0.7 s while training and once when the weights or the loss changed at rest
// (the app's views measured it that often); for a model slow to evaluate, seldom enough that measuring takes at most a
// fifth of the training time.
void RunHost::evaluate_due(bool force) {
  if (!has_data() || runs_.empty()) return;
  const bool timely = std::chrono::duration<double>(Clock::now() - last_eval_).count() > std::max(0.7, 4 * eval_s_);
  if (train_order_.running && !timely && !force) return;
  bool any = false;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < runs_.size(); ++i) {
    Run& r = *runs_[i];
    const std::pair<size_t, size_t> key{r.steps, r.curve.segments.size()};
    if (key == evaluated_[i]) continue;
    const LossTerms L = test_loss(r, test_, train_order_.eval_images);
    evaluated_[i] = key;
    last_test_[i] = L.total, last_test_kl_[i] = L.kl;
    LossCurve& c = r.curve;
    const bool in_segment = c.test.size() > c.segments.back().test_begin;
    if (!in_segment || c.test_step.back() != float(r.steps)) {
      c.test_step.push_back(float(r.steps));
      c.test.push_back(float(L.total));
    }
    any = true;
  }
  if (any) last_eval_ = Clock::now(), changed_ = true, eval_s_ = std::chrono::duration<double>(last_eval_ - t0).count();
}

std::vector<uint8_t> RunHost::report(double interval_s, double others_s) {
  if (!changed_) return {};
  if (train_order_.running && std::chrono::duration<double>(Clock::now() - last_report_).count() < interval_s) return {};
  SafeTensors st;  // borrows the runs' state: serialized below, before they change
  json errors = json::array(), lt = json::array(), lx = json::array(), lk = json::array();
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const bool optimizer = !train_order_.running || since(last_optimizer_) >= 1;
  if (optimizer) last_optimizer_ = Clock::now();
  // Every run's weights in every report cost the page more than training them: four beta-sweep runs of vae-mlp-16
  // trained 22 steps in 15 s that way against 291 for one run alone. The app measures the other runs about once a
  // second, so that is how often they come.
  const bool others = !train_order_.running || since(last_others_) >= others_s;
  if (others) last_others_ = Clock::now();
  json included = json::array(), lockstep = json::array();
  for (size_t i = 0; i < runs_.size(); ++i) {
    const Run& r = *runs_[i];
    included.push_back(i == 0 || others);
    lockstep.push_back(i == 0 || (errors_[i].empty() && in_lockstep(*runs_[0], r)));
    errors.push_back(errors_[i]);
    lt.push_back(num(last_train_[i])), lx.push_back(num(last_test_[i])), lk.push_back(num(last_test_kl_[i]));
    if (!included.back()) continue;
    const size_t epoch = r.sampler ? r.sampler->epoch : 0;
    // The other runs' optimizers only at rest unless asked for: a beta sweep's would double every report.
    const bool with_optimizer = optimizer && (i == 0 || !train_order_.running || train_order_.others_optimizer);
    save_run(r, st, "r" + std::to_string(i) + ".", sent_curve_[i], sent_test_[i], with_optimizer, epoch != sent_epoch_[i],
             true);
    sent_curve_[i] = r.curve.step.size(), sent_test_[i] = r.curve.test.size(), sent_epoch_[i] = epoch;
  }
  st.metadata["aep_report"] = json{{"seq", seq_}, {"gen", gen_}, {"running", train_order_.running},
                                   {"steps_left", steps_left_}, {"stopped", stopped_}, {"errors", errors},
                                   {"last_train", lt}, {"last_test", lx}, {"last_test_kl", lk},
                                   {"included", included}, {"lockstep", lockstep}, {"samples", samples_}, {"engine_samples_per_s", engine_sps_}}
                                  .dump();
  changed_ = false;
  last_report_ = Clock::now();
  return serialize_safetensors(st);
}

namespace {

HostReport parse_report(const uint8_t* bytes, size_t size, bool borrow) {
  HostReport r;
  r.state = borrow ? parse_safetensors_view(bytes, size, "training host report")
                   : parse_safetensors(bytes, size, "training host report");
  const json h = head_of(r.state, "aep_report");
  r.seq = h.at("seq").get<uint64_t>(), r.gen = h.at("gen").get<uint64_t>();
  r.running = h.at("running").get<bool>();
  r.steps_left = h.at("steps_left").get<size_t>();
  r.stopped = h.at("stopped").get<std::string>();
  r.errors = h.at("errors").get<std::vector<std::string>>();
  for (const json& v : h.at("last_train")) r.last_train.push_back(num_of(v));
  for (const json& v : h.at("last_test")) r.last_test.push_back(num_of(v));
  for (const json& v : h.at("last_test_kl")) r.last_test_kl.push_back(num_of(v));
  r.included = h.at("included").get<std::vector<bool>>();
  r.lockstep = h.at("lockstep").get<std::vector<bool>>();
  if (r.included.size() != r.errors.size() || r.lockstep.size() != r.errors.size())
    throw std::runtime_error("training host: a report's run lists differ");
  r.samples = h.at("samples").get<uint64_t>();
  r.engine_samples_per_s = h.at("engine_samples_per_s").get<double>();
  return r;
}

}  // namespace

HostReport parse_host_report(const std::vector<uint8_t>& bytes) { return parse_report(bytes.data(), bytes.size(), false); }

HostReport parse_host_report(const uint8_t* bytes, size_t size) { return parse_report(bytes, size, true); }

}  // namespace aep
