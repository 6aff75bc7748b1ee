#include "engine/model/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/common/error.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model {

void run_serial(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);  // square in float, sum in double
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / sqrtf(mean + eps);
  if (w) {
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
  }
}

void quantize_activations(GgmlType type, const float* x, void* dst, int64_t n) {
  quantize_activation_row(type, x, dst, n);
}

namespace {

using DotFn = float (*)(int64_t, const void*, const void*);

// The kernels that reproduce the reference's accumulation order; null for a
// type where hai::vec_dot is used.
DotFn ggml_order_dot(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0: return ggml_order::dot_q8_0;
    case GgmlType::Q4_0: return ggml_order::dot_q4_0;
    default: return nullptr;
  }
}

}  // namespace

void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, const float* bias,
            std::vector<uint8_t>& scratch, const ParallelFor& pfor) {
  const int64_t n_in = W.n_cols, n_out = W.n_rows;
  const float* out_bias = bias;
  // F16 weights: activations rounded to F16, products summed in 16 lanes
  // as llamafile's tinyBLAS does (the reference's path for these).
  if (W.type == GgmlType::F16 && n_in % 16 == 0) {
    if (scratch.size() < sizeof(float) * n_tokens * n_in) scratch.resize(sizeof(float) * n_tokens * n_in);
    float* xr = reinterpret_cast<float*>(scratch.data());
    for (int64_t j = 0; j < n_tokens * n_in; ++j) xr[j] = fp16_to_fp32(fp32_to_fp16(x[j]));
    pfor(n_out, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint16_t* w_row = static_cast<const uint16_t*>(W.row(r));
        for (int64_t t = 0; t < n_tokens; ++t) {
          const float v = ggml_order::dot_f16_f32(n_in, w_row, xr + t * n_in);
          y[t * n_out + r] = out_bias ? v + out_bias[r] : v;
        }
      }
    });
    return;
  }
  const GgmlType act_type = vec_dot_type(W.type);
  const size_t act_row_bytes = row_size(act_type, n_in);
  // x[t] -> activation rows of act_type.
  if (scratch.size() < act_row_bytes * static_cast<size_t>(n_tokens)) scratch.resize(act_row_bytes * n_tokens);
  uint8_t* xq = scratch.data();
  pfor(n_tokens, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) quantize_activations(act_type, x + t * n_in, xq + t * act_row_bytes, n_in);
  });
  // The reference's accumulation order where we reproduce it, else hai::vec_dot.
  const DotFn exact = ggml_order_dot(W.type);
  // y[t][r]: each thread takes a range of weight rows and walks all tokens,
  // so a weight row is read from memory once per call.
  const bool k_row = W.type == GgmlType::Q4_K || W.type == GgmlType::Q6_K;
  pfor(n_out, [&](int64_t r0, int64_t r1) {
    ggml_order::KRow unpacked;
    for (int64_t r = r0; r < r1; ++r) {
      const void* w_row = W.row(r);
      if (k_row) {
        ggml_order::unpack_k_row(W.type, n_in, w_row, unpacked);
        for (int64_t t = 0; t < n_tokens; ++t) {
          const float v = ggml_order::dot_k_row(unpacked, n_in, xq + t * act_row_bytes);
          y[t * n_out + r] = out_bias ? v + out_bias[r] : v;
        }
        continue;
      }
      for (int64_t t = 0; t < n_tokens; ++t) {
        const void* a_row = xq + t * act_row_bytes;
        const float v = exact ? exact(n_in, w_row, a_row) : vec_dot(W.type, n_in, w_row, a_row);
        y[t * n_out + r] = out_bias ? v + out_bias[r] : v;
      }
    }
  });
}

void embedding_row(const Weight& token_embd, int32_t id, float* out) {
  if (id < 0 || id >= token_embd.n_rows)
    throw Error("token id " + std::to_string(id) + " is out of range [0, " + std::to_string(token_embd.n_rows) + ")");
  dequantize_row(token_embd.type, token_embd.row(id), out, token_embd.n_cols);
}

