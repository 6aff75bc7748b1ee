// Text embeddings from a GGUF model: BERT-family encoders (bge, e5, ...)
// and decoder models used as embedders (Qwen3-Embedding, or any decoder with
// mean / last-token pooling).
//
//   auto e = model::Embedder::load("bge-small-zh.gguf");
//   auto vecs = e->embed({"第一段", "second text"});   // one vector per text
//
// The pooling comes from the model's metadata (`<arch>.pooling_type`:
// 0 none, 1 mean, 2 cls, 3 last); a model without it (or with 0, which
// gives no text vector, or 4, a reranker's rank pooling: see rerank.h)
// uses `fallback` (mean unless asked otherwise), and
// Options::pooling overrides both. Vectors are returned as pooled, not
// normalized, unless `normalize` is set (L2). Texts longer than n_ctx() are
// cut to it, keeping a special token the vocabulary appends ([SEP], EOS) as
// the last one (the truncation is reported through Embedding::truncated).
//
// BERT texts are batched: one forward pass embeds many texts (up to 2048
// tokens together), attention staying within each text; a text's vector
// does not depend on the others in the call. Decoders embed one text at a
// time from an empty cache. Thread-safe: embed() may be called from several
// threads; calls are serialized internally.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace hai::model {

enum class Pooling { None = 0, Mean = 1, Cls = 2, Last = 3 };

struct Embedding {
  std::vector<float> vector;
  int64_t n_tokens = 0;   // tokens embedded (after truncation)
  bool truncated = false;
};

class Embedder {
 public:
  struct Options {
    int n_threads = 0;               // 0: hardware concurrency
    Pooling fallback = Pooling::Mean;  // models whose metadata names none
    bool normalize = false;          // L2-normalize every vector
    // Overrides the pooling of the metadata (and `fallback`) when set and not
    // None (`hai embed --pooling`).
    Pooling pooling = Pooling::None;
  };
  // Throws hai::Error for a missing/corrupt file or an architecture that
  // cannot embed.
  static std::unique_ptr<Embedder> load(const std::string& path, Options options);
  static std::unique_ptr<Embedder> load(const std::string& path) { return load(path, Options{}); }
  virtual ~Embedder() = default;

  virtual int64_t dim() const = 0;
  virtual int64_t n_ctx() const = 0;  // most tokens per text (decoders: at most 8192)
  virtual Pooling pooling() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual std::string arch() const = 0;

  // One embedding per text (tokenized with the model's special tokens, e.g.
  // [CLS] ... [SEP]). Throws hai::Error on invalid UTF-8 naming the text's
  // index. An empty text embeds the special tokens alone.
  virtual std::vector<Embedding> embed(const std::vector<std::string>& texts) = 0;
  // Already tokenized input.
  virtual Embedding embed_tokens(const std::vector<int32_t>& tokens) = 0;
};

}  // namespace hai::model
