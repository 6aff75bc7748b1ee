// Context beyond the single sequence: final hidden states (eval_hidden),
// several sequences in one batch (eval_batch) and the sequence operations
// the scheduler's prefix cache uses. The reference for every check is the
// plain single-sequence eval(), which tests/model/test_model_reference.cpp
// ties to llama.cpp: a batch must give the same numbers bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"
#include "engine/model/ops.h"

namespace hai::model {
namespace {

using hai::test::fixture;

class ForwardBatch : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { model_ = Model::load(fixture(std::string("models/") + GetParam() + ".gguf")); }
  int64_t n_vocab() const { return model_->hparams().n_vocab; }
  // Logits after each token of `tokens`, evaluated alone in a fresh context.
  std::vector<float> solo(const std::vector<int32_t>& tokens) {
    Context ctx(*model_, 64, 2);
    std::vector<float> logits;
    ctx.eval(tokens, true, logits);
    return logits;
  }
  std::vector<float> row(const std::vector<float>& all, int64_t i) {
    return std::vector<float>(all.begin() + i * n_vocab(), all.begin() + (i + 1) * n_vocab());
  }
  std::unique_ptr<Model> model_;
};

const std::vector<int32_t> kA = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
const std::vector<int32_t> kB = {1, 3532, 29892, 920, 526, 366};
const std::vector<int32_t> kC = {1, 29871, 30919, 31076, 29892};

TEST_P(ForwardBatch, HiddenTimesOutputIsLogits) {
  Context ctx(*model_, 64, 2);
  std::vector<float> hidden;
  ctx.eval_hidden(kA, hidden);
  const int64_t D = model_->hparams().n_embd, n = static_cast<int64_t>(kA.size());
  ASSERT_EQ(hidden.size(), static_cast<size_t>(n * D));
  EXPECT_EQ(ctx.n_past(), n);

  // The output matrix applied to the hidden states gives eval's logits.
  std::vector<float> logits(static_cast<size_t>(n * n_vocab()));
  std::vector<uint8_t> scratch;
  matmul(model_->output, hidden.data(), n, logits.data(), nullptr, scratch, run_serial);
  EXPECT_EQ(logits, solo(kA));

  for (float v : hidden) ASSERT_TRUE(std::isfinite(v));
  // eval_hidden appends like eval: the next token continues the sequence.
  std::vector<float> next;
  ctx.eval({kB[1]}, false, next);
  std::vector<int32_t> ab = kA;
  ab.push_back(kB[1]);
  EXPECT_EQ(next, row(solo(ab), static_cast<int64_t>(ab.size()) - 1));
}

TEST_P(ForwardBatch, HiddenErrors) {
  Context ctx(*model_, 8, 1);
  std::vector<float> h;
  EXPECT_THROW(ctx.eval_hidden({}, h), Error);
  EXPECT_THROW(ctx.eval_hidden({static_cast<int32_t>(n_vocab())}, h), Error);
  EXPECT_THROW(ctx.eval_hidden({-1}, h), Error);
  EXPECT_THROW(ctx.eval_hidden(std::vector<int32_t>(9, 1), h), Error);
  EXPECT_EQ(ctx.n_past(), 0);
}

// Three sequences fed in an interleaved, uneven pattern (a prefill chunk of
// one beside single decode tokens of others) get exactly their solo logits.
TEST_P(ForwardBatch, InterleavedSequencesMatchSolo) {
  const std::vector<float> a = solo(kA), b = solo(kB), c = solo(kC);
  Context ctx(*model_, 64, 2, 3);
  std::vector<float> logits;

  // Step 1: A's first 5 tokens (logits of the last), B's first 2 (both).
  ctx.eval_batch({{kA[0], 0, false}, {kB[0], 1, true}, {kA[1], 0, false}, {kA[2], 0, false}, {kB[1], 1, true},
                  {kA[3], 0, false}, {kA[4], 0, true}},
                 logits);
  ASSERT_EQ(logits.size(), static_cast<size_t>(3 * n_vocab()));
  EXPECT_EQ(row(logits, 0), row(b, 0));
  EXPECT_EQ(row(logits, 1), row(b, 1));
  EXPECT_EQ(row(logits, 2), row(a, 4));
  EXPECT_EQ(ctx.seq_len(0), 5);
  EXPECT_EQ(ctx.seq_len(1), 2);
  EXPECT_EQ(ctx.seq_len(2), 0);

  // Step 2: all of C, then one token of A and one of B.
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < kC.size(); ++i) batch.push_back({kC[i], 2, i + 1 == kC.size()});
  batch.push_back({kA[5], 0, true});
  batch.push_back({kB[2], 1, true});
  ctx.eval_batch(batch, logits);
  ASSERT_EQ(logits.size(), static_cast<size_t>(3 * n_vocab()));
  EXPECT_EQ(row(logits, 0), row(c, static_cast<int64_t>(kC.size()) - 1));
  EXPECT_EQ(row(logits, 1), row(a, 5));
  EXPECT_EQ(row(logits, 2), row(b, 2));

