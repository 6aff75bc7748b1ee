#include "engine/quant/matmul.h"

#include <algorithm>
#include <string>

#include "engine/common/error.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"

namespace hai {
namespace {

// Token tile: activation rows kept hot (L2) while a thread's weight rows
// stream past them; each weight row is read once per tile.
constexpr size_t kTileActivationBytes = 192 * 1024;
// Row tile inside a thread's range: weights reused across the token tile.
constexpr int64_t kRowTile = 16;

kernels::VecDotFn kernel_for(const kernels::Table& t, GgmlType wtype) {
  const int s = kernels::slot(wtype);
  if (s < 0 || s >= kernels::kMaxType || t.vec_dot[s] == nullptr) {
    auto tr = type_traits(static_cast<uint32_t>(wtype));
    throw Error("matmul: no kernel for weight type " +
                (tr ? std::string(tr->name) : std::to_string(static_cast<uint32_t>(wtype))));
  }
  return t.vec_dot[s];
}

}  // namespace

size_t activation_row_size(GgmlType wtype, int64_t cols) { return row_size(vec_dot_type(wtype), cols); }

void quantize_activations(GgmlType wtype, const float* x, int64_t n_tokens, int64_t cols, void* act,
                          ThreadPool* pool) {
  const GgmlType at = vec_dot_type(wtype);
  const size_t arow = row_size(at, cols);
  row_size(wtype, cols);  // the weights' block size must divide cols too
  uint8_t* dst = static_cast<uint8_t*>(act);
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) quantize_activation_row(at, x + t * cols, dst + t * arow, cols);
  };
  if (pool && n_tokens > 1)
    pool->parallel_for(0, n_tokens, body);
  else
    body(0, n_tokens);
}

void matmul(GgmlType wtype, const void* W, int64_t rows, int64_t cols, const void* act, int64_t n_tokens, float* out,
            ThreadPool* pool) {
  kernels::matmul_with(kernels::active(), wtype, W, rows, cols, act, n_tokens, out, pool);
}

void kernels::matmul_with(const Table& table, GgmlType wtype, const void* W, int64_t rows, int64_t cols,
                          const void* act, int64_t n_tokens, float* out, ThreadPool* pool) {
  const kernels::VecDotFn dot = kernel_for(table, wtype);
  const kernels::VecDotMultiFn dot_multi = table.vec_dot_multi[kernels::slot(wtype)];
  const size_t wrow = row_size(wtype, cols);
  const size_t arow = activation_row_size(wtype, cols);
  const uint8_t* w = static_cast<const uint8_t*>(W);
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t token_tile = std::max<int64_t>(1, static_cast<int64_t>(kTileActivationBytes / std::max<size_t>(arow, 1)));

  // Rows [lo, hi) for every token: token tiles outside, then row tiles, then
  // each weight row against every token of the tile.
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += token_tile) {
      const int64_t t1 = std::min(n_tokens, t0 + token_tile);
      for (int64_t r0 = lo; r0 < hi; r0 += kRowTile) {
        const int64_t r1 = std::min(hi, r0 + kRowTile);
        for (int64_t r = r0; r < r1; ++r) {
          const void* wr = w + r * wrow;
          if (dot_multi && t1 - t0 > 1) {
            for (int64_t t = t0; t < t1; t += kernels::kMaxTokens) {
              const int n_tok = static_cast<int>(std::min<int64_t>(kernels::kMaxTokens, t1 - t));
              dot_multi(cols, wr, a + t * arow, arow, n_tok, out + t * rows + r, static_cast<size_t>(rows));
            }
          } else {
            for (int64_t t = t0; t < t1; ++t) out[t * rows + r] = dot(cols, wr, a + t * arow);
          }
        }
      }
    }
  };
  if (pool && pool->size() > 1 && rows > 1)
    pool->parallel_for(0, rows, body);
  else
    body(0, rows);
}

}  // namespace hai
