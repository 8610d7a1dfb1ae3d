// A run's whole state moves between threads (save_run / load_run) and the training host (RunHost) trains it: the
// weights must be those of training in place, bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/preset.hpp"
#include "core/run_host.hpp"
#include "core/weights.hpp"

using namespace aep;

namespace {

Dataset digits(size_t count, uint64_t seed) {  // random 28x28 images with labels, like MNIST's shape
  Dataset d;
  d.name = "synthetic";
  d.count = count, d.rows = 28, d.cols = 28;
  d.pixels.resize(count * 784);
  d.labels.resize(count);
  Rng r(seed);
  for (auto& p : d.pixels) p = uint8_t(r.below(256));
  for (auto& l : d.labels) l = uint8_t(r.below(10));
  return d;
}

// Bit for bit; an empty vector's data() may be null, which memcmp must not be given.
bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool same_weights(const Run& a, const Run& b) {
  return same_bytes(a.model->values, b.model->values) && same_bytes(a.model->buffer_values, b.model->buffer_values);
}

}  // namespace

TEST_CASE("run state: a run saved after k steps and loaded elsewhere continues bit for bit") {
  const Dataset d = digits(300, 3);
  for (const char* name : {"linear", "vae-mlp", "deep-linear", "conv-simple"}) {
    CAPTURE(name);
    Preset p = load_preset(name);
    p.training.batch_size = 32;
    p.corruption.type = "gaussian";  // the trainer's random stream matters
    p.corruption.std = 0.3f;
    Run a(p, 7);
    a.set_data(d, 4);
    for (int i = 0; i < 12; ++i) a.step();  // into the second epoch (270 images, batches of 32)
    SafeTensors st;
    save_run(a, st, "x.");
    const std::vector<uint8_t> bytes = serialize_safetensors(st);
    std::unique_ptr<Run> b = load_run(parse_safetensors(bytes.data(), bytes.size(), "t"), "x.", &d);
    CHECK(same_weights(a, *b));
    CHECK(b->steps == 12);
    CHECK(b->held_out == 4);
    CHECK(b->curve.train == a.curve.train);
    a.set_batch_size(20), b->set_batch_size(20);  // a new batch size mid-epoch too
    for (int i = 0; i < 15; ++i) CHECK(a.step().total == b->step().total);
    CHECK(same_weights(a, *b));
    CHECK(a.last_batch() == b->last_batch());
  }
}

TEST_CASE("run state: update_run appends the curve's new points and refuses another model, changing nothing") {
  const Dataset d = digits(200, 5);
  Preset p = load_preset("linear");
  Run a(p, 1), b(p, 1);
  a.set_data(d), b.set_data(d);
  for (int i = 0; i < 5; ++i) a.step();
  SafeTensors s1;
  save_run(a, s1, "");
  update_run(b, s1, "");
  for (int i = 0; i < 4; ++i) a.step();
  SafeTensors s2;
  save_run(a, s2, "", 5, 0);  // b has the first 5 points
  CHECK(s2.find("curve.train")->numel() == 4);
  update_run(b, s2, "");
  CHECK(b.curve.train == a.curve.train);
  CHECK(b.curve.step == a.curve.step);
  CHECK(same_weights(a, b));
  Run other(load_preset("mlp-128-64"), 1);
  other.set_data(d);
  const std::vector<float> before = other.model->values;
  CHECK_THROWS_WITH(update_run(other, s2, ""), doctest::Contains("another model"));
  CHECK(other.model->values == before);
  SafeTensors far;
  save_run(a, far, "", 7, 0);  // a tail after points `b2` does not have
  Run b2(p, 1);
  b2.set_data(d);
  CHECK_THROWS_WITH(update_run(b2, far, ""), doctest::Contains("does not have"));
  CHECK(b2.steps == 0);
}

