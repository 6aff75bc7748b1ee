// The sampler: parameter validation, greedy, determinism by seed, and each
// filter of the chain.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <vector>

#include "engine/common/error.h"
#include "engine/model/sampler.h"

namespace hai::model {
namespace {

SamplerParams plain(float temp) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

TEST(Sampler, RejectsInvalidParameters) {
  auto bad = [](auto edit) {
    SamplerParams p;
    edit(p);
    EXPECT_THROW(Sampler{p}, Error);
  };
  bad([](SamplerParams& p) { p.temperature = -0.5f; });
  bad([](SamplerParams& p) { p.temperature = NAN; });
  bad([](SamplerParams& p) { p.top_k = -1; });
  bad([](SamplerParams& p) { p.top_p = 0.0f; });
  bad([](SamplerParams& p) { p.top_p = 1.5f; });
  bad([](SamplerParams& p) { p.min_p = -0.1f; });
  bad([](SamplerParams& p) { p.min_p = 2.0f; });
  bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; });
  bad([](SamplerParams& p) { p.penalty_last_n = -1; });
  bad([](SamplerParams& p) { p.frequency_penalty = INFINITY; });
  try {
    SamplerParams p;
    p.top_p = 1.5f;
    Sampler s(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  EXPECT_NO_THROW(Sampler{SamplerParams{}});
}

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  Sampler s(plain(0.0f));
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
  EXPECT_EQ(s.sample(logits.data(), 5), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f) * 2.0f;
  SamplerParams p = plain(1.0f);
  p.seed = 42;
  Sampler a(p), b(p);
  std::vector<int> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(logits.data(), 100));
    tb.push_back(b.sample(logits.data(), 100));
  }
  EXPECT_EQ(ta, tb);
  p.seed = 43;
  Sampler c(p);
  std::vector<int> tc;
  for (int i = 0; i < 50; ++i) tc.push_back(c.sample(logits.data(), 100));
  EXPECT_NE(ta, tc);
}

TEST(Sampler, FollowsTheDistribution) {
  // p(1) = 3/4 at temperature 1.
  const std::vector<float> logits = {0.0f, std::log(3.0f)};
  SamplerParams p = plain(1.0f);
  p.seed = 7;
  Sampler s(p);
  int ones = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) ones += s.sample(logits.data(), 2) == 1;
  EXPECT_NEAR(double(ones) / n, 0.75, 0.03);
}

TEST(Sampler, TopKOneAndTinyTopPAndFullMinPAreGreedy) {
  std::vector<float> logits = {1.0f, 2.0f, 2.5f, 0.0f};
  for (int which = 0; which < 3; ++which) {
    SamplerParams p = plain(5.0f);
    if (which == 0) p.top_k = 1;
    if (which == 1) p.top_p = 0.01f;
    if (which == 2) p.min_p = 1.0f;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      p.seed = seed;
      Sampler s(p);
      EXPECT_EQ(s.sample(logits.data(), 4), 2) << "filter " << which;
    }
  }
}

TEST(Sampler, Filters) {
  using C = Sampler::Candidate;
  std::vector<C> c = {{0, 1.0f, 0}, {1, 3.0f, 0}, {2, 2.0f, 0}, {3, -1.0f, 0}};
  Sampler::apply_top_k(c, 2);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_EQ(c[1].id, 2);

  // probabilities 0.5, 0.25, 0.125, 0.125: top-p 0.7 keeps two.
  std::vector<C> d = {{0, std::log(0.5f), 0}, {1, std::log(0.25f), 0}, {2, std::log(0.125f), 0},
                      {3, std::log(0.125f), 0}};
  Sampler::apply_top_p(d, 0.7f);
  EXPECT_EQ(d.size(), 2u);
  // min-p 0.3 of the largest (0.5) keeps p >= 0.15: two.
  std::vector<C> e = {{0, std::log(0.5f), 0}, {1, std::log(0.25f), 0}, {2, std::log(0.125f), 0},
                      {3, std::log(0.125f), 0}};
  Sampler::apply_min_p(e, 0.3f);
  EXPECT_EQ(e.size(), 2u);
}

TEST(Sampler, PenaltiesLowerRepeatedTokens) {
  using C = Sampler::Candidate;
  std::vector<C> c = {{0, 2.0f, 0}, {1, -2.0f, 0}, {2, 1.0f, 0}};
  const std::deque<int32_t> history = {0, 1, 1};
  Sampler::apply_penalties(c, history, 2.0f, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f / 2.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(c[1].logit, -2.0f * 2.0f - 2 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(c[2].logit, 1.0f);  // not in the history

  // Through the sampler: greedy picks the repeated token only without penalty.
  std::vector<float> logits = {1.0f, 0.9f};
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits.data(), 2), 0);
  s.accept(0);
  EXPECT_EQ(s.sample(logits.data(), 2), 1);
  // The window forgets: penalty_last_n = 1.
  p.penalty_last_n = 1;
  Sampler w(p);
  w.accept(0);
  w.accept(1);
  EXPECT_EQ(w.sample(logits.data(), 2), 0);
}

}  // namespace
}  // namespace hai::model
