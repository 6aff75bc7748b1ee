// libFuzzer target for the GGUF reader: any input must either parse or throw
// hai::Error; on success every tensor's bytes and every value are touched so
// ASan sees any pointer outside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"

namespace {
volatile size_t g_sink;

void touch(const hai::gguf::Value& v) {
  if (v.is_string()) g_sink = g_sink + v.as_string().size();
  if (v.is_array())
    for (const auto& item : v.as_array()) touch(item);
}
// Small complete files with every structure of the format, written by our
// writer: good seeds, since fixture files are too big to be mutated whole.
void write_seeds(const std::string& dir) {
  using hai::gguf::Value;
  using hai::gguf::ValueType;
  static std::vector<uint8_t> bytes(4096, 0x3c);
  for (int variant = 0; variant < 3; ++variant) {
    hai::gguf::Writer w;
    w.set("general.architecture", Value::make_string("llama"));
    if (variant == 1) w.set("general.alignment", Value::make_uint(ValueType::UINT32, 64));
    w.set("llama.block_count", Value::make_uint(ValueType::UINT32, 1));
    w.set("llama.rope.freq_base", Value::make_float(ValueType::FLOAT32, 10000));
    w.set("tokenizer.ggml.add_bos_token", Value::make_bool(true));
    w.set("tokenizer.ggml.tokens",
          Value::make_array(ValueType::STRING, {Value::make_string("<s>"), Value::make_string("a"), Value::make_string("")}));
    w.set("tokenizer.ggml.scores", Value::make_array(ValueType::FLOAT32, {Value::make_float(ValueType::FLOAT32, -1)}));
    w.set("nested", Value::make_array(ValueType::ARRAY, {Value::make_array(ValueType::INT64, {Value::make_int(ValueType::INT64, -1)})}));
    if (variant == 2) {
      w.add_tensor("token_embd.weight", hai::GgmlType::Q4_K, {256, 2}, bytes.data(), 2 * 144);
      w.add_tensor("blk.0.attn_q.weight", hai::GgmlType::Q8_0, {32, 3}, bytes.data(), 3 * 34);
    }
    w.add_tensor("output_norm.weight", hai::GgmlType::F32, {8}, bytes.data(), 32);
    w.add_tensor("output.weight", hai::GgmlType::F16, {8, 4}, bytes.data(), 64);
    w.write(dir + "/seed-" + std::to_string(variant) + ".gguf");
  }
}
}  // namespace

// With HAI_FUZZ_SEED_DIR set, writes the seed files there first.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("HAI_FUZZ_SEED_DIR")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hai::gguf::File f = hai::gguf::File::parse(data, size, "fuzz.gguf");
    for (const auto& [key, value] : f.metadata()) touch(value);
    for (const auto& t : f.tensors()) {
      if (t.data < data || t.data + t.nbytes > data + size) __builtin_trap();
      g_sink = g_sink + t.data[0] + t.data[t.nbytes - 1];
      g_sink = g_sink + static_cast<size_t>(t.n_elements());
    }
    // A parsed file's typed getters must not crash either.
    (void)f.get_int_or("general.alignment", 0);
  } catch (const hai::Error&) {
  }
  return 0;
}
