// The goal language: a tokenizer, a recursive-descent parser that builds and type-checks a small tree, and its
// evaluation against status JSON (missing values and division by zero make a goal not hold, and say why).
#include "core/goal.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace aep {

const std::vector<GoalValue>& goal_values() {
  static const std::vector<GoalValue> values = {
      {"step", "optimizer steps taken"},
      {"epoch", "epochs done, the current one as a fraction"},
      {"trainLoss", "total loss of the last training batch"},
      {"testLoss", "total loss on the test images (inputs corrupted as in training, from a fixed seed)"},
      {"testReconstruction", "the reconstruction term of testLoss"},
      {"testKl", "the KL term of testLoss, times beta (VAE; 0 otherwise)"},
      {"testPenalty", "the L1 and contractive terms of testLoss"},
      {"testError", "mean squared error per pixel between the output and the clean test digit"},
      {"inputError", "mean squared error per pixel between the input as the model gets it (corrupted or not) and the "
                     "clean test digit: what the output's testError improves on"},
      {"heldOutError", "testError of the held-out digit's test images (null when no digit is held out)"},
      {"otherError", "testError of the other digits' test images (null when no digit is held out)"},
      {"anomalyAuc", "ROC AUC of the per-image error: the held-out digit against the others, or else uniform "
                     "noise images against the test digits"},
      {"codeMeanAbs", "mean |code| over the test images' code units (a VAE's mean)"},
      {"pcaError", "test error of PCA with as many components as the code has numbers (null unless a goal names it)"},
      {"checkerboard", "mean checkerboard index of the test outputs: the share of each output's variation that repeats "
                       "every 2 pixels (metrics.hpp)"},
      {"jacobianNorm", "mean ||d code / d x||_F^2 over the first 200 clean test images (null unless a goal names it)"},
      {"activeUnits", "VAE latent units whose mean varies over the test images by more than 0.01 (null if not a VAE)"},
      {"foreignError", "mean squared error per pixel on Fashion-MNIST test images (null without that data)"},
      {"foreignTestError", "the same for the Fashion-MNIST images corrupted as in training, against the clean image: "
                           "denoising data never trained on (foreignError without corruption; null without that data)"},
      {"pixelMidpointDistance", "mean ink distance (metrics.hpp) from the pixel midpoints of 100 pairs of test digits "
                                "to the nearest of 800 other test digits (null unless a goal names it)"},
      {"latentMidpointDistance", "the same for the decoded midpoints of the pairs' codes (null unless a goal names "
                                 "it)"},
      {"codeSize", "numbers in the code"},
      {"parameters", "trainable parameters"},
      {"lr", "learning rate"},
      {"batch", "batch size"},
      {"seed", "seed"},
      {"beta", "KL weight"},
      {"l1", "L1 weight on the code"},
      {"noise", "Gaussian noise std (0 when the corruption is not Gaussian)"},
      {"holdout", "digit left out of training (-1: none)"},
  };
  return values;
}

std::string goal_value_names() {
  std::string s;
  for (const GoalValue& v : goal_values()) s += (s.empty() ? "" : ", ") + std::string(v.name);
  return s;
}

// ---- tokens -------------------------------------------------------------------------------------------------------

