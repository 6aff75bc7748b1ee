// hai rerank and hai synth --pooling rank: output formats, order, stdin,
// --top-n, --token-types, and the bad inputs. The reference score below is
// llama.cpp's for this model and pair (see tests/model/test_rerank.cpp for
// how it was made).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "common/test_util.h"

namespace {

using hai::test::fixture;
using hai::test::run_hai;
using ::testing::HasSubstr;

std::string tmp(const std::string& name) {
  return ::testing::TempDir() + "cli_rerank_" + std::to_string(::getpid()) + "_" + name;
}

class CliRerank : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = tmp("rr16.gguf");
    auto r = run_hai("synth --arch bert --n-embd 128 --n-layer 2 --n-head 4 --n-ff 512 --ctx 512 --pooling rank "
                     "--seed 7 --vocab " + fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { std::filesystem::remove(model_); }
  static std::string model_;
};
std::string CliRerank::model_;

TEST_F(CliRerank, JsonIsSortedAndMatchesTheReference) {
  auto r = run_hai("rerank -m " + model_ + " --token-types zero --json 'what is a panda?' hi "
                   "'The giant panda is a bear native to China.'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  // llama.cpp: 0.7482318 ("hi"), 0.5245765 (the panda sentence).
  EXPECT_EQ(j[0]["index"], 0);
  EXPECT_EQ(j[0]["document"], "hi");
  EXPECT_NEAR(j[0]["relevance_score"].get<double>(), 0.7482318, 1e-3);
  EXPECT_EQ(j[1]["index"], 1);
  EXPECT_NEAR(j[1]["relevance_score"].get<double>(), 0.5245765, 1e-3);
  EXPECT_EQ(j[1]["n_tokens"], 18);
  EXPECT_EQ(j[1]["truncated"], false);
}

TEST_F(CliRerank, TextStdinTopNAndTokenTypes) {
  auto json = run_hai("rerank -m " + model_ + " --json 'what is a panda?' hi 'giant panda' bears 大熊猫");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j.size(), 4u);
  for (size_t i = 1; i < j.size(); ++i)
    EXPECT_GE(j[i - 1]["relevance_score"].get<double>(), j[i]["relevance_score"].get<double>());
  // Text: SCORE TAB INDEX TAB DOCUMENT, in the same order.
  auto text = run_hai("rerank -m " + model_ + " 'what is a panda?' hi 'giant panda' bears 大熊猫");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::istringstream lines(text.out);
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(n, j.size());
    const size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1);
    ASSERT_NE(t2, std::string::npos) << line;
    EXPECT_FLOAT_EQ(std::stof(line.substr(0, t1)), j[n]["relevance_score"].get<float>());
    EXPECT_EQ(std::stoi(line.substr(t1 + 1, t2 - t1 - 1)), j[n]["index"].get<int>());
    EXPECT_EQ(line.substr(t2 + 1), j[n]["document"].get<std::string>());
    ++n;
  }
  EXPECT_EQ(n, 4u);
  // Documents from stdin, one a line; --top-n keeps the best.
  auto in = hai::test::run("printf 'hi\\ngiant panda\\nbears\\n大熊猫\\n' | " + hai::test::hai_bin() + " rerank -m " +
                           model_ + " --json --top-n 2 'what is a panda?' -");
  ASSERT_EQ(in.exit_code, 0) << in.err;
  const auto k = nlohmann::json::parse(in.out);
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0], j[0]);
  EXPECT_EQ(k[1], j[1]);
  // Token types: the document part is type 1 by default, 0 with zero.
  auto zero = run_hai("rerank -m " + model_ + " --json --token-types zero 'what is a panda?' hi");
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  auto seg = run_hai("rerank -m " + model_ + " --json 'what is a panda?' hi");
  EXPECT_NE(nlohmann::json::parse(zero.out)[0]["relevance_score"], nlohmann::json::parse(seg.out)[0]["relevance_score"]);
}

TEST_F(CliRerank, BadInput) {
  std::string long_query;
  for (int i = 0; i < 600; ++i) long_query += "bear ";
  // Each: the arguments, and what the error names. Flag values CLI11
  // rejects exit with its own code (not 0); the rest with 1.
  struct Case {
    std::string args, message;
    bool cli11 = false;
  };
  const std::vector<Case> cases = {
      {"-m " + model_ + " 'only a query'", "at least one document"},
      {"-m /nonexistent/rr.gguf q d", "/nonexistent/rr.gguf"},
      {"-m " + fixture("models/tiny-bert-bge-f16.gguf") + " q d", "not a reranker"},
      {"-m " + fixture("models/tiny-llama-spm-q8_0.gguf") + " q d", "cannot rerank"},
      {"-m " + model_ + " --token-types one q d", "--token-types", true},
      {"-m " + model_ + " --top-n -1 q d", "--top-n"},
      {"-m " + model_ + " q ok \"$(printf 'bad\\377')\"", "document 1"},
      {"-m " + model_ + " '" + long_query + "' d", "leaves no room for a document"},
      {"-m " + model_ + " q - < /dev/null", "no documents on stdin"},
  };
  for (const Case& c : cases) {
    auto r = run_hai("rerank " + c.args);
    if (c.cli11)
      EXPECT_NE(r.exit_code, 0) << c.args;
    else
      EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.args;
  }
}

TEST(CliSynthRerank, PoolingNamesAndNumbers) {
  const std::string vocab = fixture("tokenizer/ggml-vocab-bert-bge.gguf");
  const std::string base = "synth --arch bert --n-embd 32 --n-layer 1 --n-head 2 --n-ff 64 --ctx 32 --vocab " + vocab;
  const std::string a = tmp("a.gguf"), b = tmp("b.gguf"), c = tmp("c.gguf");
  ASSERT_EQ(run_hai(base + " --pooling rank " + a).exit_code, 0);
  ASSERT_EQ(run_hai(base + " --pooling 4 " + b).exit_code, 0);
  EXPECT_EQ(hai::test::read_file(a), hai::test::read_file(b));
  auto info = run_hai("gguf info " + a);
  EXPECT_THAT(info.out, HasSubstr("cls.output.weight"));
  EXPECT_THAT(info.out, HasSubstr("bert.pooling_type"));
  // Without rank pooling there is no head.
  ASSERT_EQ(run_hai(base + " --pooling mean " + c).exit_code, 0);
  EXPECT_EQ(run_hai("gguf info " + c).out.find("cls.weight"), std::string::npos);
  auto bad = run_hai(base + " --pooling bogus " + tmp("x.gguf"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("--pooling must be none, mean, cls, last or rank"));
  auto five = run_hai(base + " --pooling 5 " + tmp("x.gguf"));
  EXPECT_EQ(five.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(tmp("x.gguf")));
  for (const auto& p : {a, b, c}) std::filesystem::remove(p);
}

}  // namespace
