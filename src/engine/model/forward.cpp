#include "engine/model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "engine/common/error.h"
#include "engine/model/attention_kernels.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model {

Context::Context(const Model& model, int64_t n_ctx, int n_threads, int n_seq, KvType kv_type)
    : model_(model), hp_(model.hparams()), n_threads_(n_threads) {
  if (n_ctx <= 0) throw Error("context size must be positive, got " + std::to_string(n_ctx));
  if (n_threads < 1 || n_threads > 1024) throw Error("thread count must be in [1, 1024], got " + std::to_string(n_threads));
  if (n_seq < 1 || n_seq > 4096) throw Error("sequence count must be in [1, 4096], got " + std::to_string(n_seq));
  cache_ = KvCache(hp_.n_layer, n_ctx, hp_.n_embd_k(), hp_.n_embd_v(), n_seq, kv_type, hp_.head_dim_k, hp_.head_dim_v);
  len_.assign(static_cast<size_t>(n_seq), 0);
  pool_ = std::make_unique<ThreadPool>(n_threads);
  pfor_ = ParallelFor(pool_.get());
}

Context::~Context() = default;

void Context::check_seq(int seq) const {
  if (seq < 0 || seq >= n_seq())
    throw Error("sequence id " + std::to_string(seq) + " is out of range [0, " + std::to_string(n_seq()) + ")");
}

void Context::check_tokens(const int32_t* tokens, int64_t n) const {
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab)
      throw Error("token id " + std::to_string(tokens[i]) + " is out of the vocabulary [0, " +
                  std::to_string(hp_.n_vocab) + ")");
}

void Context::check_fits(int seq, int64_t n) const {
  if (len_[seq] + n > n_ctx())
    throw Error(std::to_string(n) + " tokens after " + std::to_string(len_[seq]) +
                " already in the cache do not fit in the context of " + std::to_string(n_ctx()) + " tokens");
}

int64_t Context::seq_len(int seq) const {
  check_seq(seq);
  return len_[seq];
}

void Context::clear() {
  for (int s = 0; s < n_seq(); ++s) seq_truncate(s, 0);
}

void Context::seq_truncate(int seq, int64_t n) {
  check_seq(seq);
  if (n < 0 || n > len_[seq])
    throw Error("cannot truncate sequence " + std::to_string(seq) + " of " + std::to_string(len_[seq]) +
                " positions to " + std::to_string(n));
  cache_.zero_values(seq, n, len_[seq]);
  len_[seq] = n;
}

void Context::seq_copy(int src, int dst, int64_t n, int64_t from) {
  check_seq(src);
  check_seq(dst);
  if (n < 0 || n > len_[src] || from < 0 || from > n || from > len_[dst])
    throw Error("cannot copy positions " + std::to_string(from) + ".." + std::to_string(n) + " of sequence " +
                std::to_string(src) + " (" + std::to_string(len_[src]) + " positions) to sequence " +
                std::to_string(dst) + " (" + std::to_string(len_[dst]) + " positions)");
  if (src == dst) {
    seq_truncate(dst, n);
    return;
  }
  seq_truncate(dst, from);
  cache_.copy(src, dst, from, n);
  len_[dst] = n;
}

void Context::eval(const std::vector<int32_t>& tokens, bool all_logits, std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) throw Error("no tokens to evaluate (empty prompt)");
  check_fits(0, n);
  check_tokens(tokens.data(), n);

  logits.assign(static_cast<size_t>((all_logits ? n : 1) * hp_.n_vocab), 0.0f);
  for (int64_t s = 0; s < n; s += kMicroBatch) {
    const int64_t m = std::min(kMicroBatch, n - s);
    stage_sequence0(tokens.data() + s, m);
    out_.assign(static_cast<size_t>(m), all_logits ? 1 : 0);
    if (s + m == n) out_[m - 1] = 1;
    forward(m, Output::kLogits, logits.data() + (all_logits ? s * hp_.n_vocab : 0));
  }
}

// Tokens [0, m) of a single-sequence call: sequence 0, next positions.
void Context::stage_sequence0(const int32_t* tokens, int64_t m) {
  tok_.assign(tokens, tokens + m);
  seq_.assign(static_cast<size_t>(m), 0);
  pos_.resize(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) pos_[i] = len_[0] + i;
}

