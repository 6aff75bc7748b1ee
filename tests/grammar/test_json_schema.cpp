// JSON schema -> GBNF: each keyword, checked by what the grammar accepts and
// rejects byte by byte; unsupported or malformed schemas give hai::Error
// naming the JSON pointer.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "byte_vocab.h"
#include "engine/common/error.h"
#include "engine/grammar/grammar.h"

namespace hai::grammar {
namespace {

using json = nlohmann::ordered_json;
using test::accepts;
using test::prefix_ok;

std::shared_ptr<const Grammar> schema(const char* text) { return Grammar::from_json_schema(json::parse(text)); }

std::string schema_error(const char* text) {
  try {
    Grammar::from_json_schema(json::parse(text));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

#define EXPECT_SCHEMA_ERROR(text, ...)                                                             \
  do {                                                                                             \
    const std::string msg = schema_error(text);                                                    \
    for (const char* part : {__VA_ARGS__})                                                         \
      EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nmissing: " << part; \
  } while (0)

TEST(JsonSchema, Primitives) {
  auto s = schema(R"({"type":"string"})");
  EXPECT_TRUE(accepts(s, R"("hello")"));
  EXPECT_TRUE(accepts(s, R"("a\"b\\c\n\u00e9\/")"));
  EXPECT_TRUE(accepts(s, "\"中文\""));
  EXPECT_FALSE(accepts(s, "\"a\nb\""));      // raw control character
  EXPECT_FALSE(accepts(s, R"("\q")"));       // bad escape
  EXPECT_FALSE(accepts(s, R"("\ud800")"));   // surrogate escape
  EXPECT_FALSE(accepts(s, "hello"));
  auto n = schema(R"({"type":"number"})");
  for (const char* ok : {"0", "-1", "3.25", "1e5", "-0.5E-10", "12345678"}) EXPECT_TRUE(accepts(n, ok)) << ok;
  for (const char* bad : {"01", "1.", ".5", "+1", "1e", "--1", "1e123"}) EXPECT_FALSE(accepts(n, bad)) << bad;
  auto i = schema(R"({"type":"integer"})");
  EXPECT_TRUE(accepts(i, "-42"));
  EXPECT_FALSE(accepts(i, "4.2"));
  EXPECT_TRUE(accepts(schema(R"({"type":"boolean"})"), "false"));
  EXPECT_TRUE(accepts(schema(R"({"type":"null"})"), "null"));
  EXPECT_FALSE(accepts(schema(R"({"type":"null"})"), "nul"));
}

TEST(JsonSchema, ObjectRequiredOptionalOrder) {
  auto s = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},
                     "required":["b"],"additionalProperties":false})");
  EXPECT_TRUE(accepts(s, R"({"b":"x"})"));
  EXPECT_TRUE(accepts(s, R"({"a":1,"b":"x"})"));
  EXPECT_TRUE(accepts(s, R"({"a":1,"b":"x","c":true})"));
  EXPECT_TRUE(accepts(s, R"({"b":"x","c":false})"));
  EXPECT_TRUE(accepts(s, "{\n  \"a\": 1,\n  \"b\": \"x\"\n}"));
  EXPECT_FALSE(accepts(s, R"({})"));               // b is required
  EXPECT_FALSE(accepts(s, R"({"a":1})"));
  EXPECT_FALSE(accepts(s, R"({"b":"x","d":1})"));  // no additional properties
  EXPECT_FALSE(accepts(s, R"({"b":"x",})"));
  EXPECT_FALSE(accepts(s, R"({,"b":"x"})"));
  EXPECT_FALSE(accepts(s, R"({"b":1})"));
  auto opt = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}}})");
  EXPECT_TRUE(accepts(opt, "{}"));
  EXPECT_TRUE(accepts(opt, "{ }"));
  EXPECT_TRUE(accepts(opt, R"({"b":2})"));
  EXPECT_TRUE(accepts(opt, R"({"a":1,"b":2})"));
  EXPECT_FALSE(accepts(opt, R"({"a":1,})"));
}

TEST(JsonSchema, WhitespaceIsBounded) {
  auto s = schema(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})");
  EXPECT_TRUE(accepts(s, "{ \"a\": 1 }"));
  EXPECT_TRUE(accepts(s, "{\n\t\"a\":\n    1\n}"));
  EXPECT_FALSE(prefix_ok(s, "{  "));             // two spaces: not one run
  EXPECT_FALSE(prefix_ok(s, "{\n\n"));
  EXPECT_FALSE(prefix_ok(s, "{\n" + std::string(21, ' ')));
  EXPECT_FALSE(prefix_ok(s, " {"));              // nothing before the value
}

