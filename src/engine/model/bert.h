// A BERT-family text encoder (arch "bert": bge, e5, MiniLM, ...) loaded
// from a GGUF file in llama.cpp's naming, and its forward pass.
//
// The encoder, as in the paper (post-norm transformer, bidirectional):
//
//   x  = LayerNorm(tok_embd[t] + type_embd[0] + pos_embd[p])      per token
//   for each layer:
//     a  = softmax(Q K^T / sqrt(d)) V per head, Q/K/V = x W + b     (all tokens of the text)
//     x  = LayerNorm(x + a Wo + bo)                                 attn_output_norm
//     x  = LayerNorm(x + GELU(x W_up + b_up) W_down + b_down)       layer_output_norm
//
// There is no final norm: the hidden states of the last layer are what the
// Embedder pools (CLS: the first token; mean: all tokens).
//
// A reranker (cross-encoder, bert.pooling_type = 4 "rank") adds a
// classification head on the hidden state h of the first token ([CLS]),
// as llama.cpp's rank pooling computes it:
//
//   c     = tanh(h cls.weight + cls.bias)                  [n_embd]
//   out   = c cls.output.weight + cls.output.bias          [n_cls_out]
//   score = out[0]
//
// (a model without cls.output stops at c; its score is c[0]). Token types
// other than 0 ("sentence B") are taken from the caller when it gives them.
//
// BertModel::load checks every key and tensor the forward pass relies on
// (shapes implied by the hyper-parameters, computable types) and throws
// hai::Error naming the file and the key / tensor, never a crash later.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/gguf/gguf.h"
#include "engine/model/model.h"
#include "engine/model/ops.h"

namespace hai::model {

struct BertHparams {
  int64_t n_vocab = 0;        // rows of token_embd
  int64_t n_ctx_train = 0;    // bert.context_length (rows of position_embd)
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_token_types = 2;  // tokenizer.ggml.token_type_count (rows of token_types)
  float norm_eps = 1e-12f;    // bert.attention.layer_norm_epsilon
  int pooling_type = -1;      // bert.pooling_type (0 none, 1 mean, 2 cls, 3 last, 4 rank); -1 absent
  int64_t n_cls_out = 1;      // rows of cls.output.weight (classifier outputs), 1 when absent

  int64_t head_dim() const { return n_embd / n_head; }
};

// Reads and checks the hyper-parameters of a "bert" file. Throws hai::Error
// naming the key or value.
BertHparams read_bert_hparams(const gguf::File& file);

// Every tensor of the architecture with the shapes that `hp` implies.
std::vector<TensorSpec> bert_expected_tensors(const BertHparams& hp);

struct BertLayer {
  Weight wq, wk, wv, wo;             // [n_embd -> n_embd]
  Weight bq, bk, bv, bo;             // [n_embd]
  Weight attn_norm_w, attn_norm_b;   // attn_output_norm: [n_embd]
  Weight ffn_up, ffn_up_b;           // [n_embd -> n_ff], [n_ff]
  Weight ffn_down, ffn_down_b;       // [n_ff -> n_embd], [n_embd]
  Weight out_norm_w, out_norm_b;     // layer_output_norm: [n_embd]
};

class BertModel {
 public:
  // Opens, maps and checks `path`. Throws hai::Error("PATH: ...").
  static std::unique_ptr<BertModel> load(const std::string& path);
  // Binds the weights of an already opened file (which is moved in).
  static std::unique_ptr<BertModel> from_file(gguf::File file);

  const gguf::File& file() const { return file_; }
  const BertHparams& hparams() const { return hp_; }

  Weight token_embd;     // [n_embd] x n_vocab rows
  Weight token_types;    // [n_embd] x n_token_types rows (optional: then none added)
  Weight position_embd;  // [n_embd] x n_ctx_train rows
  Weight embd_norm_w, embd_norm_b;  // token_embd_norm: [n_embd]
  std::vector<BertLayer> layers;
  // Classification head of a reranker (all optional; see the file comment).
  Weight cls_w, cls_b;          // cls.weight [n_embd -> n_embd], cls.bias [n_embd]
  Weight cls_out_w, cls_out_b;  // cls.output.weight [n_embd -> n_cls_out], cls.output.bias [n_cls_out]

  // True when the file has the classification head rank scoring needs
  // (cls.weight and cls.bias).
  bool has_rank_head() const { return static_cast<bool>(cls_w) && static_cast<bool>(cls_b); }

 private:
  explicit BertModel(gguf::File file) : file_(std::move(file)) {}
  void bind();

  gguf::File file_;
  BertHparams hp_;
};

// Runs a BertModel. Several texts go through one forward pass: the matrix
// products see the tokens of all of them at once (each weight is read once
// per batch), while attention stays within each text. The hidden states of
// a text do not depend on the other texts of the batch.
class BertEncoder {
 public:
  // n_threads >= 1.
  BertEncoder(const BertModel& model, int n_threads);
  ~BertEncoder();
  BertEncoder(const BertEncoder&) = delete;
  BertEncoder& operator=(const BertEncoder&) = delete;

  // hidden receives the final hidden states of every token of every text,
  // [sum of sizes][n_embd], texts in order. Throws hai::Error on an empty
  // text, a text longer than n_ctx_train, or a token id outside the
  // vocabulary.
  void encode(const std::vector<std::vector<int32_t>>& texts, std::vector<float>& hidden);
  // The same with a token type per token (types[i].size() == texts[i].size(),
  // each in [0, n_token_types)); type 0 everywhere is what encode() without
  // types adds. A model without token_types.weight accepts only type 0.
  void encode(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>& types,
              std::vector<float>& hidden);

  // Rank scores, one per text: the encoder, then the classification head on
  // each text's first hidden state (see the file comment). `types` as for
  // encode (may be empty: all type 0). Throws hai::Error when the model has
  // no cls.weight / cls.bias.
  void rank(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>& types,
            std::vector<float>& scores);

  const BertModel& model() const { return model_; }

 private:
  void run(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>* types);
  void attention();
  void residual_norm(int64_t n, const Weight& w, const Weight& b);

  const BertModel& model_;
  const BertHparams& hp_;
  std::unique_ptr<ThreadPool> pool_;
  ParallelFor pfor_;

  std::vector<int64_t> start_;  // first token of each text in the batch, plus the total at the end

  // Activations, [n][width] for the n tokens of the batch.
  std::vector<float> x_;     // residual stream / hidden state [n][n_embd]
  std::vector<float> q_, k_, v_;  // [n][n_embd]
  std::vector<float> att_;   // attention output [n][n_embd]
  std::vector<float> proj_;  // projection back to [n][n_embd]
  std::vector<float> ff_;    // [n][n_ff]
  std::vector<uint8_t> act_;   // activations converted for a matmul
};

// y = (x - mean(x)) / sqrt(var(x) + eps) * w + b over n values (w, b may be
// null), as ggml's norm: sums in double, the scale in float.
void bert_layer_norm(float* y, const float* x, const float* w, const float* b, int64_t n, float eps);

// GELU (tanh form) as ggml's CPU backend computes it: the input rounded to
// F16 and looked up in a table of F16 results, exact beyond |x| >= 10.
float bert_gelu(float x);

}  // namespace hai::model
