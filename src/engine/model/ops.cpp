#include "engine/model/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/common/error.h"
#include "engine/common/thread_pool.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model {

void run_serial(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

void ParallelFor::run_serial(int64_t n, const Body& fn) { model::run_serial(n, fn); }

void ParallelFor::operator()(int64_t n, const Body& fn) const {
  if (pool_)
    pool_->parallel_for(0, n, fn);
  else
    fn_(n, fn);
}

void ParallelFor::fine(int64_t n, const Body& fn) const {
  if (pool_)
    pool_->parallel_for(0, n, n, fn);
  else
    fn_(n, fn);
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

// How the activations of a product with W are prepared. F16 weights:
// floats rounded to F16, products summed in 16 lanes as llamafile's tinyBLAS
// does (the reference's path for these); other types: rows of
// vec_dot_type(W.type).
struct ActivationFormat {
  bool f16 = false;
  GgmlType type = GgmlType::F32;
  size_t row_bytes = 0;
  bool operator==(const ActivationFormat& o) const { return f16 == o.f16 && type == o.type && row_bytes == o.row_bytes; }
};

ActivationFormat activation_format(const Weight& W) {
  ActivationFormat f;
  const int64_t n_in = W.n_cols;
  f.f16 = W.type == GgmlType::F16 && n_in % 16 == 0;
  f.type = f.f16 ? GgmlType::F32 : vec_dot_type(W.type);
  f.row_bytes = f.f16 ? sizeof(float) * n_in : row_size(f.type, n_in);
  return f;
}

// x [n_tokens][n_in] -> n_tokens activation rows of format f at xq.
void convert_activations(const ActivationFormat& f, const float* x, int64_t n_in, int64_t n_tokens, uint8_t* xq,
                         const ParallelFor& pfor) {
  const auto convert = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      if (f.f16) {
        float* xr = reinterpret_cast<float*>(xq + t * f.row_bytes);
        if (ggml_order::have_avx512()) {
          ggml_order::round_f16_n_avx512(x + t * n_in, xr, n_in);
        } else {
          for (int64_t j = 0; j < n_in; ++j) xr[j] = fp16_to_fp32(fp32_to_fp16(x[t * n_in + j]));
        }
      } else {
        quantize_activations(f.type, x + t * n_in, xq + t * f.row_bytes, n_in);
      }
    }
  };
  // A few activation rows (decode: one) are converted on this thread: that
  // takes a microsecond or two, less than waking the pool for it costs.
  constexpr int64_t kSerialConvertValues = 8192;
  if (n_tokens * n_in <= kSerialConvertValues)
    run_serial(n_tokens, convert);
  else
    pfor(n_tokens, convert);
}

// The threads split a product's rows in groups of this many (a multiple of
// every tile's height).
constexpr int64_t kRowGroup = 8;

int64_t row_groups(const Weight& W) { return (W.n_rows + kRowGroup - 1) / kRowGroup; }

// Rows [r0, r1) of y = W x (+ bias) for every token, from the converted
// activations xq (format f).
void matmul_rows(const Weight& W, const ActivationFormat& f, const uint8_t* xq, int64_t n_tokens, float* y,
                 const float* bias, int64_t r0, int64_t r1) {
  const int64_t n_in = W.n_cols, n_out = W.n_rows;
  if (f.f16 || (W.type != GgmlType::F16 && ggml_order::gemm_has(W.type))) {
    // The reference's accumulation order, in tiles of rows x tokens; all
    // tokens for these rows, so a weight row is read from memory once per
    // call (per block of tokens in prefill, from cache).
    ggml_order::GemmArgs g;
    g.n = n_in;
    g.w = W.row(r0);
    g.w_stride = W.row_bytes;
    g.n_rows = r1 - r0;
    g.a = xq;
    g.a_stride = f.row_bytes;
    g.n_tok = n_tokens;
    g.y = y + r0;
    g.ldy = static_cast<size_t>(n_out);
    ggml_order::gemm(W.type, g);
  } else {
    // Other types: hai::vec_dot, one output at a time, each weight row once
    // for all tokens.
    for (int64_t r = r0; r < r1; ++r) {
      const void* w_row = W.row(r);
      for (int64_t t = 0; t < n_tokens; ++t) y[t * n_out + r] = vec_dot(W.type, n_in, w_row, xq + t * f.row_bytes);
    }
  }
  if (bias) {
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * n_out + r] += bias[r];  // the same rounding as v + bias
  }
}

}  // namespace

