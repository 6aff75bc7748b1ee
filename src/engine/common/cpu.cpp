#include "engine/common/cpu.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/common/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HAI_X86 1
#endif

namespace hai {
namespace {

#ifdef HAI_X86
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef HAI_X86
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = ecx & (1u << 27);
  const bool has_fma = ecx & (1u << 12);
  const bool has_f16c = ecx & (1u << 29);
  const bool has_avx = ecx & (1u << 28);
  if (!osxsave || !has_avx) return f;

  // The OS must save the YMM (bits 1, 2) / ZMM (bits 5, 6, 7) / AMX tile
  // (bits 17, 18) state, or using the registers would corrupt other threads.
  const uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;
  if (!os_avx) return f;

  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.fma = has_fma;
  f.f16c = has_f16c;
  f.avx2 = ebx & (1u << 5);
  f.bmi2 = ebx & (1u << 8);
  if (os_avx512) {
    f.avx512f = ebx & (1u << 16);
    f.avx512dq = ebx & (1u << 17);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
    f.avx512vnni = ecx & (1u << 11);
  }
  if (os_amx) {
    f.amx_bf16 = edx & (1u << 22);
    f.amx_tile = edx & (1u << 24);
    f.amx_int8 = edx & (1u << 25);
  }
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
  if (os_avx512) f.avx512bf16 = eax1 & (1u << 5);
#endif
  return f;
}

CpuLevel hardware_level(const CpuFeatures& f) {
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx2 && f.fma && f.f16c && f.bmi2)
    return CpuLevel::kAvx512;
  if (f.avx2 && f.fma && f.f16c && f.bmi2) return CpuLevel::kAvx2;
  return CpuLevel::kScalar;
}

CpuLevel resolve_level() {
  CpuLevel hw = hardware_level(cpu_features());
  const char* env = std::getenv("HAI_CPU");
  if (env == nullptr || *env == '\0') return hw;
  std::optional<CpuLevel> wanted = parse_cpu_level(env);
  if (!wanted)
    throw Error(std::string("HAI_CPU=") + env + ": expected one of scalar, avx2, avx512");
  return static_cast<int>(*wanted) < static_cast<int>(hw) ? *wanted : hw;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

CpuLevel cpu_hardware_level() { return hardware_level(cpu_features()); }

CpuLevel cpu_level() {
  static const CpuLevel level = resolve_level();  // a throw leaves it unset; the next call retries
  return level;
}

std::string_view cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kScalar: return "scalar";
    case CpuLevel::kAvx2: return "avx2";
    case CpuLevel::kAvx512: return "avx512";
  }
  return "scalar";
}

std::optional<CpuLevel> parse_cpu_level(std::string_view name) {
  std::string l;
  for (char c : name) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "scalar") return CpuLevel::kScalar;
  if (l == "avx2") return CpuLevel::kAvx2;
  if (l == "avx512") return CpuLevel::kAvx512;
  return std::nullopt;
}

std::string_view cpu_description() {
  static const std::string text = [] {
    const CpuFeatures& f = cpu_features();
    std::string s(cpu_level_name(cpu_hardware_level()));
    s += " (";
    auto add = [&](bool on, const char* name) {
      if (!on) return;
      if (s.back() != '(') s += ' ';
      s += name;
    };
    add(f.avx2, "avx2");
    add(f.fma, "fma");
    add(f.f16c, "f16c");
    add(f.bmi2, "bmi2");
    add(f.avx512f, "avx512f");
    add(f.avx512bw, "avx512bw");
    add(f.avx512vl, "avx512vl");
    add(f.avx512dq, "avx512dq");
    add(f.avx512vnni, "avx512vnni");
    add(f.avx512bf16, "avx512bf16");
    add(f.amx_tile, "amx_tile");
    add(f.amx_int8, "amx_int8");
    add(f.amx_bf16, "amx_bf16");
    s += ")";
    return s;
  }();
  return text;
}

}  // namespace hai
