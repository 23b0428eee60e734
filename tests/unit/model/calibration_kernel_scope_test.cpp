#include <gtest/gtest.h>

#include <thread>

#include "stunt/model/model.h"

namespace stunt::model {
namespace {

TEST(CalibrationKernelScope, IsOnOnlyWhileAliveAndOnlyOnItsThread) {
  EXPECT_FALSE(CalibrationKernelScope::active());
  {
    const CalibrationKernelScope outer;
    EXPECT_TRUE(CalibrationKernelScope::active());
    {
      const CalibrationKernelScope inner;
      EXPECT_TRUE(CalibrationKernelScope::active());
    }
    // The inner scope restores what it found, not "off".
    EXPECT_TRUE(CalibrationKernelScope::active());
    bool elsewhere = true;
    std::thread([&] { elsewhere = CalibrationKernelScope::active(); }).join();
    EXPECT_FALSE(elsewhere);
  }
  EXPECT_FALSE(CalibrationKernelScope::active());
}

}  // namespace
}  // namespace stunt::model
