#include "server/kb_api.h"

#include "engine/common/error.h"
#include "engine/model/rerank.h"
#include "kb/knowledge_base.h"
#include "server/api_error.h"

namespace hai::server {
namespace {

Json hit_json(const kb::Hit& h) {
  return Json{{"doc", h.doc},     {"chunk", h.chunk_id}, {"text", h.text},   {"score", h.score},
              {"page", h.page},   {"heading", h.heading}, {"start", h.start}, {"end", h.end}};
}

Json reranked_json(const kb::RerankedHit& r) {
  Json j = hit_json(r.hit);
  j["rerank_score"] = r.hit.score;
  j["retrieval_rank"] = r.retrieval_rank;
  j["retrieval_score"] = r.retrieval_score;
  return j;
}

std::string required_string(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) throw ApiError::invalid(std::string("'") + key + "' is required", key);
  if (!it->is_string()) throw ApiError::invalid(std::string("'") + key + "' must be a string", key);
  std::string s = it->get<std::string>();
  if (s.empty()) throw ApiError::invalid(std::string("'") + key + "' must not be empty", key);
  return s;
}

kb::SearchOptions search_options(const Json& body) {
  kb::SearchOptions o;
  auto it = body.find("top_k");
  if (it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 100)
      throw ApiError::invalid("'top_k' must be an integer between 1 and 100", "top_k");
    o.top_k = int(it->get<int64_t>());
  }
  return o;
}

}  // namespace

std::string base64_decode(const std::string& text, const std::string& param) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') {
      padding = true;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else {
      throw ApiError::invalid("'" + param + "' is not valid base64", param);
    }
    if (padding) throw ApiError::invalid("'" + param + "' is not valid base64 (data after '=')", param);
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

void KbApi::require(const std::string& name) {
  try {
    kb::ValidateName(name);
  } catch (const Error& e) {
    throw ApiError::invalid(e.what(), "name");
  }
  for (const auto& s : kb::KnowledgeBase::List(dir_))
    if (s.name == name) return;
  throw ApiError(404, "The knowledge base '" + name + "' does not exist", "invalid_request_error", "name",
                 "kb_not_found");
}

Json KbApi::list() {
  std::lock_guard<std::mutex> lock(mu_);
  Json data = Json::array();
  for (const auto& s : kb::KnowledgeBase::List(dir_))
    data.push_back(Json{{"name", s.name}, {"documents", s.documents}, {"chunks", s.chunks}});
  return Json{{"object", "list"}, {"data", data}};
}

Json KbApi::create(const Json& body) {
  std::string name = required_string(body, "name");
  std::lock_guard<std::mutex> lock(mu_);
  try {
    kb::ValidateName(name);
  } catch (const Error& e) {
    throw ApiError::invalid(e.what(), "name");
  }
  for (const auto& s : kb::KnowledgeBase::List(dir_))
    if (s.name == name)
      throw ApiError(409, "The knowledge base '" + name + "' already exists", "invalid_request_error", "name",
                     "kb_exists");
  kb::KnowledgeBase::Create(dir_, name);
  return Json{{"name", name}, {"documents", 0}, {"chunks", 0}};
}

Json KbApi::drop(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  kb::KnowledgeBase::Drop(dir_, name);
  return Json{{"name", name}, {"deleted", true}};
}

Json KbApi::documents(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  auto k = kb::KnowledgeBase::Open(dir_, name);
  Json data = Json::array();
  for (const auto& d : k->Documents())
    data.push_back(Json{{"id", d.id}, {"name", d.name}, {"type", d.type}, {"bytes", d.bytes},
                        {"chunks", d.chunks}, {"chars", d.chars}, {"added", d.added}});
  return Json{{"object", "list"}, {"data", data}};
}

Json KbApi::upload(const std::string& name, const std::string& doc_name, const std::string& bytes) {
  if (doc_name.empty() || doc_name.find('/') != std::string::npos || doc_name.find('\\') != std::string::npos ||
      doc_name.size() > 255)
    throw ApiError::invalid("the document name must be a file name (1-255 bytes, no '/'), got \"" + doc_name + "\"",
                            "name");
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  auto k = kb::KnowledgeBase::Open(dir_, name);
  kb::AddResult r = k->AddBytes(doc_name, bytes);
  if (r.status == kb::AddResult::kFailed || r.status == kb::AddResult::kSkipped)
    throw ApiError::invalid("cannot add \"" + doc_name + "\": " + r.message, "file");
  return Json{{"name", doc_name}, {"status", kb::StatusName(r.status)}, {"chunks", r.chunks}, {"bytes", r.bytes}};
}

