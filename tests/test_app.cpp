// The playground driven headless: ImGui with no window (DisplaySize set, NewFrame/Render, nothing drawn), the
// real MNIST, and the same App the web page and desktop window run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <imgui.h>

#include "app/app.hpp"
#include "app/app_state.hpp"
#include "app/ui_probe.hpp"
#include "app_headless.hpp"
#include "core/instruments.hpp"
#include "core/probe.hpp"
#include "core/train.hpp"
#include "core/weights.hpp"

namespace aep {
namespace {

using testing::Headless;
using testing::make_app;
const Dataset& mnist(bool train) { return testing::app_mnist(train); }

double num(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : NAN; }

}  // namespace

TEST_CASE("app: Space starts training inside frames, the loss falls, and every panel draws") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "conv"}, {"seed", 3}})["ok"] == true);
  // The views (test loss among them) are computed a chunk per frame.
  for (int i = 0; i < 200 && app.status()["testStep"] != 0; ++i) ui.frame(app);
  double before = num(app.status()["testLoss"]);
  REQUIRE(std::isfinite(before));
  app.train_budget_ms = 15;
  ui.press_space(app);
  CHECK(app.status()["running"] == true);
  for (int i = 0; i < 200 && app.status()["step"].get<size_t>() < 150; ++i) ui.frame(app);
  ui.press_space(app);  // pause: the views catch up within a few frames
  size_t steps = app.status()["step"].get<size_t>();
  for (int i = 0; i < 200 && app.status()["testStep"] != steps; ++i) ui.frame(app);
  nlohmann::json st = app.status();
  CHECK(st["testStep"] == steps);
  CHECK(st["running"] == false);
  CHECK(st["step"].get<size_t>() >= 150);
  CHECK(num(st["testLoss"]) < 0.8 * before);
  // Wall-time speed (drawing and views included) is below the engine's own speed inside the slices; a loose bound,
  // as the engine's figure is a running average.
  CHECK(num(st["samplesPerSec"]) > 0);
  CHECK(num(st["engineSamplesPerSec"]) > 0);
  CHECK(num(st["samplesPerSec"]) < 1.5 * num(st["engineSamplesPerSec"]));
  CHECK(st["message"] == "");
}

// The Model panel names each preset's lesson once: "Lesson 002: Lesson 002: ..." read as a glitch.
TEST_CASE("app: a preset's description names its lesson exactly once") {
  auto count = [](std::string text, const std::string& what) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  for (const auto& name : list_presets()) {
    INFO(name);
    const Preset p = load_preset(name);
    const std::string shown = described_with_lesson(p);
    CHECK(shown.find(p.description) != std::string::npos);
    if (!p.lesson.empty()) CHECK(count(shown, "lesson " + p.lesson) == 1);
  }
  Preset p = load_preset("conv");
  p.description = "Two Conv2d stages.";
  CHECK(described_with_lesson(p) == "Lesson " + p.lesson + ": Two Conv2d stages.");
}

TEST_CASE("app: every preset builds, trains a few steps and draws all panels") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  for (const auto& name : list_presets()) {
    INFO(name);
    REQUIRE(app.command({{"preset", name}})["ok"] == true);
    CHECK(app.train_steps(3));
    app.refresh_views();
    ui.frame(app);
    nlohmann::json st = app.status();
    CHECK(st["preset"] == name);
    CHECK(st["step"] == 3);
    CHECK(std::isfinite(num(st["testLoss"])));
  }
}

TEST_CASE("app: commands are validated as a whole and bad ones change nothing") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"lr", "0.003"}, {"batch", 32}, {"panels", "training,recon"}})["ok"] == true);
  nlohmann::json st = app.status();
  CHECK(st["preset"] == "linear");
  CHECK(num(st["lr"]) == doctest::Approx(0.003));
  CHECK(st["batch"] == 32);
  CHECK(st["panels"] == nlohmann::json::array({"training", "recon"}));

  struct Bad { nlohmann::json cmd; const char* error; };
  const Bad bad[] = {
      {{{"preset", "nope"}}, "unknown preset \"nope\""},
      {{{"lr", -1}}, "lr must be a number between"},
      {{{"lr", "fast"}}, "lr must be a number between"},
      {{{"batch", 0}}, "batch must be a number between 1 and 4096"},
      {{{"seed", "NaN"}}, "seed must be a number"},
      {{{"panels", "training,bogus"}}, "unknown panel 'bogus'"},
      {{{"autostart", "maybe"}}, "autostart must be true/false or 1/0"},
      {{{"colour", "red"}}, "unknown setting 'colour'"},
      {{{"optimizer", "lbfgs"}}, "optimizer must be \"adam\" or \"sgd\""},
      {{{"lr", 0.01}, {"batch", -5}}, "batch must be"},  // the valid lr is not applied either
      {{{"trainMs", 0}}, "trainMs must be a number between 1 and 100"},
      {{{"trainMs", 5}, {"lr", "x"}}, "lr must be"},
  };
  for (const auto& b : bad) {
    INFO(b.cmd.dump());
    nlohmann::json r = app.command(b.cmd);
    CHECK(r["ok"] == false);
    REQUIRE(r["errors"].is_array());
    CHECK(r["errors"][0].get<std::string>().find(b.error) != std::string::npos);
    CHECK(app.status() == st);
  }
  CHECK(app.command(nlohmann::json::array())["ok"] == false);
  // Training time per frame (the page's smoothness knob).
  REQUIRE(app.command({{"trainMs", "8"}})["ok"] == true);
  CHECK(num(app.status()["trainMs"]) == 8);
  CHECK(app.train_budget_ms == 8);
  // Code size and a held-out digit, as a lesson would set them.
  REQUIRE(app.command({{"preset", "mlp-128-64"}, {"code", 2}, {"holdout", 3}})["ok"] == true);
  st = app.status();
  CHECK(st["codeSize"] == 2);
  CHECK(st["holdout"] == 3);
  size_t threes = size_t(std::count(mnist(true).labels.begin(), mnist(true).labels.end(), 3));
  CHECK(threes > 5000);
  CHECK(st["trainImages"] == 60000 - threes);
  CHECK(app.train_steps(5));
  CHECK(app.command({{"preset", "conv"}, {"code", 8}})["ok"] == true);
  CHECK(app.status()["codeSize"] == 8 * 7 * 7);
  CHECK(app.command({{"holdout", -1}})["ok"] == true);
  CHECK(app.status()["trainImages"] == 60000);
  CHECK(app.command({{"holdout", 12}})["ok"] == false);
}

