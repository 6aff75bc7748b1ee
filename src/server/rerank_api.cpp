#include "server/rerank_api.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/common/error.h"
#include "engine/model/rerank.h"
#include "server/api_error.h"

namespace hai::server {
namespace {

constexpr size_t kMaxDocuments = 10000;

}  // namespace

Json RerankApi::rerank(const Json& body) {
  if (auto m = body.find("model"); m != body.end() && !m->is_null()) {
    if (!m->is_string()) throw ApiError::invalid("'model' must be a string", "model");
    if (m->get<std::string>() != name_) throw ApiError::model_not_found(m->get<std::string>());
  }
  auto q = body.find("query");
  if (q == body.end() || q->is_null()) throw ApiError::invalid("'query' is required", "query");
  if (!q->is_string()) throw ApiError::invalid("'query' must be a string", "query");
  const std::string query = q->get<std::string>();
  if (query.empty()) throw ApiError::invalid("'query' must not be empty", "query");

  auto d = body.find("documents");
  if (d == body.end() || d->is_null()) throw ApiError::invalid("'documents' is required", "documents");
  if (!d->is_array()) throw ApiError::invalid("'documents' must be an array of strings", "documents");
  if (d->empty()) throw ApiError::invalid("'documents' must not be empty", "documents");
  if (d->size() > kMaxDocuments)
    throw ApiError::invalid("'documents' has " + std::to_string(d->size()) + " entries, more than " +
                                std::to_string(kMaxDocuments),
                            "documents");
  std::vector<std::string> docs;
  docs.reserve(d->size());
  for (size_t i = 0; i < d->size(); ++i) {
    const Json& e = (*d)[i];
    const std::string param = "documents[" + std::to_string(i) + "]";
    if (e.is_string()) {
      docs.push_back(e.get<std::string>());
    } else if (e.is_object() && e.contains("text") && e["text"].is_string()) {
      docs.push_back(e["text"].get<std::string>());
    } else {
      throw ApiError::invalid("'" + param + "' must be a string (or an object with a \"text\" string)", param);
    }
  }

  size_t top_n = docs.size();
  if (auto t = body.find("top_n"); t != body.end() && !t->is_null()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 1)
      throw ApiError::invalid("'top_n' must be a positive integer", "top_n");
    top_n = std::min<size_t>(top_n, static_cast<size_t>(t->get<int64_t>()));
  }
  bool return_documents = true;
  if (auto r = body.find("return_documents"); r != body.end() && !r->is_null()) {
    if (!r->is_boolean()) throw ApiError::invalid("'return_documents' must be a boolean", "return_documents");
    return_documents = r->get<bool>();
  }

  std::vector<model::RerankScore> scores;
  try {
    scores = reranker_->score(query, docs);
  } catch (const Error& e) {
    // "document N: ..." names the entry; anything else is about the query.
    const std::string what = e.what();
    if (what.rfind("document ", 0) == 0) {
      const size_t space = what.find_first_of(":", 9);
      throw ApiError::invalid(what, "documents[" + what.substr(9, space == std::string::npos ? 0 : space - 9) + "]");
    }
    throw ApiError::invalid(what, "query");
  }

  std::vector<size_t> order(docs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a].score > scores[b].score; });
  order.resize(top_n);
  Json results = Json::array();
  for (size_t i : order) {
    Json r = {{"index", i}, {"relevance_score", scores[i].score}};
    if (return_documents) r["document"] = Json{{"text", docs[i]}};
    results.push_back(std::move(r));
  }
  int64_t tokens = 0;
  for (const auto& s : scores) tokens += s.n_tokens;
  return Json{{"object", "list"},
              {"model", name_},
              {"results", results},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
}

}  // namespace hai::server
