// Parsing and validation of OpenAI request bodies: every field the server
// understands, and every way a client can get one wrong.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/openai_request.h"

using hai::server::ApiError;
using hai::server::Json;
using hai::server::Limits;
namespace srv = hai::server;

namespace {

Limits limits() {
  Limits l;
  l.n_vocab = 1000;
  return l;
}

srv::ChatRequest chat(const std::string& body) { return srv::parse_chat_request(srv::parse_body(body, limits()), limits()); }

// The ApiError a body raises (status 0 if none).
ApiError chat_error(const std::string& body) {
  try {
    chat(body);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "no error", "");
}

const char* kUser = R"("messages":[{"role":"user","content":"hi"}])";

std::string with(const std::string& extra) { return std::string("{") + kUser + (extra.empty() ? "" : "," + extra) + "}"; }

}  // namespace

TEST(ParseBody, RejectsMalformedJson) {
  for (const char* body : {"", "{", "{\"a\":}", "[1]", "\"x\"", "12", "{\"a\":1}}", "nul", "{'a':1}"}) {
    try {
      srv::parse_body(body, limits());
      FAIL() << "accepted " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << body;
      EXPECT_EQ(e.type(), "invalid_request_error");
    }
  }
}

TEST(ParseBody, RejectsInvalidUtf8AndDeepNesting) {
  EXPECT_THROW(srv::parse_body("{\"a\":\"\xc3\x28\"}", limits()), ApiError);
  EXPECT_THROW(srv::parse_body("{\"a\":\"\xff\"}", limits()), ApiError);
  std::string deep = std::string(1000, '[') + std::string(1000, ']');
  EXPECT_THROW(srv::parse_body(deep, limits()), ApiError);
  // Brackets inside strings do not count as nesting.
  std::string text = "{\"a\":\"" + std::string(1000, '[') + "\"}";
  EXPECT_NO_THROW(srv::parse_body(text, limits()));
}

TEST(ParseChat, Defaults) {
  srv::ChatRequest r = chat(with(""));
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0]["role"], "user");
  EXPECT_EQ(r.messages[0]["content"], "hi");
  EXPECT_EQ(r.gen.max_tokens, -1);
  EXPECT_EQ(r.gen.n, 1);
  EXPECT_FALSE(r.gen.stream);
  EXPECT_FALSE(r.gen.seed_given);
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.gen.sampling.top_p, 1.0f);
  EXPECT_EQ(r.tool_choice, srv::ToolChoice::None);
  EXPECT_EQ(r.response_format, srv::ResponseFormat::Text);
}

TEST(ParseChat, AllFields) {
  srv::ChatRequest r = chat(with(
      R"("model":"m","max_tokens":5,"max_completion_tokens":7,"stop":["a","b"],"temperature":0.5,"top_p":0.9,)"
      R"("seed":-3,"frequency_penalty":1,"presence_penalty":-1,"logit_bias":{"5":-100,"7":2.5},"n":2,)"
      R"("stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":4,"user":"u","top_k":5,)"
      R"("min_p":0.1,"metadata":{"x":1},"store":false)"));
  EXPECT_EQ(r.gen.model, "m");
  EXPECT_EQ(r.gen.max_tokens, 7);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.gen.sampling.top_p, 0.9f);
  EXPECT_TRUE(r.gen.seed_given);
  EXPECT_EQ(r.gen.sampling.seed, uint64_t(int64_t(-3)));
  EXPECT_FLOAT_EQ(r.gen.sampling.frequency_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.gen.sampling.presence_penalty, -1.0f);
  ASSERT_EQ(r.gen.logit_bias.size(), 2u);
  EXPECT_EQ(r.gen.logit_bias[0].first, 5);
  EXPECT_FLOAT_EQ(r.gen.logit_bias[0].second, -100.0f);
  EXPECT_EQ(r.gen.n, 2);
  EXPECT_TRUE(r.gen.stream);
  EXPECT_TRUE(r.gen.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_EQ(r.gen.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r.gen.sampling.min_p, 0.1f);
}

TEST(ParseChat, NullMeansAbsent) {
  srv::ChatRequest r = chat(with(R"("temperature":null,"stop":null,"tools":null,"seed":null)"));
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 1.0f);
  EXPECT_TRUE(r.gen.stop.empty());
  EXPECT_FALSE(r.gen.seed_given);
}

