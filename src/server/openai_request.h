// Parsing and validation of OpenAI request bodies.
//
//   ChatRequest r = parse_chat_request(body, limits);   // throws ApiError (400)
//
// The parsers check every field they understand: its JSON type, its range,
// and how it combines with the others (top_logprobs needs logprobs,
// stream_options needs stream, a named tool_choice must name a tool, ...).
// A violation throws ApiError::invalid with `param` naming the field, so the
// client sees which value was wrong. Fields the server does not use (user,
// metadata, store, ...) are ignored, as OpenAI's own server does for
// optional ones. No model is needed: the limits that depend on the model
// (vocabulary size for logit_bias) come in `Limits`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/sampler.h"

namespace hai::server {

using Json = nlohmann::ordered_json;

struct Limits {
  int32_t n_vocab = 0;       // 0: token ids are not checked
  int max_n = 16;            // largest `n`
  int max_stop = 16;         // most stop strings
  size_t max_depth = 64;     // deepest JSON nesting of a body
};

// Parses `body` as a JSON object. Malformed JSON, invalid UTF-8, nesting
// deeper than limits.max_depth or a non-object root: ApiError 400.
Json parse_body(const std::string& body, const Limits& limits);

// Fields shared by chat and text completions.
struct GenerationParams {
  std::string model;               // empty: the server's default model
  int64_t max_tokens = -1;         // -1: until the context is full
  std::vector<std::string> stop;
  model::SamplerParams sampling;   // temperature, top_p, penalties, seed, top_k, min_p
  bool seed_given = false;
  std::vector<std::pair<int32_t, float>> logit_bias;
  int n = 1;
  bool stream = false;
  bool include_usage = false;      // stream_options.include_usage
  bool ignore_eos = false;         // extension (llama.cpp)
};

enum class ResponseFormat { Text, JsonObject, JsonSchema };
enum class ToolChoice { None, Auto, Required, Named };

struct ChatRequest {
  GenerationParams gen;
  // The messages as the chat template expects them: role, content (a
  // string; text parts joined), name, tool_calls (arguments parsed to
  // objects when they are JSON), tool_call_id.
  Json messages = Json::array();
  Json tools = nullptr;            // array of {type: function, function: {...}}, or null
  ToolChoice tool_choice = ToolChoice::None;
  std::string tool_name;           // ToolChoice::Named
  bool parallel_tool_calls = true;
  ResponseFormat response_format = ResponseFormat::Text;
  Json schema = nullptr;           // ResponseFormat::JsonSchema
  bool logprobs = false;
  int top_logprobs = 0;            // 0..20
};

// A prompt given as text or as token ids.
struct Prompt {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> tokens;
};

struct CompletionRequest {
  GenerationParams gen;
  std::vector<Prompt> prompts;     // one or more (a batch)
  bool echo = false;
  int logprobs = -1;               // -1: none; else 0..5 alternatives
};

struct EmbeddingRequest {
  std::string model;
  std::vector<Prompt> inputs;
  bool base64 = false;             // encoding_format "base64"
  int64_t dimensions = 0;          // 0: the model's
};

ChatRequest parse_chat_request(const Json& body, const Limits& limits);
CompletionRequest parse_completion_request(const Json& body, const Limits& limits);
EmbeddingRequest parse_embedding_request(const Json& body, const Limits& limits);

// Tool (function) names OpenAI allows: [a-zA-Z0-9_-], 1..64 characters.
bool valid_function_name(const std::string& name);

}  // namespace hai::server
