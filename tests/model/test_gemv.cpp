// Single-token matrix products (decode): every path gives the portable
// kernels' bits (ggml_order.h), for every type, odd and even row counts,
// the minimum and several row lengths, strided rows, extreme activations;
// and no kernel reads past the last row (the matrices end at a guard page).
// Also matmul_group (ops.h), the products of one input in one parallel loop.
// The forced fallbacks are in test_gemv_cpu_avx2.cpp / _scalar.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/error.h"
#include "engine/common/thread_pool.h"
#include "engine/model/ggml_order.h"
#include "engine/model/ops.h"
#include "model/gemv_test_util.h"

namespace hai::model {
namespace {

using test::expect_bits_equal_portable;
using test::make_problem;

// The dispatched product (gemm with one token: gemv_avx512 first on an
// AVX-512 CPU, else the AVX2 or portable path).
TEST(Gemv, DispatchedEqualsPortableBitForBit) {
  int64_t compared = 0;
  uint32_t seed = 1;
  for (GgmlType type : test::gemm_types())
    for (int64_t n : test::lengths(type))
      for (int64_t rows : test::row_counts()) {
        auto p = make_problem(type, n, rows, seed++);
        compared += expect_bits_equal_portable(
            p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(type, g); }, "gemm");
      }
  EXPECT_GT(compared, 1000);
}

// gemv_avx512 itself, where the CPU has AVX-512: it must take the types the
// decode of every benchmark model uses, and match the portable kernels.
TEST(Gemv, Avx512KernelsEqualPortableBitForBit) {
  if (!ggml_order::have_avx512()) GTEST_SKIP() << "no AVX-512 (+VNNI) on this CPU";
  uint32_t seed = 100;
  for (GgmlType type : test::gemm_types())
    for (int64_t n : test::lengths(type))
      for (int64_t rows : test::row_counts()) {
        auto p = make_problem(type, n, rows, seed++);
        bool taken = true;
        expect_bits_equal_portable(
            p,
            [&](const ggml_order::GemmArgs& g) {
              taken = ggml_order::gemv_avx512(type, g);
              if (!taken) ggml_order::gemm_avx512(type, g);  // its own fallback
            },
            "gemv_avx512");
        if (type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q5_0) {
          EXPECT_TRUE(taken) << type_name(type) << " has a single-token kernel";
        }
      }
}

// Rows further apart than their size (the products take a stride), and
// activations of any int8 value, -128 included.
TEST(Gemv, StridedRowsAndExtremeActivations) {
  uint32_t seed = 500;
  for (GgmlType type : test::gemm_types()) {
    const bool raw = type == GgmlType::Q8_0 || type == GgmlType::Q4_0;  // Q5_0's reference is hai::vec_dot: [-127, 127]
    for (size_t extra : {size_t(2), size_t(64), size_t(100)})
      for (int64_t rows : {int64_t(5), int64_t(16), int64_t(23)}) {
        const int64_t n = test::lengths(type)[1];
        auto p = make_problem(type, n, rows, seed++, extra, raw);
        expect_bits_equal_portable(
            p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(type, g); }, "strided gemm");
      }
  }
}

// The Q4_0 kernel takes 8 rows and 2 blocks per step: every row count of
// a group and a half (1..17) with 1..6 blocks (odd counts end on a single
// block), against the portable kernel.
TEST(Gemv, Q4_0EveryRowCountAndBlockCount) {
  uint32_t seed = 700;
  int64_t compared = 0;
  for (int64_t rows = 1; rows <= 17; ++rows)
    for (int64_t nb = 1; nb <= 6; ++nb) {
      auto p = make_problem(GgmlType::Q4_0, 32 * nb, rows, seed++, 0, /*raw_activations=*/true);
      compared += expect_bits_equal_portable(
          p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(GgmlType::Q4_0, g); }, "q4_0 gemm");
    }
  EXPECT_EQ(compared, 17 * 18 / 2 * 6);
}

