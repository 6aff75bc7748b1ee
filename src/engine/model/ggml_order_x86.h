// Small x86 helpers shared by the SIMD kernel files (ggml_order_gemm_avx2.cpp,
// ggml_order_gemm_avx512.cpp, ggml_order_gemv_avx512.cpp). Include it only
// from files compiled with AVX2 (+F16C) flags or more. Everything here has
// internal linkage (an unnamed namespace), so each kernel file gets its own
// copy compiled for its own instruction set: no inline function is shared
// across files built with different flags (which would break the
// one-definition rule and could run AVX-512 code on an AVX2 machine).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace hai::model::ggml_order {
namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

inline float load_f16(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// hsum_float_8: r = high half + low half, then (r0 + r2) + (r1 + r3).
inline float hsum8(__m256 acc) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

}  // namespace
}  // namespace hai::model::ggml_order
