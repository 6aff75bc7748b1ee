// The scheduler: many generation requests over one model, with continuous
// batching.
//
// A Scheduler owns `n_slots` sequences (slots), each with its own region of
// the KV cache, and one thread that runs steps. In every step it builds one
// batch from
//   - one token for every slot that is generating (decode), and
//   - a chunk of the prompt of slots that are still reading their prompt
//     (prefill is chunked so that running streams keep flowing),
// evaluates the batch in one forward pass (the weights are read once for
// all of them), samples a token for each generating slot, and reports it.
// Requests wait in a bounded queue until a slot is free; they join the
// running batch at the next step and leave it the step they finish.
//
// Prefix cache: a slot keeps the tokens of its last request in its cache
// when it finishes. A new request goes to the free slot whose cached tokens
// share the longest prefix with its prompt, and only the rest of the prompt
// is evaluated (usage.cached_tokens says how many were reused).
//
//   sched::Scheduler s(model, tokenizer, {.n_slots = 4});
//   sched::Request r;
//   r.prompt = tokenizer.encode(text, true, true);
//   r.max_tokens = 128;
//   r.on_event = [&](const sched::Event& e) { ... };   // on the scheduler thread
//   uint64_t id = s.submit(std::move(r));               // returns at once
//   s.cancel(id);                                       // e.g. client gone
//
// on_event is called on the scheduler thread, for every generated token
// (Kind::Token) and exactly once at the end (Kind::Done, always the last
// event). It must return quickly and must not call back into the scheduler
// except cancel().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/error.h"
#include "engine/grammar/grammar.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::sched {

// submit() when the queue already holds Options::max_queue requests.
class QueueFull : public Error {
 public:
  using Error::Error;
};

enum class FinishReason {
  Stop,       // an end-of-generation token, a stop string, or the grammar is finished
  Length,     // max_tokens reached, or the slot's context is full
  Cancelled,  // cancel() or the scheduler shut down
  Timeout,    // the request's deadline passed
  Error,      // see Event::error
};
const char* to_string(FinishReason r);  // "stop", "length", "cancelled", "timeout", "error"

struct TokenLogprob {
  int32_t id = -1;
  std::string text;  // the token's piece (bytes; may be part of a UTF-8 character)
  float logprob = 0;  // log of the probability after logit_bias and grammar, before temperature/top-k/p
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;   // prompt tokens reused from the prefix cache
  double queue_ms = 0;         // submit -> slot assigned
  double ttft_ms = 0;          // submit -> first generated token
  double total_ms = 0;         // submit -> done
};

struct Event {
  enum class Kind { Token, Done };
  Kind kind = Kind::Token;
  // Text to append to the output. Token: may be empty while bytes are held
  // back (an incomplete UTF-8 character, or a possible start of a stop
  // string); Done: whatever was still held back and belongs to the output.
  // Concatenating every event's text gives the whole output, never a stop
  // string, always valid UTF-8.
  std::string text;
  // Token only: the sampled token and, when Request::logprobs, its log
  // probability and the n_probs most likely alternatives.
  TokenLogprob token;
  std::vector<TokenLogprob> top;
  // Done only.
  FinishReason finish = FinishReason::Stop;
  std::string error;
  Usage usage;
};

struct Request {
  std::vector<int32_t> prompt;  // non-empty, every id in the vocabulary
  model::SamplerParams sampling;
  int64_t max_tokens = -1;               // > 0, or -1: until the slot's context is full
  std::vector<std::string> stop;         // stop strings (not part of the output)
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logits; -100 bans
  bool logprobs = false;
  int n_probs = 0;                       // top alternatives per token, 0..20
  std::shared_ptr<const grammar::Grammar> grammar;  // null: free text
  bool ignore_eos = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<void(const Event&)> on_event;
};

struct Options {
  int n_slots = 1;           // >= 1 sequences decoded together
  int64_t n_ctx_slot = 4096; // positions of each slot's cache
  int n_threads = 0;         // 0: hardware concurrency
  int64_t n_batch = 512;     // most tokens in one step (decode tokens first, then prompt chunks;
                             // every generating slot gets its token even if n_batch < n_slots)
  int64_t max_queue = 64;    // requests waiting for a slot (beyond the free slots); more -> QueueFull
  bool prefix_cache = true;
  model::KvType kv_type = model::KvType::kF16;  // Q8_0: half the cache memory, slightly different numbers
};

struct Stats {
  int64_t queued = 0;        // waiting for a slot
  int64_t active = 0;        // slots running a request
  int64_t n_slots = 0;
  int64_t kv_used = 0;       // cache positions in use (including cached prefixes)
  int64_t kv_total = 0;      // n_slots * n_ctx_slot
  uint64_t prompt_tokens = 0;     // evaluated prompt tokens, all time
  uint64_t cached_tokens = 0;     // prompt tokens reused from the prefix cache, all time
  uint64_t generated_tokens = 0;  // all time
  uint64_t steps = 0;
};

class Scheduler {
 public:
  // The model and tokenizer must outlive the scheduler. Starts the thread.
  // Throws hai::Error on bad options.
  Scheduler(const model::Model& model, const Tokenizer& tokenizer, Options options);
  // Cancels every request (each gets its Done event) and joins the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its id at once. Throws hai::Error (naming
  // the field) on an empty prompt, a token outside the vocabulary, a prompt
  // that does not fit in a slot's context, bad sampling values; QueueFull
  // when the queue is full.
  uint64_t submit(Request request);
  // Ends a queued or running request (Done with Cancelled) at the next step;
  // its slot is free for the next request. Unknown or finished ids: no-op.
  void cancel(uint64_t id);

  Stats stats() const;
  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hai::sched
