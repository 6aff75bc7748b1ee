// AVX-512 level kernels (this file is compiled with AVX-512 F/BW/VL/DQ + VNNI
// flags; the table is used only after the run-time CPU check in
// kernels::table).
//
// The int8 dot products use VNNI's vpdpbusd on 256-bit registers: the blocks
// of 32 values fit a 256-bit register, and on Zen 4 a 512-bit operation is two
// 256-bit halves anyway. The float types keep the 256-bit AVX2 loops, which
// measured faster on Zen 4 than 512-bit ones (F16 matvec: 42 vs 31 GB/s per
// core, bench_kernels).
#include <immintrin.h>

#include <cstring>

#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"

namespace hai::kernels {
namespace {
#define HAI_KERNEL_VNNI 1
#include "engine/quant/kernels_x86.inc"
#undef HAI_KERNEL_VNNI
}  // namespace

void fill_avx512(Table& t) {
  fill_x86(t);
  t.level = CpuLevel::kAvx512;
}

}  // namespace hai::kernels
