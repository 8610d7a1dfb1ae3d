// Lessons in the playground, driven headless: a lesson with a twin run followed through its button, its goal values
// equal to `aep lesson`'s (LessonRunner), progress and the twin surviving the autosave, settings changed and put back,
// and the lesson commands' errors.
#include <doctest/doctest.h>

#include <cmath>

#include "app/ui_probe.hpp"
#include "app_headless.hpp"
#include "core/lesson.hpp"
#include "core/sweep.hpp"

namespace aep {
namespace {

using testing::Headless;
using testing::make_app;
using nlohmann::json;

// Two linear autoencoders from the same seed, one with a tenth of the learning rate: the same weights at the start
// (ratio 1), the slow one behind after 30 steps.
const char* kTinyTwin = R"({
  "id": "tiny-twin", "title": "Tiny twin", "section": "000 · A Linear Autoencoder",
  "start": {"preset": "linear", "label": "lr 0.001", "seed": 5, "lr": 0.001, "panels": "training,recon"},
  "twin": {"label": "lr 0.0001", "lr": 0.0001},
  "steps": [
    {"instruction": "Train both.", "action": {"label": "Train both 30 steps", "train": 30}, "look": ["training", "recon"],
     "goal": "b.testLoss / a.testLoss > 1.03"},
    {"instruction": "Now faster.", "action": {"label": "Faster", "settings": {"lr": 0.003}, "train": 20},
     "goal": "step >= 50"}
  ]})";

// Frames until the lesson's measurement is of the runs' current step (and no action is running).
json settle(Headless& ui, App& app) {
  json l;
  for (int i = 0; i < 3000; ++i) {
    ui.frame(app);
    const json st = app.status();
    l = st["lesson"];
    if (l.is_object() && l["actionLeft"] == 0 && l["measuring"] == false && l["measuredStep"] == st["step"]) return l;
  }
  FAIL("the lesson's measurement never caught up");
  return l;
}

}  // namespace

