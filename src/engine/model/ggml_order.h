// Kernels that reproduce the reference engine's (ggml's x86 CPU backend's)
// floating-point operation order bit for bit. On random-weight models the
// 8-bit activation quantization before every matrix product turns a one-ulp
// difference into a different int8 level, and the difference grows through
// the layers; so where the reference sums in SIMD lanes, we sum in the same
// lanes, and where it uses its own exp approximation, so do we.
//
// Each function has a portable version (std::fma, same results everywhere)
// and, where it matters for speed, an AVX2 or AVX-512 one chosen at run time.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/quant/types.h"

namespace hai::model::ggml_order {

// ggml_v_expf: the vectorised expf of ggml's AVX-512 path (max error ~1.5 ulp),
// evaluated one value at a time with the same operations.
float v_expf(float x);

// out[i] = v_expf(x[i]) for i < n (x == out allowed), 16 at a time with
// AVX-512 where the CPU has it; the same bits either way.
void v_expf_n(const float* x, float* out, int64_t n);
void v_expf_n_avx512(const float* x, float* out, int64_t n);  // call only when have_avx512()

// Sum of 16 lanes in the order of _mm512_reduce_add_ps.
float reduce16(const float* lanes);

// F16 weights times F32 activations as llamafile's tinyBLAS does on AVX-512:
// lane l (of 16) accumulates elements l, l+16, ... with fused multiply-adds,
// then the lanes are reduced. k must be a multiple of 16.
float dot_f16_f32(int64_t k, const uint16_t* w, const float* x);

// Q8_0 x Q8_0 as ggml_vec_dot_q8_0_q8_0 (AVX2/AVX-512 build): 8 lanes, each
// the integer dot of 4 consecutive bytes of a block, scaled by d_w * d_a and
// accumulated with fused multiply-adds block after block; then hsum_float_8.
float dot_q8_0(int64_t n, const void* w, const void* a);

// Q4_0 x Q8_0 as the reference's repacked Q4_0 path (q4_0_8x8 gemv/gemm):
// per block the whole integer dot, scaled by d_w * d_a, fused-added.
float dot_q4_0(int64_t n, const void* w, const void* a);

// Q4_K / Q6_K x Q8_K as ggml's AVX2 kernels: per super-block 8 integer lanes
// (element e in lane (e % 32) / 4, with its sub-block scale), scaled by
// d_w * d_a and fused-added; Q4_K adds the mins in 4 lanes of their own.
// A K-quant weight row is prepared once and then multiplied with many
// activation rows. Where AVX2 is available, "prepared" means remembered (the
// SIMD kernels decode the packed blocks on the fly; `raw` must stay valid
// while the row is used); otherwise it is unpacked (integer weight =
// sub-block scale x level) for the portable kernel.
struct KRow {
  std::vector<int32_t> w;     // n
  std::vector<float> d;       // per super-block
  std::vector<float> dmin;    // Q4_K
  std::vector<int32_t> mins;  // Q4_K: 8 per super-block
  bool has_mins = false;
  const void* raw = nullptr;  // packed row, when a SIMD kernel is used
  GgmlType type = GgmlType::Q4_K;
};
void unpack_k_row(GgmlType type, int64_t n, const void* w, KRow& row);  // Q4_K or Q6_K
float dot_k_row(const KRow& row, int64_t n, const void* a);              // a: Q8_K row

// The portable path, whatever the CPU: unpack and multiply (for tests).
float dot_k_portable(GgmlType type, int64_t n, const void* w, const void* a);
// The portable Q4_0 kernel, whatever the CPU (for tests).
float dot_q4_0_portable(int64_t n, const void* w, const void* a);

// F16 x F16 as ggml_vec_dot_f16 on AVX-512: 4 accumulators of 16 lanes over
// the largest multiple of 64, reduced, the rest added in double.
float dot_f16(int64_t n, const uint16_t* x, const uint16_t* y);

// Tiled matrix products: for r < n_rows, t < n_tok
//   y[t * ldy + r] = dot(weight row r, activation row t)
// with each result bit-identical to the per-element kernel of the type above
// (dot_f16_f32, dot_q8_0, dot_q4_0, dot_k_row). Weight rows are w_stride
// bytes apart, activation rows a_stride bytes apart. Activations: for F16
// weights floats already rounded to F16 (n a multiple of 16), else rows of
// vec_dot_type(type) (n a multiple of the type's block size).
//
// The SIMD versions compute tiles of a few rows x a few tokens, each weight
// block loaded and unpacked once per tile, and walk the tokens in blocks
// that stay in cache; the portable one computes one output at a time.
struct GemmArgs {
  int64_t n = 0;  // values per row
  const void* w = nullptr;
  size_t w_stride = 0;
  int64_t n_rows = 0;
  const void* a = nullptr;
  size_t a_stride = 0;
  int64_t n_tok = 0;
  float* y = nullptr;
  size_t ldy = 0;
};
// The types gemm() takes: F16, Q8_0, Q4_0, Q4_K, Q6_K, and Q5_0 (whose
// per-element kernel is hai::vec_dot, already in ggml's x86 order; its tiles
// match that kernel on the AVX-512 path).
bool gemm_has(GgmlType type);
// The best path for this CPU (honours HAI_CPU, as have_avx2/have_avx512).
void gemm(GgmlType type, const GemmArgs& g);
// One output at a time with the portable kernels, whatever the CPU.
void gemm_portable(GgmlType type, const GemmArgs& g);
// AVX2 (call only when have_avx2()): F16 and Q8_0 in tiles of 2 rows x up to
// 3 tokens (gemm_avx2_tiled, ggml_order_gemm_avx2.cpp), the others one output
// at a time with the AVX2 per-element kernels.
void gemm_avx2(GgmlType type, const GemmArgs& g);
void gemm_avx2_tiled(GgmlType type, const GemmArgs& g);  // F16 or Q8_0
// Tiled, AVX-512 + VNNI (ggml_order_gemm_avx512.cpp); call only when have_avx512().
void gemm_avx512(GgmlType type, const GemmArgs& g);
// Single-token products (decode: one activation row, every weight row read
// once), AVX-512 (ggml_order_gemv_avx512.cpp; call only when have_avx512()).
// Returns false, computing nothing, for the types it has no kernel for;
// gemm_avx512 tries it first when g.n_tok == 1.
bool gemv_avx512(GgmlType type, const GemmArgs& g);

// The portable F16 and Q8_0 kernels, whatever the CPU (for tests).
float dot_f16_f32_portable(int64_t k, const uint16_t* w, const float* x);
float dot_q8_0_portable(int64_t n, const void* w, const void* a);

// out[i] = x[i] rounded to F16 and back, as fp16_to_fp32(fp32_to_fp16(x[i]))
// (round to nearest even, NaN kept quiet), 16 at a time (F16C);
// ggml_order_avx512.cpp, call only when have_avx512(). x == out allowed.
void round_f16_n_avx512(const float* x, float* out, int64_t n);

// The AVX-512 versions (ggml_order_avx512.cpp); call only when the CPU has it.
float dot_f16_f32_avx512(int64_t k, const uint16_t* w, const float* x);
float dot_q8_0_avx512(int64_t n, const void* w, const void* a);
bool have_avx512();

// The AVX2 versions (ggml_order_avx2.cpp), on the packed blocks; call only
// when have_avx2(). Same results as the portable versions, bit for bit.
float dot_q4_k_avx2(int64_t n, const void* w, const void* a);  // a: Q8_K row
float dot_q6_k_avx2(int64_t n, const void* w, const void* a);  // a: Q8_K row
float dot_q4_0_avx2(int64_t n, const void* w, const void* a);  // a: Q8_0 row
bool have_avx2();  // AVX2 + FMA + F16C

}  // namespace hai::model::ggml_order
