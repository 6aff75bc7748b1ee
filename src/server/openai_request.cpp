#include "server/openai_request.h"

#include <cmath>
#include <limits>

#include "server/api_error.h"

namespace hai::server {
namespace {

std::string type_name(const Json& j) {
  if (j.is_number_integer()) return "integer";
  if (j.is_number_float()) return "number";
  return j.type_name();
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const Json& got) {
  throw ApiError::invalid("'" + param + "' must be " + expected + ", got " + type_name(got), param);
}

const Json* field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;  // null means "not given", as OpenAI treats it
  return &*it;
}

std::string path_of(const std::string& prefix, const char* key) {
  return prefix.empty() ? std::string(key) : prefix + "." + key;
}

std::optional<bool> get_bool(const Json& obj, const char* key, const std::string& prefix = "") {
  const Json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(path_of(prefix, key), "a boolean", *v);
  return v->get<bool>();
}

std::optional<double> get_number(const Json& obj, const char* key, double lo, double hi) {
  const Json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    throw ApiError::invalid("'" + std::string(key) + "' must be between " + nlohmann::json(lo).dump() + " and " +
                                nlohmann::json(hi).dump() + ", got " + v->dump(),
                            key);
  }
  return x;
}

// An integer (a float with an integral value, like 5.0, is accepted).
int64_t as_integer(const Json& v, const std::string& param) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw ApiError::invalid("'" + param + "' is too large: " + v.dump(), param);
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  wrong_type(param, "an integer", v);
}

std::optional<int64_t> get_int(const Json& obj, const char* key, int64_t lo, int64_t hi) {
  const Json* v = field(obj, key);
  if (!v) return std::nullopt;
  int64_t x = as_integer(*v, key);
  if (x < lo || x > hi) {
    throw ApiError::invalid("'" + std::string(key) + "' must be between " + std::to_string(lo) + " and " +
                                std::to_string(hi) + ", got " + std::to_string(x),
                            key);
  }
  return x;
}

std::optional<std::string> get_string(const Json& obj, const char* key, const std::string& prefix = "") {
  const Json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(path_of(prefix, key), "a string", *v);
  return v->get<std::string>();
}

size_t max_depth(const std::string& s) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escape = false;
  for (char c : s) {
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return deepest;
}

