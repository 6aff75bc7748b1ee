// Text clean-up, encodings, headings, segmentation, analysis and chunking.
#include <gtest/gtest.h>
#include <iconv.h>

#include <fstream>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "kb/analyzer.h"
#include "kb/chunker.h"
#include "kb/segmenter.h"
#include "kb/text.h"
#include "kb_test_util.h"

using namespace hai::kb;

namespace {

std::string ToGbk(const std::string& utf8) {
  iconv_t cd = iconv_open("GBK", "UTF-8");
  std::string out(utf8.size() * 2, '\0');
  char* in = const_cast<char*>(utf8.data());
  size_t in_left = utf8.size();
  char* o = out.data();
  size_t o_left = out.size();
  iconv(cd, &in, &in_left, &o, &o_left);
  iconv_close(cd);
  out.resize(out.size() - o_left);
  return out;
}

std::vector<std::string> Words(const Segmenter& s, const std::string& text, bool search = false) {
  std::vector<std::string> out;
  auto u = DecodeUtf8(text);
  for (auto& w : search ? s.CutForSearch(u) : s.Cut(u)) out.push_back(EncodeUtf8(w));
  return out;
}

}  // namespace

TEST(KbText, Utf8RoundTripAndValidation) {
  std::string s = "AI 大模型 😀";
  EXPECT_EQ(EncodeUtf8(DecodeUtf8(s)), s);
  EXPECT_EQ(CountCodePoints(s), 8u);
  EXPECT_TRUE(IsValidUtf8(s));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));        // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));    // surrogate
  EXPECT_FALSE(IsValidUtf8("abc\xE4\xBD"));     // truncated
}

TEST(KbText, DetectsGbkAndConverts) {
  std::string utf8 = "人工智能发展报告，2024年。";
  std::string gbk = ToGbk(utf8);
  ASSERT_NE(gbk, utf8);
  ASSERT_FALSE(IsValidUtf8(gbk));
  std::string enc;
  EXPECT_EQ(ToUtf8(gbk, "x.txt", &enc), utf8);
  EXPECT_EQ(enc, "GB18030");
  EXPECT_EQ(ToUtf8(utf8, "x.txt", &enc), utf8);
  EXPECT_EQ(enc, "UTF-8");
  EXPECT_EQ(ToUtf8("\xEF\xBB\xBFhi", "x.txt", &enc), "hi");  // BOM dropped
  EXPECT_EQ(ToUtf8(std::string("\xFF\xFEh\0i\0", 6), "x.txt", &enc), "hi");
  EXPECT_EQ(enc, "UTF-16LE");
}

