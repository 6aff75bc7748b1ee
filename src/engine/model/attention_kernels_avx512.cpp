// AVX-512 attention products (compiled with AVX-512 flags; called only
// after ggml_order::have_avx512()). Each product keeps dot_f16_f32's order:
// one 16-lane accumulator fed with fused multiply-adds, 16 values at a time,
// then reduce16. Sixteen products run side by side, and their 16
// accumulators are reduced together by the same tree of additions.
#pragma GCC diagnostic ignored "-Wuninitialized"  // (GCC 12 false alarms in the intrinsics headers)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "engine/model/attention_kernels.h"

namespace hai::model::attn {

namespace {

// Lane k of the result = reduce16(a[k]) (ggml_order::reduce16: t[i] = a[i] +
// a[i + 8], u[i] = t[i] + t[i + 4], v0 = u[0] + u[2], v1 = u[1] + u[3],
// v0 + v1), for 16 vectors at once: every stage adds the same pairs of lanes
// as the scalar tree (addition is commutative bit for bit), after shuffles
// that bring the partners of 2, 4, 8 and 16 vectors into one vector.
inline __m512 reduce16x16(const __m512 a[16]) {
  __m512 s1[8], s2[4], s3[2];
  // Stage 1: vector p holds t[0..7] of a[2p] (lanes 0..7) and of a[2p+1] (8..15).
  for (int p = 0; p < 8; ++p) {
    const __m512 lo = _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44);  // 128-bit chunks A0 A1 B0 B1
    const __m512 hi = _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xEE);  // A2 A3 B2 B3
    s1[p] = _mm512_add_ps(hi, lo);
  }
  // Stage 2: chunk c of vector q holds u[0..3] of a[4q + c].
  for (int q = 0; q < 4; ++q) {
    const __m512 lo = _mm512_shuffle_f32x4(s1[2 * q], s1[2 * q + 1], 0x88);  // chunks V0 V2 W0 W2
    const __m512 hi = _mm512_shuffle_f32x4(s1[2 * q], s1[2 * q + 1], 0xDD);  // V1 V3 W1 W3
    s2[q] = _mm512_add_ps(hi, lo);
  }
  // Stage 3: chunk c of vector m holds v0, v1 of a[8m + c] then of a[8m + 4 + c].
  for (int m = 0; m < 2; ++m) {
    const __m512d p = _mm512_castps_pd(s2[2 * m]), q = _mm512_castps_pd(s2[2 * m + 1]);
    const __m512 lo = _mm512_castpd_ps(_mm512_unpacklo_pd(p, q));  // u0 u1 of each
    const __m512 hi = _mm512_castpd_ps(_mm512_unpackhi_pd(p, q));  // u2 u3 of each
    s3[m] = _mm512_add_ps(lo, hi);
  }
  // Stage 4: lane 4c + i holds the sum of a[4i + c].
  const __m512 even = _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 odd = _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1));
  const __m512 s4 = _mm512_add_ps(even, odd);
  // Lane k <- lane 4 (k % 4) + k / 4.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, s4);
}

// Lane k = dot_f16_f32(len, rows[k], x) for k < 16.
inline __m512 dots16(int64_t len, const uint16_t* const rows[16], const float* x) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_ps();
  for (int64_t i = 0; i < len; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) {
      const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[k] + i)));
      acc[k] = _mm512_fmadd_ps(w, xv, acc[k]);
    }
  }
  return reduce16x16(acc);
}

// out[j] = dot_f16_f32(len, base + j * stride, x) for j < n, 16 at a time
// (past the end the last row is repeated and its results dropped).
void many_dots(int64_t len, const float* x, const uint16_t* base, size_t stride, int64_t n, float* out) {
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int64_t m = std::min<int64_t>(16, n - j0);
    const uint16_t* rows[16];
    for (int k = 0; k < 16; ++k) rows[k] = base + static_cast<size_t>(j0 + std::min<int64_t>(k, m - 1)) * stride;
    const __m512 r = dots16(len, rows, x);
    _mm512_mask_storeu_ps(out + j0, static_cast<__mmask16>((1u << m) - 1u), r);
  }
}

}  // namespace

void scores_f16_avx512(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out) {
  many_dots(hd, q, k, k_stride, n, out);
}

void values_f16_avx512(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out) {
  many_dots(n_pad, p, v, v_stride, n_out, out);
}

void round_f16_avx512(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_storeu_ps(x + i, m, _mm512_cvtph_ps(h));
  }
}

}  // namespace hai::model::attn
