// `hai run --grammar / --json-schema` with the random-weight fixture models:
// even a model of noise, sampled at temperature 1 with many seeds, writes
// JSON that parses and keeps to the schema; a short -n leaves a valid
// prefix; bad grammar and schema files are clear errors.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "byte_vocab.h"
#include "common/test_util.h"
#include "engine/grammar/grammar.h"

namespace hai::grammar {
namespace {

using json = nlohmann::ordered_json;

std::string temp_file(const std::string& name, const std::string& content) {
  const std::string path = "/tmp/hai_grammar_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string model(const std::string& name) { return hai::test::fixture("models/" + name + ".gguf"); }

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "id": {"type": "integer", "minimum": 1, "maximum": 999},
    "label": {"type": "string", "maxLength": 10},
    "color": {"enum": ["red", "green", "blue"]},
    "scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "maxItems": 3},
    "note": {"type": ["string", "null"], "maxLength": 5}
  },
  "required": ["id", "label", "color"],
  "additionalProperties": false
})";

void check(const json& v, const std::string& out) {
  ASSERT_TRUE(v.is_object()) << out;
  ASSERT_TRUE(v.contains("id") && v["id"].is_number_integer()) << out;
  EXPECT_GE(v["id"].get<int64_t>(), 1) << out;
  EXPECT_LE(v["id"].get<int64_t>(), 999) << out;
  ASSERT_TRUE(v.contains("label") && v["label"].is_string()) << out;
  ASSERT_TRUE(v.contains("color")) << out;
  EXPECT_TRUE(v["color"] == "red" || v["color"] == "green" || v["color"] == "blue") << out;
  if (v.contains("scores")) {
    ASSERT_TRUE(v["scores"].is_array()) << out;
    EXPECT_LE(v["scores"].size(), 3u) << out;
    for (const auto& x : v["scores"]) {
      ASSERT_TRUE(x.is_number()) << out;
      EXPECT_GE(x.get<double>(), 0.0) << out;
      EXPECT_LE(x.get<double>(), 1.0) << out;
    }
  }
  if (v.contains("note")) {
    EXPECT_TRUE(v["note"].is_null() || v["note"].is_string()) << out;
  }
  EXPECT_LE(v.size(), 5u) << out;
}

std::string strip_newline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST(GrammarCli, NoiseModelsWriteValidJson) {
  const std::string schema = temp_file("schema.json", kSchema);
  auto g = Grammar::from_json_schema(json::parse(kSchema));
  int complete = 0;
  for (const char* m : {"tiny-llama-spm-q8_0", "tiny-qwen2-gpt2-q8_0"}) {
    for (int seed = 1; seed <= 8; ++seed) {
      auto r = hai::test::run_hai("run -m " + model(m) + " -p 'Answer in JSON:' --temp 1 --seed " +
                                  std::to_string(seed) + " -n 80 -t 1 --json-schema " + schema);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const std::string out = strip_newline(r.out);
      // Every output is at least a valid prefix; finished ones parse and validate.
      EXPECT_TRUE(test::prefix_ok(g, out)) << m << " seed " << seed << ": " << out;
      if (r.err.find("stop: grammar complete") == std::string::npos &&
          r.err.find("stop: end of generation") == std::string::npos)
        continue;
      ++complete;
      json v;
      ASSERT_NO_THROW(v = json::parse(out)) << m << " seed " << seed << ": " << out;
      check(v, out);
    }
  }
  EXPECT_GE(complete, 12) << "most runs should finish within 80 tokens";
  std::remove(schema.c_str());
}

TEST(GrammarCli, ShortRunLeavesAValidPrefix) {
  const std::string schema = temp_file("prefix.json", kSchema);
  auto g = Grammar::from_json_schema(json::parse(kSchema));
  for (int seed = 1; seed <= 3; ++seed) {
    auto r = hai::test::run_hai("run -m " + model("tiny-qwen2-gpt2-q8_0") + " -p Hi --temp 1 -n 4 -t 1 --seed " +
                                std::to_string(seed) + " --json-schema " + schema);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string out = strip_newline(r.out);
    EXPECT_FALSE(out.empty());
    EXPECT_TRUE(test::prefix_ok(g, out)) << out;
    EXPECT_FALSE(test::accepts(g, out)) << out;  // 4 tokens cannot hold id, label and color
    EXPECT_NE(r.err.find("stop: length"), std::string::npos) << r.err;
  }
  std::remove(schema.c_str());
}

TEST(GrammarCli, GbnfFile) {
  const std::string gbnf = temp_file("yn.gbnf", "root ::= answer \".\"\nanswer ::= \"yes\" | \"no\" | \"maybe\"\n");
  for (const char* m : {"tiny-llama-spm-q8_0", "tiny-qwen2-gpt2-q8_0"}) {
    for (int seed = 1; seed <= 4; ++seed) {
      auto r = hai::test::run_hai("run -m " + model(m) + " -p Question --temp 1 -n 20 -t 1 --seed " +
                                  std::to_string(seed) + " --grammar " + gbnf);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const std::string out = strip_newline(r.out);
      EXPECT_TRUE(out == "yes." || out == "no." || out == "maybe.") << out;
      EXPECT_NE(r.err.find("stop: grammar complete"), std::string::npos) << r.err;
    }
  }
  std::remove(gbnf.c_str());
}

TEST(GrammarCli, Errors) {
  const std::string m = model("tiny-llama-spm-q8_0");
  auto expect_error = [&](const std::string& args, std::initializer_list<std::string> parts) {
    auto r = hai::test::run_hai("run -m " + m + " -p x -n 2 " + args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.err.find("hai: error:"), std::string::npos) << r.err;
    for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "missing '" << p << "' in: " << r.err;
  };
  expect_error("--grammar /nonexistent/g.gbnf", {"cannot read the grammar file", "/nonexistent/g.gbnf"});
  expect_error("--json-schema /nonexistent/s.json", {"cannot read the JSON schema file"});
  const std::string bad_gbnf = temp_file("bad.gbnf", "root ::= \"a\"\nb ::= [z-a]\n");
  expect_error("--grammar " + bad_gbnf, {bad_gbnf, "line 2, column", "reversed"});
  const std::string bad_json = temp_file("bad.json", "{\"type\": \"object\",");
  expect_error("--json-schema " + bad_json, {bad_json, "malformed JSON"});
  const std::string unsupported = temp_file("unsup.json", R"({"type":"object","properties":{"a":{"not":{}}}})");
  expect_error("--json-schema " + unsupported, {unsupported, "#/properties/a/not"});
  const std::string ok = temp_file("ok.json", R"({"type":"string"})");
  expect_error("--json-schema " + ok + " --grammar " + bad_gbnf, {"cannot be used together"});
  for (const auto& f : {bad_gbnf, bad_json, unsupported, ok}) std::remove(f.c_str());
}

}  // namespace
}  // namespace hai::grammar
