// The BERT encoder and the Embedder on the tiny bge fixture, against what
// the reference engine (llama.cpp) computed for embedding_prompts.txt:
// our tokens must equal the reference's, and every pooled (CLS, not
// normalized) vector must have cosine >= 0.9999 with the reference's.
// Set HAI_DEBUG_BERT=1 to print the cosine and max |diff| per prompt.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/bert.h"
#include "engine/model/embed.h"
#include "engine/quant/quant.h"

namespace hai::model {
namespace {

using hai::test::fixture;

const std::string kBert = "models/tiny-bert-bge-f16.gguf";

using hai::test::cosine;

nlohmann::json reference() {
  return nlohmann::json::parse(hai::test::read_file(fixture("reference/tiny-bert-bge-f16.embeddings.json")));
}

TEST(Bert, HparamsOfTheFixture) {
  auto m = BertModel::load(fixture(kBert));
  const BertHparams& hp = m->hparams();
  EXPECT_EQ(hp.n_embd, 128);
  EXPECT_EQ(hp.n_layer, 2);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_ff, 512);
  EXPECT_EQ(hp.n_ctx_train, 512);
  EXPECT_EQ(hp.n_vocab, 30522);
  EXPECT_EQ(hp.pooling_type, 2);
  EXPECT_FLOAT_EQ(hp.norm_eps, 1e-12f);
  EXPECT_EQ(m->layers.size(), 2u);
  EXPECT_TRUE(m->token_types);
}

TEST(Bert, MatchesReferenceEmbeddings) {
  const nlohmann::json ref = reference();
  ASSERT_EQ(ref.size(), 4u);
  auto e = Embedder::load(fixture(kBert));
  EXPECT_EQ(e->arch(), "bert");
  EXPECT_EQ(e->dim(), 128);
  EXPECT_EQ(e->n_ctx(), 512);
  EXPECT_EQ(e->pooling(), Pooling::Cls);

  std::vector<std::string> texts;
  for (const auto& r : ref) texts.push_back(r["text"].get<std::string>());
  const std::vector<Embedding> got = e->embed(texts);  // all four in one batch
  ASSERT_EQ(got.size(), ref.size());
  const bool debug = std::getenv("HAI_DEBUG_BERT") != nullptr;
  double min_cos = 1.0, max_diff = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const auto want_tokens = ref[i]["tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(e->tokenizer().encode(texts[i], true, false), want_tokens) << "prompt " << i;
    EXPECT_EQ(got[i].n_tokens, static_cast<int64_t>(want_tokens.size()));
    EXPECT_FALSE(got[i].truncated);
    const auto want = ref[i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(got[i].vector.size(), want.size());
    const double c = cosine(got[i].vector, want);
    double d = 0;
    for (size_t j = 0; j < want.size(); ++j) d = std::max(d, double(std::fabs(got[i].vector[j] - want[j])));
    if (debug) std::printf("prompt %zu: cosine %.9f max|diff| %.3g\n", i, c, d);
    EXPECT_GE(c, 0.9999) << "prompt " << i << ": " << texts[i];
    min_cos = std::min(min_cos, c);
    max_diff = std::max(max_diff, d);
  }
  std::printf("tiny-bert-bge-f16: min cosine %.9f, max |diff| %.3g\n", min_cos, max_diff);
}

// A text's vector does not depend on the batch it is embedded in.
TEST(Bert, BatchEqualsOneByOne) {
  auto e = Embedder::load(fixture(kBert));
  const std::vector<std::string> texts = {"hello world", "大模型推理引擎的主要优化方向", "", "a b c d e f g"};
  const auto batch = e->embed(texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto one = e->embed({texts[i]});
    EXPECT_EQ(one[0].vector, batch[i].vector) << "text " << i;
  }
  // The empty text embeds [CLS] [SEP].
  EXPECT_EQ(batch[2].n_tokens, 2);
  // Encoder directly: same hidden states for a text alone and in a batch.
  auto m = BertModel::load(fixture(kBert));
  BertEncoder enc(*m, 2);
  std::vector<float> h1, h2;
  enc.encode({{101, 7592, 2088, 102}}, h1);
  enc.encode({{101, 2003, 102}, {101, 7592, 2088, 102}}, h2);
  ASSERT_EQ(h1.size(), 4u * 128);
  ASSERT_EQ(h2.size(), 7u * 128);
  EXPECT_TRUE(std::equal(h1.begin(), h1.end(), h2.begin() + 3 * 128));
}

TEST(Bert, ThreadCountDoesNotChangeResults) {
  Embedder::Options o1, o4;
  o1.n_threads = 1;
  o4.n_threads = 4;
  auto a = Embedder::load(fixture(kBert), o1)->embed({"What is retrieval-augmented generation?"});
  auto b = Embedder::load(fixture(kBert), o4)->embed({"What is retrieval-augmented generation?"});
  EXPECT_EQ(a[0].vector, b[0].vector);
}

TEST(Bert, PoolingAndNormalizeOptions) {
  auto m = BertModel::load(fixture(kBert));
  BertEncoder enc(*m, 2);
  auto e_cls = Embedder::load(fixture(kBert));
  const std::vector<int32_t> toks = e_cls->tokenizer().encode("hello world", true, false);
  std::vector<float> h;
  enc.encode({toks}, h);
  const int64_t n = static_cast<int64_t>(toks.size()), D = 128;

  Embedder::Options mean;
  mean.pooling = Pooling::Mean;
  auto em = Embedder::load(fixture(kBert), mean);
  EXPECT_EQ(em->pooling(), Pooling::Mean);
  const Embedding vm = em->embed_tokens(toks);
  for (int64_t j = 0; j < D; ++j) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t) s += h[t * D + j];
    EXPECT_NEAR(vm.vector[j], s / n, 1e-5) << j;
  }
  Embedder::Options last;
  last.pooling = Pooling::Last;
  const Embedding vl = Embedder::load(fixture(kBert), last)->embed_tokens(toks);
  EXPECT_TRUE(std::equal(vl.vector.begin(), vl.vector.end(), h.begin() + (n - 1) * D));
  const Embedding vc = e_cls->embed_tokens(toks);
  EXPECT_TRUE(std::equal(vc.vector.begin(), vc.vector.end(), h.begin()));

