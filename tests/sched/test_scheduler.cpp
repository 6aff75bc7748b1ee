// The scheduler against the single-sequence reference: what a request
// generates through the scheduler (batched with others, prefilled in chunks,
// reusing a cached prefix) is what Context + Sampler generate for it alone.
// Then the request life cycle: stop strings, max_tokens, a full context,
// cancel, deadlines, a full queue, errors, shutdown.
#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <thread>

#include "sched_test_util.h"
#include "engine/sched/text_stream.h"

namespace hai::sched {
namespace {

using test::greedy;
using test::Recorder;
using test::solo_generate;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::Model::load(hai::test::fixture("models/tiny-llama-spm-q8_0.gguf")).release();
    tok_ = Tokenizer::from_gguf(model_->file()).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete model_;
  }
  static std::vector<int32_t> encode(const std::string& text) { return tok_->encode(text, true, false); }
  static Request greedy_request(const std::vector<int32_t>& prompt, int64_t max_tokens, Recorder& rec) {
    Request r;
    r.prompt = prompt;
    r.sampling = greedy();
    r.max_tokens = max_tokens;
    r.on_event = rec.callback();
    return r;
  }
  static const model::Model* model_;
  static const Tokenizer* tok_;
};
const model::Model* SchedulerTest::model_ = nullptr;
const Tokenizer* SchedulerTest::tok_ = nullptr;

const char* kPrompts[] = {
    "The quick brown fox",
    "Once upon a time, in a land far away, there lived a king who had three daughters.",
    "你好，世界",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "A",
    "Large language models are",
};

TEST_F(SchedulerTest, SingleGreedyRequestMatchesContext) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  const auto prompt = encode(kPrompts[0]);
  Recorder rec;
  s.submit(greedy_request(prompt, 24, rec));
  ASSERT_TRUE(rec.wait());
  const auto want = solo_generate(*model_, *tok_, prompt, 24, greedy());
  EXPECT_EQ(rec.ids(), want);
  EXPECT_EQ(rec.done.finish, want.size() == 24 ? FinishReason::Length : FinishReason::Stop);
  EXPECT_EQ(rec.done.usage.prompt_tokens, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(rec.done.usage.completion_tokens, static_cast<int64_t>(want.size()));
  EXPECT_EQ(rec.done.usage.cached_tokens, 0);
  EXPECT_GE(rec.done.usage.total_ms, rec.done.usage.ttft_ms);
  EXPECT_EQ(rec.done_count, 1);
  EXPECT_FALSE(rec.event_after_done);

  // The streamed text is the detokenized pieces, as valid UTF-8.
  std::string pieces;
  for (int32_t id : want) pieces += tok_->token_to_piece(id, false);
  EXPECT_EQ(rec.text(), sanitize_utf8(pieces));
}

// Requests of different lengths at once, more of them than slots, with a
// small n_batch so that prompt chunks share steps with decoding streams.
void run_concurrent(const model::Model& m, const Tokenizer& tok, Options opt, int n_requests) {
  Scheduler s(m, tok, opt);
  std::vector<std::unique_ptr<Recorder>> recs;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n_requests; ++i) {
    prompts.push_back(tok.encode(kPrompts[i % 6], true, false));
    recs.push_back(std::make_unique<Recorder>());
    Request r;
    r.prompt = prompts.back();
    r.sampling = greedy();
    r.max_tokens = 12 + i;
    r.on_event = recs.back()->callback();
    s.submit(std::move(r));
  }
  for (int i = 0; i < n_requests; ++i) {
    ASSERT_TRUE(recs[i]->wait());
    EXPECT_EQ(recs[i]->ids(), solo_generate(m, tok, prompts[i], 12 + i, greedy(), opt.kv_type)) << "request " << i;
    EXPECT_EQ(recs[i]->done_count, 1);
  }
  const Stats st = s.stats();
  uint64_t generated = 0;
  for (auto& r : recs) generated += r->tokens.size();
  EXPECT_EQ(st.generated_tokens, generated);
  EXPECT_EQ(st.n_slots, opt.n_slots);
  EXPECT_EQ(st.kv_total, opt.n_slots * opt.n_ctx_slot);
  EXPECT_GT(st.steps, 0u);
}

TEST_F(SchedulerTest, FourConcurrentRequestsMatchTheirSoloRuns) {
  run_concurrent(*model_, *tok_, {.n_slots = 4, .n_ctx_slot = 128, .n_threads = 2, .n_batch = 7}, 4);
}