TEST_CASE("app: Picture::put_dot paints an anti-aliased disc and leaves the rest") {
  Picture p;
  p.resize(16, 16);  // dark grey 40
  p.put_dot(8, 8, 2.f, IM_COL32(255, 0, 0, 255));
  auto px = [&](int x, int y) { return &p.rgba[(size_t(y) * 16 + x) * 4]; };
  CHECK(px(7, 7)[0] == 255);  // inside: the colour itself
  CHECK(px(7, 7)[1] == 0);
  CHECK(px(8, 8)[0] == 255);
  const uint8_t* edge = px(9, 6);  // its centre 2.1 px away at radius 2: partly covered
  CHECK(edge[0] > 40);
  CHECK(edge[0] < 255);
  CHECK(px(0, 0)[0] == 40);  // far away: untouched
  CHECK(px(12, 8)[0] == 40);
  CHECK(p.dirty);
  p.put_dot(-5, -5, 2.f, IM_COL32(255, 0, 0, 255));  // off the picture: clipped, no write out of bounds
  CHECK(px(0, 0)[0] == 40);
}

TEST_CASE("app: a bad weights file is refused and the trained model survives; a good one round-trips") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "mlp-128-64"}})["ok"] == true);
  REQUIRE(app.train_steps(20));
  // With the optimizer's state, so that the step count and Adam's moments round-trip too.
  std::vector<uint8_t> good = app.save_weights_bytes(true);
  std::vector<uint8_t> truncated(good.begin(), good.begin() + good.size() / 2);
  CHECK_THROWS_WITH(app.load_weights_bytes(truncated, "half.safetensors"), doctest::Contains("half.safetensors"));
  CHECK(app.save_weights_bytes(true) == good);
  std::vector<uint8_t> garbage(100, 0xff);
  CHECK_THROWS(app.load_weights_bytes(garbage, "garbage.bin"));
  CHECK(app.save_weights_bytes(true) == good);
  // Weights of another model: refused, nothing changes.
  auto other_ptr = make_app();
  App& other = *other_ptr;
  REQUIRE(other.command({{"preset", "conv"}})["ok"] == true);
  std::vector<uint8_t> conv = other.save_weights_bytes(true);
  // conv's file names its own preset in the metadata, so loading it switches the model: that is the intent.
  app.load_weights_bytes(conv, "conv.safetensors");
  CHECK(app.status()["preset"] == "conv");
  CHECK(app.save_weights_bytes(true) == conv);
  app.load_weights_bytes(good, "good.safetensors");
  CHECK(app.status()["preset"] == "mlp-128-64");
  CHECK(app.status()["step"] == 20);
  CHECK(app.save_weights_bytes(true) == good);
}

TEST_CASE("app: divergence (lr = 10) stops training with a message and keeps finite weights") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  // The 2-d VAE at lr = 10 turns non-finite within a few steps.
  REQUIRE(app.command({{"preset", "vae-mlp"}, {"lr", 10}})["ok"] == true);
  CHECK_FALSE(app.train_steps(300));
  nlohmann::json st = app.status();
  CHECK(st["running"] == false);
  CHECK(st["step"].get<size_t>() < 300);
  CHECK(st["message"].get<std::string>().find("smaller learning rate") != std::string::npos);
  CHECK(std::isfinite(num(st["trainLoss"])));
  std::vector<uint8_t> w = app.save_weights_bytes();
  SafeTensors t = parse_safetensors(w.data(), w.size(), "w");
  size_t non_finite = 0;
  for (const auto& x : t.tensors)
    if (x.dtype == DType::F32)
      for (float v : x.as_f32()) non_finite += !std::isfinite(v);
  CHECK(non_finite == 0);
  auto adam_ptr = make_app();
  App& adam = *adam_ptr;
  REQUIRE(adam.command({{"preset", "linear"}, {"lr", 10}})["ok"] == true);
  adam.train_steps(300);
  CHECK(std::isfinite(num(adam.status()["trainLoss"])));
}

TEST_CASE("app: a user's own IDX files replace a set once images and labels are both in; bad files change nothing") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  const std::string dir = default_mnist_dir();
  std::vector<uint8_t> images = read_file(dir + "/t10k-images-idx3-ubyte.gz");
  std::vector<uint8_t> labels = read_file(dir + "/t10k-labels-idx1-ubyte.gz");
  // Only the first 1000 test images: cut the raw file and fix its count.
  std::vector<uint8_t> raw = read_file(dir + "/t10k-images-idx3-ubyte");
  raw.resize(16 + 1000 * 784);
  raw[4] = 0, raw[5] = 0, raw[6] = 0x03, raw[7] = 0xe8;
  CHECK_THROWS_WITH(app.load_data_file({1, 2, 3}, "junk-test.idx"), doctest::Contains("junk-test.idx"));
  app.load_data_file(raw, "my-test-images.idx");
  CHECK(app.message.find("drop the matching labels") != std::string::npos);
  CHECK_THROWS_WITH(app.load_data_file(labels, "my-test-labels.gz"), doctest::Contains("10000 labels"));
  std::vector<uint8_t> raw_labels = read_file(dir + "/t10k-labels-idx1-ubyte");
  raw_labels.resize(8 + 1000);
  raw_labels[4] = 0, raw_labels[5] = 0, raw_labels[6] = 0x03, raw_labels[7] = 0xe8;
  app.load_data_file(raw, "my-test-images.idx");
  app.load_data_file(raw_labels, "my-test-labels.idx");
  CHECK(app.message == "Now using 1000 test images from my-test-images.idx.");
  CHECK(app.train_steps(2));
  app.refresh_views();
  CHECK(std::isfinite(num(app.status()["testLoss"])));
  // Whole MNIST test files, gzipped, bring the full set back.
  app.load_data_file(images, "t10k-images-idx3-ubyte.gz");
  app.load_data_file(labels, "t10k-labels-idx1-ubyte.gz");
  CHECK(app.message == "Now using 10000 test images from t10k-images-idx3-ubyte.gz.");
}