TEST_CASE("training host: orders in, reports out - the same weights as training in place, test points measured") {
  const Dataset train = digits(400, 9), test = digits(200, 10);
  Preset p = load_preset("linear");
  p.training.batch_size = 32;
  Preset q = load_preset("linear");  // the twin: another learning rate
  q.training.batch_size = 32;
  q.optimizer.lr = 0.01f;
  Run a(p, 3), b(q, 3);
  a.set_data(train), b.set_data(train);
  for (int i = 0; i < 3; ++i) step_lockstep({&a, &b});  // the app trained a little before handing over

  RunHost host;
  host.receive(host_order_data(1, train, test));
  host.receive(host_order_runs(2, 1, {&a, &b}));
  HostTrain t;
  t.running = true, t.steps = 25, t.lockstep = true, t.eval_images = 100;
  host.receive(host_order_train(3, t));
  while (host.work(5)) {
  }
  std::vector<uint8_t> rep = host.report(0.1);
  REQUIRE(!rep.empty());
  HostReport r = parse_host_report(rep);
  CHECK(r.seq == 3);
  CHECK(r.gen == 1);
  CHECK(!r.running);
  CHECK(r.stopped == "steps");
  // In place: the same 25 steps, with test evaluations in between (they must not disturb training).
  size_t samples = 0;
  for (int i = 0; i < 25; ++i) step_lockstep({&a, &b}), samples += 2 * a.input.shape()[0];
  Run ma(p, 3), mb(q, 3);  // the app's copies, brought up to date by the report
  ma.set_data(train), mb.set_data(train);
  SafeTensors s0;
  save_run(a, s0, "");  // (any state of the same model: update_run replaces all but the curve's head)
  a.curve.test.clear(), a.curve.test_step.clear();
  Run* mine[2] = {&ma, &mb};
  for (int i = 0; i < 2; ++i) {
    mine[i]->curve = LossCurve();
    mine[i]->curve.segments.push_back({0, 0, "MSE, mean"});
  }
  // The app had the first 3 points of each curve when it sent the runs.
  for (Run* m : mine) {
    m->curve.step = {1, 2, 3};
    m->curve.train = m == &ma ? std::vector<float>(a.curve.train.begin(), a.curve.train.begin() + 3)
                              : std::vector<float>(b.curve.train.begin(), b.curve.train.begin() + 3);
    m->curve.recon = m == &ma ? std::vector<float>(a.curve.recon.begin(), a.curve.recon.begin() + 3)
                              : std::vector<float>(b.curve.recon.begin(), b.curve.recon.begin() + 3);
    m->curve.kl = {0, 0, 0};
  }
  update_run(ma, r.state, "r0.");
  update_run(mb, r.state, "r1.");
  CHECK(ma.steps == 28);
  CHECK(same_weights(ma, a));
  CHECK(same_weights(mb, b));
  CHECK(ma.curve.train == a.curve.train);
  REQUIRE(ma.curve.test.size() >= 1);  // measured once training stopped, at its last step
  CHECK(ma.curve.test_step.back() == 28.f);
  CHECK(std::isfinite(r.last_test[0]));
  CHECK(r.last_test[0] == doctest::Approx(ma.curve.test.back()));
  CHECK(r.samples == samples);  // both runs' batches (two of them the short end of an epoch)
}

TEST_CASE("training host: settings apply where the run stands; stops at its epochs; a malformed order changes nothing") {
  const Dataset train = digits(100, 1), test = digits(50, 2);
  Preset p = load_preset("linear");
  p.training.batch_size = 50;
  p.training.epochs = 2;
  Run a(p, 1);
  a.set_data(train);
  RunHost host;
  host.receive(host_order_data(1, train, test));
  host.receive(host_order_runs(2, 1, {&a}));
  Preset faster = p;
  faster.optimizer.lr = 0.05f;
  host.receive(host_order_settings(3, {&faster}));
  HostTrain t;
  t.running = true;
  host.receive(host_order_train(4, t));
  while (host.work(5)) {
  }
  HostReport r = parse_host_report(host.report(0.1));
  CHECK(r.stopped == "epochs");
  a.apply_settings(faster);
  do a.step();  // 2 epochs of 2 batches: the step that starts a third one is the last (as the app's frames)
  while (a.sampler->epoch < 2);
  Run m(p, 1);
  m.set_data(train);
  update_run(m, r.state, "r0.");
  CHECK(same_weights(m, a));
  CHECK(m.preset.optimizer.lr == 0.05f);
  std::vector<uint8_t> bad = host_order_train(5, t);
  bad.resize(bad.size() / 2);
  CHECK_THROWS(host.receive(bad));
  CHECK(host.report(0.1).empty());  // nothing changed, nothing to report
}

