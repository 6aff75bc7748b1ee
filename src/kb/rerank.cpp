#include "kb/rerank.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "engine/common/error.h"
#include "engine/model/rerank.h"
#include "kb/sqlite_db.h"
#include "kb/text.h"

namespace hai::kb {
namespace {

// The knowledge base's SQLite file (as KnowledgeBase keeps it), after
// checking that the knowledge base exists (Open's error names it).
std::string DbFile(const std::string& data_dir, const std::string& name) {
  KnowledgeBase::Open(data_dir, name);
  return data_dir + "/kb/" + name + ".sqlite";
}

std::string GetMeta(Db& db, const char* key) {
  Stmt s(db, "SELECT value FROM meta WHERE key=?");
  s.Bind(1, std::string_view(key));
  return s.Step() ? s.Text(0) : "";
}

void SetMeta(Db& db, const char* key, const std::string& value) {
  Stmt s(db, "INSERT INTO meta(key,value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  s.Bind(1, std::string_view(key)).Bind(2, std::string_view(value)).Run();
}

void DeleteMeta(Db& db, const char* key) {
  Stmt s(db, "DELETE FROM meta WHERE key=?");
  s.Bind(1, std::string_view(key)).Run();
}

}  // namespace

RerankFn LoadReranker(const std::string& path, int n_threads) {
  model::Reranker::Options o;
  o.n_threads = n_threads;
  std::shared_ptr<model::Reranker> r = model::Reranker::load(path, o);
  return [r](const std::string& query, const std::vector<std::string>& passages) {
    std::vector<double> out;
    out.reserve(passages.size());
    for (const model::RerankScore& s : r->score(query, passages)) out.push_back(s.score);
    return out;
  };
}

RerankConfig GetRerankConfig(const std::string& data_dir, const std::string& name) {
  Db db(DbFile(data_dir, name), /*create=*/false);
  RerankConfig c;
  c.model = GetMeta(db, "rerank_model");
  const std::string top = GetMeta(db, "rerank_top");
  if (!top.empty()) {
    try {
      c.top = std::stoi(top);
    } catch (const std::exception&) {
      throw Error(db.path() + ": meta rerank_top = '" + top + "' is not a number");
    }
  }
  return c;
}

void SetRerankConfig(const std::string& data_dir, const std::string& name, const RerankConfig& config) {
  if (config.top < 1 || config.top > 1000)
    throw Error("the number of candidates to rerank must be in [1, 1000], got " + std::to_string(config.top));
  Db db(DbFile(data_dir, name), /*create=*/false);
  Transaction t(db);
  if (config.model.empty()) {
    DeleteMeta(db, "rerank_model");
    DeleteMeta(db, "rerank_top");
  } else {
    SetMeta(db, "rerank_model", config.model);
    SetMeta(db, "rerank_top", std::to_string(config.top));
  }
  t.Commit();
}

std::vector<RerankedHit> RerankHits(const std::string& query, const std::vector<Hit>& hits, const RerankFn& fn) {
  std::vector<RerankedHit> out;
  if (hits.empty()) return out;
  std::vector<std::string> passages;
  passages.reserve(hits.size());
  for (const Hit& h : hits) passages.push_back(h.text);
  const std::vector<double> scores = fn(query, passages);
  if (scores.size() != hits.size())
    throw Error("the reranker returned " + std::to_string(scores.size()) + " scores for " +
                std::to_string(hits.size()) + " passages");
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error("the reranker returned a score that is not a number for passage " + std::to_string(i));
  std::vector<size_t> order(hits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  out.reserve(hits.size());
  for (size_t i : order) {
    RerankedHit r;
    r.hit = hits[i];
    r.retrieval_rank = static_cast<int>(i) + 1;
    r.retrieval_score = hits[i].score;
    r.hit.score = scores[i];
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<RerankedHit> SearchReranked(KnowledgeBase& kb, const std::string& query, const SearchOptions& opt,
                                        const RerankFn& fn, int top_n) {
  if (top_n < 1) throw Error("the number of candidates to rerank must be positive, got " + std::to_string(top_n));
  if (opt.top_k < 1) return RerankHits(query, kb.Search(query, opt), fn);  // Search names the bad top_k
  SearchOptions o = opt;
  o.top_k = std::max(top_n, opt.top_k);
  std::vector<RerankedHit> out = RerankHits(query, kb.Search(query, o), fn);
  if (out.size() > static_cast<size_t>(std::max(opt.top_k, 0))) out.resize(static_cast<size_t>(std::max(opt.top_k, 0)));
  return out;
}

Answer AskReranked(KnowledgeBase& kb, const std::string& question, const SearchOptions& opt, const RerankFn& fn,
                   int top_n) {
  SearchOptions o = opt;
  o.top_k = std::min(opt.top_k, 3);
  return kb.AnswerFrom(question, HitsOf(SearchReranked(kb, question, o, fn, top_n)));
}

GeneratedAnswer AskWithModelReranked(KnowledgeBase& kb, ChatModel& model, const std::string& question,
                                     const SearchOptions& opt, AnswerMode mode, const RerankFn& fn, int top_n,
                                     const std::function<void(const std::string&)>& on_text) {
  if (!IsValidUtf8(question)) throw Error("the question is not valid UTF-8");
  if (Trim(question).empty()) throw Error("the question is empty");
  return AnswerWithModel(model, question, HitsOf(SearchReranked(kb, question, opt, fn, top_n)), mode, on_text);
}

std::vector<Hit> HitsOf(const std::vector<RerankedHit>& reranked) {
  std::vector<Hit> out;
  out.reserve(reranked.size());
  for (const RerankedHit& r : reranked) out.push_back(r.hit);
  return out;
}

}  // namespace hai::kb