void Context::eval_hidden(const std::vector<int32_t>& tokens, std::vector<float>& hidden) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) throw Error("no tokens to evaluate (empty prompt)");
  check_fits(0, n);
  check_tokens(tokens.data(), n);

  hidden.assign(static_cast<size_t>(n * hp_.n_embd), 0.0f);
  for (int64_t s = 0; s < n; s += kMicroBatch) {
    const int64_t m = std::min(kMicroBatch, n - s);
    stage_sequence0(tokens.data() + s, m);
    out_.assign(static_cast<size_t>(m), 1);
    forward(m, Output::kHidden, hidden.data() + s * hp_.n_embd);
  }
}

void Context::eval_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(batch.size());
  if (n == 0) throw Error("no tokens to evaluate (empty batch)");
  // Validate everything before the cache changes.
  std::vector<int64_t> next(len_);
  int64_t n_rows = 0;
  for (const BatchToken& b : batch) {
    check_seq(b.seq);
    check_tokens(&b.token, 1);
    ++next[b.seq];
    n_rows += b.logits ? 1 : 0;
  }
  for (int s = 0; s < n_seq(); ++s)
    if (next[s] > n_ctx())
      throw Error("sequence " + std::to_string(s) + ": " + std::to_string(next[s] - len_[s]) + " tokens after " +
                  std::to_string(len_[s]) + " already in the cache do not fit in the context of " +
                  std::to_string(n_ctx()) + " tokens");

  logits.assign(static_cast<size_t>(n_rows * hp_.n_vocab), 0.0f);
  std::copy(len_.begin(), len_.end(), next.begin());
  int64_t row = 0;
  for (int64_t s = 0; s < n; s += kMicroBatch) {
    const int64_t m = std::min(kMicroBatch, n - s);
    tok_.resize(static_cast<size_t>(m));
    seq_.resize(static_cast<size_t>(m));
    pos_.resize(static_cast<size_t>(m));
    out_.resize(static_cast<size_t>(m));
    int64_t rows = 0;
    for (int64_t i = 0; i < m; ++i) {
      const BatchToken& b = batch[s + i];
      tok_[i] = b.token;
      seq_[i] = b.seq;
      pos_[i] = next[b.seq]++;
      out_[i] = b.logits ? 1 : 0;
      rows += out_[i];
    }
    forward(m, Output::kLogits, logits.data() + row * hp_.n_vocab);
    row += rows;
  }
}

// The transformer, for the n tokens of the micro-batch, token i of sequence
// seq_[i] at position pos_[i]:
//
//   x = embed(tokens)
//   for each layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)      [qwen3: rmsnorm per head]
//     q, k = rope(q), rope(k);  cache <- k, v
//     x = x + attention(q, cache) Wo
//     h = rmsnorm(x) * ffn_norm
//     x = x + (silu(h Wgate) * (h Wup)) Wdown
//   hidden = rmsnorm(x) * output_norm;  logits = hidden Woutput
void Context::forward(int64_t n, Output what, float* out) {
  const Hparams& hp = hp_;
  const int64_t D = hp.n_embd;
  x_.resize(n * D);
  xb_.resize(n * D);
  q_.resize(n * hp.n_embd_q());
  k_.resize(n * hp.n_embd_k());
  v_.resize(n * hp.n_embd_v());
  att_.resize(n * hp.n_embd_att());
  proj_.resize(n * D);
  gate_.resize(std::min(n, kFfnChunk) * hp.n_ff);
  up_.resize(std::min(n, kFfnChunk) * hp.n_ff);
  rope_.resize(n * hp.n_rot);

  // x[n][D] = token embeddings; rope angles per position.
  for (int64_t i = 0; i < n; ++i) embedding_row(model_.token_embd, tok_[i], &x_[i * D]);
  const float* freq_factors = model_.rope_freqs ? model_.rope_freqs.f32() : nullptr;
  for (int64_t i = 0; i < n; ++i) rope_angles(hp, freq_factors, pos_[i], &rope_[i * hp.n_rot]);

  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const Layer& L = model_.layers[l];

    // Attention block.
    for (int64_t i = 0; i < n; ++i) rmsnorm(&xb_[i * D], &x_[i * D], L.attn_norm.f32(), D, hp.rms_eps);
    // q, k and v in one parallel loop (one wake-up of the pool, not three).
    matmul_group({{&L.wq, q_.data(), L.bq ? L.bq.f32() : nullptr},
                  {&L.wk, k_.data(), L.bk ? L.bk.f32() : nullptr},
                  {&L.wv, v_.data(), L.bv ? L.bv.f32() : nullptr}},
                 xb_.data(), n, act_, pfor_);
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
    attention(l, n);
    matmul(L.wo, att_.data(), n, proj_.data(), L.bo ? L.bo.f32() : nullptr, act_, pfor_);
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];

    // Feed-forward block (SwiGLU).
    for (int64_t i = 0; i < n; ++i) rmsnorm(&xb_[i * D], &x_[i * D], L.ffn_norm.f32(), D, hp.rms_eps);
    // In chunks of kFfnChunk tokens, so that the n_ff-wide activations stay
    // small (the matmuls walk tokens in smaller blocks anyway).
    for (int64_t c0 = 0; c0 < n; c0 += kFfnChunk) {
      const int64_t m = std::min(kFfnChunk, n - c0);
      matmul_group({{&L.ffn_gate, gate_.data(), nullptr}, {&L.ffn_up, up_.data(), nullptr}}, &xb_[c0 * D], m, act_,
                   pfor_);
      swiglu_rows(m);
      matmul(L.ffn_down, gate_.data(), m, &proj_[c0 * D], nullptr, act_, pfor_);
    }
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];
  }
  for (int64_t i = 0; i < n; ++i) len_[seq_[i]] = std::max(len_[seq_[i]], pos_[i] + 1);

  // Final norm of the wanted tokens, gathered into xb_[0 .. n_out).
  int64_t n_out = 0;
  for (int64_t i = 0; i < n; ++i)
    if (out_[i]) rmsnorm(&xb_[n_out++ * D], &x_[i * D], model_.output_norm.f32(), D, hp.rms_eps);
  if (n_out == 0) return;
  if (what == Output::kHidden)
    std::memcpy(out, xb_.data(), static_cast<size_t>(n_out * D) * sizeof(float));
  else
    matmul(model_.output, xb_.data(), n_out, out, nullptr, act_, pfor_);
}