TEST_CASE("app lessons: a twin lesson followed through its button measures what aep lesson measures") {
  testing::LoopbackHost loop;
  bool elsewhere = false;
  SUBCASE("trained in the frames") {}
  SUBCASE("trained by a host, as in the page's worker") { elsewhere = true; }
  Headless ui;
  ui.host = elsewhere ? &loop : nullptr;
  UiProbe probe;
  probe.install();
  auto app_ptr = make_app(ui.host);
  App& app = *app_ptr;
  const json lesson_json = json::parse(kTinyTwin);
  REQUIRE(app.command({{"lessonJson", lesson_json}})["ok"] == true);
  json l = settle(ui, app);
  CHECK(l["id"] == "tiny-twin");
  CHECK(l["custom"] == true);
  CHECK(l["step"] == 1);
  CHECK(l["holds"] == false);
  CHECK(l["value"].get<double>() == doctest::Approx(1.0));  // same seed, same weights: ratio 1
  CHECK(l["twin"]["label"] == "lr 0.0001");
  CHECK(app.status()["panels"] == json({"training", "recon"}));  // the step's look
  CHECK(app.status()["panelRects"].contains("lesson"));
  CHECK(l["events"].size() == 1);  // "start"

  // The learner presses the step's button.
  probe.clear();
  ui.frame(app);
  const std::vector<UiProbe::Item> button = probe.find("Train both 30 steps");
  REQUIRE(button.size() == 1);
  ImGuiIO& io = ImGui::GetIO();
  io.AddMousePosEvent(button[0].center().x, button[0].center().y);
  ui.frame(app);
  io.AddMouseButtonEvent(0, true);
  ui.frame(app);
  io.AddMouseButtonEvent(0, false);
  l = settle(ui, app);
  CHECK(app.status()["step"] == 30);
  CHECK(l["twin"]["step"] == 30);
  CHECK(l["holds"] == true);
  CHECK(l["steps"][0]["progress"] == "reached");
  REQUIRE(l["events"].size() == 2);
  const json ev = l["events"][1];
  CHECK(ev["type"] == "aep-event");
  CHECK(ev["event"] == "goal");
  CHECK(ev["lesson"] == "tiny-twin");
  CHECK(ev["step"] == 1);
  CHECK(ev["done"] == false);
  CHECK(ev["value"].get<double>() > 1.03);

  // The same lesson headless, as `aep lesson` follows it: the page's values are the same numbers.
  LessonRunner runner(parse_lesson(lesson_json, "test"), testing::app_mnist(true), testing::app_mnist(false));
  runner.apply_action(0);
  for (const char* run : {"a", "b"})
    for (const char* key : {"testLoss", "testError", "anomalyAuc", "codeMeanAbs", "step"}) {
      CAPTURE(run);
      CAPTURE(key);
      CHECK(l["values"][run][key] == runner.status()[run][key]);
    }

  // The autosave keeps the lesson, its progress and the twin's weights.
  REQUIRE(app.command({{"lessonStep", 2}})["ok"] == true);
  const std::vector<uint8_t> session = app.session_bytes();
  {
    testing::LoopbackHost other_loop;
    ui.host = elsewhere ? &other_loop : nullptr;
    auto other_ptr = make_app(ui.host);
    App& other = *other_ptr;
    other.restore_session(session);
    const json r = settle(ui, other);
    CHECK(r["id"] == "tiny-twin");
    CHECK(r["step"] == 2);
    CHECK(r["steps"][0]["progress"] == "reached");
    CHECK(r["twin"]["step"] == 30);
    CHECK(r["values"]["b"]["testLoss"] == l["values"]["b"]["testLoss"]);
    CHECK(r["values"]["a"]["testLoss"] == l["values"]["a"]["testLoss"]);
    CHECK(r["changed"] == "");
    ui.host = elsewhere ? &loop : nullptr;
  }

  // The second step's action changes a setting of both runs and trains on: its goal holds, the lesson is done.
  REQUIRE(app.command({{"lessonAction", true}})["ok"] == true);
  l = settle(ui, app);
  CHECK(app.status()["lr"].get<double>() == doctest::Approx(0.003));
  CHECK(l["changed"] == "");
  CHECK(l["holds"] == true);
  CHECK(l["done"] == true);
  CHECK(l["events"].back()["done"] == true);

  // A change the lesson did not make is named, and putting the settings back starts both runs over.
  REQUIRE(app.command({{"lr", 0.01}})["ok"] == true);
  ui.frame(app);
  CHECK(app.status()["lesson"]["changed"] == "the optimizer");
  REQUIRE(app.command({{"lessonRestore", true}})["ok"] == true);
  ui.frame(app);
  CHECK(app.status()["lesson"]["changed"] == "");
  CHECK(app.status()["step"] == 0);
  CHECK(app.status()["lesson"]["twin"]["step"] == 0);
}

TEST_CASE("app lessons: built-in lessons by id, skipping, leaving, and clear errors that change nothing") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  const json st0 = app.status();
  CHECK(st0["lesson"].is_null());
  REQUIRE(st0["lessons"].size() >= 9);
  CHECK(std::find(st0["lessons"].begin(), st0["lessons"].end(), "denoising") != st0["lessons"].end());

  json r = app.command({{"lesson", "nope"}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0].get<std::string>().find("unknown lesson \"nope\" (known: ") == 0);
  r = app.command({{"lessonJson", {{"id", "x"}}}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0].get<std::string>().find("lesson 'x'") != std::string::npos);
  r = app.command({{"lessonStep", 2}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0] == "lessonStep: no lesson is open");
  r = app.command({{"lessonAction", true}});
  CHECK(r["ok"] == false);
  CHECK(app.status()["lesson"].is_null());
  CHECK(app.status()["preset"] == st0["preset"]);

  // Opened at its second step: the first counts as skipped, and the parent page is told.
  REQUIRE(app.command({{"lesson", "denoising"}, {"lessonStep", 2}})["ok"] == true);
  ui.frame(app);
  json l = app.status()["lesson"];
  CHECK(l["id"] == "denoising");
  CHECK(l["step"] == 2);
  CHECK(l["steps"][0]["progress"] == "skipped");
  REQUIRE(l["events"].size() == 2);
  CHECK(l["events"][0]["event"] == "start");
  CHECK(l["events"][1]["event"] == "skip");
  CHECK(l["events"][1]["seq"].get<int>() > l["events"][0]["seq"].get<int>());
  CHECK(app.status()["preset"] == "denoise");
  CHECK(app.status()["target"] == "clean");
  CHECK(l["twin"]["label"] == "noisy target");
  r = app.command({{"lessonStep", 7}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0] == "lessonStep must be a whole number from 1 to 2, got 7");

  // The start screen and the lesson panel draw; leaving gives every panel back.
  REQUIRE(app.command({{"lessonPicker", true}})["ok"] == true);
  for (int i = 0; i < 3; ++i) ui.frame(app);
  CHECK(app.status()["lessonPicker"] == true);
  REQUIRE(app.command({{"lesson", ""}})["ok"] == true);
  ui.frame(app);
  CHECK(app.status()["lesson"].is_null());
  CHECK(app.status()["panels"].size() == 10);
}

