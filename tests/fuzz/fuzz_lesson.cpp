// libFuzzer target: lesson JSON text -> Lesson (presets, settings, goals all checked), and the same bytes as a goal
// expression. Anything refused must be a runtime_error; every accepted goal must evaluate, against full, empty and
// null status objects, without throwing. Build and run with tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/goal.hpp"
#include "core/lesson.hpp"

namespace {

void evaluate_everywhere(const aep::Goal& g) {
  nlohmann::json full = nlohmann::json::object(), nulls = nlohmann::json::object();
  double x = 0;
  for (const aep::GoalValue& v : aep::goal_values()) {
    full[v.name] = x;  // includes 0: divisions by zero must be reported, not crash
    x += 0.5;
    nulls[v.name] = nullptr;
  }
  full["a"] = full;
  full["b"] = full;
  for (const nlohmann::json* s : {&full, &nulls}) {
    const aep::Goal::Result r = g.evaluate(*s);
    if (r.holds && (!r.missing.empty() || !r.problem.empty())) __builtin_trap();
  }
  if (g.evaluate(nlohmann::json::object()).holds) __builtin_trap();  // every goal names a value: unmeasured, none holds
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const aep::Lesson l = aep::parse_lesson_text(text, "fuzz.json");
    for (const aep::LessonStep& s : l.steps) evaluate_everywhere(s.goal);
  } catch (const std::runtime_error&) {
  }
  try {
    evaluate_everywhere(aep::Goal(text, true));
  } catch (const std::runtime_error&) {
  }
  return 0;
}
