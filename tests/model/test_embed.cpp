// The Embedder on decoder models (llama, qwen2 fixtures). No reference
// numbers exist for decoder embeddings, so the pooled vectors are checked
// against hidden states computed independently with Context::eval_hidden:
// mean pooling is the mean of the rows, last-token pooling the last row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <thread>
#include <unistd.h>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/embed.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"

namespace hai::model {
namespace {

using hai::test::fixture;

const std::string kLlama = "models/tiny-llama-spm-q8_0.gguf";
const std::string kQwen2 = "models/tiny-qwen2-gpt2-q8_0.gguf";

std::vector<float> hidden_of(const std::string& model_path, const std::vector<int32_t>& tokens) {
  auto m = Model::load(fixture(model_path));
  Context ctx(*m, 512, 2);
  std::vector<float> h;
  ctx.eval_hidden(tokens, h);
  return h;
}

TEST(DecoderEmbed, MeanPoolingIsTheMeanOfHiddenStates) {
  for (const std::string& path : {kLlama, kQwen2}) {
    auto e = Embedder::load(fixture(path));
    EXPECT_EQ(e->pooling(), Pooling::Mean) << path;  // no pooling_type in the fixtures: the fallback
    const std::string text = "The quick brown fox jumps over the lazy dog.";
    const auto tokens = e->tokenizer().encode(text, true, false);
    const auto got = e->embed({text});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].n_tokens, static_cast<int64_t>(tokens.size()));
    EXPECT_FALSE(got[0].truncated);
    const int64_t D = e->dim(), n = static_cast<int64_t>(tokens.size());
    ASSERT_EQ(static_cast<int64_t>(got[0].vector.size()), D);
    const std::vector<float> h = hidden_of(path, tokens);
    ASSERT_EQ(static_cast<int64_t>(h.size()), n * D);
    double max_diff = 0;
    for (int64_t j = 0; j < D; ++j) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += h[t * D + j];
      max_diff = std::max(max_diff, std::fabs(s / n - got[0].vector[j]));
    }
    EXPECT_LT(max_diff, 1e-4) << path;
  }
}

TEST(DecoderEmbed, LastPoolingIsTheLastRow) {
  Embedder::Options o;
  o.pooling = Pooling::Last;
  auto e = Embedder::load(fixture(kLlama), o);
  EXPECT_EQ(e->pooling(), Pooling::Last);
  EXPECT_EQ(e->arch(), "llama");
  EXPECT_EQ(e->dim(), 256);
  const auto tokens = e->tokenizer().encode("hello world", true, false);
  const Embedding v = e->embed_tokens(tokens);
  const std::vector<float> h = hidden_of(kLlama, tokens);
  const int64_t D = 256, n = static_cast<int64_t>(tokens.size());
  EXPECT_TRUE(std::equal(v.vector.begin(), v.vector.end(), h.begin() + (n - 1) * D));
  // The same text again, and after another one, gives the same vector (the
  // cache is cleared between texts).
  EXPECT_EQ(e->embed({"something else entirely", "hello world"})[1].vector, v.vector);
}

TEST(DecoderEmbed, DeterministicAndNormalized) {
  Embedder::Options o;
  o.normalize = true;
  auto e = Embedder::load(fixture(kQwen2), o);
  const std::vector<std::string> texts = {"hello world", "大模型推理引擎", "a"};
  const auto a = e->embed(texts);
  const auto b = e->embed(texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(a[i].vector, b[i].vector) << i;
    double len = 0;
    for (float x : a[i].vector) len += double(x) * x;
    EXPECT_NEAR(std::sqrt(len), 1.0, 1e-5) << i;
  }
  EXPECT_NE(a[0].vector, a[1].vector);
}

TEST(DecoderEmbed, ConcurrentCallsAreSerialized) {
  auto e = Embedder::load(fixture(kLlama));
  const auto want = e->embed({"one text", "another text"});
  std::vector<std::vector<Embedding>> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = e->embed({"one text", "another text"}); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) {
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].vector, want[0].vector);
    EXPECT_EQ(g[1].vector, want[1].vector);
  }
}