TEST_CASE("app: compare with... trains a second preset beside the run, in lockstep, measured like a lesson's twin") {
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  REQUIRE(app.command({{"preset", "linear"}, {"seed", 4}})["ok"] == true);
  json r = app.command({{"compare", "nope"}});
  CHECK(r["ok"] == false);
  CHECK(r["errors"][0].get<std::string>().find("compare must be a preset name") == 0);
  CHECK(app.status()["compare"].is_null());
  REQUIRE(app.command({{"compare", "tied"}})["ok"] == true);
  json c = app.status()["compare"];
  CHECK(c["a"] == "linear");
  CHECK(c["b"] == "tied");
  REQUIRE(app.command({{"step", 20}})["ok"] == true);
  CHECK(app.status()["step"] == 20);
  CHECK(app.status()["compare"]["twinStep"] == 20);
  for (int i = 0; i < 2000 && app.status()["compare"]["measuredStep"] != 20; ++i) ui.frame(app);
  c = app.status()["compare"];
  REQUIRE(c["measuredStep"] == 20);
  // The twin is the tied preset trained 20 steps on the same batches: as LessonRunner trains a lesson's twin.
  Lesson l = parse_lesson(json::parse(R"({"id": "cmp", "title": "t", "section": "000 · A Linear Autoencoder",
    "start": {"preset": "linear", "label": "a", "seed": 4}, "twin": {"preset": "tied", "label": "b"},
    "steps": [{"instruction": "i", "action": {"label": "go", "train": 20}, "goal": "step >= 20"}]})"), "test");
  LessonRunner runner(l, testing::app_mnist(true), testing::app_mnist(false));
  runner.apply_action(0);
  CHECK(c["values"]["b"]["testLoss"] == runner.status()["b"]["testLoss"]);
  CHECK(c["values"]["a"]["testLoss"] == runner.status()["a"]["testLoss"]);
  for (int i = 0; i < 3; ++i) ui.frame(app);  // the Training panel draws both
  REQUIRE(app.command({{"compare", ""}})["ok"] == true);
  CHECK(app.status()["compare"].is_null());
}

TEST_CASE("app: trained by a host (the page's worker, the desktop's thread), the weights are those of training in place") {
  using testing::LoopbackHost;
  std::vector<uint8_t> weights[2];
  json st[2];
  for (int k = 0; k < 2; ++k) {
    LoopbackHost loop;
    Headless ui;
    ui.host = k ? &loop : nullptr;
    auto app = make_app(ui.host);
    REQUIRE(app->command({{"preset", "denoise"}, {"seed", 4}, {"batch", 32}, {"step", 40}})["ok"] == true);
    for (int i = 0; i < 2000 && app->status()["step"] != 40; ++i) ui.frame(*app);
    REQUIRE(app->status()["step"] == 40);
    REQUIRE(app->command({{"lr", 0.003}, {"noise", 0.3}, {"step", 25}})["ok"] == true);  // where the run stands
    for (int i = 0; i < 2000 && app->status()["step"] != 65; ++i) ui.frame(*app);
    REQUIRE(app->status()["step"] == 65);
    for (int i = 0; i < 200 && !(app->status()["testLoss"].is_number() && !app->status()["running"].get<bool>()); ++i)
      ui.frame(*app);
    st[k] = app->status();
    weights[k] = app->save_weights_bytes(true);
  }
  CHECK(weights[0] == weights[1]);
  CHECK(st[1]["running"] == false);
  CHECK(st[1]["trainLoss"] == st[0]["trainLoss"]);
  CHECK(st[1]["testLoss"].get<double>() == doctest::Approx(st[0]["testLoss"].get<double>()).epsilon(1e-6));
}

