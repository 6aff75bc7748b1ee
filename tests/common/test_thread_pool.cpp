#include "engine/common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

namespace hai {
namespace {

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 4}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    std::vector<std::atomic<int>> calls(n);
    std::atomic<int> bad_nth{0};
    pool.run([&](int ith, int nth) {
      calls[ith]++;
      if (nth != n) bad_nth++;
    });
    for (int i = 0; i < n; ++i) EXPECT_EQ(calls[i].load(), 1);
    EXPECT_EQ(bad_nth.load(), 0);
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(0, n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << i;
  }
}

TEST(ThreadPool, StaticChunksAreContiguousAndBalanced) {
  for (int nth : {1, 2, 3, 8}) {
    int64_t next = 10;
    for (int ith = 0; ith < nth; ++ith) {
      auto [lo, hi] = ThreadPool::chunk(10, 110, ith, nth);
      EXPECT_EQ(lo, next);
      EXPECT_LE(hi - lo, 100 / nth + 1);
      EXPECT_GE(hi - lo, 100 / nth);
      next = hi;
    }
    EXPECT_EQ(next, 110);
  }
}

TEST(ThreadPool, ManySmallJobs) {
  // Decode-like: thousands of tiny jobs back to back, each must see all
  // results of the previous one.
  ThreadPool pool(2);
  std::vector<int64_t> data(64, 0);
  for (int iter = 0; iter < 5000; ++iter) {
    pool.parallel_for(0, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) data[static_cast<size_t>(i)] += 1;
    });
  }
  for (int64_t v : data) EXPECT_EQ(v, 5000);
}

TEST(ThreadPool, ExceptionIsRethrownAndPoolStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.run([](int ith, int) {
    if (ith == 2) throw std::runtime_error("worker failed");
  }),
               std::runtime_error);
  EXPECT_THROW(pool.run([](int ith, int) {
    if (ith == 0) throw std::runtime_error("caller failed");
  }),
               std::runtime_error);
  std::atomic<int> sum{0};
  pool.run([&](int ith, int) { sum += ith; });
  EXPECT_EQ(sum.load(), 0 + 1 + 2);
}

TEST(ThreadPool, CreateAndDestroyQuickly) {
  // Workers that start only after a job, or after the destructor began, must
  // neither miss the stop signal nor run a finished job again.
  for (int i = 0; i < 200; ++i) {
    ThreadPool idle(4);
  }
  for (int i = 0; i < 200; ++i) {
    ThreadPool pool(4);
    std::atomic<int> parts{0};
    pool.run([&](int, int) { parts++; });
    EXPECT_EQ(parts.load(), 4);
  }
}

TEST(ThreadPool, DefaultSizeIsHardware) {
  ThreadPool pool;
  EXPECT_GE(pool.size(), 1);
}

}  // namespace
}  // namespace hai
