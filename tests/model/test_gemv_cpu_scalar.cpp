// HAI_CPU=scalar forces the scalar kernels: the single-token products then
// take that path and still give the portable kernels' bits. The variable is
// set by a static initializer, before anything reads it.
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/common/cpu.h"
#include "engine/model/ggml_order.h"
#include "model/gemv_test_util.h"

namespace {
const bool kEnvSet = [] { return ::setenv("HAI_CPU", "scalar", 1) == 0; }();
}

namespace hai::model {
namespace {

TEST(GemvForcedScalar, PathIsForcedAndBitsEqualPortable) {
  ASSERT_TRUE(kEnvSet);
  EXPECT_FALSE(ggml_order::have_avx512());
  EXPECT_FALSE(ggml_order::have_avx2());
  const int64_t compared = test::expect_forced_gemm_equals_portable("forced scalar gemm");
  EXPECT_GT(compared, 500);
}

}  // namespace
}  // namespace hai::model
