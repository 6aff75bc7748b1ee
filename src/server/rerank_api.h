// POST /v1/rerank (also /rerank, /v1/reranking, /reranking): scores
// documents against a query with a cross-encoder, in the shape llama.cpp's
// server, Jina and Cohere use.
//
//   request:  {"model"?: id, "query": "...", "documents": ["...", {"text": "..."}, ...],
//              "top_n"?: N, "return_documents"?: true}
//   response: {"object": "list", "model": id,
//              "results": [{"index": i, "relevance_score": s, "document": {"text": "..."}}, ...],
//              "usage": {"prompt_tokens": n, "total_tokens": n}}
//
// Results are sorted best first (equal scores keep the input order) and cut
// to top_n; "index" is the document's position in the request. The score is
// the reranker's raw logit (higher is more relevant), as llama.cpp returns
// it. A document is a string or an object with a "text" string (Cohere).
// Bad input is an ApiError 400 naming the field: a missing or non-string
// query, an empty or non-array "documents" (at most 10000), a document that
// is neither, invalid UTF-8, top_n not a positive integer, a query too long
// for the model. A long document is cut to the model's positions.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace hai::model {
class Reranker;
}

namespace hai::server {

using Json = nlohmann::ordered_json;

class RerankApi {
 public:
  // `name` is the model id clients may give in "model".
  RerankApi(std::shared_ptr<model::Reranker> reranker, std::string name)
      : reranker_(std::move(reranker)), name_(std::move(name)) {}

  // The response body for a parsed request body. Throws ApiError.
  Json rerank(const Json& body);

  const std::string& name() const { return name_; }
  std::shared_ptr<model::Reranker> shared_reranker() const { return reranker_; }

 private:
  std::shared_ptr<model::Reranker> reranker_;
  std::string name_;
};

}  // namespace hai::server
