// The reference quantizers: float rows -> quantized blocks, bit-identical to
// ggml's quantize_row_*_ref (and, with an importance matrix, to its
// quantize_*_impl), so that the files we write load anywhere and match what
// llama-quantize produces.
//
// Bit-exactness depends on doing the same float operations in the same order:
// every expression below keeps ggml's evaluation order and types (int * float
// products, float accumulators), and no FMA contraction (ggml's reference
// quantizers are built without FMA).
// No FMA contraction here: a fused a * b + c rounds differently (see above).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "engine/common/error.h"
#include "engine/quant/blocks.h"
#include "engine/quant/quant.h"

namespace hai {
namespace {

using namespace qblock;

constexpr float kGroupMaxEps = 1e-15f;

// Rounds to the nearest integer, ties to even, by the float magic-number trick
// ggml uses (valid for |x| <= 2^22).
inline int nearest_int(float x) {
  float v = x + 12582912.f;
  int i;
  std::memcpy(&i, &v, sizeof(int));
  return (i & 0x007FFFFF) - 0x00400000;
}

// ---------------------------------------------------------------- scale searches
//
// Given n values x, these choose a scale (and for the "k" variants a min) and
// integer levels L so that x ~ scale * L (+ min), minimizing a weighted error.

// Symmetric levels -nmax..nmax-1 stored as L + nmax. rmse_type 0: plain
// amax/nmax scale; 1: weighted least squares with weights qw (or x^2), trying
// 18 scales around nmax/amax.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      const int l = nearest_int(iscale * x[i]);
      L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
    }
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) {
    rmse_type = -rmse_type;
    return_early = true;
  }
  auto weight = [&](int i) -> float {
    if (qw) return qw[i];
    switch (rmse_type) {
      case 1: return x[i] * x[i];
      case 2: return 1;
      case 3: return std::fabs(x[i]);
      default: return std::sqrt(std::fabs(x[i]));
    }
  };
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = weight(i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = weight(i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's search: symmetric levels, then (do_rmse) coordinate descent on each
// level with weights x^2.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  if (do_rmse) {
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      L[i] = static_cast<int8_t>(l);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
      int n_changed = 0;
      for (int i = 0; i < n; ++i) {
        const float w = x[i] * x[i];
        float slx = sumlx - w * x[i] * L[i];
        if (slx > 0) {
          float sl2 = suml2 - w * L[i] * L[i];
          int new_l = nearest_int(x[i] * sl2 / slx);
          new_l = std::max(-nmax, std::min(nmax - 1, new_l));
          if (new_l != L[i]) {
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
              L[i] = static_cast<int8_t>(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++n_changed;
            }
          }
        }
      }
      if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
    return sumlx / suml2;
  }
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
  }
  return 1 / iscale;
}

// Asymmetric levels 0..nmax with x ~ scale * L - the_min: start from
// (max-min)/nmax, then try nstep+1 scales (rmin + rdelta*is + nmax)/(max-min),
// each with the least-squares scale and min for its levels; keep the one with
// the smallest weighted error (|diff| if use_mad, else diff^2).
// `weights` may be null (then x^2), which is make_qkx3_quants' convention;
// make_qkx2_quants always passes weights, so one function serves both.
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  auto weight = [&](int i) -> float { return weights ? weights[i] : x[i] * x[i]; };
  float min = x[0], max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weight(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max <= min) {  // (qkx2 tests max == min; with min <= max forced above they agree)
    std::memset(L, 0, static_cast<size_t>(n));
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weight(i) * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weight(i);
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        error += weight(i) * diff;
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Non-negative levels 0..nmax for the (non-negative) sub-block scales of the
// imatrix K-quants, weighted by quant_weights.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (!max) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    const float w = quant_weights[i];
    best_mse += w * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * is + nmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_is * x[i]);
      l = std::min(nmax, l);
      const float diff = x[i] - scale_is * l;
      const float w = quant_weights[i];
      mse += w * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::min(nmax, l);
    L[i] = static_cast<uint8_t>(l);
    const float w = quant_weights[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = quant_weights[i];
      float slx = sumlx - w * x[i] * L[i];
      float sl2 = suml2 - w * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::min(nmax, new_l);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return sumlx / suml2;
}

