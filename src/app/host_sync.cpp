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

// Whether the app's runs are no longer those the host has: rebuilt, given other weights, or a twin came or went.
bool HostSync::runs_moved(const Run* run, const Run* twin) const {
  return runs_rev != sent_rev || sent_run[0] != run || sent_run[1] != twin || sent_steps[0] != run->steps ||
         (twin && sent_steps[1] != twin->steps);
}

void App::sync_host() {
  State& s = *s_;
  HostSync& h = s.host;
  LessonPlay& L = s.lesson;
  if (!h.link) return;
  if (has_data() && !h.data_sent) {
    if (!host_data_given_) h.link->send(host_order_data(++h.seq, train_, test_));
    host_data_given_ = false;
    h.data_sent = true;
    h.sent_rev = 0;  // the host rebuilt its runs' batch order: send them again
  }
  const Run* twin = L.twin.get();
  // The runs' settings as the host should have them (the runs order carries them too).
  const std::string settings = preset_to_json(s.run->preset).dump() + (twin ? preset_to_json(twin->preset).dump() : "");
  if (h.runs_moved(s.run.get(), twin)) {
    std::vector<const Run*> runs{s.run.get()};
    if (twin) runs.push_back(twin);
    h.link->send(host_order_runs(++h.seq, ++h.gen, runs));
    h.sent_rev = h.runs_rev;
    h.sent_run[0] = s.run.get(), h.sent_run[1] = twin;
    h.sent_steps[0] = s.run->steps, h.sent_steps[1] = twin ? twin->steps : 0;
    h.sent_train = HostTrain();  // the host waits for a train order
    h.sent_settings = settings;
  }
  if (settings != h.sent_settings) {
    std::vector<const Preset*> presets{&s.run->preset};
    if (twin) presets.push_back(&twin->preset);
    h.link->send(host_order_settings(++h.seq, presets));
    h.sent_settings = settings;
  }
  HostTrain want;
  want.running = s.running && has_data();
  want.lockstep = twin && L.twin_error.empty() && twin_in_lockstep();
  want.eval_images = eval_images;
  // A limit is set when training starts: a lesson's action, or the Step button's count.
  if (want.running) want.steps = h.sent_train.running ? h.sent_train.steps : L.action_left > 0 ? L.action_left : h.pending_steps;
  if (!(want == h.sent_train)) {
    h.link->send(host_order_train(++h.seq, want));
    h.sent_train = want;
  }
}

void App::host_report(const std::vector<uint8_t>& bytes) {
  State& s = *s_;
  HostSync& h = s.host;
  LessonPlay& L = s.lesson;
  const HostReport r = parse_host_report(bytes);
  // Of runs since replaced (sent or not yet): the host starts over from the runs it is sent next.
  if (r.gen != h.gen || h.runs_moved(s.run.get(), L.twin.get())) return;
  Run* runs[2] = {s.run.get(), L.twin.get()};
  const size_t n = runs[1] ? 2 : 1;
  try {
    if (r.errors.size() != n) throw std::runtime_error("a report of " + std::to_string(r.errors.size()) + " runs");
    // Each update checks everything before it changes anything; the curves go on from the points the last report left.
    update_run(*runs[0], r.state, "r0.");
    if (n == 2) update_run(*runs[1], r.state, "r1.");
  } catch (...) {
    runs_changed();  // out of step with the host: it gets the runs whole again
    throw;
  }
  h.sent_steps[0] = runs[0]->steps, h.sent_steps[1] = n == 2 ? runs[1]->steps : 0;
  ++h.reports;
  h.acked = r.seq;
  s.last_train = r.last_train[0];
  s.last_test = r.last_test[0], s.last_test_kl = r.last_test_kl[0];
  if (h.have_samples && r.samples >= h.samples) s.samples_trained += r.samples - h.samples;
  h.samples = r.samples, h.have_samples = true;
  s.engine_samples_per_s = r.engine_samples_per_s;
  if (n == 2 && !r.errors[1].empty()) L.twin_error = r.errors[1];
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
