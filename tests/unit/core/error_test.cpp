#include "stunt/core/error.h"

#include "test_util.h"

namespace stunt {
namespace {

TEST(Error, CheckThrowsValueErrorWithConcatenatedMessage) {
  const int group_size = 128;
  EXPECT_THROW_WITH(STUNT_CHECK(100 % group_size == 0, "in_features=", 100,
                                " is not divisible by group_size=", group_size),
                    ValueError, "in_features=100 is not divisible by group_size=128");
}

TEST(Error, CheckAsThrowsTheNamedClass) {
  EXPECT_THROW(STUNT_CHECK_AS(FormatError, false, "bad"), FormatError);
  EXPECT_NO_THROW(STUNT_CHECK_AS(FormatError, true, "fine"));
}

TEST(Error, HierarchyLetsCallersCatchByFamily) {
  EXPECT_THROW(throw FormatError("x"), IoError);
  EXPECT_THROW(throw RecipeError("x"), ValueError);
  EXPECT_THROW(throw NotImplementedError("x"), Error);
}

TEST(Error, AssertNamesTheConditionAndLocation) {
  EXPECT_THROW_WITH(STUNT_ASSERT(1 + 1 == 3, "math"), InternalError, "1 + 1 == 3");
  EXPECT_THROW_WITH(STUNT_ASSERT(false), InternalError, "error_test.cpp");
}

TEST(Error, MessageIsBuiltOnlyOnFailure) {
  int evaluated = 0;
  auto expensive = [&] { return ++evaluated; };
  STUNT_CHECK(true, "value ", expensive());
  EXPECT_EQ(evaluated, 0);
}

}  // namespace
}  // namespace stunt

namespace stunt {
namespace {

TEST(Error, PrintableEscapesControlAndInvalidUtf8ButKeepsValidText) {
  EXPECT_EQ(printable("caf\xc3\xa9 ok"), "caf\xc3\xa9 ok");
  EXPECT_EQ(printable("a\nb"), "a\\x0ab");
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");  // truncated sequence
}

}  // namespace
}  // namespace stunt