TEST(ParseChat, TopPZeroMeansMostLikelyOnly) {
  srv::ChatRequest r = chat(with(R"("top_p":0)"));
  EXPECT_EQ(r.gen.sampling.top_k, 1);
}

TEST(ParseChat, MessageShapes) {
  srv::ChatRequest r = chat(R"({"messages":[
      {"role":"developer","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"name":"bob"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
         "function":{"name":"f","arguments":"{\"x\":1}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"42"},
      {"role":"assistant","tool_calls":[{"type":"function","function":{"name":"g","arguments":"not json"}}]}]})");
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[0]["role"], "system");  // developer is the newer name of system
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.messages[1]["name"], "bob");
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);  // parsed for the template
  EXPECT_EQ(r.messages[3]["tool_call_id"], "c1");
  EXPECT_EQ(r.messages[4]["tool_calls"][0]["function"]["arguments"], "not json");  // kept as given
}

TEST(ParseChat, BadInputNamesTheParameter) {
  struct Case {
    std::string body;
    std::string param;
  };
  std::vector<Case> cases = {
      {"{}", "messages"},
      {R"({"messages":{}})", "messages"},
      {R"({"messages":[]})", "messages"},
      {R"({"messages":[5]})", "messages[0]"},
      {R"({"messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":7,"content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":null}]})", "messages[0].content"},
      {R"({"messages":[{"role":"assistant","content":null}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":{"a":1}}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content[0].type"},
      {R"({"messages":[{"role":"user","content":[{"text":"x"}]}]})", "messages[0].content[0].type"},
      {R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})", "messages[0].content[0].text"},
      {R"({"messages":[{"role":"user","content":[{"type":"text","text":1}]}]})", "messages[0].content[0].text"},
      {R"({"messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"type":"function"}]}]})", "messages[0].tool_calls[0].function"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"type":"other","function":{"name":"f"}}]}]})",
       "messages[0].tool_calls[0].type"},
      {R"({"messages":[{"role":"assistant","tool_calls":5}]})", "messages[0].tool_calls"},
      {R"({"messages":[{"role":"user","content":"x","name":5}]})", "messages[0].name"},
      {with(R"("model":1)"), "model"},
      {with(R"("max_tokens":0)"), "max_tokens"},
      {with(R"("max_tokens":-1)"), "max_tokens"},
      {with(R"("max_tokens":2.5)"), "max_tokens"},
      {with(R"("max_tokens":"5")"), "max_tokens"},
      {with(R"("max_tokens":1e300)"), "max_tokens"},
      {with(R"("max_tokens":99999999999)"), "max_tokens"},
      {with(R"("max_completion_tokens":true)"), "max_completion_tokens"},
      {with(R"("temperature":-0.1)"), "temperature"},
      {with(R"("temperature":2.5)"), "temperature"},
      {with(R"("temperature":"1")"), "temperature"},
      {with(R"("top_p":1.1)"), "top_p"},
      {with(R"("top_p":-1)"), "top_p"},
      {with(R"("top_k":-1)"), "top_k"},
      {with(R"("min_p":2)"), "min_p"},
      {with(R"("repeat_penalty":0)"), "repeat_penalty"},
      {with(R"("frequency_penalty":2.1)"), "frequency_penalty"},
      {with(R"("presence_penalty":-2.1)"), "presence_penalty"},
      {with(R"("seed":1.5)"), "seed"},
      {with(R"("seed":"1")"), "seed"},
      {with(R"("seed":18446744073709551615)"), "seed"},
      {with(R"("stop":5)"), "stop"},
      {with(R"("stop":[""])"), "stop"},
      {with(R"("stop":["a",null])"), "stop[1]"},
      {with(R"("stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])"), "stop"},
      {with(R"("logit_bias":[1])"), "logit_bias"},
      {with(R"("logit_bias":{"x":1})"), "logit_bias"},
      {with(R"("logit_bias":{"-1":1})"), "logit_bias"},
      {with(R"("logit_bias":{"1000":1})"), "logit_bias"},
      {with(R"("logit_bias":{"99999999999":1})"), "logit_bias"},
      {with(R"("logit_bias":{"5":"1"})"), "logit_bias.5"},
      {with(R"("logit_bias":{"5":101})"), "logit_bias.5"},
      {with(R"("n":0)"), "n"},
      {with(R"("n":17)"), "n"},
      {with(R"("stream":1)"), "stream"},
      {with(R"("stream_options":{"include_usage":true})"), "stream_options"},
      {with(R"("stream":true,"stream_options":5)"), "stream_options"},
      {with(R"("stream":true,"stream_options":{"include_usage":"yes"})"), "stream_options.include_usage"},
      {with(R"("logprobs":"yes")"), "logprobs"},
      {with(R"("top_logprobs":2)"), "top_logprobs"},
      {with(R"("logprobs":true,"top_logprobs":21)"), "top_logprobs"},
      {with(R"("response_format":"json")"), "response_format"},
      {with(R"("response_format":{})"), "response_format.type"},
      {with(R"("response_format":{"type":"yaml"})"), "response_format.type"},
      {with(R"("response_format":{"type":"json_schema"})"), "response_format.json_schema"},
      {with(R"("response_format":{"type":"json_schema","json_schema":{"schema":{}}})"), "response_format.json_schema.name"},
      {with(R"("response_format":{"type":"json_schema","json_schema":{"name":"a b"}})"), "response_format.json_schema.name"},
      {with(R"("response_format":{"type":"json_schema","json_schema":{"name":"a","schema":5}})"),
       "response_format.json_schema.schema"},
      {with(R"("tools":{})"), "tools"},
      {with(R"("tools":[5])"), "tools[0]"},
      {with(R"("tools":[{"function":{"name":"f"}}])"), "tools[0].type"},
      {with(R"("tools":[{"type":"retrieval","function":{"name":"f"}}])"), "tools[0].type"},
      {with(R"("tools":[{"type":"function"}])"), "tools[0].function"},
      {with(R"("tools":[{"type":"function","function":{}}])"), "tools[0].function.name"},
      {with(R"("tools":[{"type":"function","function":{"name":""}}])"), "tools[0].function.name"},
      {with(R"("tools":[{"type":"function","function":{"name":"f","description":5}}])"), "tools[0].function.description"},
      {with(R"("tools":[{"type":"function","function":{"name":"f","parameters":[]}}])"), "tools[0].function.parameters"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}])"),
       "tools[1].function.name"},
      {with(R"("tool_choice":"required")"), "tool_choice"},
      {with(R"("tool_choice":5)"), "tool_choice"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"maybe")"), "tool_choice"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function"})"),
       "tool_choice.function"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"x","function":{"name":"f"}})"),
       "tool_choice.type"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}})"),
       "tool_choice.function.name"},
      {with(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","response_format":{"type":"json_object"})"),
       "response_format"},
      {with(R"("parallel_tool_calls":"no")"), "parallel_tool_calls"},
  };
  for (const Case& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body << " -> " << e.what();
    EXPECT_FALSE(std::string(e.what()).empty());
  }
}

