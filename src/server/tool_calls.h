// Tool calls: how a model writes them, how the server reads them back out of
// the generated text, and the grammar that forces one.
//
// Two formats, chosen from the model's chat template:
//   Hermes (Qwen 2.5/3, Hermes, most ChatML models):
//       <tool_call>
//       {"name": "get_weather", "arguments": {"city": "Paris"}}
//       </tool_call>
//   Llama 3 JSON (templates that mention <|python_tag|> / "parameters"):
//       {"name": "get_weather", "parameters": {"city": "Paris"}}
//
// With tool_choice "auto" the model writes free text and parse_tool_calls()
// finds calls in it; with "required" or a named function the output is
// decoded under tool_call_grammar(), so it always is exactly one valid call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar/grammar.h"

namespace hai::server {

using Json = nlohmann::ordered_json;

enum class ToolFormat { Hermes, Llama3 };

// The format a template's model uses (Hermes unless the template is of the
// Llama 3 family).
ToolFormat detect_tool_format(const std::string& template_source);

// Whether the template renders the `tools` variable at all. When it does
// not (e.g. the ChatML fallback), the server describes the tools in a
// system message made by tools_system_prompt().
bool template_renders_tools(const std::string& template_source);
std::string tools_system_prompt(const Json& tools, ToolFormat format);

struct ToolCall {
  std::string id;         // "call_..." (made up here; models do not write ids)
  std::string name;
  std::string arguments;  // JSON text of an object
};

struct ParsedOutput {
  std::string content;    // the text outside the calls, trimmed
  bool has_content = false;
  std::vector<ToolCall> calls;
};

// Finds the tool calls in `text`: <tool_call> blocks first, else bare JSON
// call objects (separated by ';'). Both shapes are accepted whatever
// `format` says, since models of either family write both. Only calls of
// functions named in `tools` (OpenAI's tools array) count; anything else
// stays content. Never throws.
ParsedOutput parse_tool_calls(const std::string& text, ToolFormat format, const Json& tools);

// Whether `text` (the output so far) may still turn out to begin with a
// tool call: after leading whitespace, it is a prefix of "<tool_call>",
// "<|python_tag|>" or "{", or starts with one of them. A streaming server
// holds text back only while this is true.
bool may_start_tool_call(const std::string& text);

// The JSON schema of one call object: anyOf over the tools (or just `only`
// when not empty) of {"name": const, "arguments"|"parameters": parameters}.
Json tool_call_schema(const Json& tools, const std::string& only, ToolFormat format);

// A grammar whose sentences are exactly one call in `format`. Throws
// hai::Error if a tool's parameters are not a schema the grammar supports.
std::shared_ptr<const grammar::Grammar> tool_call_grammar(const Json& tools, const std::string& only,
                                                          ToolFormat format);

// "call_" + 24 random letters and digits.
std::string make_call_id();

}  // namespace hai::server
