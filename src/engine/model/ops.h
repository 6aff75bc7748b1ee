// The small numerical kernels the transformer forward pass is made of. Each
// follows the reference engine's (ggml's) CPU arithmetic, so that a model
// computes the same numbers here as there: float operations in the same
// order, double accumulators where ggml has them, F16 roundings where ggml
// stores or multiplies in F16.
#pragma once

#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/model/model.h"

namespace hai::model {

// How the kernels' loops are spread over threads.
//
//   pfor(n, fn)       runs fn(begin, end) over [0, n) split into contiguous
//                     ranges, one per thread, possibly on several threads;
//                     returns when all are done.
//   pfor.fine(n, fn)  the same with each of the n items a range of its own,
//                     for a caller that made its items worth that (each
//                     costs an atomic claim, and in a matrix product a cold
//                     start): with a pool, the threads claim the items as
//                     they free up, so that they finish at most one item
//                     apart however their speeds differ.
//   pfor.threads()    how many threads run the ranges (1 when unknown).
//
// Made from a ThreadPool, or from any callable fn(n, body) (run_serial, a
// test's loop), which then serves both pfor() and fine().
class ParallelFor {
 public:
  using Body = std::function<void(int64_t, int64_t)>;

  ParallelFor() : ParallelFor(run_serial) {}
  explicit ParallelFor(ThreadPool* pool) : pool_(pool) {}
  template <typename F>
    requires(!std::is_same_v<std::decay_t<F>, ParallelFor> && std::is_invocable_v<F&, int64_t, const Body&>)
  ParallelFor(F fn) : fn_(std::move(fn)) {}  // NOLINT: implicit, so that a plain loop function converts

  void operator()(int64_t n, const Body& fn) const;
  void fine(int64_t n, const Body& fn) const;
  int threads() const { return pool_ ? pool_->size() : 1; }

  // The trivial loop: fn(0, n) on the calling thread.
  static void run_serial(int64_t n, const Body& fn);

 private:
  ThreadPool* pool_ = nullptr;
  std::function<void(int64_t, const Body&)> fn_;
};

// fn(0, n) on the calling thread (ParallelFor::run_serial).
void run_serial(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

// out = x / sqrt(mean(x^2) + eps) * w   (w may be null: no weight)
// The sum of squares is taken in double, the scale in float, as ggml does.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);

// y[t][r] = W.row(r) . x[t]  for t < n_tokens, r < W.n_rows.
// x is [n_tokens][W.n_cols] floats. Each x row is first converted to
// vec_dot_type(W.type) as the reference's CPU path converts it (Q8_0 / Q8_K
// blocks; F16 for F16 weights) and the products are summed in the
// reference's order (ggml_order.h) for F16, Q8_0, Q4_0, Q4_K and Q6_K, with
// hai::vec_dot for the other types. Those five are computed in tiles of
// rows x tokens (ggml_order::gemm; one token, as in decode: its
// single-token kernels), each output bit-identical to computing it alone,
// however the rows are split. The threads split the rows in groups of 8:
// one contiguous part per thread, or, for a product of more than 32 MB of
// weights (a model's output matrix), parts of about 4 MB that the threads
// claim as they free up (ParallelFor::fine). A few activation rows (up to
// 8192 values) are converted on the calling thread, more by the threads.
// `bias`, if given, is added. `scratch` is reused between calls to hold the
// converted activations.
void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, const float* bias,
            std::vector<uint8_t>& scratch, const ParallelFor& pfor);

// Several products of one input: outs[i].y = outs[i].W x (+ outs[i].bias),
// with x [n_tokens][n_cols] (every W of the same n_cols). Each result is
// bit-identical to matmul(*outs[i].W, x, ...); but x is converted once per
// activation type, and the rows of all the products are split among the
// threads in one parallel loop: one wake-up and one join of the pool
// instead of one per product (decode: q, k, v; gate, up). Throws
// hai::Error when the column counts differ.
struct MatmulOut {
  const Weight* W = nullptr;
  float* y = nullptr;           // [n_tokens][W->n_rows]
  const float* bias = nullptr;  // optional, [W->n_rows]
};
void matmul_group(const std::vector<MatmulOut>& outs, const float* x, int64_t n_tokens,
                  std::vector<uint8_t>& scratch, const ParallelFor& pfor);

// n activations -> vec_dot_type `type` as ggml's x86 CPU backend converts
// them before a matrix product (for Q8_0/Q8_1 not quite the reference
// quantizer: see ops.cpp); other types go through hai::quantize_row.
void quantize_activations(GgmlType type, const float* x, void* dst, int64_t n);

// One row of the token embedding, dequantized to floats.
void embedding_row(const Weight& token_embd, int32_t id, float* out);

// Rotary embedding angles for one position: cos_sin[2*i], cos_sin[2*i+1]
// for the pair i < n_rot/2, computed as ggml's rope cache does (theta
// multiplied along in float, YaRN ramp and magnitude scaling).
void rope_angles(const Hparams& hp, const float* freq_factors, int64_t pos, float* cos_sin);

// Rotates the first n_rot values of one head vector in place.
void rope_apply(RopeLayout layout, int64_t n_rot, const float* cos_sin, float* x);

// In-place softmax of x[0..n) after multiplying by `scale`: max, exp, sum in
// double, then multiply by the float reciprocal of the sum.
void softmax_scaled(float* x, int64_t n, float scale);

// x = silu(x) * y elementwise, silu(x) = x / (1 + exp(-x)).
void swiglu(float* x, const float* y, int64_t n);

}  // namespace hai::model
