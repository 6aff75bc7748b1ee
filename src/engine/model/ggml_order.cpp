#include "engine/model/ggml_order.h"

#include <cmath>
#include <cstring>
#include <string>

#include "engine/common/cpu.h"
#include "engine/common/error.h"
#include "engine/quant/quant.h"

namespace hai::model::ggml_order {

bool have_avx512() {
  static const bool ok = [] {
    const CpuFeatures& f = cpu_features();
    // cpu_level() honours HAI_CPU, so tests and users can force the fallbacks.
    return cpu_level() >= CpuLevel::kAvx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
           f.avx512vnni && f.fma && f.f16c;
  }();
  return ok;
}

bool have_avx2() {
  static const bool ok = [] {
    const CpuFeatures& f = cpu_features();
    return cpu_level() >= CpuLevel::kAvx2 && f.avx2 && f.fma && f.f16c;
  }();
  return ok;
}

float v_expf(float x) {
  // exp(x) = 2^n * exp(b), n = round(x / ln 2), b = x - n ln 2 (in two
  // parts), exp(b) by a degree-5 polynomial; the constants are ggml's.
  const float shift = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, shift);
  const float n = z - shift;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  if (std::isnan(n)) return n;
  return std::ldexp(j, static_cast<int>(n));
}

void v_expf_n(const float* x, float* out, int64_t n) {
  if (have_avx512()) return v_expf_n_avx512(x, out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = v_expf(x[i]);
}

float reduce16(const float* a) {
  float t[8], u[4];
  for (int i = 0; i < 8; ++i) t[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) u[i] = t[i + 4] + t[i];
  const float v0 = u[0] + u[2], v1 = u[1] + u[3];
  return v0 + v1;
}

float dot_f16_f32(int64_t k, const uint16_t* w, const float* x) {
  if (have_avx512()) return dot_f16_f32_avx512(k, w, x);
  return dot_f16_f32_portable(k, w, x);
}

float dot_f16_f32_portable(int64_t k, const uint16_t* w, const float* x) {
  float acc[16] = {0};
  for (int64_t i = 0; i < k; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(fp16_to_fp32(w[i + l]), x[i + l], acc[l]);
  return reduce16(acc);
}

float dot_q8_0(int64_t n, const void* w, const void* a) {
  if (have_avx512()) return dot_q8_0_avx512(n, w, a);
  return dot_q8_0_portable(n, w, a);
}

float dot_q8_0_portable(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const uint8_t* y = static_cast<const uint8_t*>(a);
  float acc[8] = {0};
  for (int64_t b = 0; b < n / 32; ++b, x += 34, y += 34) {
    uint16_t dx, dy;
    std::memcpy(&dx, x, 2);
    std::memcpy(&dy, y, 2);
    const float d = fp16_to_fp32(dx) * fp16_to_fp32(dy);
    const int8_t* qx = reinterpret_cast<const int8_t*>(x + 2);
    const int8_t* qy = reinterpret_cast<const int8_t*>(y + 2);
    for (int l = 0; l < 8; ++l) {
      int s = 0;
      for (int k = 0; k < 4; ++k) s += qx[4 * l + k] * qy[4 * l + k];
      acc[l] = std::fma(d, static_cast<float>(s), acc[l]);
    }
  }
  // hsum_float_8: high half + low half, then pairs.
  float r[4];
  for (int l = 0; l < 4; ++l) r[l] = acc[l + 4] + acc[l];
  const float s0 = r[0] + r[2], s1 = r[1] + r[3];
  return s0 + s1;
}

float dot_q4_0(int64_t n, const void* w, const void* a) {
  if (have_avx2()) return dot_q4_0_avx2(n, w, a);
  return dot_q4_0_portable(n, w, a);
}

float dot_q4_0_portable(int64_t n, const void* w, const void* a) {
  const uint8_t* x = static_cast<const uint8_t*>(w);
  const uint8_t* y = static_cast<const uint8_t*>(a);
  float acc = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b, x += 18, y += 34) {
    uint16_t dx, dy;
    std::memcpy(&dx, x, 2);
    std::memcpy(&dy, y, 2);
    const float d = fp16_to_fp32(dx) * fp16_to_fp32(dy);
    int qx[32];
    for (int j = 0; j < 16; ++j) {
      qx[j] = (x[2 + j] & 15) - 8;
      qx[j + 16] = (x[2 + j] >> 4) - 8;
    }
    const int8_t* qy = reinterpret_cast<const int8_t*>(y + 2);
    int s = 0;
    for (int j = 0; j < 32; ++j) s += qx[j] * qy[j];
    acc = std::fma(static_cast<float>(s), d, acc);
  }
  return acc;
}

namespace {

struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

float hsum8(const float* acc) {
  float r[4];
  for (int l = 0; l < 4; ++l) r[l] = acc[l + 4] + acc[l];
  const float s0 = r[0] + r[2], s1 = r[1] + r[3];
  return s0 + s1;
}

// lane[l] = sum over elements e with (e % 32) / 4 == l of w[e] * q8[e]
// (integers: the grouping is exact, only the lanes matter).
void lane_sums(const int32_t* w, const int8_t* q8, int32_t lane[8]) {
  int32_t col[32] = {0};
  for (int v = 0; v < 8; ++v)
    for (int b = 0; b < 32; ++b) col[b] += w[v * 32 + b] * q8[v * 32 + b];
  for (int l = 0; l < 8; ++l) lane[l] = col[4 * l] + col[4 * l + 1] + col[4 * l + 2] + col[4 * l + 3];
}

}  // namespace

namespace {

void unpack_k_row_portable(GgmlType type, int64_t n, const void* w, KRow& row);
float dot_k_row_portable(const KRow& row, int64_t n, const void* a);

}  // namespace

void unpack_k_row(GgmlType type, int64_t n, const void* w, KRow& row) {
  if (have_avx2()) {
    row.raw = w;
    row.type = type;
    row.has_mins = type == GgmlType::Q4_K;
    return;
  }
  row.raw = nullptr;
  unpack_k_row_portable(type, n, w, row);
}

float dot_k_row(const KRow& row, int64_t n, const void* a) {
  if (row.raw != nullptr)
    return row.type == GgmlType::Q4_K ? dot_q4_k_avx2(n, row.raw, a) : dot_q6_k_avx2(n, row.raw, a);
  return dot_k_row_portable(row, n, a);
}

float dot_k_portable(GgmlType type, int64_t n, const void* w, const void* a) {
  KRow row;
  unpack_k_row_portable(type, n, w, row);
  return dot_k_row_portable(row, n, a);
}

namespace {

void unpack_k_row_portable(GgmlType type, int64_t n, const void* w, KRow& row) {
  const int64_t nb = n / 256;
  row.w.resize(static_cast<size_t>(n));
  row.d.resize(static_cast<size_t>(nb));
  row.has_mins = type == GgmlType::Q4_K;
  row.dmin.resize(row.has_mins ? nb : 0);
  row.mins.resize(row.has_mins ? nb * 8 : 0);
  const uint8_t* x = static_cast<const uint8_t*>(w);
  for (int64_t i = 0; i < nb; ++i) {
    int32_t* wv = &row.w[i * 256];
    if (type == GgmlType::Q4_K) {  // d, dmin, scales[12], qs[128]: 144 bytes
      uint16_t d16, dmin16;
      std::memcpy(&d16, x, 2);
      std::memcpy(&dmin16, x + 2, 2);
      row.d[i] = fp16_to_fp32(d16);
      row.dmin[i] = fp16_to_fp32(dmin16);
      const uint8_t* sc = x + 4;
      const uint8_t* qs = x + 16;
      int scale[8];
      for (int j = 0; j < 8; ++j) {
        if (j < 4) {
          scale[j] = sc[j] & 63;
          row.mins[i * 8 + j] = sc[j + 4] & 63;
        } else {
          scale[j] = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
          row.mins[i * 8 + j] = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        }
      }
      for (int j = 0; j < 4; ++j)
        for (int b = 0; b < 32; ++b) {
          wv[j * 64 + b] = scale[2 * j] * (qs[j * 32 + b] & 15);
          wv[j * 64 + 32 + b] = scale[2 * j + 1] * (qs[j * 32 + b] >> 4);
        }
      x += 144;
    } else {  // Q6_K: ql[128], qh[64], scales[16], d: 210 bytes
      uint16_t d16;
      std::memcpy(&d16, x + 208, 2);
      row.d[i] = fp16_to_fp32(d16);
      const uint8_t* ql = x;
      const uint8_t* qh = x + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
      for (int j = 0; j < 2; ++j)
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const uint8_t* L = ql + j * 64;
          const uint8_t* H = qh + j * 32;
          const int8_t* S = sc + j * 8;
          wv[j * 128 + l] = S[is] * (((L[l] & 15) | (((H[l] >> 0) & 3) << 4)) - 32);
          wv[j * 128 + 32 + l] = S[is + 2] * (((L[l + 32] & 15) | (((H[l] >> 2) & 3) << 4)) - 32);
          wv[j * 128 + 64 + l] = S[is + 4] * (((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32);
          wv[j * 128 + 96 + l] = S[is + 6] * (((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32);
        }
      x += 210;
    }
  }
}

float dot_k_row_portable(const KRow& row, int64_t n, const void* a) {
  const BlockQ8K* y = static_cast<const BlockQ8K*>(a);
  float acc[8] = {0};
  float acc_m[4] = {0};
  for (int64_t i = 0; i < n / 256; ++i) {
    int32_t lane[8];
    lane_sums(&row.w[i * 256], y[i].qs, lane);
    const float d = y[i].d * row.d[i];
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(d, static_cast<float>(lane[l]), acc[l]);
    if (row.has_mins) {
      const float dmin = -y[i].d * row.dmin[i];
      const int32_t* min = &row.mins[i * 8];
      for (int m = 0; m < 4; ++m) {
        const int bs0 = y[i].bsums[4 * m] + y[i].bsums[4 * m + 1];
        const int bs1 = y[i].bsums[4 * m + 2] + y[i].bsums[4 * m + 3];
        const int prod = min[2 * m] * bs0 + min[2 * m + 1] * bs1;
        acc_m[m] = std::fma(dmin, static_cast<float>(prod), acc_m[m]);
      }
    }
  }
  if (!row.has_mins) return hsum8(acc);
  const float m0 = acc_m[0] + acc_m[2], m1 = acc_m[1] + acc_m[3];
  return hsum8(acc) + (m0 + m1);
}

}  // namespace

bool gemm_has(GgmlType type) {
  switch (type) {
    case GgmlType::F16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return true;
    default: return false;
  }
}

void gemm(GgmlType type, const GemmArgs& g) {
  if (have_avx512()) return gemm_avx512(type, g);
  if (have_avx2()) return gemm_avx2(type, g);
  gemm_portable(type, g);
}

namespace {

// One output at a time: each weight row once, with every token.
void gemm_elementwise(GgmlType type, const GemmArgs& g, bool avx2) {
  const uint8_t* w = static_cast<const uint8_t*>(g.w);
  const uint8_t* a = static_cast<const uint8_t*>(g.a);
  KRow krow;
  for (int64_t r = 0; r < g.n_rows; ++r) {
    const uint8_t* w_row = w + g.w_stride * r;
    const bool k_quant = type == GgmlType::Q4_K || type == GgmlType::Q6_K;
    if (k_quant) {
      if (avx2) {
        krow.raw = w_row;
        krow.type = type;
      } else {
        krow.raw = nullptr;
        unpack_k_row_portable(type, g.n, w_row, krow);
      }
    }
    for (int64_t t = 0; t < g.n_tok; ++t) {
      const uint8_t* a_row = a + g.a_stride * t;
      float v;
      switch (type) {
        case GgmlType::F16:
          v = dot_f16_f32_portable(g.n, reinterpret_cast<const uint16_t*>(w_row), reinterpret_cast<const float*>(a_row));
          break;
        case GgmlType::Q8_0: v = dot_q8_0_portable(g.n, w_row, a_row); break;
        case GgmlType::Q4_0: v = avx2 ? dot_q4_0_avx2(g.n, w_row, a_row) : dot_q4_0_portable(g.n, w_row, a_row); break;
        case GgmlType::Q5_0: v = vec_dot(type, g.n, w_row, a_row); break;  // hai::vec_dot is in ggml's order
        case GgmlType::Q4_K:
        case GgmlType::Q6_K: v = dot_k_row(krow, g.n, a_row); break;
        default: throw Error("no ggml-order matrix product for type " + std::string(type_name(type)));
      }
      g.y[t * g.ldy + r] = v;
    }
  }
}

}  // namespace

void gemm_portable(GgmlType type, const GemmArgs& g) { gemm_elementwise(type, g, false); }
void gemm_avx2(GgmlType type, const GemmArgs& g) {
  if (type == GgmlType::F16 || type == GgmlType::Q8_0) return gemm_avx2_tiled(type, g);
  gemm_elementwise(type, g, true);
}

float dot_f16(int64_t n, const uint16_t* x, const uint16_t* y) {
  const int64_t np = n & ~int64_t(63);
  double sum = 0.0;
  if (np > 0) {
    float acc[4][16] = {};
    for (int64_t i = 0; i < np; i += 64)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 16; ++l)
          acc[j][l] = std::fma(fp16_to_fp32(x[i + 16 * j + l]), fp16_to_fp32(y[i + 16 * j + l]), acc[j][l]);
    for (int l = 0; l < 16; ++l) {
      acc[0][l] = acc[0][l] + acc[2][l];
      acc[1][l] = acc[1][l] + acc[3][l];
    }
    for (int l = 0; l < 16; ++l) acc[0][l] = acc[0][l] + acc[1][l];
    sum = static_cast<double>(reduce16(acc[0]));
  }
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
  return static_cast<float>(sum);
}

}  // namespace hai::model::ggml_order
