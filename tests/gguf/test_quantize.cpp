// Quantization of model files: bit-identical to llama.cpp's llama-quantize on
// the fixtures, the per-tensor type mixes of every preset, round-trip error
// per type, fallbacks for odd row lengths, and the `hai quantize` CLI.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/quantize.h"
#include "engine/quant/quant.h"

namespace hai::gguf {
namespace {

using hai::test::fixture;
using ::testing::HasSubstr;

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/hai_quant_" + name; }

const std::string kF16 = fixture("models/tiny-llama-spm-f16.gguf");

// The F16 fixture with token_embd / output cut to their first 512 rows, so
// that every preset can be tried quickly. Same names, layers and metadata.
const std::string& small_f16() {
  static std::string path = [] {
    File f = File::open(kF16);
    Writer w;
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const TensorInfo& t : f.tensors()) {
      std::vector<int64_t> shape = t.shape;
      size_t nbytes = t.nbytes;
      if (t.name == "token_embd.weight" || t.name == "output.weight") {
        shape[1] = 512;
        nbytes = row_size(t.type, shape[0]) * 512;
      }
      w.add_tensor(t.name, t.type, shape, t.data, nbytes);
    }
    std::string p = tmp("small_f16.gguf");
    w.write(p);
    return p;
  }();
  return path;
}

std::vector<float> to_f32(const TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const int64_t n_cols = t.shape[0], n_rows = t.n_elements() / n_cols;
  const size_t rb = row_size(t.type, n_cols);
  for (int64_t r = 0; r < n_rows; ++r) dequantize_row(t.type, t.data + r * rb, out.data() + r * n_cols, n_cols);
  return out;
}

double rel_rms_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(a[i]) * a[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

double max_rel_error(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16: return 0.0;  // the input is F16: exact
    case GgmlType::BF16: return 0.005;
    case GgmlType::Q8_0: return 0.01;
    case GgmlType::Q6_K: return 0.02;
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q5_K: return 0.05;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q4_K: return 0.1;
    case GgmlType::Q3_K: return 0.2;
    case GgmlType::Q2_K: return 0.4;
    default: return 0;
  }
}

// What each preset gives the tiny llama (2 layers, 8 heads / 4 KV heads,
// separate output): {default, output, attn_v L0, attn_v L1, ffn_down L0,
// ffn_down L1, attn_output}.
struct Mix {
  GgmlType def, output, v0, v1, down0, down1, attn_out;
};

std::map<std::string, Mix> expected_mixes() {
  using T = GgmlType;
  return {
      {"Q4_0", {T::Q4_0, T::Q6_K, T::Q4_0, T::Q4_0, T::Q4_0, T::Q4_0, T::Q4_0}},
      {"Q4_1", {T::Q4_1, T::Q6_K, T::Q4_1, T::Q4_1, T::Q4_1, T::Q4_1, T::Q4_1}},
      {"Q5_0", {T::Q5_0, T::Q6_K, T::Q5_0, T::Q5_0, T::Q5_0, T::Q5_0, T::Q5_0}},
      {"Q5_1", {T::Q5_1, T::Q6_K, T::Q5_1, T::Q5_1, T::Q5_1, T::Q5_1, T::Q5_1}},
      {"Q2_K", {T::Q2_K, T::Q6_K, T::Q3_K, T::Q3_K, T::Q3_K, T::Q3_K, T::Q3_K}},
      {"Q3_K_S", {T::Q3_K, T::Q6_K, T::Q3_K, T::Q3_K, T::Q3_K, T::Q3_K, T::Q3_K}},
      {"Q3_K_M", {T::Q3_K, T::Q6_K, T::Q5_K, T::Q5_K, T::Q4_K, T::Q4_K, T::Q4_K}},
      {"Q3_K_L", {T::Q3_K, T::Q6_K, T::Q5_K, T::Q5_K, T::Q5_K, T::Q5_K, T::Q5_K}},
      {"Q4_K_S", {T::Q4_K, T::Q6_K, T::Q5_K, T::Q5_K, T::Q4_K, T::Q4_K, T::Q4_K}},
      {"Q4_K_M", {T::Q4_K, T::Q6_K, T::Q4_K, T::Q6_K, T::Q4_K, T::Q6_K, T::Q4_K}},
      {"Q5_K_S", {T::Q5_K, T::Q6_K, T::Q5_K, T::Q5_K, T::Q5_K, T::Q5_K, T::Q5_K}},
      {"Q5_K_M", {T::Q5_K, T::Q6_K, T::Q5_K, T::Q6_K, T::Q5_K, T::Q6_K, T::Q5_K}},
      {"Q6_K", {T::Q6_K, T::Q6_K, T::Q6_K, T::Q6_K, T::Q6_K, T::Q6_K, T::Q6_K}},
      {"Q8_0", {T::Q8_0, T::Q8_0, T::Q8_0, T::Q8_0, T::Q8_0, T::Q8_0, T::Q8_0}},
      {"F16", {T::F16, T::F16, T::F16, T::F16, T::F16, T::F16, T::F16}},
      {"BF16", {T::BF16, T::BF16, T::BF16, T::BF16, T::BF16, T::BF16, T::BF16}},
      {"F32", {T::F32, T::F32, T::F32, T::F32, T::F32, T::F32, T::F32}},
  };
}

TEST(Quantize, EveryPresetTypesMetadataAndError) {
  File in = File::open(small_f16());
  auto mixes = expected_mixes();
  ASSERT_EQ(mixes.size(), quant_presets().size());
  for (const QuantPreset& p : quant_presets()) {
    SCOPED_TRACE(std::string(p.name));
    std::string out = tmp(std::string(p.name) + ".gguf");
    quantize_file(small_f16(), out, p, {2, nullptr});
    File f = File::open(out);
    EXPECT_EQ(f.get_int("general.file_type"), p.ftype);
    EXPECT_EQ(f.get_int("general.quantization_version"), 2);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 32000u);
    ASSERT_EQ(f.tensors().size(), in.tensors().size());

    const Mix m = mixes.at(std::string(p.name));
    for (const TensorInfo& t : f.tensors()) {
      const std::string& n = t.name;
      GgmlType want = m.def;
      if (t.shape.size() == 1) want = GgmlType::F32;
      else if (n == "output.weight") want = m.output;
      else if (n == "blk.0.attn_v.weight") want = m.v0;
      else if (n == "blk.1.attn_v.weight") want = m.v1;
      else if (n == "blk.0.ffn_down.weight") want = m.down0;
      else if (n == "blk.1.ffn_down.weight") want = m.down1;
      else if (n.find("attn_output") != std::string::npos) want = m.attn_out;
      EXPECT_EQ(type_name(t.type), type_name(want)) << n;
      const TensorInfo& src = in.tensor(n);
      EXPECT_EQ(t.shape, src.shape) << n;
      double err = rel_rms_error(to_f32(src), to_f32(t));
      EXPECT_LE(err, max_rel_error(t.type)) << n << " " << type_name(t.type);
      if (t.type != src.type && t.type != GgmlType::F32 && t.type != GgmlType::F16) {
        EXPECT_GT(err, 0.0) << n;
      }
    }
  }
}