// ---------------------------------------------------------------- legacy types

void quantize_q4_0_ref(const float* x, Q4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[kQK / 2 + j] * id;
      const uint8_t q0 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x0 + 8.5f)));
      const uint8_t q1 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x1 + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_1_ref(const float* x, Q4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = 3.402823466e+38F, max = -3.402823466e+38F;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[kQK / 2 + j] - min) * id;
      const uint8_t q0 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x0 + 0.5f)));
      const uint8_t q1 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x1 + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// Packs 32 five-bit levels into the low nibbles qs and the high-bit word qh.
template <typename Block>
void pack_q5(const uint8_t* L, Block& b) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t l0 = L[j], l1 = L[j + kQK / 2];
    b.qs[j] = static_cast<uint8_t>((l0 & 0x0F) | ((l1 & 0x0F) << 4));
    qh |= ((l0 & 0x10u) >> 4) << j;
    qh |= ((l1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(b.qh, &qh, 4);
}

void quantize_q5_0_ref(const float* x, Q5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint8_t L[kQK];
    for (int j = 0; j < kQK; ++j)
      L[j] = std::min<uint8_t>(31, static_cast<uint8_t>(static_cast<int8_t>(x[j] * id + 16.5f)));
    pack_q5(L, y[i]);
  }
}

void quantize_q5_1_ref(const float* x, Q5_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = 3.402823466e+38F, max = -3.402823466e+38F;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint8_t L[kQK];
    for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
    pack_q5(L, y[i]);
  }
}

void quantize_q8_0_ref(const float* x, Q8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize_q8_1_ref(const float* x, Q8_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = fp32_to_fp16(sum * d);
  }
}

// The imatrix variants. sigma2 is the mean square of the whole row.
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / n;
}

void quantize_q4_0_imatrix(const float* x, Q4_0* y, int64_t n, const float* qw) {
  const float sigma2 = row_sigma2(x, n);
  float weight[kQK];
  int8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    const float* xb = x + kQK * ib;
    const float* w = qw + kQK * ib;
    for (int j = 0; j < kQK; ++j) weight[j] = w[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    const float d = make_qx_quants(kQK, 8, xb, L, 1, weight);
    y[ib].d = fp32_to_fp16(d);
    for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
  }
}