TEST_CASE("app lessons: denoising-unseen-data shows noisy Fashion-MNIST over both runs' outputs, with the measured errors") {
  const Dataset fashion = load_mnist("/usr/share/datasets/fashion-mnist", false);
  Headless ui;
  auto app_ptr = make_app();
  App& app = *app_ptr;
  app.set_ood(fashion);
  REQUIRE(app.command({{"lesson", "denoising-unseen-data"}})["ok"] == true);
  const json l = settle(ui, app);  // measured at step 0
  REQUIRE(l["foreignRow"].is_object());
  CHECK(l["foreignRow"]["step"] == 0);
  // The row's errors are the first of those behind foreignTestError: each run measured as `aep lesson` measures it.
  const Lesson lesson = load_lesson("denoising-unseen-data");
  LessonRunner runner(lesson, testing::app_mnist(true), testing::app_mnist(false), 1000, &fashion);
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    RunMeasure m;
    m.begin(runner.run(i), testing::app_mnist(false),
            lesson_measure_options(lesson, i ? *lesson.twin : lesson.start, 1000, &fashion));
    while (!m.step(1e9)) {
    }
    const json& row = l["foreignRow"][i ? "b" : "a"];
    REQUIRE(row.size() == 8);
    REQUIRE(m.foreign_test_errors().size() == 1000);
    for (size_t k = 0; k < 8; ++k) CHECK(row[k].get<double>() == doctest::Approx(m.foreign_test_errors()[k]).epsilon(1e-5));
  }
  for (int i = 0; i < 3; ++i) ui.frame(app);  // the Reconstructions panel draws the row
}

