#include <gtest/gtest.h>

#include <thread>

#include "stunt/model/model.h"

namespace stunt::model {
namespace {

TEST(CalibrationAttentionScope, IsOnOnlyWhileAliveAndOnlyOnItsThread) {
  EXPECT_FALSE(CalibrationAttentionScope::active());
  {
    const CalibrationAttentionScope outer;
    EXPECT_TRUE(CalibrationAttentionScope::active());
    {
      const CalibrationAttentionScope inner;
      EXPECT_TRUE(CalibrationAttentionScope::active());
    }
    // The inner scope restores what it found, not "off".
    EXPECT_TRUE(CalibrationAttentionScope::active());
    bool elsewhere = true;
    std::thread([&] { elsewhere = CalibrationAttentionScope::active(); }).join();
    EXPECT_FALSE(elsewhere);
  }
  EXPECT_FALSE(CalibrationAttentionScope::active());
}

}  // namespace
}  // namespace stunt::model