// gate = silu(gate) * up for every token, split over the threads in pieces
// of whole rows or of kPiece values: each piece starts at a multiple of 16
// of its row and the last one ends with the row, so swiglu's SIMD groups
// and scalar tail are the same as for the whole row.
void Context::swiglu_rows(int64_t n) {
  constexpr int64_t kPiece = 512;
  const int64_t n_ff = hp_.n_ff, per_row = (n_ff + kPiece - 1) / kPiece;
  pfor_(n * per_row, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / per_row, a = (t % per_row) * kPiece, b = std::min(n_ff, a + kPiece);
      swiglu(&gate_[i * n_ff + a], &up_[i * n_ff + a], b - a);
    }
  });
}

// Causal self-attention of the n new tokens over the cache of their own
// sequences, with grouped heads (n_head / n_head_kv query heads share one K/V
// head), computed as the reference engine does without flash attention: K
// and V are stored as F16; the query is rounded to F16 for Q.K
// (ggml_vec_dot_f16); the softmax uses ggml's vector expf; the F32
// probabilities multiply the F16 values in 16 lanes (tinyBLAS), over the
// positions padded to a multiple of 16 with zeros. The products of one query
// with all keys, and of the probabilities with all value rows, are computed
// many at a time (attention_kernels.h), each with the same bits.
namespace {

// F16 x F16 product in tinyBLAS's order (the second operand given as floats
// that are F16 values); ggml_vec_dot_f16's order when n is not a multiple of 16.
float dot_f16_f32(int64_t n, const uint16_t* a, const float* b) {
  if (n % 16 == 0) return ggml_order::dot_f16_f32(n, a, b);
  std::vector<uint16_t> b16(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) b16[i] = fp32_to_fp16(b[i]);
  return ggml_order::dot_f16(n, a, b16.data());
}

}  // namespace