TEST(JsonSchema, AdditionalProperties) {
  auto any = schema(R"({"type":"object"})");
  EXPECT_TRUE(accepts(any, R"({"x":[1,{"y":null}],"z":"w"})"));
  auto typed = schema(R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],
                          "additionalProperties":{"type":"string"}})");
  EXPECT_TRUE(accepts(typed, R"({"id":1})"));
  EXPECT_TRUE(accepts(typed, R"({"id":1,"name":"x","i":"y","idx":"z"})"));
  EXPECT_FALSE(accepts(typed, R"({"id":1,"name":2})"));
  EXPECT_FALSE(accepts(typed, R"({"id":1,"id":"x"})"));  // an extra key never repeats a listed one
  auto dict = schema(R"({"type":"object","additionalProperties":{"type":"integer"}})");
  EXPECT_TRUE(accepts(dict, R"({})"));
  EXPECT_TRUE(accepts(dict, R"({"a":1,"b":2})"));
  EXPECT_FALSE(accepts(dict, R"({"a":"x"})"));
}

TEST(JsonSchema, Arrays) {
  auto s = schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  EXPECT_FALSE(accepts(s, "[1]"));
  EXPECT_TRUE(accepts(s, "[1,2]"));
  EXPECT_TRUE(accepts(s, "[1, 2, 3]"));
  EXPECT_FALSE(accepts(s, "[1,2,3,4]"));
  EXPECT_FALSE(accepts(s, "[1,\"a\"]"));
  auto any = schema(R"({"type":"array"})");
  EXPECT_TRUE(accepts(any, "[]"));
  EXPECT_TRUE(accepts(any, R"([1,"a",null,[true]])"));
  auto tuple = schema(R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})");
  EXPECT_TRUE(accepts(tuple, "[]"));
  EXPECT_TRUE(accepts(tuple, R"(["a"])"));
  EXPECT_TRUE(accepts(tuple, R"(["a",1])"));
  EXPECT_FALSE(accepts(tuple, R"(["a",1,2])"));
  EXPECT_FALSE(accepts(tuple, R"([1])"));
  auto tail = schema(R"({"type":"array","prefixItems":[{"const":"cmd"}],"items":{"type":"boolean"},"minItems":2})");
  EXPECT_FALSE(accepts(tail, R"(["cmd"])"));
  EXPECT_TRUE(accepts(tail, R"(["cmd",true,false])"));
  auto unbounded = schema(R"({"type":"array","items":{"type":"null"},"minItems":1})");
  EXPECT_FALSE(accepts(unbounded, "[]"));
  EXPECT_TRUE(accepts(unbounded, "[null,null,null,null]"));
}

TEST(JsonSchema, StringLengthCountsCharacters) {
  auto s = schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_FALSE(accepts(s, R"("a")"));
  EXPECT_TRUE(accepts(s, R"("ab")"));
  EXPECT_TRUE(accepts(s, "\"中文字\""));
  EXPECT_TRUE(accepts(s, R"("\n\u00e9x")"));
  EXPECT_FALSE(accepts(s, R"("abcd")"));
}

TEST(JsonSchema, EnumAndConst) {
  auto e = schema(R"({"enum":["red","green",3,null,{"a":[1]}]})");
  EXPECT_TRUE(accepts(e, R"("red")"));
  EXPECT_TRUE(accepts(e, "3"));
  EXPECT_TRUE(accepts(e, "null"));
  EXPECT_TRUE(accepts(e, R"({"a":[1]})"));
  EXPECT_FALSE(accepts(e, R"("blue")"));
  auto c = schema(R"({"const":"only \"this\""})");
  EXPECT_TRUE(accepts(c, R"("only \"this\"")"));
  EXPECT_FALSE(accepts(c, R"("only")"));
  auto typed = schema(R"({"type":"string","enum":["a",1]})");
  EXPECT_TRUE(accepts(typed, R"("a")"));
  EXPECT_FALSE(accepts(typed, "1"));  // not a string
}

