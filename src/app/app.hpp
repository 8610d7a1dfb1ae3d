// The playground: every panel drawn from the App state by one platform-free frame(), training in time slices
// inside frames. Drivers (src/platform) own the window, GL and data loading; tests drive it headless.
#pragma once
#include <imgui.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/driver.hpp"
#include "core/data.hpp"
#include "core/export.hpp"
#include "core/idx.hpp"
#include "core/lesson.hpp"
#include "core/model.hpp"
#include "core/pca.hpp"
#include "core/safetensors.hpp"
#include "core/run.hpp"
#include "core/run_host.hpp"

namespace aep {

// Textures come from the driver (OpenGL on desktop and WebGL2); headless tests leave both null.
struct TextureApi {
  ImTextureID (*create)(int w, int h) = nullptr;
  void (*update)(ImTextureID tex, int w, int h, const uint8_t* rgba) = nullptr;
  void (*destroy)(ImTextureID tex) = nullptr;
};

// An RGBA picture the app paints digits into and shows with ImGui::Image.
struct Picture {
  int w = 0, h = 0;
  std::vector<uint8_t> rgba;
  ImTextureID tex = nullptr;
  int tex_w = 0, tex_h = 0;
  bool dirty = false;
  void resize(int width, int height);  // clears to dark grey
  // A 28x28 image at (x0, y0); values map lo..hi to black..white (clamped).
  void put_digit(int x0, int y0, const float* img, float lo, float hi);
  // An anti-aliased dot of `radius` pixels centred at pixel coordinates (x, y), painted over what is there.
  void put_dot(float x, float y, float radius, ImU32 color);
  // Uploads if changed and returns the texture (null in headless tests).
  ImTextureID texture(const TextureApi& api);
  // Uploads if changed and draws at `scale` screen pixels per image pixel; returns the top-left screen point.
  ImVec2 show(const TextureApi& api, float scale);
};

enum PanelId { kPanelModel, kPanelData, kPanelTraining, kPanelRecon, kPanelLatent, kPanelGenerate, kPanelDraw,
               kPanelAnomaly, kPanelInside, kPanelSave, kPanelCount };
const char* panel_key(int id);  // "model", "data", ... as used in the URL's panels=
struct InstrumentCommand;       // app/instrument_views.hpp
enum class ForeignSource;

class App {
 public:
  // The driver serves downloads, file choosing, links and Fashion-MNIST; without one (tests) those do nothing.
  explicit App(TextureApi textures = {}, Driver* driver = nullptr);
  ~App();

  // Data from the driver (files natively, bytes fetched by the page on the web).
  // `complete`: false when more images will come (add_data): the page starts on a first part of MNIST.
  void set_data(Dataset train, Dataset test, bool complete = true);
  // More training and test images (the rest of MNIST): training goes on; every run takes the new images from its
  // next epoch on (Run::add_data), and the views start over on the larger test set. Throws, changing nothing, on
  // images that do not fit the ones loaded.
  void add_data(Dataset train, Dataset test, bool complete = true);
  // The same from MNIST's four files (the rest after a first part), inflated straight into the data (the page's: the
  // rest of MNIST is never twice in memory); the data is complete after it.
  void add_mnist(const MnistFiles& rest);
  bool data_complete() const { return has_data() && data_complete_; }
  bool has_data() const { return train_.count > 0 && test_.count > 0; }
  void set_status_line(std::string s) { loading_ = std::move(s); }

  // Draws every visible panel and trains for at most train_budget_ms.
  void frame();

  // The JS API / postMessage / URL parameters: {"preset": "conv", "lr": 0.001, "train": true, ...}.
  // Applies what is valid, returns {"ok": true} or {"ok": false, "errors": [...]} (nothing invalid is applied).
  nlohmann::json command(const nlohmann::json& cmd);
  // {preset, step, epoch, trainLoss, testLoss, samplesPerSec, running, error, ...}
  nlohmann::json status() const;

  // The model's state_dict as safetensors bytes (loads strict in PyTorch); with_optimizer adds the optimizer's state
  // under optimizer.* keys, to continue training here later. Loading keeps the current model on any error.
  std::vector<uint8_t> save_weights_bytes(bool with_optimizer = false) const;
  // Hands the weights file (see save_weights_bytes) to the driver's download: the Save panel's two buttons and the
  // command {"download": "weights" | "weights+optimizer"}.
  void request_download(bool with_optimizer);
  void load_weights_bytes(const std::vector<uint8_t>& bytes, const std::string& name);  // throws on bad input
  // A user's own IDX file (images or labels, raw or .gz; 't10k'/'test' in the name means the test set). Once both
  // halves of a set are in, they replace it. Throws on bad input, changing nothing. While the Anomaly panel's foreign
  // data is "my own images" (foreignData "own"), the file goes to load_foreign_file instead.
  void load_data_file(const std::vector<uint8_t>& bytes, const std::string& name);
  // A user's own IDX images (idx3, 28x28, raw or .gz) as foreign data: evaluated with the model as it is, never trained
  // on; the training and test sets and the model stay. Throws on bad input (a label file too), changing nothing.
  void load_foreign_file(const std::vector<uint8_t>& bytes, const std::string& name);

