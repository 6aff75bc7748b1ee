// Reranking of knowledge-base search results (kb/rerank.h) and its CLI:
// the reranked order is the order of the reranker's own scores, the
// configured reranker is stored in the knowledge base and used by search and
// ask, and the bad inputs are refused with messages that name them. The
// reranker is a random-weight cross-encoder made by `hai synth --pooling
// rank`, so its scores mean nothing, but they are fixed by the file: the
// tests compare the order with scores computed directly (model::Reranker).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/test_util.h"
#include "engine/model/rerank.h"
#include "kb/knowledge_base.h"
#include "kb/rerank.h"
#include "kb_test_util.h"

namespace hai::kb {
namespace {

using hai::kbtest::ErrorOf;
using hai::kbtest::TempDir;
using hai::test::fixture;
using hai::test::run_hai;
using ::testing::HasSubstr;

std::string Q(const std::string& s) { return "'" + s + "'"; }

class KbRerank : public ::testing::Test {
 protected:
  void SetUp() override {
    reranker_ = dir_ / "rr.gguf";
    auto r = run_hai("synth --arch bert --n-embd 64 --n-layer 2 --n-head 4 --n-ff 128 --ctx 128 --pooling rank "
                     "--seed 9 --vocab " + fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + reranker_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    data_ = dir_ / "data";
    KnowledgeBase::Create(data_, "k");
    auto k = KnowledgeBase::Open(data_, "k");
    for (int i = 0; i < 8; ++i) {
      std::string text = "Document " + std::to_string(i) + " is about giant pandas";
      for (int j = 0; j < i; ++j) text += " and bears";
      text += ". Pandas eat bamboo, number " + std::to_string(i) + ".";
      ASSERT_EQ(k->AddBytes("d" + std::to_string(i) + ".txt", text).status, AddResult::kAdded);
    }
  }
  hai::test::CommandResult Hai(const std::string& args) { return run_hai("kb --data-dir " + Q(data_) + " " + args); }

  // The chunk ids of `hits` ordered by the reranker's scores computed
  // directly (best first, ties in retrieval order).
  std::vector<int64_t> DirectOrder(const std::string& query, const std::vector<Hit>& hits) {
    auto r = model::Reranker::load(reranker_);
    std::vector<std::string> texts;
    for (const Hit& h : hits) texts.push_back(h.text);
    const auto s = r->score(query, texts);
    std::vector<size_t> order(hits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a].score > s[b].score; });
    std::vector<int64_t> ids;
    for (size_t i : order) ids.push_back(hits[i].chunk_id);
    return ids;
  }

  TempDir dir_;
  std::string reranker_, data_;
};

Hit MakeHit(int64_t id, const std::string& text, double score) {
  Hit h;
  h.chunk_id = id;
  h.text = text;
  h.score = score;
  return h;
}

TEST(RerankHits, OrdersByScoreKeepingTiesAndRecordsRetrieval) {
  const std::vector<Hit> hits = {MakeHit(10, "a", 0.9), MakeHit(11, "bbb", 0.8), MakeHit(12, "cc", 0.7),
                                 MakeHit(13, "dd", 0.6)};
  // Score = passage length: 3 > 2 = 2 > 1.
  RerankFn by_length = [](const std::string& q, const std::vector<std::string>& p) {
    EXPECT_EQ(q, "query");
    std::vector<double> s;
    for (const auto& t : p) s.push_back(double(t.size()));
    return s;
  };
  const auto r = RerankHits("query", hits, by_length);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].hit.chunk_id, 11);
  EXPECT_EQ(r[1].hit.chunk_id, 12);  // tie with 13: retrieval order
  EXPECT_EQ(r[2].hit.chunk_id, 13);
  EXPECT_EQ(r[3].hit.chunk_id, 10);
  EXPECT_EQ(r[0].retrieval_rank, 2);
  EXPECT_DOUBLE_EQ(r[0].retrieval_score, 0.8);
  EXPECT_DOUBLE_EQ(r[0].hit.score, 3.0);
  EXPECT_EQ(HitsOf(r)[3].chunk_id, 10);
  EXPECT_TRUE(RerankHits("query", {}, by_length).empty());
}

TEST(RerankHits, RefusesAWrongScoreCountOrNaN) {
  const std::vector<Hit> hits = {MakeHit(1, "a", 1), MakeHit(2, "b", 1)};
  RerankFn short_fn = [](const std::string&, const std::vector<std::string>&) { return std::vector<double>{1.0}; };
  EXPECT_THAT(ErrorOf([&] { RerankHits("q", hits, short_fn); }), HasSubstr("1 scores for 2 passages"));
  RerankFn nan_fn = [](const std::string&, const std::vector<std::string>&) {
    return std::vector<double>{1.0, std::numeric_limits<double>::quiet_NaN()};
  };
  EXPECT_THAT(ErrorOf([&] { RerankHits("q", hits, nan_fn); }), HasSubstr("passage 1"));
}

