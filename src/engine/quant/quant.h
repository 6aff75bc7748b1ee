// Quantized weight formats: conversion to and from float, and the dot
// products the transformer is made of.
//
// Numerical scheme (the reference engine's, see ../shared/README.md): before
// a product with a weight row of type T, the activations are converted to
// vec_dot_type(T) — Q8_0 blocks of 32 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
// Q8_K blocks of 256 for the K-quants, F16 for F16, BF16 for BF16, F32 for
// F32 — and the dot product is taken block by block in integers, scaled by
// the two block scales, exactly as ggml does.
//
// The dot products run on the best kernels this CPU supports (scalar, AVX2,
// AVX-512; see engine/common/cpu.h, HAI_CPU to force one). All functions are
// pure and thread-safe. For whole matrices use matmul.h.
#pragma once

#include <cstdint>

#include "engine/quant/types.h"

namespace hai {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept quiet

// n values (a multiple of the block size) of `type` at src -> dst floats.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// n floats -> `type` at dst, with the reference quantizer of that type (the
// result is bit-identical to ggml's quantize_row_*_ref). `importance`, if not
// null, holds n weights that the K-quant and legacy quantizers may use to
// choose scales (imatrix); ignored by Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32.
// With importance the result is ggml's quantize_<type>(..., imatrix), which
// takes statistics over the whole row: call it once per tensor row (n =
// row length), as a file quantizer does. Throws hai::Error if n is not a
// multiple of the block size or the type cannot be quantized.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* importance = nullptr);

// n floats -> an activation row of `act_type` (a value of vec_dot_type: Q8_0,
// Q8_1, Q8_K, F16, BF16 or F32) rounded as the reference engine's CPU path
// rounds before its dot products. For Q8_0 / Q8_1 this is not quantize_row:
// q = nearest-even(x * (127 / amax)) instead of roundf(x / d).
void quantize_activation_row(GgmlType act_type, const float* src, void* dst, int64_t n);

// The activation type a weight type is multiplied with; throws hai::Error
// for a type without kernels (the IQ types, TQ types, integer types).
GgmlType vec_dot_type(GgmlType weight_type);

// Dot product of one weight row `w` (type, n values) with one activation row
// `a` already converted to vec_dot_type(type) (quantize_activation_row).
// Throws hai::Error for a type without a kernel or n not a multiple of its
// block size.
float vec_dot(GgmlType type, int64_t n, const void* w, const void* a);

}  // namespace hai
