#include "engine/model/attention_kernels.h"

#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model::attn {

void scores_f16_portable(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = ggml_order::dot_f16_f32_portable(hd, k + j * k_stride, q);
}

void values_f16_portable(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out) {
  for (int64_t d = 0; d < n_out; ++d) out[d] = ggml_order::dot_f16_f32_portable(n_pad, v + d * v_stride, p);
}

void round_f16_portable(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void scores_f16(int64_t hd, const float* q, const uint16_t* k, size_t k_stride, int64_t n, float* out) {
  if (ggml_order::have_avx512()) return scores_f16_avx512(hd, q, k, k_stride, n, out);
  for (int64_t j = 0; j < n; ++j) out[j] = ggml_order::dot_f16_f32(hd, k + j * k_stride, q);
}

void values_f16(int64_t n_pad, const float* p, const uint16_t* v, size_t v_stride, int64_t n_out, float* out) {
  if (ggml_order::have_avx512()) return values_f16_avx512(n_pad, p, v, v_stride, n_out, out);
  for (int64_t d = 0; d < n_out; ++d) out[d] = ggml_order::dot_f16_f32(n_pad, v + d * v_stride, p);
}

void round_f16(float* x, int64_t n) {
  if (ggml_order::have_avx512()) return round_f16_avx512(x, n);
  round_f16_portable(x, n);
}

}  // namespace hai::model::attn
