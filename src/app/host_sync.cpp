// Training elsewhere: the app's runs trained by a host (core/run_host.hpp) in a Web Worker or a thread. The app keeps
// its runs as the views' copy, sends them whole when it changed them, sends orders when the learner's settings or
// Train/Pause/Step change, and takes the host's reports in. Reports that predate the app's last order are stale (the
// host had not seen it yet) bring the weights and curves, but whether training runs is still the app's to say.
#include "app/app_state.hpp"

namespace aep {

void App::attach_host(HostLink* link) {
  s_->host = HostSync();
  s_->host.link = link;
}

bool App::training_elsewhere() const { return s_->host.link != nullptr; }

void App::runs_changed() { ++s_->host.runs_rev; }

// Whether the app's runs are no longer those the host has: rebuilt, given other weights, or a twin or a sweep came or
// went.
bool HostSync::runs_moved(const std::vector<Run*>& runs) const {
  if (runs_rev != sent_rev || runs.size() != sent_runs.size()) return true;
  for (size_t i = 0; i < runs.size(); ++i)
    if (sent_runs[i] != runs[i] || sent_steps[i] != runs[i]->steps) return true;
  return false;
}

void HostSync::sent(const std::vector<Run*>& runs) {
  sent_runs.assign(runs.begin(), runs.end());
  sent_steps.clear();
  for (const Run* r : runs) sent_steps.push_back(r->steps);
}

// Whether hosted run `index` (`r`) takes run 0's batches: as the host last reported while it trains the runs (the
// app's copy of `r` may lag), else as the app's copies stand.
bool App::hosted_in_lockstep(size_t index, const Run& r) const {
  const HostSync& h = s_->host;
  if (h.link && index < h.lockstep.size()) return h.lockstep[index];
  return in_lockstep(*s_->run, r);
}

// Run 0 is the app's; then the twin (a lesson's, or "compare with"), then a beta sweep's runs.
std::vector<Run*> App::hosted_runs() const {
  const State& s = *s_;
  std::vector<Run*> runs{s.run.get()};
  if (s.lesson.twin) runs.push_back(s.lesson.twin.get());
  for (const auto& r : s.instr.sweep.runs) runs.push_back(r.get());
  return runs;
}

void App::sync_host() {
  State& s = *s_;
  HostSync& h = s.host;
  LessonPlay& L = s.lesson;
  if (!h.link) return;
  if (has_data() && !h.data_sent) {
    if (!host_data_given_) h.link->send(host_order_data(++h.seq, train_, test_, false, data_complete_));
    host_data_given_ = false;
    h.data_sent = true;
    h.sent_train_images = train_.count, h.sent_test_images = test_.count;
    h.sent_rev = 0;  // the host rebuilt its runs' batch order: send them again
  } else if (h.data_sent && (h.sent_train_images != train_.count || h.sent_test_images != test_.count)) {  // more (add_data)
    if (!host_data_given_)
      h.link->send(host_order_data(++h.seq, dataset_tail(train_, h.sent_train_images), dataset_tail(test_, h.sent_test_images), true,
                                   data_complete_));
    host_data_given_ = false;
    h.sent_train_images = train_.count, h.sent_test_images = test_.count;
  }
  const std::vector<Run*> runs = hosted_runs();
  // The runs' settings as the host should have them (the runs order carries them too).
  std::string settings;
  std::vector<const Preset*> presets;
  for (const Run* r : runs) settings += preset_to_json(r->preset).dump(), presets.push_back(&r->preset);
  if (h.runs_moved(runs)) {
    h.link->send(host_order_runs(++h.seq, ++h.gen, std::vector<const Run*>(runs.begin(), runs.end())));
    h.sent_rev = h.runs_rev;
    h.sent(runs);
    h.lockstep.clear();
    h.sent_train = HostTrain();  // the host waits for a train order
    h.sent_settings = settings;
  }
  if (settings != h.sent_settings) {
    h.link->send(host_order_settings(++h.seq, presets));
    h.sent_settings = settings;
  }
  HostTrain want;
  want.running = s.running && has_data();
  // The host steps with run 0 the runs still in lockstep with it (it checks each, and leaves out those that diverged).
  want.lockstep = (L.twin && L.twin_error.empty() && twin_in_lockstep()) || sweep_in_lockstep();
  want.eval_images = eval_images;
  want.others_optimizer = L.twin != nullptr;  // the autosave saves a lesson's twin with it; a sweep's runs need it at rest
  // A limit is set when training starts: a lesson's action, or the Step button's count.
  if (want.running) want.steps = h.sent_train.running ? h.sent_train.steps : L.action_left > 0 ? L.action_left : h.pending_steps;
  if (!(want == h.sent_train)) {
    h.link->send(host_order_train(++h.seq, want));
    h.sent_train = want;
  }
}

void App::host_report(const std::vector<uint8_t>& bytes) { host_report(bytes.data(), bytes.size()); }

void App::host_report(const uint8_t* bytes, size_t size) {
  State& s = *s_;
  HostSync& h = s.host;
  LessonPlay& L = s.lesson;
  const HostReport r = parse_host_report(bytes, size);  // borrows the tensors from `bytes`
  // Of runs since replaced (sent or not yet): the host starts over from the runs it is sent next.
  const std::vector<Run*> runs = hosted_runs();
  if (r.gen != h.gen || h.runs_moved(runs)) return;
  const size_t n = runs.size();
  try {
    if (r.errors.size() != n) throw std::runtime_error("a report of " + std::to_string(r.errors.size()) + " runs");
    // Each update checks everything before it changes anything; the curves go on from the points the last report left.
    for (size_t i = 0; i < n; ++i)
      if (r.included[i]) update_run(*runs[i], r.state, "r" + std::to_string(i) + ".");
  } catch (...) {
    runs_changed();  // out of step with the host: it gets the runs whole again
    throw;
  }
  h.sent(runs);
  h.lockstep = r.lockstep;
  ++h.reports;
  h.acked = r.seq;
  s.last_train = r.last_train[0];
  s.last_test = r.last_test[0], s.last_test_kl = r.last_test_kl[0];
  if (h.have_samples && r.samples >= h.samples) s.samples_trained += r.samples - h.samples;
  h.samples = r.samples, h.have_samples = true;
  s.engine_samples_per_s = r.engine_samples_per_s;
  const size_t first_sweep = L.twin ? 2 : 1;
  if (L.twin && !r.errors[1].empty()) L.twin_error = r.errors[1];
  for (size_t i = first_sweep; i < n; ++i)
    if (!r.errors[i].empty()) s.instr.sweep.errors[i - first_sweep] = r.errors[i];
  s.views_dirty = true;
  // Whether training runs is the app's to say until the host has seen its last order (a report from before a Pause
  // still says running); after that the host's: it stops on its own when the steps are taken, the epochs done, or a
  // run diverged.
  if (r.seq < h.seq) return;
  if (r.running) {
    if (L.action_left > 0) L.action_left = r.steps_left;
  } else if (s.running && h.sent_train.running) {  // (not a training that waits for its data)
    s.running = false;
    L.action_left = 0;
    h.pending_steps = 0;
    h.sent_train = HostTrain();
    if (r.stopped == "diverged") diverged(r.errors[0]);
    if (r.stopped == "epochs") message = "Finished " + std::to_string(s.preset.training.epochs) + " epoch(s).";
  }
}

}  // namespace aep
