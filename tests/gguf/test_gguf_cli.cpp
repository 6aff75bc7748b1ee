// `hai gguf info`: text and JSON output on fixtures, errors on bad files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"

namespace {

using hai::test::fixture;
using hai::test::run_hai;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(GgufInfoCli, TextOnModel) {
  auto r = run_hai("gguf info " + fixture("models/tiny-llama-spm-q4_k_m.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("version: 3"));
  EXPECT_THAT(r.out, HasSubstr("tensors: 21"));
  EXPECT_THAT(r.out, HasSubstr("alignment: 32"));
  EXPECT_THAT(r.out, HasSubstr("general.architecture"));
  EXPECT_THAT(r.out, HasSubstr("\"llama\""));
  EXPECT_THAT(r.out, HasSubstr("[string; 32000]"));
  EXPECT_THAT(r.out, HasSubstr("(32000 total)"));  // long array shortened
  EXPECT_THAT(r.out, HasSubstr("output.weight"));
  EXPECT_THAT(r.out, HasSubstr("q6_K"));
  EXPECT_THAT(r.out, HasSubstr("[256, 32000]"));
  EXPECT_LT(r.out.size(), 20000u);
}

TEST(GgufInfoCli, NoArraysLeavesOutContents) {
  auto r = run_hai("gguf info --no-arrays " + fixture("tokenizer/ggml-vocab-gpt-2.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tokenizer.ggml.tokens"));
  EXPECT_THAT(r.out, Not(HasSubstr("total)")));
  EXPECT_THAT(r.out, HasSubstr("tensors: 0"));
}

TEST(GgufInfoCli, Json) {
  auto r = run_hai("gguf info --json " + fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["alignment"], 32);
  EXPECT_EQ(j["tensor_count"], j["tensors"].size());
  EXPECT_EQ(j["kv_count"], j["metadata"].size());
  bool found_arch = false, found_tokens = false;
  for (const auto& e : j["metadata"]) {
    if (e["key"] == "general.architecture") found_arch = e["value"] == "qwen2";
    if (e["key"] == "tokenizer.ggml.tokens") {
      found_tokens = e["count"] == 50257 && e["value"].size() == 50257 && e["elem_type"] == "string";
    }
  }
  EXPECT_TRUE(found_arch);
  EXPECT_TRUE(found_tokens);
  const auto& t0 = j["tensors"][0];
  EXPECT_TRUE(t0.contains("name") && t0.contains("type") && t0.contains("shape") && t0.contains("nbytes") &&
              t0.contains("offset"));
  uint64_t file_offset = t0["file_offset"];
  EXPECT_EQ(file_offset, j["data_offset"].get<uint64_t>() + t0["offset"].get<uint64_t>());

  auto n = run_hai("gguf info --json --no-arrays " + fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  ASSERT_EQ(n.exit_code, 0);
  auto jn = nlohmann::json::parse(n.out);
  for (const auto& e : jn["metadata"])
    if (e["type"] == "array") {
      EXPECT_FALSE(e.contains("value"));
    }
}

TEST(GgufInfoCli, CorruptFile) {
  std::string path = ::testing::TempDir() + "/hai_cli_corrupt.gguf";
  {
    std::ofstream out(path, std::ios::binary);
    std::string head = hai::test::read_file(fixture("models/tiny-llama-spm-f16.gguf")).substr(0, 5000);
    out << head;
  }
  auto r = run_hai("gguf info " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("hai: error: " + path + ": key 'tokenizer.ggml.tokens': array of 32000 string values cannot fit"));
  EXPECT_TRUE(r.out.empty());
}

TEST(GgufInfoCli, MissingFileAndUsage) {
  auto r = run_hai("gguf info /nonexistent.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent.gguf: cannot open"));
  auto u = run_hai("gguf info");
  EXPECT_NE(u.exit_code, 0);
  EXPECT_THAT(u.err, HasSubstr("FILE"));
  auto b = run_hai("gguf info --bogus " + fixture("models/tiny-llama-spm-f16.gguf"));
  EXPECT_NE(b.exit_code, 0);
}

}  // namespace