TEST_CASE("app: the code view shows the model in PyTorch or Keras (tests/test_export.cpp checks the code)") {
  Preset p = load_preset("tied");
  CHECK(model_code(p, false) == pytorch_code(p));
  CHECK(model_code(p, true) == keras_code(p));
  p = load_preset("conv");
  p.decoder[0]["output_padding"] = 1;  // rows beyond every kernel tap: Keras has no layer for them
  CHECK(model_code(p, true).rfind("# No Keras code for this model: decoder.0 (ConvTranspose2d): ", 0) == 0);
}


namespace aep {

TEST_CASE("app: an autosaved session comes back whole; a corrupt or foreign one is refused and changes nothing") {
  auto a_ptr = make_app();
  App& a = *a_ptr;
  REQUIRE(a.command({{"preset", "sparse"}, {"seed", 5}, {"lr", 0.002}})["ok"] == true);
  REQUIRE(a.train_steps(25));
  a.refresh_views();
  std::vector<uint8_t> session = a.session_bytes();
  nlohmann::json st = a.status();

  auto b_ptr = make_app();
  App& b = *b_ptr;
  b.restore_session(session);
  nlohmann::json sb = b.status();
  CHECK(sb["preset"] == "sparse");
  CHECK(sb["step"] == 25);
  CHECK(sb["seed"] == 5);
  CHECK(num(sb["lr"]) == doctest::Approx(0.002));
  CHECK(num(sb["trainLoss"]) == doctest::Approx(num(st["trainLoss"])));
  CHECK(b.session_bytes().size() > 0);
  // Same weights and optimizer state: the next steps match exactly.
  std::vector<uint8_t> wa = a.save_weights_bytes(), wb = b.save_weights_bytes();
  CHECK(wa == wb);

  auto c_ptr = make_app();
  App& c = *c_ptr;
  REQUIRE(c.command({{"preset", "linear"}})["ok"] == true);
  REQUIRE(c.train_steps(3));
  std::vector<uint8_t> before = c.save_weights_bytes();
  std::vector<uint8_t> truncated(session.begin(), session.begin() + session.size() - 10);
  CHECK_THROWS_WITH(c.restore_session(truncated), doctest::Contains("autosave"));
  CHECK_THROWS_WITH(c.restore_session(before), doctest::Contains("not a playground session"));
  // Another version's session: same bytes with the version string changed (same length, so offsets stay valid).
  std::string text(session.begin(), session.end());
  size_t at = text.find("aep-session-1");
  REQUIRE(at != std::string::npos);
  text[at + 12] = '0';
  CHECK_THROWS_WITH(c.restore_session(std::vector<uint8_t>(text.begin(), text.end())), doctest::Contains("another version"));
  CHECK(c.save_weights_bytes() == before);
  CHECK(c.status()["preset"] == "linear");
  CHECK(c.status()["step"] == 3);
}

}  // namespace aep

TEST_CASE("app: a batch size that would exceed the memory budget is refused, the model and its training kept") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "fully-conv"}})["ok"] == true);
  REQUIRE(app.train_steps(2));
  nlohmann::json st = app.status();
  CHECK(num(st["trainingBytes"]) > 0);
  CHECK(num(st["trainingBytes"]) < num(st["memoryLimitBytes"]));
  std::vector<uint8_t> before = app.save_weights_bytes();
  // fully-conv keeps ~0.57 MB of activations per image, x3 with gradients and workspace: 4096 images need ~7 GB.
  nlohmann::json r = app.command({{"batch", 4096}});
  CHECK(r["ok"] == false);
  CHECK(r.dump().find("would need about") != std::string::npos);
  CHECK(r.dump().find("use a batch size of at most") != std::string::npos);
  CHECK(app.status()["batch"] == 64);
  CHECK(app.save_weights_bytes() == before);
  CHECK(app.status()["step"] == 2);
  // The batch the message suggests is accepted, and training goes on with it.
  const std::string m = r.dump();
  const size_t at = m.find("at most ") + 8;
  const int fit = std::atoi(m.c_str() + at);
  CHECK(fit > 64);
  CHECK(fit < 4096);
  CHECK(app.command({{"batch", 128}})["ok"] == true);
  CHECK(app.train_steps(1));
  CHECK(app.status()["step"] == 3);
}

TEST_CASE("app: the Latent panel's UMAP view embeds the test codes in slices within frames, digits together") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "conv"}, {"seed", 2}, {"panels", "latent"}})["ok"] == true);  // a 4x7x7 code
  REQUIRE(app.train_steps(40));
  CHECK(app.command({{"latent", "tsne"}})["ok"] == false);
  REQUIRE(app.command({{"latent", "umap"}})["ok"] == true);
  CHECK(app.config_query().find("latent=umap") != std::string::npos);
  std::string kind;
  int frames = 0;
  for (; frames < 3000 && app.latent_points(&kind).empty(); ++frames) ui.frame(app);
  CHECK(kind == "umap");
  CHECK(frames > 3);  // the codes, then the UMAP, a slice per frame
  const std::vector<float> xy = app.latent_points();
  const std::vector<uint8_t>& labels = mnist(false).labels;
  REQUIRE(xy.size() == 2 * 400);
  for (float v : xy) REQUIRE(std::isfinite(v));
  // Codes of the same digit lie closer together than codes in general.
  double same = 0, all = 0;
  size_t n_same = 0, n_all = 0;
  for (size_t i = 0; i < 400; ++i)
    for (size_t j = i + 1; j < 400; ++j) {
      double d = std::hypot(xy[2 * i] - xy[2 * j], xy[2 * i + 1] - xy[2 * j + 1]);
      all += d, ++n_all;
      if (labels[i] == labels[j]) same += d, ++n_same;
    }
  INFO("mean distance, same digit " << same / n_same << ", any two " << all / n_all);
  CHECK(same / n_same < 0.6 * all / n_all);

  // More training: the views refresh and a new embedding of the new codes replaces this one.
  REQUIRE(app.train_steps(5));
  for (frames = 0; frames < 3000 && app.latent_points() == xy; ++frames) ui.frame(app);
  CHECK(app.latent_points() != xy);
  REQUIRE(app.command({{"latent", "pca"}})["ok"] == true);
  CHECK(app.latent_points(&kind).size() == 2 * 400);
  CHECK(kind == "pca");
}

