// Portable kernels: the dot products of every weight type with its activation
// type, and the activation conversions. These define the numbers; the SIMD
// files must reproduce them (exactly for the K-quants, up to the order of the
// float sums for the others).
//
// Each dot product works block by block: an integer dot product of the
// levels, then scaled by the two block scales in float, exactly as ggml's
// formula for the pair of types. The SIMD files repeat the per-block float
// operations of the K-quants exactly, so neither side may fuse them into FMAs.
// No FMA contraction here: a fused a * b + c rounds differently (see above).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>

#include "engine/common/error.h"
#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"

namespace hai {
void quantize_q8_K_row(const float* x, void* dst, int64_t n);  // quantize.cpp
}

namespace hai::kernels {
namespace {

using namespace qblock;

// ---------------------------------------------------------------- activations

// Q8_0 as ggml's x86 SIMD quantize_row_q8_0 makes it: d = amax/127 stored as
// fp16, levels nearest-even(x * (127/amax)).
void from_float_q8_0(const float* x, void* dst, int64_t n) {
  Q8_0* y = static_cast<Q8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    y[i].d = fp32_to_fp16(d);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
  }
}

// Q8_1 likewise, plus s = d * sum(levels) with the unrounded d.
void from_float_q8_1(const float* x, void* dst, int64_t n) {
  Q8_1* y = static_cast<Q8_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    y[i].d = fp32_to_fp16(d);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      const int q = static_cast<int>(std::nearbyint(x[j] * id));
      y[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

void from_float_q8_K(const float* x, void* dst, int64_t n) { quantize_q8_K_row(x, dst, n); }

void from_float_f16(const float* x, void* dst, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
}

void from_float_bf16(const float* x, void* dst, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(x[i]);
}

void from_float_f32(const float* x, void* dst, int64_t n) { std::memcpy(dst, x, static_cast<size_t>(n) * 4); }

// ---------------------------------------------------------------- float types

float dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float dot_f16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]);
  return sum;
}

float dot_bf16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
  return sum;
}

// ---------------------------------------------------------------- legacy types

// sum over blocks of sumi * d_w * d_a.
float dot_q4_0(int64_t n, const void* w, const void* a) {
  const Q4_0* x = static_cast<const Q4_0*>(w);
  const Q8_0* y = static_cast<const Q8_0*>(a);
  float sumf = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += ((x[ib].qs[j] & 0x0F) - 8) * y[ib].qs[j];
      sumi += ((x[ib].qs[j] >> 4) - 8) * y[ib].qs[j + kQK / 2];
    }
    sumf += sumi * fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d);
  }
  return sumf;
}

// sum over blocks of (d_w * d_a) * sumi + m_w * s_a.
float dot_q4_1(int64_t n, const void* w, const void* a) {
  const Q4_1* x = static_cast<const Q4_1*>(w);
  const Q8_1* y = static_cast<const Q8_1*>(a);
  float sumf = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += (x[ib].qs[j] & 0x0F) * y[ib].qs[j];
      sumi += (x[ib].qs[j] >> 4) * y[ib].qs[j + kQK / 2];
    }
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi + fp16_to_fp32(x[ib].m) * fp16_to_fp32(y[ib].s);
  }
  return sumf;
}

float dot_q5_0(int64_t n, const void* w, const void* a) {
  const Q5_0* x = static_cast<const Q5_0*>(w);
  const Q8_0* y = static_cast<const Q8_0*>(a);
  float sumf = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    uint32_t qh;
    std::memcpy(&qh, x[ib].qh, 4);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      sumi += (((x[ib].qs[j] & 0x0F) | hi0) - 16) * y[ib].qs[j];
      sumi += (((x[ib].qs[j] >> 4) | hi1) - 16) * y[ib].qs[j + kQK / 2];
    }
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi;
  }
  return sumf;
}

float dot_q5_1(int64_t n, const void* w, const void* a) {
  const Q5_1* x = static_cast<const Q5_1*>(w);
  const Q8_1* y = static_cast<const Q8_1*>(a);
  float sumf = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    uint32_t qh;
    std::memcpy(&qh, x[ib].qh, 4);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      sumi += ((x[ib].qs[j] & 0x0F) | hi0) * y[ib].qs[j];
      sumi += ((x[ib].qs[j] >> 4) | hi1) * y[ib].qs[j + kQK / 2];
    }
    sumf += (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d)) * sumi + fp16_to_fp32(x[ib].m) * fp16_to_fp32(y[ib].s);
  }
  return sumf;
}