  Embedder::Options norm;
  norm.normalize = true;
  const Embedding vn = Embedder::load(fixture(kBert), norm)->embed_tokens(toks);
  double len = 0;
  for (float x : vn.vector) len += double(x) * x;
  EXPECT_NEAR(std::sqrt(len), 1.0, 1e-5);
  EXPECT_GT(cosine(vn.vector, vc.vector), 0.999999);
}

TEST(Bert, LongTextIsTruncatedKeepingSep) {
  auto e = Embedder::load(fixture(kBert));
  std::string text;
  for (int i = 0; i < 700; ++i) text += "word ";
  const auto v = e->embed({text});
  EXPECT_TRUE(v[0].truncated);
  EXPECT_EQ(v[0].n_tokens, 512);
  // The same as embedding [CLS] word x 510 [SEP] directly.
  std::vector<int32_t> toks = e->tokenizer().encode(text, true, false);
  ASSERT_GT(toks.size(), 512u);
  const int32_t sep = toks.back();
  toks.resize(512);
  toks.back() = sep;
  const Embedding direct = e->embed_tokens(toks);
  EXPECT_FALSE(direct.truncated);
  EXPECT_EQ(direct.vector, v[0].vector);
  // Tokens given directly are cut to the first n_ctx.
  std::vector<int32_t> many(600, 2773);
  const Embedding cut = e->embed_tokens(many);
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.n_tokens, 512);
}

TEST(Bert, BadInput) {
  auto e = Embedder::load(fixture(kBert));
  try {
    e->embed({"fine", std::string("bad \xC3\x28 utf8")});
    FAIL() << "invalid UTF-8 accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("text 1"), std::string::npos) << err.what();
  }
  EXPECT_THROW(e->embed_tokens({}), Error);
  EXPECT_THROW(e->embed_tokens({101, 40000, 102}), Error);
  EXPECT_THROW(e->embed_tokens({101, -1, 102}), Error);
  EXPECT_THROW(Embedder::load("/nonexistent/model.gguf"), Error);
  auto m = BertModel::load(fixture(kBert));
  BertEncoder enc(*m, 1);
  std::vector<float> h;
  EXPECT_THROW(enc.encode({{}}, h), Error);
  EXPECT_THROW(enc.encode({std::vector<int32_t>(513, 101)}, h), Error);
  EXPECT_THROW(BertEncoder(*m, 0), Error);
}

