#include "server/openai_response.h"

#include <cstring>
#include <random>

namespace hai::server {

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse_event(const Json& j) { return "data: " + dump_json(j) + "\n\n"; }

const char* finish_reason(sched::FinishReason r, bool tool_calls) {
  switch (r) {
    case sched::FinishReason::Stop:
      return tool_calls ? "tool_calls" : "stop";
    case sched::FinishReason::Length:
    case sched::FinishReason::Timeout:
      return "length";
    case sched::FinishReason::Cancelled:
    case sched::FinishReason::Error:
      break;
  }
  return "stop";
}

Json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  Json u = Json::object();
  u["prompt_tokens"] = prompt_tokens;
  u["completion_tokens"] = completion_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  u["prompt_tokens_details"] = Json{{"cached_tokens", cached_tokens}};
  return u;
}

static Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

Json chat_logprob(const sched::TokenLogprob& token, const std::vector<sched::TokenLogprob>& top) {
  Json e = Json::object();
  e["token"] = token.text;
  e["logprob"] = token.logprob;
  e["bytes"] = bytes_of(token.text);
  Json alts = Json::array();
  for (const auto& t : top) {
    Json a = Json::object();
    a["token"] = t.text;
    a["logprob"] = t.logprob;
    a["bytes"] = bytes_of(t.text);
    alts.push_back(std::move(a));
  }
  e["top_logprobs"] = std::move(alts);
  return e;
}

Json empty_completion_logprobs() {
  return Json{{"tokens", Json::array()},
              {"token_logprobs", Json::array()},
              {"top_logprobs", Json::array()},
              {"text_offset", Json::array()}};
}

void add_completion_logprob(Json& lp, const sched::TokenLogprob& token, const std::vector<sched::TokenLogprob>& top,
                            int64_t text_offset) {
  lp["tokens"].push_back(token.text);
  lp["token_logprobs"].push_back(token.logprob);
  Json alts = Json::object();
  for (const auto& t : top) alts[t.text] = t.logprob;
  lp["top_logprobs"].push_back(std::move(alts));
  lp["text_offset"].push_back(text_offset);
}

std::string base64_encode(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_floats(const std::vector<float>& v) {
  std::string bytes(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; ++k) bytes[4 * i + k] = char((u >> (8 * k)) & 0xff);  // little-endian on every host
  }
  return base64_encode(bytes);
}

std::string make_id(const std::string& prefix) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % (sizeof(alphabet) - 1)];
  return id;
}

}  // namespace hai::server
