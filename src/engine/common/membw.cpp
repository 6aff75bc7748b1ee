#include "engine/common/membw.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "engine/common/cpu.h"
#include "engine/common/error.h"

namespace hai {

uint64_t read_sum_portable(const void* p, size_t bytes) {
  // Four independent accumulators, so the loop is bound by the loads.
  const uint64_t* w = static_cast<const uint64_t*>(p);
  const size_t n = bytes / sizeof(uint64_t);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    a += w[i];
    b += w[i + 1];
    c += w[i + 2];
    d += w[i + 3];
  }
  return a + b + c + d;
}

namespace {

constexpr size_t kAlign = size_t(1) << 21;  // 2 MiB: the buffer starts on a page, whatever its size
constexpr size_t kStep = 256;               // every kernel's unit

using ReadKernel = uint64_t (*)(const void*, size_t);

struct Kernel {
  const char* name;
  ReadKernel fn;
};

// The read kernels this CPU may run, widest first.
std::vector<Kernel> kernels() {
  std::vector<Kernel> k;
  const CpuLevel level = cpu_level();
  if (level >= CpuLevel::kAvx512) k.push_back({"avx512", read_sum_avx512});
  if (level >= CpuLevel::kAvx2) k.push_back({"avx2", read_sum_avx2});
  k.push_back({"portable", read_sum_portable});
  return k;
}

// The buffer: anonymous memory on a 2 MiB boundary, marked MADV_HUGEPAGE,
// so the kernel may back it with 2 MiB pages as it may the weights' file
// mapping (gguf::File::open asks for them too): the ceiling is measured
// with the pages decoding gets at best. Without huge pages, 4 KiB pages.
struct Buffer {
  explicit Buffer(size_t n) : bytes(n + kAlign) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error("bandwidth: cannot allocate " + std::to_string(n) + " bytes");
    base = static_cast<char*>(p);
    data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kAlign - 1) & ~(uintptr_t(kAlign) - 1));
#ifdef MADV_HUGEPAGE
    ::madvise(data, n, MADV_HUGEPAGE);  // a hint: EINVAL where THP is compiled out
#endif
  }
  ~Buffer() { ::munmap(base, bytes); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* get() const { return data; }

  size_t bytes;
  char* base = nullptr;
  char* data = nullptr;
};

}  // namespace

BandwidthResult measure_read_bandwidth(int threads, size_t bytes, int passes) {
  if (threads < 1) throw Error("bandwidth: threads must be at least 1");
  if (passes < 1) throw Error("bandwidth: passes must be at least 1");
  const std::vector<Kernel> ks = kernels();
  // Each thread's slice a whole number of kernel steps, the total a whole
  // number of huge pages.
  bytes = std::max(bytes, size_t(threads) * 64 * kStep);
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  Buffer buf(bytes);
  const size_t steps = bytes / kStep;

  // Each thread first writes its own slice (so its pages are local to it),
  // then all threads read their slices together: one round per pass and
  // kernel, started by `go` and counted in `done`.
  const int rounds = passes * static_cast<int>(ks.size());
  std::atomic<int> ready{0};
  std::atomic<int> go{-1};
  std::vector<std::atomic<int>> done(static_cast<size_t>(rounds));
  for (auto& d : done) d = 0;
  std::vector<uint64_t> sink(size_t(threads) * 8, 0);  // 64 bytes apart: no false sharing
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const size_t lo = steps * t / threads * kStep, hi = steps * (t + 1) / threads * kStep;
      for (size_t i = lo; i < hi; i += 8) {
        const uint64_t v = i;
        std::memcpy(buf.get() + i, &v, 8);
      }
      ready.fetch_add(1);
      for (int r = 0; r < rounds; ++r) {
        while (go.load(std::memory_order_acquire) < r) std::this_thread::yield();
        sink[size_t(t) * 8] += ks[r % ks.size()].fn(buf.get() + lo, hi - lo);
        done[r].fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();

  double best = 1e30;
  const char* best_kernel = ks[0].name;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    go.store(r, std::memory_order_release);
    while (done[r].load(std::memory_order_acquire) < threads) std::this_thread::yield();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) {
      best = s;
      best_kernel = ks[r % ks.size()].name;
    }
  }
  for (auto& th : pool) th.join();
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  (void)keep;

  BandwidthResult res;
  res.bytes = bytes;
  res.threads = threads;
  res.passes = passes;
  res.kernel = best_kernel;
  res.gb_per_s = double(bytes) / best / 1e9;
  return res;
}

}  // namespace hai
