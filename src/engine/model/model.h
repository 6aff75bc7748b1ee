// A decoder-only transformer loaded from a GGUF file: its hyper-parameters
// (from the `{arch}.*` metadata) and its weights, bound by llama.cpp's tensor
// names and used in place from the file mapping (no copy).
//
// Architectures: "llama" (Llama 2/3, Mistral; RoPE in the normal layout),
// "qwen2" (NeoX RoPE, Q/K/V biases, output usually tied to the embedding),
// "qwen3" (NeoX RoPE, per-head RMSNorm of Q and K, no biases).
//
// Model::load checks everything the forward pass relies on: every key, every
// tensor present with the shape the hyper-parameters imply and a type the
// engine can compute with. A problem throws hai::Error naming the file and
// the key / tensor / value, never a crash later.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/quant/types.h"

namespace hai::model {

enum class Arch { kLlama, kQwen2, kQwen3 };
enum class RopeLayout { kNormal, kNeox };  // pairs (2i, 2i+1) or (i, i + n_rot/2)
enum class RopeScaling { kNone, kLinear, kYarn };

// Architecture names this engine can run ("llama", "qwen2", "qwen3").
const std::vector<std::string>& supported_architectures();

struct Hparams {
  std::string arch_name;
  Arch arch = Arch::kLlama;
  int64_t n_vocab = 0;      // rows of token_embd
  int64_t n_ctx_train = 0;  // {arch}.context_length
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;   // attention.key_length, default n_embd / n_head
  int64_t head_dim_v = 0;   // attention.value_length, default n_embd / n_head
  float rms_eps = 1e-5f;

  // Rotary position embedding (ggml's rope_ext parameters).
  RopeLayout rope_layout = RopeLayout::kNormal;
  int64_t n_rot = 0;              // rope.dimension_count, default head_dim_k
  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_freq_scale = 1.0f;   // 1 / rope.scaling.factor
  int64_t n_ctx_orig = 0;         // rope.scaling.original_context_length
  float yarn_ext_factor = 0.0f;   // 1 for YaRN, else 0 (rope.scaling.yarn_ext_factor)
  float yarn_attn_factor = 1.0f;  // rope.scaling.attn_factor / yarn_attn_factor
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;

  int64_t n_embd_q() const { return n_head * head_dim_k; }
  int64_t n_embd_k() const { return n_head_kv * head_dim_k; }  // K row of one token
  int64_t n_embd_v() const { return n_head_kv * head_dim_v; }  // V row of one token
  int64_t n_embd_att() const { return n_head * head_dim_v; }   // attention output
};

// Reads and checks the hyper-parameters of `file` (n_vocab from the
// token_embd tensor). Throws hai::Error naming the key or value.
Hparams read_hparams(const gguf::File& file);

// One tensor the architecture expects: its name, its shape in ggml order
// (shape[0] = values per row), and whether it may be absent.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool required = true;
  bool is_matrix = false;  // multiplied with activations (any computable type); else F32
};

// Every tensor of the architecture with the shapes that `hp` implies, in
// llama.cpp's naming. `output.weight` is optional (then tied to token_embd).
std::vector<TensorSpec> expected_tensors(const Hparams& hp);

// A 2-D weight in the mapping: n_rows rows of n_cols values of `type`.
struct Weight {
  const gguf::TensorInfo* info = nullptr;  // null when absent (optional tensor)
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t n_cols = 0;  // values per row (shape[0])
  int64_t n_rows = 1;
  size_t row_bytes = 0;

  explicit operator bool() const { return data != nullptr; }
  const void* row(int64_t i) const { return data + static_cast<size_t>(i) * row_bytes; }
  // Vectors (norm weights, biases) are always F32.
  const float* f32() const { return reinterpret_cast<const float*>(data); }
};

// Checks every tensor of `specs` in `f`: present unless optional, the shape
// given (trailing dimensions of 1 ignored), a computable type for matrices
// and F32 for vectors. Throws hai::Error naming the file and the tensor.
void check_tensors(const gguf::File& f, const std::vector<TensorSpec>& specs);

// The tensor `name` of `f` as a Weight (empty when absent). Call
// check_tensors first: this checks nothing.
Weight bind_weight(const gguf::File& f, const std::string& name);

struct Layer {
  Weight attn_norm;                 // [n_embd]
  Weight wq, wk, wv, wo;            // [n_embd -> n_embd_q], [-> n_embd_k], [-> n_embd_v], [n_embd_att -> n_embd]
  Weight bq, bk, bv, bo;            // optional biases (qwen2: q, k, v required)
  Weight q_norm, k_norm;            // qwen3: [head_dim_k]
  Weight ffn_norm;                  // [n_embd]
  Weight ffn_gate, ffn_up;          // [n_embd -> n_ff]
  Weight ffn_down;                  // [n_ff -> n_embd]
};

class Model {
 public:
  // Opens, maps and checks `path`, and pages the weights in (in 2 MiB pages
  // where the kernel can: gguf::File::prefer_huge_pages). Throws
  // hai::Error("PATH: ...").
  static std::unique_ptr<Model> load(const std::string& path);
  // Binds the weights of an already opened file (which is moved in).
  static std::unique_ptr<Model> from_file(gguf::File file);

  const gguf::File& file() const { return file_; }
  const Hparams& hparams() const { return hp_; }

  Weight token_embd;   // [n_embd] x n_vocab rows
  Weight output_norm;  // [n_embd]
  Weight output;       // [n_embd] x n_vocab rows; == token_embd when tied
  Weight rope_freqs;   // optional [n_rot/2] frequency factors (Llama 3.1)
  std::vector<Layer> layers;

 private:
  explicit Model(gguf::File file) : file_(std::move(file)) {}
  void bind();

  gguf::File file_;
  Hparams hp_;
};

}  // namespace hai::model