  // Step 3: decode one token each.
  ctx.eval_batch({{kB[3], 1, true}, {kA[6], 0, true}}, logits);
  EXPECT_EQ(row(logits, 0), row(b, 3));
  EXPECT_EQ(row(logits, 1), row(a, 6));
}

// The scheduler's prefix cache: truncate a sequence to a shared prefix and
// continue with other tokens; copy a prefix to another sequence.
TEST_P(ForwardBatch, TruncateAndCopy) {
  Context ctx(*model_, 64, 2, 2);
  std::vector<float> logits;
  std::vector<BatchToken> batch;
  for (int32_t t : kA) batch.push_back({t, 0, false});
  ctx.eval_batch(batch, logits);
  EXPECT_TRUE(logits.empty());
  ctx.seq_truncate(0, 3);
  EXPECT_EQ(ctx.seq_len(0), 3);

  std::vector<int32_t> prefix_then_b(kA.begin(), kA.begin() + 3);
  prefix_then_b.insert(prefix_then_b.end(), kB.begin() + 1, kB.end());
  const std::vector<float> want = solo(prefix_then_b);

  // seq 1 <- copy of seq 0's prefix; both continue with B's tail.
  ctx.seq_copy(0, 1, 3);
  EXPECT_EQ(ctx.seq_len(1), 3);
  batch.clear();
  for (size_t i = 1; i < kB.size(); ++i) batch.push_back({kB[i], 0, true});
  for (size_t i = 1; i < kB.size(); ++i) batch.push_back({kB[i], 1, true});
  ctx.eval_batch(batch, logits);
  const int64_t m = static_cast<int64_t>(kB.size()) - 1;
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_EQ(row(logits, i), row(want, 3 + i)) << "seq 0, token " << i;
    EXPECT_EQ(row(logits, m + i), row(want, 3 + i)) << "seq 1, token " << i;
  }

  // Copy only the part beyond a prefix that both already hold.
  ctx.seq_truncate(1, 2);
  ctx.seq_copy(0, 1, 3 + m, 2);
  EXPECT_EQ(ctx.seq_len(1), 3 + m);
  ctx.eval_batch({{kC[1], 0, true}, {kC[1], 1, true}}, logits);
  EXPECT_EQ(row(logits, 0), row(logits, 1));
  prefix_then_b.push_back(kC[1]);
  EXPECT_EQ(row(logits, 0), row(solo(prefix_then_b), static_cast<int64_t>(prefix_then_b.size()) - 1));

  // clear() empties all sequences; eval starts again at position 0.
  ctx.clear();
  EXPECT_EQ(ctx.seq_len(0), 0);
  EXPECT_EQ(ctx.seq_len(1), 0);
  ctx.eval(kC, true, logits);
  EXPECT_EQ(logits, solo(kC));
}

