// gguf::Writer: every value type round-trips through the reader, the bytes
// follow the spec exactly, and bad input is refused before anything is written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"

namespace hai::gguf {
namespace {

using ::testing::HasSubstr;

std::string tmp_path(const std::string& name) { return ::testing::TempDir() + "/hai_writer_" + name; }

Writer all_types_writer() {
  Writer w;
  w.set("general.architecture", Value::make_string("llama"));
  w.set("t.u8", Value::make_uint(ValueType::UINT8, 255));
  w.set("t.i8", Value::make_int(ValueType::INT8, -128));
  w.set("t.u16", Value::make_uint(ValueType::UINT16, 65535));
  w.set("t.i16", Value::make_int(ValueType::INT16, -32768));
  w.set("t.u32", Value::make_uint(ValueType::UINT32, 4000000000u));
  w.set("t.i32", Value::make_int(ValueType::INT32, -2000000000));
  w.set("t.u64", Value::make_uint(ValueType::UINT64, ~uint64_t{0}));
  w.set("t.i64", Value::make_int(ValueType::INT64, INT64_MIN));
  w.set("t.f32", Value::make_float(ValueType::FLOAT32, 0.1));
  w.set("t.f64", Value::make_float(ValueType::FLOAT64, 0.1));
  w.set("t.bool", Value::make_bool(true));
  w.set("t.str", Value::make_string("héllo 中文"));
  w.set("t.empty_str", Value::make_string(""));
  w.set("t.empty_arr", Value::make_array(ValueType::INT32, {}));
  w.set("t.str_arr", Value::make_array(ValueType::STRING, {Value::make_string("a"), Value::make_string(""),
                                                           Value::make_string(std::string("\0x", 2))}));
  w.set("t.f32_arr", Value::make_array(ValueType::FLOAT32, {Value::make_float(ValueType::FLOAT32, -1.5),
                                                            Value::make_float(ValueType::FLOAT32, INFINITY)}));
  w.set("t.nested",
        Value::make_array(ValueType::ARRAY,
                          {Value::make_array(ValueType::UINT8, {Value::make_uint(ValueType::UINT8, 1)}),
                           Value::make_array(ValueType::STRING, {}),
                           Value::make_array(ValueType::ARRAY, {Value::make_array(ValueType::BOOL, {Value::make_bool(false)})})}));
  return w;
}

TEST(GgufWriter, RoundTripEveryValueType) {
  Writer w = all_types_writer();
  std::vector<float> data(4 * 3);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) * 0.5f;
  std::vector<uint16_t> half(64, 0x3C00);
  w.add_tensor("m", GgmlType::F32, {4, 3}, data.data(), data.size() * 4);
  w.add_tensor("h", GgmlType::F16, {64}, half.data(), half.size() * 2);
  std::string path = tmp_path("all.gguf");
  w.write(path);