TEST_F(SchedulerTest, MoreRequestsThanSlots) {
  run_concurrent(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 128, .n_threads = 2, .n_batch = 16, .prefix_cache = false},
                 6);
}

TEST_F(SchedulerTest, Q8_0CacheConcurrent) {
  run_concurrent(*model_, *tok_,
                 {.n_slots = 3, .n_ctx_slot = 128, .n_threads = 2, .n_batch = 6, .kv_type = model::KvType::kQ8_0}, 4);
}

TEST_F(SchedulerTest, QwenModelConcurrent) {
  auto m = model::Model::load(hai::test::fixture("models/tiny-qwen2-gpt2-q4_k_m.gguf"));
  auto tok = Tokenizer::from_gguf(m->file());
  run_concurrent(*m, *tok, {.n_slots = 3, .n_ctx_slot = 128, .n_threads = 2, .n_batch = 5}, 4);
}

TEST_F(SchedulerTest, PrefixCacheReusesASharedSystemPrompt) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  const auto a = encode("You are a helpful assistant. Answer briefly.\nQ: What is the capital of France?");
  const auto b = encode("You are a helpful assistant. Answer briefly.\nQ: How far is the moon?");
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  ASSERT_GT(common, 5u);

  Recorder r1, r2, r3;
  s.submit(greedy_request(a, 8, r1));
  ASSERT_TRUE(r1.wait());
  EXPECT_EQ(r1.done.usage.cached_tokens, 0);
  s.submit(greedy_request(b, 8, r2));
  ASSERT_TRUE(r2.wait());
  EXPECT_EQ(r2.done.usage.cached_tokens, static_cast<int64_t>(common));
  EXPECT_EQ(r2.ids(), solo_generate(*model_, *tok_, b, 8, greedy()));

  // The same prompt again: all of it cached but the last token, which is
  // evaluated for its logits.
  s.submit(greedy_request(b, 8, r3));
  ASSERT_TRUE(r3.wait());
  EXPECT_EQ(r3.done.usage.cached_tokens, static_cast<int64_t>(b.size()) - 1);
  EXPECT_EQ(r3.ids(), r2.ids());
  EXPECT_EQ(s.stats().cached_tokens, common + b.size() - 1);
}

TEST_F(SchedulerTest, RequestGoesToTheSlotWithTheLongestPrefix) {
  Scheduler s(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 256, .n_threads = 2});
  const auto a = encode("Alpha beta gamma delta epsilon zeta eta theta");
  const auto b = encode("Zulu yankee xray whiskey victor uniform tango");
  Recorder ra, rb;
  s.submit(greedy_request(a, 4, ra));
  s.submit(greedy_request(b, 4, rb));
  ASSERT_TRUE(ra.wait());
  ASSERT_TRUE(rb.wait());
  // Whichever slot each went to, a prompt extending `b` finds b's cache.
  auto b2 = b;
  b2.push_back(b[1]);
  Recorder r;
  s.submit(greedy_request(b2, 4, r));
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.done.usage.cached_tokens, static_cast<int64_t>(b.size()));
  EXPECT_EQ(r.ids(), solo_generate(*model_, *tok_, b2, 4, greedy()));
}

// Concurrent requests with one system prompt (or n > 1 choices of one
// prompt): the prompt is computed once and copied to the other slots.
TEST_F(SchedulerTest, ConcurrentRequestsShareAPrefixInFlight) {
  const std::string system =
      "You are a careful assistant. You answer in one short sentence and you never make things up. ";
  const std::vector<std::string> questions = {"What is two plus two?", "Name a colour.", "Name a colour."};
  Scheduler s(*model_, *tok_, {.n_slots = 3, .n_ctx_slot = 256, .n_threads = 2, .n_batch = 16});
  std::vector<std::unique_ptr<Recorder>> recs;
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& q : questions) {
    prompts.push_back(encode(system + q));
    recs.push_back(std::make_unique<Recorder>());
    s.submit(greedy_request(prompts.back(), 6, *recs.back()));
  }
  size_t common = 0;
  while (prompts[0][common] == prompts[1][common]) ++common;
  int64_t cached = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    ASSERT_TRUE(recs[i]->wait());
    EXPECT_EQ(recs[i]->ids(), solo_generate(*model_, *tok_, prompts[i], 6, greedy())) << i;
    cached += recs[i]->done.usage.cached_tokens;
  }
  // The first request computes its prompt 16 tokens per step; the others
  // copy what is already computed (at least the first chunk each) and
  // compute only the rest.
  std::printf("  prompts of %zu, %zu, %zu tokens (%zu shared): %lld cached\n", prompts[0].size(), prompts[1].size(),
              prompts[2].size(), common, static_cast<long long>(cached));
  EXPECT_GE(cached, static_cast<int64_t>(2 * 16));
  EXPECT_EQ(recs[2]->ids(), recs[1]->ids());
  EXPECT_EQ(s.stats().cached_tokens, static_cast<uint64_t>(cached));
  EXPECT_LT(s.stats().prompt_tokens, prompts[0].size() + prompts[1].size() + prompts[2].size());
}