TEST_CASE("app: a beta sweep trains its runs beside the run, in lockstep; each row is the run trained alone, measured") {
  using testing::LoopbackHost;
  const std::vector<double> betas{0.5, 8};
  // The reference: each beta's run trained alone from the same seed (lockstep takes the same batches), measured as
  // `aep sweep` measures it.
  std::vector<json> alone;
  for (double beta : betas) {
    Preset p = load_preset("vae-mlp-16");
    p.loss.beta = float(beta);
    Run r(p, 3);
    r.set_data(testing::app_mnist(true));
    for (int i = 0; i < 12; ++i) r.step();
    RunMeasure m;
    m.begin(r, testing::app_mnist(false), sweep_measure_options());
    while (!m.step(1e9)) {
    }
    alone.push_back(sweep_row_json(sweep_row(m, beta)));
  }
  CHECK(alone[1]["kl"].get<double>() < alone[0]["kl"].get<double>());  // the larger beta pays less KL
  for (int k = 0; k < 2; ++k) {  // trained in the frames, and by a host (the page's worker)
    CAPTURE(k);
    LoopbackHost loop;
    Headless ui;
    ui.host = k ? &loop : nullptr;
    auto app_ptr = make_app(ui.host);
    App& app = *app_ptr;
    REQUIRE(app.command({{"preset", "linear"}})["ok"] == true);
    json r = app.command({{"betaSweep", {0.5, 8}}});  // a plain autoencoder has no beta
    CHECK(r["ok"] == false);
    CHECK(r["errors"][0] == "beta sweep: linear is not a VAE (beta weighs the KL term of a VAE's loss)");
    REQUIRE(app.command({{"preset", "vae-mlp-16"}, {"seed", 3}, {"step", 2}})["ok"] == true);
    for (int i = 0; i < 2000 && app.status()["step"] != 2; ++i) ui.frame(app);
    for (const json& bad : {json{1, 2, 3, 4, 5, 6}, json{1, -1}, json{1, 1e9}, json{2, 2}, json("1,x"), json{1, "a"},
                            json(7)}) {
      CAPTURE(bad.dump());
      r = app.command({{"betaSweep", bad}, {"lr", 0.002}});
      CHECK(r["ok"] == false);
      CHECK(r["errors"][0].get<std::string>().find("beta") != std::string::npos);
      CHECK(app.status()["betaSweep"].is_null());
      CHECK(app.status()["lr"].get<double>() == doctest::Approx(0.001));  // nothing of a refused command applies
    }
    CHECK(app.status()["step"] == 2);
    REQUIRE(app.command({{"betaSweep", "0.5, 8"}})["ok"] == true);  // as the URL gives it
    json w = app.status()["betaSweep"];
    CHECK(w["betas"] == json{0.5, 8});
    CHECK(app.status()["step"] == 0);  // the run starts over with the sweep's runs
    REQUIRE(app.command({{"step", 12}})["ok"] == true);
    for (int i = 0; i < 4000; ++i) {
      ui.frame(app);
      w = app.status()["betaSweep"];
      if (app.status()["step"] == 12 && w["step"] == 12 && w["measuring"] == false) break;
    }
    REQUIRE(w["step"] == 12);
    CHECK(w["runSteps"] == json{12, 12});
    CHECK(w["inLockstep"] == true);
    REQUIRE(w["rows"].size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CAPTURE(i);
      const json& row = w["rows"][i];
      CHECK(row["beta"] == betas[i]);
      CHECK(row["recon"] == alone[i]["recon"]);
      CHECK(row["kl"] == alone[i]["kl"]);
      CHECK(row["klPerDim"] == alone[i]["klPerDim"]);
      CHECK(row["activeUnits"] == alone[i]["activeUnits"]);
      CHECK(row["latent"] == 16);
    }
    for (int i = 0; i < 3; ++i) ui.frame(app);  // the Latent panel draws the table
    REQUIRE(app.command({{"betaSweep", json::array()}})["ok"] == true);
    CHECK(app.status()["betaSweep"].is_null());
    REQUIRE(app.command({{"step", 3}})["ok"] == true);  // the run alone again
    for (int i = 0; i < 2000 && app.status()["step"] != 15; ++i) ui.frame(app);
    CHECK(app.status()["step"] == 15);
  }
}

TEST_CASE("app: trained by a host, a Train before the data (the page's autostart) waits for the data") {
  testing::LoopbackHost loop;
  Headless ui;
  ui.host = &loop;
  App app;
  app.attach_host(&loop);
  REQUIRE(app.command({{"preset", "linear"}, {"autostart", 1}})["ok"] == true);
  for (int i = 0; i < 5; ++i) ui.frame(app);  // the host reports its runs, with no data, not training
  CHECK(app.status()["running"] == true);
  app.set_data(testing::app_mnist(true), testing::app_mnist(false));
  for (int i = 0; i < 2000 && app.status()["step"].get<size_t>() < 20; ++i) ui.frame(app);
  CHECK(app.status()["step"].get<size_t>() >= 20);
  CHECK(app.status()["running"] == true);
}

// The page's main thread while its worker trains: the views, instruments and lesson values share at most
// App::main_share of the wall clock, and still follow the training.
TEST_CASE("app: while a host trains, the metered views still refresh from newer weights") {
  testing::LoopbackHost loop;
  Headless ui;
  ui.host = &loop;
  auto app = make_app(ui.host);
  app->main_share = 0.25;
  REQUIRE(app->command({{"preset", "linear"}, {"seed", 1}, {"train", true}})["ok"] == true);
  std::vector<float> first;
  int i = 0;
  for (; i < 3000 && first.empty(); ++i) {
    ui.frame(*app);
    first = app->latent_points();
  }
  REQUIRE(!first.empty());
  const size_t step_then = app->status()["step"].get<size_t>();
  bool moved = false;
  for (i = 0; i < 3000 && !moved; ++i) {
    ui.frame(*app);
    moved = app->latent_points() != first;
  }
  CHECK(moved);
  CHECK(app->status()["running"] == true);
  CHECK(app->status()["step"].get<size_t>() > step_then);
}

}  // namespace aep