TEST(KbText, RejectsBinaryWithTheFileName) {
  try {
    ToUtf8(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe", 18), "photo.txt");
    FAIL() << "binary accepted";
  } catch (const hai::Error& e) {
    EXPECT_NE(std::string(e.what()).find("photo.txt"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("encoding"), std::string::npos);
  }
}

TEST(KbText, NfkcAndCjkSpaces) {
  EXPECT_EQ(Nfkc("ＡＩ（２０２４）"), "AI(2024)");
  EXPECT_EQ(DropCjkSpaces("人 工 智 能 2024 年 AI 大模型"), "人工智能2024年 AI 大模型");
  EXPECT_EQ(DropCjkSpaces("hello world"), "hello world");
}

TEST(KbText, Headings) {
  EXPECT_TRUE(DetectHeading("一、总体态势").is_heading);
  EXPECT_EQ(DetectHeading("一、总体态势").level, 2);
  EXPECT_TRUE(DetectHeading("(二)基础模型仍在快速演进迭代").is_heading);
  EXPECT_EQ(DetectHeading("(二)基础模型").level, 3);
  EXPECT_TRUE(DetectHeading("第二章 大模型 2.0 阶段的关键要素").is_heading);
  EXPECT_TRUE(DetectHeading("## Install").is_heading);
  EXPECT_EQ(DetectHeading("## Install").text, "Install");
  EXPECT_TRUE(DetectHeading("01. 人工智能技术产业态势").is_heading);
  EXPECT_FALSE(DetectHeading("2024年大模型推理理解能力跃迁").is_heading);
  EXPECT_FALSE(DetectHeading("一是行业对于高端技术人才有着迫切的需求。").is_heading);
  EXPECT_FALSE(DetectHeading("#hashtag").is_heading);
}

TEST(KbText, JoinsHardWrappedLinesLikeThePdfCorpus) {
  // Lines wrapped at a fixed width, with blank lines between them (as in the
  // corpus), a page number and a dot-leader line.
  std::string text =
      "人工智能浪潮席卷全球，正以前所未有的速度、广度和深度改\n\n"
      "变生产生活方式，对全球经济社会发展和人类文明进步产生深远影\n\n"
      "响。\n\n"
      "12\n\n"
      "一、总体态势........................1\n\n"
      "二、技术创新\n\n"
      "缩放定律（Scaling Law）依然有效，语言大模型技术多维度能力持\n\n"
      "续进化，视觉大模型和多模态模型加速迭代。\n";
  std::string c = CleanExtractedText(text);
  EXPECT_NE(c.find("深度改变生产生活方式"), std::string::npos) << c;
  EXPECT_NE(c.find("产生深远影响。"), std::string::npos) << c;
  EXPECT_NE(c.find("能力持续进化"), std::string::npos) << c;
  EXPECT_NE(c.find("\n二、技术创新\n"), std::string::npos) << c;
  EXPECT_EQ(c.find("12"), std::string::npos) << c;           // page number dropped
  EXPECT_EQ(c.find("总体态势"), std::string::npos) << c;     // table of contents dropped
  EXPECT_NE(c.find("缩放定律(Scaling Law)"), std::string::npos) << c;  // NFKC
}

TEST(KbText, JoinsWrappedEnglishWithASpace) {
  std::string text =
      "The knowledge base joins lines that were wrapped at a fixed width by\n"
      "the PDF producer, so sentences are whole again for the chunker and\n"
      "for search.\n"
      "A short line.\n";
  std::string c = CleanExtractedText(text);
  EXPECT_NE(c.find("width by the PDF producer"), std::string::npos) << c;
  EXPECT_NE(c.find("chunker and for search."), std::string::npos) << c;
  EXPECT_NE(c.find("search.\nA short line."), std::string::npos) << c;
}

TEST(KbSegmenter, MaxProbabilityWithSmallDictionary) {
  auto s = Segmenter::FromWords({{"研究", 100}, {"研究生", 20}, {"生命", 80}, {"起源", 60}, {"的", 1000}});
  EXPECT_EQ(Words(*s, "研究生命的起源"), (std::vector<std::string>{"研究", "生命", "的", "起源"}));
}

TEST(KbSegmenter, JiebaDictionaryExamples) {
  std::string dict = Segmenter::DefaultDictionaryPath();
  if (!std::ifstream(dict).good()) GTEST_SKIP() << "jieba dictionary not installed: " << dict;
  auto s = Segmenter::FromDictionary(dict);
  // jieba's own examples (cut without HMM, and cut_for_search).
  EXPECT_EQ(Words(*s, "我来到北京清华大学"), (std::vector<std::string>{"我", "来到", "北京", "清华大学"}));
  auto search = Words(*s, "清华大学", true);
  EXPECT_EQ(search, (std::vector<std::string>{"清华", "华大", "大学", "清华大学"}));
  EXPECT_EQ(Words(*s, "人工智能发展报告"), (std::vector<std::string>{"人工智能", "发展", "报告"}));
}

TEST(KbSegmenter, UserDictionaryAddsDomainWords) {
  auto base = Segmenter::FromWords({{"大", 100}, {"模型", 100}, {"训练", 100}});
  EXPECT_EQ(Words(*base, "大模型训练"), (std::vector<std::string>{"大", "模型", "训练"}));
  std::string path = "/tmp/hai_kb_userdict_" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path) << "# domain words\n大模型 500\n";
  auto s = base->WithUserDictionary(path);
  std::remove(path.c_str());
  EXPECT_EQ(Words(*s, "大模型训练"), (std::vector<std::string>{"大模型", "训练"}));
  EXPECT_EQ(Words(*s, "大模型", true), (std::vector<std::string>{"模型", "大模型"}));
  EXPECT_THROW(base->WithUserDictionary("/nonexistent/user.txt"), hai::Error);
}

TEST(KbSegmenter, BigramFallbackWithoutDictionary) {
  Segmenter none;
  EXPECT_FALSE(none.has_dictionary());
  EXPECT_EQ(none.kind(), "bigram");
  EXPECT_EQ(Words(none, "大模型", true), (std::vector<std::string>{"大模", "模型"}));
  EXPECT_EQ(Words(none, "云", true), (std::vector<std::string>{"云"}));
}

TEST(KbSegmenter, MissingDictionaryIsAnError) {
  EXPECT_THROW(Segmenter::FromDictionary("/nonexistent/dict.txt"), hai::Error);
}

TEST(KbAnalyzer, EnglishStemmingStopWordsAndMixedText) {
  Analyzer a(Segmenter::FromWords({{"模型", 100}, {"训练", 100}}));
  EXPECT_EQ(a.Terms("The Running models are TRAINED"), (std::vector<std::string>{"run", "model", "train"}));
  EXPECT_EQ(a.Terms("GPT-4模型的训练"), (std::vector<std::string>{"gpt", "4", "模型", "训练"}));
  EXPECT_TRUE(Analyzer::IsStopWord("的"));
  EXPECT_TRUE(a.Terms("的 the of").empty());
}

TEST(KbAnalyzer, HanBigramsForTheDualIndex) {
  Analyzer a(Segmenter::FromWords({{"模型", 100}}));
  // Overlapping bigrams of Han runs only, prefixed with '~'; stop-word
  // bigrams ("什么") are dropped; NFKC first.
  EXPECT_EQ(a.HanBigrams("大模型是什么 GPU 算力"),
            (std::vector<std::string>{"~大模", "~模型", "~型是", "~是什", "~算力"}));
  EXPECT_TRUE(a.HanBigrams("单").empty());
  EXPECT_TRUE(a.HanBigrams("English only").empty());
}

// Loads `text` as the analyser's synonym file (through a temporary file).
static void LoadSynonymText(Analyzer& a, const std::string& text) {
  static int counter = 0;
  const std::string path = "/tmp/hai_kb_syn_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".txt";
  std::ofstream(path) << text;
  struct Remove {
    std::string p;
    ~Remove() { std::remove(p.c_str()); }
  } remove{path};
  a.LoadSynonyms(path);
}

TEST(KbAnalyzer, SynonymExpansionWeighsLess) {
  Analyzer a(Segmenter::FromWords({{"大模型", 100}, {"语言", 100}, {"模型", 100}}));
  LoadSynonymText(a, "# comment\n大模型, LLM\n");
  auto q = a.QueryTerms("什么是LLM");
  ASSERT_TRUE(q.count("llm"));
  EXPECT_EQ(q["llm"], 1.0);
  ASSERT_TRUE(q.count("大模型"));
  EXPECT_LT(q["大模型"], 1.0);
  EXPECT_THROW(a.LoadSynonyms("/nonexistent/synonyms.txt"), hai::Error);
}

TEST(KbAnalyzer, OneCharacterMemberMustBeAWordOfTheQuery) {
  // "车" inside "车间" (a word of its own) is not the car of "车,汽车".
  Analyzer a(Segmenter::FromWords({{"车间", 100}, {"汽车", 100}, {"买", 100}, {"大模型", 100}, {"大型", 100}}));
  LoadSynonymText(a, "车,汽车\n大,大型\n");
  EXPECT_FALSE(a.QueryTerms("车间").count("汽车"));
  EXPECT_FALSE(a.QueryTerms("大模型").count("大型"));
  auto q = a.QueryTerms("买车");
  ASSERT_TRUE(q.count("汽车"));
  EXPECT_EQ(q["汽车"], 0.5);
  // A longer member matches anywhere in the query; the single-character
  // members of its group are not added.
  EXPECT_EQ(a.QueryTerms("二手汽车").count("车"), 0u);  // single characters are never added
}

TEST(KbAnalyzer, LatinMemberMustBeAWholeWord) {
  Analyzer a(Segmenter::FromWords({{"增强现实", 100}}));
  LoadSynonymText(a, "增强现实,AR\n");
  EXPECT_FALSE(a.QueryTerms("large model").count("增强现实"));
  EXPECT_FALSE(a.QueryTerms("ARM芯片").count("增强现实"));
  EXPECT_TRUE(a.QueryTerms("AR眼镜").count("增强现实"));
  EXPECT_TRUE(a.QueryTerms("what is ar?").count("增强现实"));
}

TEST(KbAnalyzer, OneWayGroups) {
  Analyzer a(Segmenter::FromWords({{"粮食", 100}, {"养料", 100}, {"数据", 100}, {"资料", 100}}));
  LoadSynonymText(a, "粮食, 养料 => 数据, 资料  # metaphors lead to the plain words\n");
  auto q = a.QueryTerms("AI的粮食");
  EXPECT_EQ(q["养料"], 0.5);
  EXPECT_EQ(q["数据"], 0.5);
  EXPECT_EQ(q["资料"], 0.5);
  // The plain words do not lead back to the metaphors.
  q = a.QueryTerms("训练数据");
  EXPECT_FALSE(q.count("粮食"));
  EXPECT_FALSE(q.count("养料"));
  EXPECT_FALSE(q.count("资料"));
  // A '=>' needs words on both sides; the error names file and line.
  for (const char* bad : {"=> 数据\n", "粮食 =>\n", "a => b => c\n"}) {
    std::string msg = hai::kbtest::ErrorOf([&] { LoadSynonymText(a, std::string("# ok\n") + bad); });
    EXPECT_NE(msg.find(".txt:2:"), std::string::npos) << bad << " -> " << msg;
  }
}

TEST(KbAnalyzer, QuestionFillersAreStopWords) {
  Analyzer a(Segmenter::FromWords({{"训练", 100}, {"不会", 100}, {"越来越", 100}, {"便宜", 100}, {"一样", 100}}));
  EXPECT_EQ(a.Terms("训练会不会越来越便宜"), (std::vector<std::string>{"训练", "便宜"}));
  EXPECT_EQ(a.Terms("一样便宜"), (std::vector<std::string>{"便宜"}));
}

TEST(KbAnalyzer, ShippedVocabularyIsWellFormedAndGeneral) {
  std::string dict = Segmenter::DefaultDictionaryPath();
  if (!std::ifstream(dict).good()) GTEST_SKIP() << "jieba dictionary not installed: " << dict;
  const std::string file = std::string(HAI_SOURCE_DIR) + "/src/kb/data/synonyms.txt";
  // Every group has at least two members, and none is empty.
  std::ifstream in(file);
  ASSERT_TRUE(in.good()) << file;
  std::string line;
  int groups = 0, lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++groups;
    EXPECT_TRUE(line.find(',') != std::string::npos || line.find("=>") != std::string::npos)
        << file << ":" << lineno << ": a group needs two members";
    EXPECT_EQ(line.find(",,"), std::string::npos) << file << ":" << lineno << ": empty member";
    EXPECT_NE(line.back(), ',') << file << ":" << lineno << ": empty member";
  }
  EXPECT_GT(groups, 300);
  // Colloquial words reach the formal words of reports (and English names).
  Analyzer a;
  a.LoadSynonyms(file);
  EXPECT_TRUE(a.QueryTerms("显卡要多少钱").count("gpu"));
  EXPECT_TRUE(a.QueryTerms("训练中断了几次").count("次数"));
  EXPECT_TRUE(a.QueryTerms("老百姓怎么看").count("居民"));
  EXPECT_TRUE(a.QueryTerms("英伟达的芯片").count("nvidia"));
}

