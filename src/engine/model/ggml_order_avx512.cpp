// AVX-512 versions of the ggml-order kernels (compiled with AVX-512 flags;
// called only after ggml_order::have_avx512()). Same lanes, same fused
// multiply-adds, same reductions as the portable versions in ggml_order.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "engine/model/ggml_order.h"

namespace hai::model::ggml_order {

float dot_f16_f32_avx512(int64_t k, const uint16_t* w, const float* x) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {
    const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    acc = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + i), acc);
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, acc);
  return reduce16(lanes);
}

float dot_q8_0_avx512(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const uint8_t* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b, x += 34, y += 34) {
    uint16_t dx, dy;
    std::memcpy(&dx, x, 2);
    std::memcpy(&dy, y, 2);
    const float d = _cvtsh_ss(dx) * _cvtsh_ss(dy);
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 2));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + 2));
    // |qx| * sign(qy, qx): unsigned x signed bytes, 4 per int32 lane.
    const __m256i ax = _mm256_sign_epi8(qx, qx);
    const __m256i sy = _mm256_sign_epi8(qy, qx);
    const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot), acc);
  }
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

}  // namespace hai::model::ggml_order
