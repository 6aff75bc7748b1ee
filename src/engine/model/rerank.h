// Reranking with a cross-encoder: a BERT-family model with a classification
// head (bert.pooling_type = 4, "rank"; tensors cls.* and cls.output.*, see
// bert.h) reads a query and a document together and gives one relevance
// score (a logit: higher is more relevant; not a probability).
//
//   auto r = model::Reranker::load("bge-reranker.gguf");
//   std::vector<model::RerankScore> s = r->score("什么是大模型", {"文档一", "doc two"});
//   // s[i].score belongs to document i
//
// A pair is tokenized as the model was trained on it: a WordPiece (BERT)
// vocabulary gives [CLS] query [SEP] document [SEP]; other vocabularies
// (XLM-RoBERTa style) BOS query EOS SEP document EOS, as llama.cpp's
// rerank formats it (SEP falls back to EOS). Token types: the query part
// (with its special tokens) is type 0, the document part type 1, as
// Hugging Face's tokenizers give a text pair, when the model has a second
// token-type row; TokenTypes::Zero puts type 0 everywhere, which is what
// llama.cpp computes (its BERT graph adds token type 0 to every token).
//
// A pair longer than the model's positions (n_ctx) is cut in the document,
// keeping the query and the closing special token (RerankScore::truncated).
// A query that leaves no room for the document is an error.
//
// Pairs are batched: one forward pass scores many pairs (up to 2048 tokens
// together); a pair's score does not depend on the others. Thread-safe:
// calls are serialized internally.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace hai::model {

enum class TokenTypes {
  Segment,  // query part 0, document part 1 (Hugging Face's pair encoding)
  Zero,     // type 0 for every token (llama.cpp)
};

struct RerankScore {
  float score = 0.0f;
  int64_t n_tokens = 0;    // tokens of the pair (after truncation)
  bool truncated = false;  // the document was cut to fit n_ctx
};

// One query-document pair ready for the encoder.
struct RerankPair {
  std::vector<int32_t> tokens;
  std::vector<int32_t> types;  // one per token
  bool truncated = false;
};

class Reranker {
 public:
  struct Options {
    int n_threads = 0;  // 0: hardware concurrency
    TokenTypes token_types = TokenTypes::Segment;
  };

  // Throws hai::Error for a missing or corrupt file, an architecture other
  // than "bert", or a model without the classification head (cls.weight,
  // cls.bias): "not a reranker".
  static std::unique_ptr<Reranker> load(const std::string& path, Options options);
  static std::unique_ptr<Reranker> load(const std::string& path) { return load(path, Options{}); }
  ~Reranker();

  // True when `path` is a GGUF file of a model this class can load (a
  // "bert" with cls.weight and cls.bias). Never throws: false for anything
  // unreadable.
  static bool is_reranker(const std::string& path);

  // One score per document, in the documents' order. An empty list gives
  // an empty result. Throws hai::Error on invalid UTF-8 (naming the query
  // or the document's index) or a query too long for the model.
  std::vector<RerankScore> score(const std::string& query, const std::vector<std::string>& documents);

  // The tokens and types of one pair (see the file comment).
  RerankPair tokenize_pair(const std::string& query, const std::string& document) const;
  // Scores of already formed pairs.
  std::vector<float> score_pairs(const std::vector<RerankPair>& pairs);

  int64_t n_ctx() const;
  const Tokenizer& tokenizer() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit Reranker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hai::model