TEST_F(SchedulerTest, PrefixCacheOff) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2, .prefix_cache = false});
  const auto a = encode(kPrompts[1]);
  Recorder r1, r2;
  s.submit(greedy_request(a, 4, r1));
  ASSERT_TRUE(r1.wait());
  s.submit(greedy_request(a, 4, r2));
  ASSERT_TRUE(r2.wait());
  EXPECT_EQ(r2.done.usage.cached_tokens, 0);
  EXPECT_EQ(r2.ids(), r1.ids());
}

TEST_F(SchedulerTest, SeededSamplingMatchesSoloAndRepeats) {
  model::SamplerParams p;
  p.temperature = 0.9f;
  p.seed = 1234;
  p.repeat_penalty = 1.1f;
  p.frequency_penalty = 0.2f;
  p.presence_penalty = 0.1f;
  const auto prompt = encode(kPrompts[5]);
  const auto want = solo_generate(*model_, *tok_, prompt, 16, p);
  Scheduler s(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 128, .n_threads = 2});
  Recorder r1, r2;
  for (Recorder* r : {&r1, &r2}) {
    Request q;
    q.prompt = prompt;
    q.sampling = p;
    q.max_tokens = 16;
    q.on_event = r->callback();
    s.submit(std::move(q));
  }
  ASSERT_TRUE(r1.wait());
  ASSERT_TRUE(r2.wait());
  EXPECT_EQ(r1.ids(), want);
  EXPECT_EQ(r2.ids(), want);
}

TEST_F(SchedulerTest, StopStringSplitAcrossTokens) {
  const auto prompt = encode(kPrompts[0]);
  const auto solo = solo_generate(*model_, *tok_, prompt, 40, greedy());
  // A stop string made of the end of one ASCII piece and the start of the next.
  std::string stop, text_before;
  std::string text;
  for (size_t k = 0; k + 1 < solo.size() && stop.empty(); ++k) {
    const std::string p = tok_->token_to_piece(solo[k], false), q = tok_->token_to_piece(solo[k + 1], false);
    auto ascii = [](const std::string& s) {
      for (unsigned char c : s)
        if (c >= 0x80 || c < 0x20) return false;
      return !s.empty();
    };
    if (ascii(p) && ascii(q) && p.size() >= 2) {
      stop = p.substr(p.size() - 2) + q.substr(0, 1);
      text_before = text;
    }
    text += p;
  }
  ASSERT_FALSE(stop.empty()) << "no two ASCII pieces in a row in the greedy output";
  std::string full;
  for (int32_t id : solo) full += tok_->token_to_piece(id, false);
  const std::string expect = sanitize_utf8(full.substr(0, full.find(stop)));

  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  Recorder rec;
  Request r = greedy_request(prompt, 40, rec);
  r.stop = {"never appears \x01", stop};
  s.submit(std::move(r));
  ASSERT_TRUE(rec.wait());
  EXPECT_EQ(rec.done.finish, FinishReason::Stop);
  EXPECT_EQ(rec.text(), expect);
  EXPECT_EQ(rec.text().find(stop), std::string::npos);
  // No event's text ever held a part of the stop string beyond what is output.
  for (const Event& e : rec.tokens) EXPECT_EQ(e.text.find(stop), std::string::npos);
}

TEST_F(SchedulerTest, MaxTokens) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  Recorder rec;
  Request r = greedy_request(encode(kPrompts[1]), 5, rec);
  r.ignore_eos = true;
  s.submit(std::move(r));
  ASSERT_TRUE(rec.wait());
  EXPECT_EQ(rec.tokens.size(), 5u);
  EXPECT_EQ(rec.done.finish, FinishReason::Length);
  EXPECT_EQ(rec.done.usage.completion_tokens, 5);
}