TEST_F(KbRerank, SearchRerankedFollowsTheRerankerScores) {
  auto k = KnowledgeBase::Open(data_, "k");
  SearchOptions all;
  all.top_k = 8;
  const std::vector<Hit> candidates = k->Search("giant pandas", all);
  ASSERT_EQ(candidates.size(), 8u);
  const std::vector<int64_t> want = DirectOrder("giant pandas", candidates);

  const RerankFn fn = LoadReranker(reranker_, 1);
  SearchOptions opt;
  opt.top_k = 3;
  const auto got = SearchReranked(*k, "giant pandas", opt, fn, /*top_n=*/8);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[i].hit.chunk_id, want[i]) << i;
  for (size_t i = 1; i < got.size(); ++i) EXPECT_GE(got[i - 1].hit.score, got[i].hit.score);
  // The order differs from retrieval's (else the test shows nothing).
  std::vector<int64_t> retrieval;
  for (const Hit& h : candidates) retrieval.push_back(h.chunk_id);
  EXPECT_NE(std::vector<int64_t>(want.begin(), want.begin() + 3), std::vector<int64_t>(retrieval.begin(), retrieval.begin() + 3));
  // Only the top_n candidates are reranked: with 2, the result is among the
  // first two retrieved; top_k above top_n widens the candidates to top_k.
  SearchOptions one;
  one.top_k = 1;
  const auto two = SearchReranked(*k, "giant pandas", one, fn, /*top_n=*/2);
  ASSERT_EQ(two.size(), 1u);
  EXPECT_LE(two[0].retrieval_rank, 2);
  const auto widened = SearchReranked(*k, "giant pandas", opt, fn, /*top_n=*/2);
  ASSERT_EQ(widened.size(), 3u);
  for (const auto& r : widened) EXPECT_LE(r.retrieval_rank, 3);
  EXPECT_THAT(ErrorOf([&] { SearchReranked(*k, "giant pandas", opt, fn, 0); }), HasSubstr("must be positive"));
  SearchOptions bad;
  bad.top_k = 0;
  EXPECT_NE(ErrorOf([&] { SearchReranked(*k, "giant pandas", bad, fn, 5); }), "");
}

TEST_F(KbRerank, AskRerankedCitesTheRerankedSources) {
  auto k = KnowledgeBase::Open(data_, "k");
  const RerankFn fn = LoadReranker(reranker_, 1);
  SearchOptions opt;
  const Answer a = AskReranked(*k, "giant pandas", opt, fn, 8);
  ASSERT_EQ(a.sources.size(), 3u);
  SearchOptions all;
  all.top_k = 8;
  const std::vector<int64_t> want = DirectOrder("giant pandas", k->Search("giant pandas", all));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a.sources[i].chunk_id, want[i]);
  EXPECT_THAT(a.text, HasSubstr("[1]"));
  EXPECT_THAT(a.text, HasSubstr("[3]"));
}

TEST_F(KbRerank, ConfigIsStoredInTheKnowledgeBase) {
  EXPECT_EQ(GetRerankConfig(data_, "k").model, "");
  EXPECT_EQ(GetRerankConfig(data_, "k").top, kDefaultRerankTop);
  SetRerankConfig(data_, "k", {reranker_, 12});
  EXPECT_EQ(GetRerankConfig(data_, "k").model, reranker_);
  EXPECT_EQ(GetRerankConfig(data_, "k").top, 12);
  // The knowledge base itself still opens and searches.
  EXPECT_FALSE(KnowledgeBase::Open(data_, "k")->Search("pandas").empty());
  SetRerankConfig(data_, "k", {});
  EXPECT_EQ(GetRerankConfig(data_, "k").model, "");
  EXPECT_THAT(ErrorOf([&] { SetRerankConfig(data_, "k", {reranker_, 0}); }), HasSubstr("[1, 1000]"));
  EXPECT_THAT(ErrorOf([&] { GetRerankConfig(data_, "missing"); }), HasSubstr("missing"));
  EXPECT_THAT(ErrorOf([&] { SetRerankConfig(data_, "missing", {reranker_, 5}); }), HasSubstr("missing"));
  EXPECT_THAT(ErrorOf([&] { LoadReranker(dir_ / "nope.gguf"); }), HasSubstr("nope.gguf"));
}

