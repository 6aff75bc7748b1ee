// `hai logits` and `hai run` end to end: the output of `hai logits` against
// the reference files (with our own tokenizer now, not the reference's
// tokens), and every bad input of both commands.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "common/test_util.h"

namespace {

using hai::test::fixture;
using hai::test::run_hai;

std::string tmp_dir() {
  const auto d = std::filesystem::temp_directory_path() / ("hai_cli_model_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

struct Cleanup {
  ~Cleanup() {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("hai_cli_model_" + std::to_string(::getpid())), ec);
  }
} cleanup;

std::string write_tmp(const std::string& name, const std::string& content) {
  const std::string path = tmp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string model(const std::string& name) { return fixture("models/" + name + ".gguf"); }

// Runs `hai logits` on all reference prompts and compares with M.json.
void check_logits(const std::string& name, bool check_text, bool byte_identical = false) {
  const std::string dir = tmp_dir() + "/" + name;
  auto r = run_hai("logits -m " + model(name) + " --prompt-file " + fixture("reference/prompts.txt") +
                   " --last-logits-dir " + dir + " -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ours = nlohmann::json::parse(r.out);
  const std::string ref_text = hai::test::read_file(fixture("reference/" + name + ".json"));
  const auto ref = nlohmann::json::parse(ref_text);
  ASSERT_EQ(ours.size(), ref.size());
  if (byte_identical) {
    EXPECT_TRUE(r.out == ref_text) << name << ": output differs from the reference file";
  }
  int positions = 0, same = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    EXPECT_EQ(ours[k]["prompt"], ref[k]["prompt"]);
    EXPECT_EQ(ours[k]["tokens"], ref[k]["tokens"]) << name << " prompt " << k;
    EXPECT_EQ(ours[k]["last_logits_file"], ref[k]["last_logits_file"]);
    ASSERT_EQ(ours[k]["top5"].size(), ref[k]["top5"].size());
    for (size_t p = 0; p < ref[k]["top5"].size(); ++p) {
      ASSERT_EQ(ours[k]["top5"][p].size(), 5u);
      same += ours[k]["top5"][p][0][0] == ref[k]["top5"][p][0][0];
      ++positions;
    }
    const auto g = ours[k]["greedy"].get<std::vector<int>>();
    const auto rg = ref[k]["greedy"].get<std::vector<int>>();
    ASSERT_EQ(g.size(), 32u);
    EXPECT_TRUE(std::equal(g.begin(), g.begin() + 8, rg.begin())) << name << " prompt " << k;
    if (check_text && g == rg) {
      EXPECT_EQ(ours[k]["greedy_text_hex"], ref[k]["greedy_text_hex"]) << name << " " << k;
    }
    // The last logits file: n_vocab little-endian floats, close to the reference's.
    const std::string file = ours[k]["last_logits_file"].get<std::string>();
    const std::string a = hai::test::read_file(dir + "/" + file);
    const std::string b = hai::test::read_file(fixture("reference/" + file));
    ASSERT_EQ(a.size(), b.size());
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size() / 4; ++i) {
      float x, y;
      std::memcpy(&x, a.data() + 4 * i, 4);
      std::memcpy(&y, b.data() + 4 * i, 4);
      ab += double(x) * y;
      aa += double(x) * x;
      bb += double(y) * y;
    }
    EXPECT_GE(ab / std::sqrt(aa * bb), 0.9999) << name << " prompt " << k;
  }
  std::printf("%s via hai logits: top-1 agreement %d/%d\n", name.c_str(), same, positions);
  EXPECT_GE(double(same) / positions, 0.99);
}

TEST(CliLogits, LlamaQ8MatchesReference) { check_logits("tiny-llama-spm-q8_0", true, true); }
TEST(CliLogits, LlamaF16MatchesReference) { check_logits("tiny-llama-spm-f16", true, true); }
TEST(CliLogits, LlamaQ4KMMatchesReference) { check_logits("tiny-llama-spm-q4_k_m", true, true); }
TEST(CliLogits, Qwen2Q8MatchesReference) { check_logits("tiny-qwen2-gpt2-q8_0", false); }

// The reference detokenizes GPT-2 vocabularies with llama.cpp's space
// clean-up (" ." -> "."), and so must Tokenizer::decode.
TEST(CliLogits, Qwen2GreedyTextMatchesReference) { check_logits("tiny-qwen2-gpt2-q8_0", true); }

TEST(CliLogits, FormatIsTheReferenceFormat) {
  // Same JSON layout, byte for byte, for the short prompts of the Q8_0 model.
  const std::string prompts = write_tmp("short.txt", "Once upon a time\nThe capital of France is\n");
  auto r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + prompts);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ref = hai::test::read_file(fixture("reference/tiny-llama-spm-q8_0.json"));
  size_t second_line_end = 0;
  for (int i = 0; i < 3; ++i) second_line_end = ref.find('\n', second_line_end) + 1;
  EXPECT_EQ(r.out, ref.substr(0, second_line_end - 2) + "\n]\n");
}

TEST(CliLogits, TopOption) {
  const std::string prompts = write_tmp("one.txt", "Hello");
  auto r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + prompts + " --top 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["top3"][0].size(), 3u);
}

TEST(CliLogits, BadInput) {
  const std::string prompts = write_tmp("ok.txt", "Hello\n");
  auto r = run_hai("logits -m /nonexistent.gguf --prompt-file " + prompts);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos) << r.err;