// ---- chunking ----

namespace {

void CheckChunkInvariants(const std::vector<Section>& sections, const ChunkerOptions& opt) {
  std::u32string doc = DecodeUtf8(JoinSections(sections));
  auto chunks = ChunkSections(sections, opt);
  ASSERT_FALSE(chunks.empty());
  int64_t prev_start = -1;
  for (auto& c : chunks) {
    ASSERT_LE(0, c.start);
    ASSERT_LT(c.start, c.end);
    ASSERT_LE(c.end, static_cast<int64_t>(doc.size()));
    // Offsets point to the text, exactly.
    EXPECT_EQ(EncodeUtf8(doc.substr(c.start, c.end - c.start)), c.text);
    EXPECT_LE(c.end - c.start, opt.size);
    EXPECT_GT(c.start, prev_start);  // always moves forward
    prev_start = c.start;
  }
  // Every visible character is in some chunk.
  std::vector<bool> covered(doc.size(), false);
  for (auto& c : chunks)
    for (int64_t i = c.start; i < c.end; ++i) covered[i] = true;
  for (size_t i = 0; i < doc.size(); ++i)
    if (!IsSpace(doc[i]) && doc[i] != '\n') {
      ASSERT_TRUE(covered[i]) << "uncovered at " << i;
    }
}

}  // namespace

