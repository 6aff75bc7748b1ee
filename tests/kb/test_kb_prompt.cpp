// The prompt of `hai kb ask --model`: numbered sources with their labels,
// the mode's instructions, passage cutting, and reading citations back.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "kb/prompt.h"

using namespace hai::kb;

namespace {

Hit MakeHit(const std::string& doc, int page, const std::string& heading, const std::string& text) {
  Hit h;
  h.doc = doc;
  h.page = page;
  h.heading = heading;
  h.text = text;
  return h;
}

}  // namespace

TEST(KbPrompt, NumberedSourcesAndGroundedRules) {
  std::vector<Hit> src = {MakeHit("report.pdf", 3, "一、总体态势", "大模型人才缺口大。"),
                          MakeHit("notes.md", 0, "", "Second passage.")};
  auto m = BuildAskMessages("人才为什么紧缺？", src, AnswerMode::kGrounded);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[1]["role"], "user");
  const std::string sys = m[0]["content"], user = m[1]["content"];
  EXPECT_NE(sys.find("only the numbered sources"), std::string::npos);
  EXPECT_NE(sys.find("资料中没有相关信息"), std::string::npos);
  EXPECT_NE(sys.find("[1]"), std::string::npos);
  // Sources in order, numbered from 1, with document, page and heading.
  size_t s1 = user.find("[1] report.pdf, page 3, 一、总体态势\n大模型人才缺口大。");
  size_t s2 = user.find("[2] notes.md\nSecond passage.");
  ASSERT_NE(s1, std::string::npos) << user;
  ASSERT_NE(s2, std::string::npos) << user;
  EXPECT_LT(s1, s2);
  EXPECT_NE(user.find("Question: 人才为什么紧缺？"), std::string::npos);
  EXPECT_GT(user.find("Question:"), s2);  // the question comes after the sources
}

TEST(KbPrompt, OpenModeCutsAndNoSources) {
  std::vector<Hit> src = {MakeHit("a.txt", 0, "", "一二三四五六七八九十")};
  auto m = BuildAskMessages("q", src, AnswerMode::kOpen, 4);
  const std::string sys = m[0]["content"], user = m[1]["content"];
  EXPECT_NE(sys.find("your own knowledge"), std::string::npos);
  EXPECT_EQ(sys.find("资料中没有相关信息"), std::string::npos);
  EXPECT_NE(user.find("一二三四…"), std::string::npos);
  EXPECT_EQ(user.find("五"), std::string::npos);
  auto none = BuildAskMessages("q", {}, AnswerMode::kGrounded);
  EXPECT_NE(none[1]["content"].get<std::string>().find("(none"), std::string::npos);
}

TEST(KbPrompt, ModesParseAndCitationsAreRead) {
  EXPECT_EQ(ParseAnswerMode("grounded"), AnswerMode::kGrounded);
  EXPECT_EQ(ParseAnswerMode("open"), AnswerMode::kOpen);
  EXPECT_STREQ(AnswerModeName(AnswerMode::kOpen), "open");
  try {
    ParseAnswerMode("creative");
    FAIL();
  } catch (const hai::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'creative'"), std::string::npos);
  }
  EXPECT_EQ(CitedSources("A [2]. B [1][3]. C [2, 4]. D [9] [x] [ ] [1", 4), (std::vector<int>{2, 1, 3, 4}));
  EXPECT_TRUE(CitedSources("no citations", 3).empty());
  Hit h = MakeHit("t.csv", 0, "Sheet1", "x");
  h.row = 7;
  EXPECT_EQ(SourceLabel(h), "t.csv, row 7, Sheet1");
}