  File f = File::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get("t.u8").as_uint(), 255u);
  EXPECT_EQ(f.get("t.u8").type, ValueType::UINT8);
  EXPECT_EQ(f.get("t.i8").as_int(), -128);
  EXPECT_EQ(f.get("t.u16").as_uint(), 65535u);
  EXPECT_EQ(f.get("t.i16").as_int(), -32768);
  EXPECT_EQ(f.get("t.u32").as_uint(), 4000000000u);
  EXPECT_EQ(f.get("t.i32").as_int(), -2000000000);
  EXPECT_EQ(f.get("t.u64").as_uint(), ~uint64_t{0});
  EXPECT_EQ(f.get("t.i64").as_int(), INT64_MIN);
  EXPECT_EQ(f.get("t.f32").as_float(), static_cast<double>(0.1f));
  EXPECT_EQ(f.get("t.f32").type, ValueType::FLOAT32);
  EXPECT_EQ(f.get("t.f64").as_float(), 0.1);
  EXPECT_TRUE(f.get("t.bool").as_bool());
  EXPECT_EQ(f.get_string("t.str"), "héllo 中文");
  EXPECT_EQ(f.get_string("t.empty_str"), "");
  EXPECT_TRUE(f.get("t.empty_arr").as_array().empty());
  EXPECT_EQ(f.get("t.empty_arr").elem_type, ValueType::INT32);
  EXPECT_EQ(f.get_string_array("t.str_arr"), (std::vector<std::string>{"a", "", std::string("\0x", 2)}));
  auto fa = f.get_float_array("t.f32_arr");
  EXPECT_EQ(fa[0], -1.5f);
  EXPECT_TRUE(std::isinf(fa[1]));
  const auto& nested = f.get("t.nested").as_array();
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[0].elem_type, ValueType::UINT8);
  EXPECT_EQ(nested[0].as_array()[0].as_uint(), 1u);
  EXPECT_EQ(nested[1].elem_type, ValueType::STRING);
  EXPECT_TRUE(nested[1].as_array().empty());
  EXPECT_FALSE(nested[2].as_array()[0].as_array()[0].as_bool());

  // Metadata order is insertion order.
  EXPECT_EQ(f.metadata().front().first, "general.architecture");
  EXPECT_EQ(f.metadata().back().first, "t.nested");

  const TensorInfo& m = f.tensor("m");
  EXPECT_EQ(m.shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(std::memcmp(m.data, data.data(), data.size() * 4), 0);
  const TensorInfo& h = f.tensor("h");
  EXPECT_EQ(h.offset, 64u);  // 48 bytes of "m" padded to 64
  EXPECT_EQ(std::memcmp(h.data, half.data(), 128), 0);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.file_size(), f.data_offset() + 64 + 128);  // last tensor padded too
}

// Rewriting what we read gives the same bytes: reader and writer agree on the
// whole format (also on a real fixture with long arrays).
TEST(GgufWriter, ReadWriteIsIdentityOnFixture) {
  std::string src = hai::test::fixture("models/tiny-qwen2-gpt2-q8_0.gguf");
  File f = File::open(src);
  Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
  std::string out = tmp_path("copy.gguf");
  w.write(out);
  EXPECT_EQ(hai::test::read_file(out), hai::test::read_file(src));
}

TEST(GgufWriter, ExactBytesOfSmallFile) {
  Writer w;
  w.set("a", Value::make_uint(ValueType::UINT32, 7));
  w.set("s", Value::make_array(ValueType::STRING, {Value::make_string("xy")}));
  uint8_t q[34] = {};
  q[0] = 1;
  w.add_tensor("q", GgmlType::Q8_0, {32}, q, sizeof q);
  std::string path = tmp_path("exact.gguf");
  w.write(path);
  std::string b = hai::test::read_file(path);
  std::string expect;
  auto put = [&](auto x) { expect.append(reinterpret_cast<const char*>(&x), sizeof x); };
  auto str = [&](const std::string& s) {
    put(uint64_t(s.size()));
    expect += s;
  };
  expect += "GGUF";
  put(uint32_t(3));
  put(uint64_t(1));
  put(uint64_t(2));
  str("a");
  put(uint32_t(4));
  put(uint32_t(7));
  str("s");
  put(uint32_t(9));
  put(uint32_t(8));
  put(uint64_t(1));
  str("xy");
  str("q");
  put(uint32_t(1));
  put(uint64_t(32));
  put(uint32_t(8));
  put(uint64_t(0));
  while (expect.size() % 32) expect += '\0';
  expect.append(reinterpret_cast<const char*>(q), sizeof q);
  while (expect.size() % 32) expect += '\0';
  EXPECT_EQ(b, expect);
}

