// The machine's memory read bandwidth, measured STREAM-style: threads read
// a buffer much larger than the last-level cache with wide SIMD loads into
// several independent accumulators (so that the loop is bound by the
// memory, not by the add latency or the instruction rate), and the best of
// several passes counts. It is the ceiling for decoding, which streams every
// weight once per token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hai {

struct BandwidthResult {
  double gb_per_s = 0;  // 1e9 bytes per second
  size_t bytes = 0;     // buffer size used
  int threads = 0;
  int passes = 0;
  std::string kernel;  // the read kernel of the best pass: "avx512", "avx2" or "portable"
};

// Reads a buffer of `bytes` (default 1 GiB; transparent huge pages asked
// for, as for the weights' file mapping) with `threads`
// threads, `passes` times with each read kernel this CPU has (cpu_level(),
// so HAI_CPU can force the portable one), and returns the best pass.
// Throws hai::Error for threads or passes < 1.
BandwidthResult measure_read_bandwidth(int threads, size_t bytes = size_t(1) << 30, int passes = 5);

// The read kernels: the sum, modulo 2^64, of the `bytes / 8` 64-bit words
// at p (p 64-byte aligned, bytes a multiple of 256). All give the same sum;
// the SIMD ones may be called only when cpu_level() is at least theirs.
uint64_t read_sum_portable(const void* p, size_t bytes);
uint64_t read_sum_avx2(const void* p, size_t bytes);
uint64_t read_sum_avx512(const void* p, size_t bytes);

}  // namespace hai