namespace {

constexpr size_t kMaxGoalLength = 500;
constexpr int kMaxDepth = 32;  // nesting of parentheses and unary operators: keeps the recursion shallow

enum class Tok { Number, Name, Op, LParen, RParen, And, Or, Not, End };

struct Token {
  Tok kind;
  std::string text;
  double number = 0;
  size_t column = 0;  // 1-based
};

std::string describe(const Token& t) {
  if (t.kind == Tok::End) return "the end";
  return "'" + t.text + "'";
}

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  auto fail = [&](size_t at, const std::string& msg) -> void {
    throw std::runtime_error(msg + " at column " + std::to_string(at + 1));
  };
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    const size_t start = i;
    if (std::isdigit(c) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
        if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
          i = j;
          while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        }
      }
      const std::string text = s.substr(start, i - start);
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (*end || !std::isfinite(v)) fail(start, "bad number '" + text + "'");
      if (i < s.size() && (std::isalpha(static_cast<unsigned char>(s[i])) || s[i] == '_'))
        fail(i, "a number must not run into a name ('" + s.substr(start, i - start + 1) + "')");
      out.push_back({Tok::Number, text, v, start + 1});
      continue;
    }
    if (std::isalpha(c) || c == '_') {
      auto ident = [&] {
        while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      };
      ident();
      if (i + 1 < s.size() && s[i] == '.' && (std::isalpha(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '_')) {
        ++i;
        ident();
      }
      const std::string text = s.substr(start, i - start);
      const Tok kind = text == "and" ? Tok::And : text == "or" ? Tok::Or : text == "not" ? Tok::Not : Tok::Name;
      out.push_back({kind, text, 0, start + 1});
      continue;
    }
    if (c == '(' || c == ')') {
      out.push_back({c == '(' ? Tok::LParen : Tok::RParen, std::string(1, char(c)), 0, start + 1});
      ++i;
      continue;
    }
    static const char* two[] = {"<=", ">=", "==", "!="};
    bool matched = false;
    for (const char* op : two)
      if (s.compare(i, 2, op) == 0) {
        out.push_back({Tok::Op, op, 0, start + 1});
        i += 2;
        matched = true;
        break;
      }
    if (matched) continue;
    if (c == '+' || c == '-' || c == '*' || c == '/' || c == '<' || c == '>') {
      out.push_back({Tok::Op, std::string(1, char(c)), 0, start + 1});
      ++i;
      continue;
    }
    if (c == '=') fail(start, "'=' is not an operator (compare with '==')");
    if (c == '&' || c == '|' || c == '!')
      fail(start, std::string("'") + char(c) + "' is not an operator (use 'and', 'or', 'not')");
    if (c < 0x20 || c >= 0x7f) fail(start, "unexpected byte " + std::to_string(int(c)));
    fail(start, std::string("unexpected '") + char(c) + "'");
  }
  out.push_back({Tok::End, "", 0, s.size() + 1});
  return out;
}

}  // namespace

// ---- tree ---------------------------------------------------------------------------------------------------------

struct GoalNode {
  enum Kind { Number, Name, Neg, Add, Sub, Mul, Div, Less, LessEq, Greater, GreaterEq, Equal, NotEqual, And, Or, Not };
  Kind kind;
  double number = 0;
  std::string name, run, key;  // Name: as written, and its run prefix ("a", "b" or "") and value name
  std::string text;            // the source text of this node (for messages about division by zero)
  std::unique_ptr<GoalNode> left, right;
  bool is_condition() const { return kind >= Less; }
  bool is_comparison() const { return kind >= Less && kind <= NotEqual; }
};

namespace {

class Parser {
 public:
  Parser(const std::string& text, bool has_twin, std::vector<std::string>& names)
      : text_(text), tokens_(tokenize(text)), has_twin_(has_twin), names_(names) {}

  std::unique_ptr<GoalNode> parse() {
    auto root = condition_or();
    if (peek().kind != Tok::End) fail(peek(), "expected an operator, 'and' or 'or' before " + describe(peek()));
    if (!root->is_condition())
      throw std::runtime_error("'" + text_ + "' is a number, not a condition: compare it, e.g. '" + text_ + " < 0.03'");
    return root;
  }

 private:
  const std::string& text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool has_twin_;
  std::vector<std::string>& names_;

  const Token& peek() const { return tokens_[pos_]; }
  const Token& take() { return tokens_[pos_++]; }
  [[noreturn]] void fail(const Token& t, const std::string& msg) const {
    throw std::runtime_error(msg + " at column " + std::to_string(t.column));
  }
  struct Deeper {  // counts nesting on the way down
    Parser& p;
    explicit Deeper(Parser& parser, const Token& at) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.fail(at, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    }
    ~Deeper() { --p.depth_; }
  };

  std::string source(size_t from_column, size_t to_column) const {  // columns are 1-based, to is exclusive
    std::string s = text_.substr(from_column - 1, to_column - from_column);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  }

  static std::unique_ptr<GoalNode> node(GoalNode::Kind k, std::unique_ptr<GoalNode> l, std::unique_ptr<GoalNode> r) {
    auto n = std::make_unique<GoalNode>();
    n->kind = k;
    n->left = std::move(l);
    n->right = std::move(r);
    return n;
  }

  void need_condition(const GoalNode& n, const Token& op, const char* side) const {
    if (!n.is_condition())
      fail(op, std::string("'") + op.text + "' needs a condition on its " + side + ", got the number '" + n.text + "'");
  }
  void need_number(const GoalNode& n, const Token& op, const char* side) const {
    if (n.is_condition())
      fail(op, "'" + op.text + "' needs a number on its " + side + ", got the condition '" + n.text + "'");
  }

