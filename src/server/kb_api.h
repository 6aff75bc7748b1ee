// The knowledge-base part of the HTTP API (/v1/kb/...), over
// kb::KnowledgeBase. Every method returns the JSON body of the answer or
// throws ApiError (400 bad input, 404 unknown knowledge base or document);
// the HTTP wiring is in server.cpp.
//
//   GET    /v1/kb                          list            -> {"object":"list","data":[{name,documents,chunks}]}
//   POST   /v1/kb            {name}        create          -> {name,documents:0,chunks:0}   (201)
//   DELETE /v1/kb/NAME                     drop            -> {name,deleted:true}
//   GET    /v1/kb/NAME/documents           documents       -> {"object":"list","data":[{id,name,type,bytes,chunks,...}]}
//   POST   /v1/kb/NAME/documents           upload          multipart "file", or JSON {name, content_base64 | content}
//   DELETE /v1/kb/NAME/documents/DOC       remove_document -> {name,deleted:true,chunks}
//   POST   /v1/kb/NAME/search {query, top_k, rerank?, rerank_top?}    -> {"object":"list","data":[hits]}
//   POST   /v1/kb/NAME/ask    {question, top_k, rerank?, rerank_top?} -> {answer, sources:[hits]}
//
// Reranking (kb/rerank.h): a knowledge base configured with a reranker
// (`hai kb reranker`) reranks its candidates unless "rerank": false; with
// "rerank": true and none configured, the server's reranker (--rerank-model)
// is used, else 400. "rerank_top" (1-1000) sets how many candidates are
// reranked. Reranked hits carry "rerank_score" (= "score"),
// "retrieval_rank" and "retrieval_score".
//
// The knowledge base is not thread-safe, so calls are serialized here (one
// at a time; they are short compared to generation).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "kb/rerank.h"

#include <nlohmann/json.hpp>

namespace hai::model {
class Reranker;
}

namespace hai::server {

using Json = nlohmann::ordered_json;

class KbApi {
 public:
  explicit KbApi(std::string data_dir) : dir_(std::move(data_dir)) {}

  Json list();
  Json create(const Json& body);
  Json drop(const std::string& name);
  Json documents(const std::string& name);
  Json upload(const std::string& name, const std::string& doc_name, const std::string& bytes);
  // The JSON form of an upload: {name, content_base64} or {name, content}.
  Json upload_json(const std::string& name, const Json& body);
  Json remove_document(const std::string& name, const std::string& doc);
  Json search(const std::string& name, const Json& body);
  Json ask(const std::string& name, const Json& body);

  const std::string& data_dir() const { return dir_; }
  // The server's reranker, used for "rerank": true when the knowledge base
  // has none configured.
  void set_reranker(std::shared_ptr<model::Reranker> r);

 private:
  void require(const std::string& name);  // 400 bad name, 404 missing
  struct Rerank {
    kb::RerankFn fn;  // empty: do not rerank
    int top = kb::kDefaultRerankTop;
  };
  // The reranking a search / ask body asks for on knowledge base `name`.
  Rerank rerank_for(const std::string& name, const Json& body);
  kb::RerankFn server_rerank_;
  std::map<std::string, kb::RerankFn> loaded_;  // configured rerankers by path, loaded once
  std::string dir_;
  std::mutex mu_;
};

// Standard base64 (padding optional, whitespace ignored). Throws ApiError
// naming `param` on any other character.
std::string base64_decode(const std::string& text, const std::string& param);

}  // namespace hai::server
