// Choosing the next token from the logits.
//
// The chain, in llama.cpp's default order:
//   repetition / frequency / presence penalties over the last `penalty_last_n`
//   accepted tokens -> top-k -> top-p -> min-p -> temperature -> random draw.
// A temperature of 0 means greedy (argmax; the first one on ties). The random
// draw uses its own mt19937 generator seeded by `seed`, so the same seed and
// the same logits give the same tokens on every run.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace hai::model {

struct SamplerParams {
  float temperature = 0.8f;      // >= 0; 0 = greedy
  int top_k = 40;                // >= 0; 0 = off
  float top_p = 0.95f;           // (0, 1]; 1 = off
  float min_p = 0.05f;           // [0, 1]; 0 = off
  float repeat_penalty = 1.0f;   // > 0; 1 = off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int penalty_last_n = 64;       // >= 0 tokens of history the penalties look at
  uint64_t seed = 0;
};

// Throws hai::Error naming the parameter and value if one is out of range.
void validate(const SamplerParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);  // validates

  // The next token for `logits` (n_vocab floats; not modified).
  int32_t sample(const float* logits, int64_t n_vocab);
  // Records a token of the sequence (prompt or generated) for the penalties.
  void accept(int32_t token);
  const SamplerParams& params() const { return p_; }

  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  // The steps, exposed for tests; each works on a candidate list.
  static void apply_penalties(std::vector<Candidate>& c, const std::deque<int32_t>& history, float repeat,
                              float frequency, float presence);
  static void apply_top_k(std::vector<Candidate>& c, int k);   // sorts by logit, descending
  static void apply_top_p(std::vector<Candidate>& c, float p);  // c sorted; keeps >= 1
  static void apply_min_p(std::vector<Candidate>& c, float p);  // c sorted; keeps >= 1
  static void softmax(std::vector<Candidate>& c);                // fills p

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
  std::vector<Candidate> cand_;
};

}  // namespace hai::model