void quantize_q4_1_imatrix(const float* x, Q4_1* y, int64_t n, const float* qw) {
  const float sigma2 = row_sigma2(x, n);
  float weight[kQK];
  uint8_t L[kQK], Laux[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    const float* xb = x + kQK * ib;
    const float* w = qw + kQK * ib;
    for (int j = 0; j < kQK; ++j) weight[j] = w[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    float min;
    const float d = make_qkx_quants(kQK, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
  }
}

void quantize_q5_0_imatrix(const float* x, Q5_0* y, int64_t n, const float* qw) {
  const float sigma2 = row_sigma2(x, n);
  float weight[kQK];
  int8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    const float* xb = x + kQK * ib;
    const float* w = qw + kQK * ib;
    for (int j = 0; j < kQK; ++j) weight[j] = w[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    const float d = make_qx_quants(kQK, 16, xb, L, 1, weight);
    y[ib].d = fp32_to_fp16(d);
    pack_q5(reinterpret_cast<const uint8_t*>(L), y[ib]);
  }
}

void quantize_q5_1_imatrix(const float* x, Q5_1* y, int64_t n, const float* qw) {
  const float sigma2 = row_sigma2(x, n);
  float weight[kQK];
  uint8_t L[kQK], Laux[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    const float* xb = x + kQK * ib;
    const float* w = qw + kQK * ib;
    for (int j = 0; j < kQK; ++j) weight[j] = w[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    float min;
    const float d = make_qkx_quants(kQK, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    pack_q5(L, y[ib]);
  }
}

// ---------------------------------------------------------------- K-quants

// Packs 256 two-bit levels: byte l of each 32-byte slice holds the values
// l, l+32, l+64, l+96 of its group of 128.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Requantizes the values of a Q2_K block against its final (fp16-rounded)
// scales and mins, then packs them.
void finish_q2_K(const float* x, Q2_K& b, uint8_t* L) {
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = fp16_to_fp32(b.d) * (b.scales[j] & 0xF);
    if (!d) continue;
    const float dm = fp16_to_fp32(b.dmin) * (b.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int((x[16 * j + ii] + dm) / d);
      L[16 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
    }
  }
  pack_2bit(L, b.qs);
}

void quantize_q2_K_ref(const float* x, Q2_K* y, int64_t nb) {
  uint8_t L[kQK_K], Laux[16];
  float weights[16], mins[kQK_K / 16], scales[kQK_K / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) y[i].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      y[i].d = fp32_to_fp16(max_scale / q4scale);
    } else {
      for (int j = 0; j < kQK_K / 16; ++j) y[i].scales[j] = 0;
      y[i].d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j)
        y[i].scales[j] = static_cast<uint8_t>(y[i].scales[j] | (nearest_int(iscale * mins[j]) << 4));
      y[i].dmin = fp32_to_fp16(max_min / q4scale);
    } else {
      y[i].dmin = fp32_to_fp16(0.f);
    }
    finish_q2_K(x, y[i], L);
  }
}

void quantize_q2_K_imatrix(const float* x, Q2_K* y, int64_t nb, const float* quant_weights) {
  uint8_t L[kQK_K], Laux[16], Ls[kQK_K / 16], Lm[kQK_K / 16];
  float mins[kQK_K / 16], scales[kQK_K / 16], sw[kQK_K / 16], weight[16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    std::memset(sw, 0, sizeof(sw));
    float sumx2 = 0;
    for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / kQK_K;
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float* qw = quant_weights + kQK_K * i + 16 * j;
      for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      for (int l = 0; l < kQK_K / 16; ++l) sw[j] += weight[l];
      scales[j] = make_qkx_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float dm = make_qp_quants(kQK_K / 16, 15, scales, Ls, sw);
    const float mm = make_qp_quants(kQK_K / 16, 15, mins, Lm, sw);
    y[i].d = fp32_to_fp16(dm);
    y[i].dmin = fp32_to_fp16(mm);
    for (int j = 0; j < kQK_K / 16; ++j) y[i].scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    finish_q2_K(x, y[i], L);
  }
}

// Stores the 16 six-bit Q3_K scales (already offset by 32) into 12 bytes.
void pack_q3_K_scales(const int* ls, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 16; ++j) {
    int l = ls[j];
    if (j < 8)
      scales[j] = static_cast<uint8_t>(l & 0xF);
    else
      scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((l & 0xF) << 4));
    l >>= 4;
    scales[j % 4 + 8] = static_cast<uint8_t>(scales[j % 4 + 8] | (l << (2 * (j / 4))));
  }
}

// Requantizes against the final scales, splits off the high bits, packs.
void finish_q3_K(const float* x, Q3_K& b, int8_t* L) {
  int8_t sc[16];
  unpack_q3_k_scales(b.scales, sc);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = fp16_to_fp32(b.d) * sc[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int(x[16 * j + ii] / d);
      L[16 * j + ii] = static_cast<int8_t>(std::max(-4, std::min(3, l)) + 4);
    }
  }
  // The high bit of value j goes to bit j/32 of hmask[j % 32].
  std::memset(b.hmask, 0, sizeof(b.hmask));
  for (int j = 0; j < kQK_K; ++j) {
    if (L[j] > 3) {
      b.hmask[j % 32] = static_cast<uint8_t>(b.hmask[j % 32] | (1 << (j / 32)));
      L[j] = static_cast<int8_t>(L[j] - 4);
    }
  }
  pack_2bit(reinterpret_cast<const uint8_t*>(L), b.qs);
}

void quantize_q3_K_ref(const float* x, Q3_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    int ls[16] = {};
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        ls[j] = std::max<int>(-32, std::min<int>(31, l)) + 32;
      }
      pack_q3_K_scales(ls, y[i].scales);
      y[i].d = fp32_to_fp16(1 / iscale);
    } else {
      std::memset(y[i].scales, 0, 12);
      y[i].d = fp32_to_fp16(0.f);
    }
    finish_q3_K(x, y[i], L);
  }
}

