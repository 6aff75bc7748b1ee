// Run-time CPU feature detection, and the instruction-set level the kernels
// may use.
//
// The quant kernels exist in three builds: portable C++ (scalar), AVX2+FMA+F16C
// and AVX-512 (F/BW/VL/DQ + VNNI). cpu_level() is the highest level this CPU
// (and its operating system, via XCR0) supports, capped by the environment
// variable HAI_CPU=scalar|avx2|avx512 so that tests and users can force a
// lower path. Asking for a level above the hardware's gives the hardware's.
#pragma once

#include <optional>
#include <string_view>

namespace hai {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;
};

// What this CPU and OS support (detected once, cached).
const CpuFeatures& cpu_features();

enum class CpuLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The highest level the hardware supports, ignoring HAI_CPU.
CpuLevel cpu_hardware_level();

// The level the kernels use: min(hardware, HAI_CPU). Read once and cached.
// Throws hai::Error when HAI_CPU holds something other than the three names.
CpuLevel cpu_level();

// "scalar", "avx2", "avx512".
std::string_view cpu_level_name(CpuLevel level);
// Parses the names above (case-insensitive); std::nullopt otherwise.
std::optional<CpuLevel> parse_cpu_level(std::string_view name);

// One line for logs: "avx512 (avx2 fma f16c avx512f ... amx_tile)".
std::string_view cpu_description();

}  // namespace hai