TEST(ParseChat, ToolsAndChoices) {
  std::string tools = R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}},
                                    {"type":"function","function":{"name":"f2","description":"d"}}])";
  srv::ChatRequest r = chat(with(tools));
  EXPECT_EQ(r.tool_choice, srv::ToolChoice::Auto);
  ASSERT_EQ(r.tools.size(), 2u);
  EXPECT_FALSE(r.tools[0]["function"].contains("description"));  // a tool without a description is fine
  EXPECT_EQ(r.tools[1]["function"]["parameters"]["type"], "object");  // a default schema is filled in
  EXPECT_EQ(chat(with(tools + R"(,"tool_choice":"none")")).tool_choice, srv::ToolChoice::None);
  EXPECT_EQ(chat(with(tools + R"(,"tool_choice":"required")")).tool_choice, srv::ToolChoice::Required);
  srv::ChatRequest named = chat(with(tools + R"(,"tool_choice":{"type":"function","function":{"name":"f2"}})"));
  EXPECT_EQ(named.tool_choice, srv::ToolChoice::Named);
  EXPECT_EQ(named.tool_name, "f2");
  EXPECT_EQ(chat(with(R"("tools":[])")).tool_choice, srv::ToolChoice::None);
  EXPECT_EQ(chat(with(R"("tool_choice":"auto")")).tool_choice, srv::ToolChoice::None);  // no tools: nothing to call
}

