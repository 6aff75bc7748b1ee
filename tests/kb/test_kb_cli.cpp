// The `hai kb` command line: contracts, error messages, and a real SIGKILL
// in the middle of an ingest.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/test_util.h"
#include "kb/kb_test_util.h"
#include "kb/llm.h"

using hai::kbtest::TempDir;
using hai::kbtest::WriteFile;
using hai::test::CommandResult;

namespace {

std::string Q(const std::string& s) { return "'" + s + "'"; }

class KbCli : public ::testing::Test {
 protected:
  CommandResult Hai(const std::string& args) { return hai::test::run_hai("kb --data-dir " + Q(dir_.path()) + " " + args); }
  TempDir dir_;
  TempDir files_;
};

int64_t Scalar(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return -1;
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

}  // namespace

TEST_F(KbCli, CreateAddSearchJsonAskLsRm) {
  ASSERT_EQ(Hai("create docs").exit_code, 0);
  WriteFile(files_ / "a.txt", "光刻机是芯片制造中最关键的设备之一。EUV 光刻机由荷兰公司生产。");
  WriteFile(files_ / "b.md", "# 训练\n大模型训练需要大量算力。");
  auto add = Hai("add docs " + Q(files_.path()));
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("added"), std::string::npos);

  auto s = Hai("search docs 光刻机 --json --top 3");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto j = nlohmann::json::parse(s.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_GE(j.size(), 1u);
  EXPECT_EQ(j[0]["doc"], "a.txt");
  for (const char* key : {"doc", "chunk", "text", "score", "page", "heading", "start", "end", "path", "type"})
    EXPECT_TRUE(j[0].contains(key)) << key;
  EXPECT_NE(j[0]["text"].get<std::string>().find("光刻机"), std::string::npos);

  auto ask = Hai("ask docs " + Q("芯片制造最关键的设备是什么"));
  ASSERT_EQ(ask.exit_code, 0) << ask.err;
  EXPECT_NE(ask.out.find("[1]"), std::string::npos) << ask.out;
  EXPECT_NE(ask.out.find("Sources:"), std::string::npos) << ask.out;
  EXPECT_NE(ask.out.find("a.txt"), std::string::npos) << ask.out;

  auto ls = Hai("ls");
  EXPECT_NE(ls.out.find("docs\t2 documents"), std::string::npos) << ls.out;
  auto lsd = Hai("ls docs --json");
  ASSERT_EQ(lsd.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(lsd.out).size(), 2u);

  // Re-adding is a no-op.
  auto again = Hai("add docs " + Q(files_.path()));
  EXPECT_NE(again.out.find("unchanged"), std::string::npos) << again.out;

  ASSERT_EQ(Hai("rm docs a.txt").exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(Hai("search docs 光刻机 --json").out).size(), 0u);
}

TEST_F(KbCli, ErrorsNameWhatWasWrong) {
  auto r = Hai("search nokb query");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no knowledge base named 'nokb'"), std::string::npos) << r.err;

  r = Hai("create " + Q("bad/name"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("invalid knowledge base name 'bad/name'"), std::string::npos) << r.err;

  ASSERT_EQ(Hai("create k").exit_code, 0);
  r = Hai("create k");
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;

  r = Hai("add k " + Q(files_ / "missing.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no such file"), std::string::npos) << r.err;

  // Broken and unsupported files fail alone; the good one is ingested.
  WriteFile(files_ / "in/bad.pdf", "%PDF-1.7 garbage");
  WriteFile(files_ / "in/bad.docx", "PK\x03\x04garbage");
  WriteFile(files_ / "in/good.txt", "tokenizers split text into pieces.");
  WriteFile(files_ / "tool.exe", "MZ");
  r = Hai("add k " + Q(files_ / "in") + " " + Q(files_ / "tool.exe"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.pdf: broken PDF"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.docx: broken zip archive"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tool.exe: unsupported file type"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 file(s) could not be added"), std::string::npos) << r.err;
  EXPECT_NE(Hai("ls k").out.find("good.txt"), std::string::npos);

  r = Hai("search k tokenizers --top 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--top"), std::string::npos) << r.err;
  r = Hai("search k tokenizers --bogus");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;
  r = Hai("search k tokenizers --type exe");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exe"), std::string::npos) << r.err;
  r = Hai("search k tokenizers --after 2024-99-01");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("invalid date '2024-99-01'"), std::string::npos) << r.err;
  r = Hai("rm k nothere.txt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no document 'nothere.txt'"), std::string::npos) << r.err;
  r = Hai("search k");
  EXPECT_NE(r.exit_code, 0);
  r = Hai("create k2 --chunk-size 10");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("chunk size 10"), std::string::npos) << r.err;
}

