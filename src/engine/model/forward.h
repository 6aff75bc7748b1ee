// Running a Model: a Context holds the KV cache and the scratch buffers of
// one or more sequences and evaluates tokens through the transformer.
//
//   auto model = Model::load("m.gguf");
//   Context ctx(*model, /*n_ctx=*/2048, /*n_threads=*/2);
//   std::vector<float> logits;
//   ctx.eval(prompt_tokens, /*all_logits=*/false, logits);  // prefill
//   ctx.eval({next}, false, logits);                         // decode
//
// Several sequences (the scheduler's slots) share one Context: each has its
// own region of n_ctx cache positions, and one eval_batch() evaluates tokens
// of different sequences at different positions in one forward pass, so the
// weights are read once for all of them:
//
//   Context ctx(*model, /*n_ctx=*/4096, /*n_threads=*/8, /*n_seq=*/4);
//   ctx.eval_batch({{tok_a, 0, true}, {p0, 1, false}, {p1, 1, true}}, logits);
//   // logits: two rows (seq 0's next token, seq 1 after p0 p1)
//
// Each token attends causally to its own sequence only. The numbers of a
// token do not depend on the other tokens of the batch: a sequence evaluated
// in a batch gets bit for bit the logits it gets alone (given a matmul whose
// rows are independent, which ops.h's is).
//
// A batch is processed in micro-batches of kMicroBatch tokens (the
// reference engine uses 512; 256 is as fast here and keeps the activation
// buffers, and so the peak memory, smaller; the results do not depend on
// it); a single token is the same forward with n = 1.
// The single-sequence calls (eval, eval_hidden, n_past, clear) work on
// sequence 0.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/model/ops.h"

namespace hai::model {

// One token of a multi-sequence batch. It goes at the next position of its
// sequence: seq_len(seq) plus the number of earlier tokens of the same
// sequence in the batch.
struct BatchToken {
  int32_t token = 0;
  int32_t seq = 0;
  bool logits = false;  // whether its row of logits is wanted
};

class Context {
 public:
  static constexpr int64_t kMicroBatch = 256;
  // Tokens whose feed-forward activations ([kFfnChunk][n_ff]) are held at once.
  static constexpr int64_t kFfnChunk = 128;

  // n_ctx: positions the cache holds for each sequence (> 0). n_threads >= 1.
  // n_seq: independent sequences (>= 1). kv_type: how the cache stores keys
  // and values (F16 reproduces the reference engine; Q8_0 takes half the
  // memory and gives slightly different numbers).
  Context(const Model& model, int64_t n_ctx, int n_threads = 1, int n_seq = 1, KvType kv_type = KvType::kF16);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Evaluates `tokens` at positions n_past() .. n_past() + n - 1 of sequence
  // 0 and appends them to the cache. `logits` receives n_vocab floats per
  // token when all_logits, else those of the last token only. Throws
  // hai::Error on an empty batch, a token id outside the vocabulary, or when
  // the tokens do not fit in the context.
  void eval(const std::vector<int32_t>& tokens, bool all_logits, std::vector<float>& logits);

  // Like eval, but instead of logits returns the final hidden state of every
  // token (after output_norm, before the output matrix): `hidden` receives
  // [n][n_embd] floats. The tokens are appended to the cache as by eval (call
  // clear() first to embed a text on its own). Same errors as eval.
  void eval_hidden(const std::vector<int32_t>& tokens, std::vector<float>& hidden);

  // Evaluates a batch of tokens of several sequences in one forward pass and
  // appends each to its sequence. `logits` receives n_vocab floats for every
  // token with `logits` set, in batch order. Throws hai::Error, before
  // touching the cache, on an empty batch, a sequence id outside
  // [0, n_seq()), a token id outside the vocabulary, or a sequence that would
  // grow beyond n_ctx().
  void eval_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits);

  int64_t n_past() const { return len_[0]; }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int n_seq() const { return static_cast<int>(len_.size()); }
  int n_threads() const { return n_threads_; }
  KvType kv_type() const { return cache_.type(); }
  size_t kv_bytes() const { return cache_.bytes(); }
  const Model& model() const { return model_; }
  // Forgets every position of every sequence (the next eval starts at 0).
  void clear();

  // Positions held by sequence `seq`.
  int64_t seq_len(int seq) const;
  // Keeps the first n positions of `seq` and forgets the rest (n <= seq_len;
  // n = 0 empties it). Used by the prefix cache.
  void seq_truncate(int seq, int64_t n);
  // Makes `dst` hold the first n positions of `src` (n <= seq_len(src)).
  // Positions before `from` are kept as they are in `dst` (from <=
  // seq_len(dst)); the caller knows they hold the same tokens as in `src`.
  // Only positions from .. n-1 are copied.
  void seq_copy(int src, int dst, int64_t n, int64_t from = 0);

 private:
  enum class Output { kLogits, kHidden };
  // Fills the micro-batch (tok_, seq_, pos_) with m tokens of sequence 0 at
  // its next positions (the single-sequence calls).
  void stage_sequence0(const int32_t* tokens, int64_t m);
  // The transformer on the n tokens of micro-batch (tok_, seq_, pos_).
  // Writes one row (logits or hidden state) for each token i with out_[i],
  // in order, to `out`.
  void forward(int64_t n, Output what, float* out);
  void attention(int64_t layer, int64_t n);
  void attention_q8_0(int64_t layer, int64_t n);
  void swiglu_rows(int64_t n);
  void check_tokens(const int32_t* tokens, int64_t n) const;
  void check_fits(int seq, int64_t n) const;
  void check_seq(int seq) const;

  const Model& model_;
  const Hparams& hp_;
  KvCache cache_;
  std::vector<int64_t> len_;  // positions held, per sequence
  int n_threads_ = 1;
  std::unique_ptr<ThreadPool> pool_;
  ParallelFor pfor_;

  // The current micro-batch, one entry per token.
  std::vector<int32_t> tok_;
  std::vector<int32_t> seq_;
  std::vector<int64_t> pos_;
  std::vector<char> out_;

  // Activations of the current micro-batch, [n][width] each.
  std::vector<float> x_;       // residual stream [n][n_embd]
  std::vector<float> xb_;      // normed input of a block [n][n_embd]
  std::vector<float> q_;       // [n][n_head * head_dim_k]
  std::vector<float> k_;       // [n][n_head_kv * head_dim_k]
  std::vector<float> v_;       // [n][n_head_kv * head_dim_v]
  std::vector<float> att_;     // attention output [n][n_head * head_dim_v]
  std::vector<float> proj_;    // output of a projection back to [n][n_embd]
  std::vector<float> gate_;    // [min(n, kFfnChunk)][n_ff]
  std::vector<float> up_;      // [min(n, kFfnChunk)][n_ff]
  std::vector<float> rope_;    // cos/sin per token [n][n_rot]
  std::vector<uint8_t> act_;   // activations converted for a matmul
};

}  // namespace hai::model