float dot_q8_0(int64_t n, const void* w, const void* a) {
  const Q8_0* x = static_cast<const Q8_0*>(w);
  const Q8_0* y = static_cast<const Q8_0*>(a);
  float sumf = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += x[ib].qs[j] * y[ib].qs[j];
    sumf += sumi * (fp16_to_fp32(x[ib].d) * fp16_to_fp32(y[ib].d));
  }
  return sumf;
}

// ---------------------------------------------------------------- K-quants
//
// Per super-block: isum = sum_j scale_j * (levels_j . q8_j) and, for the types
// with mins, summs = sum_j min_j * (sum of q8 over sub-block j, from bsums);
// then sumf += (d_w * d_a) * isum - (dmin_w * d_a) * summs.

float dot_q2_K(int64_t n, const void* w, const void* a) {
  const Q2_K* x = static_cast<const Q2_K*>(w);
  const Q8_K* y = static_cast<const Q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* q2 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    const uint8_t* sc = x[i].scales;
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * (sc[j] >> 4);
    int isum = 0, is = 0;
    for (int group = 0; group < kQK_K / 128; ++group, q2 += 32) {
      for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
        int s0 = 0, s1 = 0;
        for (int l = 0; l < 16; ++l) s0 += q8[l] * ((q2[l] >> shift) & 3);
        for (int l = 16; l < 32; ++l) s1 += q8[l] * ((q2[l] >> shift) & 3);
        isum += (sc[is] & 0xF) * s0 + (sc[is + 1] & 0xF) * s1;
        is += 2;
      }
    }
    const float dall = y[i].d * fp16_to_fp32(x[i].d);
    const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
    sumf += dall * isum - dmin * summs;
  }
  return sumf;
}

