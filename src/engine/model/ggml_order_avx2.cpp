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

namespace hai::model::ggml_order {

namespace {

// F16C's conversion: exact, as fp16_to_fp32, without the call.
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
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

struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

}  // namespace

// The 8 Q4_K sub-block scales (bytes 0-7) and mins (bytes 8-15) of one
// super-block, 6 bits each in 12 bytes: the same values as q4k_scales, a
// word at a time.
inline void q4k_scales_mins(const uint8_t* sc, uint8_t out[16]) {
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, sc, 12);
  u[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);  // mins 4-7
  const uint32_t mins_0_3 = u[1] & kLow6;
  u[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);  // scales 4-7
  u[2] = mins_0_3;
  u[0] &= kLow6;  // scales 0-3
  std::memcpy(out, u, 16);
}

// Per 32 weights: unsigned levels x signed activations, 2 bytes per int16
// (maddubs; no saturation: |15 * 128 * 2| < 2^15), then times the sub-block
// scale and 2 int16 per int32 (madd): int32 lane l holds bytes 4l..4l+3.
// The mins: m < 4 takes min[2m] * (bsums[4m] + bsums[4m+1]) + min[2m+1] *
// (bsums[4m+2] + bsums[4m+3]), one madd of the 8 mins with the 8 pair sums
// of bsums (each fits in int16: |2 * 16 * 128| < 2^15), and is fused-added
// into its own float lane, as in the portable kernel.
float dot_q4_k_avx2(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const BlockQ8K* y = static_cast<const BlockQ8K*>(a);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m128i ones16 = _mm_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t i = 0; i < n / 256; ++i, x += 144) {
    const float dw = load_f16(x), dminw = load_f16(x + 2);
    alignas(16) uint8_t sm[16];
    q4k_scales_mins(x + 4, sm);
    const uint8_t* qs = x + 16;
    const int8_t* q8 = y[i].qs;
    __m256i lanes = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load32(qs + 32 * j);
      const __m256i lo = _mm256_and_si256(q, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i p_lo = _mm256_maddubs_epi16(lo, load32(q8 + 64 * j));
      const __m256i p_hi = _mm256_maddubs_epi16(hi, load32(q8 + 64 * j + 32));
      lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p_lo, _mm256_set1_epi16(sm[2 * j])));
      lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sm[2 * j + 1])));
    }
    const float d = y[i].d * dw;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8)));
    const __m128i bsums = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[i].bsums));  // bsums 0..7
    const __m128i bsums_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[i].bsums + 8));
    // Pair sums of bsums: k < 8 holds bsums[2k] + bsums[2k+1].
    const __m128i pairs = _mm_packs_epi32(_mm_madd_epi16(bsums, ones16), _mm_madd_epi16(bsums_hi, ones16));
    const __m128i prod = _mm_madd_epi16(mins, pairs);
    const float dmin = -y[i].d * dminw;
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
  }
  alignas(16) float m[4];
  _mm_store_ps(m, acc_m);
  const float m0 = m[0] + m[2], m1 = m[1] + m[3];
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
