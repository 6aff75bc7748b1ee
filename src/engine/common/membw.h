// The machine's memory read bandwidth, measured STREAM-style: threads sum a
// buffer much larger than the last-level cache, and the best of several
// passes counts. It is the ceiling for decoding, which streams every weight
// once per token.
#pragma once

#include <cstddef>

namespace hai {

struct BandwidthResult {
  double gb_per_s = 0;   // 1e9 bytes per second
  size_t bytes = 0;      // buffer size used
  int threads = 0;
  int passes = 0;
};

// Reads a buffer of `bytes` (default 1 GiB) with `threads` threads, `passes`
// times, and returns the best pass.
BandwidthResult measure_read_bandwidth(int threads, size_t bytes = size_t(1) << 30, int passes = 5);

}  // namespace hai
