// The cross-encoder reranker (model::Reranker, BertEncoder::rank) against
// scores that the reference engine (llama.cpp) computed for two synthesized
// rerankers, the pair tokenization with its token types, batching, and the
// bad inputs.
//
// Where the reference numbers come from. The models are made by `hai synth`
// (deterministic in --seed; the test makes them again):
//   F16: hai synth --arch bert --n-embd 128 --n-layer 2 --n-head 4 --n-ff 512 --ctx 512 --pooling rank --seed 7
//          --vocab shared/fixtures/tokenizer/ggml-vocab-bert-bge.gguf rr16.gguf
//   F32: hai synth --arch bert --n-embd 64 --n-layer 3 --n-head 2 --n-ff 256 --ctx 128 --pooling rank --type f32
//          --seed 11 --vocab shared/fixtures/tokenizer/ggml-vocab-bert-bge.gguf rr32.gguf
// and each pair was scored alone (one llama-embedding run per pair, so the
// sequence sits at the start of the batch as in ours) by llama.cpp c392e50
// (February 2025, CPU, AVX-512):
//   llama-embedding -m MODEL --pooling rank --embd-normalize -1 --embd-output-format array -t 2 -c 512 -b 2048
//                   --verbose-prompt -p "QUERY[SEP]DOC"
// ("[SEP]" is parsed as the special token: [CLS] QUERY [SEP] DOC [SEP]; the
// score is the first number printed; the tokens are those --verbose-prompt
// listed). llama.cpp adds token type 0 to every token, so we compare with
// TokenTypes::Zero.
//
// Tolerances: the F32 model within 1e-4; the F16 model within 1e-3 (its
// activations are rounded to F16 before every product and GELU reads an
// F16 table, so a last-bit difference upstream moves a score by up to
// ~3e-4 on this random model: the same noise the BERT embedding test allows
// with its cosine >= 0.9999). Set HAI_DEBUG_RERANK=1 to print every diff.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/bert.h"
#include "engine/model/embed.h"
#include "engine/model/rerank.h"