// Through the buttons a learner presses: ImGui reports where each item is (UiProbe), the test moves the mouse there.
TEST_CASE("app: the layer editor through its buttons: remove a layer, add one from the + menu, apply") {
  Headless ui;
  UiProbe probe;
  probe.install();
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"panels", "model"}})["ok"] == true);
  auto frame = [&] {
    probe.clear();
    ui.frame(app);
  };
  auto click = [&](const UiProbe::Item& it) {
    ImGuiIO& io = ImGui::GetIO();
    io.AddMousePosEvent(it.center().x, it.center().y);
    frame();
    io.AddMouseButtonEvent(0, true);
    frame();
    io.AddMouseButtonEvent(0, false);
    frame();  // pressed: acted on during this frame
    frame();  // drawn as it is now
  };
  for (int i = 0; i < 3; ++i) frame();
  const int params = app.status()["parameters"];
  const std::string apply = "Apply the edited layers (training starts over)";
  CHECK(probe.find(apply).empty());  // nothing edited yet
  // linear: encoder Flatten, Linear(784, 32), ReLU, BatchNorm1d(32); decoder Linear(32, 784), Sigmoid.
  std::vector<UiProbe::Item> remove = probe.find("x");
  REQUIRE(remove.size() == 6);
  click(remove[3]);  // the BatchNorm1d (2 x 32 parameters)
  CHECK(probe.find("x").size() == 5);
  // The table's "+" buttons top to bottom: the encoder's start, after each encoder row, the decoder's start, after
  // each row (the code size's +/- further down are not the table's).
  std::vector<UiProbe::Item> add;
  for (const auto& it : probe.find("+"))
    if (it.min.x < remove[0].max.x + 30) add.push_back(it);
  REQUIRE(add.size() == 7);
  click(add[3]);  // after the ReLU: a menu of layer types opens
  std::vector<UiProbe::Item> linear = probe.find("Linear");
  REQUIRE(linear.size() == 1);
  click(linear[0]);  // Linear(32 -> 64) by default; the decoder's Linear now takes 64
  REQUIRE(probe.find(apply).size() == 1);
  CHECK(app.status()["parameters"] == params);  // a draft: the model in training is unchanged
  click(probe.find(apply)[0]);
  nlohmann::json st = app.status();
  CHECK(st["codeSize"] == 64);
  CHECK(st["parameters"] == params - 2 * 32 + (32 * 64 + 64) + (64 - 32) * 784);
  CHECK(probe.find(apply).empty());
  probe.uninstall();
}

// The Save panel's two downloads: the plain one is the state_dict alone (PyTorch's strict load takes it), the other
// adds the optimizer's state under optimizer.* keys and says so in its name; the command does what the buttons do.
TEST_CASE("app: Download weights is a strict state_dict; weights + optimizer is a separate, named file") {
  Headless ui;
  UiProbe probe;
  probe.install();
  testing::RecordingDriver driver;
  auto app_ptr = make_app(nullptr, &driver);
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"panels", "training,save"}, {"seed", 2}})["ok"] == true);
  // Before any training step and evaluation there is no loss to show: "-", and null in status().
  CHECK(loss_text(NAN) == "-");
  CHECK(loss_text(0.0123456) == "0.012346");
  CHECK(app.status()["trainLoss"].is_null());
  app.train_steps(3);
  auto frame = [&] {
    probe.clear();
    ui.frame(app);
  };
  auto click = [&](const std::string& label) {
    frame();
    std::vector<UiProbe::Item> it = probe.find(label);
    REQUIRE(it.size() == 1);
    ImGuiIO& io = ImGui::GetIO();
    io.AddMousePosEvent(it[0].center().x, it[0].center().y);
    frame();
    io.AddMouseButtonEvent(0, true);
    frame();
    io.AddMouseButtonEvent(0, false);
    frame();
  };
  auto keys = [](const std::vector<uint8_t>& bytes) {
    SafeTensors st = parse_safetensors(bytes.data(), bytes.size(), "download");
    size_t model = 0, optimizer = 0;
    for (const auto& t : st.tensors) (t.name.rfind("optimizer.", 0) == 0 ? optimizer : model)++;
    return std::make_pair(model, optimizer);
  };
  click("Download weights (.safetensors)");
  REQUIRE(driver.download_name == "linear-step3.safetensors");
  auto plain = keys(driver.download_bytes);
  CHECK(plain.first > 0);
  CHECK(plain.second == 0);
  driver.download_name.clear();
  click("Download weights + optimizer");
  REQUIRE(driver.download_name == "linear-step3-with-optimizer.safetensors");
  auto full = keys(driver.download_bytes);
  CHECK(full.first == plain.first);
  CHECK(full.second > 0);
  // The same through the JS API; a bad value is refused.
  driver.download_name.clear();
  CHECK(app.command({{"download", "weights"}})["ok"] == true);
  CHECK(driver.download_name == "linear-step3.safetensors");
  CHECK(app.command({{"download", "optimizer"}})["ok"] == false);
  // A plain file uploaded again gives the weights (the optimizer starts afresh); the optimizer file continues.
  app.load_weights_bytes(driver.download_bytes, "linear-step3.safetensors");
  CHECK(app.status()["step"] == 0);
  // The panel's other requests go to the driver too.
  click("Copy link");
  CHECK(driver.link == app.config_query());
  CHECK(driver.link.find("preset=linear") != std::string::npos);
  click("Upload weights ...");
  CHECK(driver.open_file_calls == 1);
  probe.uninstall();
}

// The instruments the views compute, against core/instruments on the same weights and test digits.
TEST_CASE("app: status() carries the code's sparsity, and a VAE's KL per unit and active units") {
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "vae-mlp"}, {"seed", 1}})["ok"] == true);
  REQUIRE(app.train_steps(40));
  app.refresh_views();
  nlohmann::json st = app.status();
  REQUIRE(st["klPerDim"].is_array());
  std::vector<uint8_t> bytes = app.save_weights_bytes();
  SafeTensors file = parse_safetensors(bytes.data(), bytes.size(), "app");
  Model m(load_preset("vae-mlp"));
  load_state(m, file, "app");
  PosteriorStats q = posterior_stats(m, mnist(false), app.view_images);
  REQUIRE(st["klPerDim"].size() == q.latent);
  for (size_t j = 0; j < q.latent; ++j) CHECK(num(st["klPerDim"][j]) == doctest::Approx(q.kl_per_dim[j]).epsilon(1e-5));
  CHECK(st["activeUnits"] == q.active_units);
  CHECK(num(st["klTotal"]) == doctest::Approx(q.kl_total()).epsilon(1e-5));
  CHECK(num(st["sparsity"]) >= 0);
  CHECK(num(st["sparsity"]) <= 1);
  CHECK(num(st["meanAbsCode"]) > 0);
  // A plain autoencoder has no posterior: those are null, the sparsity is there.
  REQUIRE(app.command({{"preset", "linear"}})["ok"] == true);
  CHECK(app.status()["sparsity"].is_null());  // no views yet
  app.refresh_views();
  st = app.status();
  CHECK(st["activeUnits"].is_null());
  CHECK(st["klPerDim"].is_null());
  CHECK(num(st["sparsity"]) >= 0);
}