TEST_CASE("training host: reports carry the batch order only when an epoch began, the other runs at most once a second") {
  const Dataset train = digits(100, 4), test = digits(50, 5);
  Preset p = load_preset("linear");
  p.training.batch_size = 32;  // 4 batches an epoch (the last one short)
  Preset q = p;
  q.optimizer.lr = 0.01f;
  Run a(p, 7), b(q, 7);
  a.set_data(train), b.set_data(train);
  Run ma(p, 7), mb(q, 7);  // the app's copies, as it sent them
  ma.set_data(train), mb.set_data(train);
  RunHost host;
  host.receive(host_order_data(1, train, test));
  host.receive(host_order_runs(2, 1, {&a, &b}));
  HostTrain t;
  t.running = true, t.steps = 11, t.lockstep = true, t.eval_images = 20;
  host.receive(host_order_train(3, t));
  size_t orders = 0, with_b = 0, epoch = a.sampler->epoch;
  for (int i = 0; i < 11; ++i) {
    host.work(0);  // one step
    step_lockstep({&a, &b});
    const std::vector<uint8_t> bytes = host.report(0, 1e9);  // run 1 only once training stopped
    REQUIRE(!bytes.empty());
    const HostReport r = parse_host_report(bytes);
    REQUIRE(r.included.size() == 2);
    CHECK(r.included[0]);
    CHECK(r.lockstep == std::vector<bool>{true, true});
    // The order is in when the host's run 0 began an epoch since the last report, and only then.
    const bool began = a.sampler->epoch != epoch;
    epoch = a.sampler->epoch;
    CHECK((r.state.find("r0.sampler.order") != nullptr) == began);
    orders += began;
    update_run(ma, r.state, "r0.");
    CHECK(r.included[1] == !r.running);
    CHECK((r.state.metadata.count("r1.run") == 1) == r.included[1]);
    if (r.included[1]) update_run(mb, r.state, "r1."), ++with_b;
    CHECK(same_weights(ma, a));
    CHECK(ma.sampler->save().order == a.sampler->save().order);
  }
  CHECK(orders >= 2);  // 11 steps of 4 an epoch
  CHECK(with_b == 1);  // the last report (training stopped) has it
  CHECK(!mb.curve.step.empty());
  CHECK(same_weights(mb, b));  // the report after the last step (training stopped) has every run
  CHECK(mb.sampler->save().order == b.sampler->save().order);
  CHECK(mb.steps == b.steps);
  // A kept order can only update a run: a whole run needs it.
  SafeTensors kept;
  save_run(a, kept, "", 0, 0, true, false);
  CHECK_THROWS_WITH(load_run(kept, "", &train), doctest::Contains("batch order is missing"));
  Run other(p, 9);
  other.set_data(train);
  update_run(other, kept, "");  // the position and weights, its own order kept
  CHECK(same_weights(other, a));
  CHECK(other.sampler->save().pos == a.sampler->save().pos);
}