  std::unique_ptr<GoalNode> condition_or() {
    const size_t from = peek().column;
    auto left = condition_and();
    while (peek().kind == Tok::Or) {
      const Token op = take();
      auto right = condition_and();
      need_condition(*left, op, "left");
      need_condition(*right, op, "right");
      left = node(GoalNode::Or, std::move(left), std::move(right));
      left->text = source(from, peek().column);
    }
    return left;
  }

  std::unique_ptr<GoalNode> condition_and() {
    const size_t from = peek().column;
    auto left = condition_not();
    while (peek().kind == Tok::And) {
      const Token op = take();
      auto right = condition_not();
      need_condition(*left, op, "left");
      need_condition(*right, op, "right");
      left = node(GoalNode::And, std::move(left), std::move(right));
      left->text = source(from, peek().column);
    }
    return left;
  }

  std::unique_ptr<GoalNode> condition_not() {
    if (peek().kind != Tok::Not) return comparison();
    const size_t from = peek().column;
    const Token op = take();
    Deeper d(*this, op);
    auto inner = condition_not();
    need_condition(*inner, op, "right");
    auto n = node(GoalNode::Not, std::move(inner), nullptr);
    n->text = source(from, peek().column);
    return n;
  }

  std::unique_ptr<GoalNode> comparison() {
    const size_t from = peek().column;
    auto left = sum();
    if (peek().kind != Tok::Op) return left;
    static const std::pair<const char*, GoalNode::Kind> ops[] = {
        {"<", GoalNode::Less},   {"<=", GoalNode::LessEq},  {">", GoalNode::Greater},
        {">=", GoalNode::GreaterEq}, {"==", GoalNode::Equal}, {"!=", GoalNode::NotEqual}};
    auto it = std::find_if(std::begin(ops), std::end(ops), [&](const auto& o) { return peek().text == o.first; });
    if (it == std::end(ops)) return left;
    const Token op = take();
    auto right = sum();
    need_number(*left, op, "left");
    need_number(*right, op, "right");
    if (peek().kind == Tok::Op && peek().text != "+" && peek().text != "-" && peek().text != "*" && peek().text != "/")
      fail(peek(), "comparisons do not chain: join them with 'and'");
    auto n = node(it->second, std::move(left), std::move(right));
    n->text = source(from, peek().column);
    return n;
  }

  // A left-associative level of arithmetic: operands from `next`, joined by the two operators of this level.
  using Level = std::unique_ptr<GoalNode> (Parser::*)();
  std::unique_ptr<GoalNode> arithmetic(Level next, const char* op_a, GoalNode::Kind kind_a, const char* op_b,
                                       GoalNode::Kind kind_b) {
    const size_t from = peek().column;
    auto left = (this->*next)();
    while (peek().kind == Tok::Op && (peek().text == op_a || peek().text == op_b)) {
      const Token op = take();
      auto right = (this->*next)();
      need_number(*left, op, "left");
      need_number(*right, op, "right");
      left = node(op.text == op_a ? kind_a : kind_b, std::move(left), std::move(right));
      left->text = source(from, peek().column);
    }
    return left;
  }
  std::unique_ptr<GoalNode> sum() { return arithmetic(&Parser::product, "+", GoalNode::Add, "-", GoalNode::Sub); }
  std::unique_ptr<GoalNode> product() { return arithmetic(&Parser::unary, "*", GoalNode::Mul, "/", GoalNode::Div); }

  std::unique_ptr<GoalNode> unary() {
    if (peek().kind == Tok::Op && peek().text == "-") {
      const size_t from = peek().column;
      const Token op = take();
      Deeper d(*this, op);
      auto inner = unary();
      need_number(*inner, op, "right");
      auto n = node(GoalNode::Neg, std::move(inner), nullptr);
      n->text = source(from, peek().column);
      return n;
    }
    return primary();
  }

  std::unique_ptr<GoalNode> primary() {
    const Token t = take();
    if (t.kind == Tok::Number) {
      auto n = node(GoalNode::Number, nullptr, nullptr);
      n->number = t.number;
      n->text = t.text;
      return n;
    }
    if (t.kind == Tok::Name) return name(t);
    if (t.kind == Tok::LParen) {
      Deeper d(*this, t);
      auto inner = condition_or();
      if (peek().kind != Tok::RParen) fail(peek(), "expected ')' to close the '(' at column " +
                                                       std::to_string(t.column) + ", got " + describe(peek()));
      take();
      inner->text = "(" + inner->text + ")";
      return inner;
    }
    if (t.kind == Tok::End) fail(t, "the goal ends where a number, a value or '(' should come");
    fail(t, "expected a number, a value or '(', got " + describe(t));
  }

