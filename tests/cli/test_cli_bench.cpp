// `hai bench`: the JSON contract of DESIGN.md on a tiny fixture, and every
// bad input giving a clear error. Speeds are only checked to be positive:
// performance is measured by benchmarks/run, never asserted here.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"

namespace {

using hai::test::fixture;
using hai::test::run_hai;

const std::string kModel = fixture("models/tiny-llama-spm-q8_0.gguf");

nlohmann::json parse_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << text;
  return j;
}

TEST(CliBench, JsonHasTheContractKeys) {
  auto r = run_hai("bench -m " + kModel + " -p 8 -n 4 -r 1 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = parse_json(r.out);
  for (const char* key : {"model", "threads", "pp_tokens", "pp_tps", "tg_tokens", "tg_tps", "peak_rss_mb"})
    EXPECT_TRUE(j.contains(key)) << "missing key " << key << " in " << r.out;
  EXPECT_EQ(j["model"], kModel);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["pp_tokens"], 8);
  EXPECT_EQ(j["tg_tokens"], 4);
  EXPECT_GT(j["pp_tps"].get<double>(), 0.0);
  EXPECT_GT(j["tg_tps"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_mb"].get<double>(), 0.0);
  EXPECT_EQ(j["arch"], "llama");
  EXPECT_EQ(j["repetitions"], 1);
  EXPECT_EQ(j["tg_tps_samples"].size(), 1u);
  EXPECT_EQ(j["tg_tps_stddev"].get<double>(), 0.0);  // one repetition: no spread
  EXPECT_GT(j["model_mb"].get<double>(), 0.0);
  EXPECT_LE(j["model_mb"].get<double>(), j["file_mb"].get<double>());
  EXPECT_GT(j["kv_cache_mb"].get<double>(), 0.0);
  EXPECT_GT(j["decode_gbps"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("bandwidth_gbps"));  // only with --bandwidth
}

TEST(CliBench, Q8_0CacheIsSmallerAndNamed) {
  auto f16 = run_hai("bench -m " + kModel + " -p 8 -n 4 -r 1 -t 1 --json");
  auto q8 = run_hai("bench -m " + kModel + " -p 8 -n 4 -r 1 -t 1 --json --cache-type q8_0");
  ASSERT_EQ(f16.exit_code, 0) << f16.err;
  ASSERT_EQ(q8.exit_code, 0) << q8.err;
  auto a = parse_json(f16.out), b = parse_json(q8.out);
  EXPECT_EQ(a["cache_type"], "f16");
  EXPECT_EQ(b["cache_type"], "q8_0");
  EXPECT_NEAR(b["kv_cache_mb"].get<double>(), a["kv_cache_mb"].get<double>() * 34.0 / 64.0, 1e-9);
  auto bad = run_hai("bench -m " + kModel + " -p 8 -n 4 -r 1 --cache-type q4");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--cache-type"), std::string::npos) << bad.err;
}

TEST(CliBench, RepetitionsGiveMeanAndSpread) {
  auto r = run_hai("bench -m " + kModel + " -p 4 -n 2 -r 3 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = parse_json(r.out);
  ASSERT_EQ(j["pp_tps_samples"].size(), 3u);
  double sum = 0;
  for (double x : j["pp_tps_samples"]) sum += x;
  EXPECT_NEAR(j["pp_tps"].get<double>(), sum / 3, 1e-6 * sum);
  EXPECT_GE(j["pp_tps_stddev"].get<double>(), 0.0);
  EXPECT_EQ(j["threads"], 2);
}

TEST(CliBench, SkipsATestGivenZeroTokens) {
  auto r = run_hai("bench -m " + kModel + " -p 0 -n 2 -r 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = parse_json(r.out);
  EXPECT_EQ(j["pp_tokens"], 0);
  EXPECT_EQ(j["pp_tps"].get<double>(), 0.0);
  EXPECT_GT(j["tg_tps"].get<double>(), 0.0);
}

TEST(CliBench, TextOutputIsATable) {
  auto r = run_hai("bench -m " + kModel + " -p 4 -n 2 -r 2 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| model | size | threads | test | t/s |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| pp4 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| tg2 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("±"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos) << r.out;
}

TEST(CliBench, MissingModelFileIsAnError) {
  auto r = run_hai("bench -m /nonexistent/model.gguf -p 8 -n 4 -r 1 --json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
}

TEST(CliBench, NoModelAndNoBandwidthIsAnError) {
  auto r = run_hai("bench -p 8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hai: error: bench: give a model with -m"), std::string::npos) << r.err;
}

TEST(CliBench, ZeroRepetitionsIsAnError) {
  auto r = run_hai("bench -m " + kModel + " -p 8 -n 4 -r 0 --json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("-r/--repetitions must be at least 1, got 0"), std::string::npos) << r.err;
}

TEST(CliBench, NegativeCountsAreErrors) {
  auto r = run_hai("bench -m " + kModel + " -p -1 -n 4 -r 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-p/--n-prompt must not be negative, got -1"), std::string::npos) << r.err;
  r = run_hai("bench -m " + kModel + " -p 4 -n -2 -r 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-n/--n-gen must not be negative, got -2"), std::string::npos) << r.err;
  r = run_hai("bench -m " + kModel + " -p 4 -n 2 -t -3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-t/--threads must not be negative, got -3"), std::string::npos) << r.err;
}

TEST(CliBench, NothingToMeasureIsAnError) {
  auto r = run_hai("bench -m " + kModel + " -p 0 -n 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing to measure"), std::string::npos) << r.err;
}

TEST(CliBench, BadFlagIsAnError) {
  auto r = run_hai("bench -m " + kModel + " --no-such-flag");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.find("tg_tps") == std::string::npos) << r.out;
  EXPECT_NE((r.out + r.err).find("--no-such-flag"), std::string::npos) << r.out << r.err;
  r = run_hai("bench -m " + kModel + " -p many");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("many"), std::string::npos) << r.out << r.err;
}

TEST(CliBench, NotAModelFileIsAnError) {
  // A real file that is not GGUF: the loader's error names it.
  const std::string path = fixture("reference/prompts.txt");
  auto r = run_hai("bench -m " + path + " -p 4 -n 2 -r 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
}

}  // namespace
