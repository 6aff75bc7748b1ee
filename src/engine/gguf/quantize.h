// Model-file quantization: the presets of llama.cpp's llama-quantize (Q4_K_M
// and friends), the per-tensor type each preset chooses, and a streaming
// converter from one GGUF file to another.
//
// Type choice follows llama.cpp's llama_tensor_get_type (src/llama-quant.cpp):
//  - 1-D tensors, norms (`*_norm.weight`) and non-`weight` tensors keep their
//    type; everything else gets the preset's default type, except
//  - the output matrix (and the token embedding when it is tied to the
//    output) gets Q6_K for quantized presets (Q8_0 stays Q8_0; Falcon and
//    rows not a multiple of the default block use Q8_0);
//  - attn_v / ffn_down / attn_output get more bits in the _M/_L and Q2_K mixes
//    (Q4_K_M: Q6_K on the "use_more_bits" layers: the first and last eighth
//    and every third layer in between);
//  - a K-quant whose row length is not a multiple of 256 falls back
//    (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and a row
//    that fits no block becomes F16.
// Differences: no MoE (n_expert) rules and no importance matrix; a legacy
// type whose row does not fit becomes F16 (llama.cpp stops with an error).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/quant/types.h"

namespace hai::gguf {

struct QuantPreset {
  std::string_view name;     // "Q4_K_M"
  uint32_t ftype;            // llama_ftype number, written to general.file_type
  GgmlType default_type;     // type of most matrices
};

// All presets, in the order llama-quantize lists them.
const std::vector<QuantPreset>& quant_presets();
// Looks up a preset by name (case-insensitive; "Q4_K" means Q4_K_M, "Q5_K"
// Q5_K_M, "Q3_K" Q3_K_M). Throws hai::Error listing the valid names.
const QuantPreset& find_quant_preset(std::string_view name);

// What the quantizer will do with one tensor.
struct TensorPlan {
  const TensorInfo* in = nullptr;
  GgmlType out_type = GgmlType::F32;
  std::string note;  // why the type differs from the preset default ("" if it does not)
};

// The type of every tensor of `in` under `preset`. Throws hai::Error if the
// file cannot be quantized (a tensor type that cannot be dequantized).
std::vector<TensorPlan> plan_quantization(const File& in, const QuantPreset& preset);

struct QuantizeOptions {
  int threads = 1;
  // Progress and warnings, one line each (nullptr: silent).
  std::function<void(const std::string&)> log;
};

// Quantizes `in_path` into `out_path` (written to a temporary file and
// renamed into place). Metadata is copied; general.file_type and
// general.quantization_version are set. Only one output tensor is held in
// memory at a time. Already quantized input is dequantized first (a warning
// is logged); a tensor already of its target type is copied unchanged.
void quantize_file(const std::string& in_path, const std::string& out_path, const QuantPreset& preset,
                   const QuantizeOptions& opt = {});

}  // namespace hai::gguf
