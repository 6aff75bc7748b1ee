// HAI_CPU=scalar forces the portable kernels: set before anything reads it
// (a static initializer runs before main and before any test).
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "engine/common/cpu.h"
#include "engine/quant/kernels.h"
#include "engine/quant/matmul.h"
#include "engine/quant/quant.h"
#include "quant/quant_test_util.h"

namespace {
const bool kEnvSet = [] { return ::setenv("HAI_CPU", "scalar", 1) == 0; }();
}

namespace hai {
namespace {

TEST(ForcedScalar, LevelIsScalar) {
  ASSERT_TRUE(kEnvSet);
  EXPECT_EQ(cpu_level(), CpuLevel::kScalar);
  EXPECT_EQ(kernels::active().level, CpuLevel::kScalar);
}

TEST(ForcedScalar, PublicEntryPointsUseScalarKernels) {
  const kernels::Table& scalar = kernels::table(CpuLevel::kScalar);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
    const int64_t n = 1024;
    auto w = test::test_row(1, n);
    auto x = test::test_row(2, n);
    std::vector<uint8_t> wq(row_size(t, n)), aq(activation_row_size(t, n));
    quantize_row(t, w.data(), wq.data(), n);
    quantize_activations(t, x.data(), 1, n, aq.data());
    const float want = scalar.vec_dot[kernels::slot(t)](n, wq.data(), aq.data());
    EXPECT_EQ(vec_dot(t, n, wq.data(), aq.data()), want) << type_name(t);
    float out = 0;
    matmul(t, wq.data(), 1, n, aq.data(), 1, &out);
    EXPECT_EQ(out, want) << type_name(t);
  }
}

}  // namespace
}  // namespace hai
