#include "engine/common/membw.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "engine/common/error.h"

namespace hai {
namespace {

// Sums 64-bit words with four independent accumulators so the loop is bound
// by loads, not by the add latency; the compiler vectorises it.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

BandwidthResult measure_read_bandwidth(int threads, size_t bytes, int passes) {
  if (threads < 1) throw Error("bandwidth: threads must be at least 1");
  if (passes < 1) throw Error("bandwidth: passes must be at least 1");
  const size_t words = std::max<size_t>(bytes / sizeof(uint64_t), size_t(threads) * 1024);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[words]);

  // Each thread first touches its own slice (so pages are local to it), then
  // all threads read their slices together, `passes` times.
  std::atomic<int> ready{0};
  std::atomic<int> go_pass{-1};
  std::vector<std::atomic<int>> done(passes);
  for (auto& d : done) d = 0;
  std::vector<uint64_t> sink(size_t(threads) * 8, 0);  // 64 bytes apart: no false sharing
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const size_t lo = words * t / threads, hi = words * (t + 1) / threads;
      for (size_t i = lo; i < hi; ++i) buf[i] = i;
      ready.fetch_add(1);
      for (int p = 0; p < passes; ++p) {
        while (go_pass.load(std::memory_order_acquire) < p) std::this_thread::yield();
        sink[size_t(t) * 8] += sum_words(buf.get() + lo, hi - lo);
        done[p].fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();

  double best = 1e30;
  for (int p = 0; p < passes; ++p) {
    auto t0 = std::chrono::steady_clock::now();
    go_pass.store(p, std::memory_order_release);
    while (done[p].load(std::memory_order_acquire) < threads) std::this_thread::yield();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  for (auto& th : pool) th.join();
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  (void)keep;

  BandwidthResult r;
  r.bytes = words * sizeof(uint64_t);
  r.threads = threads;
  r.passes = passes;
  r.gb_per_s = double(r.bytes) / best / 1e9;
  return r;
}

}  // namespace hai
