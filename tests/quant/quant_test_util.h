// Deterministic test data for the quant tests. Built from integers with exact
// float operations only (no libm, no std:: distributions), so the same bytes
// come out on every platform and golden hashes stay valid.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace hai::test {

class Lcg {
 public:
  explicit Lcg(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  uint32_t next() {
    s_ = s_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s_ >> 32);
  }
  // Uniform integer in [-m, m].
  int sym(int m) { return static_cast<int>(next() % static_cast<uint32_t>(2 * m + 1)) - m; }

 private:
  uint64_t s_;
};

// n values, roughly bell-shaped (sum of four uniforms) times 2^scale_log2,
// with every 37th value an outlier (x8); seeds divisible by 3 get a mean
// offset and seeds divisible by 4 start with 40 zeros (an all-zero sub-block).
inline std::vector<float> test_row(uint64_t seed, int64_t n, int scale_log2 = 0) {
  Lcg rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  const float scale = scale_log2 >= 0 ? static_cast<float>(1u << scale_log2) : 1.0f / static_cast<float>(1u << -scale_log2);
  for (int64_t i = 0; i < n; ++i) {
    const int sum = rng.sym(10000) + rng.sym(10000) + rng.sym(10000) + rng.sym(10000);
    float v = static_cast<float>(sum) / 20000.0f;
    if (i % 37 == 5) v *= 8;
    if (seed % 3 == 0) v += 0.25f;
    x[static_cast<size_t>(i)] = v * scale;
  }
  if (seed % 4 == 0)
    for (int64_t i = 0; i < 40 && i < n; ++i) x[static_cast<size_t>(i)] = 0;
  return x;
}

// Importance weights in (0, 4].
inline std::vector<float> test_importance(uint64_t seed, int64_t n) {
  Lcg rng(seed + 1000);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& v : w) v = static_cast<float>(1 + rng.next() % 1000) / 250.0f;
  return w;
}

inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace hai::test