TEST_F(KbRerank, CliSearchAskAndConfig) {
  // --rerank for one search: the JSON order is the reranker's.
  auto plain = Hai("search k 'giant pandas' --top 8 --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto pj = nlohmann::json::parse(plain.out);
  ASSERT_EQ(pj.size(), 8u);
  std::vector<Hit> candidates;
  for (const auto& h : pj) candidates.push_back(MakeHit(h["chunk"].get<int64_t>(), h["text"].get<std::string>(), 0));
  const std::vector<int64_t> want = DirectOrder("giant pandas", candidates);

  auto rr = Hai("search k 'giant pandas' --top 4 --rerank " + Q(reranker_) + " --rerank-top 8 --json");
  ASSERT_EQ(rr.exit_code, 0) << rr.err;
  const auto rj = nlohmann::json::parse(rr.out);
  ASSERT_EQ(rj.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rj[i]["chunk"].get<int64_t>(), want[i]) << i;
    EXPECT_EQ(rj[i]["score"], rj[i]["rerank_score"]);
    EXPECT_GE(rj[i]["retrieval_rank"].get<int>(), 1);
  }
  // Text output names the retrieval rank.
  auto text = Hai("search k 'giant pandas' --top 2 --rerank " + Q(reranker_));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("(retrieval #"));

  // Configured once, used by search and ask; --no-rerank turns it off.
  auto set = Hai("reranker k --model " + Q(reranker_) + " --top 8");
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("top 8"));
  auto cfg = Hai("reranker k --json");
  EXPECT_EQ(nlohmann::json::parse(cfg.out)["rerank_top"], 8);
  auto configured = Hai("search k 'giant pandas' --top 4 --json");
  ASSERT_EQ(configured.exit_code, 0) << configured.err;
  EXPECT_EQ(nlohmann::json::parse(configured.out), rj);
  auto off = Hai("search k 'giant pandas' --top 8 --no-rerank --json");
  EXPECT_EQ(nlohmann::json::parse(off.out), pj);
  auto ask = Hai("ask k 'giant pandas' --json");
  ASSERT_EQ(ask.exit_code, 0) << ask.err;
  EXPECT_EQ(nlohmann::json::parse(ask.out)["sources"][0]["chunk"].get<int64_t>(), want[0]);
  // ask with a chat model: the sources are the reranked passages too.
  auto gen = Hai("ask k 'giant pandas' --model " + Q(fixture("models/tiny-llama-spm-q4_0.gguf")) +
                 " -n 4 --top 2 --json -t 1");
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const auto gj = nlohmann::json::parse(gen.out);
  ASSERT_EQ(gj["sources"].size(), 2u);
  EXPECT_EQ(gj["sources"][0]["chunk"].get<int64_t>(), want[0]);
  EXPECT_EQ(gj["sources"][1]["chunk"].get<int64_t>(), want[1]);
  EXPECT_FALSE(gj["sources"][0].contains("retrieval_rank"));  // sources are plain hits
  EXPECT_TRUE(gj["answer"].is_string());
  auto ls = Hai("ls --json");
  EXPECT_EQ(nlohmann::json::parse(ls.out)[0]["rerank_model"], reranker_);
  auto clear = Hai("reranker k --off");
  ASSERT_EQ(clear.exit_code, 0) << clear.err;
  EXPECT_THAT(clear.out, HasSubstr("no reranker"));
  EXPECT_EQ(nlohmann::json::parse(Hai("search k 'giant pandas' --top 8 --json").out), pj);

  // create --rerank-model records it.
  auto created = Hai("create k2 --rerank-model " + Q(reranker_) + " --rerank-top 7");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(GetRerankConfig(data_, "k2").top, 7);
}

TEST_F(KbRerank, CliErrors) {
  const std::string embedder = dir_ / "emb.gguf";
  ASSERT_EQ(run_hai("synth --arch bert --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --ctx 64 --vocab " +
                    fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + embedder).exit_code, 0);
  // An embedding model is not a reranker: nothing is created or recorded.
  auto c = Hai("create k3 --rerank-model " + Q(embedder));
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_THAT(c.err, HasSubstr("not a reranker"));
  EXPECT_EQ(Hai("ls --json").out.find("k3"), std::string::npos);
  auto r = Hai("reranker k --model " + Q(embedder));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not a reranker"));
  EXPECT_EQ(GetRerankConfig(data_, "k").model, "");
  // Each: the command, and what the error names (exit code 1, or CLI11's
  // own for a value it rejects).
  struct Case {
    std::string args, message;
    bool cli11 = false;
  };
  const std::vector<Case> cases = {
      {"search k pandas --rerank " + Q(embedder), "not a reranker"},
      {"search k pandas --rerank /nonexistent/rr.gguf", "/nonexistent/rr.gguf"},
      {"search k pandas --rerank " + Q(reranker_) + " --no-rerank", "exclude each other"},
      {"search k pandas --rerank-top 5", "--rerank-top needs a reranker"},
      {"search k pandas --rerank " + Q(reranker_) + " --rerank-top 0", "--rerank-top", true},
      {"reranker k --off --model " + Q(reranker_), "--off excludes"},
      {"reranker k --top 5", "has no reranker"},
      {"reranker nokb", "nokb"},
  };
  for (const Case& c : cases) {
    auto r = Hai(c.args);
    if (c.cli11)
      EXPECT_NE(r.exit_code, 0) << c.args;
    else
      EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.args;
  }
}

}  // namespace
}  // namespace hai::kb