  r = run_hai("logits -m " + write_tmp("not.gguf", "hello, I am not a model") + " --prompt-file " + prompts);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hai: error:"), std::string::npos);

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file /nonexistent.txt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.txt"), std::string::npos) << r.err;

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + write_tmp("empty_line.txt", "a\n\nb\n"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 2 is an empty prompt"), std::string::npos) << r.err;

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + write_tmp("bad_utf8.txt", "ok\n\xff\xfe\n"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + prompts + " -c 8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("longer than the context of 8"), std::string::npos) << r.err;

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + prompts + " --top 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--top"), std::string::npos) << r.err;

  r = run_hai("logits -m " + model("tiny-llama-spm-q8_0") + " --prompt-file " + write_tmp("none.txt", ""));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no prompts"), std::string::npos) << r.err;
}

TEST(CliRun, GeneratesGreedyAsTheReference) {
  // Greedy from "Once upon a time" gives the reference's continuation.
  auto r = run_hai("run -m " + model("tiny-llama-spm-q8_0") + " -p 'Once upon a time' -n 32 --temp 0 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ref = nlohmann::json::parse(hai::test::read_file(fixture("reference/tiny-llama-spm-q8_0.json")));
  std::string text;
  const std::string hex = ref[0]["greedy_text_hex"];
  for (size_t i = 0; i + 1 < hex.size(); i += 2) text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  // The streamed pieces keep the leading space of the first token.
  EXPECT_EQ(r.out, " " + text + "\n");
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
}

TEST(CliRun, SameSeedSameText) {
  const std::string cmd = "run -m " + model("tiny-qwen2-gpt2-q8_0") + " -p 'Hello' -n 16 --temp 0.9 --top-k 50 --seed 1234";
  auto a = run_hai(cmd), b = run_hai(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
}

TEST(CliRun, Q8_0CacheGenerates) {
  // A Q8_0 cache rounds keys and values differently from F16: the text may
  // differ, but generation runs, and a bad value names the flag.
  auto r = run_hai("run -m " + model("tiny-llama-spm-q8_0") + " -p 'Once upon a time' -n 8 --temp 0 --cache-type q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  r = run_hai("run -m " + model("tiny-llama-spm-q8_0") + " -p hi -n 2 --cache-type f32");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--cache-type"), std::string::npos) << r.err;
}

TEST(CliRun, BadInput) {
  const std::string m = " -m " + model("tiny-llama-spm-q8_0");
  auto r = run_hai("run -m /nonexistent.gguf -p hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos) << r.err;

  r = run_hai("run -m " + write_tmp("bad.gguf", "GGUF but not really") + " -p hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hai: error:"), std::string::npos);

  r = run_hai("run" + m + " -p ''");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("empty"), std::string::npos) << r.err;

  r = run_hai("run" + m + " -p $(printf 'a\\377b')");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid UTF-8"), std::string::npos) << r.err;

  r = run_hai("run" + m + " -p 'a prompt that is longer than four tokens' -c 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("more than the context of 4"), std::string::npos) << r.err;

  r = run_hai("run" + m + " -p hi --temp -1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("temperature"), std::string::npos) << r.err;

  r = run_hai("run" + m + " -p hi --top-p 1.5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;

  r = run_hai("run" + m + " -p hi -n -3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-n"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// Every kernel path the machine has gives the same logits: the forced
// fallbacks (HAI_CPU=scalar, avx2) against the best path, on the types of
// the fixtures (F16, Q8_0, Q4_0, Q4_K, Q6_K).
TEST(CliKernelPaths, ForcedFallbacksGiveTheSameLogits) {
  const std::string prompts = write_tmp("paths.txt", "Once upon a time\n大模型的发展进入2.0阶段\n");
  for (const char* name : {"tiny-llama-spm-f16", "tiny-llama-spm-q8_0", "tiny-llama-spm-q4_0",
                           "tiny-llama-spm-q4_k_m", "tiny-qwen2-gpt2-q4_k_m"}) {
    const std::string args = "logits -m " + model(name) + " --prompt-file " + prompts;
    const auto best = run_hai(args);
    ASSERT_EQ(best.exit_code, 0) << best.err;
    for (const char* level : {"scalar", "avx2"}) {
      const auto forced = hai::test::run(std::string("HAI_CPU=") + level + " " + hai::test::hai_bin() + " " + args);
      ASSERT_EQ(forced.exit_code, 0) << forced.err;
      EXPECT_EQ(forced.out, best.out) << name << " with HAI_CPU=" << level;
    }
  }
}

TEST(CliKernelPaths, UnknownCpuLevelIsAnError) {
  const auto r = hai::test::run("HAI_CPU=sse9 " + hai::test::hai_bin() + " logits -m " + model("tiny-llama-spm-q8_0") +
                                " --prompt-file " + write_tmp("p.txt", "hi\n"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("sse9"), std::string::npos) << r.err;
}

}  // namespace
