// Decoding under a grammar through the scheduler: even a model of random
// weights produces only sentences of the grammar, stops when the grammar is
// finished, and may end (EOG) only where the grammar is complete.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sched_test_util.h"

namespace hai::sched {
namespace {

using test::greedy;
using test::Recorder;

class SchedulerGrammar : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::Model::load(hai::test::fixture("models/tiny-qwen2-gpt2-q8_0.gguf")).release();
    tok_ = Tokenizer::from_gguf(model_->file()).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete model_;
  }
  static Request request(std::shared_ptr<const grammar::Grammar> g, int64_t max_tokens, Recorder& rec) {
    Request r;
    r.prompt = tok_->encode("Answer in JSON:", true, false);
    r.sampling = greedy();
    r.max_tokens = max_tokens;
    r.grammar = std::move(g);
    r.on_event = rec.callback();
    return r;
  }
  static const model::Model* model_;
  static const Tokenizer* tok_;
};
const model::Model* SchedulerGrammar::model_ = nullptr;
const Tokenizer* SchedulerGrammar::tok_ = nullptr;

TEST_F(SchedulerGrammar, FiniteGrammarStopsWhenFinished) {
  auto g = grammar::Grammar::parse_gbnf("root ::= \"yes\" | \"no\" | \"maybe not\"\n");
  Scheduler s(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 128, .n_threads = 2});
  Recorder a, b;
  s.submit(request(g, 32, a));
  // A model that wants to end at once: EOS is only allowed once "yes"/"no" is complete.
  Request r = request(g, 32, b);
  r.logit_bias = {{tok_->vocab().eog.at(0), 1000.0f}};
  s.submit(std::move(r));
  ASSERT_TRUE(a.wait());
  ASSERT_TRUE(b.wait());
  for (Recorder* rec : {&a, &b}) {
    EXPECT_EQ(rec->done.finish, FinishReason::Stop);
    const std::string t = rec->text();
    EXPECT_TRUE(t == "yes" || t == "no" || t == "maybe not") << t;
  }
}

TEST_F(SchedulerGrammar, JsonSchemaOutputValidates) {
  const auto schema = nlohmann::ordered_json::parse(R"({
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "kind": {"enum": ["a", "b", "c"]}},
    "required": ["ok", "kind"],
    "additionalProperties": false})");
  auto g = grammar::Grammar::from_json_schema(schema);
  Scheduler s(*model_, *tok_, {.n_slots = 3, .n_ctx_slot = 256, .n_threads = 2, .n_batch = 6});
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < 3; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    Request r = request(g, 200, *recs.back());
    r.sampling.temperature = 0.8f;
    r.sampling.seed = 7 + i;
    // Push the model toward ending: EOS must wait until the object is complete.
    r.logit_bias = {{tok_->vocab().eog.at(0), 5.0f}};
    s.submit(std::move(r));
  }
  int parsed = 0;
  for (auto& rec : recs) {
    ASSERT_TRUE(rec->wait());
    const std::string t = rec->text();
    std::printf("  %s: %s\n", to_string(rec->done.finish), t.c_str());
    if (rec->done.finish == FinishReason::Length) continue;  // ran out of tokens inside the object
    ASSERT_EQ(rec->done.finish, FinishReason::Stop) << rec->done.error;
    const auto j = nlohmann::json::parse(t);
    ASSERT_TRUE(j.is_object()) << t;
    EXPECT_TRUE(j.at("ok").is_boolean()) << t;
    const std::string kind = j.at("kind").get<std::string>();
    EXPECT_TRUE(kind == "a" || kind == "b" || kind == "c") << t;
    EXPECT_EQ(j.size(), 2u) << t;
    ++parsed;
  }
  EXPECT_GE(parsed, 1);
}

}  // namespace
}  // namespace hai::sched
