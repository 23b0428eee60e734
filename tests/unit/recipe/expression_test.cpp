#include "detail/expression.h"

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::recipe::detail {
namespace {

Value eval(const std::string& text) {
  return evaluate_expression(text, [](const std::string& name) -> std::optional<Value> {
    if (name == "x") return Value(10);
    if (name == "y") return Value(0.5);
    return std::nullopt;
  });
}

TEST(Expression, FollowsPythonArithmetic) {
  EXPECT_EQ(eval("1 + 2 * 3"), 7);
  EXPECT_EQ(eval("(1 + 2) * 3"), 9);
  EXPECT_EQ(eval("2 ** 3 ** 2"), 512);  // right-associative
  EXPECT_EQ(eval("-2 ** 2"), -4);       // ** binds tighter than unary minus
  EXPECT_EQ(eval("7 // 2"), 3);
  EXPECT_EQ(eval("-7 // 2"), -4);  // floor division
  EXPECT_EQ(eval("-7 % 3"), 2);    // sign of the divisor
  EXPECT_DOUBLE_EQ(eval("7 / 2").get<double>(), 3.5);
  EXPECT_TRUE(eval("x * 2").is_number_integer());
  EXPECT_DOUBLE_EQ(eval("x * y").get<double>(), 5.0);
  EXPECT_FALSE(eval("x * y").is_number_integer());
  EXPECT_EQ(eval("max(1, x, 3) + min(4, 2)"), 12);
  EXPECT_EQ(eval("round(2.5)"), 2);  // half to even
  EXPECT_EQ(eval("int(3.9) + abs(-1)"), 4);
  EXPECT_DOUBLE_EQ(eval("1.5e1").get<double>(), 15.0);
}

TEST(Expression, BadInputIsAClearError) {
  EXPECT_THROW_WITH(eval("x +"), RecipeError, "unexpected end");
  EXPECT_THROW_WITH(eval("1 / 0"), RecipeError, "division by zero");
  EXPECT_THROW_WITH(eval("sqrt(4)"), RecipeError, "unknown function 'sqrt'");
  EXPECT_THROW_WITH(eval("2 $ 3"), RecipeError, "unexpected '$");
  EXPECT_THROW_WITH(eval(std::string(500, '(') + "1" + std::string(500, ')')), RecipeError,
                    "nested too deeply");
  EXPECT_THROW(eval("z + 1"), UnknownVariable);
}

TEST(Expression, EvalBodyOnlyMatchesWholeStrings) {
  EXPECT_EQ(eval_body("eval(x + 1)"), "x + 1");
  EXPECT_FALSE(eval_body("evaluate(x)").has_value());
  EXPECT_FALSE(eval_body("prefix eval(x)").has_value());
}

}  // namespace
}  // namespace stunt::recipe::detail