TEST(JsonSchema, FormatsAndNumbersInRange) {
  auto d = schema(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(accepts(d, R"("2024-02-28")"));
  EXPECT_FALSE(accepts(d, R"("2024-02-30")"));
  EXPECT_FALSE(accepts(d, R"("2024-13-01")"));
  EXPECT_TRUE(accepts(schema(R"({"type":"string","format":"date-time"})"), R"("2024-04-30T23:59:59.5+08:00")"));
  EXPECT_TRUE(accepts(schema(R"({"type":"string","format":"time"})"), R"("12:00:00Z")"));
  auto u = schema(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(accepts(u, R"("123e4567-e89b-12d3-a456-426614174000")"));
  EXPECT_FALSE(accepts(u, R"("123e4567e89b12d3a456426614174000")"));
  auto r = schema(R"({"type":"integer","minimum":-15,"maximum":230})");
  for (int v = -30; v <= 300; ++v) EXPECT_EQ(accepts(r, std::to_string(v)), v >= -15 && v <= 230) << v;
  auto ex = schema(R"({"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10.5})");
  for (int v = -3; v <= 13; ++v) EXPECT_EQ(accepts(ex, std::to_string(v)), v >= 1 && v <= 10) << v;
  auto pos = schema(R"({"type":"integer","minimum":100})");
  EXPECT_TRUE(accepts(pos, "100"));
  EXPECT_TRUE(accepts(pos, "123456"));
  EXPECT_FALSE(accepts(pos, "99"));
  auto num = schema(R"({"type":"number","minimum":-1.5,"maximum":2})");
  for (const char* ok : {"-1", "-1.0", "0.25", "1.999", "2", "-0.5"}) EXPECT_TRUE(accepts(num, ok)) << ok;
  for (const char* bad : {"2.5", "-2", "3", "2.1", "1e1"}) EXPECT_FALSE(accepts(num, bad)) << bad;
}

TEST(JsonSchema, Pattern) {
  auto phone = schema(R"({"type":"string","pattern":"^\\+?[0-9]{2,3}-\\d{4}$"})");
  EXPECT_TRUE(accepts(phone, R"("+86-1234")"));
  EXPECT_TRUE(accepts(phone, R"("123-0000")"));
  EXPECT_FALSE(accepts(phone, R"("1-1234")"));
  EXPECT_FALSE(accepts(phone, R"("86-12345")"));
  auto alt = schema(R"({"pattern":"^(cat|dog)s?$|^[A-Z][a-z]*$"})");
  for (const char* ok : {R"("cat")", R"("dogs")", R"("Zebra")", R"("Q")"}) EXPECT_TRUE(accepts(alt, ok)) << ok;
  for (const char* bad : {R"("cow")", R"("zebra")", R"("cats!")"}) EXPECT_FALSE(accepts(alt, bad)) << bad;
  // Characters JSON must escape are written escaped; '.' is not a line break.
  auto special = schema(R"({"pattern":"^a[\"\\\\\\n]b.$"})");
  EXPECT_TRUE(accepts(special, R"("a\"bx")"));
  EXPECT_TRUE(accepts(special, R"("a\\b中")"));
  EXPECT_TRUE(accepts(special, R"("a\u000ab_")"));
  EXPECT_FALSE(accepts(special, "\"a\"bx\""));  // a raw quote would end the string
  EXPECT_FALSE(accepts(special, R"("a\"b\u000a")"));
  auto classes = schema(R"({"pattern":"^[^a-y\\s]\\w+\\S(?:x|\\u4e2d){1,2}$"})");
  EXPECT_TRUE(accepts(classes, R"("z_9!x中")"));
  EXPECT_FALSE(accepts(classes, R"("a_9!x")"));
  EXPECT_FALSE(accepts(classes, R"("z_9 x")"));
}

TEST(JsonSchema, AnyOfOneOfTypeArrays) {
  auto a = schema(R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":2}]})");
  EXPECT_TRUE(accepts(a, "12"));
  EXPECT_TRUE(accepts(a, R"("ab")"));
  EXPECT_FALSE(accepts(a, R"("abc")"));
  auto o = schema(R"({"oneOf":[
      {"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number"}},"required":["kind","r"]},
      {"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"number"}},"required":["kind","side"]}]})");
  EXPECT_TRUE(accepts(o, R"({"kind":"circle","r":1})"));
  EXPECT_TRUE(accepts(o, R"({"kind":"square","side":2})"));
  EXPECT_FALSE(accepts(o, R"({"kind":"square","r":2})"));
  auto t = schema(R"({"type":["string","null"],"maxLength":1})");
  EXPECT_TRUE(accepts(t, "null"));
  EXPECT_TRUE(accepts(t, R"("x")"));
  EXPECT_FALSE(accepts(t, R"("xy")"));
}

TEST(JsonSchema, RefsAndRecursion) {
  auto s = schema(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                       "kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["v"],
                       "additionalProperties":false}},
                     "$ref":"#/$defs/node"})");
  EXPECT_TRUE(accepts(s, R"({"v":1})"));
  EXPECT_TRUE(accepts(s, R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"));
  EXPECT_FALSE(accepts(s, R"({"v":1,"kids":[{"w":2}]})"));
  auto d = schema(R"({"definitions":{"id":{"type":"integer"}},"type":"object",
                     "properties":{"a":{"$ref":"#/definitions/id"}},"required":["a"]})");
  EXPECT_TRUE(accepts(d, R"({"a":5})"));
  EXPECT_FALSE(accepts(d, R"({"a":"5"})"));
}

