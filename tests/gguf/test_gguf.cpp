// gguf::File on the real fixtures, on hand-written v2 files, and on every
// hostile header / metadata / tensor-table case we know of.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "gguf/gguf_bytes.h"

namespace hai::gguf {
namespace {

using hai::test::Bytes;
using hai::test::fixture;
using ::testing::HasSubstr;

// The message of the hai::Error that parsing `b` throws ("" if it parses).
std::string parse_error(const Bytes& b) {
  try {
    File::parse(b.data(), b.size(), "t.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ------------------------------------------------------------ fixtures

TEST(GgufFixtures, EveryModelOpens) {
  for (const auto& e : std::filesystem::directory_iterator(fixture("models"))) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().string());
    File f = File::open(e.path().string());
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_FALSE(f.tensors().empty());
    std::string arch = f.get_string("general.architecture");
    EXPECT_TRUE(arch == "llama" || arch == "qwen2" || arch == "bert") << arch;
    int64_t n_embd = f.get_int(arch + ".embedding_length");
    const TensorInfo& emb = f.tensor("token_embd.weight");
    ASSERT_EQ(emb.shape.size(), 2u);
    EXPECT_EQ(emb.shape[0], n_embd);
    EXPECT_EQ(emb.shape[1], static_cast<int64_t>(f.get_string_array("tokenizer.ggml.tokens").size()));
    for (const TensorInfo& t : f.tensors()) {
      EXPECT_EQ(t.offset % 32, 0u) << t.name;
      EXPECT_EQ(t.nbytes, row_size(t.type, t.shape[0]) * (t.n_elements() / t.shape[0])) << t.name;
      EXPECT_NE(t.data, nullptr);
      EXPECT_LE(f.data_offset() + t.offset + t.nbytes, f.file_size()) << t.name;
    }
  }
}

TEST(GgufFixtures, TinyLlamaF16Contents) {
  File f = File::open(fixture("models/tiny-llama-spm-f16.gguf"));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_EQ(f.get_int("general.file_type"), 1);
  EXPECT_TRUE(f.get_bool_or("tokenizer.ggml.add_bos_token", false));
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type")[1], 3);
  EXPECT_EQ(f.tensors().size(), 2u + 1 + 2 * 9);
  const TensorInfo& q = f.tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, GgmlType::F16);
  EXPECT_EQ(q.shape, (std::vector<int64_t>{256, 256}));
  EXPECT_EQ(q.nbytes, 256u * 256 * 2);
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").shape, (std::vector<int64_t>{512, 256}));
  EXPECT_EQ(f.tensor("output_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_THROW(f.tensor("nope"), Error);
  // Typed getters name the key on a type mismatch or a missing key.
  try {
    f.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("general.architecture"));
  }
  try {
    f.get_string("no.such.key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no.such.key"));
  }
  EXPECT_EQ(f.get_int_or("no.such.key", 7), 7);
  EXPECT_EQ(f.get_string_or("no.such.key", "x"), "x");
}

TEST(GgufFixtures, QuantizedTypes) {
  File q4km = File::open(fixture("models/tiny-llama-spm-q4_k_m.gguf"));
  EXPECT_EQ(q4km.tensor("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(q4km.tensor("blk.0.attn_q.weight").type, GgmlType::Q4_K);
  File qwen = File::open(fixture("models/tiny-qwen2-gpt2-q8_0.gguf"));
  EXPECT_EQ(qwen.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(qwen.find_tensor("output.weight"), nullptr);  // tied
  EXPECT_EQ(qwen.tensor("blk.0.attn_q.bias").type, GgmlType::F32);
  EXPECT_EQ(qwen.tensor("blk.0.attn_q.weight").type, GgmlType::Q8_0);
}

TEST(GgufFixtures, EveryVocabularyOpens) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(fixture("tokenizer"))) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().string());
    File f = File::open(e.path().string());
    ++n;
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_FALSE(f.get_string("tokenizer.ggml.model").empty());
    auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    EXPECT_GT(tokens.size(), 1000u);
    EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), tokens.size());
  }
  EXPECT_EQ(n, 10);
}

TEST(GgufOpen, MissingFileEmptyFileAndDirectory) {
  try {
    File::open("/nonexistent/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/x.gguf"));
    EXPECT_THAT(e.what(), HasSubstr("cannot open"));
  }
  std::string empty = ::testing::TempDir() + "/empty.gguf";
  { std::ofstream(empty).flush(); }
  try {
    File::open(empty);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("empty file"));
  }
  try {
    File::open(::testing::TempDir());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a regular file"));
  }
}

// ------------------------------------------------------------ v2 and valid hand-made files

