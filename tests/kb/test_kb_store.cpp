// KnowledgeBase: create/open, re-add/changed/delete semantics, search,
// filters, ask, and the corpus questions.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "kb/knowledge_base.h"
#include "kb/text.h"
#include "kb/kb_test_util.h"

using namespace hai::kb;
using hai::kbtest::TempDir;
using hai::kbtest::ErrorOf;
using hai::kbtest::WriteFile;

namespace {

int64_t Count(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

SearchOptions Top(int k) {
  SearchOptions o;
  o.top_k = k;
  return o;
}
SearchOptions Docs(std::vector<std::string> d) {
  SearchOptions o;
  o.docs = std::move(d);
  return o;
}
SearchOptions Types(std::vector<std::string> t) {
  SearchOptions o;
  o.types = std::move(t);
  return o;
}
SearchOptions After(std::string a) {
  SearchOptions o;
  o.after = std::move(a);
  return o;
}
SearchOptions Before(std::string b) {
  SearchOptions o;
  o.before = std::move(b);
  return o;
}

}  // namespace

TEST(KbStore, CreateOpenListAndErrors) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "alpha");
  KnowledgeBase::Create(d.path(), "beta", {200, 20});
  EXPECT_NE(ErrorOf([&] { KnowledgeBase::Create(d.path(), "alpha"); }).find("already exists"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { KnowledgeBase::Create(d.path(), "../evil"); }).find("invalid knowledge base name"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { KnowledgeBase::Create(d.path(), "g", {10, 0}); }).find("chunk size 10"), std::string::npos);
  auto list = KnowledgeBase::List(d.path());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "alpha");
  EXPECT_EQ(KnowledgeBase::Open(d.path(), "beta")->chunking().size, 200);
  std::string m = ErrorOf([&] { KnowledgeBase::Open(d.path(), "gamma"); });
  EXPECT_NE(m.find("no knowledge base named 'gamma'"), std::string::npos) << m;
  KnowledgeBase::Drop(d.path(), "beta");
  EXPECT_EQ(KnowledgeBase::List(d.path()).size(), 1u);
  // A file that is not a knowledge base.
  WriteFile(d / "kb/junk.sqlite", "not sqlite at all, just text padding padding padding padding padding");
  EXPECT_FALSE(ErrorOf([&] { KnowledgeBase::Open(d.path(), "junk"); }).empty());
}

TEST(KbStore, ReAddChangedAndDelete) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "k");
  auto kb = KnowledgeBase::Open(d.path(), "k");
  WriteFile(d / "docs/a.txt", "量子计算是一种新的计算范式。它利用量子比特。\n");
  WriteFile(d / "docs/sub/b.md", "# 标题\n光刻机是芯片制造的关键设备。\n");
  WriteFile(d / "docs/c.bin", "binary");
  auto r = kb->Add({d / "docs"});
  ASSERT_EQ(r.size(), 3u);
  int added = 0, skipped = 0;
  for (auto& x : r) {
    added += x.status == AddResult::kAdded;
    skipped += x.status == AddResult::kSkipped;
  }
  EXPECT_EQ(added, 2);
  EXPECT_EQ(skipped, 1);
  int64_t chunks = kb->chunk_count();
  EXPECT_GT(chunks, 0);

  // Unchanged: nothing happens.
  r = kb->Add({d / "docs/a.txt"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, AddResult::kUnchanged);
  EXPECT_EQ(kb->chunk_count(), chunks);

  // Changed: old chunks replaced.
  ASSERT_EQ(kb->Search("量子比特").size(), 1u);
  WriteFile(d / "docs/a.txt", "蛋白质折叠预测是生物学难题。\n");
  r = kb->Add({d / "docs/a.txt"});
  EXPECT_EQ(r[0].status, AddResult::kUpdated);
  EXPECT_TRUE(kb->Search("量子比特").empty());
  auto hits = kb->Search("蛋白质折叠");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].doc, "a.txt");

  // Delete removes everything: chunks, postings, document.
  EXPECT_NE(ErrorOf([&] { kb->Remove("nope.txt"); }).find("no document 'nope.txt'"), std::string::npos);
  EXPECT_GT(kb->Remove("a.txt"), 0);
  EXPECT_TRUE(kb->Search("蛋白质折叠").empty());
  ASSERT_EQ(kb->Documents().size(), 1u);
  std::string db = d / "kb/k.sqlite";
  EXPECT_EQ(Count(db, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
  EXPECT_EQ(Count(db, "SELECT count(*) FROM postings WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
  EXPECT_EQ(kb->chunk_count(), Count(db, "SELECT count(*) FROM chunks"));
  EXPECT_EQ(kb->Search("光刻机")[0].heading, "标题");
}

TEST(KbStore, FailedFilesAreReportedAndTheRestIsIngested) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "k");
  auto kb = KnowledgeBase::Open(d.path(), "k");
  WriteFile(d / "in/good.txt", "good text about tokenizers.");
  WriteFile(d / "in/bad.pdf", "%PDF-1.4 broken");
  WriteFile(d / "in/bad.docx", "PK\x03\x04 not really");
  auto r = kb->Add({d / "in", d / "missing.txt"});
  ASSERT_EQ(r.size(), 4u);
  int failed = 0;
  for (auto& x : r)
    if (x.status == AddResult::kFailed) {
      ++failed;
      EXPECT_FALSE(x.message.empty());
    }
  EXPECT_EQ(failed, 3);
  EXPECT_EQ(kb->Documents().size(), 1u);
  EXPECT_EQ(kb->Search("tokenizers").size(), 1u);
}

TEST(KbStore, OffsetsPointIntoTheStoredDocumentText) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "k", {100, 20});
  auto kb = KnowledgeBase::Open(d.path(), "k");
  std::string text;
  for (int i = 0; i < 30; ++i) text += "第" + std::to_string(i) + "条：大模型的应用场景不断拓展。";
  WriteFile(d / "x.txt", text);
  kb->Add({d / "x.txt"});
  auto docs = kb->Documents();
  ASSERT_EQ(docs.size(), 1u);
  std::u32string full = hai::kb::DecodeUtf8(kb->DocumentText(docs[0].id));
  auto hits = kb->Search("应用场景", Top(50));
  ASSERT_GT(hits.size(), 3u);
  for (auto& h : hits) EXPECT_EQ(hai::kb::EncodeUtf8(full.substr(h.start, h.end - h.start)), h.text);
}

