#include "engine/sched/scheduler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "engine/model/forward.h"
#include "engine/sched/text_stream.h"

namespace hai::sched {

const char* to_string(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Timeout: return "timeout";
    case FinishReason::Error: return "error";
  }
  return "error";
}

namespace {

using Clock = std::chrono::steady_clock;

double ms(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

// One request from submit() to its Done event.
struct Job {
  uint64_t id = 0;
  Request req;
  Clock::time_point submitted, assigned, first_token;

  // Set when it runs in a slot (scheduler thread only).
  std::unique_ptr<model::Sampler> sampler;
  std::unique_ptr<grammar::Matcher> matcher;
  TextStream text;
  bool cancel = false;    // cancel() seen: end at the next step
  int64_t n_prompt = 0;   // prompt tokens in the slot's cache (cached prefix included)
  int64_t cached = 0;     // of which reused from the prefix cache
  int64_t generated = 0;  // Token events sent
  int32_t next = -1;      // sampled token to evaluate in the next step (-1: none yet)
};

struct Scheduler::Impl {
  Impl(const model::Model& m, const Tokenizer& t, Options o);

  // Scheduler thread.
  void loop();
  void step();
  void share_prefixes();
  void start(Job& job, int slot);
  // Samples the next token of the job in `slot` from its row of logits and
  // reports it; ends the job when it is finished.
  void on_logits(int slot, const float* logits);
  void finish(int slot, FinishReason why, const std::string& error = {});
  void finish_unassigned(std::unique_ptr<Job> job, FinishReason why, const std::string& error = {});
  void send(Job& job, const Event& e);  // on_event; its exceptions are the caller's
  Usage usage(const Job& job) const;
  void publish_stats();

  const model::Model& model;
  const Tokenizer& tok;
  const Options opt;
  int64_t n_vocab = 0;  // ids that can be sampled (model rows known to the tokenizer)
  std::unique_ptr<model::Context> ctx;

  // Slots: scheduler thread only.
  struct Slot {
    std::vector<int32_t> tokens;  // what its cache sequence holds
    std::unique_ptr<Job> job;     // null: free
    uint64_t last_used = 0;       // step it last ran a job (least recently used wins ties)
  };
  std::vector<Slot> slots;
  uint64_t n_steps = 0;
  std::vector<model::BatchToken> batch;
  std::vector<int> batch_rows;  // for each logits row of the batch: its slot
  std::vector<int> prefilling;  // slots reading their prompt, oldest request first
  std::vector<float> logits, scratch;

  // Shared with submit() / cancel() / stats().
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Job>> queue;
  std::unordered_set<uint64_t> cancels;
  bool stop = false;
  uint64_t next_id = 1;
  int64_t n_free = 0;  // slots without a job (submit may queue that many more)
  Stats stats;

  std::thread thread;
};

Scheduler::Impl::Impl(const model::Model& m, const Tokenizer& t, Options o) : model(m), tok(t), opt(o) {
  if (opt.n_slots < 1 || opt.n_slots > 1024)
    throw Error("scheduler: n_slots must be in [1, 1024], got " + std::to_string(opt.n_slots));
  if (opt.n_ctx_slot < 1) throw Error("scheduler: n_ctx_slot must be positive, got " + std::to_string(opt.n_ctx_slot));
  if (opt.n_threads < 0 || opt.n_threads > 1024)
    throw Error("scheduler: n_threads must be in [0, 1024], got " + std::to_string(opt.n_threads));
  if (opt.n_batch < 1) throw Error("scheduler: n_batch must be positive, got " + std::to_string(opt.n_batch));
  if (opt.max_queue < 0) throw Error("scheduler: max_queue must be >= 0, got " + std::to_string(opt.max_queue));
  n_vocab = std::min<int64_t>(model.hparams().n_vocab, tok.n_vocab());
  const int threads = opt.n_threads > 0 ? opt.n_threads : std::max(1u, std::thread::hardware_concurrency());
  ctx = std::make_unique<model::Context>(model, opt.n_ctx_slot, threads, opt.n_slots, opt.kv_type);
  slots.resize(static_cast<size_t>(opt.n_slots));
  n_free = opt.n_slots;
  stats.n_slots = opt.n_slots;
  stats.kv_total = opt.n_slots * opt.n_ctx_slot;
}

Scheduler::Scheduler(const model::Model& model, const Tokenizer& tokenizer, Options options)
    : impl_(std::make_unique<Impl>(model, tokenizer, options)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

const Options& Scheduler::options() const { return impl_->opt; }

Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  Stats st = impl_->stats;
  st.queued = static_cast<int64_t>(impl_->queue.size());
  st.active = impl_->opt.n_slots - impl_->n_free;
  return st;
}

uint64_t Scheduler::submit(Request r) {
  Impl& s = *impl_;
  const int64_t n = static_cast<int64_t>(r.prompt.size());
  if (n == 0) throw Error("prompt: is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= s.n_vocab)
      throw Error("prompt: token " + std::to_string(i) + " has id " + std::to_string(r.prompt[i]) +
                  ", outside the vocabulary [0, " + std::to_string(s.n_vocab) + ")");
  if (n > s.opt.n_ctx_slot)
    throw Error("prompt: " + std::to_string(n) + " tokens do not fit in the context of " +
                std::to_string(s.opt.n_ctx_slot) + " tokens");
  model::validate(r.sampling);
  if (r.max_tokens == 0 || r.max_tokens < -1)
    throw Error("max_tokens must be positive (or -1 for no limit), got " + std::to_string(r.max_tokens));
  if (r.n_probs < 0 || r.n_probs > 20) throw Error("top_logprobs must be in [0, 20], got " + std::to_string(r.n_probs));
  for (const auto& [id, bias] : r.logit_bias) {
    if (id < 0 || id >= s.n_vocab)
      throw Error("logit_bias: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(s.n_vocab) + ")");
    if (std::isnan(bias) || bias == std::numeric_limits<float>::infinity())
      throw Error("logit_bias: the bias of token " + std::to_string(id) + " must be a number or -inf");
  }
  for (const std::string& stop : r.stop)
    if (stop.empty() || sanitize_utf8(stop) != stop) throw Error("stop: each stop string must be non-empty UTF-8");
  if (!r.on_event) throw Error("request: on_event is required");

  auto job = std::make_unique<Job>();
  job->req = std::move(r);
  job->submitted = Clock::now();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    if (s.stop) throw Error("the scheduler is shutting down");
    if (static_cast<int64_t>(s.queue.size()) >= s.opt.max_queue + s.n_free)
      throw QueueFull("the request queue is full (" + std::to_string(s.queue.size()) + " waiting); retry later");
    id = job->id = s.next_id++;
    s.queue.push_back(std::move(job));
  }
  s.cv.notify_all();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->cancels.insert(id);
  }
  impl_->cv.notify_all();
}

// --- The scheduler thread ---------------------------------------------------

void Scheduler::Impl::loop() {
  for (;;) {
    std::vector<std::unique_ptr<Job>> cancelled, timed_out;
    std::vector<std::pair<std::unique_ptr<Job>, int>> starting;
    {
      std::unique_lock<std::mutex> lk(mu);
      const bool busy = n_free < opt.n_slots;
      cv.wait(lk, [&] { return stop || busy || !queue.empty() || !cancels.empty(); });
      if (stop) break;

      // cancel(): queued jobs end now, running ones at this step.
      for (uint64_t id : cancels) {
        auto q = std::find_if(queue.begin(), queue.end(), [&](const auto& j) { return j->id == id; });
        if (q != queue.end()) {
          cancelled.push_back(std::move(*q));
          queue.erase(q);
          continue;
        }
        for (Slot& sl : slots)
          if (sl.job && sl.job->id == id) sl.job->cancel = true;
      }
      cancels.clear();

      // Queued jobs past their deadline.
      const Clock::time_point now = Clock::now();
      for (auto q = queue.begin(); q != queue.end();) {
        if ((*q)->req.deadline <= now) {
          timed_out.push_back(std::move(*q));
          q = queue.erase(q);
        } else {
          ++q;
        }
      }

      // Free slots take queued jobs in order: each the free slot whose cache
      // shares the longest prefix with its prompt (least recently used on ties).
      std::vector<bool> taken(slots.size(), false);
      while (!queue.empty()) {
        const std::vector<int32_t>& prompt = queue.front()->req.prompt;
        int best = -1;
        size_t best_len = 0;
        for (size_t i = 0; i < slots.size(); ++i) {
          if (slots[i].job || taken[i]) continue;
          size_t len = 0;
          if (opt.prefix_cache) {
            const std::vector<int32_t>& c = slots[i].tokens;
            while (len < c.size() && len < prompt.size() && c[len] == prompt[len]) ++len;
          }
          if (best < 0 || len > best_len || (len == best_len && slots[i].last_used < slots[best].last_used)) {
            best = static_cast<int>(i);
            best_len = len;
          }
        }
        if (best < 0) break;
        taken[best] = true;
        starting.emplace_back(std::move(queue.front()), best);
        queue.pop_front();
        --n_free;
      }
    }

    for (auto& j : cancelled) finish_unassigned(std::move(j), FinishReason::Cancelled);
    for (auto& j : timed_out) finish_unassigned(std::move(j), FinishReason::Timeout);
    for (auto& [job, slot] : starting) {
      slots[slot].job = std::move(job);
      try {
        start(*slots[slot].job, slot);
      } catch (const std::exception& e) {
        finish(slot, FinishReason::Error, e.what());
      }
    }

    // Running jobs that were cancelled or ran out of time end before the step.
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < slots.size(); ++i) {
      Job* j = slots[i].job.get();
      if (!j) continue;
      if (j->cancel)
        finish(static_cast<int>(i), FinishReason::Cancelled);
      else if (j->req.deadline <= now)
        finish(static_cast<int>(i), FinishReason::Timeout);
    }

    step();
    publish_stats();
  }

