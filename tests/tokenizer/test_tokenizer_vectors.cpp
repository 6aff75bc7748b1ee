// Every test vector in shared/fixtures/tokenizer/*.inp/.out, tokenized the
// way llama.cpp's test-tokenizer-0 does it: add_special = false,
// parse_special = false.
#include <gtest/gtest.h>

#include <sstream>

#include "common/test_util.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

struct Case {
  std::string text;
  std::vector<hai::TokenId> expected;
};

std::vector<Case> load_cases(const std::string& base) {
  std::string inp = hai::test::read_file(base + ".inp");
  std::string out = hai::test::read_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t at = inp.find(sep); at != std::string::npos; at = inp.find(sep, pos)) {
    texts.push_back(inp.substr(pos, at - pos));
    pos = at + sep.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (const auto& t : texts) {
    std::getline(lines, line);
    Case c{t, {}};
    std::istringstream ids(line);
    int id;
    while (ids >> id) c.expected.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string show(const std::vector<hai::TokenId>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

class TokVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(TokVectors, MatchReference) {
  std::string base = hai::test::fixture("tokenizer/ggml-vocab-" + GetParam() + ".gguf");
  auto file = hai::gguf::File::open(base);
  auto tok = hai::Tokenizer::from_gguf(file);
  auto cases = load_cases(base);
  ASSERT_GT(cases.size(), 10u);
  int failures = 0;
  for (const auto& c : cases) {
    auto got = tok->encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    if (got != c.expected) {
      ++failures;
      ADD_FAILURE() << GetParam() << ": text '" << c.text << "'\n  expected " << show(c.expected) << "\n  got      "
                    << show(got);
    }
  }
  EXPECT_EQ(failures, 0) << "of " << cases.size();
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, TokVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm", "deepseek-coder", "falcon",
                                           "starcoder", "mpt", "refact", "bert-bge"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