TEST(KbStore, FiltersAndOptionErrors) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "k");
  auto kb = KnowledgeBase::Open(d.path(), "k");
  WriteFile(d / "a.txt", "transformer attention layers");
  WriteFile(d / "b.md", "transformer training recipes");
  kb->Add({d / "a.txt", d / "b.md"});
  EXPECT_EQ(kb->Search("transformer").size(), 2u);
  EXPECT_EQ(kb->Search("transformer", Docs({"b.md"})).size(), 1u);
  EXPECT_EQ(kb->Search("transformer", Types({"txt"}))[0].doc, "a.txt");
  EXPECT_EQ(kb->Search("transformer", After("2100-01-01")).size(), 0u);
  EXPECT_EQ(kb->Search("transformer", Before("2100-01-01")).size(), 2u);
  EXPECT_NE(ErrorOf([&] { kb->Search("x", After("2024-13-01")); }).find("invalid date '2024-13-01'"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { kb->Search("x", Top(0)); }).find("--top"), std::string::npos);
  EXPECT_TRUE(kb->Search("").empty());
  EXPECT_TRUE(kb->Search("的 the").empty());
}

TEST(KbStore, AskCitesSources) {
  TempDir d;
  KnowledgeBase::Create(d.path(), "k");
  auto kb = KnowledgeBase::Open(d.path(), "k");
  WriteFile(d / "a.txt", "无关的句子。光刻机是芯片制造中最关键的设备之一。另一句无关内容。");
  WriteFile(d / "b.txt", "芯片设计需要EDA工具。");
  kb->Add({d / "a.txt", d / "b.txt"});
  Answer a = kb->Ask("芯片制造最关键的设备是什么");
  ASSERT_FALSE(a.sources.empty());
  EXPECT_EQ(a.sources[0].doc, "a.txt");
  EXPECT_NE(a.text.find("光刻机是芯片制造中最关键的设备之一。 [1]"), std::string::npos) << a.text;
  EXPECT_EQ(a.text.find("另一句无关内容"), std::string::npos) << a.text;
  EXPECT_TRUE(kb->Ask("完全不相干的量子引力").sources.empty());
}

// A few corpus questions: the expected report comes first.
TEST(KbStore, CorpusQuestionsFindTheirReport) {
  std::string corpus = hai::test::shared_dir() + "/corpus";
  TempDir d;
  KnowledgeBase::Create(d.path(), "c");
  auto kb = KnowledgeBase::Open(d.path(), "c");
  auto r = kb->Add({corpus});
  ASSERT_EQ(r.size(), 5u);
  struct Q {
    const char* q;
    const char* doc;
    const char* needle;
  } qs[] = {
      {"大模型优秀人才缺口大的原因", "004_238ede4a42d8039d.txt", "人才缺口"},
      {"多少人使用过生成式人工智能产品", "002_66ff73f742758e16.txt", "2.3亿人"},
      {"缩放定律是否依然有效", "000_089549e24ee9a876.txt", "缩放定律"},
  };
  for (auto& q : qs) {
    auto hits = kb->Search(q.q, Top(3));
    ASSERT_FALSE(hits.empty()) << q.q;
    // The answering passage is among the first three.
    bool found = false;
    for (auto& h : hits) found |= h.doc == q.doc && h.text.find(q.needle) != std::string::npos;
    EXPECT_TRUE(found) << q.q;
  }
  EXPECT_EQ(kb->Search("大模型优秀人才缺口大的原因")[0].doc, "004_238ede4a42d8039d.txt");
}

// Han bigrams are indexed beside the words: a query whose words the
// segmenter cuts differently from the passage still matches it.
TEST(KbStore, BigramIndexMatchesAcrossWordBoundaries) {
  TempDir t;
  KnowledgeBase::Create(t.path(), "kb");
  auto kb = KnowledgeBase::Open(t.path(), "kb");
  WriteFile(t / "a.txt", "人工智能安全治理框架已经发布。");
  WriteFile(t / "b.txt", "水稻种植需要灌溉。");
  kb->Add({t / "a.txt", t / "b.txt"});
  EXPECT_GT(Count(t / "kb/kb.sqlite", "SELECT count(*) FROM postings WHERE term LIKE '~%'"), 0);
  // "能安" is no word of either text: only the bigram index has it.
  auto hits = kb->Search("能安");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].doc, "a.txt");
}
