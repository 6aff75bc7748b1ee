// A persistent pool of worker threads for the engine's parallel loops.
//
// The threads are created once; each call to run() or parallel_for() splits
// the job into parts, wakes the workers, and returns when every part is
// done. The calling thread works too. Decoding calls this hundreds of times
// per token, so waking and joining are cheap: workers spin on an atomic job
// word for a short while before sleeping on it (futex via
// std::atomic::wait), and the shared counters live on separate cache lines.
//
// Parts are claimed from an atomic counter: each thread takes the next
// unstarted part as soon as it is free. A job split into more parts than
// threads therefore balances itself: a thread that is slower (woken late, its
// core busy, its memory stream slower) simply runs fewer parts, and the
// threads finish at most one part apart.
//
//   hai::ThreadPool pool(4);
//   pool.parallel_for(0, rows, [&](int64_t lo, int64_t hi) { ... rows lo..hi-1 ... });
//   pool.parallel_for(0, rows, 32, [&](int64_t lo, int64_t hi) { ... });  // 32 parts
//
// Part i of a range is always the i-th of n contiguous, nearly equal chunks
// (chunk()); which thread runs it is not fixed. A job that throws: the first
// exception is rethrown by the caller after every part has finished. Not
// reentrant: one job at a time, and a job must not call back into the same
// pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace hai {

class ThreadPool {
 public:
  // The most parts one job can have.
  static constexpr int kMaxParts = (1 << 20) - 1;

  // n_threads >= 1 threads in all, including the caller (so n_threads - 1
  // workers are started). 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, n_parts) once for every part ith = 0..n_parts-1, in
  // parallel, each on whichever pool thread claims it first. n_parts is
  // clamped to [1, kMaxParts].
  template <typename F>
  void run(int n_parts, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_raw(
        [](void* ctx, int ith, int nth) { (*static_cast<Fn*>(ctx))(ith, nth); },
        const_cast<void*>(static_cast<const void*>(&fn)), n_parts);
  }

  // run() with one part per thread: fn(ith, size()).
  template <typename F>
  void run(F&& fn) {
    run(n_threads_, std::forward<F>(fn));
  }

  // Splits [begin, end) into n_parts contiguous chunks (chunk(); at most
  // end - begin of them, so none is empty) and calls fn(lo, hi) for each,
  // in parallel. Worth more parts than threads when the chunks' costs may
  // differ or the threads' speeds may; each part costs an atomic claim.
  template <typename F>
  void parallel_for(int64_t begin, int64_t end, int64_t n_parts, F&& fn) {
    if (end <= begin) return;
    const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({n_parts, end - begin, kMaxParts})));
    run(parts, [&](int ith, int nth) {
      auto [lo, hi] = chunk(begin, end, ith, nth);
      fn(lo, hi);
    });
  }

  // parallel_for() in size() parts.
  template <typename F>
  void parallel_for(int64_t begin, int64_t end, F&& fn) {
    parallel_for(begin, end, n_threads_, std::forward<F>(fn));
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
  void run_raw(RawFn fn, void* ctx, int n_parts);
  void worker();
  void work_on(uint64_t job);  // claims and runs parts of the job until none is left

  int n_threads_ = 1;
  std::vector<std::thread> threads_;

  // Written by the caller before it publishes a job in job_; read by the
  // thread that claimed a part of it (which keeps the job from finishing, so
  // they cannot change under it).
  RawFn fn_ = nullptr;
  void* ctx_ = nullptr;

  // The job word: generation (24 bits) | part count (20) | next unclaimed
  // part (20). Everything a thread needs to claim a part travels in this one
  // word, so a thread still holding an older job's word can never claim a
  // part of a newer job with the older job's count: its compare-exchange
  // fails instead.
  alignas(64) std::atomic<uint64_t> job_{0};
  alignas(64) std::atomic<int> done_{0};  // parts finished in this job
  alignas(64) std::atomic<bool> stop_{false};

  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace hai