// Fields shared by /v1/chat/completions and /v1/completions.
GenerationParams parse_generation(const Json& b, const Limits& limits, bool chat) {
  GenerationParams g;
  if (auto m = get_string(b, "model")) g.model = *m;

  // max_completion_tokens is the newer name; both are accepted, the newer wins.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto v = get_int(b, key, 1, std::numeric_limits<int32_t>::max())) g.max_tokens = *v;
  }
  if (!chat && g.max_tokens < 0 && !b.contains("max_tokens")) g.max_tokens = 16;  // OpenAI's default for completions

  if (const Json* s = field(b, "stop")) {
    if (s->is_string()) {
      g.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > size_t(limits.max_stop))
        throw ApiError::invalid("'stop' may hold at most " + std::to_string(limits.max_stop) + " strings, got " +
                                    std::to_string(s->size()),
                                "stop");
      for (size_t i = 0; i < s->size(); ++i) {
        const Json& e = (*s)[i];
        std::string p = "stop[" + std::to_string(i) + "]";
        if (!e.is_string()) wrong_type(p, "a string", e);
        g.stop.push_back(e.get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *s);
    }
    for (size_t i = 0; i < g.stop.size(); ++i)
      if (g.stop[i].empty()) throw ApiError::invalid("'stop' strings must not be empty", "stop");
  }

  // Sampling: OpenAI's defaults (temperature 1, top_p 1), llama.cpp's
  // extensions (top_k, min_p, repeat_penalty) with the engine's defaults.
  model::SamplerParams& sp = g.sampling;
  sp.temperature = 1.0f;
  sp.top_p = 1.0f;
  if (auto v = get_number(b, "temperature", 0, 2)) sp.temperature = float(*v);
  if (auto v = get_int(b, "top_k", 0, 1 << 20)) sp.top_k = int(*v);
  if (auto v = get_number(b, "top_p", 0, 1)) {
    if (*v == 0) sp.top_k = 1;  // OpenAI allows 0: only the most likely token
    else sp.top_p = float(*v);
  }
  if (auto v = get_number(b, "min_p", 0, 1)) sp.min_p = float(*v);
  if (auto v = get_number(b, "repeat_penalty", 0.01, 10)) sp.repeat_penalty = float(*v);
  if (auto v = get_number(b, "frequency_penalty", -2, 2)) sp.frequency_penalty = float(*v);
  if (auto v = get_number(b, "presence_penalty", -2, 2)) sp.presence_penalty = float(*v);
  if (const Json* s = field(b, "seed")) {
    sp.seed = static_cast<uint64_t>(as_integer(*s, "seed"));
    g.seed_given = true;
  }

  if (const Json* lb = field(b, "logit_bias")) {
    if (!lb->is_object()) wrong_type("logit_bias", "an object mapping token ids to biases", *lb);
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      std::string p = "logit_bias." + it.key();
      const std::string& k = it.key();
      bool digits = !k.empty() && k.size() <= 10 && k.find_first_not_of("0123456789") == std::string::npos;
      int64_t id = digits ? std::stoll(k) : -1;
      if (!digits || id > std::numeric_limits<int32_t>::max())
        throw ApiError::invalid("'logit_bias' keys must be token ids, got \"" + k + "\"", "logit_bias");
      if (limits.n_vocab > 0 && id >= limits.n_vocab)
        throw ApiError::invalid("'logit_bias' token id " + k + " is outside the vocabulary (" +
                                    std::to_string(limits.n_vocab) + " tokens)",
                                "logit_bias");
      if (!it.value().is_number()) wrong_type(p, "a number", it.value());
      double bias = it.value().get<double>();
      if (!std::isfinite(bias) || bias < -100 || bias > 100)
        throw ApiError::invalid("'" + p + "' must be between -100 and 100, got " + it.value().dump(), p);
      g.logit_bias.emplace_back(int32_t(id), float(bias));
    }
  }

  if (auto v = get_int(b, "n", 1, limits.max_n)) g.n = int(*v);
  if (auto v = get_bool(b, "stream")) g.stream = *v;
  if (const Json* so = field(b, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!g.stream) throw ApiError::invalid("'stream_options' is only allowed when 'stream' is true", "stream_options");
    if (auto v = get_bool(*so, "include_usage", "stream_options")) g.include_usage = *v;
  }
  if (auto v = get_bool(b, "ignore_eos")) g.ignore_eos = *v;
  if (auto v = get_string(b, "user"); v && v->size() > 4096) throw ApiError::invalid("'user' is too long", "user");
  return g;
}

// Message content: a string, null, or an array of parts of which only text
// parts are supported.
std::string parse_content(const Json& c, const std::string& param, bool* was_null) {
  *was_null = false;
  if (c.is_null()) {
    *was_null = true;
    return "";
  }
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) wrong_type(param, "a string, an array of content parts or null", c);
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const Json& part = c[i];
    std::string pp = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(pp, "an object", part);
    auto type = get_string(part, "type", pp);
    if (!type) throw ApiError::invalid("'" + pp + ".type' is required", pp + ".type");
    if (*type != "text")
      throw ApiError::invalid("content parts of type '" + *type + "' are not supported by this model; only 'text'",
                              pp + ".type");
    const Json* t = field(part, "text");
    if (!t) throw ApiError::invalid("'" + pp + ".text' is required", pp + ".text");
    if (!t->is_string()) wrong_type(pp + ".text", "a string", *t);
    text += t->get<std::string>();
  }
  return text;
}

Json parse_tool_calls_field(const Json& tc, const std::string& param) {
  if (!tc.is_array()) wrong_type(param, "an array", tc);
  Json out = Json::array();
  for (size_t i = 0; i < tc.size(); ++i) {
    const Json& call = tc[i];
    std::string p = param + "[" + std::to_string(i) + "]";
    if (!call.is_object()) wrong_type(p, "an object", call);
    Json c = Json::object();
    if (auto id = get_string(call, "id", p)) c["id"] = *id;
    if (auto type = get_string(call, "type", p); type && *type != "function")
      throw ApiError::invalid("'" + p + ".type' must be \"function\"", p + ".type");
    c["type"] = "function";
    const Json* fn = field(call, "function");
    if (!fn) throw ApiError::invalid("'" + p + ".function' is required", p + ".function");
    if (!fn->is_object()) wrong_type(p + ".function", "an object", *fn);
    auto name = get_string(*fn, "name", p + ".function");
    if (!name) throw ApiError::invalid("'" + p + ".function.name' is required", p + ".function.name");
    Json f = Json::object();
    f["name"] = *name;
    const Json* args = field(*fn, "arguments");
    if (!args) {
      f["arguments"] = Json::object();
    } else if (args->is_string()) {
      // Templates print the arguments with tojson: give them the object.
      Json parsed = Json::parse(args->get<std::string>(), nullptr, false);
      f["arguments"] = parsed.is_discarded() ? *args : parsed;
    } else if (args->is_object()) {
      f["arguments"] = *args;
    } else {
      wrong_type(p + ".function.arguments", "a string", *args);
    }
    c["function"] = std::move(f);
    out.push_back(std::move(c));
  }
  return out;
}

