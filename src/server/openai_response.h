// Pieces of OpenAI response bodies: logprob entries, finish reasons, usage,
// server-sent-event framing, base64 embeddings.
//
// All JSON leaves the server through dump_json(), which replaces invalid
// UTF-8 (a token may be part of a character) instead of throwing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sched/scheduler.h"

namespace hai::server {

using Json = nlohmann::ordered_json;

std::string dump_json(const Json& j);

// "data: {json}\n\n"
std::string sse_event(const Json& j);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

// OpenAI's finish_reason for a scheduler finish: "stop", "length", or
// "tool_calls" when the output was turned into tool calls. (A deadline
// counts as "length": the output was cut short.)
const char* finish_reason(sched::FinishReason r, bool tool_calls);

// {"prompt_tokens", "completion_tokens", "total_tokens",
//  "prompt_tokens_details": {"cached_tokens"}}
Json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// One element of chat logprobs.content:
// {"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}
Json chat_logprob(const sched::TokenLogprob& token, const std::vector<sched::TokenLogprob>& top);

// Text-completion logprobs accumulate in this shape:
// {"tokens": [], "token_logprobs": [], "top_logprobs": [{text: lp}], "text_offset": []}
Json empty_completion_logprobs();
void add_completion_logprob(Json& lp, const sched::TokenLogprob& token, const std::vector<sched::TokenLogprob>& top,
                            int64_t text_offset);

// Little-endian float32 bytes in base64 (OpenAI's encoding_format "base64").
std::string base64_floats(const std::vector<float>& v);
std::string base64_encode(const std::string& bytes);

// A random id with a prefix: "chatcmpl-" + 24 characters.
std::string make_id(const std::string& prefix);

}  // namespace hai::server
