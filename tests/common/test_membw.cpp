// The bandwidth measurement: its read kernels agree on what they read, and
// the measurement reports what it did and rejects bad parameters.
#include "engine/common/membw.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "engine/common/cpu.h"
#include "engine/common/error.h"

namespace hai {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

uint64_t reference_sum(const uint8_t* p, size_t bytes) {
  uint64_t s = 0;
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  return s;
}

TEST(MemBandwidth, ReadKernelsSumEveryWord) {
  std::mt19937_64 rng(3);
  for (size_t bytes : {size_t(256), size_t(512), size_t(256 * 37), size_t(1) << 20}) {
    std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(64, bytes)));
    for (size_t i = 0; i < bytes; i += 8) {
      const uint64_t v = rng();  // large words: the sums wrap around
      std::memcpy(buf.get() + i, &v, 8);
    }
    const uint64_t want = reference_sum(buf.get(), bytes);
    EXPECT_EQ(read_sum_portable(buf.get(), bytes), want) << bytes;
    if (cpu_level() >= CpuLevel::kAvx2) {
      EXPECT_EQ(read_sum_avx2(buf.get(), bytes), want) << bytes;
    }
    if (cpu_level() >= CpuLevel::kAvx512) {
      EXPECT_EQ(read_sum_avx512(buf.get(), bytes), want) << bytes;
    }
    // One changed word changes every kernel's sum.
    buf.get()[bytes - 8] ^= 1;
    EXPECT_NE(read_sum_portable(buf.get(), bytes), want);
    if (cpu_level() >= CpuLevel::kAvx512) {
      EXPECT_NE(read_sum_avx512(buf.get(), bytes), want);
    }
  }
}

TEST(MemBandwidth, ReportsTheMeasurement) {
  for (int threads : {1, 2}) {
    const BandwidthResult r = measure_read_bandwidth(threads, size_t(8) << 20, 2);
    EXPECT_GT(r.gb_per_s, 0.0);
    EXPECT_GE(r.bytes, size_t(8) << 20);
    EXPECT_EQ(r.threads, threads);
    EXPECT_EQ(r.passes, 2);
    EXPECT_TRUE(r.kernel == "avx512" || r.kernel == "avx2" || r.kernel == "portable") << r.kernel;
  }
}

TEST(MemBandwidth, RejectsBadParameters) {
  EXPECT_THROW(measure_read_bandwidth(0, size_t(1) << 20, 1), Error);
  EXPECT_THROW(measure_read_bandwidth(-3, size_t(1) << 20, 1), Error);
  EXPECT_THROW(measure_read_bandwidth(1, size_t(1) << 20, 0), Error);
}

}  // namespace
}  // namespace hai
