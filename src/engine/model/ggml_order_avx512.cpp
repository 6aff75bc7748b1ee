// AVX-512 versions of the ggml-order kernels (compiled with AVX-512 flags;
// called only after ggml_order::have_avx512()). Same lanes, same fused
// multiply-adds, same reductions as the portable versions in ggml_order.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
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

// ggml_v_expf, 16 lanes: the operations of v_expf (ggml_order.cpp) with
// scalef for the ldexp (both exact scalings of j, rounded once).
void v_expf_n_avx512(const float* x, float* out, int64_t n) {
  const __m512 shift = _mm512_set1_ps(0x1.8p23f);
  int64_t i = 0;
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 z = _mm512_fmadd_ps(xv, _mm512_set1_ps(0x1.715476p+0f), shift);
    const __m512 nv = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(nv, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(nv, _mm512_set1_ps(0x1.62e4p-1f), xv));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    __m512 res = _mm512_scalef_ps(j, nv);
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(nv), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    if (big) {
      const __mmask16 neg = _mm512_cmp_ps_mask(nv, _mm512_setzero_ps(), _CMP_LE_OQ);
      const __m512 alt = _mm512_mask_blend_ps(neg, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
      res = _mm512_mask_blend_ps(big, res, alt);
    }
    _mm512_mask_storeu_ps(out + i, m, res);
  }
}

void round_f16_n_avx512(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(h));
  }
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