namespace hai::model {
namespace {

using hai::test::fixture;
using hai::test::run_hai;

const std::string kVocab = "tokenizer/ggml-vocab-bert-bge.gguf";

std::string tmp(const std::string& name) {
  return ::testing::TempDir() + "rerank_" + std::to_string(::getpid()) + "_" + name;
}

// Synthesizes a model once per test run.
std::string synth(const std::string& name, const std::string& flags) {
  const std::string out = tmp(name);
  if (std::filesystem::exists(out)) return out;
  auto r = run_hai("synth --arch bert " + flags + " --vocab " + fixture(kVocab) + " " + out);
  if (r.exit_code != 0) ADD_FAILURE() << "hai synth failed: " << r.err;
  return out;
}

std::string model16() {
  return synth("rr16.gguf", "--n-embd 128 --n-layer 2 --n-head 4 --n-ff 512 --ctx 512 --pooling rank --seed 7");
}
std::string model32() {
  return synth("rr32.gguf", "--n-embd 64 --n-layer 3 --n-head 2 --n-ff 256 --ctx 128 --pooling rank --type f32 --seed 11");
}
std::string embed_model() {
  return synth("emb.gguf", "--n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --ctx 64 --pooling cls --seed 3");
}

struct RefPair {
  const char* query;
  const char* doc;
  std::vector<int32_t> tokens;
  float score16, score32;
};

const std::vector<RefPair>& reference() {
  static const std::vector<RefPair> ref = {
      {"what is a panda?", "The giant panda is a bear native to China.",
       {101, 2054, 2003, 1037, 25462, 1029, 102, 1996, 5016, 25462, 2003, 1037, 4562, 3128, 2000, 2859, 1012, 102},
       0.5245765f, -0.3138773f},
      {"what is a panda?", "hi", {101, 2054, 2003, 1037, 25462, 1029, 102, 7632, 102}, 0.7482318f, -0.0890021f},
      {"large language models", "Large language models are trained on large amounts of text.",
       {101, 2312, 2653, 4275, 102, 2312, 2653, 4275, 2024, 4738, 2006, 2312, 8310, 1997, 3793, 1012, 102},
       -0.3028982f, 0.0905665f},
      {"large language models", "The weather is sunny today in Beijing.",
       {101, 2312, 2653, 4275, 102, 1996, 4633, 2003, 11559, 2651, 1999, 7211, 1012, 102}, -0.5893667f, -0.5213679f},
      {"什么是大模型？", "大模型是指参数规模巨大的深度学习模型。",
       {101, 100, 100, 100, 1810, 100, 100, 1994, 102, 1810, 100, 100, 100, 100, 100,
        100, 100, 100, 100, 1810, 1916, 100, 100, 1817, 100, 100, 100, 1636, 102},
       0.587911f, 0.2850375f},
      {"什么是大模型？", "今天北京天气晴朗。",
       {101, 100, 100, 100, 1810, 100, 100, 1994, 102, 100, 1811, 1781, 1755, 1811, 100, 100, 100, 1636, 102},
       0.684125f, 0.0120559f},
  };
  return ref;
}

void check_reference(const std::string& path, bool f16, float tol) {
  Reranker::Options o;
  o.token_types = TokenTypes::Zero;
  o.n_threads = 2;
  auto r = Reranker::load(path, o);
  const bool debug = std::getenv("HAI_DEBUG_RERANK") != nullptr;
  // One query at a time, its documents in one call (one batch).
  double max_diff = 0;
  const auto& ref = reference();
  for (size_t i = 0; i < ref.size(); i += 2) {
    const auto got = r->score(ref[i].query, {ref[i].doc, ref[i + 1].doc});
    ASSERT_EQ(got.size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
      const RefPair& p = ref[i + k];
      EXPECT_EQ(r->tokenize_pair(p.query, p.doc).tokens, p.tokens) << p.query << " / " << p.doc;
      EXPECT_EQ(got[k].n_tokens, static_cast<int64_t>(p.tokens.size()));
      EXPECT_FALSE(got[k].truncated);
      const float want = f16 ? p.score16 : p.score32;
      const double d = std::fabs(double(got[k].score) - want);
      if (debug) std::printf("%s / %s: %.7f want %.7f diff %.3g\n", p.query, p.doc, got[k].score, want, d);
      EXPECT_LE(d, tol) << p.query << " / " << p.doc << ": got " << got[k].score << ", llama.cpp " << want;
      max_diff = std::max(max_diff, d);
    }
  }
  std::printf("%s: max |score - llama.cpp| = %.3g\n", f16 ? "f16 reranker" : "f32 reranker", max_diff);
}

TEST(Rerank, SynthIsDeterministic) {
  const std::string a = model16();
  const std::string b = tmp("rr16-again.gguf");
  auto r = run_hai("synth --arch bert --n-embd 128 --n-layer 2 --n-head 4 --n-ff 512 --ctx 512 --pooling rank --seed 7 "
                   "--vocab " + fixture(kVocab) + " " + b);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(hai::test::read_file(a), hai::test::read_file(b));
  std::filesystem::remove(b);
}

TEST(Rerank, HeadTensorsAndHparams) {
  auto m = BertModel::load(model16());
  EXPECT_EQ(m->hparams().pooling_type, 4);
  EXPECT_EQ(m->hparams().n_cls_out, 1);
  EXPECT_TRUE(m->has_rank_head());
  EXPECT_EQ(m->cls_w.n_cols, 128);
  EXPECT_EQ(m->cls_w.n_rows, 128);
  EXPECT_EQ(m->cls_out_w.n_rows, 1);
  // token_types stays F32 as llama.cpp's converter writes it.
  EXPECT_EQ(m->token_types.type, GgmlType::F32);
  auto e = BertModel::load(embed_model());
  EXPECT_FALSE(e->has_rank_head());
  EXPECT_FALSE(e->cls_w);
}

TEST(Rerank, MatchesLlamaCppF16) { check_reference(model16(), true, 1e-3f); }
TEST(Rerank, MatchesLlamaCppF32) { check_reference(model32(), false, 1e-4f); }

// The head computed by hand from the encoder's CLS state equals rank().
TEST(Rerank, HeadByHand) {
  auto m = BertModel::load(model32());
  BertEncoder enc(*m, 2);
  const std::vector<int32_t> toks = reference()[1].tokens;
  std::vector<float> h, s;
  enc.encode({toks}, h);
  enc.rank({toks}, {}, s);
  ASSERT_EQ(s.size(), 1u);
  const int64_t D = 64;
  std::vector<float> w(D * D), c(D), wo(D);
  for (int64_t r = 0; r < D; ++r) std::memcpy(&w[r * D], m->cls_w.row(r), D * sizeof(float));
  std::memcpy(wo.data(), m->cls_out_w.row(0), D * sizeof(float));
  double out = m->cls_out_b.f32()[0];
  for (int64_t r = 0; r < D; ++r) {
    double acc = m->cls_b.f32()[r];
    for (int64_t j = 0; j < D; ++j) acc += double(w[r * D + j]) * h[j];
    c[r] = std::tanh(acc);
    out += double(wo[r]) * c[r];
  }
  EXPECT_NEAR(s[0], out, 1e-5);
}

TEST(Rerank, PairTokensAndTypes) {
  auto r = Reranker::load(model16());
  const RerankPair p = r->tokenize_pair("what is a panda?", "hi");
  EXPECT_EQ(p.tokens, reference()[1].tokens);
  // [CLS] what is a panda ? [SEP] -> 0; hi [SEP] -> 1.
  EXPECT_EQ(p.types, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_FALSE(p.truncated);
  // Empty query and document: [CLS] [SEP] [SEP].
  const RerankPair e = r->tokenize_pair("", "");
  EXPECT_EQ(e.tokens, (std::vector<int32_t>{101, 102, 102}));
  EXPECT_EQ(e.types, (std::vector<int32_t>{0, 0, 1}));
  Reranker::Options o;
  o.token_types = TokenTypes::Zero;
  EXPECT_EQ(Reranker::load(model16(), o)->tokenize_pair("what is a panda?", "hi").types, std::vector<int32_t>(9, 0));
}

// Segment types change the score (the model has a second type row), and
// equal what the encoder computes from those types directly.
TEST(Rerank, SegmentTypesReachTheEncoder) {
  auto seg = Reranker::load(model16());
  Reranker::Options o;
  o.token_types = TokenTypes::Zero;
  auto zero = Reranker::load(model16(), o);
  const auto a = seg->score("what is a panda?", {"hi"});
  const auto b = zero->score("what is a panda?", {"hi"});
  EXPECT_NE(a[0].score, b[0].score);
  auto m = BertModel::load(model16());
  BertEncoder enc(*m, 2);
  const RerankPair p = seg->tokenize_pair("what is a panda?", "hi");
  std::vector<float> s;
  enc.rank({p.tokens}, {p.types}, s);
  EXPECT_EQ(s[0], a[0].score);
  // Type ids outside the model's rows are refused.
  std::vector<int32_t> bad = p.types;
  bad[0] = 2;
  EXPECT_THROW(enc.rank({p.tokens}, {bad}, s), Error);
  EXPECT_THROW(enc.rank({p.tokens}, {{0, 1}}, s), Error);  // one type per token
}

// A pair's score does not depend on the other pairs of its batch, nor on
// the thread count.
TEST(Rerank, BatchEqualsOneByOne) {
  auto r = Reranker::load(model16());
  const std::vector<std::string> docs = {"hi", "The giant panda is a bear native to China.", "", "大模型", "a b c"};
  const auto all = r->score("what is a panda?", docs);
  ASSERT_EQ(all.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i)
    EXPECT_EQ(r->score("what is a panda?", {docs[i]})[0].score, all[i].score) << i;
  Reranker::Options o1;
  o1.n_threads = 1;
  EXPECT_EQ(Reranker::load(model16(), o1)->score("what is a panda?", docs)[1].score, all[1].score);
  // Many pairs: more than one forward batch (2048 tokens).
  std::vector<std::string> many(300, "The giant panda is a bear native to China.");
  const auto big = r->score("what is a panda?", many);
  ASSERT_EQ(big.size(), many.size());
  EXPECT_EQ(big.front().score, all[1].score);
  EXPECT_EQ(big.back().score, all[1].score);
}

TEST(Rerank, EmptyDocumentListGivesNoScores) {
  auto r = Reranker::load(model16());
  EXPECT_TRUE(r->score("query", {}).empty());
}

// A long document is cut to the model's positions, keeping the query and
// the closing [SEP]; a query that fills the context is an error.
TEST(Rerank, TooLongPair) {
  auto r = Reranker::load(model32());  // 128 positions
  ASSERT_EQ(r->n_ctx(), 128);
  std::string doc;
  for (int i = 0; i < 300; ++i) doc += "panda ";
  const RerankPair p = r->tokenize_pair("what is a panda?", doc);
  EXPECT_TRUE(p.truncated);
  ASSERT_EQ(p.tokens.size(), 128u);
  EXPECT_EQ(p.tokens.back(), 102);
  EXPECT_EQ(p.tokens[6], 102);  // the query's [SEP] is kept
  const auto s = r->score("what is a panda?", {doc});
  EXPECT_TRUE(s[0].truncated);
  EXPECT_EQ(s[0].n_tokens, 128);
  EXPECT_TRUE(std::isfinite(s[0].score));
  std::string query;
  for (int i = 0; i < 130; ++i) query += "bear ";
  try {
    r->score(query, {"hi"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("leaves no room for a document"), std::string::npos) << e.what();
  }
}

// A copy of `src` without the tensor `skip`.
std::string copy_without(const std::string& src_path, const std::string& skip, const std::string& name) {
  const gguf::File src = gguf::File::open(src_path);
  gguf::Writer w;
  for (const auto& [k, v] : src.metadata()) w.set(k, v);
  for (const auto& t : src.tensors())
    if (t.name != skip) w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
  const std::string out = tmp(name);
  w.write(out);
  return out;
}

// Half a classification head is a broken file, named as such.
TEST(Rerank, IncompleteHeadIsAnError) {
  const std::string src = model32();
  for (const char* skip : {"cls.bias", "cls.weight", "cls.output.bias", "cls.output.weight"}) {
    const std::string path = copy_without(src, skip, std::string("no-") + skip + ".gguf");
    try {
      Reranker::load(path);
      ADD_FAILURE() << "no error without " << skip;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string("tensor ") + skip + " is missing"), std::string::npos) << what;
    }
    std::filesystem::remove(path);
  }
}

TEST(Rerank, BadInput) {
  // An embedding model (no cls head) asked to rerank.
  try {
    Reranker::load(embed_model());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a reranker"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(Reranker::is_reranker(embed_model()));
  EXPECT_TRUE(Reranker::is_reranker(model16()));
  EXPECT_FALSE(Reranker::is_reranker("/nonexistent/x.gguf"));
  // A decoder is not a reranker.
  EXPECT_THROW(Reranker::load(fixture("models/tiny-llama-spm-q8_0.gguf")), Error);
  EXPECT_FALSE(Reranker::is_reranker(fixture("models/tiny-llama-spm-q8_0.gguf")));
  // Missing file.
  EXPECT_THROW(Reranker::load("/nonexistent/x.gguf"), Error);
  // The encoder's rank() on a model without the head.
  auto m = BertModel::load(embed_model());
  BertEncoder enc(*m, 1);
  std::vector<float> s;
  EXPECT_THROW(enc.rank({{101, 102}}, {}, s), Error);
  // Invalid UTF-8 names the document's index / the query.
  auto r = Reranker::load(model16());
  try {
    r->score("ok", {"fine", std::string("bad \xff byte")});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("document 1"), std::string::npos) << e.what();
  }
  try {
    r->score(std::string("\xc3"), {"fine"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("query"), std::string::npos) << e.what();
  }
  // An embedding model still embeds; a reranker's pooling 4 falls back.
  EXPECT_NO_THROW(Embedder::load(model16())->embed({"hello"}));
}

}  // namespace
}  // namespace hai::model
