#include <cstdlib>

#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "test_util.h"

namespace stunt {
namespace {

TEST(Logging, ParsesLevelsAndRejectsUnknownOnes) {
  EXPECT_EQ(log::parse_level("debug"), log::Level::Debug);
  EXPECT_EQ(log::parse_level("warning"), log::Level::Warn);
  EXPECT_THROW_WITH(log::parse_level("loud"), ValueError, "expected one of trace");
}

TEST(Logging, EnvironmentVariableSetsTheLevel) {
  const auto before = log::level();
  setenv("STUNT_LOG_LEVEL", "error", 1);
  EXPECT_EQ(log::init_from_environment(), log::Level::Error);
  setenv("STUNT_LOG_LEVEL", "nonsense", 1);
  EXPECT_THROW_WITH(log::init_from_environment(), ValueError, "STUNT_LOG_LEVEL");
  unsetenv("STUNT_LOG_LEVEL");
  log::set_level(before);
}

TEST(Logging, LibraryWritesNothingToStdout) {
  testing::internal::CaptureStdout();
  log::warn("a warning for stderr");
  log::info("info for stderr");
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
}

TEST(Progress, LogModePrintsLinesToStderrNotStdout) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  {
    Progress p("work", 3, ProgressOptions{.mode = ProgressOptions::Mode::Log, .log_interval_s = 0});
    p.advance();
    p.advance(2);
    EXPECT_EQ(p.done(), 3);
  }
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("work: 3/3"), std::string::npos) << err;
}

TEST(Progress, ShowsTheSecondQuantitysRateAndTheTimeLeft) {
  testing::internal::CaptureStderr();
  {
    Progress p(
        "label", 4,
        ProgressOptions{
            .mode = ProgressOptions::Mode::Log, .log_interval_s = 0, .second_unit = "tokens"});
    p.count(120);
    p.advance(1);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("label: 1/4 items ("), std::string::npos) << err;
  EXPECT_NE(err.find(" tokens/s, ETA "), std::string::npos) << err;
  // The last line, with everything done, has no time left to show.
  const std::string last = err.substr(err.rfind("label: "));
  EXPECT_EQ(last.find("ETA"), std::string::npos) << last;
}

TEST(Progress, BarModeDrawsABar) {
  testing::internal::CaptureStderr();
  {
    Progress p("bar", 4, ProgressOptions{.mode = ProgressOptions::Mode::Bar});
    p.advance(4);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("[##############################]"), std::string::npos) << err;
  EXPECT_NE(err.find("4/4"), std::string::npos) << err;
}

}  // namespace
}  // namespace stunt