// A v2/v3 file: two kvs (incl. an array of strings), two tensors, alignment 32.
Bytes small_file(uint32_t version) {
  Bytes b;
  b.header(version, 2, 3);
  b.kv_str("general.architecture", "llama");
  b.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(3).str("a").str("").str("ccc");
  b.kv_u32("x.count", 7);
  b.tensor("w", {4, 2}, 0, 0);   // f32, 32 bytes
  b.tensor("h", {32}, 8, 32);    // q8_0, 34 bytes
  b.pad_to(32);
  for (int i = 0; i < 8; ++i) b.f32(static_cast<float>(i));
  b.zeros(34);
  return b;
}

TEST(GgufParse, Version2And3) {
  for (uint32_t v : {2u, 3u}) {
    Bytes b = small_file(v);
    File f = File::parse(b.data(), b.size(), "small.gguf");
    EXPECT_EQ(f.version(), v);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(f.get_int("x.count"), 7);
    ASSERT_EQ(f.tensors().size(), 2u);
    const TensorInfo& w = f.tensor("w");
    EXPECT_EQ(w.shape, (std::vector<int64_t>{4, 2}));
    EXPECT_EQ(w.nbytes, 32u);
    EXPECT_EQ(w.data, b.data() + f.data_offset());
    float x;
    std::memcpy(&x, w.data + 4 * 5, 4);
    EXPECT_EQ(x, 5.0f);
    EXPECT_EQ(f.tensor("h").type, GgmlType::Q8_0);
    EXPECT_EQ(f.tensor("h").nbytes, 34u);
    EXPECT_EQ(f.data_offset() % 32, 0u);
  }
}

TEST(GgufParse, MetadataOrderKept) {
  Bytes b = small_file(3);
  File f = File::parse(b.data(), b.size());
  ASSERT_EQ(f.metadata().size(), 3u);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");
  EXPECT_EQ(f.metadata()[2].first, "x.count");
}

// Tensors in any order and with gaps are fine; only overlap is refused.
TEST(GgufParse, OutOfOrderTensorsWithGapAccepted) {
  Bytes b;
  b.header(3, 2, 0);
  b.tensor("late", {8}, 0, 64);
  b.tensor("early", {8}, 0, 0);
  b.pad_to(32).zeros(96);
  File f = File::parse(b.data(), b.size());
  EXPECT_EQ(f.tensor("late").offset, 64u);
}

// ------------------------------------------------------------ hostile headers

TEST(GgufHostile, TooShortAndBadMagic) {
  Bytes b;
  b.raw("GG");
  EXPECT_THAT(parse_error(b), HasSubstr("too short"));
  Bytes m;
  m.raw("GGML").u32(3).u64(0).u64(0);
  EXPECT_THAT(parse_error(m), HasSubstr("bad magic"));
  EXPECT_THAT(parse_error(m), HasSubstr("t.gguf"));
}

TEST(GgufHostile, UnsupportedVersions) {
  Bytes v1;
  v1.header(1, 0, 0);
  EXPECT_THAT(parse_error(v1), HasSubstr("unsupported GGUF version 1"));
  Bytes v99;
  v99.header(99, 0, 0);
  EXPECT_THAT(parse_error(v99), HasSubstr("unsupported GGUF version 99"));
  Bytes be;
  be.header(0x03000000, 0, 0);
  EXPECT_THAT(parse_error(be), HasSubstr("big-endian"));
}

TEST(GgufHostile, HugeCounts) {
  Bytes kv;
  kv.header(3, 0, uint64_t{1} << 60);
  EXPECT_THAT(parse_error(kv), HasSubstr("metadata count 1152921504606846976 cannot fit"));
  Bytes t;
  t.header(3, uint64_t{1} << 60, 0);
  EXPECT_THAT(parse_error(t), HasSubstr("tensor count 1152921504606846976 cannot fit"));
}

TEST(GgufHostile, HugeStringLength) {
  Bytes b;
  b.header(3, 0, 1).u64(~uint64_t{0}).zeros(16);
  EXPECT_THAT(parse_error(b), HasSubstr("metadata key at offset 24 has length 18446744073709551615"));
  Bytes v;
  v.header(3, 0, 1).str("k").u32(8).u64(uint64_t{1} << 40).raw("abc");
  EXPECT_THAT(parse_error(v), HasSubstr("string value at offset"));
}

TEST(GgufHostile, HugeArrayCount) {
  Bytes b;
  b.header(3, 0, 1).str("arr").u32(9).u32(6).u64(uint64_t{1} << 61).zeros(64);
  std::string e = parse_error(b);
  EXPECT_THAT(e, HasSubstr("key 'arr'"));
  EXPECT_THAT(e, HasSubstr("cannot fit"));
  // Array of strings: each needs 8 bytes at least.
  Bytes s;
  s.header(3, 0, 1).str("arr").u32(9).u32(8).u64(5).zeros(32);
  EXPECT_THAT(parse_error(s), HasSubstr("array of 5 string values cannot fit"));
}

