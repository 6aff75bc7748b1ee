// API keys (hashed, constant-time compare, key files) and the Prometheus
// text of /metrics.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "engine/common/error.h"
#include "server/api_error.h"
#include "server/auth.h"
#include "server/kb_api.h"
#include "server/metrics.h"
#include "server/openai_response.h"

namespace srv = hai::server;

namespace {

std::string temp_file(const std::string& content) {
  std::string path = "/tmp/hai_test_keys_" + std::to_string(::getpid()) + "_" + std::to_string(rand());
  std::ofstream(path) << content;
  return path;
}

}  // namespace

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(srv::to_hex(srv::sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(srv::to_hex(srv::sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(KeyStore, NoKeysAllowsEverything) {
  srv::KeyStore k;
  EXPECT_FALSE(k.enabled());
  EXPECT_TRUE(k.check(""));
  EXPECT_TRUE(k.check("Bearer anything"));
}

TEST(KeyStore, BearerKeys) {
  srv::KeyStore k;
  k.add_key("sk-1");
  EXPECT_TRUE(k.enabled());
  EXPECT_TRUE(k.check("Bearer sk-1"));
  EXPECT_TRUE(k.check("bearer sk-1"));
  EXPECT_FALSE(k.check("Bearer sk-2"));
  EXPECT_FALSE(k.check("Bearer sk-1 "));
  EXPECT_FALSE(k.check("sk-1"));
  EXPECT_FALSE(k.check("Basic sk-1"));
  EXPECT_FALSE(k.check("Bearer "));
  EXPECT_FALSE(k.check(""));
  EXPECT_THROW(k.add_key(""), hai::Error);
}

TEST(KeyStore, FileWithKeysAndHashes) {
  std::string hash = srv::to_hex(srv::sha256("sk-hashed"));
  std::string path = temp_file("# comment\n\n  sk-plain  \nsha256:" + hash + "\r\n");
  srv::KeyStore k;
  k.load_file(path);
  EXPECT_EQ(k.size(), 2u);
  EXPECT_TRUE(k.check_key("sk-plain"));
  EXPECT_TRUE(k.check_key("sk-hashed"));
  EXPECT_FALSE(k.check_key("sha256:" + hash));  // the hash itself is not a key
  EXPECT_FALSE(k.check_key("# comment"));
  std::remove(path.c_str());
}

TEST(KeyStore, BadFiles) {
  srv::KeyStore k;
  EXPECT_THROW(k.load_file("/nonexistent/keys.txt"), hai::Error);
  std::string empty = temp_file("# only a comment\n\n");
  try {
    k.load_file(empty);
    FAIL();
  } catch (const hai::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no keys"), std::string::npos);
  }
  std::string bad = temp_file("sha256:abc\n");
  try {
    k.load_file(bad);
    FAIL();
  } catch (const hai::Error& e) {
    EXPECT_NE(std::string(e.what()).find(":1:"), std::string::npos) << e.what();
  }
  std::string nonhex = temp_file("sha256:" + std::string(64, 'g') + "\n");
  EXPECT_THROW(k.load_file(nonhex), hai::Error);
  std::remove(empty.c_str());
  std::remove(bad.c_str());
  std::remove(nonhex.c_str());
}

TEST(Histogram, CumulativeBuckets) {
  srv::Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(7);
  h.observe(std::nan(""));  // ignored
  std::string s = h.render("x_seconds", "help text");
  EXPECT_NE(s.find("# HELP x_seconds help text\n# TYPE x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(s.find("x_seconds_bucket{le=\"0.10000000000000001\"} 1\n"), std::string::npos) << s;
  EXPECT_NE(s.find("x_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << s;
  EXPECT_NE(s.find("x_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(s.find("x_seconds_sum 8.05"), std::string::npos);
  EXPECT_NE(s.find("x_seconds_count 4\n"), std::string::npos);
  EXPECT_EQ(h.count(), 4u);
}

TEST(Metrics, Render) {
  srv::Metrics m;
  m.count_request("/v1/chat/completions", 200, 10);
  m.count_request("/v1/chat/completions", 200, 20);
  m.count_request("/v1/chat/completions", 400, 1);
  m.count_request("/wp-admin\"x", 404, 1);  // unknown paths do not become labels
  m.observe_ttft(0.2);
  m.observe_token_latency(0.01);
  m.count_cancelled();
  srv::Gauges g;
  g.queued = 3;
  g.active = 2;
  g.n_slots = 4;
  g.kv_used = 100;
  g.kv_total = 400;
  g.generated_tokens = 77;
  std::string s = m.render(g);
  EXPECT_NE(s.find("hai_requests_total{path=\"/v1/chat/completions\",status=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(s.find("hai_requests_total{path=\"/v1/chat/completions\",status=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("hai_requests_total{path=\"other\",status=\"404\"} 1\n"), std::string::npos);
  EXPECT_EQ(s.find("wp-admin"), std::string::npos);
  EXPECT_NE(s.find("hai_time_to_first_token_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(s.find("hai_time_per_output_token_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(s.find("hai_queue_depth 3\n"), std::string::npos);
  EXPECT_NE(s.find("hai_slots_active 2\n"), std::string::npos);
  EXPECT_NE(s.find("hai_kv_cache_usage_ratio 0.25\n"), std::string::npos);
  EXPECT_NE(s.find("hai_generated_tokens_total 77\n"), std::string::npos);
  EXPECT_NE(s.find("hai_cancelled_requests_total 1\n"), std::string::npos);
  EXPECT_EQ(m.requests("/v1/chat/completions", 200), 2u);
  // Every non-comment line is "name{labels} value" or "name value".
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "the text ends with a newline";
    std::string line = s.substr(start, end - start);
    if (line[0] != '#') {
      EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 1) << line;
    }
    start = end + 1;
  }
  EXPECT_EQ(srv::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Responses, Pieces) {
  EXPECT_STREQ(srv::finish_reason(hai::sched::FinishReason::Stop, false), "stop");
  EXPECT_STREQ(srv::finish_reason(hai::sched::FinishReason::Stop, true), "tool_calls");
  EXPECT_STREQ(srv::finish_reason(hai::sched::FinishReason::Length, false), "length");
  EXPECT_STREQ(srv::finish_reason(hai::sched::FinishReason::Timeout, false), "length");
  srv::Json u = srv::usage_json(10, 5, 3);
  EXPECT_EQ(u["total_tokens"], 15);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 3);
  EXPECT_EQ(srv::sse_event(srv::Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // A token that is half a UTF-8 character still serializes.
  hai::sched::TokenLogprob t;
  t.text = "\xe4\xbd";
  t.logprob = -0.5f;
  srv::Json e = srv::chat_logprob(t, {t});
  EXPECT_EQ(e["bytes"], srv::Json::parse("[228,189]"));
  EXPECT_NO_THROW(srv::dump_json(e));
  srv::Json lp = srv::empty_completion_logprobs();
  srv::add_completion_logprob(lp, t, {t}, 7);
  EXPECT_EQ(lp["text_offset"][0], 7);
  EXPECT_EQ(srv::base64_encode(""), "");
  EXPECT_EQ(srv::base64_encode("f"), "Zg==");
  EXPECT_EQ(srv::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(srv::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(srv::base64_floats({1.0f}), "AACAPw==");  // 0x3f800000 little-endian
  EXPECT_EQ(srv::make_id("chatcmpl-").size(), 9u + 24u);
}

TEST(Base64, DecodeRoundTripAndErrors) {
  for (std::string s : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\x00\xff\x10 binary", 10)}) {
    EXPECT_EQ(srv::base64_decode(srv::base64_encode(s), "p"), s);
  }
  EXPECT_EQ(srv::base64_decode("Zm9v\nYmFy", "p"), "foobar");  // whitespace is skipped
  EXPECT_EQ(srv::base64_decode("Zg", "p"), "f");                // padding is optional
  try {
    srv::base64_decode("Zm9v*", "content_base64");
    FAIL();
  } catch (const srv::ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.param(), "content_base64");
  }
  EXPECT_THROW(srv::base64_decode("Zg==Zg", "p"), srv::ApiError);
}