// ---- instruments (issue 15): the loss picker, the Jacobian norm, the code probe, the VAE posterior, foreign data ------

namespace {
// The run's weights in a model of `preset` with the app's current settings (loss included).
std::unique_ptr<Model> model_of(App& app, Preset preset) {
  std::vector<uint8_t> bytes = app.save_weights_bytes();
  SafeTensors file = parse_safetensors(bytes.data(), bytes.size(), "app");
  auto m = std::make_unique<Model>(preset);
  load_state(*m, file, "app");
  return m;
}

// A raw IDX images file of the first `count` images of d, with rows x cols pixels per image (the first rows*cols bytes
// of each image: only a 28x28 one is a real image).
std::vector<uint8_t> idx_images(const Dataset& d, size_t count, uint32_t rows = 28, uint32_t cols = 28) {
  std::vector<uint8_t> b = {0, 0, 8, 3};
  for (uint32_t v : {uint32_t(count), rows, cols})
    for (int k = 3; k >= 0; --k) b.push_back(uint8_t(v >> (8 * k)));
  for (size_t i = 0; i < count; ++i) b.insert(b.end(), d.image(i), d.image(i) + std::min<size_t>(rows * cols, 784));
  b.resize(16 + count * rows * cols, 0);
  return b;
}
}  // namespace

TEST_CASE("app: the reconstruction loss changes on the running model; each loss is its own curve segment") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"seed", 1}})["ok"] == true);
  REQUIRE(app.train_steps(20));
  app.refresh_views();
  nlohmann::json st = app.status();
  CHECK(st["loss"] == "mse");
  CHECK(st["reduction"] == "mean");
  CHECK(st["lossWarning"].is_null());
  REQUIRE(st["lossSegments"].size() == 1);
  CHECK(st["lossSegments"][0]["loss"] == "MSE, mean");
  CHECK(st["lossSegments"][0]["trainPoints"] == 20);
  CHECK(st["lossSegments"][0]["testPoints"] == 1);
  const double mse_test = num(st["testLoss"]);

  // L1 from step 21: a new segment; the weights, the step and the first segment stay.
  REQUIRE(app.command({{"loss", "l1"}})["ok"] == true);
  st = app.status();
  CHECK(st["loss"] == "l1");
  CHECK(st["step"] == 20);
  REQUIRE(st["lossSegments"].size() == 2);
  CHECK(st["lossSegments"][1]["loss"] == "L1, mean");
  CHECK(st["lossSegments"][1]["trainPoints"] == 0);
  CHECK(st["lossSegments"][0]["trainPoints"] == 20);
  app.refresh_views();  // the same weights' test loss, now measured as L1
  st = app.status();
  CHECK(st["lossSegments"][1]["testPoints"] == 1);
  CHECK(st["lossSegments"][0]["testPoints"] == 1);
  {
    Preset l1 = load_preset("linear");
    l1.loss.reconstruction = "l1";
    auto m = model_of(app, l1);
    Trainer t(*m, 0);
    const double expect = evaluate(t, mnist(false), app.eval_images).total;
    CHECK(num(st["testLoss"]) == doctest::Approx(expect).epsilon(1e-5));
    CHECK(num(st["testLoss"]) != doctest::Approx(mse_test).epsilon(1e-2));
  }
  REQUIRE(app.train_steps(10));
  st = app.status();
  CHECK(st["lossSegments"][1]["trainPoints"] == 10);
  CHECK(num(st["lossSegments"][1]["fromStep"]) == 21);
  CHECK(st["lossSegments"][0]["trainPoints"] == 20);

  // Passing through other losses without training adds no empty segment; sum is a loss of its own.
  REQUIRE(app.command({{"loss", "mse"}})["ok"] == true);
  REQUIRE(app.command({{"loss", "l1"}})["ok"] == true);
  CHECK(app.status()["lossSegments"].size() == 2);
  REQUIRE(app.command({{"reduction", "sum"}})["ok"] == true);
  REQUIRE(app.train_steps(2));
  st = app.status();
  REQUIRE(st["lossSegments"].size() == 3);
  CHECK(st["lossSegments"][2]["loss"] == "L1, sum");
  CHECK(app.config_query().find("&loss=l1&reduction=sum") != std::string::npos);  // the page's "Copy link"
  ui.frame(app);  // the Training panel draws the three segments

  // The segments survive the autosave.
  std::vector<uint8_t> session = app.session_bytes();
  auto other = make_app();
  other->restore_session(session);
  CHECK(other->status()["lossSegments"] == st["lossSegments"]);
  CHECK(other->status()["loss"] == "l1");

  // Bad values and BCE on [-1, 1] data are refused with the reason, changing nothing.
  nlohmann::json r = app.command({{"loss", "huber"}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0] == "loss must be \"mse\", \"bce\" or \"l1\" (the reconstruction loss), got \"huber\"");
  CHECK(app.command({{"reduction", "max"}})["errors"][0] == "reduction must be \"mean\" or \"sum\", got \"max\"");
  REQUIRE(app.command({{"preset", "undercomplete-tanh"}})["ok"] == true);  // inputs in [-1, 1]
  r = app.command({{"loss", "bce"}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0] == "loss: BCE needs targets in [0, 1], but the inputs are normalized to [-1, 1]: use MSE or "
                          "L1, or normalize to 0_1");
  CHECK(app.status()["loss"] == "mse");
  CHECK(app.status()["lossSegments"].size() == 1);
  // A decoder without a final Sigmoid: applied, with a warning (its outputs are not probabilities).
  REQUIRE(app.command({{"preset", "tied"}})["ok"] == true);
  r = app.command({{"loss", "bce"}});
  CHECK(r["ok"] == true);
  REQUIRE(r["warnings"].size() == 1);
  CHECK(r["warnings"][0] ==
        "loss: BCE needs outputs in [0, 1], but the decoder does not end in a Sigmoid: add one, or use MSE or L1");
  CHECK(app.status()["lossWarning"] ==
        "BCE needs outputs in [0, 1], but the decoder does not end in a Sigmoid: add one, or use MSE or L1");
  CHECK(app.status()["loss"] == "bce");
  // conv-dense ends in Sigmoid, Unflatten: no warning.
  REQUIRE(app.command({{"preset", "conv-dense"}, {"loss", "bce"}})["ok"] == true);
  CHECK(app.status()["lossWarning"].is_null());
  CHECK(app.status()["lossSegments"][0]["loss"] == "BCE, mean");
}

