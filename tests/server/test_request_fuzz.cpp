// Fuzz-style tests: random mutations of valid request bodies, byte-level and
// structural. The parsers may only ever throw ApiError (a 4xx); the running
// server (in-process, on a loopback port, with the tiny fixture model) must
// answer every mutated request with a 2xx or 4xx and a well-formed body.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include <httplib.h>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/server.h"
#include "common/test_util.h"

namespace srv = hai::server;
using srv::Json;

namespace {

const std::vector<std::pair<std::string, std::string>>& seeds() {
  static const std::vector<std::pair<std::string, std::string>> s = {
      {"/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":3,"temperature":0.7,"top_p":0.9,"seed":1,"stop":["x"],"n":2,"logprobs":true,"top_logprobs":2})"},
      {"/v1/chat/completions",
       R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],"tool_choice":"auto","max_tokens":3})"},
      {"/v1/chat/completions",
       R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true},"logit_bias":{"5":-100},"frequency_penalty":0.5,"presence_penalty":0.5})"},
      {"/v1/chat/completions",
       R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}}}})"},
      {"/v1/completions", R"({"prompt":"Once upon","max_tokens":3,"echo":true,"logprobs":2,"n":2})"},
      {"/v1/completions", R"({"prompt":[[464,2068],[7586]],"max_tokens":2,"stream":true})"},
      {"/v1/embeddings", R"({"input":["hello","world"],"encoding_format":"float"})"},
  };
  return s;
}

Json random_value(std::mt19937& rng, int depth = 0) {
  switch (rng() % (depth > 2 ? 9 : 11)) {
    case 0: return nullptr;
    case 1: return bool(rng() % 2);
    case 2: return int64_t(rng() % 2 ? -1 : 0);
    case 3: return int64_t(std::numeric_limits<int64_t>::max());
    case 4: return 1e308;
    case 5: return -0.5;
    case 6: return std::string();
    case 7: return std::string(rng() % 300, char('a' + rng() % 26));
    case 8: return "\xe4\xbd\xa0<|im_end|>\\u0000";
    case 9: {
      Json a = Json::array();
      for (int i = int(rng() % 3); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (int i = int(rng() % 3); i > 0; --i) {
        std::string key(1, 'k');
        key += char('0' + rng() % 4);
        o[key] = random_value(rng, depth + 1);
      }
      return o;
    }
  }
}

// Every node of a JSON tree, by pointer.
void collect(Json& j, std::vector<Json*>& out) {
  out.push_back(&j);
  if (j.is_object() || j.is_array())
    for (auto& c : j) collect(c, out);
}

std::string mutate(const std::string& body, std::mt19937& rng) {
  int kind = int(rng() % 4);
  if (kind == 0) {  // structural: replace a node
    Json j = Json::parse(body);
    std::vector<Json*> nodes;
    collect(j, nodes);
    *nodes[rng() % nodes.size()] = random_value(rng);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (kind == 1) {  // structural: drop or add a key
    Json j = Json::parse(body);
    std::vector<Json*> objects;
    std::vector<Json*> nodes;
    collect(j, nodes);
    for (Json* n : nodes)
      if (n->is_object()) objects.push_back(n);
    Json* o = objects[rng() % objects.size()];
    if (!o->empty() && rng() % 2) {
      auto it = o->begin();
      std::advance(it, rng() % o->size());
      o->erase(it.key());
    } else {
      static const char* keys[] = {"max_tokens", "n", "stream", "tools", "tool_choice", "response_format", "stop",
                                   "logit_bias", "prompt", "messages", "input", "content", "role", "seed"};
      (*o)[keys[rng() % 14]] = random_value(rng);
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string s = body;
  int n = 1 + int(rng() % 4);
  for (int i = 0; i < n && !s.empty(); ++i) {
    size_t pos = rng() % s.size();
    switch (rng() % 4) {
      case 0: s[pos] = char(rng() % 256); break;
      case 1: s.insert(pos, 1, "{}[]\",:0-e\\\x80"[rng() % 13]); break;
      case 2: s.erase(pos, 1 + rng() % 8); break;
      default: s.insert(pos, s.substr(pos, rng() % 16)); break;
    }
  }
  return s;
}

}  // namespace

TEST(RequestFuzz, ParsersOnlyThrowApiErrors) {
  std::mt19937 rng(12345);
  srv::Limits limits;
  limits.n_vocab = 50257;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto& [route, body] = seeds()[rng() % seeds().size()];
    std::string m = mutate(body, rng);
    try {
      Json j = srv::parse_body(m, limits);
      if (route == "/v1/chat/completions") srv::parse_chat_request(j, limits);
      else if (route == "/v1/completions") srv::parse_completion_request(j, limits);
      else srv::parse_embedding_request(j, limits);
      ++accepted;
    } catch (const srv::ApiError& e) {
      ASSERT_GE(e.status(), 400) << m;
      ASSERT_LT(e.status(), 500) << m;
      ASSERT_FALSE(std::string(e.what()).empty());
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "unexpected exception " << e.what() << " for " << m;
    }
  }
  // Both outcomes are exercised.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

TEST(RequestFuzz, ServerAnswersEveryMutationWith2xxOr4xx) {
  srv::ServerOptions o;
  o.model_path = hai::test::fixture("models/tiny-qwen2-gpt2-q8_0.gguf");
  o.port = 0;
  o.n_parallel = 2;
  o.ctx_size = 96;
  o.n_threads = 1;
  o.max_body = 1 << 16;
  o.quiet = true;
  o.timeout_s = 30;
  srv::Server server(o);
  int port = server.bind();
  std::thread t([&] { server.listen(); });

  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  std::mt19937 rng(777);
  int ok = 0, bad = 0;
  for (int i = 0; i < 250; ++i) {
    const auto& [route, body] = seeds()[rng() % seeds().size()];
    std::string m = i < int(seeds().size()) ? body : mutate(body, rng);
    auto res = cli.Post(route.c_str(), m, "application/json");
    ASSERT_TRUE(res) << "no answer for " << m;
    ASSERT_TRUE((res->status >= 200 && res->status < 300) || (res->status >= 400 && res->status < 500))
        << res->status << " " << res->body << " for " << m;
    if (res->get_header_value("Content-Type") == "text/event-stream") {
      EXPECT_EQ(res->body.rfind("data: ", 0), 0u) << res->body;
      EXPECT_NE(res->body.find("data: [DONE]"), std::string::npos) << res->body;
    } else {
      Json j = Json::parse(res->body, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << res->body;
      if (res->status >= 400) {
        EXPECT_TRUE(j.contains("error") && j["error"].contains("message")) << res->body;
        ++bad;
      } else {
        ++ok;
      }
    }
  }
  // The seeds themselves (first requests) are valid.
  EXPECT_GT(ok, int(seeds().size()) - 2);
  EXPECT_GT(bad, 20);
  auto health = cli.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  server.stop();
  t.join();
}
