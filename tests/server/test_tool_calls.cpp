// Reading tool calls back out of generated text, in the Hermes (Qwen) and
// Llama 3 formats, and the schema a forced call is decoded under.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "server/tool_calls.h"

namespace srv = hai::server;
using srv::Json;

namespace {

Json tools() {
  return Json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"city":{"type":"string"}},"required":["city"]}}},
    {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}])");
}

}  // namespace

TEST(ToolFormat, Detect) {
  EXPECT_EQ(srv::detect_tool_format("{% for tool in tools %}<tool_call>{% endfor %}"), srv::ToolFormat::Hermes);
  EXPECT_EQ(srv::detect_tool_format("<|start_header_id|>ipython<|end_header_id|>"), srv::ToolFormat::Llama3);
  EXPECT_EQ(srv::detect_tool_format("<|im_start|>"), srv::ToolFormat::Hermes);
  EXPECT_TRUE(srv::template_renders_tools("{% if tools %}..."));
  EXPECT_FALSE(srv::template_renders_tools("{% for m in messages %}{{ m.content }}{% endfor %}"));
}

TEST(ParseToolCalls, Hermes) {
  auto out = srv::parse_tool_calls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
      srv::ToolFormat::Hermes, tools());
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(Json::parse(out.calls[0].arguments)["city"], "Paris");
  EXPECT_EQ(out.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(out.calls[0].id.size(), 29u);
  EXPECT_TRUE(out.has_content);
  EXPECT_EQ(out.content, "Let me check.");
}

TEST(ParseToolCalls, SeveralHermesCallsAndAMissingCloseTag) {
  auto out = srv::parse_tool_calls(
      "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\n"
      "<tool_call>{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Lima\\\"}\"}",
      srv::ToolFormat::Hermes, tools());
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.calls[0].name, "get_time");
  EXPECT_EQ(out.calls[0].arguments, "{}");
  EXPECT_EQ(out.calls[1].name, "get_weather");
  EXPECT_EQ(Json::parse(out.calls[1].arguments)["city"], "Lima");  // string arguments are parsed
  EXPECT_FALSE(out.has_content);
  EXPECT_NE(out.calls[0].id, out.calls[1].id);
}

TEST(ParseToolCalls, Llama3Json) {
  auto out = srv::parse_tool_calls("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
                                   srv::ToolFormat::Llama3, tools());
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(Json::parse(out.calls[0].arguments)["city"], "Oslo");
  EXPECT_FALSE(out.has_content);
  auto two = srv::parse_tool_calls(R"({"name":"get_time","parameters":{}}; {"name":"get_weather","parameters":{"city":"X"}})",
                                   srv::ToolFormat::Llama3, tools());
  EXPECT_EQ(two.calls.size(), 2u);
}

TEST(ParseToolCalls, NotCalls) {
  // Plain text, an unknown function, malformed JSON, arguments that are not an object.
  for (const char* text : {"Hello there", "<tool_call>{\"name\":\"rm_rf\",\"arguments\":{}}</tool_call>",
                           "<tool_call>{\"name\":\"get_time\",</tool_call>", "{\"name\":\"get_time\",\"arguments\":[1]}",
                           "{\"city\":\"Paris\"}", "{\"name\":\"get_time\"} trailing", "", "<tool_call>", "{"}) {
    auto out = srv::parse_tool_calls(text, srv::ToolFormat::Hermes, tools());
    EXPECT_TRUE(out.calls.empty()) << text;
    std::string t = text;
    size_t b = t.find_first_not_of(" \t\r\n");
    EXPECT_EQ(out.content, b == std::string::npos ? "" : t) << text;
  }
}

TEST(ParseToolCalls, NoToolsNoCalls) {
  auto out = srv::parse_tool_calls("<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",
                                   srv::ToolFormat::Hermes, nullptr);
  EXPECT_TRUE(out.calls.empty());
}

TEST(ToolCallSchema, OneOrMany) {
  Json one = srv::tool_call_schema(tools(), "get_weather", srv::ToolFormat::Hermes);
  EXPECT_EQ(one["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(one["properties"]["arguments"]["required"][0], "city");
  EXPECT_EQ(one["required"], Json::parse(R"(["name","arguments"])"));
  EXPECT_EQ(one["additionalProperties"], false);
  Json any = srv::tool_call_schema(tools(), "", srv::ToolFormat::Llama3);
  ASSERT_TRUE(any.contains("anyOf"));
  EXPECT_EQ(any["anyOf"].size(), 2u);
  EXPECT_TRUE(any["anyOf"][1]["properties"].contains("parameters"));
  EXPECT_THROW(srv::tool_call_schema(tools(), "nope", srv::ToolFormat::Hermes), hai::Error);
}

TEST(ToolsSystemPrompt, ListsEveryTool) {
  std::string h = srv::tools_system_prompt(tools(), srv::ToolFormat::Hermes);
  EXPECT_NE(h.find("<tools>"), std::string::npos);
  EXPECT_NE(h.find("get_weather"), std::string::npos);
  EXPECT_NE(h.find("get_time"), std::string::npos);
  EXPECT_NE(h.find("<tool_call>"), std::string::npos);
  std::string l = srv::tools_system_prompt(tools(), srv::ToolFormat::Llama3);
  EXPECT_NE(l.find("\"parameters\""), std::string::npos);
}

TEST(MayStartToolCall, Prefixes) {
  for (const char* t : {"", "  \n", "<", "<tool", "<tool_call>", "<tool_call>\n{\"name\"", " {", "{\"name\": 1",
                        "<|python", "<|python_tag|>{"})
    EXPECT_TRUE(srv::may_start_tool_call(t)) << t;
  for (const char* t : {"Hello", " The", "<b>", "<|im_end|>", "[1]", "<tool_cal1"})
    EXPECT_FALSE(srv::may_start_tool_call(t)) << t;
}