TEST_F(SchedulerTest, ContextFullEndsWithLength) {
  const auto prompt = encode(kPrompts[0]);
  const int64_t n_ctx = static_cast<int64_t>(prompt.size()) + 3;
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = n_ctx, .n_threads = 2});
  Recorder rec;
  Request r = greedy_request(prompt, -1, rec);
  r.ignore_eos = true;
  s.submit(std::move(r));
  ASSERT_TRUE(rec.wait());
  // 3 free positions: 3 generated tokens are evaluated, the 4th is sampled from the last.
  EXPECT_EQ(rec.tokens.size(), 4u);
  EXPECT_EQ(rec.done.finish, FinishReason::Length);

  // A prompt filling the whole context still gets its one token.
  Recorder rec2;
  Request r2 = greedy_request(std::vector<int32_t>(static_cast<size_t>(n_ctx), prompt[1]), -1, rec2);
  s.submit(std::move(r2));
  ASSERT_TRUE(rec2.wait());
  EXPECT_LE(rec2.tokens.size(), 1u);
  if (rec2.tokens.size() == 1) {
    EXPECT_EQ(rec2.done.finish, FinishReason::Length);
  }
}

TEST_F(SchedulerTest, IgnoreEosNeverSamplesEog) {
  // Bias toward EOS: without ignore_eos the request stops at once...
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 128, .n_threads = 2});
  const int32_t eos = tok_->vocab().eog.at(0);
  Recorder r1, r2;
  Request q1 = greedy_request(encode(kPrompts[0]), 6, r1);
  q1.logit_bias = {{eos, 1000.0f}};
  s.submit(std::move(q1));
  ASSERT_TRUE(r1.wait());
  EXPECT_EQ(r1.tokens.size(), 0u);
  EXPECT_EQ(r1.done.finish, FinishReason::Stop);
  // ... with it, EOS is banned and generation runs to max_tokens.
  Request q2 = greedy_request(encode(kPrompts[0]), 6, r2);
  q2.logit_bias = {{eos, 1000.0f}};
  q2.ignore_eos = true;
  s.submit(std::move(q2));
  ASSERT_TRUE(r2.wait());
  EXPECT_EQ(r2.tokens.size(), 6u);
  for (int32_t id : r2.ids()) EXPECT_FALSE(tok_->is_eog(id));
  EXPECT_EQ(r2.done.finish, FinishReason::Length);
}

TEST_F(SchedulerTest, LogitBias) {
  Scheduler s(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 128, .n_threads = 2});
  const auto prompt = encode(kPrompts[0]);
  const auto solo = solo_generate(*model_, *tok_, prompt, 4, greedy());
  ASSERT_FALSE(solo.empty());
  Recorder ban, force;
  Request a = greedy_request(prompt, 4, ban);
  a.logit_bias = {{solo[0], -100.0f}};
  Request b = greedy_request(prompt, 4, force);
  b.logit_bias = {{1000, 100.0f}};
  s.submit(std::move(a));
  s.submit(std::move(b));
  ASSERT_TRUE(ban.wait());
  ASSERT_TRUE(force.wait());
  ASSERT_FALSE(ban.tokens.empty());
  EXPECT_NE(ban.ids()[0], solo[0]);
  EXPECT_EQ(force.ids(), std::vector<int32_t>(4, 1000));
}

TEST_F(SchedulerTest, Logprobs) {
  const auto prompt = encode(kPrompts[2]);
  // The reference distribution of the first token: log-softmax of the logits.
  model::Context ctx(*model_, 64, 2);
  std::vector<float> logits;
  ctx.eval(prompt, false, logits);
  const int64_t n_vocab = tok_->n_vocab();
  double max = -1e30, sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) max = std::max<double>(max, logits[i]);
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);

  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 128, .n_threads = 2});
  Recorder rec;
  Request r = greedy_request(prompt, 3, rec);
  r.logprobs = true;
  r.n_probs = 5;
  s.submit(std::move(r));
  ASSERT_TRUE(rec.wait());
  ASSERT_FALSE(rec.tokens.empty());
  for (const Event& e : rec.tokens) {
    ASSERT_EQ(e.top.size(), 5u);
    EXPECT_EQ(e.top[0].id, e.token.id);  // greedy takes the most likely
    EXPECT_FLOAT_EQ(e.top[0].logprob, e.token.logprob);
    EXPECT_LE(e.token.logprob, 0.0f);
    for (size_t i = 1; i < e.top.size(); ++i) EXPECT_LE(e.top[i].logprob, e.top[i - 1].logprob);
    EXPECT_EQ(e.token.text, tok_->token_to_piece(e.token.id, false));
  }
  const Event& first = rec.tokens[0];
  EXPECT_NEAR(first.token.logprob, logits[first.token.id] - max - std::log(sum), 1e-4);
}

