// Reranking of retrieved passages with a cross-encoder: the knowledge base
// retrieves candidates (BM25, dense or their reciprocal-rank fusion), and a
// reranker reads the query with each candidate and orders them by its
// relevance score.
//
//   kb::RerankFn rr = kb::LoadReranker("bge-reranker.gguf");
//   auto hits = kb::SearchReranked(*k, "什么是大模型", opt, rr, /*top_n=*/30);
//
// A knowledge base may be configured with a reranker (SetRerankConfig, `hai
// kb rerank NAME --model FILE`); `hai kb search/ask` and the server then use
// it unless told otherwise. The setting lives in the knowledge base's own
// SQLite file (table meta, keys rerank_model and rerank_top), beside the
// embedding model.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kb/knowledge_base.h"
#include "kb/llm.h"
#include "kb/prompt.h"

namespace hai::kb {

// Scores passages against a query: one score per passage, in order; higher
// is more relevant.
using RerankFn = std::function<std::vector<double>(const std::string& query, const std::vector<std::string>& passages)>;

// A RerankFn over a GGUF cross-encoder (model::Reranker). Throws hai::Error
// for a missing file or a model that is not a reranker.
RerankFn LoadReranker(const std::string& path, int n_threads = 0);

// Candidates reranked when nobody says how many.
constexpr int kDefaultRerankTop = 30;

struct RerankConfig {
  std::string model;             // GGUF path; "" when none is configured
  int top = kDefaultRerankTop;   // candidates to rerank
};

// The reranker configured for knowledge base `name` (model "" when none).
// Throws hai::Error when the knowledge base does not exist.
RerankConfig GetRerankConfig(const std::string& data_dir, const std::string& name);
// Records the reranker of knowledge base `name`, or removes it when
// `config.model` is empty. Throws hai::Error when the knowledge base does not
// exist or config.top is not in [1, 1000].
void SetRerankConfig(const std::string& data_dir, const std::string& name, const RerankConfig& config);

// A reranked hit: the hit with Hit::score set to the reranker's score, and
// where retrieval had put it.
struct RerankedHit {
  Hit hit;
  int retrieval_rank = 0;        // 1-based rank before reranking
  double retrieval_score = 0;    // the retriever's score (BM25, cosine or RRF)
};

// Orders `hits` by `fn`'s score, best first (equal scores keep their
// retrieval order). Throws hai::Error when `fn` returns a score count other
// than the number of hits, or a score that is not a finite number.
std::vector<RerankedHit> RerankHits(const std::string& query, const std::vector<Hit>& hits, const RerankFn& fn);

// Retrieves max(top_n, opt.top_k) candidates with kb.Search(query, opt),
// reranks them all, and returns the best opt.top_k. Throws hai::Error for
// top_n < 1 (and whatever Search throws).
std::vector<RerankedHit> SearchReranked(KnowledgeBase& kb, const std::string& query, const SearchOptions& opt,
                                        const RerankFn& fn, int top_n = kDefaultRerankTop);

// The extractive answer of KnowledgeBase::Ask over reranked sources: the
// best min(opt.top_k, 3) reranked passages, from each the (at most two)
// sentences sharing the most query terms, in passage order, cited [n].
Answer AskReranked(KnowledgeBase& kb, const std::string& question, const SearchOptions& opt, const RerankFn& fn,
                   int top_n);

// AskWithModel (llm.h) over reranked sources: SearchReranked picks the
// opt.top_k passages, then the prompt is fitted to the context the same way
// (passages cut, then the last dropped) and the answer generated.
GeneratedAnswer AskWithModelReranked(KnowledgeBase& kb, ChatModel& model, const std::string& question,
                                     const SearchOptions& opt, AnswerMode mode, const RerankFn& fn, int top_n,
                                     const std::function<void(const std::string&)>& on_text = nullptr);

// Only the hits of `reranked`, in order.
std::vector<Hit> HitsOf(const std::vector<RerankedHit>& reranked);

}  // namespace hai::kb
