// Dense retrieval: the HNSW vector index, vectors stored with their chunks,
// dense and hybrid search with an injected (deterministic) embedder, the
// index kept or rebuilt so it never disagrees with SQLite (also after a
// SIGKILL mid-ingest), and re-embedding.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "engine/common/error.h"
#include "kb/kb_test_util.h"
#include "kb/knowledge_base.h"
#include "kb/text.h"
#include "kb/vector_index.h"

using namespace hai::kb;
using hai::kbtest::TempDir;
using hai::kbtest::ErrorOf;
using hai::kbtest::WriteFile;

namespace {

// A deterministic embedder: hashed character bigrams (and single
// characters) counted into `dim` buckets. Texts that share wording get
// similar vectors, which is all these tests need.
EmbedFn BigramEmbedder(int dim = 64, int* calls = nullptr) {
  return [dim, calls](const std::vector<std::string>& texts) {
    if (calls) ++*calls;
    std::vector<std::vector<float>> out;
    for (auto& t : texts) {
      std::vector<float> v(static_cast<size_t>(dim), 0.0f);
      std::u32string u = DecodeUtf8(t);
      for (size_t i = 0; i < u.size(); ++i) {
        v[(u[i] * 2654435761u) % static_cast<unsigned>(dim)] += 0.5f;
        if (i + 1 < u.size()) v[((u[i] * 31u + u[i + 1]) * 2654435761u) % static_cast<unsigned>(dim)] += 1.0f;
      }
      v[0] += 0.01f;  // never all zero
      out.push_back(std::move(v));
    }
    return out;
  };
}

SearchOptions Mode(SearchMode m, int k = 5) {
  SearchOptions o;
  o.mode = m;
  o.top_k = k;
  return o;
}

int64_t Scalar(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

void WriteDocs(const TempDir& t) {
  WriteFile(t / "in/chips.txt", "芯片制造需要光刻机。光刻机由荷兰公司生产，价格非常昂贵。");
  WriteFile(t / "in/farm.txt", "水稻种植需要充足的灌溉。农民在春天插秧，秋天收割稻谷。");
  WriteFile(t / "in/space.md", "# 航天\n\n火箭发射需要液氢液氧燃料。卫星进入轨道后展开太阳能板。");
}

}  // namespace

TEST(KbVectorIndex, AddSearchRemoveSaveLoad) {
  TempDir t;
  VectorIndex idx(3);
  std::vector<std::vector<float>> v = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0.9f, 0.1f, 0}};
  for (auto& x : v) Normalize(&x);
  for (size_t i = 0; i < v.size(); ++i) idx.Add(static_cast<int64_t>(100 + i), v[i].data());
  EXPECT_EQ(idx.size(), 4u);
  auto r = idx.Search(v[0].data(), 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].second, 100);
  EXPECT_NEAR(r[0].first, 1.0f, 1e-5);
  EXPECT_EQ(r[1].second, 103);
  idx.Remove(100);
  idx.Remove(100);    // twice: ignored
  idx.Remove(12345);  // unknown: ignored
  EXPECT_EQ(idx.size(), 3u);
  EXPECT_EQ(idx.Search(v[0].data(), 1)[0].second, 103);
  // Re-adding a removed id brings it back.
  idx.Add(100, v[0].data());
  EXPECT_EQ(idx.size(), 4u);
  EXPECT_EQ(idx.Search(v[0].data(), 1)[0].second, 100);
  // Growing past the initial capacity.
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> x = {static_cast<float>(i % 7), static_cast<float>(i % 11), 1};
    Normalize(&x);
    idx.Add(10000 + i, x.data());
  }
  EXPECT_EQ(idx.size(), 3004u);

  idx.Save(t / "i.hnsw");
  auto back = VectorIndex::Load(t / "i.hnsw", 3);
  EXPECT_EQ(back->size(), 3004u);
  EXPECT_EQ(back->Search(v[1].data(), 1)[0].second, 101);
  EXPECT_FALSE(std::filesystem::exists(t / "i.hnsw.tmp"));

  // Bad files are errors naming the file.
  EXPECT_NE(ErrorOf([&] { VectorIndex::Load(t / "i.hnsw", 8); }).find("dimension 8"), std::string::npos);
  WriteFile(t / "junk.hnsw", std::string(500, 'x'));
  EXPECT_NE(ErrorOf([&] { VectorIndex::Load(t / "junk.hnsw", 3); }).find("junk.hnsw"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { VectorIndex::Load(t / "missing.hnsw", 3); }).find("missing.hnsw"), std::string::npos);
  EXPECT_NE(ErrorOf([] { VectorIndex bad(0); }).find("dimension"), std::string::npos);
}