// The integer parts at their extremes: every weight -8 (level 0) or 7
// (level 15) against every activation -128 or 127, so that the kernel's
// partial sums reach the ends of their int16 range (a block's sum reaches
// 32 * -8 * -128 = 32768, one more than int16 holds). With all scales 1
// the sums are exact in float: acc = nb * s.
TEST(Gemv, Q4_0ExtremeIntegerSums) {
  struct Case {
    uint8_t qs;  // both nibbles of every byte
    int8_t y;
    float block_sum;
  };
  const Case cases[] = {{0x00, -128, 32768.0f}, {0x00, 127, -32512.0f}, {0xFF, -128, -28672.0f},
                        {0xFF, 127, 28448.0f},  {0x0F, -128, 2048.0f},  {0xF0, 127, -2032.0f}};
  const uint16_t one = fp32_to_fp16(1.0f);
  for (const Case& c : cases)
    for (int64_t nb : {int64_t(1), int64_t(2), int64_t(3), int64_t(28)})
      for (int64_t rows : {int64_t(1), int64_t(8), int64_t(11)}) {
        test::Problem p;
        p.type = GgmlType::Q4_0;
        p.n = 32 * nb;
        p.rows = rows;
        p.stride = static_cast<size_t>(18 * nb);
        p.w = std::make_unique<test::GuardedBuffer>(p.stride * rows);
        p.a = std::make_unique<test::GuardedBuffer>(static_cast<size_t>(34 * nb));
        for (int64_t b = 0; b < nb * rows; ++b) {
          std::memcpy(p.w->data() + 18 * b, &one, 2);
          std::memset(p.w->data() + 18 * b + 2, c.qs, 16);
        }
        for (int64_t b = 0; b < nb; ++b) {
          std::memcpy(p.a->data() + 34 * b, &one, 2);
          std::memset(p.a->data() + 34 * b + 2, static_cast<uint8_t>(c.y), 32);
        }
        expect_bits_equal_portable(
            p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(GgmlType::Q4_0, g); }, "q4_0 extremes");
        std::vector<float> y(static_cast<size_t>(rows), 0.0f);
        ggml_order::gemm(GgmlType::Q4_0, test::args(p, y.data()));
        for (int64_t r = 0; r < rows; ++r)
          EXPECT_EQ(y[static_cast<size_t>(r)], c.block_sum * static_cast<float>(nb))
              << "qs " << int(c.qs) << " y " << int(c.y) << " nb " << nb << " row " << r;
      }
}

// The Q4_0 kernel keeps the activations it prepared last (per thread) and
// reuses them while the activation row is unchanged: a row changed in place
// at the same address, in any block (the last one, a scale alone), or a
// shorter row at the same address, must be prepared anew.
TEST(Gemv, Q4_0ActivationsChangedInPlace) {
  auto p = make_problem(GgmlType::Q4_0, 32 * 9, 11, 800);
  auto run = [&](const std::string& what) {
    expect_bits_equal_portable(
        p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(GgmlType::Q4_0, g); }, what);
  };
  run("first");
  run("again, unchanged");
  uint8_t* a = p.a->data();
  a[34 * 8 + 2 + 31] ^= 0x55;  // the last activation of the last block
  run("last block changed");
  a[34 * 4 + 1] ^= 0x01;  // a scale alone
  run("scale changed");
  a[2] = static_cast<uint8_t>(-128);
  run("first activation changed");
  p.n = 32 * 8;  // a shorter row at the same address
  run("shorter row");
}

// Results land in y[r] for r < n_rows only: nothing before or after.
TEST(Gemv, WritesOnlyItsOutputs) {
  for (GgmlType type : test::gemm_types()) {
    const int64_t n = test::lengths(type)[0];
    for (int64_t rows : {int64_t(1), int64_t(3), int64_t(9)}) {
      auto p = make_problem(type, n, rows, 900 + static_cast<uint32_t>(rows));
      std::vector<float> y(static_cast<size_t>(rows) + 32, 123.0f);
      ggml_order::gemm(type, test::args(p, y.data() + 16));
      for (int i = 0; i < 16; ++i) {
        EXPECT_EQ(y[i], 123.0f) << type_name(type) << " before";
        EXPECT_EQ(y[16 + rows + i], 123.0f) << type_name(type) << " after";
      }
    }
  }
}

}  // namespace
}  // namespace hai::model