TEST(KbChunker, SentencesChineseAndEnglish) {
  std::u32string t = U"第一句。第二句！Third one. Fourth? 3.5 is a number；末尾";
  auto spans = SplitSentences(t);
  std::vector<std::string> s;
  for (auto [b, e] : spans) s.push_back(EncodeUtf8(t.substr(b, e - b)));
  EXPECT_EQ(s, (std::vector<std::string>{"第一句。", "第二句！", "Third one.", "Fourth?", "3.5 is a number；", "末尾"}));
}

TEST(KbChunker, InvariantsOnSyntheticSections) {
  std::vector<Section> secs(3);
  std::string para;
  for (int i = 0; i < 40; ++i) para += "这是第" + std::to_string(i) + "个句子，用来测试分块是否尊重句子边界。";
  secs[0].text = para;
  secs[0].heading = "一、测试";
  secs[1].text = std::string(900, 'x');  // one long "sentence" with no boundary
  secs[1].page = 2;
  secs[2].text = "Short English. Another sentence here! And a third?";
  CheckChunkInvariants(secs, {200, 50});
  CheckChunkInvariants(secs, {100, 0});
  auto chunks = ChunkSections(secs, {200, 50});
  // Chunks keep their section's metadata, and end on sentence boundaries.
  EXPECT_EQ(chunks.front().heading, "一、测试");
  for (auto& c : chunks)
    if (c.heading == "一、测试") {
      EXPECT_EQ(c.text.substr(c.text.size() - 3), "。");
    }
  bool page2 = false;
  for (auto& c : chunks) page2 |= c.page == 2;
  EXPECT_TRUE(page2);
  // Overlap: consecutive chunks in the first section share a sentence.
  EXPECT_LT(chunks[1].start, chunks[0].end);
}

TEST(KbChunker, InvariantsOnTheCorpus) {
  std::string path = hai::test::shared_dir() + "/corpus/000_089549e24ee9a876.txt";
  std::string raw = hai::test::read_file(path);
  if (raw.empty()) GTEST_SKIP() << "corpus missing: " << path;
  Section s;
  s.text = CleanExtractedText(raw);
  CheckChunkInvariants({s}, {400, 80});
}

TEST(KbChunker, RejectsBadOptions) {
  std::vector<Section> secs(1);
  secs[0].text = "x";
  EXPECT_THROW(ChunkSections(secs, {10, 0}), hai::Error);
  EXPECT_THROW(ChunkSections(secs, {400, 400}), hai::Error);
  EXPECT_THROW(ChunkSections(secs, {400, -1}), hai::Error);
}