Json parse_messages(const Json& b) {
  const Json* msgs = field(b, "messages");
  if (!msgs) throw ApiError::invalid("'messages' is required", "messages");
  if (!msgs->is_array()) wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) throw ApiError::invalid("'messages' must not be empty", "messages");
  Json out = Json::array();
  for (size_t i = 0; i < msgs->size(); ++i) {
    const Json& m = (*msgs)[i];
    std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(p, "an object", m);
    auto role = get_string(m, "role", p);
    if (!role) throw ApiError::invalid("'" + p + ".role' is required", p + ".role");
    if (*role != "system" && *role != "developer" && *role != "user" && *role != "assistant" && *role != "tool")
      throw ApiError::invalid("'" + p + ".role' must be one of system, developer, user, assistant, tool; got \"" +
                                  *role + "\"",
                              p + ".role");
    Json msg = Json::object();
    msg["role"] = *role == "developer" ? "system" : *role;
    bool was_null = false;
    const Json* content = m.contains("content") ? &m["content"] : nullptr;
    if (!content && *role != "assistant")
      throw ApiError::invalid("'" + p + ".content' is required", p + ".content");
    std::string text = content ? parse_content(*content, p + ".content", &was_null) : std::string();
    if (!content) was_null = true;
    if (was_null && *role != "assistant")
      throw ApiError::invalid("'" + p + ".content' must not be null for role " + *role, p + ".content");
    msg["content"] = was_null ? Json(nullptr) : Json(text);
    if (auto name = get_string(m, "name", p)) msg["name"] = *name;
    if (*role == "assistant") {
      if (const Json* tc = field(m, "tool_calls")) {
        Json calls = parse_tool_calls_field(*tc, p + ".tool_calls");
        if (!calls.empty()) msg["tool_calls"] = std::move(calls);
      }
      if (was_null && !msg.contains("tool_calls"))
        throw ApiError::invalid("'" + p + ".content' is required unless the message has tool_calls", p + ".content");
    }
    if (*role == "tool") {
      auto id = get_string(m, "tool_call_id", p);
      if (!id) throw ApiError::invalid("'" + p + ".tool_call_id' is required for role tool", p + ".tool_call_id");
      msg["tool_call_id"] = *id;
    }
    out.push_back(std::move(msg));
  }
  return out;
}

