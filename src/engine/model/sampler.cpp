#include "engine/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "engine/common/error.h"

namespace hai::model {

void validate(const SamplerParams& p) {
  auto bad = [](const std::string& what, double v, const std::string& range) {
    throw Error("invalid sampling parameter " + what + " = " + std::to_string(v) + " (must be " + range + ")");
  };
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) bad("temperature", p.temperature, ">= 0");
  if (p.top_k < 0) bad("top_k", p.top_k, ">= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad("top_p", p.top_p, "in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) bad("min_p", p.min_p, "in [0, 1]");
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty)) bad("repeat_penalty", p.repeat_penalty, "> 0");
  if (!std::isfinite(p.frequency_penalty)) bad("frequency_penalty", p.frequency_penalty, "finite");
  if (!std::isfinite(p.presence_penalty)) bad("presence_penalty", p.presence_penalty, "finite");
  if (p.penalty_last_n < 0) bad("penalty_last_n", p.penalty_last_n, ">= 0");
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { validate(p); }

void Sampler::accept(int32_t token) {
  if (p_.penalty_last_n == 0) return;
  history_.push_back(token);
  while (static_cast<int>(history_.size()) > p_.penalty_last_n) history_.pop_front();
}

void Sampler::apply_penalties(std::vector<Candidate>& c, const std::deque<int32_t>& history, float repeat,
                              float frequency, float presence) {
  if (history.empty() || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
  std::unordered_map<int32_t, int> count;
  for (int32_t t : history) ++count[t];
  for (Candidate& x : c) {
    auto it = count.find(x.id);
    if (it == count.end()) continue;
    // A repeated token becomes less likely whatever the sign of its logit.
    x.logit = x.logit > 0 ? x.logit / repeat : x.logit * repeat;
    x.logit -= static_cast<float>(it->second) * frequency + presence;
  }
}

void Sampler::apply_top_k(std::vector<Candidate>& c, int k) {
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  if (k > 0 && static_cast<size_t>(k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit);
    c.resize(static_cast<size_t>(k));
  } else {
    std::sort(c.begin(), c.end(), by_logit);
  }
}

void Sampler::softmax(std::vector<Candidate>& c) {
  float max = c[0].logit;
  for (const Candidate& x : c) max = std::max(max, x.logit);
  double sum = 0;
  for (Candidate& x : c) {
    x.p = expf(x.logit - max);
    sum += x.p;
  }
  for (Candidate& x : c) x.p = static_cast<float>(x.p / sum);
}

void Sampler::apply_top_p(std::vector<Candidate>& c, float p) {
  if (p >= 1.0f) return;
  softmax(c);
  double cum = 0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  c.resize(std::max<size_t>(1, keep));
}

void Sampler::apply_min_p(std::vector<Candidate>& c, float p) {
  if (p <= 0.0f) return;
  // p_i >= p * p_max  <=>  logit_i >= logit_max + log(p)
  const float threshold = c[0].logit + logf(p);
  size_t keep = 1;
  while (keep < c.size() && c[keep].logit >= threshold) ++keep;
  c.resize(keep);
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  if (n_vocab <= 0) throw Error("sampler: empty vocabulary");
  cand_.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  apply_penalties(cand_, history_, p_.repeat_penalty, p_.frequency_penalty, p_.presence_penalty);

  if (p_.temperature == 0.0f) {
    size_t best = 0;
    for (size_t i = 1; i < cand_.size(); ++i)
      if (cand_[i].logit > cand_[best].logit) best = i;
    return cand_[best].id;
  }
  apply_top_k(cand_, p_.top_k);  // also sorts
  apply_top_p(cand_, p_.top_p);
  apply_min_p(cand_, p_.min_p);
  for (Candidate& x : cand_) x.logit /= p_.temperature;
  softmax(cand_);

  // u in [0, 1) from the top 53 bits, independent of the library's distributions.
  const double u = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
  double cum = 0;
  for (const Candidate& x : cand_) {
    cum += x.p;
    if (u < cum) return x.id;
  }
  // Rounding left the sum just short of u: the last candidate that can be
  // drawn at all (never one of probability 0, e.g. a token masked to -inf).
  for (auto it = cand_.rbegin(); it != cand_.rend(); ++it)
    if (it->p > 0.0f) return it->id;
  return cand_.front().id;
}

}  // namespace hai::model