// SIGKILL while a document is inside its transaction: the knowledge base
// is intact, and every document is either fully there or absent.
TEST_F(KbCli, KillDuringIngestLeavesEveryDocumentWholeOrAbsent) {
  ASSERT_EQ(Hai("create big").exit_code, 0);
  const int kDocs = 12, kPauseAt = 5;
  for (int d = 0; d < kDocs; ++d) {
    std::string text;
    for (int i = 0; i < 400; ++i)
      text += "文档" + std::to_string(d) + "的第" + std::to_string(i) + "句话讨论大模型与算力的关系。";
    char name[32];
    std::snprintf(name, sizeof name, "doc%02d.txt", d);
    WriteFile(files_ / std::string("corpus/") + name, text);
  }
  std::string marker = files_ / "paused";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("HAI_KB_TEST_PAUSE_AT", std::to_string(kPauseAt).c_str(), 1);
    ::setenv("HAI_KB_TEST_PAUSE_FILE", marker.c_str(), 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    std::string bin = hai::test::hai_bin(), dir = dir_.path(), in = files_ / "corpus";
    ::execl(bin.c_str(), bin.c_str(), "kb", "--data-dir", dir.c_str(), "add", "big", in.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until the child is inside the 5th document's transaction.
  bool paused = false;
  for (int i = 0; i < 1200 && !paused; ++i) {
    paused = ::access(marker.c_str(), F_OK) == 0;
    if (!paused) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(paused) << "ingest never reached the pause point";
  ASSERT_TRUE(WIFSIGNALED(status));

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "kb/big.sqlite").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
    sqlite3_finalize(st);
  }
  // The four committed documents are whole; the fifth left no trace.
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM documents"), kPauseAt - 1);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM documents d WHERE n_chunks != "
                       "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"), 0);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM documents d WHERE NOT EXISTS "
                       "(SELECT 1 FROM postings p WHERE p.doc_id = d.id)"), 0);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM postings WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
  EXPECT_EQ(Scalar(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='n_chunks'"),
            Scalar(db, "SELECT count(*) FROM chunks"));
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM documents WHERE name='doc04.txt'"), 0);
  sqlite3_close(db);

  // Running the ingest again completes it: 4 unchanged, 8 added.
  auto r = Hai("add big " + Q(files_ / "corpus"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t unchanged = 0, pos = 0;
  while ((pos = r.out.find("unchanged", pos)) != std::string::npos) ++unchanged, ++pos;
  EXPECT_EQ(unchanged, 4u);
  EXPECT_NE(Hai("ls big").out.find("doc11.txt"), std::string::npos);
  auto hits = nlohmann::json::parse(Hai("search big 文档4的第7句话 --json --top 1").out);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["doc"], "doc04.txt");
}

// Search modes on the command line, and their errors.
TEST_F(KbCli, SearchModesAndEmbedModelErrors) {
  ASSERT_EQ(Hai("create k").exit_code, 0);
  WriteFile(files_ / "a.txt", "光刻机由荷兰公司生产。");
  ASSERT_EQ(Hai("add k " + Q(files_ / "a.txt")).exit_code, 0);
  auto r = Hai("search k 光刻机 --mode bm25 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto hits = nlohmann::json::parse(r.out);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["doc"], "a.txt");
  EXPECT_EQ(hits[0]["bm25_rank"], 1);
  EXPECT_FALSE(hits[0].contains("dense_rank"));
  r = Hai("search k 光刻机 --mode dense");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no embedding model"), std::string::npos) << r.err;
  r = Hai("search k 光刻机 --mode vector");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown search mode 'vector'"), std::string::npos) << r.err;
  // A missing or unusable embedding model is reported before anything is created.
  r = Hai("create v --embed-model " + Q(files_ / "missing.gguf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.gguf"), std::string::npos) << r.err;
  EXPECT_EQ(Hai("ls").out.find("v\t"), std::string::npos);
  r = Hai("embed k --embed-model " + Q(files_ / "a.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("a.txt"), std::string::npos) << r.err;
}

// `ask --model`: a local chat model writes the answer from numbered sources.
// The fixture model has random weights, so the text is noise; what is
// checked is the shape: answer, mode, sources numbered 1..n with document,
// excerpt and location, and the prompt that carries them.
TEST_F(KbCli, AskWithChatModel) {
  const std::string model = hai::test::fixture("models/tiny-llama-spm-q4_0.gguf");
  ASSERT_EQ(Hai("create k").exit_code, 0);
  WriteFile(files_ / "in/talent.md", "# 人才\n\n大模型人才缺口大，原因是高端技术人才稀缺。\n\n# 算力\n\n算力成本很高。");
  WriteFile(files_ / "in/other.txt", "水稻种植需要灌溉。");
  ASSERT_EQ(Hai("add k " + Q(files_ / "in")).exit_code, 0);
  auto r = Hai("ask k 大模型人才缺口大的原因 --model " + Q(model) + " -n 8 --top 2 --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["answer"].is_string());
  EXPECT_EQ(j["mode"], "grounded");
  EXPECT_EQ(j["model"], model);
  EXPECT_TRUE(j["cited"].is_array());
  ASSERT_GE(j["sources"].size(), 1u);
  ASSERT_LE(j["sources"].size(), 2u);
  EXPECT_EQ(j["sources"][0]["n"], 1);
  EXPECT_EQ(j["sources"][0]["doc"], "talent.md");
  EXPECT_NE(j["sources"][0]["excerpt"].get<std::string>().find("人才缺口"), std::string::npos);
  EXPECT_EQ(j["sources"][0]["heading"], "人才");

  // Text output: the answer, then the numbered source list; --verbose shows
  // the prompt with the grounded instructions and the numbered passages.
  r = Hai("ask k 大模型人才缺口大的原因 --model " + Q(model) + " -n 4 --top 1 --verbose -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Sources:\n[1] talent.md, 人才"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("only the numbered sources"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[1] talent.md, 人才\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Question: 大模型人才缺口大的原因"), std::string::npos) << r.err;
  r = Hai("ask k 大模型人才缺口大的原因 --model " + Q(model) + " --mode open -n 4 --top 1 --verbose -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("your own knowledge"), std::string::npos) << r.err;

  // Errors.
  r = Hai("ask k 人才 --mode open");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs a chat model"), std::string::npos) << r.err;
  r = Hai("ask k 人才 --model " + Q(model) + " --mode creative");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown answer mode 'creative'"), std::string::npos) << r.err;
  r = Hai("ask k 人才 --model " + Q(files_ / "none.gguf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("none.gguf"), std::string::npos) << r.err;
  r = Hai("ask k 人才 --model " + Q(model) + " --max-tokens 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--max-tokens"), std::string::npos) << r.err;
  // Without --model: the extractive answer, now with a mode field.
  j = nlohmann::json::parse(Hai("ask k 大模型人才缺口大的原因 --json").out);
  EXPECT_EQ(j["mode"], "extractive");
  EXPECT_NE(j["answer"].get<std::string>().find("[1]"), std::string::npos);
}

// The whole dense path with the engine's embedding model (the random-weight
// BERT fixture: its vectors carry no meaning, so only the mechanics are
// checked: vectors for every chunk, dense/hybrid ranks in the JSON, the
// index file kept in step with rm and re-embedding).
TEST_F(KbCli, DenseAndHybridWithTheFixtureEmbeddingModel) {
  const std::string bert = hai::test::fixture("models/tiny-bert-bge-f16.gguf");
  auto r = Hai("-t 1 create v --embed-model " + Q(bert));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  WriteFile(files_ / "in/a.txt", "光刻机由荷兰公司生产。芯片制造离不开光刻机。");
  WriteFile(files_ / "in/b.txt", "水稻种植需要灌溉。农民秋天收割稻谷。");
  r = Hai("-t 1 add v " + Q(files_ / "in"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "kb/v.hnsw"));
  auto all = nlohmann::json::parse(Hai("ls --json").out);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["embed_model"], std::filesystem::absolute(bert).string());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "kb/v.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_EQ(Scalar(db, "SELECT count(*) FROM vectors"), Scalar(db, "SELECT count(*) FROM chunks"));
  EXPECT_EQ(Scalar(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='embed_dim'"), 128);
  sqlite3_close(db);

  // Default mode with a model: hybrid; both ranks are reported.
  auto hits = nlohmann::json::parse(Hai("-t 1 search v 光刻机 --json").out);
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0]["doc"], "a.txt");  // BM25 finds it; fusion keeps it first among 2 chunks
  EXPECT_TRUE(hits[0].contains("dense_rank"));
  hits = nlohmann::json::parse(Hai("-t 1 search v 光刻机 --mode dense --json").out);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0]["dense_rank"], 1);
  EXPECT_FALSE(hits[0].contains("bm25_rank"));

  // rm keeps vectors and index in step.
  ASSERT_EQ(Hai("rm v b.txt").exit_code, 0);
  hits = nlohmann::json::parse(Hai("-t 1 search v 稻谷 --mode dense --json").out);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["doc"], "a.txt");

  // A BM25 knowledge base gains vectors explicitly with `embed`.
  ASSERT_EQ(Hai("create p").exit_code, 0);
  ASSERT_EQ(Hai("add p " + Q(files_ / "in")).exit_code, 0);
  EXPECT_EQ(Hai("search p 稻谷 --mode dense").exit_code, 1);
  r = Hai("-t 1 embed p --embed-model " + Q(bert));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("embedded 2 chunks"), std::string::npos) << r.out;
  hits = nlohmann::json::parse(Hai("-t 1 search p 稻谷 --mode dense --json").out);
  EXPECT_EQ(hits.size(), 2u);
}
