// vec_dot of every weight type against the float dot product of the
// dequantized rows, and every SIMD kernel level this CPU supports against the
// scalar kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/common/cpu.h"
#include "engine/common/error.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"
#include "quant/quant_test_util.h"

namespace hai {
namespace {

const GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                                 GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

bool is_k_quant(GgmlType t) { return vec_dot_type(t) == GgmlType::Q8_K; }

struct Q8Row {
  const uint8_t* blocks;  // Q8_0 activation blocks (34 bytes)
};

struct Rows {
  std::vector<uint8_t> w, a;
  std::vector<float> wf, af;  // dequantized
};

// A weight row of type t and an activation row of its vec_dot_type, made
// from deterministic data, plus both dequantized.
Rows make_rows(GgmlType t, int64_t n, uint64_t seed) {
  Rows r;
  const GgmlType at = vec_dot_type(t);
  auto w = test::test_row(seed, n);
  auto x = test::test_row(seed + 100, n, 2);
  r.w.resize(row_size(t, n));
  r.a.resize(row_size(at, n));
  quantize_row(t, w.data(), r.w.data(), n);
  quantize_activation_row(at, x.data(), r.a.data(), n);
  r.wf.resize(n);
  r.af.resize(n);
  dequantize_row(t, r.w.data(), r.wf.data(), n);
  dequantize_row(at, r.a.data(), r.af.data(), n);
  return r;
}

TEST(VecDot, EqualsFloatDotOfDequantizedRows) {
  for (GgmlType t : kWeightTypes) {
    for (int64_t n : {256, 768, 4864}) {
      for (uint64_t seed : {1, 2, 3, 4}) {
        Rows r = make_rows(t, n, seed);
        double exact = 0, magnitude = 0;
        for (int64_t i = 0; i < n; ++i) {
          exact += static_cast<double>(r.wf[i]) * r.af[i];
          magnitude += std::fabs(static_cast<double>(r.wf[i]) * r.af[i]);
        }
        if (vec_dot_type(t) == GgmlType::Q8_1) {
          // ggml's formula uses the activation block's stored s (fp16 of
          // d * sum q) for the weight min's term instead of sum(dequantized
          // activations): m * (s - sum a) per block is the expected difference.
          const size_t wbs = traits(t).type_size;
          for (int64_t b = 0; b < n / 32; ++b) {
            uint16_t m, s;
            std::memcpy(&m, r.w.data() + b * wbs + 2, 2);
            std::memcpy(&s, r.a.data() + b * 36 + 2, 2);
            double sum_a = 0;
            for (int i = 0; i < 32; ++i) sum_a += r.af[b * 32 + i];
            exact += fp16_to_fp32(m) * (fp16_to_fp32(s) - sum_a);
          }
        }
        const float got = vec_dot(t, n, r.w.data(), r.a.data());
        // Float rounding of the block scales' products and of the sum.
        EXPECT_NEAR(got, exact, 2e-6 * magnitude + 1e-30) << type_name(t) << " n=" << n << " seed=" << seed;
      }
    }
  }
}

TEST(VecDot, HandComputedQ8_0) {
  // Weights: d = 0.5, levels 1..32; activations: d = 2, levels all 1.
  std::vector<uint8_t> w(34), a(34);
  const uint16_t half = fp32_to_fp16(0.5f), two = fp32_to_fp16(2.f);
  std::memcpy(&w[0], &half, 2);
  std::memcpy(&a[0], &two, 2);
  for (int j = 0; j < 32; ++j) {
    w[2 + j] = static_cast<uint8_t>(j + 1);
    a[2 + j] = 1;
  }
  EXPECT_EQ(vec_dot(GgmlType::Q8_0, 32, w.data(), a.data()), 528.f);  // 0.5 * 2 * (1 + ... + 32)
}

// Every level the CPU runs, kernel by kernel, against the scalar table.
class KernelLevels : public ::testing::TestWithParam<CpuLevel> {};

TEST_P(KernelLevels, VecDotMatchesScalar) {
  const CpuLevel level = GetParam();
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP() << "CPU lacks " << cpu_level_name(level);
  const kernels::Table& simd = kernels::table(level);
  const kernels::Table& scalar = kernels::table(CpuLevel::kScalar);
  for (GgmlType t : kWeightTypes) {
    const int s = kernels::slot(t);
    ASSERT_NE(simd.vec_dot[s], nullptr) << type_name(t);
    for (int64_t n : {256, 512, 768, 4864}) {
      for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
        Rows r = make_rows(t, n, seed);
        const float want = scalar.vec_dot[s](n, r.w.data(), r.a.data());
        const float got = simd.vec_dot[s](n, r.w.data(), r.a.data());
        if (is_k_quant(t)) {
          // Same integer sums, same float operations per super-block.
          EXPECT_EQ(got, want) << type_name(t) << " n=" << n << " seed=" << seed;
        } else {
          double magnitude = 0;
          for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(static_cast<double>(r.wf[i]) * r.af[i]);
          EXPECT_NEAR(got, want, 1e-6 * magnitude) << type_name(t) << " n=" << n << " seed=" << seed;
        }
      }
    }
  }
}

// Float types with lengths that leave a tail after the vector loops.
TEST_P(KernelLevels, FloatTails) {
  const CpuLevel level = GetParam();
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP();
  const kernels::Table& simd = kernels::table(level);
  const kernels::Table& scalar = kernels::table(CpuLevel::kScalar);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    for (int64_t n : {1, 7, 8, 15, 17, 33, 63, 65, 100}) {
      Rows r = make_rows(t, n, 9);
      double magnitude = 0;
      for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(static_cast<double>(r.wf[i]) * r.af[i]);
      const int s = kernels::slot(t);
      EXPECT_NEAR(simd.vec_dot[s](n, r.w.data(), r.a.data()), scalar.vec_dot[s](n, r.w.data(), r.a.data()),
                  1e-6 * magnitude)
          << type_name(t) << " n=" << n;
    }
  }
}