  // Shut down: every request ends as cancelled.
  std::deque<std::unique_ptr<Job>> rest;
  {
    std::lock_guard<std::mutex> lk(mu);
    rest.swap(queue);
  }
  for (auto& j : rest) finish_unassigned(std::move(j), FinishReason::Cancelled);
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].job) finish(static_cast<int>(i), FinishReason::Cancelled);
  publish_stats();
}

// A job enters `slot`: keep the cached prefix it shares with the prompt
// (all but the last prompt token at most: its logits are needed), set up
// its sampler (which sees the prompt for the penalties) and grammar.
void Scheduler::Impl::start(Job& job, int slot) {
  Slot& sl = slots[slot];
  const std::vector<int32_t>& prompt = job.req.prompt;
  job.assigned = Clock::now();
  size_t keep = 0;
  if (opt.prefix_cache)
    while (keep < sl.tokens.size() && keep < prompt.size() && sl.tokens[keep] == prompt[keep]) ++keep;
  keep = std::min(keep, prompt.size() - 1);
  ctx->seq_truncate(slot, static_cast<int64_t>(keep));
  sl.tokens.resize(keep);
  sl.last_used = n_steps;
  job.n_prompt = job.cached = static_cast<int64_t>(keep);
  {
    std::lock_guard<std::mutex> lk(mu);
    stats.cached_tokens += keep;
  }
  job.text = TextStream(job.req.stop);
  job.sampler = std::make_unique<model::Sampler>(job.req.sampling);
  for (int32_t t : prompt) job.sampler->accept(t);
  if (job.req.grammar) job.matcher = std::make_unique<grammar::Matcher>(job.req.grammar, tok);
}