TEST(JsonSchema, AllOfMergesObjects) {
  auto s = schema(R"({"$defs":{"base":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}},
                     "allOf":[{"$ref":"#/$defs/base"},{"properties":{"name":{"type":"string"}},"required":["name"]}]})");
  EXPECT_TRUE(accepts(s, R"({"id":1,"name":"x"})"));
  EXPECT_FALSE(accepts(s, R"({"id":1})"));
}

TEST(JsonSchema, JsonObject) {
  auto g = Grammar::json_object();
  EXPECT_TRUE(accepts(g, "{}"));
  EXPECT_TRUE(accepts(g, R"({"a":{"b":[1,2.5,"x",true,null]}})"));
  EXPECT_FALSE(accepts(g, "[]"));
  EXPECT_FALSE(accepts(g, "\"x\""));
}

TEST(JsonSchema, GbnfTextIsReadable) {
  const std::string text = Grammar::json_schema_to_gbnf(json::parse(R"({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]})"));
  EXPECT_NE(text.find("root ::= "), std::string::npos) << text;
  EXPECT_NE(text.find("string ::= "), std::string::npos) << text;
  EXPECT_NO_THROW(Grammar::parse_gbnf(text));
}

TEST(JsonSchemaErrors, NamesThePointer) {
  EXPECT_SCHEMA_ERROR(R"({"type":"object","properties":{"x":{"type":"string","pattern":"^(?=a)a+$"}}})",
                      "#/properties/x/pattern", "lookaround");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"(a)\\1"})", "#/pattern", "escape '\\1'");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"\\bword"})", "#/pattern", "word boundary");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"a^b"})", "#/pattern", "'^' is supported only at the start");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"[a-"})", "#/pattern", "missing ']'");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"(ab"})", "#/pattern", "missing ')'");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"a**"})", "#/pattern", "nested quantifier");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"\\p{L}"})", "#/pattern");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","pattern":"a","maxLength":3})", "#/maxLength", "together with pattern");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","format":"email"})", "#/format", "format 'email' is not supported");
  EXPECT_SCHEMA_ERROR(R"({"type":"integer","multipleOf":3})", "#/multipleOf");
  EXPECT_SCHEMA_ERROR(R"({"not":{"type":"string"}})", "#/not", "unsupported keyword 'not'");
  EXPECT_SCHEMA_ERROR(R"({"type":"array","items":{"if":{}}})", "#/items/if", "unsupported keyword 'if'");
  EXPECT_SCHEMA_ERROR(R"({"type":"array","uniqueItems":true})", "#/uniqueItems");
  EXPECT_SCHEMA_ERROR(R"({"type":"array","contains":{"type":"string"}})", "#/contains");
  EXPECT_SCHEMA_ERROR(R"({"type":"object","patternProperties":{"a":{}}})", "#/patternProperties");
  EXPECT_SCHEMA_ERROR(R"({"type":"object","minProperties":2})", "#/minProperties");
  EXPECT_SCHEMA_ERROR(R"({"$ref":"#/$defs/missing"})", "#/$ref", "points to nothing");
  EXPECT_SCHEMA_ERROR(R"({"$ref":"http://example.com/s.json"})", "#/$ref", "only references inside the schema");
  EXPECT_SCHEMA_ERROR(R"({"type":"strange"})", "#/type", "unknown type 'strange'");
  EXPECT_SCHEMA_ERROR(R"({"type":7})", "#/type");
  EXPECT_SCHEMA_ERROR(R"({"properties":{"a":false},"required":["a"]})", "#/properties/a", "accepts no value");
  EXPECT_SCHEMA_ERROR(R"([1,2])", "a schema must be an object or a boolean");
  EXPECT_SCHEMA_ERROR(R"({"enum":[]})", "#/enum", "non-empty");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","enum":[1,2]})", "no value of const/enum");
  EXPECT_SCHEMA_ERROR(R"({"type":"array","minItems":3,"maxItems":2})", "#/maxItems");
  EXPECT_SCHEMA_ERROR(R"({"type":"string","minLength":-1})", "#/minLength");
  EXPECT_SCHEMA_ERROR(R"({"type":"integer","minimum":5,"maximum":4})", "no integer fits");
  EXPECT_SCHEMA_ERROR(R"({"type":"number","exclusiveMinimum":0.1,"exclusiveMaximum":0.5})", "fits between the bounds");
  EXPECT_SCHEMA_ERROR(R"({"oneOf":[{"type":"integer"},{"type":"number"}]})", "#/oneOf", "may both match");
  EXPECT_SCHEMA_ERROR(R"({"oneOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"object"}]})",
                      "#/oneOf");
  EXPECT_SCHEMA_ERROR(R"({"anyOf":[{"type":"integer"}],"type":"integer"})", "#/type", "beside anyOf");
  EXPECT_SCHEMA_ERROR(R"({"allOf":[{"type":"string"},{"maxLength":2}]})", "allOf is supported for object schemas only");
  EXPECT_SCHEMA_ERROR(R"({"type":"object","properties":{"a":{}},"required":["b"],"additionalProperties":false})",
                      "#/required", "'b'");
  EXPECT_SCHEMA_ERROR(R"({"type":"array","items":[{"type":"string"}]})", "#/items", "prefixItems");
  EXPECT_SCHEMA_ERROR(R"({"properties":{"a/b~c":{"type":"string","format":"hostname"}}})", "#/properties/a~1b~0c/format");
}