  // The whole session (weights, optimizer state, preset, seed, step, loss curves) for the browser's autosave, and
  // back. restore_session throws on anything malformed or from another version, changing nothing.
  std::vector<uint8_t> session_bytes() const;
  void restore_session(const std::vector<uint8_t>& bytes);

  // Runs n training steps now (tests, the Step button); returns false and sets the error on divergence. With a host
  // (below) it asks the host for them: they are taken in the background.
  bool train_steps(size_t n);

  // Training elsewhere (src/app/host_sync.cpp): the page's Web Worker, the desktop's thread. Attached before the data,
  // the app trains none of its runs itself: it sends them whole to the host (core/run_host.hpp) whenever it changed
  // them, and orders (settings, train or pause, N steps) in one queue; the driver hands the host's reports to
  // host_report, which bring the runs' weights, optimizer, position and curves up to date for the views.
  struct HostLink {
    virtual ~HostLink() = default;
    virtual void send(std::vector<uint8_t> order) = 0;
  };
  void attach_host(HostLink* link);
  // The driver gave the host the data of the last set_data / add_data itself (the page's MNIST files).
  void host_has_data() { host_data_given_ = true; }
  void host_report(const std::vector<uint8_t>& report);  // throws on a malformed report, changing nothing
  void host_report(const uint8_t* report, size_t size);  // the same, read in place (no copy of the runs' tensors)
  // What changed, to the host now rather than at the next frame (the page, once the first data is in: its first
  // frames draw everything and take a while).
  void send_to_host() { sync_host(); }
  bool training_elsewhere() const;
  // The Jacobian norm now, and the code probe too when a command asked for it (tests; the page computes them between
  // frames).
  void refresh_instruments();
  void refresh_views();  // test loss, reconstructions, latent codes, anomaly scores (and a wanted UMAP): all now (tests)
  // The Latent panel's scatter as shown, [n, 2] for test images 0..n-1 (empty while there is none yet), and what
  // it is: "code" (a 2-d code itself), "pca" or "umap" (the last finished embedding).
  const std::vector<float>& latent_points(std::string* kind = nullptr) const;

  double train_budget_ms = 20;  // training per frame (and 40% of that for refreshing the views)
  // While a host trains (the page's worker), the share of wall time the views, instruments, UMAP and lesson values may
  // take on the main thread; 1 or more: no limit (the default; the page sets 0.25).
  double main_share = 1;
  size_t view_images = 2000;  // test images encoded for the latent, anomaly and ROC views
  size_t eval_images = 1000;  // test images behind the live test loss
  bool show_panel[kPanelCount];
  bool compact = false;
  std::string message;  // last error or notice, shown in the status bar
  void set_ood(Dataset fashion_test);  // Fashion-MNIST's test set, as the driver loaded it (Driver::load_fashion)
  // The current settings as URL parameters ("preset=conv&lr=0.001&..."), the page's "Copy link".
  std::string config_query() const;
  // The driver reports how long each whole frame took on the main thread (app + ImGui + GL submission), so the
  // status can tell the page's frame-time distribution apart from the browser's compositing.
  // app_ms: the part spent in App::frame() and ImGui::Render() (the rest is GL submission and event handling).
  void record_frame_time(double ms, double app_ms = NAN);
  // The driver reports the process's memory (the wasm heap in the page) for the Training panel and status();
  // 0 means unknown.
  uint64_t memory_bytes = 0;
  uint64_t host_memory_bytes = 0;  // the training host's own (the page's worker's wasm heap); 0 when none or unknown

 private:
  struct State;
  std::unique_ptr<State> s_;
  TextureApi tex_;
  Driver* driver_;
  Dataset train_, test_;
  std::string loading_;
  bool host_data_given_ = false;
  bool data_complete_ = true;