// Extreme levels: the largest products must not saturate any 16-bit step.
TEST_P(KernelLevels, ExtremeLevelsDoNotSaturate) {
  const CpuLevel level = GetParam();
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP();
  const kernels::Table& simd = kernels::table(level);
  const kernels::Table& scalar = kernels::table(CpuLevel::kScalar);
  for (GgmlType t : kWeightTypes) {
    if (!traits(t).quantized) continue;
    const int64_t n = 512;
    const GgmlType at = vec_dot_type(t);
    for (int pattern = 0; pattern < 4; ++pattern) {
      // Raw bytes: all 0xFF / 0x80 / 0x7F / alternating, with sane scales.
      std::vector<uint8_t> w(row_size(t, n)), a(row_size(at, n));
      const uint8_t fill[4] = {0xFF, 0x80, 0x7F, 0xAA};
      std::memset(w.data(), fill[pattern], w.size());
      // Activations at the int8 extremes (+-127) with unit scales.
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) x[i] = (i + pattern) % 3 == 0 ? -1.f : 1.f;
      quantize_activation_row(at, x.data(), a.data(), n);
      // Give the weight blocks finite scales (d = 1 where the type has one).
      const size_t bs = traits(t).type_size;
      for (size_t off = 0; off < w.size(); off += bs) {
        const uint16_t one = 0x3C00;
        switch (t) {
          case GgmlType::Q2_K: std::memcpy(&w[off + 80], &one, 2); std::memcpy(&w[off + 82], &one, 2); break;
          case GgmlType::Q3_K: std::memcpy(&w[off + 108], &one, 2); break;
          case GgmlType::Q6_K: std::memcpy(&w[off + 208], &one, 2); break;
          case GgmlType::Q4_K:
          case GgmlType::Q5_K: std::memcpy(&w[off], &one, 2); std::memcpy(&w[off + 2], &one, 2); break;
          case GgmlType::Q4_1:
          case GgmlType::Q5_1: std::memcpy(&w[off], &one, 2); std::memcpy(&w[off + 2], &one, 2); break;
          default: std::memcpy(&w[off], &one, 2); break;
        }
      }
      const int s = kernels::slot(t);
      const float want = scalar.vec_dot[s](n, w.data(), a.data());
      const float got = simd.vec_dot[s](n, w.data(), a.data());
      EXPECT_NEAR(got, want, 1e-6 * std::fabs(want) + 1e-3) << type_name(t) << " pattern " << pattern;
    }
  }
}