// A slot reading its prompt copies the part of it that another slot's cache
// already holds (concurrent requests with the same system prompt, n > 1
// choices of one prompt) instead of computing it again. Up to the last
// prompt token, whose logits are needed.
void Scheduler::Impl::share_prefixes() {
  if (!opt.prefix_cache || slots.size() < 2) return;
  for (size_t i = 0; i < slots.size(); ++i) {
    Job* j = slots[i].job.get();
    if (!j || j->next >= 0) continue;
    const std::vector<int32_t>& prompt = j->req.prompt;
    const size_t limit = prompt.size() - 1;
    size_t best = static_cast<size_t>(j->n_prompt);
    int from = -1;
    for (size_t k = 0; k < slots.size(); ++k) {
      const std::vector<int32_t>& c = slots[k].tokens;
      if (k == i || c.size() <= best) continue;
      size_t p = 0;
      while (p < c.size() && p < limit && c[p] == prompt[p]) ++p;
      if (p > best) {
        best = p;
        from = static_cast<int>(k);
      }
    }
    if (from < 0) continue;
    ctx->seq_copy(from, static_cast<int>(i), static_cast<int64_t>(best), j->n_prompt);
    slots[i].tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(best));
    const int64_t gained = static_cast<int64_t>(best) - j->n_prompt;
    j->cached += gained;
    j->n_prompt = static_cast<int64_t>(best);
    std::lock_guard<std::mutex> lk(mu);
    stats.cached_tokens += static_cast<uint64_t>(gained);
  }
}

