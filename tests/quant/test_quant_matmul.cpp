// matmul: every output equals vec_dot of its weight row and activation row,
// whatever the thread count and token count (tiles), and bad input is an error.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/common/error.h"
#include "engine/common/thread_pool.h"
#include "engine/quant/matmul.h"
#include "engine/quant/quant.h"
#include "quant/quant_test_util.h"

namespace hai {
namespace {

struct Problem {
  GgmlType type;
  int64_t rows, cols, tokens;
};

void check(const Problem& p, ThreadPool* pool) {
  const size_t wrow = row_size(p.type, p.cols);
  std::vector<uint8_t> W(wrow * p.rows);
  for (int64_t r = 0; r < p.rows; ++r) {
    auto w = test::test_row(static_cast<uint64_t>(r) + 1, p.cols);
    quantize_row(p.type, w.data(), W.data() + r * wrow, p.cols);
  }
  std::vector<float> x;
  for (int64_t t = 0; t < p.tokens; ++t) {
    auto row = test::test_row(static_cast<uint64_t>(t) + 500, p.cols, 1);
    x.insert(x.end(), row.begin(), row.end());
  }
  const size_t arow = activation_row_size(p.type, p.cols);
  ASSERT_EQ(arow, row_size(vec_dot_type(p.type), p.cols));
  std::vector<uint8_t> act(arow * p.tokens);
  quantize_activations(p.type, x.data(), p.tokens, p.cols, act.data(), pool);
  // The activation rows are exactly quantize_activation_row's.
  for (int64_t t = 0; t < p.tokens; ++t) {
    std::vector<uint8_t> one(arow);
    quantize_activation_row(vec_dot_type(p.type), x.data() + t * p.cols, one.data(), p.cols);
    ASSERT_EQ(0, std::memcmp(one.data(), act.data() + t * arow, arow)) << "token " << t;
  }
  std::vector<float> out(p.rows * p.tokens, NAN);
  matmul(p.type, W.data(), p.rows, p.cols, act.data(), p.tokens, out.data(), pool);
  for (int64_t t = 0; t < p.tokens; ++t)
    for (int64_t r = 0; r < p.rows; ++r)
      ASSERT_EQ(out[t * p.rows + r], vec_dot(p.type, p.cols, W.data() + r * wrow, act.data() + t * arow))
          << type_name(p.type) << " t=" << t << " r=" << r;
}

TEST(Matmul, EqualsVecDotPerElement) {
  const Problem problems[] = {
      {GgmlType::Q8_0, 37, 256, 1},  {GgmlType::Q4_0, 64, 512, 3},   {GgmlType::Q4_K, 33, 512, 5},
      {GgmlType::Q6_K, 20, 768, 2},  {GgmlType::F16, 17, 96, 4},     {GgmlType::F32, 9, 40, 3},
      {GgmlType::Q5_K, 8, 256, 1},   {GgmlType::Q4_1, 8, 64, 2},     {GgmlType::Q8_0, 40, 4096, 70},
      {GgmlType::BF16, 5, 64, 1},    {GgmlType::Q2_K, 6, 256, 3},    {GgmlType::Q3_K, 6, 256, 3},
  };
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (const Problem& p : problems) check(p, &pool);
  }
  for (const Problem& p : problems) check(p, nullptr);
}

TEST(Matmul, BadInput) {
  std::vector<uint8_t> buf(4096);
  std::vector<float> out(64), x(256);
  EXPECT_THROW(matmul(GgmlType::IQ2_XS, buf.data(), 1, 256, buf.data(), 1, out.data()), Error);
  EXPECT_THROW(matmul(GgmlType::Q4_K, buf.data(), 1, 100, buf.data(), 1, out.data()), Error);
  EXPECT_THROW(quantize_activations(GgmlType::Q4_K, x.data(), 1, 128, buf.data()), Error);
  EXPECT_THROW(activation_row_size(GgmlType::IQ1_S, 256), Error);
  ThreadPool pool(2);
  EXPECT_THROW(matmul(GgmlType::Q8_0, buf.data(), 4, 33, buf.data(), 1, out.data(), &pool), Error);
}

}  // namespace
}  // namespace hai