TEST_P(KernelLevels, ActivationConversionBitExact) {
  const CpuLevel level = GetParam();
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP();
  const kernels::Table& simd = kernels::table(level);
  const kernels::Table& scalar = kernels::table(CpuLevel::kScalar);
  for (GgmlType at : {GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16, GgmlType::F32}) {
    for (uint64_t seed = 1; seed <= 8; ++seed) {
      const int64_t n = 1024;
      auto x = test::test_row(seed, n, static_cast<int>(seed % 7) - 3);
      std::vector<uint8_t> a(row_size(at, n)), b(row_size(at, n));
      const int s = kernels::slot(at);
      simd.from_float[s](x.data(), a.data(), n);
      scalar.from_float[s](x.data(), b.data(), n);
      EXPECT_EQ(a, b) << type_name(at) << " seed " << seed;
    }
    // Integer-valued inputs: x * 127/amax hits exact .5 ties.
    std::vector<float> x(256);
    for (int i = 0; i < 256; ++i) x[i] = static_cast<float>((i * 37) % 255 - 127) / 2;
    std::vector<uint8_t> a(row_size(at, 256)), b(row_size(at, 256));
    const int s = kernels::slot(at);
    simd.from_float[s](x.data(), a.data(), 256);
    scalar.from_float[s](x.data(), b.data(), 256);
    EXPECT_EQ(a, b) << type_name(at) << " ties";
  }
}

// The several-token kernels give exactly the single-token kernel's results.
TEST_P(KernelLevels, MultiTokenKernelsMatchSingle) {
  const CpuLevel level = GetParam();
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP();
  const kernels::Table& tab = kernels::table(level);
  int tested = 0;
  for (GgmlType t : kWeightTypes) {
    const int s = kernels::slot(t);
    if (!tab.vec_dot_multi[s]) continue;
    ++tested;
    for (int64_t n : {256, 768, 4864}) {
      const GgmlType at = vec_dot_type(t);
      const size_t arow = row_size(at, n);
      Rows r = make_rows(t, n, 3);
      std::vector<uint8_t> acts(arow * kernels::kMaxTokens);
      for (int k = 0; k < kernels::kMaxTokens; ++k) {
        auto x = test::test_row(40 + k, n, k);
        quantize_activation_row(at, x.data(), acts.data() + k * arow, n);
      }
      for (int n_tok = 1; n_tok <= kernels::kMaxTokens; ++n_tok) {
        float out[2 * kernels::kMaxTokens];
        tab.vec_dot_multi[s](n, r.w.data(), acts.data(), arow, n_tok, out, 2);
        for (int k = 0; k < n_tok; ++k)
          EXPECT_EQ(out[2 * k], tab.vec_dot[s](n, r.w.data(), acts.data() + k * arow))
              << type_name(t) << " n=" << n << " tokens=" << n_tok << " k=" << k;
      }
    }
  }
  if (level != CpuLevel::kScalar) {
    EXPECT_GE(tested, 4);
  }
}

// ggml's x86 Q8_0 / Q4_0 dot product, modelled in plain C++: per block, 8
// int32 lanes (lane l sums the products of bytes 4l..4l+3), converted to
// float and fused-multiply-added with d_w * d_a into 8 float accumulators;
// then hsum_float_8: (a[l] + a[l+4]) for l < 4, then (s0 + s2) + (s1 + s3).
float ggml_order_dot_q8(const int8_t* wq, const uint16_t* wd, const Q8Row& act, int64_t nb);
// (defined below the suite)