// One forward pass: a token for every generating slot, then prompt chunks
// of the slots still reading their prompt, up to n_batch tokens in all.
void Scheduler::Impl::step() {
  share_prefixes();
  batch.clear();
  batch_rows.clear();
  for (size_t i = 0; i < slots.size(); ++i) {
    const Job* j = slots[i].job.get();
    if (!j || j->next < 0) continue;
    batch.push_back({j->next, static_cast<int32_t>(i), true});
    batch_rows.push_back(static_cast<int>(i));
  }
  // Prompts in the order the requests came (the oldest finishes its prefill first).
  prefilling.clear();
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].job && slots[i].job->next < 0) prefilling.push_back(static_cast<int>(i));
  std::sort(prefilling.begin(), prefilling.end(), [&](int a, int b) { return slots[a].job->id < slots[b].job->id; });
  int64_t budget = opt.n_batch - static_cast<int64_t>(batch.size());
  for (int i : prefilling) {
    if (budget <= 0) break;
    const Job* j = slots[i].job.get();
    const int64_t total = static_cast<int64_t>(j->req.prompt.size());
    const int64_t take = std::min(budget, total - j->n_prompt);
    for (int64_t k = 0; k < take; ++k) {
      const bool last = j->n_prompt + k + 1 == total;
      batch.push_back({j->req.prompt[j->n_prompt + k], static_cast<int32_t>(i), last});
      if (last) batch_rows.push_back(static_cast<int>(i));
    }
    budget -= take;
  }
  if (batch.empty()) return;
  ++n_steps;

  try {
    ctx->eval_batch(batch, logits);
  } catch (const std::exception& e) {
    // The cache of these sequences is in an unknown state: forget it.
    for (const model::BatchToken& b : batch) {
      if (!slots[b.seq].job) continue;
      finish(b.seq, FinishReason::Error, std::string("evaluation failed: ") + e.what());
    }
    for (const model::BatchToken& b : batch) {
      ctx->seq_truncate(b.seq, 0);
      slots[b.seq].tokens.clear();
    }
    return;
  }

  // The cache now holds the batch.
  uint64_t prompt_evaluated = 0;
  for (const model::BatchToken& b : batch) {
    Slot& sl = slots[b.seq];
    sl.tokens.push_back(b.token);
    sl.last_used = n_steps;
    if (sl.job->next >= 0) {
      sl.job->next = -1;
    } else {
      ++sl.job->n_prompt;
      ++prompt_evaluated;
    }
  }
  {
    std::lock_guard<std::mutex> lk(mu);
    stats.prompt_tokens += prompt_evaluated;
    stats.steps = n_steps;
  }
  for (size_t r = 0; r < batch_rows.size(); ++r) {
    const int slot = batch_rows[r];
    try {
      on_logits(slot, logits.data() + static_cast<int64_t>(r) * model.hparams().n_vocab);
    } catch (const std::exception& e) {
      if (slots[slot].job) finish(slot, FinishReason::Error, e.what());
    }
  }
}