namespace {

// How the rows of a product are split among the threads: in one contiguous
// part per thread, except for a very large product (a model's output
// matrix: 144 MB in Qwen2.5-0.5B Q8_0, some 4 ms per thread), which is cut
// into parts of about kFinePartBytes of weights that the threads claim as
// they free up, so that a thread slowed down there (preempted, a slower
// memory stream) holds the other up by at most one part.
// Measured side by side (Qwen2.5-0.5B shapes, 2 threads): more parts cost
// more than they balance, as every part starts its rows cold (its first
// group is not prefetched): 4 and 8 parts for every decode product were 5%
// and 7% slower than one per thread, prefill's products in parts of 64 or
// 256 rows 4-6% slower, and moving the boundary of the two parts either
// way slower too. The output matrix in 4 MB parts: no change at idle
// (0.996-1.003x for Q4_0, Q8_0, F16 decode).
constexpr int64_t kFineBytes = int64_t(32) << 20;
constexpr int64_t kFinePartBytes = int64_t(4) << 20;

// Runs body(g0, g1) over the row groups [0, groups) of products holding
// weight_bytes of weights in all, split as above.
void for_groups(int64_t groups, int64_t weight_bytes, const ParallelFor& pfor,
                const std::function<void(int64_t, int64_t)>& body) {
  const int64_t parts = std::min(groups, weight_bytes / kFinePartBytes);
  if (weight_bytes < kFineBytes || parts <= pfor.threads()) return pfor(groups, body);
  pfor.fine(parts, [&](int64_t p0, int64_t p1) {
    body(ThreadPool::chunk(0, groups, static_cast<int>(p0), static_cast<int>(parts)).first,
         ThreadPool::chunk(0, groups, static_cast<int>(p1 - 1), static_cast<int>(parts)).second);
  });
}

}  // namespace

void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, const float* bias,
            std::vector<uint8_t>& scratch, const ParallelFor& pfor) {
  const ActivationFormat f = activation_format(W);
  if (scratch.size() < f.row_bytes * static_cast<size_t>(n_tokens)) scratch.resize(f.row_bytes * n_tokens);
  uint8_t* xq = scratch.data();
  convert_activations(f, x, W.n_cols, n_tokens, xq, pfor);
  for_groups(row_groups(W), W.n_rows * static_cast<int64_t>(W.row_bytes), pfor, [&](int64_t g0, int64_t g1) {
    matmul_rows(W, f, xq, n_tokens, y, bias, g0 * kRowGroup, std::min(W.n_rows, g1 * kRowGroup));
  });
}

void matmul_group(const std::vector<MatmulOut>& outs, const float* x, int64_t n_tokens,
                  std::vector<uint8_t>& scratch, const ParallelFor& pfor) {
  if (outs.empty()) return;
  const int64_t n_in = outs[0].W->n_cols;
  for (const MatmulOut& o : outs)
    if (o.W->n_cols != n_in)
      throw Error("matmul_group: weights of " + std::to_string(o.W->n_cols) + " and " + std::to_string(n_in) +
                  " columns cannot share an input");
  // One converted copy of x per distinct activation format.
  std::vector<ActivationFormat> formats;
  std::vector<size_t> format_of(outs.size()), offset_of;
  size_t bytes = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    const ActivationFormat f = activation_format(*outs[i].W);
    size_t k = 0;
    while (k < formats.size() && !(formats[k] == f)) ++k;
    if (k == formats.size()) {
      formats.push_back(f);
      offset_of.push_back(bytes);
      bytes += f.row_bytes * static_cast<size_t>(n_tokens);
    }
    format_of[i] = k;
  }
  if (scratch.size() < bytes) scratch.resize(bytes);
  for (size_t k = 0; k < formats.size(); ++k)
    convert_activations(formats[k], x, n_in, n_tokens, scratch.data() + offset_of[k], pfor);
  // The row groups of all products, one after the other, split in one loop.
  std::vector<int64_t> first_group(outs.size() + 1, 0);
  int64_t weight_bytes = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    first_group[i + 1] = first_group[i] + row_groups(*outs[i].W);
    weight_bytes += outs[i].W->n_rows * static_cast<int64_t>(outs[i].W->row_bytes);
  }
  for_groups(first_group.back(), weight_bytes, pfor, [&](int64_t g0, int64_t g1) {
    for (size_t i = 0; i < outs.size(); ++i) {
      const int64_t lo = std::max(g0, first_group[i]), hi = std::min(g1, first_group[i + 1]);
      if (lo >= hi) continue;
      const Weight& W = *outs[i].W;
      const size_t k = format_of[i];
      matmul_rows(W, formats[k], scratch.data() + offset_of[k], n_tokens, outs[i].y, outs[i].bias,
                  (lo - first_group[i]) * kRowGroup, std::min(W.n_rows, (hi - first_group[i]) * kRowGroup));
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
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] - max;
  ggml_order::v_expf_n(x, x, n);
  double sum = 0.0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    float lanes[16] = {0};
    for (int64_t l = 0; l < 16 && i0 + l < n; ++l) lanes[l] = x[i0 + l];
    sum += static_cast<double>(ggml_order::reduce16(lanes));
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(float* x, const float* y, int64_t n) {
  // ggml's SIMD silu on groups of 16, the C library's expf for the rest.
  const int64_t n_simd = n & ~int64_t(15);
  float e[256];
  for (int64_t i0 = 0; i0 < n_simd; i0 += 256) {
    const int64_t m = std::min<int64_t>(256, n_simd - i0);
    for (int64_t k = 0; k < m; ++k) e[k] = 0.0f - x[i0 + k];
    ggml_order::v_expf_n(e, e, m);
    for (int64_t k = 0; k < m; ++k) {
      const float silu = x[i0 + k] / (1.0f + e[k]);  // silu(x) = x / (1 + exp(-x))
      x[i0 + k] = silu * y[i0 + k];
    }
  }
  for (int64_t i = n_simd; i < n; ++i) {
    const float silu = x[i] / (1.0f + expf(-x[i]));
    x[i] = silu * y[i];
  }
}

}  // namespace hai::model