void quantize_q3_K_imatrix(const float* x, Q3_K* y, int64_t nb, const float* quant_weights) {
  int8_t L[kQK_K], Ls[kQK_K / 16];
  float scales[kQK_K / 16], weight[16], sw[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float sumx2 = 0;
    for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / kQK_K;
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float* qw = quant_weights + kQK_K * i + 16 * j;
      for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      float sumw = 0;
      for (int l = 0; l < 16; ++l) sumw += weight[l];
      sw[j] = sumw;
      scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
    }
    const float d_block = make_qx_quants(kQK_K / 16, 32, scales, Ls, 1, sw);
    int ls[16];
    for (int j = 0; j < 16; ++j) ls[j] = Ls[j];
    pack_q3_K_scales(ls, y[i].scales);
    y[i].d = fp32_to_fp16(d_block);
    finish_q3_K(x, y[i], L);
  }
}

// Stores 8 six-bit scales and mins of a Q4_K / Q5_K block into 12 bytes.
void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* scales) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales[j - 4] = static_cast<uint8_t>(scales[j - 4] | ((ls[j] >> 4) << 6));
      scales[j - 0] = static_cast<uint8_t>(scales[j - 0] | ((lm[j] >> 4) << 6));
    }
  }
}

// Levels 0..nmax of each value against the block's final scales and mins.
template <typename Block>
void requantize_k4(const float* x, const Block& b, int nmax, uint8_t* L) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, b.scales, &sc, &m);
    const float d = fp16_to_fp32(b.d) * sc;
    if (!d) continue;
    const float dm = fp16_to_fp32(b.dmin) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// The first pass of the reference Q4_K / Q5_K quantizers: per sub-block of 32,
// weights av_x + |x| and the qkx2 search; then 6-bit scales relative to the
// largest. Fills b.scales, b.d, b.dmin.
template <typename Block>
void k4_scales_ref(const float* x, Block& b, int nmax, float rmin, float rdelta, int nstep, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[kQK_K / 32], scales[kQK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < kQK_K / 32; ++j) {
    // uint8_t, as in ggml: the conversion wraps before the clamp.
    ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
  }
  pack_k4_scales(ls, lm, b.scales);
  b.d = fp32_to_fp16(max_scale / 63.f);
  b.dmin = fp32_to_fp16(max_min / 63.f);
}

// The imatrix variant (also ggml's quantize_*_impl): qkx3 search with weights
// qw * sqrt(sigma2 + x^2), then scales and mins chosen by make_qp_quants.
template <typename Block>
void k4_scales_imatrix(const float* x, Block& b, int nmax, const float* qw_block, uint8_t* L) {
  uint8_t Laux[32], Ls[8], Lm[8];
  float weights[32], sw[8], mins[8], scales[8];
  float sum_x2 = 0;
  for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / kQK_K;
  for (int j = 0; j < kQK_K / 32; ++j) {
    const float* qw = qw_block + 32 * j;
    for (int l = 0; l < 32; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
  }
  const float d_block = make_qp_quants(kQK_K / 32, 63, scales, Ls, sw);
  const float m_block = make_qp_quants(kQK_K / 32, 63, mins, Lm, sw);
  for (int j = 0; j < 8; ++j) {
    Ls[j] = std::min<uint8_t>(63, Ls[j]);
    Lm[j] = std::min<uint8_t>(63, Lm[j]);
  }
  pack_k4_scales(Ls, Lm, b.scales);
  b.d = fp32_to_fp16(d_block);
  b.dmin = fp32_to_fp16(m_block);
}

void pack_q4_K(const uint8_t* L, Q4_K& b) {
  uint8_t* q = b.qs;
  for (int j = 0; j < kQK_K; j += 64, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void pack_q5_K(const uint8_t* L, Q5_K& b) {
  uint8_t* ql = b.qs;
  std::memset(b.qh, 0, sizeof(b.qh));
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK_K; n += 64, ql += 32, m1 = static_cast<uint8_t>(m1 << 2), m2 = static_cast<uint8_t>(m2 << 2)) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        b.qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        b.qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
}

void quantize_q4_K(const float* x, Q4_K* y, int64_t nb, const float* qw) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    if (qw)
      k4_scales_imatrix(x, y[i], 15, qw + kQK_K * i, L);
    else
      k4_scales_ref(x, y[i], 15, -1.f, 0.1f, 20, L);
    requantize_k4(x, y[i], 15, L);
    pack_q4_K(L, y[i]);
  }
}