TEST_CASE("app: the encoder Jacobian norm is computed between frames for every model, as core/instruments does") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  CHECK(jacobian_digits(32, 10000) == 200);  // as aep eval and the lessons
  CHECK(jacobian_digits(196, 10000) == 65);
  CHECK(jacobian_digits(6272, 10000) == 2);
  CHECK(jacobian_digits(32, 50) == 50);
  for (const char* name : {"linear", "contractive", "vae-mlp", "conv"}) {
    INFO(name);
    REQUIRE(app.command({{"preset", name}, {"seed", 1}, {"panels", "latent"}})["ok"] == true);
    REQUIRE(app.train_steps(10));
    CHECK(app.status()["jacobianNorm"].is_null());
    int frames = 0;
    const size_t digits = jacobian_digits(app.status()["codeSize"].get<size_t>(), mnist(false).count);
    // (a model's first measurement shows its mean so far, over fewer digits, until all are in)
    for (; frames < 2000 && (app.status()["jacobianStep"] != 10 || app.status()["jacobianDigits"] != digits); ++frames)
      ui.frame(app);
    const nlohmann::json st = app.status();
    REQUIRE(st["jacobianStep"] == 10);
    CHECK(frames > 1);
    CHECK(st["jacobianDigits"] == digits);
    auto m = model_of(app, load_preset(name));
    const double expect = mean_jacobian_frobenius_sq(*m, mnist(false), digits);
    CHECK(expect > 0);
    CHECK(num(st["jacobianNorm"]) == doctest::Approx(expect).epsilon(1e-6));
  }
}

TEST_CASE("app: the code probe: codes, pixels and PCA codes of the code's size, refreshed as the model trains") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"seed", 1}})["ok"] == true);
  REQUIRE(app.train_steps(30));
  CHECK(app.status()["probe"].is_null());  // not asked for (the section is closed)
  CHECK(app.command({{"probeLabels", 5}})["errors"][0] == "probeLabels must be a whole number from 10 to 60000, got 5");
  CHECK(app.command({{"probeLabels", 100.5}})["ok"] == false);
  REQUIRE(app.command({{"probeLabels", 100}})["ok"] == true);
  app.refresh_instruments();
  nlohmann::json p = app.status()["probe"];
  REQUIRE(p.is_object());
  CHECK(p["labels"] == 100);
  CHECK(p["step"] == 30);
  CHECK(p["running"].is_null());
  // The same as core's compare_probes on the same weights and settings.
  ProbeSettings ps;
  ps.labels = 100;
  auto m = model_of(app, load_preset("linear"));
  const ProbeComparison c = compare_probes(*m, mnist(true), mnist(false), ps);
  CHECK(num(p["code"]["softmax"]) == c.code.softmax_accuracy);
  CHECK(num(p["code"]["knn"]) == c.code.knn_accuracy);
  CHECK(num(p["pixels"]["softmax"]) == c.pixels.softmax_accuracy);
  CHECK(num(p["pixels"]["knn"]) == c.pixels.knn_accuracy);
  CHECK(num(p["pca"]["softmax"]) == c.pca.softmax_accuracy);
  CHECK(num(p["pca"]["knn"]) == c.pca.knn_accuracy);
  CHECK(p["code"]["dims"] == 32);
  CHECK(p["pixels"]["dims"] == 128);  // 784 reduced
  CHECK(p["pixels"]["inputDims"] == 784);
  CHECK(p["pca"]["dims"] == 32);
  CHECK(p["pcaIsPixels"] == false);
  CHECK(num(p["code"]["softmax"]) > 0.3);  // far above chance (0.1) with 100 labels
  CHECK(num(p["pixels"]["knn"]) > 0.5);

  // Another label count: the pixels' PCA is not fitted again (the page keeps it), with the same result as a fit.
  REQUIRE(app.command({{"probeLabels", 60}})["ok"] == true);
  app.refresh_instruments();
  {
    ProbeSettings p60;
    p60.labels = 60;
    Probe fresh;
    fresh.begin(mnist(true), mnist(false), 784, pixel_features(Normalization::ZeroOne), p60);
    REQUIRE(fresh.step(1e9));
    CHECK(num(app.status()["probe"]["pixels"]["softmax"]) == fresh.result().softmax_accuracy);
    CHECK(num(app.status()["probe"]["pixels"]["knn"]) == fresh.result().knn_accuracy);
    CHECK(app.status()["probe"]["labels"] == 60);
  }
  REQUIRE(app.command({{"probeLabels", 100}})["ok"] == true);
  app.refresh_instruments();
  CHECK(app.status()["probe"]["pixels"] == p["pixels"]);

  // Training on: the codes are probed again in slices within frames; pixels and PCA stay as they were.
  REQUIRE(app.train_steps(20));
  int frames = 0;
  for (; frames < 5000 && app.status()["probe"]["step"] != 50; ++frames) ui.frame(app);
  const nlohmann::json q = app.status()["probe"];
  CHECK(q["step"] == 50);
  CHECK(frames > 2);
  CHECK(q["pixels"] == p["pixels"]);
  CHECK(q["pca"] == p["pca"]);

  // A code above 128 numbers is reduced to 128 like the pixels: its PCA row is the pixels' row.
  REQUIRE(app.command({{"preset", "conv"}, {"probeLabels", 50}})["ok"] == true);
  REQUIRE(app.train_steps(5));
  app.refresh_instruments();
  p = app.status()["probe"];
  CHECK(p["code"]["inputDims"] == 196);
  CHECK(p["code"]["dims"] == 128);
  CHECK(p["pcaIsPixels"] == true);
  CHECK(p["pca"] == p["pixels"]);

  // Test images without labels: the probe says it cannot run.
  Dataset unlabelled = mnist(false);
  unlabelled.labels.clear();
  unlabelled.name = "my-images";
  app.set_data(mnist(true), unlabelled);
  app.refresh_instruments();
  p = app.status()["probe"];
  REQUIRE(p.is_object());
  CHECK(p["code"].is_null());
  CHECK(p["error"] == "the probe needs labels, and 'my-images' has none (images without labels can be reconstructed "
                      "and scored, not probed)");
  ui.frame(app);
}

