// AVX2 versions of the quantized ggml-order kernels (compiled with AVX2, FMA
// and F16C; called only after ggml_order::have_avx2()).
//
// Only the integer parts are vectorised differently from the portable code:
// integer sums are exact, so any grouping gives the same lane totals. The
// floating-point operations (the int -> float conversions, the fused
// multiply-adds per lane and block, the final reductions) are the portable
// ones, in the same order, so the results are bit-identical.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model::ggml_order {

namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Sum of the eight int32 lanes (exact).
inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// hsum_float_8 on a stored accumulator: high half + low half, then pairs.
inline float hsum8(__m256 acc) {
  float a[8];
  _mm256_storeu_ps(a, acc);
  float r[4];
  for (int l = 0; l < 4; ++l) r[l] = a[l + 4] + a[l];
  const float s0 = r[0] + r[2], s1 = r[1] + r[3];
  return s0 + s1;
}

// The 8 Q4_K sub-block scales and mins of one super-block (6 bits each).
inline void q4k_scales(const uint8_t* sc, int scale[8], int min[8]) {
  for (int j = 0; j < 4; ++j) {
    scale[j] = sc[j] & 63;
    min[j] = sc[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    scale[j] = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
    min[j] = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
  }
}

struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

}  // namespace

// Per 32 weights: unsigned levels x signed activations, 2 bytes per int16
// (maddubs; no saturation: |15 * 128 * 2| < 2^15), then times the sub-block
// scale and 2 int16 per int32 (madd): int32 lane l holds bytes 4l..4l+3.
float dot_q4_k_avx2(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const BlockQ8K* y = static_cast<const BlockQ8K*>(a);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float acc_m[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < n / 256; ++i, x += 144) {
    const float dw = load_f16(x), dminw = load_f16(x + 2);
    int scale[8], min[8];
    q4k_scales(x + 4, scale, min);
    const uint8_t* qs = x + 16;
    const int8_t* q8 = y[i].qs;
    __m256i lanes = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load32(qs + 32 * j);
      const __m256i lo = _mm256_and_si256(q, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i p_lo = _mm256_maddubs_epi16(lo, load32(q8 + 64 * j));
      const __m256i p_hi = _mm256_maddubs_epi16(hi, load32(q8 + 64 * j + 32));
      lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p_lo, _mm256_set1_epi16(static_cast<int16_t>(scale[2 * j]))));
      lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p_hi, _mm256_set1_epi16(static_cast<int16_t>(scale[2 * j + 1]))));
    }
    const float d = y[i].d * dw;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    const float dmin = -y[i].d * dminw;
    for (int m = 0; m < 4; ++m) {
      const int bs0 = y[i].bsums[4 * m] + y[i].bsums[4 * m + 1];
      const int bs1 = y[i].bsums[4 * m + 2] + y[i].bsums[4 * m + 3];
      const int prod = min[2 * m] * bs0 + min[2 * m + 1] * bs1;
      acc_m[m] = std::fma(dmin, static_cast<float>(prod), acc_m[m]);
    }
  }
  const float m0 = acc_m[0] + acc_m[2], m1 = acc_m[1] + acc_m[3];
  return hsum8(acc) + (m0 + m1);
}

// Q6_K levels are 0..63 stored as 4 low + 2 high bits, weight = level - 32.
// Per 32 weights: maddubs(level, y) - maddubs(32, y) in int16 (both fit:
// |63 * 128 * 2| < 2^15), then madd with the two 16-weight scales.
float dot_q6_k_avx2(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const BlockQ8K* y = static_cast<const BlockQ8K*>(a);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i two_bits = _mm256_set1_epi8(0x03);
  const __m256i k32 = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 256; ++i, x += 210) {
    const float dw = load_f16(x + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    const int8_t* q8 = y[i].qs;
    __m256i lanes = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const uint8_t* L = x + 64 * h;
      const uint8_t* H = x + 128 + 32 * h;
      const int8_t* S = sc + 8 * h;
      const __m256i l0 = load32(L), l1 = load32(L + 32), hb = load32(H);
      __m256i level[4];
      level[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(hb, two_bits), 4));
      level[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two_bits), 4));
      level[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two_bits), 4));
      level[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two_bits), 4));
      for (int c = 0; c < 4; ++c) {
        const __m256i yv = load32(q8 + 128 * h + 32 * c);
        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(level[c], yv), _mm256_maddubs_epi16(k32, yv));
        const __m256i s = _mm256_set_m128i(_mm_set1_epi16(S[2 * c + 1]), _mm_set1_epi16(S[2 * c]));
        lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, s));
      }
    }
    const float d = y[i].d * dw;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
  }
  return hsum8(acc);
}

// Q4_0: the whole 32-weight integer dot per block (levels - 8 times the
// activations), then one scalar fused multiply-add.
float dot_q4_0_avx2(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const uint8_t* y = static_cast<const uint8_t*>(a);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256i k8 = _mm256_set1_epi8(8);
  const __m256i ones = _mm256_set1_epi16(1);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b, x += 18, y += 34) {
    const float d = load_f16(x) * load_f16(y);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 2));
    const __m256i levels =
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low4), _mm_and_si128(q, low4));
    const __m256i qy = load32(y + 2);
    // (level - 8) * y = level * y - 8 * y; each int16 fits (|15 * 128 * 2| < 2^15).
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(levels, qy), _mm256_maddubs_epi16(k8, qy));
    const int32_t s = hsum_i32(_mm256_madd_epi16(p, ones));
    acc = std::fma(static_cast<float>(s), d, acc);
  }
  return acc;
}

}  // namespace hai::model::ggml_order
