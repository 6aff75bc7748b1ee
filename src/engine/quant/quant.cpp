// Half-precision conversions, dequantization of every supported type, and the
// dispatch of vec_dot / activation conversion to the kernel table of the CPU.
#include "engine/quant/quant.h"

#include <cmath>
#include <cstring>
#include <string>

#include "engine/common/error.h"
#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"

namespace hai {

// ---------------------------------------------------------------- fp16 / bf16

static inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {
    // Infinity, or NaN made quiet (as F16C's vcvtph2ps does).
    return float_of(sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0));
  }
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u)  // NaN: quiet, upper payload bits kept (as F16C's vcvtps2ph)
    return static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {
    // Below 2^-14: a half subnormal (or zero). |f| * 2^24 is exact; rounding
    // it to an integer (nearest even) gives the mantissa, and 1024 carries
    // into the smallest normal exponent as it should.
    const float scaled = float_of(ax) * 0x1p24f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(scaled)));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to
  // nearest even; a carry out of the mantissa bumps the exponent correctly.
  const uint32_t rebased = ax - 0x38000000u;
  const uint32_t rounded = rebased + 0xFFFu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

float bf16_to_fp32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64);  // NaN, forced quiet
  return static_cast<uint16_t>((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

// ---------------------------------------------------------------- dequantize

namespace {

using namespace qblock;

void dequantize_q4_0(const Q4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const Q4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = (x[i].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = (x[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const Q5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      y[j] = (((x[i].qs[j] & 0x0F) | hi0) - 16) * d;
      y[j + kQK / 2] = (((x[i].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const Q5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      y[j] = ((x[i].qs[j] & 0x0F) | hi0) * d + m;
      y[j + kQK / 2] = ((x[i].qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void dequantize_q8_0(const Q8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = x[i].qs[j] * d;
  }
}

void dequantize_q8_1(const Q8_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = x[i].qs[j] * d;
  }
}

// Values come in groups of 128: byte l of a 32-byte slice of qs holds values
// l, l+32, l+64, l+96 of the group in bit pairs 0-1, 2-3, 4-5, 6-7.
void dequantize_q2_K(const Q2_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int group = 0; group < kQK_K; group += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * (sc & 0xF);
          const float ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void dequantize_q3_K(const Q3_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d_all = fp16_to_fp32(x[i].d);
    int8_t scales[16];
    unpack_q3_k_scales(x[i].scales, scales);
    const uint8_t* q = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int group = 0; group < kQK_K; group += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * scales[is++];
          for (int l = 16 * half; l < 16 * half + 16; ++l)
            *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        }
      }
    }
  }
}

void dequantize_q4_K(const Q4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_K(const Q5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_K(const Q6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int group = 0; group < kQK_K; group += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void dequantize_q8_K(const Q8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i)
    for (int j = 0; j < kQK_K; ++j) *y++ = x[i].d * x[i].qs[j];
}

[[noreturn]] void unsupported(GgmlType type, const char* what) {
  auto t = type_traits(static_cast<uint32_t>(type));
  std::string name = t ? std::string(t->name) : "type " + std::to_string(static_cast<uint32_t>(type));
  throw Error(std::string(what) + " is not supported for tensor type " + name);
}

// Throws unless n is a non-negative multiple of the type's block size.
int64_t blocks_of(GgmlType type, int64_t n) {
  const TypeTraits& t = traits(type);
  row_size(type, n);  // validates n
  return n / t.block_size;
}

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const int64_t nb = blocks_of(type, n);
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::Q4_0: return dequantize_q4_0(static_cast<const Q4_0*>(src), dst, nb);
    case GgmlType::Q4_1: return dequantize_q4_1(static_cast<const Q4_1*>(src), dst, nb);
    case GgmlType::Q5_0: return dequantize_q5_0(static_cast<const Q5_0*>(src), dst, nb);
    case GgmlType::Q5_1: return dequantize_q5_1(static_cast<const Q5_1*>(src), dst, nb);
    case GgmlType::Q8_0: return dequantize_q8_0(static_cast<const Q8_0*>(src), dst, nb);
    case GgmlType::Q8_1: return dequantize_q8_1(static_cast<const Q8_1*>(src), dst, nb);
    case GgmlType::Q2_K: return dequantize_q2_K(static_cast<const Q2_K*>(src), dst, nb);
    case GgmlType::Q3_K: return dequantize_q3_K(static_cast<const Q3_K*>(src), dst, nb);
    case GgmlType::Q4_K: return dequantize_q4_K(static_cast<const Q4_K*>(src), dst, nb);
    case GgmlType::Q5_K: return dequantize_q5_K(static_cast<const Q5_K*>(src), dst, nb);
    case GgmlType::Q6_K: return dequantize_q6_K(static_cast<const Q6_K*>(src), dst, nb);
    case GgmlType::Q8_K: return dequantize_q8_K(static_cast<const Q8_K*>(src), dst, nb);
    default: unsupported(type, "dequantization");
  }
}

// ---------------------------------------------------------------- vec_dot

GgmlType vec_dot_type(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: return GgmlType::F32;
    case GgmlType::F16: return GgmlType::F16;
    case GgmlType::BF16: return GgmlType::BF16;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0: return GgmlType::Q8_0;
    case GgmlType::Q4_1:
    case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: unsupported(weight_type, "matrix multiplication");
  }
}

namespace {

// Block sizes by type id (0 = unknown), so that the per-row check in vec_dot
// costs a load instead of a search of the type table.
struct BlockSizes {
  int64_t size[kernels::kMaxType] = {};
  BlockSizes() {
    for (uint32_t id = 0; id < kernels::kMaxType; ++id)
      if (auto t = type_traits(id)) size[id] = t->block_size;
  }
};

}  // namespace

float vec_dot(GgmlType type, int64_t n, const void* w, const void* a) {
  static const BlockSizes block_sizes;
  const int s = kernels::slot(type);
  const kernels::Table& t = kernels::active();
  if (s < 0 || s >= kernels::kMaxType || t.vec_dot[s] == nullptr) unsupported(type, "vec_dot");
  if (n < 0 || n % block_sizes.size[s] != 0) blocks_of(type, n);  // throws with the details
  return t.vec_dot[s](n, w, a);
}

void quantize_activation_row(GgmlType act_type, const float* src, void* dst, int64_t n) {
  const int s = kernels::slot(act_type);
  const kernels::Table& t = kernels::active();
  if (s < 0 || s >= kernels::kMaxType || t.from_float[s] == nullptr) unsupported(act_type, "activation conversion");
  blocks_of(act_type, n);
  t.from_float[s](src, dst, n);
}

}  // namespace hai
