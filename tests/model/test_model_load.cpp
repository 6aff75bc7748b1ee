// Loading a model: every broken file is a hai::Error that names the problem.
// The broken models are modified copies of a fixture, written with
// gguf::Writer into a temporary directory.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"

namespace hai::model {
namespace {

using hai::test::fixture;

const std::string kModel = "models/tiny-llama-spm-q8_0.gguf";

std::filesystem::path temp_dir() {
  return std::filesystem::temp_directory_path() / ("hai_model_test_" + std::to_string(::getpid()));
}

// Removes the temporary directory when the test program exits.
struct TempDirCleanup {
  ~TempDirCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir(), ec);
  }
} cleanup;

std::string temp_path(const std::string& name) {
  std::filesystem::create_directories(temp_dir());
  return (temp_dir() / name).string();
}

// Writes a copy of the fixture with `edit_kv` applied to the writer after the
// metadata is copied, and `edit_tensor` deciding each tensor (return false to
// drop it; it may change name/type/shape/data).
struct TensorEdit {
  std::string name;
  GgmlType type;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};
std::string write_copy(const std::string& name, const std::function<void(gguf::Writer&)>& edit_kv,
                       const std::function<bool(TensorEdit&)>& edit_tensor, const std::string& from = kModel,
                       const std::function<void(gguf::Writer&)>& add_tensors = nullptr) {
  gguf::File src = gguf::File::open(fixture(from));
  gguf::Writer w;
  for (const auto& [k, v] : src.metadata()) w.set(k, v);
  if (edit_kv) edit_kv(w);
  for (const auto& t : src.tensors()) {
    TensorEdit e{t.name, t.type, t.shape, t.data, t.nbytes};
    if (edit_tensor && !edit_tensor(e)) continue;
    w.add_tensor(e.name, e.type, e.shape, e.data, e.nbytes);
  }
  if (add_tensors) add_tensors(w);
  const std::string path = temp_path(name);
  w.write(path);
  return path;
}

