#include "engine/model/forward.h"

#include <algorithm>
#include <cmath>

#include "engine/common/error.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model {

Context::Context(const Model& model, int64_t n_ctx, int n_threads)
    : model_(model), hp_(model.hparams()), n_threads_(n_threads) {
  if (n_ctx <= 0) throw Error("context size must be positive, got " + std::to_string(n_ctx));
  if (n_threads < 1 || n_threads > 1024) throw Error("thread count must be in [1, 1024], got " + std::to_string(n_threads));
  cache_ = KvCache(hp_.n_layer, n_ctx, hp_.n_embd_k(), hp_.n_embd_v());
  pool_ = std::make_unique<ThreadPool>(n_threads);
  pfor_ = [pool = pool_.get()](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    pool->parallel_for(0, n, fn);
  };
}

Context::~Context() = default;

void Context::eval(const std::vector<int32_t>& tokens, bool all_logits, std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) throw Error("no tokens to evaluate (empty prompt)");
  if (n_past_ + n > n_ctx())
    throw Error(std::to_string(n) + " tokens after " + std::to_string(n_past_) +
                " already in the cache do not fit in the context of " + std::to_string(n_ctx()) + " tokens");
  for (int32_t id : tokens)
    if (id < 0 || id >= hp_.n_vocab)
      throw Error("token id " + std::to_string(id) + " is out of the vocabulary [0, " + std::to_string(hp_.n_vocab) +
                  ")");

  logits.assign(static_cast<size_t>((all_logits ? n : 1) * hp_.n_vocab), 0.0f);
  for (int64_t s = 0; s < n; s += kMicroBatch) {
    const int64_t m = std::min(kMicroBatch, n - s);
    const bool last = s + m == n;
    const int64_t n_out = all_logits ? m : (last ? 1 : 0);
    float* out = logits.data() + (all_logits ? s * hp_.n_vocab : 0);
    forward(tokens.data() + s, m, n_out, out);
  }
}

// The transformer, for n tokens at positions p0 .. p0+n-1 (p0 = n_past_):
//
//   x = embed(tokens)
//   for each layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)      [qwen3: rmsnorm per head]
//     q, k = rope(q), rope(k);  cache <- k, v
//     x = x + attention(q, cache) Wo
//     h = rmsnorm(x) * ffn_norm
//     x = x + (silu(h Wgate) * (h Wup)) Wdown
//   logits = (rmsnorm(x) * output_norm) Woutput
void Context::forward(const int32_t* tokens, int64_t n, int64_t n_out, float* logits) {
  const Hparams& hp = hp_;
  const int64_t p0 = n_past_;
  const int64_t D = hp.n_embd;
  x_.resize(n * D);
  xb_.resize(n * D);
  q_.resize(n * hp.n_embd_q());
  k_.resize(n * hp.n_embd_k());
  v_.resize(n * hp.n_embd_v());
  att_.resize(n * hp.n_embd_att());
  proj_.resize(n * D);
  gate_.resize(n * hp.n_ff);
  up_.resize(n * hp.n_ff);
  rope_.resize(n * hp.n_rot);

  // x[n][D] = token embeddings; rope angles per position.
  for (int64_t i = 0; i < n; ++i) embedding_row(model_.token_embd, tokens[i], &x_[i * D]);
  const float* freq_factors = model_.rope_freqs ? model_.rope_freqs.f32() : nullptr;
  for (int64_t i = 0; i < n; ++i) rope_angles(hp, freq_factors, p0 + i, &rope_[i * hp.n_rot]);

  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const Layer& L = model_.layers[l];

    // Attention block.
    for (int64_t i = 0; i < n; ++i) rmsnorm(&xb_[i * D], &x_[i * D], L.attn_norm.f32(), D, hp.rms_eps);
    matmul(L.wq, xb_.data(), n, q_.data(), L.bq ? L.bq.f32() : nullptr, act_, pfor_);
    matmul(L.wk, xb_.data(), n, k_.data(), L.bk ? L.bk.f32() : nullptr, act_, pfor_);
    matmul(L.wv, xb_.data(), n, v_.data(), L.bv ? L.bv.f32() : nullptr, act_, pfor_);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < hp.n_head; ++h) {
        float* qh = &q_[(i * hp.n_head + h) * hp.head_dim_k];
        if (L.q_norm) rmsnorm(qh, qh, L.q_norm.f32(), hp.head_dim_k, hp.rms_eps);
        rope_apply(hp.rope_layout, hp.n_rot, &rope_[i * hp.n_rot], qh);
      }
      for (int64_t g = 0; g < hp.n_head_kv; ++g) {
        float* kh = &k_[(i * hp.n_head_kv + g) * hp.head_dim_k];
        if (L.k_norm) rmsnorm(kh, kh, L.k_norm.f32(), hp.head_dim_k, hp.rms_eps);
        rope_apply(hp.rope_layout, hp.n_rot, &rope_[i * hp.n_rot], kh);
      }
    }
    attention(l, n, p0);
    matmul(L.wo, att_.data(), n, proj_.data(), L.bo ? L.bo.f32() : nullptr, act_, pfor_);
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];

    // Feed-forward block (SwiGLU).
    for (int64_t i = 0; i < n; ++i) rmsnorm(&xb_[i * D], &x_[i * D], L.ffn_norm.f32(), D, hp.rms_eps);
    matmul(L.ffn_gate, xb_.data(), n, gate_.data(), nullptr, act_, pfor_);
    matmul(L.ffn_up, xb_.data(), n, up_.data(), nullptr, act_, pfor_);
    for (int64_t i = 0; i < n; ++i) swiglu(&gate_[i * hp.n_ff], &up_[i * hp.n_ff], hp.n_ff);
    matmul(L.ffn_down, gate_.data(), n, proj_.data(), nullptr, act_, pfor_);
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];
  }

  n_past_ += n;
  if (n_out == 0) return;
  // Logits of the last n_out tokens.
  const int64_t first = n - n_out;
  for (int64_t i = first; i < n; ++i) rmsnorm(&xb_[i * D], &x_[i * D], model_.output_norm.f32(), D, hp.rms_eps);
  matmul(model_.output, &xb_[first * D], n_out, logits, nullptr, act_, pfor_);
}