// A copy of the fixture with one change, written by the GGUF writer (broken
// files, or other weight types).
class BertCopy : public ::testing::Test {
 protected:
  // `tensor`, if given, may add a tensor its own way (returning true).
  using TensorHook = std::function<bool(gguf::Writer&, const gguf::TensorInfo&)>;
  std::string write(const std::function<void(gguf::Writer&, const gguf::File&)>& change,
                    const std::string& skip_tensor = "", const TensorHook& tensor = nullptr) {
    const gguf::File src = gguf::File::open(fixture(kBert));
    gguf::Writer w;
    for (const auto& [k, v] : src.metadata()) w.set(k, v);
    for (const auto& t : src.tensors())
      if (t.name != skip_tensor && !(tensor && tensor(w, t))) w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
    change(w, src);
    const std::string path = ::testing::TempDir() + "bert_copy_" + std::to_string(::getpid()) + "_" +
                             std::to_string(counter_++) + ".gguf";
    w.write(path);
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }
  std::string expect_error(const std::string& path, const std::string& needle) {
    try {
      Embedder::load(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error for " << needle;
    return "";
  }
  std::vector<std::string> paths_;
  int counter_ = 0;
};

TEST_F(BertCopy, MissingTensor) {
  expect_error(write([](gguf::Writer&, const gguf::File&) {}, "blk.1.ffn_down.bias"), "blk.1.ffn_down.bias");
}

TEST_F(BertCopy, MissingKey) {
  expect_error(write([](gguf::Writer& w, const gguf::File&) { w.remove("bert.attention.head_count"); }),
               "bert.attention.head_count");
  expect_error(write([](gguf::Writer& w, const gguf::File&) { w.remove("bert.attention.layer_norm_epsilon"); }),
               "layer_norm_epsilon");
}

TEST_F(BertCopy, WrongShapeFromMetadata) {
  // 8 heads still divide 128, but a feed-forward of 256 contradicts ffn_up.
  expect_error(write([](gguf::Writer& w, const gguf::File&) {
                 w.set("bert.feed_forward_length", gguf::Value::make_uint(gguf::ValueType::UINT32, 256));
               }),
               "blk.0.ffn_up.weight");
  expect_error(write([](gguf::Writer& w, const gguf::File&) {
                 w.set("bert.attention.head_count", gguf::Value::make_uint(gguf::ValueType::UINT32, 3));
               }),
               "head_count");
}

TEST_F(BertCopy, AbsurdLayerCount) {
  expect_error(write([](gguf::Writer& w, const gguf::File&) {
                 w.set("bert.block_count", gguf::Value::make_uint(gguf::ValueType::UINT32, 4000000000u));
               }),
               "bert.block_count");
  expect_error(write([](gguf::Writer& w, const gguf::File&) {
                 w.set("bert.block_count", gguf::Value::make_uint(gguf::ValueType::UINT32, 3));
               }),
               "blk.2.");
}

TEST_F(BertCopy, UnsupportedPoolingAndCausal) {
  expect_error(write([](gguf::Writer& w, const gguf::File&) { w.set("bert.pooling_type", gguf::Value::make_uint(gguf::ValueType::UINT32, 5)); }),
               "bert.pooling_type");
  expect_error(write([](gguf::Writer& w, const gguf::File&) { w.set("bert.attention.causal", gguf::Value::make_bool(true)); }),
               "causal");
}

TEST_F(BertCopy, UnknownArchitecture) {
  expect_error(write([](gguf::Writer& w, const gguf::File&) {
                 w.set("general.architecture", gguf::Value::make_string("t5"));
               }),
               "'t5'");
}

// The matrices quantized to Q8_0 (as `hai quantize` would): the forward pass
// takes the quantized matmul path and stays close to the F16 reference.
TEST_F(BertCopy, Q8_0WeightsStayClose) {
  std::vector<std::vector<uint8_t>> keep;  // alive until write() returns
  const std::string q8 = write([](gguf::Writer&, const gguf::File&) {}, "",
                               [&](gguf::Writer& w, const gguf::TensorInfo& t) {
    if (t.type != GgmlType::F16 || t.name == "position_embd.weight") return false;
    const int64_t n_cols = t.shape[0], n_rows = t.shape[1];
    std::vector<float> row(static_cast<size_t>(n_cols));
    std::vector<uint8_t> q(row_size(GgmlType::Q8_0, n_cols) * static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) {
      dequantize_row(GgmlType::F16, t.data + r * row_size(GgmlType::F16, n_cols), row.data(), n_cols);
      quantize_row(GgmlType::Q8_0, row.data(), q.data() + r * row_size(GgmlType::Q8_0, n_cols), n_cols);
    }
    keep.push_back(std::move(q));
    w.add_tensor(t.name, GgmlType::Q8_0, t.shape, keep.back().data(), keep.back().size());
    return true;
  });

  auto m = BertModel::load(q8);
  EXPECT_EQ(m->layers[0].wq.type, GgmlType::Q8_0);
  EXPECT_EQ(m->token_embd.type, GgmlType::Q8_0);
  const nlohmann::json ref = reference();
  auto e = Embedder::load(q8);
  for (const auto& r : ref) {
    const auto v = e->embed({r["text"].get<std::string>()})[0].vector;
    EXPECT_GE(cosine(v, r["embedding"].get<std::vector<float>>()), 0.999) << r["text"];
  }
}

TEST(BertOps, LayerNormAndGelu) {
  const float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 1, 2, 1};
  const float b[4] = {0, 0, 0, 1};
  float y[4];
  bert_layer_norm(y, x, w, b, 4, 0.0f);
  // mean 2.5, var 1.25
  const float s = 1.0f / std::sqrt(1.25f);
  EXPECT_NEAR(y[0], -1.5f * s, 1e-6);
  EXPECT_NEAR(y[2], 2 * 0.5f * s, 1e-6);
  EXPECT_NEAR(y[3], 1.5f * s + 1, 1e-6);
  EXPECT_EQ(bert_gelu(-20.0f), 0.0f);
  EXPECT_EQ(bert_gelu(12.5f), 12.5f);
  EXPECT_EQ(bert_gelu(0.0f), 0.0f);
  EXPECT_NEAR(bert_gelu(1.0f), 0.8412f, 1e-3);  // tanh form of GELU(1)
  EXPECT_NEAR(bert_gelu(-1.0f), -0.1588f, 1e-3);
}

}  // namespace
}  // namespace hai::model
