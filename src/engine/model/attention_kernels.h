// The inner products of the F16-cache attention (Context::attention), many
// at once, each bit-identical to ggml_order::dot_f16_f32 (16 lanes of fused
// multiply-adds, then reduce16), and the rounding of floats to F16 values.
//
// The portable versions loop over ggml_order::dot_f16_f32 and
// fp32_to_fp16; the AVX-512 ones (attention_kernels_avx512.cpp) compute 16
// products side by side (independent accumulators instead of one dependent
// chain per product) and reduce the 16 accumulators together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hai::model::attn {

// out[j] = dot_f16_f32(hd, k + j * k_stride, q) for j < n: the scores of one
// query against n keys. hd a multiple of 16; q holds F16 values as floats.
void scores_f16(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out);

// out[d] = dot_f16_f32(n_pad, v + d * v_stride, p) for d < n_out: the
// probabilities times the (transposed) values. n_pad a multiple of 16.
void values_f16(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out);

// x[i] = fp16_to_fp32(fp32_to_fp16(x[i])) for i < n.
void round_f16(float* x, int64_t n);

// The paths, for tests: the portable one whatever the CPU, and the AVX-512
// one (call only when ggml_order::have_avx512()).
void scores_f16_portable(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out);
void values_f16_portable(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out);
void round_f16_portable(float* x, int64_t n);
void scores_f16_avx512(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out);
void values_f16_avx512(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out);
void round_f16_avx512(float* x, int64_t n);

}  // namespace hai::model::attn
