// The reader never crashes: truncation at every byte, and a few thousand
// seeded random corruptions of a small valid file, each either parse or throw
// hai::Error (never another exception, never an out-of-bounds read; run the
// suite with HAI_SANITIZE=ON to have ASan check the last part).
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"

namespace hai::gguf {
namespace {

// A small file using every structure of the format. The last tensor is 64
// bytes, so the file ends exactly at its data (no trailing padding): every
// proper prefix is then truncated somewhere that matters.
std::vector<uint8_t> small_valid_file() {
  Writer w;
  w.set("general.architecture", Value::make_string("llama"));
  w.set("general.alignment", Value::make_uint(ValueType::UINT32, 32));
  w.set("llama.block_count", Value::make_uint(ValueType::UINT32, 1));
  w.set("f", Value::make_float(ValueType::FLOAT32, 1e-5));
  w.set("b", Value::make_bool(true));
  w.set("i64", Value::make_int(ValueType::INT64, -3));
  w.set("tokens", Value::make_array(ValueType::STRING, {Value::make_string("<s>"), Value::make_string("ab")}));
  w.set("nested", Value::make_array(ValueType::ARRAY, {Value::make_array(ValueType::INT16, {Value::make_int(ValueType::INT16, 5)})}));
  static std::vector<uint8_t> q8(34 * 2, 7), f32(64, 1);
  w.add_tensor("blk.0.attn_q.weight", GgmlType::Q8_0, {32, 2}, q8.data(), q8.size());
  w.add_tensor("output_norm.weight", GgmlType::F32, {16}, f32.data(), f32.size());
  std::string path = ::testing::TempDir() + "/hai_robust_small.gguf";
  w.write(path);
  std::vector<uint8_t> bytes;
  FILE* fp = std::fopen(path.c_str(), "rb");
  int c;
  while ((c = std::fgetc(fp)) != EOF) bytes.push_back(static_cast<uint8_t>(c));
  std::fclose(fp);
  return bytes;
}

volatile size_t g_sink = 0;

// Parses and, on success, touches every value and every tensor byte range so
// a sanitizer sees any bad pointer. Returns true if it parsed.
bool parse_and_touch(const std::vector<uint8_t>& buf) {
  try {
    File f = File::parse(buf.data(), buf.size(), "fuzz.gguf");
    size_t sum = 0;
    for (const auto& [k, v] : f.metadata()) sum += k.size() + (v.is_string() ? v.as_string().size() : 0);
    for (const auto& t : f.tensors()) {
      EXPECT_GE(t.data, buf.data());
      EXPECT_LE(t.data + t.nbytes, buf.data() + buf.size());
      sum += t.data[0] + t.data[t.nbytes - 1];
    }
    g_sink = g_sink + sum;
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(GgufRobust, SmallFileParses) {
  auto b = small_valid_file();
  ASSERT_TRUE(parse_and_touch(b));
  File f = File::parse(b.data(), b.size());
  EXPECT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.data_offset() + f.tensor("output_norm.weight").offset + 64, b.size());
}

TEST(GgufRobust, TruncationAtEveryByteIsAnError) {
  auto b = small_valid_file();
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> prefix(b.begin(), b.begin() + n);
    try {
      File::parse(prefix.data(), prefix.size(), "cut.gguf");
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos) << e.what();
    }
  }
}

TEST(GgufRobust, SeededRandomCorruptionNeverCrashes) {
  const auto base = small_valid_file();
  std::mt19937_64 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::vector<uint8_t> b = base;
    int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut; ++m) {
      size_t pos = rng() % b.size();
      switch (rng() % 5) {
        case 0: b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;  // bit flip
        case 1: b[pos] = static_cast<uint8_t>(rng()); break;                // random byte
        case 2: {                                                           // random / extreme u64
          static const uint64_t extremes[] = {0, 1, 0xFFFFFFFFFFFFFFFFull, 0x7FFFFFFFFFFFFFFFull, 0x100000000ull, 31, 33};
          uint64_t x = (rng() & 1) ? rng() : extremes[rng() % 7];
          for (size_t k = 0; k < 8 && pos + k < b.size(); ++k) b[pos + k] = static_cast<uint8_t>(x >> (8 * k));
          break;
        }
        case 3: b.erase(b.begin() + static_cast<long>(pos)); break;            // delete
        case 4: b.insert(b.begin() + static_cast<long>(pos), static_cast<uint8_t>(rng())); break;  // insert
      }
      if (b.empty()) b.push_back(0);
    }
    (parse_and_touch(b) ? parsed : rejected)++;
  }
  // Both outcomes happen: the mutations reach past the header checks.
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(parsed, 10);
}

}  // namespace
}  // namespace hai::gguf
