// An unknown HAI_CPU value is an error that names the variable and the value.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/common/cpu.h"
#include "engine/common/error.h"

namespace {
const bool kEnvSet = [] { return ::setenv("HAI_CPU", "pentium", 1) == 0; }();
}

namespace hai {
namespace {

TEST(BadCpuEnv, UnknownLevelIsAnError) {
  ASSERT_TRUE(kEnvSet);
  try {
    cpu_level();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HAI_CPU=pentium"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("avx512"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cpu_level(), Error);  // still an error on the next call
}

}  // namespace
}  // namespace hai