// matmul_group: one conversion of the input, one parallel loop over the rows
// of all products; every result bit-identical to its own matmul, for mixed
// types (ggml-order tiles, F16, the hai::vec_dot fallback), biases, one and
// several tokens, on one thread and on a pool.
namespace hai::model {
namespace {

Weight weight_of(test::Problem& p) {
  Weight w;
  w.type = p.type;
  w.data = p.w->data();
  w.n_cols = p.n;
  w.n_rows = p.rows;
  w.row_bytes = p.stride;
  return w;
}

TEST(MatmulGroup, EqualsSeparateProductsBitForBit) {
  const int64_t n = 512;
  std::vector<test::Problem> problems;
  const std::vector<std::pair<GgmlType, int64_t>> shapes = {{GgmlType::Q5_0, 40},  {GgmlType::Q8_0, 9},
                                                            {GgmlType::F16, 17},   {GgmlType::Q4_0, 64},
                                                            {GgmlType::Q4_K, 11},  {GgmlType::Q6_K, 8},
                                                            {GgmlType::Q4_1, 13}};
  uint32_t seed = 2000;
  for (auto [type, rows] : shapes) problems.push_back(test::make_problem(type, n, rows, seed++));
  std::vector<Weight> weights;
  for (auto& p : problems) weights.push_back(weight_of(p));
  ThreadPool pool(2);
  const ParallelFor on_pool = [&pool](int64_t m, const std::function<void(int64_t, int64_t)>& fn) {
    pool.parallel_for(0, m, fn);
  };
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t n_tokens : {int64_t(1), int64_t(3), int64_t(20)}) {
    std::vector<float> x(static_cast<size_t>(n * n_tokens));
    for (auto& v : x) v = nd(rng);
    std::vector<std::vector<float>> bias(weights.size()), want(weights.size()), got(weights.size());
    std::vector<MatmulOut> outs;
    for (size_t i = 0; i < weights.size(); ++i) {
      bias[i].resize(static_cast<size_t>(weights[i].n_rows));
      for (auto& v : bias[i]) v = nd(rng);
      const float* b = i % 2 == 0 ? bias[i].data() : nullptr;
      want[i].assign(static_cast<size_t>(weights[i].n_rows * n_tokens), -1.0f);
      got[i].assign(want[i].size(), -2.0f);
      std::vector<uint8_t> scratch;
      matmul(weights[i], x.data(), n_tokens, want[i].data(), b, scratch, run_serial);
      outs.push_back({&weights[i], got[i].data(), b});
    }
    for (const ParallelFor* pfor : {&on_pool, static_cast<const ParallelFor*>(nullptr)}) {
      std::vector<uint8_t> scratch;
      if (pfor)
        matmul_group(outs, x.data(), n_tokens, scratch, *pfor);
      else
        matmul_group(outs, x.data(), n_tokens, scratch, run_serial);
      for (size_t i = 0; i < weights.size(); ++i)
        EXPECT_EQ(std::memcmp(want[i].data(), got[i].data(), 4 * want[i].size()), 0)
            << type_name(weights[i].type) << " tokens " << n_tokens << (pfor ? " pool" : " serial");
      for (auto& g : got) std::fill(g.begin(), g.end(), -3.0f);
    }
  }
}

TEST(MatmulGroup, RejectsDifferentInputSizes) {
  auto a = test::make_problem(GgmlType::Q8_0, 64, 8, 1);
  auto b = test::make_problem(GgmlType::Q8_0, 96, 8, 2);
  Weight wa = weight_of(a), wb = weight_of(b);
  std::vector<float> x(96, 1.0f), ya(8), yb(8);
  std::vector<uint8_t> scratch;
  try {
    matmul_group({{&wa, ya.data(), nullptr}, {&wb, yb.data(), nullptr}}, x.data(), 1, scratch, run_serial);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("96"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("64"), std::string::npos) << e.what();
  }
  // No products: nothing to do, nothing touched.
  matmul_group({}, x.data(), 1, scratch, run_serial);
}

}  // namespace
}  // namespace hai::model

// The F16 rounding of activations for F16 weights: the AVX-512 version
// gives fp16_to_fp32(fp32_to_fp16(x)) bit for bit, for every class of value.
namespace hai::model {
namespace {

TEST(Gemv, F16RoundingOfActivationsIsExact) {
  if (!ggml_order::have_avx512()) GTEST_SKIP() << "no AVX-512 (+VNNI) on this CPU";
  std::vector<float> x;
  std::mt19937 rng(11);
  for (int i = 0; i < 20000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);  // every exponent: subnormals, overflow, NaN, infinities
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1.0f + 0x1p-11f,
                  1.0f + 0x1p-11f + 0x1p-23f, INFINITY, -INFINITY, NAN})
    x.push_back(f);
  for (size_t n : {x.size(), size_t(13), size_t(1)}) {
    std::vector<float> out(n, 7.0f);
    ggml_order::round_f16_n_avx512(x.data(), out.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) {
      const float want = fp16_to_fp32(fp32_to_fp16(x[i]));
      ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0) << x[i] << ": " << out[i] << " vs " << want;
    }
  }
}

}  // namespace
}  // namespace hai::model