TEST_CASE("data in two parts: a first part trains at once, the rest joins at the next epoch without a reset") {
  SUBCASE("the sampler: the epoch under way finishes over the images it had, the next covers them all once") {
    BatchSampler s(10, 4, true, 3);
    size_t n;
    s.next(n);  // one batch of epoch 0 drawn
    const std::vector<uint32_t> epoch0 = s.save().order;
    s.grow(16);
    CHECK(s.count() == 16);
    CHECK(s.epoch_images() == 10);
    std::vector<uint32_t> rest;
    while (s.epoch == 0) {
      const uint32_t* b = s.next(n);
      if (s.epoch == 0) rest.insert(rest.end(), b, b + n);
      else rest.push_back(999);  // (the first batch of epoch 1)
    }
    rest.pop_back();
    CHECK(rest == std::vector<uint32_t>(epoch0.begin() + 4, epoch0.begin() + 10));  // epoch 0 as it was drawn
    CHECK(s.epoch_images() == 16);
    std::vector<uint32_t> epoch1 = s.save().order;
    std::sort(epoch1.begin(), epoch1.end());
    std::vector<uint32_t> all(16);
    std::iota(all.begin(), all.end(), 0u);
    CHECK(epoch1 == all);  // every image once
    CHECK_THROWS_WITH(s.grow(12), doctest::Contains("cannot shrink"));
    // A smaller writer's order loads (its data had not grown yet); a larger one does not.
    BatchSampler big(16, 4, true, 5), small(10, 4, true, 5);
    big.load(small.save());
    CHECK(big.epoch_images() == 10);
    CHECK(big.count() == 16);
    CHECK_THROWS_WITH(small.load(BatchSampler(16, 4, true, 5).save()), doctest::Contains("batch order of 16 images"));
  }

  SUBCASE("a run: the held-out digit stays out, the preset's epochs count from the first epoch over everything") {
    const Dataset full = digits(200, 11);
    Dataset part = dataset_tail(full, 0);
    truncate_dataset(part, 60);
    Preset p = load_preset("linear");
    p.training.batch_size = 16;
    p.training.epochs = 2;
    Run r(p, 5);
    r.set_data(part, 3, true, false);
    for (int i = 0; i < 40; ++i) r.step();  // many epochs over the first part: they do not count
    CHECK(r.sampler->epoch >= 5);
    CHECK(r.epoch() >= 5.0);  // passes over the first part
    CHECK_FALSE(r.epochs_done());
    append_dataset(part, dataset_tail(full, 60));
    const size_t e = r.sampler->epoch;
    r.add_data(part, true);
    CHECK(r.full_from == e + 1);
    size_t held = 0;
    for (uint8_t l : full.labels) held += l == 3;
    CHECK(r.train_images() == 200 - held);
    std::vector<uint32_t> drawn;
    while (!r.epochs_done()) {
      r.step();
      if (r.sampler->epoch == e + 1) drawn.insert(drawn.end(), r.last_batch().begin(), r.last_batch().end());
      // epoch() counts epochs over all of the data (0 while the first part's last one finishes)
      if (r.sampler->epoch <= e) CHECK(r.epoch() == 0.0);
      else CHECK(r.epoch() >= double(r.sampler->epoch - e - 1));
      CHECK(r.epoch() <= double(r.sampler->epoch - e));  // (1.0 into an epoch: its last batch drawn)
    }
    CHECK(r.sampler->epoch == e + 3);  // (stops in the first batch of the epoch after two full ones, as before)
    std::sort(drawn.begin(), drawn.end());
    CHECK(drawn.size() == 200 - held);  // the first full epoch: every image but the 3s, once
    CHECK(std::adjacent_find(drawn.begin(), drawn.end()) == drawn.end());
    for (uint32_t i : drawn) CHECK(full.labels[i] != 3);
    CHECK(drawn.back() >= 60);
  }

  SUBCASE("a training host takes the rest as an order; the app's copies stay those of training in place") {
    const Dataset full = digits(150, 4), test = digits(50, 5);
    Dataset part = dataset_tail(full, 0), test_part = dataset_tail(test, 0);
    truncate_dataset(part, 40), truncate_dataset(test_part, 20);
    Preset p = load_preset("linear");
    p.training.batch_size = 16;
    p.training.epochs = 1;
    Run a(p, 7), ma(p, 7);  // training in place; the app's copy
    a.set_data(part, -1, true, false), ma.set_data(part, -1, true, false);
    RunHost host;
    host.receive(host_order_data(1, part, test_part, false, false));
    host.receive(host_order_runs(2, 1, {&a}));
    HostTrain t;
    t.running = true, t.eval_images = 10;
    host.receive(host_order_train(3, t));
    Dataset in_place = part;
    bool more = true;
    for (int i = 0; i < 200 && more; ++i) {  // 1 epoch asked for; the first part's epochs do not count
      more = host.work(0);                    // one step
      a.step();
      if (i == 7) {
        // A malformed order changes nothing.
        Dataset bad = dataset_tail(test, 20);
        bad.labels.pop_back();
        CHECK_THROWS_WITH(host.receive(host_order_data(4, dataset_tail(full, 40), bad, true, true)),
                          doctest::Contains("labels"));
        host.receive(host_order_data(4, dataset_tail(full, 40), dataset_tail(test, 20), true, true));
        append_dataset(in_place, dataset_tail(full, 40));
        a.add_data(in_place, true);
        // The app grows its copy before any later report reaches it (the page does both in one task).
        append_dataset(part, dataset_tail(full, 40));
        ma.add_data(part, true);
      }
      const std::vector<uint8_t> bytes = host.report(0);
      REQUIRE(!bytes.empty());
      update_run(ma, parse_host_report(bytes).state, "r0.");
      CHECK(same_weights(ma, a));
      CHECK(ma.sampler->save().order == a.sampler->save().order);
      CHECK(more == !a.epochs_done());
    }
    CHECK(a.sampler->epoch_images() == 150);  // the later epochs cover everything
    CHECK(ma.full_from == a.full_from);
    CHECK(a.full_from == 3);  // epoch 2 was under way when the rest came (3 batches an epoch over 40 images)
    CHECK(a.epochs_done());
    CHECK(same_weights(ma, a));
  }
}

