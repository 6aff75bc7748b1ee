// How matmul / matmul_group split a product's rows among threads (ops.h):
// one contiguous part per thread, a product of more than 32 MB of weights in
// parts of about 4 MB that the threads claim (ParallelFor::fine). However the
// rows are split, every output has the bits of the serial product.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/model/ops.h"
#include "engine/quant/quant.h"

namespace hai::model {
namespace {

// A Q8_0 matrix of random blocks (scales 0.01..0.02) that owns its bytes.
struct Matrix {
  std::vector<uint8_t> bytes;
  Weight w;
};

Matrix make_q8_0(int64_t n_cols, int64_t n_rows, uint32_t seed) {
  Matrix m;
  m.w.type = GgmlType::Q8_0;
  m.w.n_cols = n_cols;
  m.w.n_rows = n_rows;
  m.w.row_bytes = row_size(GgmlType::Q8_0, n_cols);
  m.bytes.resize(m.w.row_bytes * static_cast<size_t>(n_rows));
  std::mt19937 rng(seed);
  const int64_t n_blocks = n_cols / 32 * n_rows;
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = m.bytes.data() + 34 * b;
    const uint32_t r = rng();
    const uint16_t d = fp32_to_fp16(0.01f + 0.01f * static_cast<float>(r & 1023) / 1024.0f);
    std::memcpy(blk, &d, 2);
    for (int i = 0; i < 32; i += 4) {
      const uint32_t q = rng();
      std::memcpy(blk + 2 + i, &q, 4);
    }
  }
  m.w.data = m.bytes.data();
  return m;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// 131072 rows of 256 values: 35.7 MB, above the 32 MB of a fine split.
constexpr int64_t kCols = 256, kBigRows = 131072, kSmallRows = 1000;

TEST(MatmulSplit, LargeProductInFinePartsHasTheSerialBits) {
  const Matrix big = make_q8_0(kCols, kBigRows, 1);
  ASSERT_GT(big.bytes.size(), size_t(32) << 20);
  const Matrix small = make_q8_0(kCols, kSmallRows, 2);
  for (int64_t n_tokens : {int64_t(1), int64_t(3)}) {
    const std::vector<float> x = random_floats(static_cast<size_t>(kCols * n_tokens), 3);
    std::vector<uint8_t> scratch;
    std::vector<float> want(static_cast<size_t>(kBigRows * n_tokens)), want_small(static_cast<size_t>(kSmallRows * n_tokens));
    matmul(big.w, x.data(), n_tokens, want.data(), nullptr, scratch, run_serial);
    matmul(small.w, x.data(), n_tokens, want_small.data(), nullptr, scratch, run_serial);
    for (int n_threads : {2, 3}) {
      ThreadPool pool(n_threads);
      const ParallelFor pfor(&pool);
      std::vector<float> got(want.size(), -1.0f), got_small(want_small.size(), -1.0f);
      matmul(big.w, x.data(), n_tokens, got.data(), nullptr, scratch, pfor);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), 4 * want.size()), 0) << n_threads << " threads";
      // In one group with a small product: the parts run across both.
      std::fill(got.begin(), got.end(), -2.0f);
      matmul_group({{&small.w, got_small.data(), nullptr}, {&big.w, got.data(), nullptr}}, x.data(), n_tokens, scratch,
                   pfor);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), 4 * want.size()), 0) << n_threads << " threads, group";
      EXPECT_EQ(std::memcmp(want_small.data(), got_small.data(), 4 * want_small.size()), 0)
          << n_threads << " threads, group";
    }
  }
}

TEST(MatmulSplit, OnlyLargeProductsAreSplitFinely) {
  // A loop that records what it is asked to split: fine() of a ParallelFor
  // made from a callable reaches the callable too, with one item per part.
  std::vector<int64_t> asked;
  const ParallelFor recorder = [&](int64_t n, const ParallelFor::Body& body) {
    asked.push_back(n);
    run_serial(n, body);
  };
  EXPECT_EQ(recorder.threads(), 1);
  const Matrix big = make_q8_0(kCols, kBigRows, 4);
  const Matrix small = make_q8_0(kCols, kSmallRows, 5);
  const std::vector<float> x = random_floats(kCols, 6);
  std::vector<uint8_t> scratch;
  std::vector<float> y(kBigRows);
  matmul(small.w, x.data(), 1, y.data(), nullptr, scratch, recorder);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], (kSmallRows + 7) / 8);  // the row groups, one part per thread
  asked.clear();
  matmul(big.w, x.data(), 1, y.data(), nullptr, scratch, recorder);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], static_cast<int64_t>(big.bytes.size() >> 22));  // parts of about 4 MB
}

TEST(ParallelFor, PoolFineRunsEveryItemAsItsOwnRange) {
  ThreadPool pool(2);
  const ParallelFor pfor(&pool);
  EXPECT_EQ(pfor.threads(), 2);
  std::atomic<int> ranges{0}, items{0}, wide{0};
  pfor.fine(37, [&](int64_t lo, int64_t hi) {
    ranges++;
    items += static_cast<int>(hi - lo);
    if (hi - lo != 1) wide++;
  });
  EXPECT_EQ(ranges.load(), 37);
  EXPECT_EQ(items.load(), 37);
  EXPECT_EQ(wide.load(), 0);
  ranges = 0;
  items = 0;
  pfor(37, [&](int64_t lo, int64_t hi) {
    ranges++;
    items += static_cast<int>(hi - lo);
  });
  EXPECT_EQ(ranges.load(), 2);  // one per thread
  EXPECT_EQ(items.load(), 37);
}

TEST(ParallelFor, DefaultRunsSeriallyOnTheCaller) {
  const ParallelFor serial;
  EXPECT_EQ(serial.threads(), 1);
  int calls = 0;
  int64_t seen_lo = -1, seen_hi = -1;
  serial(10, [&](int64_t lo, int64_t hi) {
    calls++;
    seen_lo = lo;
    seen_hi = hi;
  });
  serial.fine(0, [&](int64_t, int64_t) { calls += 100; });  // nothing to do
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_lo, 0);
  EXPECT_EQ(seen_hi, 10);
}

}  // namespace
}  // namespace hai::model
