// The compute kernels behind quant.h, one table per instruction-set level.
// Internal to the engine (quant.h and matmul.h are the public face); tests use
// it to run every path the machine supports against the scalar one.
//
// Each level's table is filled by a file compiled for that ISA
// (kernels_scalar.cpp, kernels_avx2.cpp, kernels_avx512.cpp); a level starts
// as a copy of the level below, so a kernel missing at a level falls back.
#pragma once

#include <cstdint>

#include "engine/common/cpu.h"
#include "engine/common/thread_pool.h"
#include "engine/quant/types.h"

namespace hai::kernels {

constexpr int kMaxType = 40;  // type ids are below this

// Dot product of n values: weight row w (the table slot's type) with an
// activation row a (its vec_dot_type).
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
// n floats -> one activation row of the slot's type (Q8_0, Q8_1, Q8_K, F16,
// BF16, F32), rounded the way the reference engine's CPU path rounds.
using FromFloatFn = void (*)(const float* x, void* dst, int64_t n);

// Up to kMaxTokens dot products of one weight row w with the activation rows
// a, a + a_stride, ...: out[t * out_stride] for t < n_tok. Unpacks each weight
// block once for all tokens (prefill); each result is bit-identical to VecDotFn's.
constexpr int kMaxTokens = 4;
using VecDotMultiFn = void (*)(int64_t n, const void* w, const void* a, size_t a_stride, int n_tok, float* out,
                               size_t out_stride);

struct Table {
  CpuLevel level = CpuLevel::kScalar;
  VecDotFn vec_dot[kMaxType] = {};
  VecDotMultiFn vec_dot_multi[kMaxType] = {};  // optional
  FromFloatFn from_float[kMaxType] = {};
};

// The table of `level`; throws hai::Error if this CPU cannot run it.
const Table& table(CpuLevel level);
// The table of cpu_level().
const Table& active();

// static: see the note in blocks.h about the ISA-specific files.
static inline int slot(GgmlType t) { return static_cast<int>(t); }

// matmul (see matmul.h) with the kernels of table t instead of active();
// for benchmarks and tests that compare levels.
void matmul_with(const Table& t, GgmlType wtype, const void* W, int64_t rows, int64_t cols, const void* act,
                 int64_t n_tokens, float* out, ThreadPool* pool);

void fill_scalar(Table& t);
void fill_avx2(Table& t);
void fill_avx512(Table& t);

}  // namespace hai::kernels
