// Lessons: the goal language (precedence, twin prefixes, missing values, division by zero, parse errors), the lesson
// files and their malformed cases with exact messages, the noisy-target corruption, and every lesson followed headless:
// each goal false when its step opens and true after its action.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/export.hpp"
#include "core/goal.hpp"
#include "core/instruments.hpp"
#include "core/lesson.hpp"
#include "core/metrics.hpp"
#include "core/train.hpp"

namespace {

using namespace aep;
using nlohmann::json;

const Dataset& lesson_mnist(bool train) {
  static Dataset tr = load_mnist(default_mnist_dir(), true), te = load_mnist(default_mnist_dir(), false);
  return train ? tr : te;
}

// Fashion-MNIST's test images (Debian's dataset-fashion-mnist, installed by scripts/bootstrap.sh), for foreignError.
const Dataset& lesson_fashion() {
  static Dataset d = load_mnist("/usr/share/datasets/fashion-mnist", false);
  return d;
}

// A run of the preset from seed 1, trained `steps` steps on the MNIST training images.
std::unique_ptr<Run> trained_run(const Preset& p, int steps) {
  auto run = std::make_unique<Run>(p, 1);
  run->set_data(lesson_mnist(true));
  for (int i = 0; i < steps; ++i) run->step();
  return run;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("goal: precedence and associativity, as in C and Python") {
  const json status = {{"step", 0}, {"lr", 1}, {"batch", 2}, {"seed", 3}, {"beta", 4}, {"l1", 8}, {"holdout", 10}};
  struct Case {
    const char* text;
    bool holds;
  };
  const Case cases[] = {
      {"lr + batch * seed == 7", true},
      {"(lr + batch) * seed == 9", true},
      {"holdout - beta - seed == 3", true},
      {"l1 / beta / batch == 1", true},
      {"-batch * -seed == 6", true},
      {"- (lr + lr) == -batch", true},
      {"batch * seed > 5 and lr < batch", true},
      {"not lr > batch and batch > lr", true},
      {"not (lr > batch or batch > lr)", false},
      {"lr > batch or batch > lr and seed > beta", false},
      {"(lr > batch or batch > lr) and seed > beta", false},
      {"lr < batch or seed < batch and lr > batch", true},
      {"1e-3 * l1 < .01", true},
      {"2.5e2 == 250 * lr", true},
      {"lr != 1", false},
      {"lr <= 1 and lr >= 1", true},
      {"step == 0", true},
      {"not not lr < batch", true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const Goal::Result r = Goal(c.text, false).evaluate(status);
    CHECK(r.holds == c.holds);
    CHECK(r.missing.empty());
    CHECK(r.problem.empty());
  }
}

TEST_CASE("goal: values of the run and its twin, the value shown, missing values and division by zero") {
  const json a = {{"testLoss", 0.02}, {"step", 300}, {"testError", 0.0}};
  const json b = {{"testLoss", 0.03}, {"step", 300}, {"testError", nullptr}};
  const json status = {{"testLoss", 0.02}, {"step", 300}, {"testError", 0.0}, {"a", a}, {"b", b}};

  Goal::Result r = Goal("b.testLoss / a.testLoss > 1.2", true).evaluate(status);
  CHECK(r.holds);
  CHECK(r.value == doctest::Approx(1.5));
  r = Goal("b.testLoss / testLoss > 1.6", true).evaluate(status);  // unprefixed: run a
  CHECK_FALSE(r.holds);
  CHECK(r.value == doctest::Approx(1.5));
  CHECK(r.missing.empty());

  r = Goal("testLoss < 0.03", false).evaluate(status);  // the value shown: the left side
  CHECK(r.holds);
  CHECK(r.value == doctest::Approx(0.02));
  r = Goal("step >= 300 and testLoss < 0.01", false).evaluate(status);  // the first comparison's left side
  CHECK_FALSE(r.holds);
  CHECK(r.value == 300);

  r = Goal("b.testError < 0.05", true).evaluate(status);  // null: not measured yet
  CHECK_FALSE(r.holds);
  CHECK(r.missing == "b.testError");
  CHECK(std::isnan(r.value));
  r = Goal("not b.testError > 0.05", true).evaluate(status);  // a missing value never makes a goal hold
  CHECK_FALSE(r.holds);
  CHECK(r.missing == "b.testError");
  r = Goal("testLoss < 1 or b.testError < 0.05", true).evaluate(status);
  CHECK_FALSE(r.holds);
  r = Goal("testKl < 1", false).evaluate(status);  // absent from the status
  CHECK(r.missing == "testKl");
  r = Goal("b.testLoss > 0", true).evaluate(json{{"testLoss", 1}});  // no twin values at all
  CHECK(r.missing == "b.testLoss");

  r = Goal("testLoss / testError > 1", false).evaluate(status);
  CHECK_FALSE(r.holds);
  CHECK(r.problem == "division by zero in 'testLoss / testError'");
  CHECK(r.missing.empty());
  r = Goal("not testLoss / (testError * 2) > 1", false).evaluate(status);  // not a way around it
  CHECK_FALSE(r.holds);
  CHECK(r.problem == "division by zero in 'testLoss / (testError * 2)'");
  r = Goal("b.testError / testError > 1", true).evaluate(status);  // waiting comes before the division
  CHECK(r.missing == "b.testError");
  CHECK(r.problem.empty());

  CHECK(Goal("b.testLoss / a.testLoss > 1 and testLoss < 1", true).names() ==
        std::vector<std::string>{"b.testLoss", "a.testLoss", "testLoss"});
}

TEST_CASE("goal: parse errors name the problem and where it is") {
  const std::string known = goal_value_names();
  CHECK(known.rfind("step, epoch, trainLoss, testLoss, ", 0) == 0);
  struct Case {
    std::string text;
    bool twin;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"testLos < 0.03", false, "unknown value 'testLos' (known: " + known + ")"},
      {"b.testLos < 0.03", true, "unknown value 'testLos' (known: " + known + ")"},
      {"b.testLoss > 1", false, "'b.testLoss' names a twin run, but this lesson has no twin"},
      {"c.testLoss > 1", true, "unknown run 'c' in 'c.testLoss' (runs are a and b)"},
      {"testLoss", false, "'testLoss' is a number, not a condition: compare it, e.g. 'testLoss < 0.03'"},
      {"testLoss < 1 < 2", false, "comparisons do not chain: join them with 'and' at column 14"},
      {"(testLoss < 1", false, "expected ')' to close the '(' at column 1, got the end at column 14"},
      {"testLoss = 1", false, "'=' is not an operator (compare with '==') at column 10"},
      {"testLoss < 1 && step > 2", false, "'&' is not an operator (use 'and', 'or', 'not') at column 14"},
      {"testLoss + (1 < 2) > 0", false, "'+' needs a number on its right, got the condition '(1 < 2)' at column 10"},
      {"testLoss < 1 and 2", false, "'and' needs a condition on its right, got the number '2' at column 14"},
      {"not testLoss", false, "'not' needs a condition on its right, got the number 'testLoss' at column 1"},
      {"testLoss <", false, "the goal ends where a number, a value or '(' should come at column 11"},
      {"testLoss < )", false, "expected a number, a value or '(', got ')' at column 12"},
      {"testLoss < 1 step", false, "expected an operator, 'and' or 'or' before 'step' at column 14"},
      {"1e999 > step", false, "bad number '1e999' at column 1"},
      {"1.2.3 > step", false, "bad number '1.2.3' at column 1"},
      {"2x > step", false, "a number must not run into a name ('2x') at column 2"},
      {"testLoss < 1 # note", false, "unexpected '#' at column 14"},
      {"1 < 2", false, "'1 < 2' names no value, so it is always true or always false: compare a value, e.g. 'testLoss < 0.03'"},
      {"", false, "the goal is empty"},
      {"   ", false, "the goal is empty"},
      {std::string(40, '(') + "1 < 2" + std::string(40, ')'), false, "nested more than 32 levels deep at column 33"},
      {std::string(40, '-') + "1 < 2", false, "nested more than 32 levels deep at column 33"},
      {"1 < " + std::string(600, '1'), false, "the goal has 604 characters; at most 500"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK_THROWS_WITH_AS(Goal(c.text, c.twin), c.message.c_str(), std::runtime_error);
  }
}

TEST_CASE("lessons: every file parses, its id is its name, and the README lists it and every goal value") {
  const std::vector<std::string> ids = list_lessons();
  CHECK(ids.size() >= 5);
  const std::string readme = read_text(assets_dir() + "/lessons/README.md");
  REQUIRE(!readme.empty());
  for (const std::string& id : ids) {
    CAPTURE(id);
    Lesson l = load_lesson(id);
    CHECK(l.id == id);
    CHECK(!l.steps.empty());
    CHECK(readme.find("`" + id + "`") != std::string::npos);
    for (const LessonStep& s : l.steps) CHECK(s.action.has_value());  // headless, a step moves only by its action
  }
  for (const GoalValue& v : goal_values()) {
    CAPTURE(v.name);
    CHECK(readme.find("| `" + std::string(v.name) + "` |") != std::string::npos);
  }
  CHECK_THROWS_WITH(load_lesson("no-such-lesson"),
                    doctest::Contains("unknown lesson 'no-such-lesson' (known: ae-vs-vae-latent, anomaly-detection, "));
}

TEST_CASE("lessons: malformed lesson files get messages that say what to fix") {
  const json base = {
      {"id", "x"},
      {"title", "A lesson"},
      {"section", "000 \xC2\xB7 Denoising"},
      {"start", {{"preset", "linear"}, {"label", "one"}}},
      {"twin", {{"label", "two"}, {"l1", 0.001}}},
      {"steps",
       {{{"instruction", "Train."}, {"action", {{"label", "Train"}, {"train", 10}}}, {"goal", "testLoss < 0.1"}},
        {{"instruction", "Again."}, {"action", {{"label", "Train"}, {"train", 10}}}, {"goal", "testLoss < 0.05"}},
        {{"instruction", "More."}, {"action", {{"label", "Train"}, {"train", 10}}}, {"goal", "step > 20"}}}}};
  REQUIRE_NOTHROW(parse_lesson(base, "t.json"));
  auto with = [&](const std::string& pointer, const json& value) {
    json j = base;
    j[json::json_pointer(pointer)] = value;
    return j.dump();
  };
  auto without = [&](const std::string& key) {
    json j = base;
    j.erase(key);
    return j.dump();
  };
  const std::string known = goal_value_names();
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{\"id\": ", "t.json: not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 8: "
                    "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"},
      {"[1, 2]", "t.json: must be a JSON object, got [1,2]"},
      {"{\"id\": \"x\", \"id\": \"y\"}", "t.json: duplicate key 'id'"},
      {std::string(30, '[') + std::string(30, ']'), "t.json: JSON is nested more than 20 levels deep"},
      {without("id"), "t.json: missing 'id'"},
      {with("/id", "Bad Id"), "t.json: 'id' must be 1 to 48 characters of a-z, 0-9 and '-', got \"Bad Id\""},
      {with("/colour", "red"), "lesson 'x': unknown key 'colour'"},
      {without("title"), "lesson 'x': missing 'title'"},
      {with("/section", "Denoising"),
       "lesson 'x': 'section' must be a course text's number (000 to 004), \" \xC2\xB7 \" and a heading of that text, "
       "e.g. \"000 \xC2\xB7 Denoising\", got \"Denoising\""},
      {with("/section", "007 \xC2\xB7 Spies"),
       "lesson 'x': 'section' must be a course text's number (000 to 004), \" \xC2\xB7 \" and a heading of that text, "
       "e.g. \"000 \xC2\xB7 Denoising\", got \"007 \xC2\xB7 Spies\""},
      {without("start"), "lesson 'x': missing 'start' (the preset and settings the lesson begins with)"},
      {with("/start", json{{"label", "one"}}), "lesson 'x': start: missing 'preset' (a preset name or an inline preset)"},
      {with("/start/lr", 20), "lesson 'x': start: lr must be a number between 1e-06 and 10, got 20"},
      {with("/start/lr", "fast"), "lesson 'x': start: lr must be a number between 1e-06 and 10, got \"fast\""},
      {with("/start/batch", 64.5), "lesson 'x': start: batch must be an integer between 1 and 4096, got 64.5"},
      {with("/start/holdout", 10), "lesson 'x': start: holdout must be an integer between -1 and 9, got 10"},
      {with("/start/corruption", "blur"),
       "lesson 'x': start: corruption must be one of none, gaussian, dropout, salt_pepper, occlusion, downsample, got "
       "\"blur\""},
      {with("/start/target", "noisy"), "lesson 'x': start: target must be one of clean, corrupted, got \"noisy\""},
      {with("/start/panels", "training,graph"),
       "lesson 'x': start: unknown panel 'graph' (known: model, data, training, recon, latent, generate, draw, "
       "anomaly, inside, save, all)"},
      {with("/start/colour", 1),
       "lesson 'x': start: unknown setting 'colour' (known: preset, lr, batch, epochs, seed, beta, l1, optimizer, "
       "corruption, noise, target, holdout, anomaly, panels, latent)"},
      {with("/start/step", 100), "lesson 'x': start: 'step' is not a lesson setting: an action trains with \"train\": N"},
      {with("/start/anomaly", "digit"),
       "lesson 'x': start: anomaly \"digit\" scores the held-out digit: set holdout to a digit (0-9)"},
      {with("/start/anomaly", "clothes"),
       "lesson 'x': start: anomaly must be one of noise, digit, fashion, got \"clothes\""},
      {with("/start/label", ""), "lesson 'x': start: 'label' must be 1 to 40 characters"},
      {with("/start/preset", "nope"), "lesson 'x': start: unknown preset \"nope\" (known: " + [] {
         std::string s;
         for (const std::string& n : list_presets()) s += (s.empty() ? "" : ", ") + n;
         return s;
       }() + ")"},
      {with("/start/preset", json{{"name", "mine"}}), "lesson 'x': start: preset: missing 'encoder' (a list of layers)"},
      {with("/start/preset", json{{"encoder", {{{"type", "Flatten"}}, {{"type", "Linear"}, {"in_features", 784}, {"out_features", 8}}}},
                                  {"decoder", {{{"type", "Linear"}, {"in_features", 9}, {"out_features", 784}}}}}),
       "lesson 'x': start: decoder.0 (Linear): Linear expects 9 input features, got 8"},
      {with("/start", json{{"preset", "fully-conv"}, {"label", "one"}, {"batch", 4096}}),
       "lesson 'x': start: training this model at batch size 4096 would need about 6739 MB of memory; the limit is "
       "1024 MB - use a batch size of at most 622 or a smaller model"},
      {with("/twin/seed", 2),
       "lesson 'x': twin: 'seed' is shared by both runs (they train in lockstep on the same batches): set it in 'start'"},
      {with("/twin/panels", "all"), "lesson 'x': twin: 'panels' belongs to 'start' (both runs show in the same panels)"},
      {with("/twin", json{{"l1", 0.001}}), "lesson 'x': twin: missing 'label' (e.g. \"noisy target\")"},
      {with("/twin/label", "one"), "lesson 'x': twin: 'label' must differ from the start's"},
      {with("/start", json{{"preset", "linear"}}), "lesson 'x': start: a lesson with a twin names both runs: add 'label'"},
      {without("steps"), "lesson 'x': missing 'steps'"},
      {with("/steps", json::array()), "lesson 'x': 'steps' must be a list of 1 to 20 steps"},
      {with("/steps/2/goal", "testLos < 0.03"), "lesson 'x': step 3: goal: unknown value 'testLos' (known: " + known + ")"},
      {with("/steps/0/goal", "c.testLoss < 1"), "lesson 'x': step 1: goal: unknown run 'c' in 'c.testLoss' (runs are a and b)"},
      {with("/steps/0/goal", 0.1), "lesson 'x': step 1: 'goal' must be a string, got 0.1"},
      {with("/steps/1/instruction", ""), "lesson 'x': step 2: 'instruction' must be 1 to 600 characters"},
      {with("/steps/0/action", json{{"label", "Nothing"}}),
       "lesson 'x': step 1: action: does nothing: give 'settings', 'train' or 'reset'"},
      {with("/steps/0/action/train", 6000), "lesson 'x': step 1: action: 'train' must be an integer between 1 and 5000, got 6000"},
      {with("/steps/0/action/label", nullptr), "lesson 'x': step 1: action: 'label' must be a string, got null"},
      {with("/steps/1/action/settings", json{{"noise", -1}}),
       "lesson 'x': step 2: action: settings: noise must be a number between 0 and 10, got -1"},
      {with("/steps/1/action/settings", json{{"reset", true}}),
       "lesson 'x': step 2: action: settings: 'reset' is not a lesson setting: an action starts over with \"reset\": true"},
      {with("/steps/1/action/settings", json::object()), "lesson 'x': step 2: action: 'settings' is empty"},
      {with("/steps/0/look", json{"training", "graph"}),
       "lesson 'x': step 1: look: unknown panel \"graph\" (known: model, data, training, recon, latent, generate, draw, "
       "anomaly, inside, save)"},
      {with("/steps/0/wait", 1), "lesson 'x': step 1: unknown key 'wait'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK_THROWS_WITH_AS(parse_lesson_text(c.text, "t.json"), c.message.c_str(), std::runtime_error);
  }
}

TEST_CASE("corruption target \"corrupted\": the batch's target is the corrupted input; presets and exports keep it") {
  Preset p = load_preset("denoise");
  CHECK_FALSE(p.corruption.corrupted_target);
  json j = preset_to_json(p);
  CHECK_FALSE(j["corruption"].contains("target"));
  j["corruption"]["target"] = "corrupted";
  Preset q = parse_preset(j, "noisy");
  CHECK(q.corruption.corrupted_target);
  CHECK(preset_to_json(q)["corruption"]["target"] == "corrupted");
  j["corruption"]["target"] = "noisy";
  CHECK_THROWS_WITH(parse_preset(j, "bad"), "bad: corruption: 'target' must be one of clean, corrupted, got \"noisy\"");

  const Dataset& test = lesson_mnist(false);
  const uint32_t idx[2] = {0, 1};
  Tensor in_p, target_p, in_q, target_q;
  Rng r1(5), r2(5);
  make_batch(test, idx, 2, p, r1, in_p, target_p);
  make_batch(test, idx, 2, q, r2, in_q, target_q);
  CHECK(in_p == in_q);          // the same noise
  CHECK(target_q == in_q);      // graded against the noisy picture
  CHECK_FALSE(target_p == in_p);  // graded against the clean digit

  const std::string torch = pytorch_code(q), keras = keras_code(q);
  CHECK(torch.find("terms = loss_terms(out, x_in, h, mu, logvar)") != std::string::npos);
  CHECK(pytorch_code(p).find("terms = loss_terms(out, x, h, mu, logvar)") != std::string::npos);
  CHECK(keras.find("train_step(tf.constant(x_in), tf.constant(x_in), not clean)") != std::string::npos);
  CHECK(keras_code(p).find("train_step(tf.constant(x_in), tf.constant(x), not clean)") != std::string::npos);
}

TEST_CASE("lesson runner: measuring changes nothing, matches evaluate(), and settings apply as in the app") {
  const Dataset &train = lesson_mnist(true), &test = lesson_mnist(false);
  const json doc = {{"id", "m"},
                    {"title", "m"},
                    {"section", "000 \xC2\xB7 Denoising"},
                    {"start", {{"preset", "denoise"}, {"seed", 3}, {"batch", 32}}},
                    {"steps", {{{"instruction", "i"}, {"action", {{"label", "l"}, {"train", 5}}}, {"goal", "step > 5"}}}}};
  const Lesson lesson = parse_lesson(doc, "m");
  LessonRunner runner(lesson, train, test, 300);
  runner.train(5);
  runner.train(5);  // measured in between

  Run plain(lesson.start.preset, 3);
  plain.set_data(train);
  for (int i = 0; i < 10; ++i) plain.step();
  CHECK(runner.run(0).model->values == plain.model->values);

  // The test loss is evaluate()'s on the same images (the corruption from the same fixed seed).
  const json& s = runner.status();
  const LossTerms L = evaluate(*plain.trainer, test, 300, 500);
  CHECK(s["testLoss"].get<double>() == doctest::Approx(L.total).epsilon(1e-6));
  CHECK(s["step"] == 10);
  CHECK(s["batch"] == 32);
  CHECK(s["noise"].get<double>() == doctest::Approx(0.5));
  CHECK(s["a"]["testLoss"] == s["testLoss"]);
  CHECK_FALSE(s.contains("b"));
  CHECK(s["heldOutError"].is_null());
  CHECK(s["pcaError"].is_null());  // no goal names it
  // Noisy inputs: testError (output vs the clean digit) is the MSE term.
  CHECK(s["testError"].get<double>() == doctest::Approx(s["testReconstruction"].get<double>()).epsilon(1e-5));

  // A hyper-parameter keeps the weights; a seed starts over; an invalid setting changes nothing.
  runner.apply_settings({{"lr", 0.0005}, {"noise", 0}});
  CHECK(runner.status()["step"] == 10);
  CHECK(runner.status()["lr"].get<double>() == doctest::Approx(0.0005));
  CHECK(runner.run(0).preset.corruption.type == "none");
  CHECK_THROWS_WITH(runner.apply_settings({{"lr", 0.001}, {"batch", 0}}), "batch must be an integer between 1 and 4096, got 0");
  CHECK(runner.run(0).trainer->optimizer.config.lr == doctest::Approx(0.0005));
  runner.apply_settings({{"seed", 4}});
  CHECK(runner.status()["step"] == 0);
  CHECK(runner.status()["seed"] == 4);
}

TEST_CASE("lessons: every goal is false when its step opens and holds after its action") {
  const Dataset &train = lesson_mnist(true), &test = lesson_mnist(false);
#if defined(AEP_SANITIZED_BUILD)
  // Training runs ~40x slower under the sanitizers: one twin lesson here; every lesson runs in the release build's
  // suite and through `aep lesson ID` in scripts/test.sh.
  const std::vector<std::string> ids = {"deeper-autoencoder"};
#elif defined(__EMSCRIPTEN__)
  // A sample that covers every kind of goal: twin prefixes, pcaError, the held-out digit, a setting change.
  // Every goal value that needs its own code path: checkerboard, jacobianNorm, activeUnits, foreignError, inputError.
  const std::vector<std::string> ids = {"tied-weights-pca", "sparse-code",  "anomaly-detection", "deeper-autoencoder",
                                        "checkerboard",     "contractive",  "vae-manifold",      "data-specific",
                                        "dropout-noise"};
#else
  const std::vector<std::string> ids = list_lessons();
#endif
  for (const std::string& id : ids) {
    CAPTURE(id);
    const auto t0 = std::chrono::steady_clock::now();
    const Lesson lesson = load_lesson(id);
    LessonRunner runner(lesson, train, test, 1000, lesson.uses_fashion() ? &lesson_fashion() : nullptr);
    for (size_t k = 0; k < lesson.steps.size(); ++k) {
      CAPTURE(k + 1);
      CHECK_FALSE(runner.check(k).holds);  // at the start
    }
    for (size_t k = 0; k < lesson.steps.size(); ++k) {
      CAPTURE(k + 1);
      const Goal::Result before = runner.check(k);
      CHECK_FALSE(before.holds);
      runner.apply_action(k);
      const Goal::Result after = runner.check(k);
      CAPTURE(after.value);
      CAPTURE(after.missing);
      CAPTURE(after.problem);
      CHECK(after.holds);
      CHECK(runner.status()["message"] == "");
    }
    MESSAGE(id << ": " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s");
  }
}

TEST_CASE("lesson values: checkerboard, inputError, jacobianNorm, activeUnits and foreignError mean what they say") {
  const Dataset &train = lesson_mnist(true), &test = lesson_mnist(false);
  const size_t n = 300;
  auto first = [](size_t count) {
    std::vector<uint32_t> idx(count);
    for (size_t i = 0; i < count; ++i) idx[i] = uint32_t(i);
    return idx;
  };
  const std::vector<uint32_t> idx = first(n);

  // A contractive model with Gaussian input noise, 20 steps: the values against the instruments computed directly.
  Preset p = load_preset("contractive");
  p.corruption.type = "gaussian";
  p.corruption.std = 0.3f;
  const std::unique_ptr<Run> trained = trained_run(p, 20);
  Run& run = *trained;
  MeasureOptions o;
  o.test_images = n;
  const json plain = measure_run(run, test, o);
  CHECK(plain["jacobianNorm"].is_null());  // only when asked for (a goal names it)
  CHECK(plain["foreignError"].is_null());  // no foreign data given
  CHECK(plain["activeUnits"].is_null());   // not a VAE
  o.jacobian = true;
  const json v = measure_run(run, test, o);
  Tensor clean;
  fill_batch(test, idx.data(), kJacobianImages, p.normalize, clean);
  const std::vector<double> jac = jacobian_frobenius_sq(*run.model, clean);
  CHECK(v["jacobianNorm"].get<double>() == doctest::Approx(std::accumulate(jac.begin(), jac.end(), 0.0) / double(jac.size())).epsilon(1e-9));
  CHECK(v["testError"] == plain["testError"]);

  // checkerboard and inputError: the outputs and inputs of the measured batches, corrupted from the fixed seed.
  Rng noise(0x5eed);
  double cb = 0, in_err = 0;
  for (size_t start = 0; start < n; start += 100) {
    Tensor input, target, x;
    make_batch(test, idx.data() + start, 100, p, noise, input, target);
    fill_batch(test, idx.data() + start, 100, p.normalize, x);
    const Tensor out = run.model->reconstruct(input);
    std::vector<float> c(100), e(100);
    checkerboard_index(out.data(), 100, c.data());
    per_image_mse(input.data(), x.data(), 100, e.data());
    for (size_t i = 0; i < 100; ++i) cb += c[i], in_err += e[i];
  }
  CHECK(v["checkerboard"].get<double>() == doctest::Approx(cb / double(n)).epsilon(1e-5));
  CHECK(v["inputError"].get<double>() == doctest::Approx(in_err / double(n)).epsilon(1e-5));
  CHECK(v["inputError"].get<double>() > 0.01);  // the noise is there

  // foreignError: the mean per-pixel error of the clean foreign images (here MNIST's training images stand in).
  o.foreign = &train;
  const json f = measure_run(run, test, o);
  fill_batch(train, idx.data(), n, p.normalize, clean);
  const Tensor out = run.model->reconstruct(clean);
  std::vector<float> e(n);
  per_image_mse(out.data(), clean.data(), n, e.data());
  CHECK(f["foreignError"].get<double>() == doctest::Approx(std::accumulate(e.begin(), e.end(), 0.0) / double(n)).epsilon(1e-5));
  // The page's foreign-data view and aep eval --foreign measure with reconstruction_errors: the same errors.
  std::vector<float> r(n);
  reconstruction_errors(*run.model, train, 0, n, r.data());
  for (size_t i = 0; i < n; ++i) CHECK(r[i] == doctest::Approx(e[i]).epsilon(1e-6));
  CHECK(f["foreignError"].get<double>() == doctest::Approx(std::accumulate(r.begin(), r.end(), 0.0) / double(n)).epsilon(1e-12));
  // anomalyAuc against the foreign images: their errors against the test digits' (clean inputs: this preset is noisy).
  o.foreign_anomaly = true;
  const json fa = measure_run(run, test, o);
  fill_batch(test, idx.data(), n, p.normalize, clean);
  const Tensor test_out = run.model->reconstruct(clean);
  std::vector<float> te(n);
  per_image_mse(test_out.data(), clean.data(), n, te.data());
  CHECK(fa["anomalyAuc"].get<double>() == doctest::Approx(roc_auc(e, te)).epsilon(1e-6));
  o.foreign = nullptr;
  CHECK(measure_run(run, test, o)["anomalyAuc"].is_null());

  // activeUnits: posterior_stats over the measured test images.
  const std::unique_ptr<Run> vae = trained_run(load_preset("vae-mlp"), 20);
  o = MeasureOptions();
  o.test_images = n;
  const json a = measure_run(*vae, test, o);
  const PosteriorStats ps = posterior_stats(*vae->model, test, n);
  CHECK(a["activeUnits"] == ps.active_units);

  // A lesson whose goal reads foreignError, without the data: the value is null and the goal waits for it.
  const json doc = {{"id", "f"},
                    {"title", "f"},
                    {"section", "001 \xC2\xB7 Properties of Autoencoders"},
                    {"start", {{"preset", "linear"}}},
                    {"steps", {{{"instruction", "i"}, {"action", {{"label", "l"}, {"train", 2}}}, {"goal", "foreignError > 0"}}}}};
  const Lesson lesson = parse_lesson(doc, "f");
  CHECK(lesson.names_value("foreignError"));
  CHECK(lesson.uses_fashion());
  CHECK_FALSE(lesson.names_value("pcaError"));
  CHECK_FALSE(load_lesson("anomaly-detection").uses_fashion());
  LessonRunner runner(lesson, train, test, 100);
  runner.apply_action(0);
  CHECK(runner.status()["foreignError"].is_null());
  CHECK(runner.check(0).missing == "foreignError");
}

TEST_CASE("ink distance: Jaccard distance of the pixels above the threshold, to the nearest reference image") {
  // Four images: a 4x4 square, the same square, a square with half its pixels, an empty image; and a faint square
  // (every pixel at exactly half intensity: not above 0.5, so no ink).
  std::vector<float> img(5 * 784, 0.f);
  auto square = [&](size_t k, size_t rows, float v) {
    for (size_t i = 10; i < 10 + rows; ++i)
      for (size_t j = 10; j < 14; ++j) img[k * 784 + i * 28 + j] = v;
  };
  square(0, 4, 1.f), square(1, 4, 0.9f), square(2, 2, 1.f), square(4, 4, 0.5f);
  std::vector<uint64_t> m(5 * kInkWords);
  ink_masks(img.data(), 5, 0.5f, m.data());
  std::vector<float> d(5);
  nearest_ink_distance(m.data(), 5, m.data(), 1, d.data());  // against the square alone
  CHECK(d[0] == 0.f);
  CHECK(d[1] == 0.f);
  CHECK(d[2] == doctest::Approx(0.5));  // 8 of 16 pixels in common
  CHECK(d[3] == 1.f);                   // nothing in common
  CHECK(d[4] == 1.f);                   // faint: no ink
  nearest_ink_distance(m.data() + 3 * kInkWords, 2, m.data() + 3 * kInkWords, 1, d.data());
  CHECK(d[0] == 0.f);  // two empty masks
  CHECK(d[1] == 0.f);
  nearest_ink_distance(m.data(), 1, m.data(), 0, d.data());
  CHECK(d[0] == 1.f);  // no reference

  // Real digits against a direct count on the pixels: test digits 0-99 against digits 200-999.
  const Dataset& test = lesson_mnist(false);
  std::vector<uint32_t> idx(1000);
  std::iota(idx.begin(), idx.end(), 0u);
  Tensor x;
  fill_batch(test, idx.data(), 1000, Normalization::ZeroOne, x);
  std::vector<uint64_t> masks(1000 * kInkWords);
  ink_masks(x.data(), 1000, 0.5f, masks.data());
  std::vector<float> got(100);
  nearest_ink_distance(masks.data(), 100, masks.data() + 200 * kInkWords, 800, got.data());
  for (size_t i = 0; i < 100; i += 9) {
    CAPTURE(i);
    double best = 1;
    for (size_t r = 200; r < 1000; ++r) {
      int both = 0, either = 0;
      for (size_t p = 0; p < 784; ++p) {
        const bool a = x.data()[i * 784 + p] > 0.5f, b = x.data()[r * 784 + p] > 0.5f;
        both += a && b, either += a || b;
      }
      best = std::min(best, 1.0 - double(both) / double(either));
    }
    CHECK(got[i] == doctest::Approx(best).epsilon(1e-6));
  }
  // What the interpolation values rest on: a digit is nearer to the other digits than a cross-fade of two digits is;
  // a cross-fade of a digit with itself is the digit.
  std::vector<float> blend(100 * 784), self(100 * 784);
  for (size_t i = 0; i < 100 * 784; ++i) {
    blend[i] = 0.5f * x.data()[i] + 0.5f * x.data()[100 * 784 + i];
    self[i] = 0.5f * x.data()[i] + 0.5f * x.data()[i];
  }
  std::vector<float> blended(100), same(100);
  ink_masks(blend.data(), 100, 0.5f, masks.data() + 100 * kInkWords);  // (digits 100-199 are not needed any more)
  nearest_ink_distance(masks.data() + 100 * kInkWords, 100, masks.data() + 200 * kInkWords, 800, blended.data());
  ink_masks(self.data(), 100, 0.5f, masks.data() + 100 * kInkWords);
  nearest_ink_distance(masks.data() + 100 * kInkWords, 100, masks.data() + 200 * kInkWords, 800, same.data());
  const double digits = std::accumulate(got.begin(), got.end(), 0.0) / 100;
  const double faded = std::accumulate(blended.begin(), blended.end(), 0.0) / 100;
  MESSAGE("mean ink distance to the nearest of 800 test digits: digits " << digits << ", cross-fades " << faded);
  CHECK(faded > digits * 1.2);
  CHECK((same == got));
}

TEST_CASE("lesson values: pixelMidpointDistance, latentMidpointDistance and foreignTestError mean what they say") {
  const Dataset &train = lesson_mnist(true), &test = lesson_mnist(false);
  const size_t n = 300, pairs = interpolation_pairs(n);
  REQUIRE(pairs == 60);
  const Preset p = load_preset("vae-mlp");
  const std::unique_ptr<Run> run = trained_run(p, 30);
  MeasureOptions o;
  o.test_images = n;
  const json plain = measure_run(*run, test, o);
  for (const char* name : {"pixelMidpointDistance", "latentMidpointDistance", "foreignTestError"})
    CHECK(plain[name].is_null());  // the first two only when a goal names them; no foreign data given
  o.interpolation = true;
  const json v = measure_run(*run, test, o);
  CHECK(v["testError"] == plain["testError"]);

  // By hand: test images k and 60 + k, their cross-fade and their codes' decoded midpoint, each against digits 120-299.
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  Tensor x;
  fill_batch(test, idx.data(), n, p.normalize, x);
  std::vector<uint64_t> ref((n - 2 * pairs) * kInkWords), mid(pairs * kInkWords);
  ink_masks(x.data() + 2 * pairs * 784, n - 2 * pairs, 0.5f, ref.data());
  Tensor a, b;
  fill_batch(test, idx.data(), pairs, p.normalize, a);
  fill_batch(test, idx.data() + pairs, pairs, p.normalize, b);
  const Tensor za = run->model->encode(a), zb = run->model->encode(b);
  Tensor z(za.shape());
  for (size_t i = 0; i < z.size(); ++i) z.data()[i] = 0.5f * (za.data()[i] + zb.data()[i]);
  const Tensor decoded = run->model->decode(z);
  std::vector<float> blend(pairs * 784), dist(pairs);
  for (size_t i = 0; i < blend.size(); ++i) blend[i] = 0.5f * (a.data()[i] + b.data()[i]);
  auto mean_distance = [&](const float* images) {
    ink_masks(images, pairs, 0.5f, mid.data());
    nearest_ink_distance(mid.data(), pairs, ref.data(), n - 2 * pairs, dist.data());
    return std::accumulate(dist.begin(), dist.end(), 0.0) / double(pairs);
  };
  CHECK(v["pixelMidpointDistance"].get<double>() == doctest::Approx(mean_distance(blend.data())).epsilon(1e-9));
  CHECK(v["latentMidpointDistance"].get<double>() == doctest::Approx(mean_distance(decoded.data())).epsilon(1e-9));
  CHECK(v["pixelMidpointDistance"].get<double>() > 0.3);

  // foreignTestError: the foreign images (MNIST's training images stand in) corrupted as in training, from their own
  // fixed seed, reconstructed and compared with the clean image; without corruption it is foreignError.
  o = MeasureOptions();
  o.test_images = n;
  o.foreign = &train;
  const json f = measure_run(*run, test, o);
  CHECK(f["foreignTestError"] == f["foreignError"]);
  Preset noisy = load_preset("denoise");
  const std::unique_ptr<Run> denoiser = trained_run(noisy, 20);
  const json g = measure_run(*denoiser, test, o);
  Rng rng(0xf0e1);
  double sum = 0;
  for (size_t start = 0; start < n; start += 100) {
    Tensor input, target, clean;
    make_batch(train, idx.data() + start, 100, noisy, rng, input, target);
    fill_batch(train, idx.data() + start, 100, noisy.normalize, clean);
    const Tensor out = denoiser->model->reconstruct(input);
    std::vector<float> e(100);
    per_image_mse(out.data(), clean.data(), 100, e.data());
    sum += std::accumulate(e.begin(), e.end(), 0.0);
  }
  CHECK(g["foreignTestError"].get<double>() == doctest::Approx(sum / double(n)).epsilon(1e-5));
  CHECK(g["foreignTestError"] != g["foreignError"]);
  // A lesson that reads foreignTestError needs Fashion-MNIST; one that reads a midpoint distance measures them.
  const json doc = {{"id", "f"},
                    {"title", "f"},
                    {"section", "003 \xC2\xB7 2. Denoising"},
                    {"start", {{"preset", "linear"}}},
                    {"steps", {{{"instruction", "i"}, {"action", {{"label", "l"}, {"train", 2}}},
                                {"goal", "foreignTestError > 0 and latentMidpointDistance < 1"}}}}};
  const Lesson lesson = parse_lesson(doc, "f");
  CHECK(lesson.uses_fashion());
  CHECK(lesson_measure_options(lesson, lesson.start, n, nullptr).interpolation);
  CHECK_FALSE(lesson_measure_options(load_lesson("denoising"), lesson.start, n, nullptr).interpolation);
}