TEST(JsonSchemaErrors, DeepAndMalformed) {
  json deep = {{"type", "string"}};
  for (int i = 0; i < 100; ++i) deep = {{"type", "array"}, {"items", deep}};
  try {
    Grammar::from_json_schema(deep);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested more than 64 deep"), std::string::npos) << e.what();
  }
  EXPECT_SCHEMA_ERROR(R"({"allOf":[{"$ref":5},{"type":"object"}]})", "JSON schema");
  EXPECT_SCHEMA_ERROR(R"({"$ref":"#/$defs/99999999999999999999"})", "points to nothing");
  json bad_utf8 = {{"const", std::string("\xC3\x28")}};
  EXPECT_THROW(Grammar::from_json_schema(bad_utf8), Error);
}

// Mutated schemas: a grammar or hai::Error, never another exception.
TEST(JsonSchemaErrors, MutatedSchemasNeverCrash) {
  const json base = json::parse(R"({"type":"object","properties":{"a":{"type":"integer","minimum":1},
      "b":{"type":"array","items":{"enum":["x",2]},"maxItems":2},"c":{"$ref":"#/$defs/c"}},
      "required":["a"],"additionalProperties":false,"$defs":{"c":{"anyOf":[{"type":"string"},{"type":"null"}]}}})");
  const std::vector<json> values = {json(nullptr), json(true), json(false), json(-1), json(2.5), json("x"),
                                    json("#/$defs/c"), json::array(), json::object(), json::array({1, "a"}),
                                    json("integer"), json("object"), json("array"), json(100000000)};
  std::mt19937 rng(3);
  for (int iter = 0; iter < 2000; ++iter) {
    json s = base;
    // Replace a random value somewhere in the schema.
    json* cur = &s;
    for (int depth = 0; depth < 4 && (cur->is_object() || cur->is_array()) && !cur->empty(); ++depth) {
      auto it = cur->begin();
      std::advance(it, static_cast<long>(rng() % cur->size()));
      cur = &*it;
      if (rng() % 3 == 0) break;
    }
    *cur = values[rng() % values.size()];
    try {
      auto g = Grammar::from_json_schema(s);
      Matcher m(g, test::byte_tokenizer());
      test::feed(m, R"({"a":1})");
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace hai::grammar
