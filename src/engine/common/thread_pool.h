// A persistent pool of worker threads for the engine's parallel loops.
//
// The threads are created once; each call to run() or parallel_for() splits
// the job into size() parts, wakes the workers, and returns when every part
// is done. The calling thread works too. Decoding calls this hundreds of
// times per token, so waking and joining are cheap: workers spin on an atomic
// job word for a short while before sleeping on it (futex via
// std::atomic::wait), and the shared counters live on separate cache lines.
//
// Parts are claimed from an atomic counter: each thread takes the next
// unstarted part, so when a worker is slow to wake (a busy machine) the
// others, the caller included, do its part instead of waiting for it.
//
//   hai::ThreadPool pool(4);
//   pool.parallel_for(0, rows, [&](int64_t lo, int64_t hi) { ... rows lo..hi-1 ... });
//
// Chunking is static: part i is always the i-th of n contiguous, nearly
// equal ranges. A job that throws: the first exception is rethrown by the
// caller after every part has finished. Not reentrant: one job at a time,
// and a job must not call back into the same pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace hai {

class ThreadPool {
 public:
  // n_threads >= 1 threads in all, including the caller (so n_threads - 1
  // workers are started). 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, nth) once for every part ith = 0..nth-1 (nth = size()),
  // in parallel, each on whichever pool thread claims it.
  template <typename F>
  void run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_raw(
        [](void* ctx, int ith, int nth) { (*static_cast<Fn*>(ctx))(ith, nth); }, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [begin, end) into size() contiguous chunks and calls fn(lo, hi)
  // for each non-empty one, in parallel.
  template <typename F>
  void parallel_for(int64_t begin, int64_t end, F&& fn) {
    if (end <= begin) return;
    run([&](int ith, int nth) {
      auto [lo, hi] = chunk(begin, end, ith, nth);
      if (lo < hi) fn(lo, hi);
    });
  }

  // The ith of nth nearly equal contiguous chunks of [begin, end).
  static std::pair<int64_t, int64_t> chunk(int64_t begin, int64_t end, int ith, int nth) {
    const int64_t n = end - begin;
    const int64_t base = n / nth, extra = n % nth;
    const int64_t lo = begin + ith * base + (ith < extra ? ith : extra);
    return {lo, lo + base + (ith < extra ? 1 : 0)};
  }

 private:
  using RawFn = void (*)(void* ctx, int ith, int nth);
  void run_raw(RawFn fn, void* ctx);
  void worker();
  void work_on(uint64_t job);  // claims and runs parts of the job until none is left

  int n_threads_ = 1;
  std::vector<std::thread> threads_;

  // Written by the caller before it publishes a job in job_; read by the
  // thread that claimed a part of it (which keeps the job from finishing, so
  // they cannot change under it).
  RawFn fn_ = nullptr;
  void* ctx_ = nullptr;

  // The job word: generation (high 32 bits) | next unclaimed part (low 32).
  alignas(64) std::atomic<uint64_t> job_{0};
  alignas(64) std::atomic<int> done_{0};  // parts finished in this job
  alignas(64) std::atomic<bool> stop_{false};

  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace hai
