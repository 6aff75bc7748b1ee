// Matrix products of a quantized weight matrix with a batch of activations:
// the hot loop of the transformer forward.
//
// HOW TO USE (note for the model code):
//
//   // W: rows x cols weights of type wtype, row-major as in GGUF (ne0 = cols).
//   // x: n_tokens rows of cols floats.
//   std::vector<uint8_t> act(n_tokens * hai::activation_row_size(wtype, cols));
//   hai::quantize_activations(wtype, x, n_tokens, cols, act.data(), &pool);
//   hai::matmul(wtype, W, rows, cols, act.data(), n_tokens, out, &pool);
//   // out[t * rows + r] = dot(W row r, x row t)   (n_tokens x rows floats)
//
// - quantize_activations converts x the way the reference engine does
//   (Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32 by vec_dot_type(wtype)); results
//   then match the reference's M.json scheme. Quantize once and reuse `act`
//   for every matrix that multiplies the same input with the same
//   vec_dot_type (Q, K, V; gate and up), e.g. check
//   vec_dot_type(wq) == vec_dot_type(wk).
// - On the AVX2 / AVX-512 paths the Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 dot
//   products are bit-identical to ggml's x86 vec_dot (same lanes, same
//   order); the K-quants and F16 differ from ggml only by the order of float
//   additions (the K-quants are identical across our own scalar/SIMD paths).
// - For the "exact" scheme (M.exact.json) dequantize the weights to F32
//   (dequantize_row) and call matmul with GgmlType::F32.
// - Threads: pass the engine's ThreadPool (nullptr = calling thread only).
//   Rows are split statically across threads; for n_tokens > 1 (prefill) the
//   tokens are processed in tiles so each weight row is loaded once per tile.
// - Errors (hai::Error): a type without a kernel, cols not a multiple of the
//   block size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/common/thread_pool.h"
#include "engine/quant/types.h"

namespace hai {

// Bytes of one activation row for weights of type wtype:
// row_size(vec_dot_type(wtype), cols).
size_t activation_row_size(GgmlType wtype, int64_t cols);

// n_tokens rows of cols floats (x, contiguous) -> n_tokens activation rows of
// vec_dot_type(wtype) at act, each activation_row_size(wtype, cols) bytes.
void quantize_activations(GgmlType wtype, const float* x, int64_t n_tokens, int64_t cols, void* act,
                          ThreadPool* pool = nullptr);

// out[t * rows + r] = vec_dot(wtype, cols, W row r, act row t) for
// t < n_tokens, r < rows. W rows are row_size(wtype, cols) bytes apart.
void matmul(GgmlType wtype, const void* W, int64_t rows, int64_t cols, const void* act, int64_t n_tokens, float* out,
            ThreadPool* pool = nullptr);

}  // namespace hai