// Many tiny elements: the file is small but parsed values are ~50x larger.
TEST(GgufHostile, TooManyArrayElements) {
  Bytes b;
  b.header(3, 0, 2).str("a").u32(9).u32(0).u64(kMaxArrayElements / 2).zeros(kMaxArrayElements / 2);
  b.str("b").u32(9).u32(0).u64(kMaxArrayElements / 2 + 1).zeros(kMaxArrayElements / 2 + 1);
  EXPECT_THAT(parse_error(b), HasSubstr("key 'b': more than 8388608 metadata array elements"));
}

TEST(GgufHostile, NestedArrayDepthBomb) {
  Bytes b;
  b.header(3, 0, 1).str("deep").u32(9);
  for (int i = 0; i < 1000; ++i) b.u32(9).u64(1);
  b.u32(4).u64(0);
  EXPECT_THAT(parse_error(b), HasSubstr("nested deeper than"));
  // Depth within the limit parses.
  Bytes ok;
  ok.header(3, 0, 1).str("nest").u32(9);
  ok.u32(9).u64(2);          // outer: 2 arrays
  ok.u32(4).u64(2).u32(1).u32(2);  // [1,2]
  ok.u32(4).u64(0);          // []
  File f = File::parse(ok.data(), ok.size());
  const auto& outer = f.get("nest").as_array();
  ASSERT_EQ(outer.size(), 2u);
  EXPECT_EQ(outer[0].as_array()[1].as_int(), 2);
  EXPECT_TRUE(outer[1].as_array().empty());
}

TEST(GgufHostile, BadValueTypes) {
  Bytes b;
  b.header(3, 0, 1).str("k").u32(13).u32(0);
  EXPECT_THAT(parse_error(b), HasSubstr("key 'k': unknown value type 13"));
  Bytes a;
  a.header(3, 0, 1).str("k").u32(9).u32(77).u64(0);
  EXPECT_THAT(parse_error(a), HasSubstr("unknown array element type 77"));
  Bytes bo;
  bo.header(3, 0, 1).str("k").u32(7).u8(2);
  EXPECT_THAT(parse_error(bo), HasSubstr("bool value 2"));
}

TEST(GgufHostile, BadKeys) {
  Bytes dup;
  dup.header(3, 0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2);
  EXPECT_THAT(parse_error(dup), HasSubstr("duplicate metadata key 'a.b'"));
  Bytes utf;
  utf.header(3, 0, 1).kv_u32("bad\xC0\xAFkey", 1);
  EXPECT_THAT(parse_error(utf), HasSubstr("not valid UTF-8"));
  Bytes empty;
  empty.header(3, 0, 1).kv_u32("", 1);
  EXPECT_THAT(parse_error(empty), HasSubstr("is empty"));
}

TEST(GgufHostile, BadAlignment) {
  for (uint32_t al : {0u, 3u, 48u}) {
    Bytes b;
    b.header(3, 0, 1).kv_u32("general.alignment", al);
    EXPECT_THAT(parse_error(b), HasSubstr("general.alignment " + std::to_string(al) + " is not a power of two"));
  }
  Bytes s;
  s.header(3, 0, 1).kv_str("general.alignment", "64");
  EXPECT_THAT(parse_error(s), HasSubstr("general.alignment must be an integer"));
}

TEST(GgufParse, NonDefaultAlignment) {
  Bytes b;
  b.header(3, 2, 1).kv_u32("general.alignment", 64);
  b.tensor("a", {4}, 0, 0).tensor("b", {4}, 0, 64);
  b.pad_to(64).zeros(64 + 16);
  File f = File::parse(b.data(), b.size());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  Bytes mis;
  mis.header(3, 1, 1).kv_u32("general.alignment", 64).tensor("a", {4}, 0, 32).pad_to(64).zeros(128);
  EXPECT_THAT(parse_error(mis), HasSubstr("data offset 32 is not a multiple of the alignment 64"));
}

// ------------------------------------------------------------ hostile tensor tables

Bytes one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data_bytes,
                 const std::string& name = "blk.0.attn_q.weight") {
  Bytes b;
  b.header(3, 1, 0).tensor(name, std::move(dims), type, offset).pad_to(32).zeros(data_bytes);
  return b;
}