TEST(KbDense, ModesAndErrors) {
  EXPECT_EQ(ParseSearchMode("hybrid"), SearchMode::kHybrid);
  EXPECT_EQ(ParseSearchMode("bm25"), SearchMode::kBm25);
  EXPECT_NE(ErrorOf([] { ParseSearchMode("vector"); }).find("'vector'"), std::string::npos);

  TempDir t;
  WriteDocs(t);
  // A BM25-only knowledge base: dense and hybrid are errors that say why.
  KnowledgeBase::Create(t.path(), "plain");
  auto plain = KnowledgeBase::Open(t.path(), "plain");
  plain->Add({t / "in"});
  EXPECT_EQ(plain->embed_model(), "");
  EXPECT_EQ(plain->Search("光刻机")[0].doc, "chips.txt");  // auto = bm25
  EXPECT_NE(ErrorOf([&] { plain->Search("光刻机", Mode(SearchMode::kDense)); }).find("no embedding model"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { plain->Search("光刻机", Mode(SearchMode::kHybrid)); }).find("no embedding model"),
            std::string::npos);

  // With a model but no embedder attached: adding and dense search fail clearly.
  KnowledgeBase::Create(t.path(), "vec", {}, "test-bigram-64");
  auto kb = KnowledgeBase::Open(t.path(), "vec");
  EXPECT_EQ(kb->embed_model(), "test-bigram-64");
  EXPECT_NE(ErrorOf([&] { kb->Add({t / "in"}); }).find("not loaded"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { kb->Search("光刻机", Mode(SearchMode::kDense)); }).find("not loaded"), std::string::npos);
  // BM25 still works without the model.
  EXPECT_TRUE(kb->Search("光刻机", Mode(SearchMode::kBm25)).empty());
}

TEST(KbDense, DenseAndHybridSearch) {
  TempDir t;
  WriteDocs(t);
  KnowledgeBase::Create(t.path(), "vec", {}, "test-bigram-64");
  auto kb = KnowledgeBase::Open(t.path(), "vec");
  kb->AttachEmbedder(BigramEmbedder());
  auto res = kb->Add({t / "in"});
  ASSERT_EQ(res.size(), 3u);
  for (auto& r : res) EXPECT_EQ(r.status, AddResult::kAdded) << r.message;
  EXPECT_EQ(kb->VectorCount(), kb->chunk_count());
  EXPECT_EQ(kb->DenseIndexSize(), kb->chunk_count());
  EXPECT_TRUE(std::filesystem::exists(t / "kb/vec.hnsw"));

  auto dense = kb->Search("农民插秧和收割稻谷", Mode(SearchMode::kDense));
  ASSERT_FALSE(dense.empty());
  EXPECT_EQ(dense[0].doc, "farm.txt");
  EXPECT_EQ(dense[0].dense_rank, 1);
  EXPECT_GT(dense[0].dense_score, 0.3);
  EXPECT_EQ(dense[0].bm25_rank, 0);  // BM25 was not run

  auto hybrid = kb->Search("火箭燃料", Mode(SearchMode::kAuto));  // auto = hybrid with a model
  ASSERT_FALSE(hybrid.empty());
  EXPECT_EQ(hybrid[0].doc, "space.md");
  EXPECT_EQ(hybrid[0].bm25_rank, 1);
  EXPECT_EQ(hybrid[0].dense_rank, 1);
  EXPECT_NEAR(hybrid[0].score, 2.0 / 61.0, 1e-9);  // RRF: 1/(60+1) from each list
  // Every dense hit is a live chunk, and at most top_k come back.
  EXPECT_LE(kb->Search("稻谷", Mode(SearchMode::kDense, 2)).size(), 2u);

  // Filters restrict the dense list too.
  SearchOptions f = Mode(SearchMode::kDense);
  f.docs = {"chips.txt"};
  auto only = kb->Search("农民插秧", f);
  ASSERT_FALSE(only.empty());
  for (auto& h : only) EXPECT_EQ(h.doc, "chips.txt");

  // Removing a document removes its vectors from SQLite and the index.
  kb->Remove("farm.txt");
  EXPECT_EQ(kb->VectorCount(), kb->chunk_count());
  EXPECT_EQ(kb->DenseIndexSize(), kb->chunk_count());
  for (auto& h : kb->Search("农民插秧和收割稻谷", Mode(SearchMode::kDense))) EXPECT_NE(h.doc, "farm.txt");

  // A changed file replaces its vectors.
  WriteFile(t / "in/chips.txt", "芯片设计使用EDA软件。");
  kb->Add({t / "in/chips.txt"});
  EXPECT_EQ(kb->VectorCount(), kb->chunk_count());
  EXPECT_EQ(kb->DenseIndexSize(), kb->chunk_count());

  // Reopened, the saved index is used and agrees with the database.
  kb.reset();
  auto again = KnowledgeBase::Open(t.path(), "vec");
  again->AttachEmbedder(BigramEmbedder());
  EXPECT_EQ(again->DenseIndexSize(), again->VectorCount());
  EXPECT_EQ(again->Search("EDA软件", Mode(SearchMode::kDense))[0].doc, "chips.txt");
}