TEST_P(KernelLevels, Q8_0AndQ4_0FollowGgmlOrderBitForBit) {
  const CpuLevel level = GetParam();
  if (level == CpuLevel::kScalar) GTEST_SKIP() << "the scalar kernels sum block by block";
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level())) GTEST_SKIP();
  const kernels::Table& tab = kernels::table(level);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
      const int64_t n = 4864, nb = n / 32;
      Rows r = make_rows(t, n, seed);
      // Weight levels as signed bytes and block scales.
      std::vector<int8_t> wq(n);
      std::vector<uint16_t> wd(nb);
      const size_t bs = traits(t).type_size;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = r.w.data() + b * bs;
        std::memcpy(&wd[b], blk, 2);
        for (int j = 0; j < 32; ++j) {
          if (t == GgmlType::Q8_0)
            wq[b * 32 + j] = static_cast<int8_t>(blk[2 + j]);
          else
            wq[b * 32 + j] = static_cast<int8_t>((j < 16 ? (blk[2 + j] & 0xF) : (blk[2 + j - 16] >> 4)) - 8);
        }
      }
      Q8Row act{r.a.data()};
      EXPECT_EQ(tab.vec_dot[kernels::slot(t)](n, r.w.data(), r.a.data()), ggml_order_dot_q8(wq.data(), wd.data(), act, nb))
          << type_name(t) << " seed " << seed;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllLevels, KernelLevels,
                         ::testing::Values(CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512),
                         [](const ::testing::TestParamInfo<CpuLevel>& info) {
                           return std::string(cpu_level_name(info.param));
                         });

float ggml_order_dot_q8(const int8_t* wq, const uint16_t* wd, const Q8Row& act, int64_t nb) {
  float acc[8] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = act.blocks + b * 34;
    uint16_t ad;
    std::memcpy(&ad, blk, 2);
    const float d = fp16_to_fp32(wd[b]) * fp16_to_fp32(ad);
    for (int l = 0; l < 8; ++l) {
      int lane = 0;
      for (int k = 4 * l; k < 4 * l + 4; ++k) lane += wq[b * 32 + k] * static_cast<int8_t>(blk[2 + k]);
      acc[l] = std::fma(d, static_cast<float>(lane), acc[l]);
    }
  }
  float s[4];
  for (int l = 0; l < 4; ++l) s[l] = acc[l + 4] + acc[l];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

TEST(Cpu, DetectionIsConsistent) {
  const CpuFeatures& f = cpu_features();
  const CpuLevel hw = cpu_hardware_level();
  if (hw >= CpuLevel::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  if (hw >= CpuLevel::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni);
  }
  EXPECT_LE(static_cast<int>(cpu_level()), static_cast<int>(hw));
  EXPECT_EQ(kernels::active().level, cpu_level());
  EXPECT_FALSE(cpu_description().empty());
#if defined(__x86_64__)
  EXPECT_EQ(__builtin_cpu_supports("avx2") != 0, f.avx2);
  EXPECT_EQ(__builtin_cpu_supports("avx512f") != 0, f.avx512f);
#endif
}

TEST(Cpu, ParseLevelNames) {
  EXPECT_EQ(parse_cpu_level("scalar"), CpuLevel::kScalar);
  EXPECT_EQ(parse_cpu_level("AVX2"), CpuLevel::kAvx2);
  EXPECT_EQ(parse_cpu_level("avx512"), CpuLevel::kAvx512);
  EXPECT_EQ(parse_cpu_level("sse"), std::nullopt);
  EXPECT_EQ(parse_cpu_level(""), std::nullopt);
  for (CpuLevel l : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512})
    EXPECT_EQ(parse_cpu_level(cpu_level_name(l)), l);
}

TEST(Cpu, TableAboveHardwareIsAnError) {
  if (cpu_hardware_level() == CpuLevel::kAvx512) GTEST_SKIP() << "every level is supported here";
  EXPECT_THROW(kernels::table(CpuLevel::kAvx512), Error);
}

}  // namespace
}  // namespace hai