void parse_tools(const Json& b, ChatRequest& r) {
  if (const Json* tools = field(b, "tools")) {
    if (!tools->is_array()) wrong_type("tools", "an array", *tools);
    if (tools->size() > 128) throw ApiError::invalid("'tools' may hold at most 128 tools", "tools");
    Json out = Json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) wrong_type(p, "an object", t);
      auto type = get_string(t, "type", p);
      if (!type) throw ApiError::invalid("'" + p + ".type' is required", p + ".type");
      if (*type != "function") throw ApiError::invalid("'" + p + ".type' must be \"function\"", p + ".type");
      const Json* fn = field(t, "function");
      if (!fn) throw ApiError::invalid("'" + p + ".function' is required", p + ".function");
      if (!fn->is_object()) wrong_type(p + ".function", "an object", *fn);
      auto name = get_string(*fn, "name", p + ".function");
      if (!name) throw ApiError::invalid("'" + p + ".function.name' is required", p + ".function.name");
      if (!valid_function_name(*name))
        throw ApiError::invalid("'" + p + ".function.name' must be 1-64 letters, digits, _ or -, got \"" + *name + "\"",
                                p + ".function.name");
      for (const Json& prev : out)
        if (prev["function"]["name"] == *name)
          throw ApiError::invalid("two tools are named \"" + *name + "\"", p + ".function.name");
      Json f = Json::object();
      f["name"] = *name;
      // A tool without a description is valid (OpenAI: description is optional).
      if (auto d = get_string(*fn, "description", p + ".function")) f["description"] = *d;
      if (const Json* params = field(*fn, "parameters")) {
        if (!params->is_object()) wrong_type(p + ".function.parameters", "an object (a JSON schema)", *params);
        f["parameters"] = *params;
      } else {
        f["parameters"] = Json{{"type", "object"}, {"properties", Json::object()}};
      }
      if (auto s = get_bool(*fn, "strict", p + ".function")) f["strict"] = *s;
      Json tool = Json::object();
      tool["type"] = "function";
      tool["function"] = std::move(f);
      out.push_back(std::move(tool));
    }
    if (!out.empty()) {
      r.tools = std::move(out);
      r.tool_choice = ToolChoice::Auto;
    }
  }
  if (const Json* tc = field(b, "tool_choice")) {
    if (tc->is_string()) {
      std::string s = tc->get<std::string>();
      if (s == "none") r.tool_choice = ToolChoice::None;
      else if (s == "auto") r.tool_choice = r.tools.is_null() ? ToolChoice::None : ToolChoice::Auto;
      else if (s == "required") r.tool_choice = ToolChoice::Required;
      else
        throw ApiError::invalid("'tool_choice' must be \"none\", \"auto\", \"required\" or a function, got \"" + s + "\"",
                                "tool_choice");
    } else if (tc->is_object()) {
      auto type = get_string(*tc, "type", "tool_choice");
      if (!type || *type != "function")
        throw ApiError::invalid("'tool_choice.type' must be \"function\"", "tool_choice.type");
      const Json* fn = field(*tc, "function");
      if (!fn || !fn->is_object())
        throw ApiError::invalid("'tool_choice.function' must be an object with a name", "tool_choice.function");
      auto name = get_string(*fn, "name", "tool_choice.function");
      if (!name) throw ApiError::invalid("'tool_choice.function.name' is required", "tool_choice.function.name");
      r.tool_choice = ToolChoice::Named;
      r.tool_name = *name;
    } else {
      wrong_type("tool_choice", "a string or an object", *tc);
    }
    if ((r.tool_choice == ToolChoice::Required || r.tool_choice == ToolChoice::Named) && r.tools.is_null())
      throw ApiError::invalid("'tool_choice' requires 'tools'", "tool_choice");
    if (r.tool_choice == ToolChoice::Named) {
      bool found = false;
      for (const Json& t : r.tools) found = found || t["function"]["name"] == r.tool_name;
      if (!found)
        throw ApiError::invalid("'tool_choice' names the function \"" + r.tool_name + "\", which is not in 'tools'",
                                "tool_choice.function.name");
    }
  }
  if (auto v = get_bool(b, "parallel_tool_calls")) r.parallel_tool_calls = *v;
}

void parse_response_format(const Json& b, ChatRequest& r) {
  const Json* rf = field(b, "response_format");
  if (!rf) return;
  if (!rf->is_object()) wrong_type("response_format", "an object", *rf);
  auto type = get_string(*rf, "type", "response_format");
  if (!type) throw ApiError::invalid("'response_format.type' is required", "response_format.type");
  if (*type == "text") {
    r.response_format = ResponseFormat::Text;
  } else if (*type == "json_object") {
    r.response_format = ResponseFormat::JsonObject;
  } else if (*type == "json_schema") {
    const Json* js = field(*rf, "json_schema");
    if (!js) throw ApiError::invalid("'response_format.json_schema' is required", "response_format.json_schema");
    if (!js->is_object()) wrong_type("response_format.json_schema", "an object", *js);
    auto name = get_string(*js, "name", "response_format.json_schema");
    if (!name) throw ApiError::invalid("'response_format.json_schema.name' is required", "response_format.json_schema.name");
    if (!valid_function_name(*name))
      throw ApiError::invalid("'response_format.json_schema.name' must be 1-64 letters, digits, _ or -",
                              "response_format.json_schema.name");
    const Json* schema = field(*js, "schema");
    if (schema && !schema->is_object() && !schema->is_boolean())
      wrong_type("response_format.json_schema.schema", "an object", *schema);
    r.response_format = ResponseFormat::JsonSchema;
    r.schema = schema ? *schema : Json::object();
  } else {
    throw ApiError::invalid("'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", got \"" +
                                *type + "\"",
                            "response_format.type");
  }
}

std::vector<int32_t> parse_token_array(const Json& a, const std::string& param, const Limits& limits) {
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    std::string p = param + "[" + std::to_string(i) + "]";
    if (!a[i].is_number_integer()) wrong_type(p, "a token id (integer)", a[i]);
    int64_t id = as_integer(a[i], p);
    if (id < 0 || id > std::numeric_limits<int32_t>::max() || (limits.n_vocab > 0 && id >= limits.n_vocab))
      throw ApiError::invalid("'" + p + "' = " + std::to_string(id) + " is not a token id of the vocabulary", p);
    ids.push_back(int32_t(id));
  }
  return ids;
}

