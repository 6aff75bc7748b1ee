#include "server/tool_calls.h"

#include <random>
#include <regex>

#include "engine/common/error.h"

namespace hai::server {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool has_tool(const Json& tools, const std::string& name) {
  if (!tools.is_array()) return false;
  for (const Json& t : tools)
    if (t.contains("function") && t["function"].value("name", "") == name) return true;
  return false;
}

// A call object {"name": ..., "arguments"|"parameters": {...}} of a known
// tool, or false.
bool to_call(const Json& j, const Json& tools, ToolCall* out) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  std::string name = j["name"].get<std::string>();
  if (!has_tool(tools, name)) return false;
  Json args = Json::object();
  for (const char* key : {"arguments", "parameters"}) {
    if (!j.contains(key)) continue;
    const Json& a = j[key];
    if (a.is_object()) {
      args = a;
    } else if (a.is_string()) {
      Json parsed = Json::parse(a.get<std::string>(), nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) return false;
      args = parsed;
    } else {
      return false;
    }
    break;
  }
  out->id = make_call_id();
  out->name = name;
  out->arguments = args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return true;
}

}  // namespace

ToolFormat detect_tool_format(const std::string& src) {
  if (src.find("<tool_call>") != std::string::npos) return ToolFormat::Hermes;
  if (src.find("<|python_tag|>") != std::string::npos || src.find("<|eom_id|>") != std::string::npos ||
      src.find("ipython") != std::string::npos)
    return ToolFormat::Llama3;
  return ToolFormat::Hermes;
}

bool template_renders_tools(const std::string& src) { return src.find("tools") != std::string::npos; }

std::string tools_system_prompt(const Json& tools, ToolFormat format) {
  std::string s;
  if (format == ToolFormat::Hermes) {
    s = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const Json& t : tools) s += "\n" + t.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    s += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
         "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}"
         "\n</tool_call>";
  } else {
    s = "Given the following functions, please respond with a JSON for a function call with its proper arguments "
        "that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
        "dictionary of argument name and its value}. Do not use variables.\n";
    for (const Json& t : tools) s += "\n" + t.dump(4, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return s;
}

ParsedOutput parse_tool_calls(const std::string& text, ToolFormat format, const Json& tools) {
  ParsedOutput out;
  std::string rest;  // the text outside recognised calls
  static const std::string open = "<tool_call>", close = "</tool_call>";
  size_t pos = 0;
  bool found_tag = false;
  while (true) {
    size_t a = text.find(open, pos);
    if (a == std::string::npos) break;
    size_t body = a + open.size();
    size_t b = text.find(close, body);
    std::string inner = text.substr(body, b == std::string::npos ? std::string::npos : b - body);
    size_t end = b == std::string::npos ? text.size() : b + close.size();
    Json j = Json::parse(trim(inner), nullptr, false);
    ToolCall call;
    if (!j.is_discarded() && to_call(j, tools, &call)) {
      rest += text.substr(pos, a - pos);
      out.calls.push_back(std::move(call));
      found_tag = true;
    } else {
      rest += text.substr(pos, end - pos);
    }
    pos = end;
  }
  rest += text.substr(std::min(pos, text.size()));

  if (!found_tag) {
    // Bare JSON calls: Llama 3's format, and what models of either family
    // write when they skip the tags. Several calls may be separated by ';'.
    std::string t = trim(rest);
    const std::string tag = "<|python_tag|>";
    if (t.rfind(tag, 0) == 0) t = trim(t.substr(tag.size()));
    if (!t.empty() && t[0] == '{') {
      std::vector<ToolCall> calls;
      bool all = true;
      Json whole = Json::parse(t, nullptr, false);
      if (!whole.is_discarded()) {
        ToolCall c;
        all = to_call(whole, tools, &c);
        if (all) calls.push_back(std::move(c));
      } else {
        size_t start = 0;
        while (start < t.size() && all) {
          size_t semi = t.find(';', start);
          std::string piece = trim(t.substr(start, semi == std::string::npos ? std::string::npos : semi - start));
          start = semi == std::string::npos ? t.size() : semi + 1;
          if (piece.empty()) continue;
          Json j = Json::parse(piece, nullptr, false);
          ToolCall c;
          all = !j.is_discarded() && to_call(j, tools, &c);
          if (all) calls.push_back(std::move(c));
        }
      }
      if (all && !calls.empty()) {
        out.calls = std::move(calls);
        rest.clear();
      }
    }
  }
  (void)format;
  out.content = trim(rest);
  out.has_content = !out.content.empty();
  return out;
}

bool may_start_tool_call(const std::string& text) {
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return true;
  std::string_view t(text);
  t.remove_prefix(b);
  for (std::string_view marker : {"<tool_call>", "<|python_tag|>", "{"}) {
    size_t n = std::min(t.size(), marker.size());
    if (t.substr(0, n) == marker.substr(0, n)) return true;
  }
  return false;
}

Json tool_call_schema(const Json& tools, const std::string& only, ToolFormat format) {
  const char* args_key = format == ToolFormat::Llama3 ? "parameters" : "arguments";
  Json alts = Json::array();
  for (const Json& t : tools) {
    const Json& fn = t["function"];
    std::string name = fn.value("name", "");
    if (!only.empty() && name != only) continue;
    Json params = fn.contains("parameters") ? fn["parameters"] : Json{{"type", "object"}};
    Json props = Json::object();
    props["name"] = Json{{"const", name}};
    props[args_key] = params;
    Json alt = Json::object();
    alt["type"] = "object";
    alt["properties"] = std::move(props);
    alt["required"] = Json::array({"name", args_key});
    alt["additionalProperties"] = false;
    alts.push_back(std::move(alt));
  }
  if (alts.empty()) throw Error("tool_choice names no tool of 'tools'");
  if (alts.size() == 1) return alts[0];
  return Json{{"anyOf", alts}};
}

std::shared_ptr<const grammar::Grammar> tool_call_grammar(const Json& tools, const std::string& only,
                                                          ToolFormat format) {
  Json schema = tool_call_schema(tools, only, format);
  if (format == ToolFormat::Llama3) return grammar::Grammar::from_json_schema(schema);
  // Hermes: the call object between the tags. The schema's grammar has its
  // start rule renamed so that a new root can wrap it.
  std::string gbnf = grammar::Grammar::json_schema_to_gbnf(schema);
  static const std::regex root_def(R"((^|\n)root(\s*)::=)");
  static const std::regex root_ref(R"(([\s(|])root(?=[\s)|*+?]|$))");
  std::string renamed = std::regex_replace(gbnf, root_def, "$1tool-call-json$2::=");
  renamed = std::regex_replace(renamed, root_ref, "$1tool-call-json");
  std::string wrapped = "root ::= \"<tool_call>\\n\" tool-call-json \"\\n</tool_call>\"\n" + renamed;
  try {
    return grammar::Grammar::parse_gbnf(wrapped);
  } catch (const Error&) {
    // Whatever the schema translator named its rules, the bare object is
    // still a call parse_tool_calls() reads.
    return grammar::Grammar::from_json_schema(schema);
  }
}

std::string make_call_id() {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % (sizeof(alphabet) - 1)];
  return id;
}

}  // namespace hai::server