TEST(GgufHostile, Dimensions) {
  EXPECT_THAT(parse_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64)),
              HasSubstr("tensor 0 'blk.0.attn_q.weight' has 5 dimensions"));
  EXPECT_THAT(parse_error(one_tensor({}, 0, 0, 64)), HasSubstr("has 0 dimensions"));
  EXPECT_THAT(parse_error(one_tensor({4, 0}, 0, 0, 64)), HasSubstr("dimension 1 is 0"));
  EXPECT_THAT(parse_error(one_tensor({~uint64_t{0}}, 0, 0, 64)), HasSubstr("dimension 0 is -1 (negative)"));
  EXPECT_THAT(parse_error(one_tensor({uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0, 64)),
              HasSubstr("element count overflows"));
  // Elements fit int64 but bytes do not.
  EXPECT_THAT(parse_error(one_tensor({uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0, 64)),
              HasSubstr("byte size overflows"));
}

TEST(GgufHostile, TypesAndBlocks) {
  EXPECT_THAT(parse_error(one_tensor({32}, 4, 0, 64)), HasSubstr("has unknown type 4"));
  EXPECT_THAT(parse_error(one_tensor({32}, 1000, 0, 64)), HasSubstr("has unknown type 1000"));
  EXPECT_THAT(parse_error(one_tensor({100, 2}, 12, 0, 4096)),
              HasSubstr("row length 100 is not a multiple of the q4_K block size 256"));
}

TEST(GgufHostile, DataPlacement) {
  std::string e = parse_error(one_tensor({4096}, 0, 0, 2000));
  EXPECT_THAT(e, HasSubstr("tensor 'blk.0.attn_q.weight' data [offset"));
  EXPECT_THAT(e, HasSubstr("16384 bytes] runs past end of file (size"));
  EXPECT_THAT(parse_error(one_tensor({8}, 0, 33, 128)), HasSubstr("is not a multiple of the alignment 32"));
  EXPECT_THAT(parse_error(one_tensor({8}, 0, ~uint64_t{0} - 31, 128)), HasSubstr("runs past end of file"));
  // Data section itself past end.
  Bytes b;
  b.header(3, 1, 0).tensor("t", {1}, 0, 0);
  EXPECT_THAT(parse_error(b), HasSubstr("past end of file"));
}

TEST(GgufHostile, OverlapAndDuplicateNames) {
  Bytes ov;
  ov.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad_to(32).zeros(128);
  EXPECT_THAT(parse_error(ov), HasSubstr("tensor 'b' data at offset 32 overlaps tensor 'a' [0, 64)"));
  Bytes dup;
  dup.header(3, 2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_to(32).zeros(64);
  EXPECT_THAT(parse_error(dup), HasSubstr("duplicate tensor name 'a'"));
}

TEST(GgufHostile, TensorNames) {
  EXPECT_THAT(parse_error(one_tensor({8}, 0, 0, 64, "")), HasSubstr("empty name"));
  EXPECT_THAT(parse_error(one_tensor({8}, 0, 0, 64, std::string(65, 'x'))), HasSubstr("longer than 64"));
  EXPECT_THAT(parse_error(one_tensor({8}, 0, 0, 64, "a\xFF")), HasSubstr("not valid UTF-8"));
  EXPECT_EQ(parse_error(one_tensor({8}, 0, 0, 64, std::string(64, 'x'))), "");
}

TEST(GgufUtf8, Validator) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain.key"));
  EXPECT_TRUE(valid_utf8("\xE4\xB8\xAD\xE6\x96\x87"));       // 中文
  EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));               // emoji
  EXPECT_FALSE(valid_utf8("\x80"));                          // lone continuation
  EXPECT_FALSE(valid_utf8("\xC0\x80"));                      // overlong NUL
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));                  // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));                  // surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));              // > U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE4\xB8"));                      // truncated
  EXPECT_FALSE(valid_utf8("\xF8\x88\x80\x80\x80"));          // 5-byte form
}

TEST(GgufValue, CheckedAccessors) {
  Value u = Value::make_uint(ValueType::UINT64, ~uint64_t{0});
  EXPECT_THROW(u.as_int("k"), Error);
  EXPECT_EQ(u.as_uint(), ~uint64_t{0});
  Value i = Value::make_int(ValueType::INT32, -5);
  EXPECT_EQ(i.as_int(), -5);
  EXPECT_THROW(i.as_uint("k"), Error);
  EXPECT_DOUBLE_EQ(i.as_float(), -5.0);
  EXPECT_THROW(i.as_string("k"), Error);
  EXPECT_THROW(Value::make_uint(ValueType::UINT8, 256), Error);
  EXPECT_THROW(Value::make_int(ValueType::INT8, -129), Error);
  EXPECT_THROW(Value::make_uint(ValueType::INT8, 1), Error);
  EXPECT_THROW(Value::make_array(ValueType::UINT8, {Value::make_bool(true)}), Error);
  try {
    Value::make_string("x").as_int("my.key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("my.key: expected an integer, found string"));
  }
}

}  // namespace
}  // namespace hai::gguf