TEST_F(SchedulerTest, CancelRunningFromTheCallback) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  Recorder rec;
  std::atomic<uint64_t> id{0};
  std::promise<void> submitted;
  std::shared_future<void> ready = submitted.get_future().share();
  Request r = greedy_request(encode(kPrompts[1]), -1, rec);
  r.ignore_eos = true;
  r.on_event = [&, ready](const Event& e) {
    ready.wait();
    rec.on_event(e);
    if (e.kind == Event::Kind::Token && rec.tokens.size() == 3) s.cancel(id.load());
  };
  id = s.submit(std::move(r));
  submitted.set_value();
  ASSERT_TRUE(rec.wait());
  EXPECT_EQ(rec.done.finish, FinishReason::Cancelled);
  EXPECT_EQ(rec.tokens.size(), 3u);
  EXPECT_EQ(rec.done.usage.completion_tokens, 3);

  // The slot is free again; unknown ids are ignored.
  s.cancel(987654);
  s.cancel(id);
  Recorder next;
  s.submit(greedy_request(encode(kPrompts[0]), 3, next));
  ASSERT_TRUE(next.wait());
  EXPECT_EQ(next.ids(), solo_generate(*model_, *tok_, encode(kPrompts[0]), 3, greedy()));
}

// Blocks the scheduler thread in a request's first token event until
// release(): the request then holds its slot, deterministically.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  std::promise<void> entered;
  std::function<void(const Event&)> wrap(Recorder& rec) {
    return [this, &rec, first = std::make_shared<bool>(true)](const Event& e) {
      rec.on_event(e);
      if (*first) {
        *first = false;
        entered.set_value();
        opened.wait();
      }
    };
  }
};

TEST_F(SchedulerTest, CancelQueuedRequest) {
  // The gate and the recorders outlive the scheduler, whose thread may still be in their callbacks.
  Gate gate;
  Recorder busy, queued;
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  Request r1 = greedy_request(encode(kPrompts[1]), -1, busy);
  r1.ignore_eos = true;
  r1.on_event = gate.wrap(busy);
  const uint64_t id1 = s.submit(std::move(r1));
  gate.entered.get_future().wait();
  const uint64_t id2 = s.submit(greedy_request(encode(kPrompts[0]), 8, queued));
  EXPECT_EQ(s.stats().queued, 1);
  EXPECT_EQ(s.stats().active, 1);
  s.cancel(id2);
  s.cancel(id1);
  gate.open.set_value();
  ASSERT_TRUE(queued.wait());
  ASSERT_TRUE(busy.wait());
  EXPECT_EQ(queued.done.finish, FinishReason::Cancelled);
  EXPECT_EQ(queued.tokens.size(), 0u);
  EXPECT_EQ(busy.done.finish, FinishReason::Cancelled);
}

TEST_F(SchedulerTest, QueueFull) {
  Gate gate;
  Recorder busy, q1, q2, q3;
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2, .max_queue = 2});
  Request r1 = greedy_request(encode(kPrompts[1]), -1, busy);
  r1.ignore_eos = true;
  r1.on_event = gate.wrap(busy);
  const uint64_t id1 = s.submit(std::move(r1));
  gate.entered.get_future().wait();
  s.submit(greedy_request(encode(kPrompts[0]), 2, q1));
  s.submit(greedy_request(encode(kPrompts[0]), 2, q2));
  EXPECT_THROW(s.submit(greedy_request(encode(kPrompts[0]), 2, q3)), QueueFull);
  EXPECT_EQ(s.stats().queued, 2);
  s.cancel(id1);
  gate.open.set_value();
  ASSERT_TRUE(q1.wait());
  ASSERT_TRUE(q2.wait());
  EXPECT_EQ(q1.done.finish, FinishReason::Length);
  EXPECT_EQ(q2.ids(), q1.ids());
  EXPECT_FALSE(q3.finished);
}