  std::unique_ptr<GoalNode> name(const Token& t) {
    auto n = node(GoalNode::Name, nullptr, nullptr);
    n->name = n->text = t.text;
    const size_t dot = t.text.find('.');
    n->key = dot == std::string::npos ? t.text : t.text.substr(dot + 1);
    if (dot != std::string::npos) {
      n->run = t.text.substr(0, dot);
      if (n->run != "a" && n->run != "b")
        throw std::runtime_error("unknown run '" + n->run + "' in '" + t.text + "' (runs are a and b)");
      if (!has_twin_)
        throw std::runtime_error("'" + t.text + "' names a twin run, but this lesson has no twin");
    }
    const auto& known = goal_values();
    if (std::none_of(known.begin(), known.end(), [&](const GoalValue& v) { return n->key == v.name; }))
      throw std::runtime_error("unknown value '" + n->key + "' (known: " + goal_value_names() + ")");
    if (std::find(names_.begin(), names_.end(), t.text) == names_.end()) names_.push_back(t.text);
    return n;
  }
};

struct Evaluation {
  const nlohmann::json& status;
  Goal::Result& result;
  bool value_set = false;

  double number(const GoalNode& n) {
    switch (n.kind) {
      case GoalNode::Number: return n.number;
      case GoalNode::Name: return lookup(n);
      case GoalNode::Neg: return -number(*n.left);
      case GoalNode::Add: return number(*n.left) + number(*n.right);
      case GoalNode::Sub: return number(*n.left) - number(*n.right);
      case GoalNode::Mul: return number(*n.left) * number(*n.right);
      case GoalNode::Div: {
        const double a = number(*n.left), b = number(*n.right);
        if (b == 0 && result.problem.empty() && result.missing.empty())
          result.problem = "division by zero in '" + n.text + "'";
        return b == 0 ? NAN : a / b;
      }
      default: return NAN;  // the parser lets no condition reach here
    }
  }

  bool condition(const GoalNode& n) {
    if (n.is_comparison()) {
      const double a = number(*n.left);
      if (!value_set) result.value = a, value_set = true;
      const double b = number(*n.right);
      switch (n.kind) {
        case GoalNode::Less: return a < b;
        case GoalNode::LessEq: return a <= b;
        case GoalNode::Greater: return a > b;
        case GoalNode::GreaterEq: return a >= b;
        case GoalNode::Equal: return a == b;
        default: return a != b && !std::isnan(a) && !std::isnan(b);
      }
    }
    // Both sides are evaluated (no short cut), so every missing value is found and the shown value is stable.
    if (n.kind == GoalNode::Not) return !condition(*n.left);
    const bool a = condition(*n.left), b = condition(*n.right);
    return n.kind == GoalNode::And ? a && b : a || b;
  }

  double lookup(const GoalNode& n) {
    const nlohmann::json* scope = &status;
    if (!n.run.empty()) {
      auto it = status.find(n.run);
      scope = it != status.end() && it->is_object() ? &*it : nullptr;
    }
    if (scope) {
      auto it = scope->find(n.key);
      if (it != scope->end() && it->is_number()) {
        const double v = it->get<double>();
        if (std::isfinite(v)) return v;
      }
    }
    if (result.missing.empty()) result.missing = n.name;
    return NAN;
  }
};

}  // namespace

Goal::Goal(const std::string& text, bool has_twin) : text_(text) {
  if (text.empty() || text.find_first_not_of(" \t") == std::string::npos)
    throw std::runtime_error("the goal is empty");
  if (text.size() > kMaxGoalLength)
    throw std::runtime_error("the goal has " + std::to_string(text.size()) + " characters; at most " +
                             std::to_string(kMaxGoalLength));
  root_ = Parser(text_, has_twin, names_).parse();
  if (names_.empty())
    throw std::runtime_error("'" + text_ + "' names no value, so it is always true or always false: compare a value, "
                             "e.g. 'testLoss < 0.03'");
}

Goal::Result Goal::evaluate(const nlohmann::json& status) const {
  Result r;
  r.value = NAN;
  Evaluation e{status, r};
  const bool holds = e.condition(*root_);
  r.holds = holds && r.missing.empty() && r.problem.empty();
  if (!r.missing.empty()) r.problem.clear();  // waiting comes first: the division may involve the missing value
  return r;
}

}  // namespace aep