TEST(DecoderEmbed, BadInput) {
  auto e = Embedder::load(fixture(kQwen2));
  // gpt2 vocabulary without BOS: an empty text has no tokens at all.
  try {
    e->embed({"fine", ""});
    FAIL() << "empty text accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("text 1"), std::string::npos) << err.what();
  }
  try {
    e->embed({"\xE4\xBD"});  // truncated UTF-8 sequence
    FAIL() << "invalid UTF-8 accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("text 0"), std::string::npos) << err.what();
  }
  EXPECT_THROW(e->embed_tokens({1, 999999}), Error);
  // The llama vocabulary adds BOS: an empty text embeds BOS alone.
  auto l = Embedder::load(fixture(kLlama));
  const auto v = l->embed({""});
  EXPECT_EQ(v[0].n_tokens, 1);
}

// Copies of a fixture with changed metadata.
class DecoderMeta : public ::testing::Test {
 protected:
  std::string write(const std::string& src_path, const std::function<void(gguf::Writer&)>& change) {
    const gguf::File src = gguf::File::open(fixture(src_path));
    gguf::Writer w;
    for (const auto& [k, v] : src.metadata()) w.set(k, v);
    for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
    change(w);
    // ctest runs each test in its own process, several at once: the pid
    // keeps their files apart.
    const std::string path = ::testing::TempDir() + "embed_meta_" + std::to_string(::getpid()) + "_" +
                             std::to_string(counter_++) + ".gguf";
    w.write(path);
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }
  std::vector<std::string> paths_;
  int counter_ = 0;
};

// Qwen3-Embedding style: pooling_type 3 (last) and an EOS appended by the
// vocabulary; the vector is the hidden state of that EOS, and a long text
// keeps its EOS when cut.
TEST_F(DecoderMeta, LastTokenPoolingWithEosFromMetadata) {
  const std::string path = write(kQwen2, [](gguf::Writer& w) {
    w.set("qwen2.pooling_type", gguf::Value::make_uint(gguf::ValueType::UINT32, 3));
    w.set("qwen2.context_length", gguf::Value::make_uint(gguf::ValueType::UINT32, 64));
    w.set("tokenizer.ggml.add_eos_token", gguf::Value::make_bool(true));
  });
  auto e = Embedder::load(path);
  EXPECT_EQ(e->pooling(), Pooling::Last);
  EXPECT_EQ(e->n_ctx(), 64);
  const auto tokens = e->tokenizer().encode("hello world", true, false);
  const int32_t eos = e->tokenizer().vocab().eos;
  ASSERT_GE(eos, 0);
  EXPECT_EQ(tokens.back(), eos);
  const Embedding v = e->embed({"hello world"})[0];
  const std::vector<float> h = hidden_of(kQwen2, tokens);
  const int64_t D = e->dim(), n = static_cast<int64_t>(tokens.size());
  EXPECT_TRUE(std::equal(v.vector.begin(), v.vector.end(), h.begin() + (n - 1) * D));

  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += " word";
  const Embedding cut = e->embed({long_text})[0];
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.n_tokens, 64);
  auto long_tokens = e->tokenizer().encode(long_text, true, false);
  long_tokens.resize(64);
  long_tokens.back() = eos;
  EXPECT_EQ(e->embed_tokens(long_tokens).vector, cut.vector);
}

TEST_F(DecoderMeta, ExplicitPoolingOverridesMetadata) {
  const std::string path = write(kLlama, [](gguf::Writer& w) {
    w.set("llama.pooling_type", gguf::Value::make_uint(gguf::ValueType::UINT32, 3));
  });
  EXPECT_EQ(Embedder::load(path)->pooling(), Pooling::Last);
  Embedder::Options o;
  o.pooling = Pooling::Mean;
  EXPECT_EQ(Embedder::load(path, o)->pooling(), Pooling::Mean);
  // pooling_type 0 (none) falls back to the fallback.
  const std::string none = write(kLlama, [](gguf::Writer& w) {
    w.set("llama.pooling_type", gguf::Value::make_uint(gguf::ValueType::UINT32, 0));
  });
  Embedder::Options cls;
  cls.fallback = Pooling::Cls;
  EXPECT_EQ(Embedder::load(none, cls)->pooling(), Pooling::Cls);
}

TEST_F(DecoderMeta, UnsupportedPoolingType) {
  const std::string path = write(kLlama, [](gguf::Writer& w) {
    w.set("llama.pooling_type", gguf::Value::make_uint(gguf::ValueType::UINT32, 4));
  });
  try {
    Embedder::load(path);
    FAIL() << "pooling_type 4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama.pooling_type"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hai::model