TEST_F(SchedulerTest, DeadlinePassedWhileQueuedOrRunning) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 256, .n_threads = 2});
  // Already past at submit.
  Recorder late;
  Request r = greedy_request(encode(kPrompts[0]), 8, late);
  r.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  s.submit(std::move(r));
  ASSERT_TRUE(late.wait());
  EXPECT_EQ(late.done.finish, FinishReason::Timeout);
  EXPECT_EQ(late.tokens.size(), 0u);

  // Passes during generation: the first token's event waits it out.
  Recorder running;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  Request q = greedy_request(encode(kPrompts[1]), -1, running);
  q.ignore_eos = true;
  q.deadline = deadline;
  q.on_event = [&](const Event& e) {
    running.on_event(e);
    if (e.kind == Event::Kind::Token && running.tokens.size() == 1) std::this_thread::sleep_until(deadline);
  };
  s.submit(std::move(q));
  ASSERT_TRUE(running.wait());
  EXPECT_EQ(running.done.finish, FinishReason::Timeout);
  EXPECT_EQ(running.tokens.size(), 1u);
}

TEST_F(SchedulerTest, CallbackExceptionEndsOnlyThatRequest) {
  Scheduler s(*model_, *tok_, {.n_slots = 2, .n_ctx_slot = 256, .n_threads = 2});
  Recorder bad, good;
  Request r = greedy_request(encode(kPrompts[0]), 8, bad);
  r.on_event = [&](const Event& e) {
    bad.on_event(e);
    if (e.kind == Event::Kind::Token) throw std::runtime_error("client went away");
  };
  s.submit(std::move(r));
  s.submit(greedy_request(encode(kPrompts[1]), 8, good));
  ASSERT_TRUE(bad.wait());
  ASSERT_TRUE(good.wait());
  EXPECT_EQ(bad.done.finish, FinishReason::Error);
  EXPECT_NE(bad.done.error.find("client went away"), std::string::npos);
  EXPECT_EQ(good.ids(), solo_generate(*model_, *tok_, encode(kPrompts[1]), 8, greedy()));
  // Still running.
  Recorder after;
  s.submit(greedy_request(encode(kPrompts[0]), 3, after));
  ASSERT_TRUE(after.wait());
  EXPECT_EQ(after.tokens.size(), 3u);
}

TEST_F(SchedulerTest, DestructorCancelsEverything) {
  Recorder running, queued;
  {
    Gate gate;
    Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 4096, .n_threads = 2});
    Request r = greedy_request(encode(kPrompts[1]), -1, running);
    r.ignore_eos = true;
    r.on_event = gate.wrap(running);
    s.submit(std::move(r));
    gate.entered.get_future().wait();
    s.submit(greedy_request(encode(kPrompts[0]), 8, queued));
    gate.open.set_value();
  }
  EXPECT_TRUE(running.finished);
  EXPECT_TRUE(queued.finished);
  EXPECT_EQ(running.done.finish, FinishReason::Cancelled);
  EXPECT_EQ(queued.done.finish, FinishReason::Cancelled);
  EXPECT_EQ(running.done_count, 1);
}

// Many clients at once on few slots, some cancelled at random moments (from
// their own callbacks and from other threads): every request gets exactly
// one Done, last, and the ones left alone produce their solo output.
TEST_F(SchedulerTest, ManyClientsWithCancellations) {
  Scheduler s(*model_, *tok_, {.n_slots = 4, .n_ctx_slot = 128, .n_threads = 2, .n_batch = 9, .max_queue = 64});
  constexpr int kN = 32;
  std::vector<std::unique_ptr<Recorder>> recs;
  std::vector<uint64_t> ids(kN);
  std::vector<std::atomic<bool>> may_cancel(kN);
  for (int i = 0; i < kN; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    Request r = greedy_request(encode(kPrompts[i % 6]), 6 + i % 5, *recs.back());
    if (i % 4 == 1) {
      Recorder* rec = recs.back().get();
      r.on_event = [&s, &ids, &may_cancel, rec, i](const Event& e) {
        rec->on_event(e);
        if (e.kind == Event::Kind::Token && rec->tokens.size() == 2 && may_cancel[i]) s.cancel(ids[i]);
      };
    }
    ids[i] = s.submit(std::move(r));
    may_cancel[i] = true;
  }
  for (int i = 3; i < kN; i += 8) s.cancel(ids[i]);  // from this thread, wherever they are
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(recs[i]->wait()) << i;
    EXPECT_EQ(recs[i]->done_count, 1) << i;
    EXPECT_FALSE(recs[i]->event_after_done) << i;
    const FinishReason f = recs[i]->done.finish;
    if (i % 4 == 1 && recs[i]->tokens.size() >= 2 && f == FinishReason::Cancelled) {
      EXPECT_EQ(recs[i]->tokens.size(), 2u) << i;
    } else if (i % 8 == 3) {
      EXPECT_TRUE(f == FinishReason::Cancelled || f == FinishReason::Length || f == FinishReason::Stop) << i;
    } else {
      EXPECT_NE(f, FinishReason::Cancelled) << i;
    }
    if (f != FinishReason::Cancelled) {
      EXPECT_EQ(recs[i]->ids(), solo_generate(*model_, *tok_, encode(kPrompts[i % 6]), 6 + i % 5, greedy())) << i;
    }
  }
  const Stats st = s.stats();
  EXPECT_EQ(st.queued, 0);
  EXPECT_EQ(st.active, 0);
}