TEST(ParseChat, ResponseFormats) {
  EXPECT_EQ(chat(with(R"("response_format":{"type":"text"})")).response_format, srv::ResponseFormat::Text);
  EXPECT_EQ(chat(with(R"("response_format":{"type":"json_object"})")).response_format, srv::ResponseFormat::JsonObject);
  srv::ChatRequest r =
      chat(with(R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer"}}})"));
  EXPECT_EQ(r.response_format, srv::ResponseFormat::JsonSchema);
  EXPECT_EQ(r.schema["type"], "integer");
}

TEST(ParseCompletion, PromptForms) {
  auto parse = [](const std::string& body) {
    return srv::parse_completion_request(srv::parse_body(body, limits()), limits());
  };
  srv::CompletionRequest a = parse(R"({"prompt":"hello"})");
  ASSERT_EQ(a.prompts.size(), 1u);
  EXPECT_EQ(a.prompts[0].text, "hello");
  EXPECT_EQ(a.gen.max_tokens, 16);  // OpenAI's default for completions
  srv::CompletionRequest b = parse(R"({"prompt":["a","b"],"max_tokens":3,"echo":true,"logprobs":2})");
  EXPECT_EQ(b.prompts.size(), 2u);
  EXPECT_TRUE(b.echo);
  EXPECT_EQ(b.logprobs, 2);
  srv::CompletionRequest c = parse(R"({"prompt":[1,2,3]})");
  ASSERT_EQ(c.prompts.size(), 1u);
  EXPECT_TRUE(c.prompts[0].is_tokens);
  EXPECT_EQ(c.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  srv::CompletionRequest d = parse(R"({"prompt":[[1],[2,3]]})");
  EXPECT_EQ(d.prompts.size(), 2u);

  for (const char* bad : {R"({})", R"({"prompt":5})", R"({"prompt":[]})", R"({"prompt":[1,"a"]})",
                          R"({"prompt":[1000]})", R"({"prompt":[-1]})", R"({"prompt":[[]]})", R"({"prompt":[{}]})",
                          R"({"prompt":"x","logprobs":6})", R"({"prompt":"x","suffix":"y"})",
                          R"({"prompt":"x","echo":1})", R"({"prompt":"x","best_of":3})",
                          R"({"prompt":["a","b","c","d","e","f","g","h"],"n":16})"}) {
    try {
      parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << bad;
    }
  }
}

TEST(ParseEmbedding, InputForms) {
  auto parse = [](const std::string& body) {
    return srv::parse_embedding_request(srv::parse_body(body, Limits{}), Limits{});
  };
  srv::EmbeddingRequest a = parse(R"({"input":"x","model":"m","encoding_format":"base64","dimensions":8})");
  EXPECT_EQ(a.inputs.size(), 1u);
  EXPECT_EQ(a.model, "m");
  EXPECT_TRUE(a.base64);
  EXPECT_EQ(a.dimensions, 8);
  EXPECT_EQ(parse(R"({"input":["a","b"]})").inputs.size(), 2u);
  EXPECT_TRUE(parse(R"({"input":[5,6]})").inputs[0].is_tokens);
  for (const char* bad : {R"({})", R"({"input":null})", R"({"input":1})", R"({"input":[]})", R"({"input":[true]})",
                          R"({"input":"x","encoding_format":"hex"})", R"({"input":"x","dimensions":0})",
                          R"({"input":"x","model":[]})"}) {
    EXPECT_THROW(parse(bad), ApiError) << bad;
  }
}

TEST(ApiError, Shape) {
  ApiError e = ApiError::invalid("bad temperature", "temperature");
  Json j = e.to_json();
  EXPECT_EQ(j["error"]["message"], "bad temperature");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_TRUE(j["error"]["code"].is_null());
  ApiError nf = ApiError::model_not_found("gpt-9");
  EXPECT_EQ(nf.status(), 404);
  EXPECT_EQ(nf.to_json()["error"]["code"], "model_not_found");
}

TEST(FunctionName, Rules) {
  EXPECT_TRUE(srv::valid_function_name("get_weather-2"));
  EXPECT_FALSE(srv::valid_function_name(""));
  EXPECT_FALSE(srv::valid_function_name("a b"));
  EXPECT_FALSE(srv::valid_function_name(std::string(65, 'a')));
  EXPECT_TRUE(srv::valid_function_name(std::string(64, 'a')));
}