TEST_CASE("training host: while training, reports carry no optimizer state of runs >= 1 unless asked; at rest all of it") {
  const Dataset train = digits(100, 6), test = digits(50, 7);
  Preset p = load_preset("linear");
  p.training.batch_size = 32;
  Preset q = p, u = p;
  q.optimizer.lr = 0.01f, u.optimizer.lr = 0.003f;
  for (bool asked : {false, true}) {
    CAPTURE(asked);
    Run a(p, 5), b(q, 5), c(u, 5);  // trained in place
    a.set_data(train), b.set_data(train), c.set_data(train);
    Run ma(p, 5), mb(q, 5), mc(u, 5);  // the app's copies, as it sent them
    ma.set_data(train), mb.set_data(train), mc.set_data(train);
    RunHost host;
    host.receive(host_order_data(1, train, test));
    const std::vector<uint8_t> runs = host_order_runs(2, 1, {&a, &b, &c});
    host.receive(runs.data(), runs.size());  // read in place
    HostTrain t;
    t.running = true, t.steps = 9, t.lockstep = true, t.eval_images = 20, t.others_optimizer = asked;
    host.receive(host_order_train(3, t));
    Run* mine[3] = {&ma, &mb, &mc};
    size_t at_rest = 0;
    for (int i = 0; i < 9; ++i) {
      host.work(0);  // one step
      step_lockstep({&a, &b, &c});
      const std::vector<uint8_t> bytes = host.report(0, 0);  // every run in every report
      REQUIRE(!bytes.empty());
      const HostReport r = parse_host_report(bytes.data(), bytes.size());  // borrows from `bytes`
      REQUIRE(r.included == std::vector<bool>{true, true, true});
      const bool opt0 = r.state.find("r0.model.optimizer.step") != nullptr;
      for (const char* k : {"r1.", "r2."}) {
        CAPTURE(k);
        const bool opt = r.state.find(std::string(k) + "model.optimizer.step") != nullptr;
        bool exp_avg = false;
        for (const StTensor& x : r.state.tensors) exp_avg |= x.name.rfind(std::string(k) + "model.optimizer.exp_avg.", 0) == 0;
        CHECK(opt == exp_avg);
        // At rest every run has it; while training the others only when asked, and then with run 0's.
        CHECK(opt == (!r.running || (asked && opt0)));
      }
      at_rest += !r.running;
      for (int k = 0; k < 3; ++k) update_run(*mine[k], r.state, "r" + std::to_string(k) + ".");
    }
    CHECK(at_rest == 1);  // the last report: training stopped
    // The app's copies end as training in place left the runs, bit for bit: weights, optimizer, batch order, curve.
    const Run* place[3] = {&a, &b, &c};
    for (int k = 0; k < 3; ++k) {
      CAPTURE(k);
      CHECK(same_weights(*mine[k], *place[k]));
      CHECK(same_bytes(mine[k]->trainer->optimizer.exp_avg, place[k]->trainer->optimizer.exp_avg));
      CHECK(same_bytes(mine[k]->trainer->optimizer.exp_avg_sq, place[k]->trainer->optimizer.exp_avg_sq));
      CHECK(mine[k]->trainer->optimizer.steps() == place[k]->trainer->optimizer.steps());
      CHECK(mine[k]->sampler->save().order == place[k]->sampler->save().order);
      CHECK(mine[k]->curve.train == place[k]->curve.train);
      CHECK(mine[k]->steps == 9);
    }
  }
}

