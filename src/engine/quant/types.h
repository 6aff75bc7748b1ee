// The tensor element types of GGUF (numbered as in ggml) and their block
// layouts. A quantized type stores `block_size` values in `type_size` bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hai {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
};

struct TypeTraits {
  std::string_view name;   // "q4_K", as ggml names it
  int64_t block_size = 0;  // values per block (1 for unquantized types)
  size_t type_size = 0;    // bytes per block
  bool quantized = false;
  bool supported = false;  // can this engine compute with it (dequantize / dot)?
};

// Traits of a known type; std::nullopt for a number that is no ggml type.
std::optional<TypeTraits> type_traits(uint32_t type);
const TypeTraits& traits(GgmlType type);  // type must be known

// Bytes of a row of n values; throws hai::Error if n is not a multiple of the
// block size.
size_t row_size(GgmlType type, int64_t n);

std::string_view type_name(GgmlType type);
// Parses "q4_0", "Q4_K", "f16", ... (case-insensitive); std::nullopt if unknown.
std::optional<GgmlType> type_from_name(std::string_view name);

}  // namespace hai