  bool select_preset(const Preset& p, std::string* error);
  void load_weights_state(const SafeTensors& st, const std::string& name);
  void reset_training(std::unique_ptr<Run> fresh = nullptr);
  void data_grew(bool complete);  // add_data's and add_mnist's: the runs take the new images, the views start over
  void apply_hyper_parameters();
  bool step_once();
  void diverged(const std::string& what);  // the status-bar message when training stopped on a non-finite value
  void track_wall_speed();
  void want_fashion();  // the Fashion-MNIST test set is needed (anomaly scores, foreign data, a lesson's value)
  void runs_changed();  // the app's runs were rebuilt or given other weights: the host gets them whole
  void sync_host();     // what changed since the last call, to the host
  void start_views();
  bool step_views(double budget_ms);
  void finish_views();
  void cancel_views();
  bool umap_due() const;
  void step_umap(double budget_ms);
  void panel_model();
  void layer_editor();
  void panel_data();
  void panel_training();
  void panel_recon();
  void panel_latent();
  void instruments_readout();
  void panel_generate();
  void panel_draw();
  void panel_anomaly();
  void panel_inside();
  void panel_save();
  void main_menu();

  // Lessons (src/app/lessons.cpp).
  void load_lesson_library();
  void start_lesson(const Lesson& l, size_t step = 0);  // throws when its model does not build
  void leave_lesson();
  void open_lesson(const Lesson& l);
  void lesson_use_configs(bool rebuild);  // the lesson's configurations into the app's run and the twin
  void rebuild_twin();
  void sync_twin();
  bool twin_in_lockstep() const;
  bool hosted_in_lockstep(size_t index, const Run& r) const;
  bool lesson_settings_changed(std::string* what = nullptr) const;
  void lesson_action();
  void lesson_goto(size_t step);
  void step_lesson(double budget_ms);
  void lesson_measured();
  void push_lesson_event(nlohmann::json ev);
  void paint_twin_views();
  void paint_foreign_row();
  nlohmann::json lesson_status() const;
  nlohmann::json compare_status() const;
  nlohmann::json lesson_command(const nlohmann::json& cmd, std::vector<std::string>& errors, bool apply);
  void panel_lesson(float width);
  void lesson_picker();
  void lessons_menu();
  void draw_twin_curve(ImDrawList* dl, ImVec2 p0, ImVec2 size, float x1, float y0, float y1);
  void twin_recon_row();
  void twin_latent_view();
  void compare_with(const std::string& preset_name);  // "" ends the comparison; throws on an unknown preset
  void compare_picker();
  // The autosave's lesson part: the lesson, progress, the settings its actions applied, the twin's weights.
  struct LessonSession;
  void save_lesson_session(SafeTensors& st) const;
  std::unique_ptr<LessonSession> take_lesson_session(SafeTensors& st, uint64_t seed) const;
  void restart_lesson_session(const LessonSession& ls);
  void finish_lesson_session(LessonSession& ls, size_t epoch);
  // Instruments (instrument_views.cpp).
  void cancel_instruments();
  bool step_jacobian(double budget_ms);
  bool step_probe(double budget_ms);
  // A slice of the next instrument with work; returns whether one worked. alternate: only every other call, and only
  // while an instrument has no value yet.
  bool step_instruments(double budget_ms, bool alternate = false);
  void set_probe_labels(size_t labels);
  void loss_picker();
  void jacobian_readout();
  float instruments_height() const;  // room the Latent panel keeps under its plot for the lines below
  void probe_section();
  void select_posterior(int digit);
  void posterior_overlay(ImDrawList* dl, ImVec2 p0, float side, float x0, float x1, float y0, float y1, bool umap);
  void posterior_readout(bool umap);
  void set_foreign_source(ForeignSource source);
  const Dataset* foreign_data() const;  // the chosen foreign images, null while none are chosen or loaded
  bool step_foreign(double budget_ms);
  void foreign_section();
  void parse_instrument_command(const nlohmann::json& cmd, Preset& p, InstrumentCommand& c,
                                std::vector<std::string>& errors);
  void apply_instrument_command(const InstrumentCommand& c);
  nlohmann::json instrument_status() const;
  // A beta sweep beside the run (beta_sweep.cpp).
  void start_beta_sweep(const std::vector<double>& betas);  // throws, changing nothing, unless the model is a VAE
  void end_beta_sweep(const std::string& why);
  void rebuild_sweep();  // the run started over: the sweep's runs with it
  void sync_sweep();     // the run's new settings, each with its own beta
  void step_sweep();     // in the frames: the sweep's runs take the run's next batch
  bool sweep_in_lockstep() const;
  bool step_sweep_measure(double budget_ms);
  void beta_sweep_section();
  nlohmann::json sweep_status() const;
  std::vector<Run*> hosted_runs() const;  // the runs a host trains: the app's, the twin, the sweep's (host_sync.cpp)
};

// The Model panel's code view: the preset as a PyTorch or Keras script (core/export.hpp), or why Keras cannot
// express it.
std::string model_code(const Preset& p, bool keras);

}  // namespace aep