TEST_CASE("run state: saved borrowing the run's memory, the bytes are those of a copy; a view parse reads the same") {
  const Dataset d = digits(100, 8);
  Preset p = load_preset("vae-mlp");
  p.training.batch_size = 32;
  Run a(p, 2);
  a.set_data(d);
  for (int i = 0; i < 5; ++i) a.step();
  SafeTensors copied, borrowed;
  save_run(a, copied, "x.", 2, 0);
  save_run(a, borrowed, "x.", 2, 0, true, true, true);
  const std::vector<uint8_t> bytes = serialize_safetensors(copied);
  CHECK(serialize_safetensors(borrowed) == bytes);
  const SafeTensors owned = parse_safetensors(bytes.data(), bytes.size(), "t");
  const SafeTensors view = parse_safetensors_view(bytes.data(), bytes.size(), "t");
  REQUIRE(view.tensors.size() == owned.tensors.size());
  for (size_t i = 0; i < view.tensors.size(); ++i) {
    CAPTURE(view.tensors[i].name);
    CHECK(view.tensors[i].bytes.empty());  // borrowed, not copied
    CHECK(view.tensors[i].nbytes() == owned.tensors[i].nbytes());
    if (view.tensors[i].dtype == DType::F32) CHECK(view.tensors[i].as_f32() == owned.tensors[i].as_f32());
  }
  CHECK(serialize_safetensors(view) == serialize_safetensors(owned));  // (both in offset order: empty tensors by name)
}

TEST_CASE("training host: a runs order replaces the runs one by one; a malformed run leaves the host without runs") {
  const Dataset train = digits(100, 2), test = digits(50, 3);
  Preset p = load_preset("linear");
  p.training.batch_size = 32;
  Run a(p, 4), b(p, 5), c(p, 6);
  a.set_data(train), b.set_data(train), c.set_data(train);
  a.step();  // its optimizer is sent; b's and c's have not stepped (left out: the host's fresh ones are the same)
  RunHost host;
  host.receive(host_order_data(1, train, test));
  host.receive(host_order_runs(2, 1, {&a, &b, &c}));
  host.receive(host_order_runs(3, 2, {&b, &a}));  // fewer runs, in other places
  HostReport r = parse_host_report(host.report(0.1));
  REQUIRE(r.included == std::vector<bool>{true, true});
  CHECK(r.gen == 2);
  Run mb(p, 5), ma(p, 4);  // the app's copies (the report's curves go on from the points they have)
  mb.set_data(train), ma.set_data(train);
  ma.step();
  ma.trainer->optimizer.exp_avg.assign(ma.trainer->optimizer.exp_avg.size(), 0.f);  // (the report brings a's)
  update_run(mb, r.state, "r0."), update_run(ma, r.state, "r1.");
  CHECK(same_weights(mb, b));
  CHECK(same_weights(ma, a));
  CHECK(same_bytes(ma.trainer->optimizer.exp_avg, a.trainer->optimizer.exp_avg));
  CHECK(ma.trainer->optimizer.steps() == 1);
  // Run 1 of this order lacks a tensor: run 0 was built, then the host refuses and keeps no runs.
  const std::vector<uint8_t> good = host_order_runs(4, 3, {&a, &c});
  SafeTensors bad = parse_safetensors(good.data(), good.size(), "t");
  bad.tensors.erase(std::find_if(bad.tensors.begin(), bad.tensors.end(),
                                 [](const StTensor& t) { return t.name.rfind("r1.model.", 0) == 0; }));
  CHECK_THROWS_WITH(host.receive(serialize_safetensors(bad)), doctest::Contains("missing"));
  r = parse_host_report(host.report(0.1));
  CHECK(r.included.empty());
  CHECK(!r.running);
  host.receive(good);  // and takes the next one
  r = parse_host_report(host.report(0.1));
  CHECK(r.included.size() == 2);
  CHECK(r.gen == 3);
}
