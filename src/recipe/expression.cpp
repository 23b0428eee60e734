#include "detail/expression.h"

#include <cctype>
#include <cmath>
#include <vector>

#include "detail/recipe_parsing.h"
#include "stunt/core/error.h"

namespace stunt::recipe::detail {
namespace {

struct Number {
  double value;
  bool is_int;
};

// Nesting beyond this is no real recipe; the limit keeps hostile input from exhausting the stack.
constexpr int kMaxDepth = 100;

class Parser {
 public:
  Parser(std::string_view text, const VariableLookup& lookup) : text_(text), lookup_(lookup) {}

  Number parse() {
    Number n = expression(0);
    skip_space();
    if (pos_ != text_.size()) error(str("unexpected '", text_.substr(pos_, 10), "'"));
    return n;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    throw RecipeError(str("cannot evaluate '", text_, "': ", what,
                          " (eval() supports numbers, variables, + - * / // % **, parentheses and "
                          "abs, float, int, min, max, round)"));
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  bool accept(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return true;
    }
    return false;
  }

  void enter(int depth) const {
    if (depth > kMaxDepth) error("expression nested too deeply");
  }

  Number expression(int depth) {
    enter(depth);
    Number left = term(depth + 1);
    while (true) {
      if (accept("+")) {
        Number r = term(depth + 1);
        left = {left.value + r.value, left.is_int && r.is_int};
      } else if (accept("-")) {
        Number r = term(depth + 1);
        left = {left.value - r.value, left.is_int && r.is_int};
      } else {
        return left;
      }
    }
  }

  Number term(int depth) {
    enter(depth);
    Number left = unary(depth + 1);
    while (true) {
      if (accept("//")) {
        Number r = unary(depth + 1);
        if (r.value == 0) error("division by zero");
        left = {std::floor(left.value / r.value), left.is_int && r.is_int};
      } else if (accept("*")) {
        if (text_.substr(pos_, 1) == "*") {  // "**" belongs to power(): give it back
          --pos_;
          return left;
        }
        Number r = unary(depth + 1);
        left = {left.value * r.value, left.is_int && r.is_int};
      } else if (accept("/")) {
        Number r = unary(depth + 1);
        if (r.value == 0) error("division by zero");
        left = {left.value / r.value, false};
      } else if (accept("%")) {
        Number r = unary(depth + 1);
        if (r.value == 0) error("modulo by zero");
        double m = std::fmod(left.value, r.value);
        if (m != 0 && ((m < 0) != (r.value < 0))) m += r.value;  // Python's sign rule
        left = {m, left.is_int && r.is_int};
      } else {
        return left;
      }
    }
  }

  Number unary(int depth) {
    enter(depth);
    if (accept("-")) {
      Number n = unary(depth + 1);
      return {-n.value, n.is_int};
    }
    if (accept("+")) return unary(depth + 1);
    return power(depth + 1);
  }

  Number power(int depth) {
    enter(depth);
    Number base = atom(depth + 1);
    if (accept("**")) {
      Number exponent = unary(depth + 1);
      const bool is_int = base.is_int && exponent.is_int && exponent.value >= 0;
      return {std::pow(base.value, exponent.value), is_int};
    }
    return base;
  }

  Number atom(int depth) {
    enter(depth);
    skip_space();
    if (pos_ >= text_.size()) error("unexpected end of expression");
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      Number n = expression(depth + 1);
      if (!accept(")")) error("missing ')'");
      return n;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t start = pos_;
      while (pos_ < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
        ++pos_;
      }
      const std::string name(text_.substr(start, pos_ - start));
      if (accept("(")) return call(name, depth + 1);
      return variable(name);
    }
    error(str("unexpected '", c, "'"));
  }

  Number number() {
    const size_t start = pos_;
    bool is_int = true;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      is_int = false;
      ++pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      is_int = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    }
    const std::string digits(text_.substr(start, pos_ - start));
    try {
      return {std::stod(digits), is_int};
    } catch (const std::exception&) {
      error(str("'", digits, "' is not a number"));
    }
  }

  Number variable(const std::string& name) {
    const auto value = lookup_(name);
    if (!value) throw UnknownVariable{name};
    if (value->is_number_integer()) return {value->get<double>(), true};
    if (value->is_boolean()) return {value->get<bool>() ? 1.0 : 0.0, true};
    if (value->is_number()) return {value->get<double>(), false};
    error(str("variable '", name, "' is ", dump_text(*value), ", not a number"));
  }

  Number call(const std::string& name, int depth) {
    std::vector<Number> args;
    if (!accept(")")) {
      do {
        args.push_back(expression(depth + 1));
      } while (accept(","));
      if (!accept(")")) error(str("missing ')' after the arguments of ", name));
    }
    auto need = [&](size_t n) {
      if (args.size() != n) error(str(name, "() takes ", n, " argument(s), got ", args.size()));
    };
    if (name == "abs") {
      need(1);
      return {std::abs(args[0].value), args[0].is_int};
    }
    if (name == "float") {
      need(1);
      return {args[0].value, false};
    }
    if (name == "int") {
      need(1);
      return {std::trunc(args[0].value), true};
    }
    if (name == "round") {
      need(1);
      return {std::nearbyint(args[0].value), true};  // half to even, as Python 3
    }
    if (name == "min" || name == "max") {
      if (args.empty()) error(str(name, "() needs arguments"));
      Number best = args[0];
      for (const auto& a : args) {
        if (name == "min" ? a.value < best.value : a.value > best.value) best = a;
      }
      return best;
    }
    error(str("unknown function '", name, "'"));
  }

  std::string_view text_;
  const VariableLookup& lookup_;
  size_t pos_ = 0;
};

}  // namespace

Value evaluate_expression(std::string_view expression, const VariableLookup& lookup) {
  const Number n = Parser(expression, lookup).parse();
  if (!std::isfinite(n.value)) {
    throw RecipeError(str("'", expression, "' evaluates to ", n.value, ", not a finite number"));
  }
  if (n.is_int && std::abs(n.value) < 9.2e18) return Value(static_cast<int64_t>(n.value));
  return Value(n.value);
}

std::optional<std::string> eval_body(const std::string& text) {
  constexpr std::string_view kOpen = "eval(";
  if (text.size() < kOpen.size() + 1 || text.compare(0, kOpen.size(), kOpen) != 0 ||
      text.back() != ')') {
    return std::nullopt;
  }
  return text.substr(kOpen.size(), text.size() - kOpen.size() - 1);
}

}  // namespace stunt::recipe::detail