TEST_F(SchedulerTest, BatchOfOneTokenStillServesEverySlot) {
  // n_batch below the number of generating slots: each still decodes every step.
  run_concurrent(*model_, *tok_, {.n_slots = 3, .n_ctx_slot = 96, .n_threads = 1, .n_batch = 1}, 3);
}

TEST_F(SchedulerTest, InvalidRequests) {
  Scheduler s(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 16, .n_threads = 1});
  Recorder rec;
  auto expect_error = [&](Request r, const std::string& needle) {
    try {
      s.submit(std::move(r));
      ADD_FAILURE() << "accepted; expected an error naming " << needle;
    } catch (const QueueFull&) {
      ADD_FAILURE() << "QueueFull instead of a validation error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::vector<int32_t> ok = {1, 100, 200};
  auto base = [&] { return greedy_request(ok, 4, rec); };

  Request r = base();
  r.prompt.clear();
  expect_error(r, "prompt");
  r = base();
  r.prompt[1] = -5;
  expect_error(r, "-5");
  r = base();
  r.prompt[1] = static_cast<int32_t>(tok_->n_vocab());
  expect_error(r, std::to_string(tok_->n_vocab()));
  r = base();
  r.prompt.assign(17, 100);
  expect_error(r, "context");
  r = base();
  r.sampling.temperature = -1;
  expect_error(r, "temperature");
  r = base();
  r.sampling.top_p = 0;
  expect_error(r, "top_p");
  r = base();
  r.sampling.temperature = NAN;
  expect_error(r, "temperature");
  r = base();
  r.max_tokens = 0;
  expect_error(r, "max_tokens");
  r = base();
  r.max_tokens = -7;
  expect_error(r, "max_tokens");
  r = base();
  r.n_probs = 21;
  expect_error(r, "logprobs");
  r = base();
  r.logit_bias = {{-1, 1.0f}};
  expect_error(r, "logit_bias");
  r = base();
  r.logit_bias = {{5, NAN}};
  expect_error(r, "logit_bias");
  r = base();
  r.stop = {""};
  expect_error(r, "stop");
  r = base();
  r.stop = {"\xff"};
  expect_error(r, "stop");
  r = base();
  r.on_event = nullptr;
  expect_error(r, "on_event");
  EXPECT_FALSE(rec.finished);
  EXPECT_EQ(s.stats().queued, 0);
}

TEST_F(SchedulerTest, InvalidOptions) {
  EXPECT_THROW(Scheduler(*model_, *tok_, {.n_slots = 0}), Error);
  EXPECT_THROW(Scheduler(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 0}), Error);
  EXPECT_THROW(Scheduler(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 16, .n_threads = -1}), Error);
  EXPECT_THROW(Scheduler(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 16, .n_threads = 1, .n_batch = 0}), Error);
  EXPECT_THROW(Scheduler(*model_, *tok_, {.n_slots = 1, .n_ctx_slot = 16, .n_threads = 1, .n_batch = 8, .max_queue = -1}),
               Error);
  EXPECT_STREQ(to_string(FinishReason::Length), "length");
  EXPECT_STREQ(to_string(FinishReason::Cancelled), "cancelled");
}

}  // namespace
}  // namespace hai::sched