// string | [string] | [int] | [[int]]
std::vector<Prompt> parse_prompts(const Json& v, const std::string& param, const Limits& limits, size_t max_items) {
  std::vector<Prompt> out;
  if (v.is_string()) {
    out.push_back(Prompt{false, v.get<std::string>(), {}});
    return out;
  }
  if (!v.is_array())
    wrong_type(param, "a string, an array of strings, an array of token ids or an array of token-id arrays", v);
  if (v.empty()) throw ApiError::invalid("'" + param + "' must not be empty", param);
  if (v[0].is_number()) {
    out.push_back(Prompt{true, "", parse_token_array(v, param, limits)});
    return out;
  }
  if (v.size() > max_items)
    throw ApiError::invalid("'" + param + "' may hold at most " + std::to_string(max_items) + " items, got " +
                                std::to_string(v.size()),
                            param);
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p = param + "[" + std::to_string(i) + "]";
    if (v[i].is_string()) {
      out.push_back(Prompt{false, v[i].get<std::string>(), {}});
    } else if (v[i].is_array()) {
      if (v[i].empty()) throw ApiError::invalid("'" + p + "' must not be empty", p);
      out.push_back(Prompt{true, "", parse_token_array(v[i], p, limits)});
    } else {
      wrong_type(p, "a string or an array of token ids", v[i]);
    }
  }
  return out;
}

}  // namespace

bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Json parse_body(const std::string& body, const Limits& limits) {
  if (body.empty()) throw ApiError::invalid("the request body is empty; expected a JSON object");
  if (max_depth(body) > limits.max_depth)
    throw ApiError::invalid("the request body nests JSON deeper than " + std::to_string(limits.max_depth) + " levels");
  Json j;
  try {
    j = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError::invalid(std::string("malformed JSON in the request body: ") + e.what());
  }
  if (!j.is_object()) throw ApiError::invalid("the request body must be a JSON object, got " + type_name(j));
  return j;
}

ChatRequest parse_chat_request(const Json& b, const Limits& limits) {
  ChatRequest r;
  r.gen = parse_generation(b, limits, true);
  r.messages = parse_messages(b);
  parse_tools(b, r);
  parse_response_format(b, r);
  if (r.response_format != ResponseFormat::Text &&
      (r.tool_choice == ToolChoice::Required || r.tool_choice == ToolChoice::Named))
    throw ApiError::invalid("'response_format' cannot be combined with a forced 'tool_choice'", "response_format");
  if (auto v = get_bool(b, "logprobs")) r.logprobs = *v;
  if (auto v = get_int(b, "top_logprobs", 0, 20)) {
    if (!r.logprobs) throw ApiError::invalid("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    r.top_logprobs = int(*v);
  }
  return r;
}

CompletionRequest parse_completion_request(const Json& b, const Limits& limits) {
  CompletionRequest r;
  r.gen = parse_generation(b, limits, false);
  const Json* p = field(b, "prompt");
  if (!p) throw ApiError::invalid("'prompt' is required", "prompt");
  r.prompts = parse_prompts(*p, "prompt", limits, 16);
  if (r.prompts.size() * size_t(r.gen.n) > 64)
    throw ApiError::invalid("too many completions in one request: prompts x n must be at most 64", "n");
  if (auto v = get_bool(b, "echo")) r.echo = *v;
  if (auto v = get_int(b, "logprobs", 0, 5)) r.logprobs = int(*v);
  if (auto s = get_string(b, "suffix"); s && !s->empty())
    throw ApiError::invalid("'suffix' (fill-in-the-middle) is not supported by this model", "suffix");
  get_int(b, "best_of", 1, 1);  // only the default is supported
  return r;
}

EmbeddingRequest parse_embedding_request(const Json& b, const Limits& limits) {
  EmbeddingRequest r;
  if (auto m = get_string(b, "model")) r.model = *m;
  const Json* in = field(b, "input");
  if (!in) throw ApiError::invalid("'input' is required", "input");
  r.inputs = parse_prompts(*in, "input", limits, 2048);
  if (auto f = get_string(b, "encoding_format")) {
    if (*f == "base64") r.base64 = true;
    else if (*f != "float")
      throw ApiError::invalid("'encoding_format' must be \"float\" or \"base64\", got \"" + *f + "\"", "encoding_format");
  }
  if (auto d = get_int(b, "dimensions", 1, 1 << 20)) r.dimensions = *d;
  return r;
}

}  // namespace hai::server
