// Lesson goals: a small expression language over named status values ("testLoss < 0.03",
// "b.testError / a.testError > 1.2"), parsed once into a tree and evaluated against a status JSON object.
// The grammar and the names are documented in assets/lessons/README.md.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aep {

// A value a goal may name: its name in status() and what it means (for error messages and the README).
struct GoalValue {
  const char* name;
  const char* meaning;
};
// Every name the engine computes for a run (lesson.cpp's measure() fills them all, null while not available).
const std::vector<GoalValue>& goal_values();
// "step, epoch, trainLoss, ..." in the table's order, for error messages.
std::string goal_value_names();

struct GoalNode;

class Goal {
 public:
  // Parses and checks the expression: names must be known, prefixed ones ("a.testLoss", "b.testLoss") need a twin
  // run, the whole must be a condition (a comparison, or comparisons joined by and/or/not) and it must name at least
  // one value (a goal of constants never changes). Throws
  // std::runtime_error with the position and a message, e.g. "unknown value 'testLos' (known: step, ...)".
  Goal(const std::string& text, bool has_twin);

  struct Result {
    bool holds = false;
    double value = 0;     // the number to show the learner: the left side of the first comparison (NaN if unknown)
    std::string missing;  // a named value that is not available yet ("b.testLoss"): the goal does not hold
    std::string problem;  // e.g. "division by zero in 'testLoss / pcaError'": the goal does not hold
  };
  // status: a run's values at the top level (run a), and the twin runs' values under "a" and "b".
  Result evaluate(const nlohmann::json& status) const;

  const std::string& text() const { return text_; }
  // The names the goal reads, as written ("testLoss", "b.testLoss"), without repeats.
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::string text_;
  std::shared_ptr<const GoalNode> root_;  // never changed after parsing: copies share it
  std::vector<std::string> names_;
};

}  // namespace aep