TEST(KbDense, WrongDimensionAndBadEmbedderAreErrors) {
  TempDir t;
  WriteDocs(t);
  KnowledgeBase::Create(t.path(), "vec", {}, "m");
  auto kb = KnowledgeBase::Open(t.path(), "vec");
  kb->AttachEmbedder(BigramEmbedder(64));
  kb->Add({t / "in/chips.txt"});
  // Another model's vectors (dimension 32) do not mix with the stored ones.
  kb->AttachEmbedder(BigramEmbedder(32));
  auto r = kb->Add({t / "in/farm.txt"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, AddResult::kFailed);
  EXPECT_NE(r[0].message.find("dimension 32"), std::string::npos) << r[0].message;
  EXPECT_NE(ErrorOf([&] { kb->Search("芯片", Mode(SearchMode::kDense)); }).find("hai kb embed"), std::string::npos);
  // An embedder that returns the wrong number of vectors, or NaN.
  kb->AttachEmbedder([](const std::vector<std::string>&) { return std::vector<std::vector<float>>{}; });
  EXPECT_NE(ErrorOf([&] { kb->Search("芯片", Mode(SearchMode::kDense)); }).find("0 vectors for 1 texts"),
            std::string::npos);
  kb->AttachEmbedder([](const std::vector<std::string>& t) {
    return std::vector<std::vector<float>>(t.size(), std::vector<float>(64, std::nanf("")));
  });
  EXPECT_NE(ErrorOf([&] { kb->Search("芯片", Mode(SearchMode::kDense)); }).find("non-finite"), std::string::npos);
  // The failed add left nothing behind.
  EXPECT_EQ(kb->Documents().size(), 1u);
  EXPECT_EQ(kb->VectorCount(), kb->chunk_count());
}

TEST(KbDense, ReembedGivesVectorsToABm25KnowledgeBase) {
  TempDir t;
  WriteDocs(t);
  KnowledgeBase::Create(t.path(), "kb");
  auto kb = KnowledgeBase::Open(t.path(), "kb");
  kb->Add({t / "in"});
  EXPECT_EQ(kb->VectorCount(), 0);
  int calls = 0;
  EXPECT_EQ(kb->Reembed("bigram-48", BigramEmbedder(48, &calls)), kb->chunk_count());
  EXPECT_GT(calls, 0);
  EXPECT_EQ(kb->embed_model(), "bigram-48");
  EXPECT_EQ(kb->VectorCount(), kb->chunk_count());
  EXPECT_EQ(kb->Search("液氢液氧", Mode(SearchMode::kDense))[0].doc, "space.md");
  // Changing the model re-embeds everything (another dimension is fine here).
  EXPECT_EQ(kb->Reembed("bigram-16", BigramEmbedder(16)), kb->chunk_count());
  EXPECT_EQ(kb->DenseIndexSize(), kb->chunk_count());
  EXPECT_NE(ErrorOf([&] { kb->Reembed("", BigramEmbedder()); }).find("--embed-model"), std::string::npos);
}

TEST(KbDense, CorruptOrStaleIndexFileIsRebuiltFromSqlite) {
  TempDir t;
  WriteDocs(t);
  KnowledgeBase::Create(t.path(), "vec", {}, "m");
  {
    auto kb = KnowledgeBase::Open(t.path(), "vec");
    kb->AttachEmbedder(BigramEmbedder());
    kb->Add({t / "in"});
  }
  const int64_t n = Scalar(t / "kb/vec.sqlite", "SELECT count(*) FROM vectors");
  ASSERT_GT(n, 0);
  // Garbage of the same size as the real file is caught when loading.
  auto size = std::filesystem::file_size(t / "kb/vec.hnsw");
  WriteFile(t / "kb/vec.hnsw", std::string(size, '\x7f'));
  {
    auto kb = KnowledgeBase::Open(t.path(), "vec");
    kb->AttachEmbedder(BigramEmbedder());
    EXPECT_EQ(kb->DenseIndexSize(), n);
    EXPECT_EQ(kb->Search("光刻机", Mode(SearchMode::kDense))[0].doc, "chips.txt");
  }
  // A missing file is rebuilt too.
  std::filesystem::remove(t / "kb/vec.hnsw");
  auto kb = KnowledgeBase::Open(t.path(), "vec");
  kb->AttachEmbedder(BigramEmbedder());
  EXPECT_EQ(kb->DenseIndexSize(), n);
  EXPECT_TRUE(std::filesystem::exists(t / "kb/vec.hnsw"));
  // Dropping the knowledge base removes the index file as well.
  kb.reset();
  KnowledgeBase::Drop(t.path(), "vec");
  EXPECT_FALSE(std::filesystem::exists(t / "kb/vec.hnsw"));
}

// A real SIGKILL while a child process is inside the second document's
// transaction: one document was committed after the index file was last
// saved, so the file on disk is stale. Reopened, the index must match SQLite
// exactly (rebuilt), never the stale file.
TEST(KbDense, KillMidIngestNeverLeavesTheIndexDisagreeingWithSqlite) {
  TempDir t;
  KnowledgeBase::Create(t.path(), "vec", {}, "m");
  WriteFile(t / "first/a.txt", "第一份文件讲芯片和光刻机。");
  {
    auto kb = KnowledgeBase::Open(t.path(), "vec");
    kb->AttachEmbedder(BigramEmbedder());
    kb->Add({t / "first"});
  }
  for (int d = 0; d < 4; ++d) {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "文档" + std::to_string(d) + "第" + std::to_string(i) + "句讲水稻和灌溉。";
    WriteFile(t / ("more/doc" + std::to_string(d) + ".txt"), text);
  }
  const std::string marker = t / "paused";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("HAI_KB_TEST_PAUSE_AT", "2", 1);
    ::setenv("HAI_KB_TEST_PAUSE_FILE", marker.c_str(), 1);
    try {
      auto kb = KnowledgeBase::Open(t.path(), "vec");
      kb->AttachEmbedder(BigramEmbedder());
      kb->Add({t / "more"});
    } catch (...) {
    }
    ::_exit(3);  // not reached when the pause works
  }
  bool paused = false;
  for (int i = 0; i < 1200 && !paused; ++i) {
    paused = ::access(marker.c_str(), F_OK) == 0;
    if (!paused) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(paused);
  ASSERT_TRUE(WIFSIGNALED(status));

  const std::string db = t / "kb/vec.sqlite";
  // a.txt and doc0.txt are committed; doc1.txt (killed) left nothing.
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM documents"), 2);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM vectors"), Scalar(db, "SELECT count(*) FROM chunks"));
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)"), 0);
  // The saved index predates doc0's commit.
  EXPECT_NE(Scalar(db, "SELECT value FROM meta WHERE key='hnsw_gen'"),
            Scalar(db, "SELECT value FROM meta WHERE key='vec_gen'"));
  auto kb = KnowledgeBase::Open(t.path(), "vec");
  kb->AttachEmbedder(BigramEmbedder());
  EXPECT_EQ(kb->DenseIndexSize(), kb->VectorCount());
  std::set<std::string> docs;
  for (auto& h : kb->Search("水稻灌溉", Mode(SearchMode::kDense, 50))) docs.insert(h.doc);
  EXPECT_TRUE(docs.count("doc0.txt"));
  EXPECT_FALSE(docs.count("doc1.txt"));
  // Finishing the ingest brings index and database to the same state.
  kb->Add({t / "more"});
  EXPECT_EQ(kb->Documents().size(), 5u);
  EXPECT_EQ(kb->DenseIndexSize(), kb->VectorCount());
  EXPECT_EQ(Scalar(db, "SELECT value FROM meta WHERE key='hnsw_gen'"),
            Scalar(db, "SELECT value FROM meta WHERE key='vec_gen'"));
}