void quantize_q5_K(const float* x, Q5_K* y, int64_t nb, const float* qw) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    if (qw)
      k4_scales_imatrix(x, y[i], 31, qw + kQK_K * i, L);
    else
      k4_scales_ref(x, y[i], 31, -0.5f, 0.1f, 15, L);
    requantize_k4(x, y[i], 31, L);
    pack_q5_K(L, y[i]);
  }
}

void quantize_q6_K(const float* x, Q6_K* y, int64_t nb, const float* quant_weights) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      const float* qw = quant_weights ? quant_weights + kQK_K * i + 16 * ib : nullptr;
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(Q6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib)
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * y[i].scales[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace

// Q8_K as both ggml's reference and its x86 CPU path make it: iscale =
// -127/max of the signed extreme, nearest-even levels clamped to 127, and the
// sums of each 16 levels for the K-quant dot products.
void quantize_q8_K_row(const float* x, void* dst, int64_t n) {
  Q8_K* y = static_cast<Q8_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (!amax) {
      std::memset(&y[i], 0, sizeof(Q8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* importance) {
  const int64_t bs = traits(type).block_size;
  row_size(type, n);  // throws unless n is a multiple of the block size
  const int64_t nb = n / bs;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::BF16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q4_0:
      return importance ? quantize_q4_0_imatrix(src, static_cast<Q4_0*>(dst), n, importance)
                        : quantize_q4_0_ref(src, static_cast<Q4_0*>(dst), nb);
    case GgmlType::Q4_1:
      return importance ? quantize_q4_1_imatrix(src, static_cast<Q4_1*>(dst), n, importance)
                        : quantize_q4_1_ref(src, static_cast<Q4_1*>(dst), nb);
    case GgmlType::Q5_0:
      return importance ? quantize_q5_0_imatrix(src, static_cast<Q5_0*>(dst), n, importance)
                        : quantize_q5_0_ref(src, static_cast<Q5_0*>(dst), nb);
    case GgmlType::Q5_1:
      return importance ? quantize_q5_1_imatrix(src, static_cast<Q5_1*>(dst), n, importance)
                        : quantize_q5_1_ref(src, static_cast<Q5_1*>(dst), nb);
    case GgmlType::Q8_0: return quantize_q8_0_ref(src, static_cast<Q8_0*>(dst), nb);
    case GgmlType::Q8_1: return quantize_q8_1_ref(src, static_cast<Q8_1*>(dst), nb);
    case GgmlType::Q2_K:
      return importance ? quantize_q2_K_imatrix(src, static_cast<Q2_K*>(dst), nb, importance)
                        : quantize_q2_K_ref(src, static_cast<Q2_K*>(dst), nb);
    case GgmlType::Q3_K:
      return importance ? quantize_q3_K_imatrix(src, static_cast<Q3_K*>(dst), nb, importance)
                        : quantize_q3_K_ref(src, static_cast<Q3_K*>(dst), nb);
    case GgmlType::Q4_K: return quantize_q4_K(src, static_cast<Q4_K*>(dst), nb, importance);
    case GgmlType::Q5_K: return quantize_q5_K(src, static_cast<Q5_K*>(dst), nb, importance);
    case GgmlType::Q6_K: return quantize_q6_K(src, static_cast<Q6_K*>(dst), nb, importance);
    case GgmlType::Q8_K: return quantize_q8_K_row(src, dst, n);
    default:
      throw Error("quantization to tensor type " + std::string(type_name(type)) + " is not supported");
  }
}

}  // namespace hai