namespace {

// YaRN: dims below `low` keep extrapolated angles, above `high` interpolated.
float yarn_ramp(float low, float high, int64_t i0) {
  const float y = (static_cast<float>(i0 / 2) - low) / std::max(0.001f, high - low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

// The dimension at which a rotation of `n_rot_turns` full turns over the
// original context happens (YaRN's correction range bounds).
float yarn_corr_dim(int64_t n_dims, int64_t n_ctx_orig, float n_rot_turns, float base) {
  return static_cast<float>(n_dims) *
         logf(static_cast<float>(n_ctx_orig) / (n_rot_turns * 2.0f * static_cast<float>(M_PI))) / (2.0f * logf(base));
}

}  // namespace

void rope_angles(const Hparams& hp, const float* freq_factors, int64_t pos, float* cos_sin) {
  const float theta_scale = powf(hp.rope_freq_base, -2.0f / static_cast<float>(hp.n_rot));
  float corr_low = 0, corr_high = 0;
  if (hp.yarn_ext_factor != 0.0f) {
    const float start = floorf(yarn_corr_dim(hp.n_rot, hp.n_ctx_orig, hp.yarn_beta_fast, hp.rope_freq_base));
    const float end = ceilf(yarn_corr_dim(hp.n_rot, hp.n_ctx_orig, hp.yarn_beta_slow, hp.rope_freq_base));
    corr_low = std::max(0.0f, start);
    corr_high = std::min(static_cast<float>(hp.n_rot - 1), end);
  }
  float theta_extrap = static_cast<float>(pos);
  for (int64_t i0 = 0; i0 < hp.n_rot; i0 += 2) {
    const float ff = freq_factors ? freq_factors[i0 / 2] : 1.0f;
    const float th_ex = theta_extrap / ff;
    const float th_interp = hp.rope_freq_scale * th_ex;
    float theta = th_interp;
    float mscale = hp.yarn_attn_factor;
    if (hp.yarn_ext_factor != 0.0f) {
      const float ramp_mix = yarn_ramp(corr_low, corr_high, i0) * hp.yarn_ext_factor;
      theta = th_interp * (1 - ramp_mix) + th_ex * ramp_mix;
      mscale *= 1.0f + 0.1f * logf(1.0f / hp.rope_freq_scale);
    }
    cos_sin[i0] = cosf(theta) * mscale;
    cos_sin[i0 + 1] = sinf(theta) * mscale;
    theta_extrap *= theta_scale;
  }
}

void rope_apply(RopeLayout layout, int64_t n_rot, const float* cos_sin, float* x) {
  for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
    const float c = cos_sin[i0], s = cos_sin[i0 + 1];
    // normal: rotate (x[i0], x[i0+1]); NeoX: rotate (x[i], x[i + n_rot/2]).
    const int64_t a = layout == RopeLayout::kNormal ? i0 : i0 / 2;
    const int64_t b = layout == RopeLayout::kNormal ? i0 + 1 : i0 / 2 + n_rot / 2;
    const float x0 = x[a], x1 = x[b];
    // As the reference's compiler contracts x0*c - x1*s: the first product
    // fused into the subtraction (a one-ulp difference here would flip F16
    // roundings of Q and K).
    x[a] = std::fma(x0, c, -(x1 * s));
    x[b] = std::fma(x0, s, x1 * c);
  }
}

void softmax_scaled(float* x, int64_t n, float scale) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    x[i] *= scale;
    max = std::max(max, x[i]);
  }
  // exp by ggml's vector expf; the sum of each group of 16 in float (as one
  // SIMD register is reduced), the groups summed in double.
  double sum = 0.0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    float lanes[16] = {0};
    for (int64_t l = 0; l < 16 && i0 + l < n; ++l) {
      x[i0 + l] = ggml_order::v_expf(x[i0 + l] - max);
      lanes[l] = x[i0 + l];
    }
    sum += static_cast<double>(ggml_order::reduce16(lanes));
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    // ggml's SIMD silu on groups of 16, the C library's expf for the rest.
    const bool simd = i < (n & ~int64_t(15));
    const float e = simd ? ggml_order::v_expf(0.0f - x[i]) : expf(-x[i]);
    const float silu = x[i] / (1.0f + e);
    x[i] = silu * y[i];
  }
}

}  // namespace hai::model