Json KbApi::upload_json(const std::string& name, const Json& body) {
  std::string doc = required_string(body, "name");
  std::string bytes;
  auto b64 = body.find("content_base64");
  auto text = body.find("content");
  if (b64 != body.end() && !b64->is_null()) {
    if (!b64->is_string()) throw ApiError::invalid("'content_base64' must be a string", "content_base64");
    bytes = base64_decode(b64->get<std::string>(), "content_base64");
  } else if (text != body.end() && !text->is_null()) {
    if (!text->is_string()) throw ApiError::invalid("'content' must be a string", "content");
    bytes = text->get<std::string>();
  } else {
    throw ApiError::invalid("give the document as 'content_base64' (or 'content' for text)", "content_base64");
  }
  return upload(name, doc, bytes);
}

Json KbApi::remove_document(const std::string& name, const std::string& doc) {
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  auto k = kb::KnowledgeBase::Open(dir_, name);
  bool found = false;
  for (const auto& d : k->Documents()) found = found || d.name == doc || d.path == doc;
  if (!found)
    throw ApiError(404, "The knowledge base '" + name + "' has no document '" + doc + "'", "invalid_request_error",
                   "doc", "document_not_found");
  int64_t chunks = k->Remove(doc);
  return Json{{"name", doc}, {"deleted", true}, {"chunks", chunks}};
}

void KbApi::set_reranker(std::shared_ptr<model::Reranker> r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!r) {
    server_rerank_ = nullptr;
    return;
  }
  server_rerank_ = [r](const std::string& query, const std::vector<std::string>& passages) {
    std::vector<double> out;
    for (const model::RerankScore& s : r->score(query, passages)) out.push_back(s.score);
    return out;
  };
}

KbApi::Rerank KbApi::rerank_for(const std::string& name, const Json& body) {
  Rerank r;
  int want = -1;  // -1 unsaid, 0 no, 1 yes
  if (auto it = body.find("rerank"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw ApiError::invalid("'rerank' must be a boolean", "rerank");
    want = it->get<bool>() ? 1 : 0;
  }
  int top = 0;
  if (auto it = body.find("rerank_top"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 1000)
      throw ApiError::invalid("'rerank_top' must be an integer between 1 and 1000", "rerank_top");
    top = int(it->get<int64_t>());
  }
  if (want == 0) return r;
  const kb::RerankConfig cfg = kb::GetRerankConfig(dir_, name);
  r.top = top > 0 ? top : cfg.top;
  if (!cfg.model.empty()) {
    auto it = loaded_.find(cfg.model);
    if (it == loaded_.end()) {
      try {
        it = loaded_.emplace(cfg.model, kb::LoadReranker(cfg.model)).first;
      } catch (const Error& e) {
        throw ApiError::invalid("the reranker of knowledge base '" + name + "' cannot be loaded: " + e.what(),
                                "rerank");
      }
    }
    r.fn = it->second;
  } else if (want == 1) {
    if (!server_rerank_)
      throw ApiError::invalid("'rerank': knowledge base '" + name +
                                  "' has no reranker and the server has none (--rerank-model)",
                              "rerank");
    r.fn = server_rerank_;
  }
  return r;
}

Json KbApi::search(const std::string& name, const Json& body) {
  std::string query = required_string(body, "query");
  kb::SearchOptions o = search_options(body);
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  const Rerank rr = rerank_for(name, body);
  auto k = kb::KnowledgeBase::Open(dir_, name);
  Json data = Json::array();
  if (rr.fn) {
    for (const auto& h : kb::SearchReranked(*k, query, o, rr.fn, rr.top)) data.push_back(reranked_json(h));
  } else {
    for (const auto& h : k->Search(query, o)) data.push_back(hit_json(h));
  }
  return Json{{"object", "list"}, {"data", data}};
}

Json KbApi::ask(const std::string& name, const Json& body) {
  std::string question = required_string(body, "question");
  kb::SearchOptions o = search_options(body);
  std::lock_guard<std::mutex> lock(mu_);
  require(name);
  const Rerank rr = rerank_for(name, body);
  auto k = kb::KnowledgeBase::Open(dir_, name);
  kb::Answer a = rr.fn ? kb::AskReranked(*k, question, o, rr.fn, rr.top) : k->Ask(question, o);
  Json sources = Json::array();
  for (const auto& h : a.sources) sources.push_back(hit_json(h));
  return Json{{"answer", a.text}, {"sources", sources}};
}

}  // namespace hai::server