void Context::attention(int64_t layer, int64_t n) {
  if (cache_.type() == KvType::kQ8_0) return attention_q8_0(layer, n);
  const Hparams& hp = hp_;
  const int64_t hd_k = hp.head_dim_k, hd_v = hp.head_dim_v;
  const int64_t group = hp.n_head / hp.n_head_kv;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd_k));

  // cache <- k, v (F16) for the new positions. Every token of the batch is
  // written before any attends: a token sees its own sequence up to its own
  // position only (causal), so the later tokens written here stay unseen.
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = seq_[i], pos = pos_[i];
    uint16_t* krow = cache_.k(layer, s, pos);
    for (int64_t j = 0; j < hp.n_embd_k(); ++j) krow[j] = fp32_to_fp16(k_[i * hp.n_embd_k() + j]);
    for (int64_t d = 0; d < hp.n_embd_v(); ++d) cache_.v(layer, s, d)[pos] = fp32_to_fp16(v_[i * hp.n_embd_v() + d]);
  }

  // One task per (token, head).
  pfor_(n * hp.n_head, [&](int64_t t0, int64_t t1) {
    std::vector<float> prob(static_cast<size_t>(cache_.v_stride()));
    std::vector<float> q(static_cast<size_t>(hd_k));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / hp.n_head, h = t % hp.n_head, g = h / group;
      const int64_t s = seq_[i];
      const int64_t n_kv = pos_[i] + 1;             // causal: positions 0 .. pos
      const int64_t n_pad = (n_kv + 15) / 16 * 16;  // <= v_stride
      const float* qh = &q_[(i * hp.n_head + h) * hd_k];
      std::copy(qh, qh + hd_k, q.begin());
      attn::round_f16(q.data(), hd_k);

      // prob[j] = softmax_j(scale * q . k_j), rounded to F16
      if (hd_k % 16 == 0) {
        attn::scores_f16(hd_k, q.data(), cache_.k(layer, s, 0) + g * hd_k, static_cast<size_t>(hp.n_embd_k()), n_kv,
                         prob.data());
      } else {
        for (int64_t j = 0; j < n_kv; ++j) prob[j] = dot_f16_f32(hd_k, cache_.k(layer, s, j) + g * hd_k, q.data());
      }
      softmax_scaled(prob.data(), n_kv, scale);
      attn::round_f16(prob.data(), n_kv);
      std::fill(prob.begin() + n_kv, prob.begin() + n_pad, 0.0f);

      // out[d] = sum_j prob[j] * v_j[d]
      float* out = &att_[(i * hp.n_head + h) * hd_v];
      attn::values_f16(n_pad, prob.data(), cache_.v(layer, s, g * hd_v), static_cast<size_t>(cache_.v_stride()), hd_v,
                       out);
    }
  });
}

// The same attention over a Q8_0 cache: keys and values are stored as Q8_0
// rows; the query is quantized to Q8_0 for the integer dot product with each
// key; the probabilities weight the dequantized values.
void Context::attention_q8_0(int64_t layer, int64_t n) {
  const Hparams& hp = hp_;
  const int64_t hd_k = hp.head_dim_k, hd_v = hp.head_dim_v;
  const int64_t group = hp.n_head / hp.n_head_kv;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd_k));
  const size_t head_k_bytes = row_size(GgmlType::Q8_0, hd_k), head_v_bytes = row_size(GgmlType::Q8_0, hd_v);

  for (int64_t i = 0; i < n; ++i) {
    quantize_row(GgmlType::Q8_0, &k_[i * hp.n_embd_k()], cache_.k_q8(layer, seq_[i], pos_[i]), hp.n_embd_k());
    quantize_row(GgmlType::Q8_0, &v_[i * hp.n_embd_v()], cache_.v_q8(layer, seq_[i], pos_[i]), hp.n_embd_v());
  }

  pfor_(n * hp.n_head, [&](int64_t t0, int64_t t1) {
    std::vector<float> prob(static_cast<size_t>(n_ctx()));
    std::vector<uint8_t> q8(head_k_bytes);
    std::vector<float> v(static_cast<size_t>(hd_v));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / hp.n_head, h = t % hp.n_head, g = h / group;
      const int64_t s = seq_[i], n_kv = pos_[i] + 1;
      quantize_activation_row(GgmlType::Q8_0, &q_[(i * hp.n_head + h) * hd_k], q8.data(), hd_k);

      // prob[j] = softmax_j(scale * q . k_j)
      for (int64_t j = 0; j < n_kv; ++j)
        prob[j] = vec_dot(GgmlType::Q8_0, hd_k, cache_.k_q8(layer, s, j) + g * head_k_bytes, q8.data());
      softmax_scaled(prob.data(), n_kv, scale);

      // out = sum_j prob[j] * v_j
      float* out = &att_[(i * hp.n_head + h) * hd_v];
      std::fill(out, out + hd_v, 0.0f);
      for (int64_t j = 0; j < n_kv; ++j) {
        dequantize_row(GgmlType::Q8_0, cache_.v_q8(layer, s, j) + g * head_v_bytes, v.data(), hd_v);
        for (int64_t d = 0; d < hd_v; ++d) out[d] += prob[j] * v[d];
      }
    }
  });
}

}  // namespace hai::model