std::string load_error(const std::string& path) {
  try {
    Model::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelLoad, FixtureLoadsWithHyperparameters) {
  auto m = Model::load(fixture(kModel));
  const Hparams& hp = m->hparams();
  EXPECT_EQ(hp.arch_name, "llama");
  EXPECT_EQ(hp.n_vocab, 32000);
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_layer, 2);
  EXPECT_EQ(hp.n_head, 8);
  EXPECT_EQ(hp.n_head_kv, 4);
  EXPECT_EQ(hp.head_dim_k, 32);
  EXPECT_EQ(hp.n_ff, 512);
  EXPECT_EQ(hp.rope_layout, RopeLayout::kNormal);
  EXPECT_NE(m->output.data, m->token_embd.data);  // separate output matrix

  auto q = Model::load(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  EXPECT_EQ(q->hparams().rope_layout, RopeLayout::kNeox);
  EXPECT_EQ(q->output.data, q->token_embd.data);  // tied
  EXPECT_TRUE(q->layers[0].bq);
  EXPECT_FLOAT_EQ(q->hparams().rope_freq_base, 1e6f);
}

TEST(ModelLoad, ExpectedTensorsListsEveryWeight) {
  auto m = Model::load(fixture(kModel));
  const auto specs = expected_tensors(m->hparams());
  int required = 0;
  for (const auto& s : specs) required += s.required;
  EXPECT_EQ(required, 2 + 2 * 9);  // token_embd, output_norm, 9 per layer
  for (const auto& s : specs) {
    if (s.name == "blk.1.attn_k.weight") {
      EXPECT_EQ(s.shape, (std::vector<int64_t>{256, 128}));
    }
  }
}

TEST(ModelLoad, UnknownArchitecture) {
  auto path = write_copy("arch.gguf", [](gguf::Writer& w) {
    w.set("general.architecture", gguf::Value::make_string("gpt-j"));
  }, nullptr);
  const std::string err = load_error(path);
  EXPECT_NE(err.find("unknown architecture 'gpt-j'"), std::string::npos) << err;
}

TEST(ModelLoad, MissingTensor) {
  auto path = write_copy("missing.gguf", nullptr, [](TensorEdit& e) { return e.name != "blk.1.ffn_up.weight"; });
  const std::string err = load_error(path);
  EXPECT_NE(err.find("missing tensor blk.1.ffn_up.weight"), std::string::npos) << err;
}

TEST(ModelLoad, WrongShape) {
  auto path = write_copy("shape.gguf", nullptr, [](TensorEdit& e) {
    if (e.name == "blk.0.attn_q.weight") {
      e.shape = {256, 128};
      e.nbytes /= 2;
    }
    return true;
  });
  const std::string err = load_error(path);
  EXPECT_NE(err.find("blk.0.attn_q.weight has shape [256, 128], expected [256, 256]"), std::string::npos) << err;
}

TEST(ModelLoad, UnsupportedType) {
  static std::vector<uint8_t> zeros(row_size(GgmlType::IQ2_XXS, 256) * 256);
  auto path = write_copy("type.gguf", nullptr, [](TensorEdit& e) {
    if (e.name == "blk.0.attn_q.weight") {
      e.type = GgmlType::IQ2_XXS;
      e.data = zeros.data();
      e.nbytes = zeros.size();
    }
    return true;
  });
  const std::string err = load_error(path);
  EXPECT_NE(err.find("blk.0.attn_q.weight has type iq2_xxs"), std::string::npos) << err;
}

TEST(ModelLoad, NormWeightMustBeF32) {
  static std::vector<uint16_t> half(256, 0x3c00);
  auto path = write_copy("normtype.gguf", nullptr, [](TensorEdit& e) {
    if (e.name == "output_norm.weight") {
      e.type = GgmlType::F16;
      e.data = half.data();
      e.nbytes = half.size() * 2;
    }
    return true;
  });
  const std::string err = load_error(path);
  EXPECT_NE(err.find("output_norm.weight has type f16, expected f32"), std::string::npos) << err;
}

TEST(ModelLoad, MissingHyperparameter) {
  auto path = write_copy("key.gguf", [](gguf::Writer& w) { w.remove("llama.block_count"); }, nullptr);
  const std::string err = load_error(path);
  EXPECT_NE(err.find("llama.block_count"), std::string::npos) << err;
}

TEST(ModelLoad, HeadCountNotDividingKvHeads) {
  auto path = write_copy("heads.gguf", [](gguf::Writer& w) {
    w.set("llama.attention.head_count_kv", gguf::Value::make_uint(gguf::ValueType::UINT32, 3));
  }, nullptr);
  const std::string err = load_error(path);
  EXPECT_NE(err.find("head_count_kv"), std::string::npos) << err;
}

TEST(ModelLoad, UnsupportedRopeScaling) {
  auto path = write_copy("rope.gguf", [](gguf::Writer& w) {
    w.set("llama.rope.scaling.type", gguf::Value::make_string("longrope"));
  }, nullptr);
  const std::string err = load_error(path);
  EXPECT_NE(err.find("rope.scaling.type 'longrope'"), std::string::npos) << err;
}

// A qwen3 model made from the qwen2 fixture: keys renamed, biases dropped,
// per-head Q/K norm weights added. It loads, runs, and a missing norm is named.
std::string make_qwen3(const std::string& name, bool with_k_norm) {
  static std::vector<float> ones(64, 1.0f), halves(64, 0.5f);
  gguf::File src = gguf::File::open(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  return write_copy(
      name,
      [&](gguf::Writer& w) {
        for (const auto& [k, v] : src.metadata()) {
          if (k.rfind("qwen2.", 0) == 0) {
            w.remove(k);
            w.set("qwen3." + k.substr(6), v);
          }
        }
        w.set("general.architecture", gguf::Value::make_string("qwen3"));
      },
      [](TensorEdit& e) { return e.name.find(".bias") == std::string::npos; }, "models/tiny-qwen2-gpt2-q8_0.gguf",
      [&](gguf::Writer& w) {
        for (int l = 0; l < 2; ++l) {
          const std::string b = "blk." + std::to_string(l) + ".";
          w.add_tensor(b + "attn_q_norm.weight", GgmlType::F32, {64}, ones.data(), 256);
          if (with_k_norm) w.add_tensor(b + "attn_k_norm.weight", GgmlType::F32, {64}, halves.data(), 256);
        }
      });
}

TEST(ModelLoad, Qwen3RunsWithQkNorm) {
  auto m = Model::load(make_qwen3("qwen3.gguf", true));
  EXPECT_EQ(m->hparams().arch, Arch::kQwen3);
  EXPECT_EQ(m->hparams().rope_layout, RopeLayout::kNeox);
  ASSERT_TRUE(m->layers[1].q_norm);
  ASSERT_TRUE(m->layers[1].k_norm);
  EXPECT_FALSE(m->layers[0].bq);
  const std::vector<int32_t> tokens = {464, 3139, 286, 4881, 318};
  Context batch(*m, 16, 2), single(*m, 16, 1);
  std::vector<float> all, one;
  batch.eval(tokens, true, all);
  for (float v : all) ASSERT_TRUE(std::isfinite(v));
  for (size_t i = 0; i < tokens.size(); ++i) {
    single.eval({tokens[i]}, false, one);
    for (int64_t j = 0; j < m->hparams().n_vocab; ++j) ASSERT_EQ(one[j], all[i * m->hparams().n_vocab + j]);
  }
  // The norm changes the result: the same weights as qwen2 without it differ.
  auto q2 = Model::load(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  Context c2(*q2, 16, 1);
  std::vector<float> l2;
  c2.eval(tokens, false, l2);
  EXPECT_NE(l2, one);

  const std::string err = load_error(make_qwen3("qwen3_nok.gguf", false));
  EXPECT_NE(err.find("missing tensor blk.0.attn_k_norm.weight"), std::string::npos) << err;
}

TEST(ModelLoad, MissingFileAndNotGguf) {
  EXPECT_THROW(Model::load("/nonexistent/model.gguf"), Error);
  const std::string path = temp_path("text.gguf");
  std::ofstream(path) << "this is not a GGUF file, just some text that is long enough to have a header\n";
  EXPECT_THROW(Model::load(path), Error);
}

TEST(Context, RejectsBadBatches) {
  auto m = Model::load(fixture(kModel));
  Context ctx(*m, 8, 1);
  std::vector<float> logits;
  EXPECT_THROW(ctx.eval({}, false, logits), Error);                       // empty prompt
  EXPECT_THROW(ctx.eval({1, 32000}, false, logits), Error);               // id outside the vocabulary
  EXPECT_THROW(ctx.eval({1, -5}, false, logits), Error);                  // negative id
  EXPECT_THROW(ctx.eval(std::vector<int32_t>(9, 1), false, logits), Error);  // longer than the context
  EXPECT_EQ(ctx.n_past(), 0);
  ctx.eval(std::vector<int32_t>(8, 1), false, logits);  // exactly fits
  EXPECT_EQ(ctx.n_past(), 8);
  EXPECT_THROW(ctx.eval({1}, false, logits), Error);  // the context is full
  EXPECT_THROW(Context(*m, 0, 1), Error);
  EXPECT_THROW(Context(*m, 8, 0), Error);
}

// Prefill in one batch and token-by-token decoding compute the same numbers.
TEST(Context, BatchEqualsTokenByToken) {
  for (const char* name : {"models/tiny-llama-spm-f16.gguf", "models/tiny-qwen2-gpt2-q4_k_m.gguf"}) {
    auto m = Model::load(fixture(name));
    const std::vector<int32_t> tokens = {1, 450, 7483, 310, 3444, 338, 29871, 30257, 31382};
    Context batch(*m, 64, 2), single(*m, 64, 1);
    std::vector<float> all, one;
    batch.eval(tokens, true, all);
    const int64_t V = m->hparams().n_vocab;
    for (size_t i = 0; i < tokens.size(); ++i) {
      single.eval({tokens[i]}, false, one);
      for (int64_t j = 0; j < V; ++j) ASSERT_EQ(one[j], all[i * V + j]) << name << " position " << i;
    }
  }
}

}  // namespace
}  // namespace hai::model