// The oracle: llama.cpp's llama-quantize made the fixtures from the F16 one.
// Our files hold the same bytes for every tensor, and the same metadata.
TEST(Quantize, BitIdenticalToLlamaCppFixtures) {
  for (const char* preset : {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K"}) {
    SCOPED_TRACE(preset);
    std::string ref_name = preset;
    for (char& c : ref_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    File ref = File::open(fixture("models/tiny-llama-spm-" + ref_name + ".gguf"));
    std::string out = tmp(std::string("full_") + preset + ".gguf");
    quantize_file(kF16, out, find_quant_preset(preset), {2, nullptr});
    File f = File::open(out);
    ASSERT_EQ(f.tensors().size(), ref.tensors().size());
    for (const TensorInfo& t : f.tensors()) {
      const TensorInfo& r = ref.tensor(t.name);
      ASSERT_EQ(t.type, r.type) << t.name;
      ASSERT_EQ(t.nbytes, r.nbytes) << t.name;
      EXPECT_EQ(std::memcmp(t.data, r.data, t.nbytes), 0) << t.name;
    }
    ASSERT_EQ(f.metadata().size(), ref.metadata().size());
    for (const auto& [k, v] : ref.metadata()) {
      ASSERT_TRUE(f.has(k)) << k;
      EXPECT_EQ(f.get(k).type, v.type) << k;
      const Value& o = f.get(k);
      if (v.is_string()) {
        EXPECT_EQ(o.as_string(), v.as_string()) << k;
      } else if (v.is_int()) {
        EXPECT_EQ(o.as_int(), v.as_int()) << k;
      } else if (v.is_float()) {
        EXPECT_EQ(o.as_float(), v.as_float()) << k;
      } else if (v.is_array()) {
        EXPECT_EQ(o.as_array().size(), v.as_array().size()) << k;
      }
    }
  }
}

TEST(Quantize, TiedEmbeddingIsTreatedAsOutput) {
  File in = File::open(small_f16());
  Writer w;
  for (const auto& [k, v] : in.metadata()) w.set(k, v);
  for (const TensorInfo& t : in.tensors())
    if (t.name != "output.weight") w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
  std::string tied = tmp("tied.gguf");
  w.write(tied);
  File f = File::open(tied);
  auto plan = plan_quantization(f, find_quant_preset("Q4_K_M"));
  for (const TensorPlan& p : plan) {
    if (p.in->name == "token_embd.weight") {
      EXPECT_EQ(p.out_type, GgmlType::Q6_K);
    }
  }
  auto plan0 = plan_quantization(in, find_quant_preset("Q4_K_M"));
  for (const TensorPlan& p : plan0) {
    if (p.in->name == "token_embd.weight") {
      EXPECT_EQ(p.out_type, GgmlType::Q4_K);
    }
  }
}

TEST(Quantize, OddRowLengthsFallBack) {
  std::vector<uint16_t> h(96 * 8, 0x3C00);
  Writer w;
  w.set("general.architecture", Value::make_string("llama"));
  w.set("llama.block_count", Value::make_uint(ValueType::UINT32, 1));
  w.add_tensor("blk.0.attn_q.weight", GgmlType::F16, {96, 8}, h.data(), 96 * 8 * 2);   // 96: not /256
  w.add_tensor("blk.0.attn_k.weight", GgmlType::F16, {48, 4}, h.data(), 48 * 4 * 2);   // 48: not /32
  w.add_tensor("blk.0.ffn_down.weight", GgmlType::F16, {96, 2}, h.data(), 96 * 2 * 2);
  w.add_tensor("output.weight", GgmlType::F16, {96, 8}, h.data(), 96 * 8 * 2);
  std::string in = tmp("odd.gguf");
  w.write(in);
  File f = File::open(in);
  std::map<std::string, GgmlType> got;
  for (const char* preset : {"Q4_K_M", "Q2_K", "Q5_K_S", "Q6_K", "Q4_0"}) {
    got.clear();
    for (const TensorPlan& p : plan_quantization(f, find_quant_preset(preset))) got[p.in->name] = p.out_type;
    SCOPED_TRACE(preset);
    EXPECT_EQ(got["blk.0.attn_k.weight"], GgmlType::F16);  // fits no block
    EXPECT_EQ(got["output.weight"], GgmlType::Q8_0);       // Q6_K needs rows of 256
  }
  auto type_of = [&](const char* preset, const char* name) {
    for (const TensorPlan& p : plan_quantization(f, find_quant_preset(preset)))
      if (p.in->name == name) return p.out_type;
    return GgmlType::F32;
  };
  EXPECT_EQ(type_of("Q4_K_M", "blk.0.attn_q.weight"), GgmlType::Q5_0);
  EXPECT_EQ(type_of("Q5_K_S", "blk.0.attn_q.weight"), GgmlType::Q5_1);
  EXPECT_EQ(type_of("Q6_K", "blk.0.attn_q.weight"), GgmlType::Q8_0);
  EXPECT_EQ(type_of("Q2_K", "blk.0.attn_q.weight"), GgmlType::Q4_0);
  EXPECT_EQ(type_of("Q2_K", "blk.0.ffn_down.weight"), GgmlType::Q4_0);  // Q3_K -> Q4_0
  EXPECT_EQ(type_of("Q4_0", "blk.0.attn_q.weight"), GgmlType::Q4_0);
  // And the file is written and readable.
  quantize_file(in, tmp("odd_q4km.gguf"), find_quant_preset("Q4_K_M"));
  File q = File::open(tmp("odd_q4km.gguf"));
  EXPECT_EQ(q.tensor("blk.0.attn_q.weight").type, GgmlType::Q5_0);
}

TEST(Quantize, RequantizeWarnsAndCopiesSameType) {
  std::vector<std::string> log;
  QuantizeOptions opt;
  opt.log = [&](const std::string& s) { log.push_back(s); };
  quantize_file(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"), tmp("requant.gguf"), find_quant_preset("Q8_0"), opt);
  // Everything already Q8_0 (or F32): copied, no warning.
  for (const auto& l : log) EXPECT_THAT(l, ::testing::Not(HasSubstr("warning")));
  log.clear();
  quantize_file(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"), tmp("requant4.gguf"), find_quant_preset("Q4_0"), opt);
  int warnings = 0;
  for (const auto& l : log) warnings += l.find("warning:") != std::string::npos;
  EXPECT_EQ(warnings, 1);
  File f = File::open(tmp("requant4.gguf"));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::Q4_0);
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::Q6_K);  // tied: the output rule
  EXPECT_EQ(f.tensor("blk.0.attn_q.bias").type, GgmlType::F32);
}

TEST(Quantize, ThreadCountDoesNotChangeTheBytes) {
  quantize_file(small_f16(), tmp("t1.gguf"), find_quant_preset("Q3_K_M"), {1, nullptr});
  quantize_file(small_f16(), tmp("t3.gguf"), find_quant_preset("Q3_K_M"), {3, nullptr});
  EXPECT_EQ(hai::test::read_file(tmp("t1.gguf")), hai::test::read_file(tmp("t3.gguf")));
}

TEST(Quantize, FromBf16AndF32Input) {
  for (const char* src : {"BF16", "F32"}) {
    SCOPED_TRACE(src);
    std::string mid = tmp(std::string("in_") + src + ".gguf"), out = tmp(std::string("from_") + src + ".gguf");
    quantize_file(small_f16(), mid, find_quant_preset(src));
    std::vector<std::string> log;
    QuantizeOptions opt;
    opt.log = [&](const std::string& s) { log.push_back(s); };
    quantize_file(mid, out, find_quant_preset("Q8_0"), opt);
    for (const auto& l : log) EXPECT_EQ(l.find("warning"), std::string::npos) << l;
    File a = File::open(out), b = File::open(small_f16());
    const TensorInfo& q = a.tensor("blk.0.ffn_up.weight");
    EXPECT_EQ(q.type, GgmlType::Q8_0);
    EXPECT_LT(rel_rms_error(to_f32(b.tensor("blk.0.ffn_up.weight")), to_f32(q)), 0.01);
  }
}

TEST(Quantize, PresetNames) {
  EXPECT_EQ(find_quant_preset("q4_k_m").ftype, 15u);
  EXPECT_EQ(find_quant_preset("Q4_K").name, "Q4_K_M");
  EXPECT_EQ(find_quant_preset("bf16").ftype, 32u);
  EXPECT_EQ(find_quant_preset("f32").ftype, 0u);
  try {
    find_quant_preset("Q9_X");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown quantization type 'Q9_X'"));
    EXPECT_THAT(e.what(), HasSubstr("Q4_K_M"));
  }
}

TEST(Quantize, UnsupportedInputType) {
  std::vector<uint8_t> d(132, 0);
  std::vector<float> k(512, 0.5f);
  Writer w;
  w.add_tensor("blk.0.attn_q.weight", GgmlType::IQ2_XXS, {256, 2}, d.data(), d.size());
  w.add_tensor("blk.0.attn_k.weight", GgmlType::F32, {256, 2}, k.data(), 2048);
  std::string in = tmp("iq.gguf");
  w.write(in);
  try {
    quantize_file(in, tmp("iq_out.gguf"), find_quant_preset("Q4_0"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor 'blk.0.attn_q.weight' has type iq2_xxs, which cannot be dequantized"));
  }
}

// ------------------------------------------------------------ CLI

TEST(QuantizeCli, Works) {
  std::string out = tmp("cli_q5km.gguf");
  auto r = hai::test::run_hai("quantize " + small_f16() + " " + out + " q5_k_m --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("wrote " + out));
  EXPECT_THAT(r.err, HasSubstr("blk.1.attn_v.weight f16 -> q6_K"));
  File f = File::open(out);
  EXPECT_EQ(f.get_int("general.file_type"), 17);
}

TEST(QuantizeCli, BadInput) {
  auto t = hai::test::run_hai("quantize " + small_f16() + " " + tmp("x.gguf") + " Q9");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_THAT(t.err, HasSubstr("unknown quantization type 'Q9'"));
  auto m = hai::test::run_hai("quantize /nonexistent/in.gguf " + tmp("x.gguf") + " Q4_0");
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_THAT(m.err, HasSubstr("/nonexistent/in.gguf: cannot open"));
  auto d = hai::test::run_hai("quantize " + small_f16() + " /nonexistent-dir/out.gguf Q8_0 -q");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_THAT(d.err, HasSubstr("/nonexistent-dir/out.gguf: cannot create"));
  auto n = hai::test::run_hai("quantize " + small_f16() + " " + tmp("x.gguf") + " Q4_0 --threads -3");
  EXPECT_NE(n.exit_code, 0);
  auto c = hai::test::run_hai("quantize " + fixture("models/prompts-does-not-exist") + " " + tmp("x.gguf"));
  EXPECT_NE(c.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(tmp("x.gguf")));
}

}  // namespace
}  // namespace hai::gguf
