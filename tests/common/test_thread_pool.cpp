#include "engine/common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace hai {
namespace {

// Runs body() on this thread with a watchdog: a pool bug that loses or
// over-counts a part makes the caller wait forever, and a test that hangs
// must fail instead of blocking ctest. The limit is a hang guard, far above
// the seconds the bodies take (nothing here measures speed).
template <typename F>
void with_watchdog(const char* what, F&& body) {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread dog([&] {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return finished; })) {
      std::fprintf(stderr, "%s: still running after 60 s: the pool hangs\n", what);
      std::fflush(stderr);
      std::_Exit(2);  // the hung threads cannot be joined
    }
  });
  body();
  {
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
  }
  cv.notify_one();
  dog.join();
}

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

TEST(ThreadPool, RunWithMorePartsThanThreads) {
  ThreadPool pool(2);
  for (int n_parts : {1, 2, 3, 5, 16, 100}) {
    std::vector<std::atomic<int>> calls(static_cast<size_t>(n_parts));
    std::atomic<int> bad{0};
    pool.run(n_parts, [&](int ith, int nth) {
      if (nth != n_parts || ith < 0 || ith >= nth) {
        bad++;
        return;
      }
      calls[static_cast<size_t>(ith)]++;
    });
    EXPECT_EQ(bad.load(), 0) << n_parts;
    for (int i = 0; i < n_parts; ++i) EXPECT_EQ(calls[static_cast<size_t>(i)].load(), 1) << n_parts << " " << i;
  }
  // Out-of-range part counts are clamped to [1, kMaxParts].
  std::atomic<int> calls{0};
  pool.run(0, [&](int, int nth) {
    EXPECT_EQ(nth, 1);
    calls++;
  });
  pool.run(-5, [&](int, int nth) {
    EXPECT_EQ(nth, 1);
    calls++;
  });
  EXPECT_EQ(calls.load(), 2);
}

TEST(ThreadPool, ParallelForInPartsCoversRangeWithNonEmptyChunks) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 64, 1001}) {
    for (int64_t parts : {int64_t(1), int64_t(2), int64_t(5), int64_t(64), int64_t(5000)}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> empty{0}, chunks{0};
      pool.parallel_for(100, 100 + n, parts, [&](int64_t lo, int64_t hi) {
        if (lo >= hi) empty++;
        chunks++;
        for (int64_t i = lo; i < hi; ++i) hits[static_cast<size_t>(i - 100)]++;
      });
      EXPECT_EQ(empty.load(), 0);
      EXPECT_EQ(chunks.load(), std::min(n, parts)) << n << " " << parts;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << parts << " " << i;
    }
  }
  int calls = 0;
  pool.parallel_for(5, 5, 8, [&](int64_t, int64_t) { calls++; });
  pool.parallel_for(5, 3, 8, [&](int64_t, int64_t) { calls++; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, VaryingPartCountsBackToBack) {
  // The trap of per-job part counts: a thread still finishing a part of one
  // job must not claim parts of the next job with the previous job's count.
  // Jobs of many tiny parts alternate with jobs of few, back to back, so that
  // threads leave one job while the next is already published. Every part of
  // every job must run exactly once, with its own job's count; a pool that
  // over-claims either runs a part it should not or never sees the job
  // finish (the watchdog fails the test).
  constexpr int kMaxTestParts = 300;
  for (int n_threads : {2, 3, 4}) {
    ThreadPool pool(n_threads);
    std::vector<std::atomic<int>> hits(kMaxTestParts + 64);
    std::atomic<int> wrong_count{0}, out_of_range{0};
    int bad_jobs = 0;
    with_watchdog("VaryingPartCountsBackToBack", [&] {
      uint32_t rng = 12345;
      for (int job = 0; job < 20000; ++job) {
        rng = rng * 1664525u + 1013904223u;
        const int n_parts = job % 2 == 0 ? static_cast<int>(100 + (rng >> 8) % 200) : static_cast<int>(1 + (rng >> 8) % 4);
        pool.run(n_parts, [&](int ith, int nth) {
          if (nth != n_parts) wrong_count++;
          if (ith < 0 || ith >= n_parts) {
            out_of_range++;
            return;
          }
          hits[static_cast<size_t>(ith)].fetch_add(1, std::memory_order_relaxed);
        });
        bool ok = true;
        for (int i = 0; i < kMaxTestParts + 64; ++i) {
          const int want = i < n_parts ? 1 : 0;
          if (hits[static_cast<size_t>(i)].exchange(0) != want) ok = false;
        }
        if (!ok) ++bad_jobs;
      }
    });
    EXPECT_EQ(wrong_count.load(), 0) << n_threads << " threads";
    EXPECT_EQ(out_of_range.load(), 0) << n_threads << " threads";
    EXPECT_EQ(bad_jobs, 0) << n_threads << " threads";
  }
}

TEST(ThreadPool, OnePartThatWaitsDoesNotHoldTheRest) {
  // Parts are claimed as threads free up, not dealt out in advance: the part
  // that waits for all the others to be done holds one thread, and the other
  // threads run every remaining part. A pool that gave each thread a fixed
  // share would deadlock here (the watchdog fails the test).
  for (int n_threads : {2, 3}) {
    ThreadPool pool(n_threads);
    with_watchdog("OnePartThatWaitsDoesNotHoldTheRest", [&] {
      for (int rep = 0; rep < 50; ++rep) {
        constexpr int kParts = 12;
        std::atomic<int> others_done{0};
        std::atomic<bool> first_claimed{false};
        pool.run(kParts, [&](int, int) {
          if (!first_claimed.exchange(true)) {
            while (others_done.load() != kParts - 1) std::this_thread::yield();
          } else {
            others_done++;
          }
        });
        ASSERT_EQ(others_done.load(), kParts - 1);
      }
    });
  }
}

TEST(ThreadPool, ExceptionWithManyParts) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(40,
                        [&](int ith, int) {
                          ran++;
                          if (ith % 7 == 3) throw std::runtime_error("part failed");
                        }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 40);  // every part still runs; the first error is rethrown
  std::atomic<int> sum{0};
  pool.parallel_for(0, 10, 10, [&](int64_t lo, int64_t hi) { sum += static_cast<int>(hi - lo); });
  EXPECT_EQ(sum.load(), 10);
}

TEST(ThreadPool, DefaultSizeIsHardware) {
  ThreadPool pool;
  EXPECT_GE(pool.size(), 1);
}

}  // namespace
}  // namespace hai