// Causal self-attention of the n new tokens over the cache, with grouped
// heads (n_head / n_head_kv query heads share one K/V head), computed as the
// reference engine does without flash attention: K and V are stored as F16;
// the query is rounded to F16 for Q.K (ggml_vec_dot_f16); the softmax uses
// ggml's vector expf; the F32 probabilities multiply the F16 values in 16
// lanes (tinyBLAS), over the positions padded to a multiple of 16 with zeros.
namespace {

float round_f16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

// F16 x F16 product in tinyBLAS's order (the second operand given as floats
// that are F16 values); ggml_vec_dot_f16's order when n is not a multiple of 16.
float dot_f16_f32(int64_t n, const uint16_t* a, const float* b) {
  if (n % 16 == 0) return ggml_order::dot_f16_f32(n, a, b);
  std::vector<uint16_t> b16(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) b16[i] = fp32_to_fp16(b[i]);
  return ggml_order::dot_f16(n, a, b16.data());
}

}  // namespace

void Context::attention(int64_t layer, int64_t n, int64_t p0) {
  const Hparams& hp = hp_;
  const int64_t hd_k = hp.head_dim_k, hd_v = hp.head_dim_v;
  const int64_t group = hp.n_head / hp.n_head_kv;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd_k));

  // cache <- k, v (F16) for the new positions.
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = p0 + i;
    uint16_t* krow = cache_.k(layer, pos);
    for (int64_t j = 0; j < hp.n_embd_k(); ++j) krow[j] = fp32_to_fp16(k_[i * hp.n_embd_k() + j]);
    for (int64_t d = 0; d < hp.n_embd_v(); ++d) cache_.v(layer, d)[pos] = fp32_to_fp16(v_[i * hp.n_embd_v() + d]);
  }

  // One task per (token, head).
  pfor_(n * hp.n_head, [&](int64_t t0, int64_t t1) {
    std::vector<float> prob(static_cast<size_t>(cache_.v_stride()));
    std::vector<float> q(static_cast<size_t>(hd_k));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / hp.n_head, h = t % hp.n_head, g = h / group;
      const int64_t n_kv = p0 + i + 1;              // causal: positions 0 .. p0+i
      const int64_t n_pad = (n_kv + 15) / 16 * 16;  // <= v_stride
      const float* qh = &q_[(i * hp.n_head + h) * hd_k];
      for (int64_t d = 0; d < hd_k; ++d) q[d] = round_f16(qh[d]);

      // prob[j] = softmax_j(scale * q . k_j), rounded to F16
      for (int64_t j = 0; j < n_kv; ++j) prob[j] = dot_f16_f32(hd_k, cache_.k(layer, j) + g * hd_k, q.data());
      softmax_scaled(prob.data(), n_kv, scale);
      for (int64_t j = 0; j < n_kv; ++j) prob[j] = round_f16(prob[j]);
      std::fill(prob.begin() + n_kv, prob.begin() + n_pad, 0.0f);

      // out[d] = sum_j prob[j] * v_j[d]
      float* out = &att_[(i * hp.n_head + h) * hd_v];
      for (int64_t d = 0; d < hd_v; ++d) out[d] = dot_f16_f32(n_pad, cache_.v(layer, g * hd_v + d), prob.data());
    }
  });
}

}  // namespace hai::model