float dot_q3_K(int64_t n, const void* w, const void* a) {
  const Q3_K* x = static_cast<const Q3_K*>(w);
  const Q8_K* y = static_cast<const Q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int8_t scales[16];
    unpack_q3_k_scales(x[i].scales, scales);
    const uint8_t* q3 = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    const int8_t* q8 = y[i].qs;
    uint8_t m = 1;
    int isum = 0, is = 0;
    for (int group = 0; group < kQK_K / 128; ++group, q3 += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1, q8 += 32) {
        int s0 = 0, s1 = 0;
        for (int l = 0; l < 16; ++l) s0 += q8[l] * (((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        for (int l = 16; l < 32; ++l) s1 += q8[l] * (((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        isum += scales[is] * s0 + scales[is + 1] * s1;
        is += 2;
      }
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    sumf += d * isum;
  }
  return sumf;
}

// The 8 scales and 8 mins of a Q4_K / Q5_K block.
inline void k4_scales(const uint8_t* packed, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 8; ++j) scale_min_k4(j, packed, &sc[j], &mn[j]);
}

float dot_q4_K(int64_t n, const void* w, const void* a) {
  const Q4_K* x = static_cast<const Q4_K*>(w);
  const Q8_K* y = static_cast<const Q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    uint8_t sc[8], mn[8];
    k4_scales(x[i].scales, sc, mn);
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * mn[j / 2];
    const uint8_t* q4 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    int isum = 0;
    for (int j = 0; j < 8; j += 2, q4 += 32, q8 += 64) {
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; ++l) s0 += (q4[l] & 0xF) * q8[l];
      for (int l = 0; l < 32; ++l) s1 += (q4[l] >> 4) * q8[l + 32];
      isum += sc[j] * s0 + sc[j + 1] * s1;
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sumf += d * isum - dmin * summs;
  }
  return sumf;
}

float dot_q5_K(int64_t n, const void* w, const void* a) {
  const Q5_K* x = static_cast<const Q5_K*>(w);
  const Q8_K* y = static_cast<const Q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    uint8_t sc[8], mn[8];
    k4_scales(x[i].scales, sc, mn);
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * mn[j / 2];
    const uint8_t* q4 = x[i].qs;
    const uint8_t* qh = x[i].qh;
    const int8_t* q8 = y[i].qs;
    uint8_t m1 = 1, m2 = 2;
    int isum = 0;
    for (int j = 0; j < 8; j += 2, q4 += 32, q8 += 64, m1 <<= 2, m2 <<= 2) {
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; ++l) s0 += ((q4[l] & 0xF) + ((qh[l] & m1) ? 16 : 0)) * q8[l];
      for (int l = 0; l < 32; ++l) s1 += ((q4[l] >> 4) + ((qh[l] & m2) ? 16 : 0)) * q8[l + 32];
      isum += sc[j] * s0 + sc[j + 1] * s1;
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sumf += d * isum - dmin * summs;
  }
  return sumf;
}

float dot_q6_K(int64_t n, const void* w, const void* a) {
  const Q6_K* x = static_cast<const Q6_K*>(w);
  const Q8_K* y = static_cast<const Q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* q8 = y[i].qs;
    const int8_t* sc = x[i].scales;
    int isum = 0;
    for (int group = 0; group < kQK_K / 128; ++group, ql += 64, qh += 32, q8 += 128, sc += 8) {
      // Sub-block s (16 values) of this group of 128: quarter s/2, half s%2.
      for (int s = 0; s < 8; ++s) {
        const int quarter = s / 2;
        int sum = 0;
        for (int l = 16 * (s % 2); l < 16 * (s % 2) + 16; ++l) {
          const uint8_t low = quarter == 0   ? (ql[l] & 0xF)
                              : quarter == 1 ? (ql[l + 32] & 0xF)
                              : quarter == 2 ? (ql[l] >> 4)
                                             : (ql[l + 32] >> 4);
          const int q = (low | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
          sum += q * q8[32 * quarter + l];
        }
        isum += sc[s] * sum;
      }
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    sumf += d * isum;
  }
  return sumf;
}

}  // namespace

void fill_scalar(Table& t) {
  t.level = CpuLevel::kScalar;
  t.vec_dot[slot(GgmlType::F32)] = dot_f32;
  t.vec_dot[slot(GgmlType::F16)] = dot_f16;
  t.vec_dot[slot(GgmlType::BF16)] = dot_bf16;
  t.vec_dot[slot(GgmlType::Q4_0)] = dot_q4_0;
  t.vec_dot[slot(GgmlType::Q4_1)] = dot_q4_1;
  t.vec_dot[slot(GgmlType::Q5_0)] = dot_q5_0;
  t.vec_dot[slot(GgmlType::Q5_1)] = dot_q5_1;
  t.vec_dot[slot(GgmlType::Q8_0)] = dot_q8_0;
  t.vec_dot[slot(GgmlType::Q2_K)] = dot_q2_K;
  t.vec_dot[slot(GgmlType::Q3_K)] = dot_q3_K;
  t.vec_dot[slot(GgmlType::Q4_K)] = dot_q4_K;
  t.vec_dot[slot(GgmlType::Q5_K)] = dot_q5_K;
  t.vec_dot[slot(GgmlType::Q6_K)] = dot_q6_K;
  t.from_float[slot(GgmlType::Q8_0)] = from_float_q8_0;
  t.from_float[slot(GgmlType::Q8_1)] = from_float_q8_1;
  t.from_float[slot(GgmlType::Q8_K)] = from_float_q8_K;
  t.from_float[slot(GgmlType::F16)] = from_float_f16;
  t.from_float[slot(GgmlType::BF16)] = from_float_bf16;
  t.from_float[slot(GgmlType::F32)] = from_float_f32;
}

namespace {

Table make_table(CpuLevel level) {
  Table t;
  fill_scalar(t);
  if (level >= CpuLevel::kAvx2) fill_avx2(t);
  if (level >= CpuLevel::kAvx512) fill_avx512(t);
  t.level = level;
  return t;
}

}  // namespace

const Table& table(CpuLevel level) {
  if (static_cast<int>(level) > static_cast<int>(cpu_hardware_level()))
    throw Error("kernel level " + std::string(cpu_level_name(level)) + " is not supported by this CPU");
  static const Table tables[3] = {make_table(CpuLevel::kScalar),
                                  cpu_hardware_level() >= CpuLevel::kAvx2 ? make_table(CpuLevel::kAvx2)
                                                                          : make_table(CpuLevel::kScalar),
                                  cpu_hardware_level() >= CpuLevel::kAvx512 ? make_table(CpuLevel::kAvx512)
                                                                            : make_table(CpuLevel::kScalar)};
  return tables[static_cast<int>(level)];
}

const Table& active() {
  static const Table& t = table(cpu_level());
  return t;
}

}  // namespace hai::kernels
