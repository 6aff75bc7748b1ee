// AVX2 + FMA + F16C kernels (this file is compiled with those flags; the
// table is used only after the run-time CPU check in kernels::table).
#include <immintrin.h>

#include <cstring>

#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"

namespace hai::kernels {
namespace {
#define HAI_KERNEL_VNNI 0
#include "engine/quant/kernels_x86.inc"
#undef HAI_KERNEL_VNNI
}  // namespace

void fill_avx2(Table& t) {
  fill_x86(t);
  t.level = CpuLevel::kAvx2;
}

}  // namespace hai::kernels
