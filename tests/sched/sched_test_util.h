// Helpers for the scheduler tests: a request that records its events, and
// the single-sequence reference (Context + Sampler) that the scheduler's
// output is compared with.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"
#include "engine/sched/scheduler.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::sched::test {

// Collects the events of one request; wait() blocks until Done.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> tokens;  // Token events
  Event done;
  bool finished = false;
  int done_count = 0;
  bool event_after_done = false;

  std::function<void(const Event&)> callback() {
    return [this](const Event& e) { on_event(e); };
  }
  void on_event(const Event& e) {
    std::lock_guard<std::mutex> lk(mu);
    if (finished) event_after_done = true;
    if (e.kind == Event::Kind::Token) {
      tokens.push_back(e);
    } else {
      done = e;
      finished = true;
      ++done_count;
    }
    cv.notify_all();
  }
  // Waits for Done (the bound only keeps a broken scheduler from hanging the
  // suite; it is no timing assertion). Returns false if it never came.
  bool wait() {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(120), [&] { return finished; });
  }
  std::vector<int32_t> ids() const {
    std::vector<int32_t> v;
    for (const Event& e : tokens) v.push_back(e.token.id);
    return v;
  }
  std::string text() const {
    std::string s;
    for (const Event& e : tokens) s += e.text;
    return s + done.text;
  }
};

inline model::SamplerParams greedy() {
  model::SamplerParams p;
  p.temperature = 0.0f;
  return p;
}

// What one sequence generates alone: the prompt through Context::eval, then
// `n` tokens from `params`'s sampler (which first sees the prompt, as the
// scheduler's does); stops early at an end-of-generation token.
inline std::vector<int32_t> solo_generate(const model::Model& m, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                                          int n, const model::SamplerParams& params,
                                          model::KvType kv_type = model::KvType::kF16) {
  model::Context ctx(m, static_cast<int64_t>(prompt.size()) + n + 1, 2, 1, kv_type);
  model::Sampler sampler(params);
  for (int32_t t : prompt) sampler.accept(t);
  std::vector<float> logits;
  ctx.eval(prompt, false, logits);
  std::vector<int32_t> out;
  const int64_t n_vocab = std::min<int64_t>(m.hparams().n_vocab, tok.n_vocab());
  for (int i = 0; i < n; ++i) {
    const int32_t id = sampler.sample(logits.data(), n_vocab);
    sampler.accept(id);
    if (tok.is_eog(id)) break;
    out.push_back(id);
    ctx.eval({id}, false, logits);
  }
  return out;
}

}  // namespace hai::sched::test
