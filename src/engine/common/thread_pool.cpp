#include "engine/common/thread_pool.h"

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

constexpr uint64_t generation_of(uint64_t job) { return job >> 32; }
constexpr uint32_t next_part_of(uint64_t job) { return static_cast<uint32_t>(job); }

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
  const uint64_t old = job_.load(std::memory_order_relaxed);
  job_.store(((generation_of(old) + 1) << 32) | static_cast<uint32_t>(n_threads_), std::memory_order_release);
  job_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::work_on(uint64_t job) {
  const uint32_t nth = static_cast<uint32_t>(n_threads_);
  while (next_part_of(job) < nth) {
    // Claim part next_part_of(job) of this generation; on failure `job` is
    // reloaded (another thread claimed it, or a new job began).
    if (!job_.compare_exchange_weak(job, job + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const int part = static_cast<int>(next_part_of(job));
    try {
      fn_(ctx_, part, n_threads_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_threads_) done_.notify_one();
    job = job_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker() {
  // Generation 0 is the state at construction: any later one (a job, or the
  // destructor's wake-up) is news, even if it was published before this
  // thread got to run.
  uint64_t seen_generation = 0;
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

void ThreadPool::run_raw(RawFn fn, void* ctx) {
  fn_ = fn;
  ctx_ = ctx;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  const uint64_t old = job_.load(std::memory_order_relaxed);
  const uint64_t job = (generation_of(old) + 1) << 32;  // part 0 next
  job_.store(job, std::memory_order_release);
  if (n_threads_ > 1) job_.notify_all();
  work_on(job);
  int done = done_.load(std::memory_order_acquire);
  for (int spin = 0; done != n_threads_ && spin < kSpinIterations; ++spin) {
    HAI_PAUSE();
    done = done_.load(std::memory_order_acquire);
  }
  while (done != n_threads_) {
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