TEST(GgufWriter, NonDefaultAlignment) {
  Writer w;
  w.set("general.alignment", Value::make_uint(ValueType::UINT32, 256));
  std::vector<float> a(3, 1.0f), b(5, 2.0f);
  w.add_tensor("a", GgmlType::F32, {3}, a.data(), 12);
  w.add_tensor("b", GgmlType::F32, {5}, b.data(), 20);
  std::string path = tmp_path("align.gguf");
  w.write(path);
  File f = File::open(path);
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.data_offset() % 256, 0u);
  EXPECT_EQ(f.tensor("b").offset, 256u);
  float x;
  std::memcpy(&x, f.tensor("b").data + 16, 4);
  EXPECT_EQ(x, 2.0f);

  Writer bad;
  bad.set("general.alignment", Value::make_uint(ValueType::UINT32, 24));
  EXPECT_THROW(bad.write(tmp_path("bad_align.gguf")), Error);
}

TEST(GgufWriter, StreamedTensors) {
  Writer w;
  int calls = 0;
  w.add_tensor("s", GgmlType::F32, {4, 2}, [&](std::vector<uint8_t>& out) {
    ++calls;
    ASSERT_EQ(out.size(), 32u);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i);
  });
  std::string path = tmp_path("stream.gguf");
  w.write(path);
  EXPECT_EQ(calls, 1);
  File f = File::open(path);
  EXPECT_EQ(f.tensor("s").data[31], 31);

  Writer shrink;
  shrink.add_tensor("s", GgmlType::F32, {4}, [](std::vector<uint8_t>& out) { out.resize(3); });
  EXPECT_THROW(shrink.write(tmp_path("shrink.gguf")), Error);
  EXPECT_FALSE(std::filesystem::exists(tmp_path("shrink.gguf")));
}

// A file of several huge pages is mapped at a 2 MiB-aligned address (so the
// kernel can use 2 MiB pages for it) and reads back byte for byte, the last
// bytes of the file included; the huge-page share is a fraction once the
// file is resident, and unknown for a parsed buffer.
TEST(GgufWriter, LargeFileMappedAtHugePageBoundary) {
  constexpr int64_t kFloats = (int64_t(5) << 20) / 4 + 3;  // 5 MiB and 12 bytes
  std::vector<float> v(static_cast<size_t>(kFloats));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000003);
  Writer w;
  w.add_tensor("big", GgmlType::F32, {kFloats}, v.data(), v.size() * 4);
  const std::string path = tmp_path("large.gguf");
  w.write(path);
  File f = File::open(path);
  const TensorInfo& t = f.tensor("big");
  const uintptr_t base = reinterpret_cast<uintptr_t>(t.data) - f.data_offset() - t.offset;
  EXPECT_EQ(base % (uintptr_t(2) << 20), 0u);
  EXPECT_EQ(std::memcmp(t.data, v.data(), v.size() * 4), 0);
  const double share = f.huge_page_share();
  EXPECT_GE(share, 0.0);
  EXPECT_LE(share, 1.0);
  File moved = std::move(f);  // the mapping moves with the File
  EXPECT_EQ(std::memcmp(moved.tensor("big").data + (v.size() - 1) * 4, &v.back(), 4), 0);

  const std::string bytes = hai::test::read_file(path);
  EXPECT_EQ(File::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).huge_page_share(), -1.0);
}

