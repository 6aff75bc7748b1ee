// The AVX-512 read kernel of the bandwidth measurement (compiled with
// AVX-512; called only when cpu_level() >= kAvx512).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "engine/common/membw.h"

namespace hai {

// 256 bytes per step (four cache lines) into 4 independent accumulators of
// 8 words.
uint64_t read_sum_avx512(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m512i acc[4];
  for (auto& a : acc) a = _mm512_setzero_si512();
  for (size_t i = 0; i < bytes; i += 256)
    for (int k = 0; k < 4; ++k) acc[k] = _mm512_add_epi64(acc[k], _mm512_load_si512(c + i + 64 * k));
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
  // The lanes summed as unsigned words (wrapping, as the portable loop):
  // _mm512_reduce_add_epi64 adds them as signed, which may overflow.
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, s);
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  return sum;
}

}  // namespace hai
