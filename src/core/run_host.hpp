// The training side of the playground, apart from its drawing: the runs (the app's own, a lesson's twin, a beta
// sweep's), the data and the app's orders, trained continuously in slices. The page runs one in a Web Worker, the
// desktop app in a thread; the app and the host talk only in messages (bytes; safetensors with a JSON "aep_host"
// entry), one ordered queue each way. The app sends the runs' whole state whenever it changed them (save_run), so the
// host continues exactly where the app's run stood, and a seed gives the same weights as training in place.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/data.hpp"
#include "core/run.hpp"

namespace aep {

// What the app asks for; the app keeps one of each and sends them (host_order) in the order it makes them.
struct HostTrain {
  bool running = false;
  size_t steps = 0;       // while running: stop after this many steps (a Step button, a lesson's action); 0 = no limit
  bool lockstep = false;  // the other runs (a twin, a beta sweep's) take run 0's batches; otherwise only run 0 trains
  size_t eval_images = 1000;  // test images behind each test-loss point
  // Whether reports while training carry the optimizer state of the runs other than run 0 (at most once a second, as
  // run 0's): the app saves a lesson's twin with it. Without, they carry it only at rest (a beta sweep's runs: four
  // vae-mlp-16 optimizers are 35 MB a report).
  bool others_optimizer = false;
  bool operator==(const HostTrain& o) const {
    return running == o.running && steps == o.steps && lockstep == o.lockstep && eval_images == o.eval_images &&
           others_optimizer == o.others_optimizer;
  }
};

// Orders, app -> host. `seq` numbers them; reports name the last one the host applied.
// The runs' whole state (generation `gen`: reports of older generations are stale); an optimizer that has not stepped
// is left out (the host's is such a one).
std::vector<uint8_t> host_order_runs(uint64_t seq, uint64_t gen, const std::vector<const Run*>& runs);
// New settings (learning rate, loss, corruption, batch size ...: Run::apply_settings) for each run, kept where it is.
std::vector<uint8_t> host_order_settings(uint64_t seq, const std::vector<const Preset*>& presets);
std::vector<uint8_t> host_order_train(uint64_t seq, const HostTrain& t);
// The training and test images (raw IDX inside); with `append`, more of them (RunHost::add_data). `complete`: no more
// will come.
std::vector<uint8_t> host_order_data(uint64_t seq, const Dataset& train, const Dataset& test, bool append = false,
                                     bool complete = true);

// A report, host -> app: the runs' state since the last report, and how training goes.
struct HostReport {
  uint64_t seq = 0, gen = 0;
  bool running = false;
  size_t steps_left = 0;
  std::string stopped;              // why training stopped on its own: "epochs" when its epochs were done, or ""
  std::vector<std::string> errors;  // per run: the divergence that stopped it ("" while it trains)
  std::vector<double> last_train, last_test, last_test_kl;  // per run (NaN while none)
  uint64_t samples = 0;             // samples trained since the host started (a running count)
  double engine_samples_per_s = 0;  // inside the training slices
  // The runs: save_run under "r0.", "r1.", ... with the curve's new points only, and the optimizer's state when
  // training stopped or at most a second after the last that had it (the app keeps its own meanwhile; for the runs
  // other than run 0 only when HostTrain::others_optimizer asks for it). The batch order
  // only when an epoch began since it was last sent. While training, runs other than run 0 (a twin, a beta sweep's)
  // are in at most one report a second: a run that is not in a report is not under its prefix (`included` is false).
  SafeTensors state;
  std::vector<bool> included;
  std::vector<bool> lockstep;  // per run: at run 0's position with its data and batch size, not diverged (run 0: true)
};
HostReport parse_host_report(const std::vector<uint8_t>& bytes);
// The same without copying the runs' tensors: `state` borrows them from `bytes` (StTensor::view), which must outlive it.
HostReport parse_host_report(const uint8_t* bytes, size_t size);

class RunHost {
 public:
  // An order (host_order_*); throws on a malformed one, having changed nothing (but a runs order with a malformed run:
  // the host is left without runs, as the old ones make room for the new while they are built).
  void receive(const std::vector<uint8_t>& order);
  void receive(const uint8_t* order, size_t size);
  // Trains for about budget_ms when there is training to do; returns whether there is more.
  bool work(double budget_ms);
  // A report when one is due - every interval_s while training, at once when something else changed - else empty.
  // While training, the runs other than run 0 are in a report every others_s (see HostReport::included).
  std::vector<uint8_t> report(double interval_s, double others_s = 1.0);
  bool has_data() const { return train_.count > 0 && test_.count > 0; }
  // The training and test images, as the "data" order gives them (the page's worker unpacks MNIST itself).
  // `complete`: false while more is to come (a first part of MNIST: the preset's epochs are not counted yet).
  void set_data(Dataset train, Dataset test, bool complete = true);
  // More training and test images (the rest of MNIST): the runs keep training; the new images join each run's batch
  // order when its next epoch begins (Run::add_data).
  void add_data(Dataset train, Dataset test, bool complete = true);
  // The same from MNIST's four files (the page's worker), inflated straight into the data; complete after it.
  void add_mnist(const MnistFiles& rest);

 private:
  using Clock = std::chrono::steady_clock;
  Dataset train_, test_;
  bool data_complete_ = true;
  void data_grew(bool complete);
  std::vector<std::unique_ptr<Run>> runs_;
  std::vector<std::string> errors_;
  std::vector<double> last_train_, last_test_, last_test_kl_;
  std::vector<size_t> sent_curve_, sent_test_;  // curve points the app has
  std::vector<size_t> sent_epoch_;  // the epoch whose batch order the app has (size_t(-1): it may have another)
  std::vector<std::pair<size_t, size_t>> evaluated_;  // (steps, segments) of each run's last test point
  HostTrain train_order_;
  uint64_t seq_ = 0, gen_ = 0;
  size_t steps_left_ = 0;
  std::string stopped_;
  bool changed_ = true;
  uint64_t samples_ = 0;
  double engine_sps_ = 0, step_ms_ = 0, eval_s_ = 0;  // eval_s_: how long the last test-loss measurement took
  Clock::time_point last_report_ = Clock::now(), last_eval_ = Clock::now(), last_optimizer_ = Clock::now(),
                    last_others_ = Clock::now();

  void stop(const std::string& why);
  void evaluate_due(bool force);
};

}  // namespace aep
