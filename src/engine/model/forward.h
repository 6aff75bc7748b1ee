// Running a Model: a Context holds the KV cache and the scratch buffers of
// one sequence and evaluates tokens through the transformer.
//
//   auto model = Model::load("m.gguf");
//   Context ctx(*model, /*n_ctx=*/2048, /*n_threads=*/2);
//   std::vector<float> logits;
//   ctx.eval(prompt_tokens, /*all_logits=*/false, logits);  // prefill
//   ctx.eval({next}, false, logits);                         // decode
//
// A prompt is processed in micro-batches of kMicroBatch tokens (as the
// reference engine does); a single token is the same forward with n = 1.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/model/ops.h"

namespace hai::model {

class Context {
 public:
  static constexpr int64_t kMicroBatch = 512;

  // n_ctx: positions the cache holds (> 0). n_threads >= 1.
  Context(const Model& model, int64_t n_ctx, int n_threads = 1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Evaluates `tokens` at positions n_past() .. n_past() + n - 1 and appends
  // them to the cache. `logits` receives n_vocab floats per token when
  // all_logits, else those of the last token only. Throws hai::Error on an
  // empty batch, a token id outside the vocabulary, or when the tokens do not
  // fit in the context.
  void eval(const std::vector<int32_t>& tokens, bool all_logits, std::vector<float>& logits);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int n_threads() const { return n_threads_; }
  const Model& model() const { return model_; }
  // Forgets every position (the next eval starts at position 0).
  void clear() { n_past_ = 0; }

 private:
  // The transformer on one micro-batch of n tokens at positions p0.. .
  // Writes n_out rows of logits (the last n_out tokens) to `logits`.
  void forward(const int32_t* tokens, int64_t n, int64_t n_out, float* logits);
  void attention(int64_t layer, int64_t n, int64_t p0);

  const Model& model_;
  const Hparams& hp_;
  KvCache cache_;
  int64_t n_past_ = 0;
  int n_threads_ = 1;
  std::unique_ptr<ThreadPool> pool_;
  ParallelFor pfor_;

  // Activations of the current micro-batch, [n][width] each.
  std::vector<float> x_;       // residual stream [n][n_embd]
  std::vector<float> xb_;      // normed input of a block [n][n_embd]
  std::vector<float> q_;       // [n][n_head * head_dim_k]
  std::vector<float> k_;       // [n][n_head_kv * head_dim_k]
  std::vector<float> v_;       // [n][n_head_kv * head_dim_v]
  std::vector<float> att_;     // attention output [n][n_head * head_dim_v]
  std::vector<float> proj_;    // output of a projection back to [n][n_embd]
  std::vector<float> gate_;    // [n][n_ff]
  std::vector<float> up_;      // [n][n_ff]
  std::vector<float> rope_;    // cos/sin per token [n][n_rot]
  std::vector<uint8_t> act_;   // activations converted for a matmul
};

}  // namespace hai::model
