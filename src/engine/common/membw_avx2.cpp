// The AVX2 read kernel of the bandwidth measurement (compiled with AVX2;
// called only when cpu_level() >= kAvx2).
#include <immintrin.h>

#include "engine/common/membw.h"

namespace hai {

// 256 bytes per step into 8 independent accumulators of 4 words.
uint64_t read_sum_avx2(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m256i acc[8];
  for (auto& a : acc) a = _mm256_setzero_si256();
  for (size_t i = 0; i < bytes; i += 256)
    for (int k = 0; k < 8; ++k)
      acc[k] = _mm256_add_epi64(acc[k], _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 32 * k)));
  for (int k = 1; k < 8; ++k) acc[0] = _mm256_add_epi64(acc[0], acc[k]);
  alignas(32) uint64_t w[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), acc[0]);
  return w[0] + w[1] + w[2] + w[3];
}

}  // namespace hai