// prefer_huge_pages: forced to map the file again (min_share above 1), the
// tensors still read the file's bytes at their new place; a small file and
// a parsed buffer are left alone; a file changed on disk since open() is not
// mapped again.
TEST(GgufWriter, PreferHugePagesKeepsTheData) {
  constexpr int64_t kFloats = (int64_t(65) << 20) / 4;  // 65 MiB: above the 64 MiB floor
  std::vector<float> v(static_cast<size_t>(kFloats));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 2654435761u) % 1000003);
  Writer w;
  w.add_tensor("a", GgmlType::F32, {4096}, v.data(), 4096 * 4);
  w.add_tensor("b", GgmlType::F32, {kFloats - 4096}, v.data() + 4096, (v.size() - 4096) * 4);
  const std::string path = tmp_path("prefer.gguf");
  w.write(path);
  {
    File f = File::open(path);
    const bool remapped = f.prefer_huge_pages(1.01);
    const double share = f.huge_page_share();
    EXPECT_GE(share, 0.0);
    EXPECT_LE(share, 1.0);
    EXPECT_EQ(std::memcmp(f.tensor("a").data, v.data(), 4096 * 4), 0);
    EXPECT_EQ(std::memcmp(f.tensor("b").data, v.data() + 4096, (v.size() - 4096) * 4), 0);
    if (remapped) {  // the new mapping is aligned too
      const TensorInfo& t = f.tensor("a");
      EXPECT_EQ((reinterpret_cast<uintptr_t>(t.data) - f.data_offset() - t.offset) % (uintptr_t(2) << 20), 0u);
    }
  }
  {
    File f = File::open(path);
    // Replaced on disk (new inode) after open: never mapped again.
    w.write(path);
    EXPECT_FALSE(f.prefer_huge_pages(1.01));
    EXPECT_EQ(std::memcmp(f.tensor("b").data, v.data() + 4096, (v.size() - 4096) * 4), 0);
  }
  std::filesystem::remove(path);

  Writer small;
  small.add_tensor("s", GgmlType::F32, {1024}, v.data(), 4096);
  const std::string small_path = tmp_path("prefer_small.gguf");
  small.write(small_path);
  File s = File::open(small_path);
  EXPECT_FALSE(s.prefer_huge_pages(1.01));
  EXPECT_EQ(std::memcmp(s.tensor("s").data, v.data(), 4096), 0);
  const std::string bytes = hai::test::read_file(small_path);
  EXPECT_FALSE(File::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).prefer_huge_pages(1.01));
}

TEST(GgufWriter, SetReplacesAndRemoveDeletes) {
  Writer w;
  w.set("a", Value::make_uint(ValueType::UINT32, 1));
  w.set("b", Value::make_uint(ValueType::UINT32, 2));
  w.set("a", Value::make_string("x"));
  w.remove("b");
  w.remove("not.there");
  std::string path = tmp_path("replace.gguf");
  w.write(path);
  File f = File::open(path);
  ASSERT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.get_string("a"), "x");
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufWriter, RefusesBadInput) {
  Writer w;
  float d[64] = {};
  EXPECT_THROW(w.set("", Value::make_bool(true)), Error);
  EXPECT_THROW(w.set("bad\xFF", Value::make_bool(true)), Error);
  Value wrong = Value::make_bool(true);
  wrong.type = ValueType::STRING;  // variant does not match the type
  EXPECT_THROW(w.set("k", wrong), Error);
  Value deep = Value::make_array(ValueType::UINT8, {});
  for (int i = 0; i < kMaxArrayDepth + 1; ++i) deep = Value::make_array(ValueType::ARRAY, {deep});
  EXPECT_THROW(w.set("deep", deep), Error);

  try {
    w.add_tensor("t", GgmlType::F32, {4}, d, 8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor 't': 8 bytes given, its shape and type need 16"));
  }
  EXPECT_THROW(w.add_tensor("q", GgmlType::Q4_0, {31}, d, 18), Error);  // not a block multiple
  EXPECT_THROW(w.add_tensor("z", GgmlType::F32, {0}, d, 0), Error);
  EXPECT_THROW(w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, d, 4), Error);
  EXPECT_THROW(w.add_tensor(std::string(65, 'n'), GgmlType::F32, {1}, d, 4), Error);
  EXPECT_THROW(w.add_tensor("u", static_cast<GgmlType>(4), {1}, d, 4), Error);
  w.add_tensor("ok", GgmlType::F32, {1}, d, 4);
  try {
    w.add_tensor("ok", GgmlType::F32, {1}, d, 4);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("duplicate tensor name 'ok'"));
  }
}

TEST(GgufWriter, UnwritablePathNamesIt) {
  Writer w;
  w.set("a", Value::make_bool(true));
  try {
    w.write("/nonexistent-dir/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent-dir/x.gguf: cannot create"));
  }
}

}  // namespace
}  // namespace hai::gguf