void Scheduler::Impl::on_logits(int slot, const float* row) {
  Slot& sl = slots[slot];
  Job& j = *sl.job;
  const Request& req = j.req;

  // The logits the request samples from: bias, banned tokens, grammar.
  scratch.assign(row, row + n_vocab);
  for (const auto& [id, bias] : req.logit_bias) scratch[id] += bias;
  if (req.ignore_eos)
    for (int32_t id : tok.vocab().eog)
      if (id >= 0 && id < n_vocab) scratch[id] = kNegInf;
  if (j.matcher) j.matcher->mask_logits(scratch.data());

  const int32_t id = j.sampler->sample(scratch.data(), n_vocab);
  const bool eog = tok.is_eog(id);
  if (j.matcher && !eog) j.matcher->accept(id);
  j.sampler->accept(id);
  if (eog) {
    finish(slot, FinishReason::Stop);
    return;
  }

  Event e;
  e.kind = Event::Kind::Token;
  e.token.id = id;
  const std::string piece = tok.token_to_piece(id, /*render_special=*/false);
  if (req.logprobs) {
    // log-softmax of the biased / masked logits.
    float max = kNegInf;
    for (float x : scratch) max = std::max(max, x);
    double sum = 0;
    for (float x : scratch) sum += std::exp(static_cast<double>(x) - max);
    const float log_z = max + static_cast<float>(std::log(sum));
    e.token.text = piece;
    e.token.logprob = scratch[id] - log_z;
    if (req.n_probs > 0) {
      std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
      for (int64_t i = 0; i < n_vocab; ++i) ids[i] = static_cast<int32_t>(i);
      const size_t k = std::min<size_t>(static_cast<size_t>(req.n_probs), ids.size());
      std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
        return scratch[a] > scratch[b] || (scratch[a] == scratch[b] && a < b);
      });
      for (size_t i = 0; i < k && scratch[ids[i]] != kNegInf; ++i)  // banned tokens are no alternatives
        e.top.push_back({ids[i], tok.token_to_piece(ids[i], false), scratch[ids[i]] - log_z});
    }
  }
  e.text = j.text.push(piece);
  ++j.generated;
  if (j.generated == 1) j.first_token = Clock::now();
  {
    std::lock_guard<std::mutex> lk(mu);
    ++stats.generated_tokens;
  }
  send(j, e);

  if (j.text.stopped()) return finish(slot, FinishReason::Stop);
  if (j.matcher && j.matcher->is_finished()) return finish(slot, FinishReason::Stop);
  if (req.max_tokens > 0 && j.generated >= req.max_tokens) return finish(slot, FinishReason::Length);
  // The sampled token needs a position of its own to be evaluated.
  if (ctx->seq_len(slot) >= opt.n_ctx_slot) return finish(slot, FinishReason::Length);
  j.next = id;
}

Usage Scheduler::Impl::usage(const Job& j) const {
  const Clock::time_point now = Clock::now();
  Usage u;
  u.prompt_tokens = static_cast<int64_t>(j.req.prompt.size());
  u.completion_tokens = j.generated;
  u.cached_tokens = j.cached;
  if (j.assigned != Clock::time_point()) u.queue_ms = ms(j.submitted, j.assigned);
  if (j.generated > 0) u.ttft_ms = ms(j.submitted, j.first_token);
  u.total_ms = ms(j.submitted, now);
  return u;
}

void Scheduler::Impl::send(Job& job, const Event& e) { job.req.on_event(e); }

void Scheduler::Impl::finish(int slot, FinishReason why, const std::string& error) {
  std::unique_ptr<Job> job = std::move(slots[slot].job);
  {
    std::lock_guard<std::mutex> lk(mu);
    ++n_free;
  }
  cv.notify_all();
  finish_unassigned(std::move(job), why, error);
}

void Scheduler::Impl::finish_unassigned(std::unique_ptr<Job> job, FinishReason why, const std::string& error) {
  Event e;
  e.kind = Event::Kind::Done;
  e.finish = why;
  e.error = error;
  e.text = job->text.finish();
  e.usage = usage(*job);
  try {
    send(*job, e);
  } catch (...) {
    // The request is over either way; a failing callback must not stop the others.
  }
}

// The cache use, after a step (queued and active are counted by stats()).
void Scheduler::Impl::publish_stats() {
  int64_t used = 0;
  for (const Slot& sl : slots) used += static_cast<int64_t>(sl.tokens.size());
  std::lock_guard<std::mutex> lk(mu);
  stats.kv_used = used;
}

}  // namespace hai::sched