TEST_CASE("app: a VAE's posterior for a selected digit: its mu and sigma, z samples drawn live; none for a plain AE") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "vae-mlp"}, {"seed", 1}, {"panels", "latent"}})["ok"] == true);
  REQUIRE(app.train_steps(30));
  app.refresh_views();
  CHECK(app.status()["posterior"].is_null());
  REQUIRE(app.command({{"posteriorDigit", 3}})["ok"] == true);
  for (int i = 0; i < 5; ++i) ui.frame(app);
  nlohmann::json q = app.status()["posterior"];
  REQUIRE(q.is_object());
  CHECK(q["digit"] == 3);
  CHECK(q["samples"] == kPosteriorSamples);
  auto m = model_of(app, load_preset("vae-mlp"));
  Tensor x;
  const uint32_t id = 3;
  fill_batch(mnist(false), &id, 1, m->preset().normalize, x);
  const Model::Posterior post = m->encode_posterior(x);
  REQUIRE(q["mu"].size() == 2);
  for (size_t j = 0; j < 2; ++j) {
    CHECK(num(q["mu"][j]) == doctest::Approx(post.mu.data()[j]).epsilon(1e-5));
    CHECK(num(q["sigma"][j]) == doctest::Approx(std::exp(0.5 * post.logvar.data()[j])).epsilon(1e-5));
  }
  // The cloud is drawn from N(mu, sigma^2): its mean within 5 standard errors of mu, its spread within 30% of sigma;
  // and it is drawn live: after enough frames every sample has been replaced.
  for (size_t j = 0; j < 2; ++j) {
    const double sigma = num(q["sigma"][j]);
    CHECK(std::fabs(num(q["sampleMean"][j]) - num(q["mu"][j])) < 5 * sigma / std::sqrt(double(kPosteriorSamples)));
    CHECK(num(q["sampleStd"][j]) == doctest::Approx(sigma).epsilon(0.3));
  }
  for (size_t i = 0; i < kPosteriorSamples / kPosteriorSamplesPerFrame; ++i) ui.frame(app);
  const nlohmann::json later = app.status()["posterior"];
  CHECK(later["samples"] == kPosteriorSamples);
  CHECK(later["mu"] == q["mu"]);
  CHECK(later["sampleMean"] != q["sampleMean"]);
  CHECK(app.command({{"posteriorDigit", 400}})["ok"] == false);  // not among the plotted digits (view_images = 400)
  REQUIRE(app.command({{"posteriorDigit", -1}})["ok"] == true);
  CHECK(app.status()["posterior"].is_null());
  REQUIRE(app.command({{"preset", "linear"}})["ok"] == true);
  nlohmann::json r = app.command({{"posteriorDigit", 3}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0] == "posteriorDigit: this model is not a VAE (it has no posterior)");
  CHECK(app.status()["posterior"].is_null());
}