TEST_P(ForwardBatch, BatchErrorsLeaveTheCacheUntouched) {
  Context ctx(*model_, 8, 1, 2);
  std::vector<float> logits;
  ctx.eval_batch({{1, 0, false}, {1, 1, false}}, logits);
  EXPECT_THROW(ctx.eval_batch({}, logits), Error);
  EXPECT_THROW(ctx.eval_batch({{1, 0, true}, {1, 2, true}}, logits), Error);   // seq out of range
  EXPECT_THROW(ctx.eval_batch({{1, 0, true}, {1, -1, true}}, logits), Error);  // negative seq
  EXPECT_THROW(ctx.eval_batch({{1, 0, true}, {static_cast<int32_t>(n_vocab()), 1, true}}, logits), Error);
  std::vector<BatchToken> too_many(8, BatchToken{1, 1, false});  // 1 + 8 > 8
  too_many.insert(too_many.begin(), BatchToken{1, 0, false});
  try {
    ctx.eval_batch(too_many, logits);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sequence 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ctx.seq_len(0), 1);
  EXPECT_EQ(ctx.seq_len(1), 1);

  EXPECT_THROW(ctx.seq_truncate(0, 2), Error);
  EXPECT_THROW(ctx.seq_truncate(0, -1), Error);
  EXPECT_THROW(ctx.seq_truncate(2, 0), Error);
  EXPECT_THROW(ctx.seq_copy(0, 1, 2), Error);
  EXPECT_THROW(ctx.seq_copy(0, 5, 1), Error);
  EXPECT_THROW(ctx.seq_copy(0, 1, 1, 2), Error);  // from > n
  ctx.seq_truncate(1, 0);
  EXPECT_THROW(ctx.seq_copy(0, 1, 1, 1), Error);  // from > seq_len(dst)
  EXPECT_THROW(ctx.seq_len(-1), Error);
  EXPECT_THROW(Context(*model_, 8, 1, 0), Error);
}

using hai::test::cosine;

int64_t argmax(const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

// The Q8_0 cache: close to F16 (not equal), and batching, truncation and
// copies give exactly what a lone Q8_0 sequence gives.
TEST_P(ForwardBatch, Q8_0CacheIsCloseToF16AndBatchesExactly) {
  std::vector<int32_t> long_prompt;
  for (int r = 0; r < 4; ++r) long_prompt.insert(long_prompt.end(), kA.begin(), kA.end());
  const std::vector<float> f16 = solo(long_prompt);
  Context q(*model_, 64, 2, 2, KvType::kQ8_0);
  EXPECT_EQ(q.kv_type(), KvType::kQ8_0);
  Context f(*model_, 64, 2, 2);
  EXPECT_LT(q.kv_bytes(), f.kv_bytes() * 6 / 10);
  std::vector<float> q8;
  q.eval(long_prompt, true, q8);
  const int64_t n = static_cast<int64_t>(long_prompt.size());
  int same = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GT(cosine(row(q8, i), row(f16, i)), 0.99) << "position " << i;
    same += argmax(row(q8, i)) == argmax(row(f16, i));
  }
  EXPECT_GE(same, n * 8 / 10);
  EXPECT_NE(q8, f16);  // it is a different computation

  // Sequence 1: the first 3 positions copied from sequence 0, then the rest
  // interleaved with new tokens of sequence 0 (which restarts at 8).
  q.seq_copy(0, 1, 3);
  q.seq_truncate(0, 8);
  std::vector<BatchToken> batch;
  for (int64_t i = 3; i < n; ++i) batch.push_back({long_prompt[i], 1, true});
  batch.push_back({kB[1], 0, true});
  std::vector<float> logits;
  q.eval_batch(batch, logits);
  for (int64_t i = 3; i < n; ++i) EXPECT_EQ(row(logits, i - 3), row(q8, i)) << "position " << i;
  std::vector<int32_t> a_then_b1(long_prompt.begin(), long_prompt.begin() + 8);
  a_then_b1.push_back(kB[1]);
  Context q_solo(*model_, 64, 2, 1, KvType::kQ8_0);
  std::vector<float> want;
  q_solo.eval(a_then_b1, false, want);
  EXPECT_EQ(row(logits, n - 3), want);
}

TEST(KvCacheTypes, Names) {
  EXPECT_EQ(kv_type_from_string("f16"), KvType::kF16);
  EXPECT_EQ(kv_type_from_string("q8_0"), KvType::kQ8_0);
  EXPECT_STREQ(to_string(KvType::kQ8_0), "q8_0");
  EXPECT_THROW(kv_type_from_string("q4_0"), Error);
  EXPECT_THROW(kv_type_from_string(""), Error);
  // Heads of 48 values do not start on Q8_0 blocks.
  EXPECT_THROW(KvCache(2, 16, 96, 96, 1, KvType::kQ8_0, 48, 48), Error);
  EXPECT_NO_THROW(KvCache(2, 16, 96, 96, 1, KvType::kF16, 48, 48));
  EXPECT_THROW(KvCache(2, 16, 64, 64, 0), Error);
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardBatch,
                         ::testing::Values("tiny-llama-spm-q8_0", "tiny-qwen2-gpt2-q4_k_m", "tiny-llama-spm-f16"));

}  // namespace
}  // namespace hai::model
