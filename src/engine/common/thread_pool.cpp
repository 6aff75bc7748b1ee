#include "engine/common/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAI_PAUSE() _mm_pause()
#else
#define HAI_PAUSE() ((void)0)
#endif

namespace hai {
namespace {

// How long a thread spins before it sleeps: long enough to cover the gap
// between two matrix products of one token (tens of microseconds), short
// enough not to burn a core when the pool is idle.
constexpr int kSpinIterations = 4096;

// The job word's fields (see thread_pool.h).
constexpr int kPartBits = 20;
constexpr uint64_t kPartMask = (uint64_t(1) << kPartBits) - 1;
constexpr uint64_t kGenerationMask = (uint64_t(1) << (64 - 2 * kPartBits)) - 1;
static_assert(ThreadPool::kMaxParts == static_cast<int>(kPartMask));

constexpr uint64_t generation_of(uint64_t job) { return job >> (2 * kPartBits); }
constexpr uint32_t n_parts_of(uint64_t job) { return static_cast<uint32_t>((job >> kPartBits) & kPartMask); }
constexpr uint32_t next_part_of(uint64_t job) { return static_cast<uint32_t>(job & kPartMask); }

// The word of the job after `old`: the next generation (wrapping around: a
// thread compares generations only for equality), n_parts parts, none
// claimed yet.
constexpr uint64_t next_job(uint64_t old, uint32_t n_parts) {
  const uint64_t generation = (generation_of(old) + 1) & kGenerationMask;
  return (generation << (2 * kPartBits)) | (uint64_t(n_parts) << kPartBits);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  n_threads_ = n_threads;
  threads_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  // A new generation with no parts wakes every worker, which then sees stop_.
  job_.store(next_job(job_.load(std::memory_order_relaxed), 0), std::memory_order_release);
  job_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::work_on(uint64_t job) {
  // Every field used here comes from the one word `job`: the part is claimed
  // by a compare-exchange of exactly that word, so a stale word (an older
  // job's) fails and is reloaded instead of claiming with the wrong count.
  while (next_part_of(job) < n_parts_of(job)) {
    if (!job_.compare_exchange_weak(job, job + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const int part = static_cast<int>(next_part_of(job));
    const int n_parts = static_cast<int>(n_parts_of(job));
    try {
      fn_(ctx_, part, n_parts);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_parts) done_.notify_one();
    job = job_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker() {
  // No generation has been seen: the word as this thread finds it (the
  // construction's, with no parts; a job; the destructor's wake-up) is news,
  // even if it was published before this thread got to run. (Not 0: after
  // 2^24 jobs the generations wrap around to 0.)
  uint64_t seen_generation = kGenerationMask + 1;
  for (;;) {
    uint64_t job = job_.load(std::memory_order_acquire);
    for (int spin = 0; generation_of(job) == seen_generation && spin < kSpinIterations; ++spin) {
      HAI_PAUSE();
      job = job_.load(std::memory_order_acquire);
    }
    while (generation_of(job) == seen_generation) {
      job_.wait(job, std::memory_order_acquire);
      job = job_.load(std::memory_order_acquire);
    }
    seen_generation = generation_of(job);
    if (stop_.load(std::memory_order_acquire)) return;
    work_on(job);
  }
}

void ThreadPool::run_raw(RawFn fn, void* ctx, int n_parts) {
  n_parts = std::clamp(n_parts, 1, kMaxParts);
  fn_ = fn;
  ctx_ = ctx;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  const uint64_t job = next_job(job_.load(std::memory_order_relaxed), static_cast<uint32_t>(n_parts));
  job_.store(job, std::memory_order_release);
  if (n_threads_ > 1) job_.notify_all();
  work_on(job);
  int done = done_.load(std::memory_order_acquire);
  for (int spin = 0; done != n_parts && spin < kSpinIterations; ++spin) {
    HAI_PAUSE();
    done = done_.load(std::memory_order_acquire);
  }
  while (done != n_parts) {
    done_.wait(done, std::memory_order_acquire);
    done = done_.load(std::memory_order_acquire);
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace hai