TEST_CASE("app: foreign data without a reset: Fashion-MNIST or own IDX images beside the test digits, between frames") {
  Headless ui;
  testing::RecordingDriver driver;
  auto app_ptr = make_app(nullptr, &driver);
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"seed", 1}, {"panels", "recon"}})["ok"] == true);
  REQUIRE(app.train_steps(300));
  CHECK(app.command({{"foreignData", "mnist"}})["ok"] == false);
  nlohmann::json st = app.status();
  CHECK(st["foreignData"] == "none");
  CHECK(st["foreign"].is_null());

  // Fashion-MNIST: the driver is asked for it; measured between frames once it is in.
  REQUIRE(app.command({{"foreignData", "fashion"}})["ok"] == true);
  CHECK(driver.fashion_calls == 1);
  CHECK(app.config_query().find("&foreignData=fashion") != std::string::npos);  // "Copy link" keeps it
  for (int i = 0; i < 3; ++i) ui.frame(app);
  CHECK(app.status()["foreign"].is_null());  // nothing to measure yet
  const Dataset fashion = load_mnist("/usr/share/datasets/fashion-mnist", false);
  app.set_ood(fashion);
  const std::vector<uint8_t> weights = app.save_weights_bytes();
  int frames = 0;
  for (; frames < 3000 && app.status()["foreign"].is_null(); ++frames) ui.frame(app);
  st = app.status();
  REQUIRE(st["foreign"].is_object());
  CHECK(frames > 1);  // in slices
  const nlohmann::json f = st["foreign"];
  CHECK(f["name"] == "Fashion-MNIST");
  CHECK(f["step"] == 300);
  CHECK(st["step"] == 300);  // nothing trained, nothing reset
  CHECK(app.save_weights_bytes() == weights);
  // The values are those of core's reconstruction_errors + compare_errors on the model's weights.
  auto m = model_of(app, load_preset("linear"));
  std::vector<float> te(kForeignImages), fe(kForeignImages);
  reconstruction_errors(*m, mnist(false), 0, te.size(), te.data());
  reconstruction_errors(*m, fashion, 0, fe.size(), fe.data());
  const ErrorComparison c = compare_errors(te, fe, kForeignBins);
  CHECK(f["n"] == kForeignImages);
  CHECK(f["testN"] == kForeignImages);
  CHECK(num(f["meanError"]) == doctest::Approx(c.foreign_mean).epsilon(1e-6));
  CHECK(num(f["testMeanError"]) == doctest::Approx(c.test_mean).epsilon(1e-6));
  CHECK(num(f["ratio"]) == doctest::Approx(c.ratio).epsilon(1e-6));
  CHECK(num(f["auc"]) == doctest::Approx(c.auc).epsilon(1e-6));
  CHECK(f["histogram"]["test"] == c.test_hist);
  CHECK(f["histogram"]["foreign"] == c.foreign_hist);
  CHECK(num(f["meanError"]) > 2 * num(f["testMeanError"]));  // clothes are not digits
  REQUIRE(f["rowErrors"].size() == size_t(kForeignRow));
  for (int i = 0; i < kForeignRow; ++i) CHECK(num(f["rowErrors"][i]) == doctest::Approx(fe[i]).epsilon(1e-5));
  // As the model trains, the newer weights are measured.
  REQUIRE(app.train_steps(5));
  for (frames = 0; frames < 3000 && app.status()["foreign"]["step"] != 305; ++frames) ui.frame(app);
  CHECK(app.status()["foreign"]["step"] == 305);

  // Own images: while "own" is chosen, a dropped IDX file is foreign data; bad files are refused and change nothing.
  REQUIRE(app.command({{"foreignData", "own"}})["ok"] == true);
  CHECK(app.status()["foreign"].is_null());
  CHECK(app.config_query().find("foreignData") == std::string::npos);  // a link cannot carry the learner's file
  CHECK(app.status()["foreignImages"] == 0);
  CHECK_THROWS_WITH(app.load_data_file({1, 2, 3}, "junk.idx"), doctest::Contains("junk.idx"));
  CHECK_THROWS_WITH(app.load_data_file(idx_images(fashion, 3, 32, 32), "big.idx"),
                    "big.idx: images are 32x32; the models expect 28x28");
  std::vector<uint8_t> labels = read_file(default_mnist_dir() + "/t10k-labels-idx1-ubyte.gz");
  CHECK_THROWS_WITH(app.load_data_file(labels, "t10k-labels.gz"), doctest::Contains("holds labels"));
  for (int i = 0; i < 3; ++i) ui.frame(app);
  st = app.status();
  CHECK(st["foreignImages"] == 0);
  CHECK(st["foreign"].is_null());
  CHECK(st["step"] == 305);
  CHECK(st["trainImages"] == mnist(true).count);
  // 50 test digits, inverted (white background): the model as it is, on them.
  Dataset inverted = mnist(false);
  for (uint8_t& v : inverted.pixels) v = uint8_t(255 - v);
  inverted.count = 50;
  inverted.pixels.resize(50 * 784);
  app.load_data_file(idx_images(inverted, 50), "/home/me/my-images.idx");
  CHECK(app.message.find("50 images from my-images.idx") != std::string::npos);
  for (frames = 0; frames < 3000 && app.status()["foreign"].is_null(); ++frames) ui.frame(app);
  st = app.status();
  REQUIRE(st["foreign"].is_object());
  CHECK(st["foreign"]["name"] == "my-images.idx");
  CHECK(st["foreign"]["n"] == 50);
  m = model_of(app, load_preset("linear"));
  std::vector<float> ie(50);
  reconstruction_errors(*m, inverted, 0, 50, ie.data());
  CHECK(num(st["foreign"]["meanError"]) == doctest::Approx(std::accumulate(ie.begin(), ie.end(), 0.0) / 50).epsilon(1e-6));
  CHECK(st["step"] == 305);
  CHECK(st["trainImages"] == mnist(true).count);  // the training set stays

  // A new model: the measurement starts over, the choice and the images stay. "none" ends it; dropped files then
  // go to the training data again.
  REQUIRE(app.command({{"preset", "conv"}})["ok"] == true);
  st = app.status();
  CHECK(st["foreign"].is_null());
  CHECK(st["foreignData"] == "own");
  CHECK(st["foreignImages"] == 50);
  REQUIRE(app.command({{"foreignData", "none"}})["ok"] == true);
  for (int i = 0; i < 3; ++i) ui.frame(app);
  CHECK(app.status()["foreign"].is_null());
  app.load_data_file(idx_images(fashion, 50), "my-test-images.idx");
  CHECK(app.message.find("drop the matching labels") != std::string::npos);
}

}  // namespace aep

namespace aep {

TEST_CASE("app: training starts on a first part of MNIST; the rest joins without a reset; a Reset then trains as the CLI does") {
  testing::LoopbackHost loop;
  bool elsewhere = false;
  SUBCASE("trained in the frames") {}
  SUBCASE("trained by a host, as in the page's worker") { elsewhere = true; }
  Headless ui;
  ui.host = elsewhere ? &loop : nullptr;
  App app(TextureApi{}, nullptr);
  if (elsewhere) app.attach_host(&loop);
  app.view_images = 400, app.eval_images = 400, app.main_share = 1;
  Dataset train = dataset_tail(mnist(true), 0), test = dataset_tail(mnist(false), 0);
  truncate_dataset(train, 1000), truncate_dataset(test, 500);
  app.set_data(train, test, false);
  auto steps_to = [&](size_t n) {
    for (int i = 0; i < 2000 && app.status()["step"] != n; ++i) ui.frame(app);
    REQUIRE(app.status()["step"] == n);
  };
  REQUIRE(app.command({{"preset", "linear"}, {"seed", 3}, {"epochs", 1}, {"step", 40}})["ok"] == true);
  nlohmann::json st = app.status();
  CHECK(st["dataReady"] == false);
  CHECK(st["data"] == nlohmann::json({{"train", 1000}, {"test", 500}, {"complete", false}}));
  steps_to(40);  // past the first part's 16 batches of 64: its epochs do not end the one asked for
  CHECK(app.status()["running"] == false);

  // Images that do not fit are refused and change nothing.
  Dataset unlabelled = dataset_tail(mnist(true), 1000);
  unlabelled.labels.clear();
  CHECK_THROWS_WITH(app.add_data(std::move(unlabelled), dataset_tail(mnist(false), 500)),
                    doctest::Contains("without labels"));
  CHECK(app.status()["data"]["train"] == 1000);

  app.add_data(dataset_tail(mnist(true), 1000), dataset_tail(mnist(false), 500), true);
  st = app.status();
  CHECK(st["dataReady"] == true);
  CHECK(st["data"] == nlohmann::json({{"train", 60000}, {"test", 10000}, {"complete", true}}));
  CHECK(st["step"] == 40);  // no reset
  REQUIRE(app.command({{"step", 30}})["ok"] == true);
  steps_to(70);
  CHECK(app.status()["dataReady"] == true);

  // Once everything is in, a Reset trains as the CLI does: the seed's weights on all of MNIST.
  REQUIRE(app.command({{"reset", true}})["ok"] == true);
  REQUIRE(app.command({{"step", 25}})["ok"] == true);
  steps_to(25);
  for (int i = 0; i < 5; ++i) ui.frame(app);  // (the host's last report)
  Preset p = load_preset("linear");
  p.training.epochs = 1;
  Run cli(p, 3);
  cli.set_data(mnist(true));
  for (int i = 0; i < 25; ++i) cli.step();
  CHECK(app.save_weights_bytes() == serialize_safetensors(model_state(*cli.model)));
}

}  // namespace aep
