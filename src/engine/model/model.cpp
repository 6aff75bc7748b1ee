#include "engine/model/model.h"

#include <cmath>
#include <string_view>
#include <utility>

#include "engine/common/error.h"

namespace hai::model {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Reads `{arch}.{suffix}` as a positive integer (or `def` when absent and
// def >= 0; absent and def < 0 means required).
int64_t positive_int(const gguf::File& f, const std::string& key, int64_t def = -1) {
  const gguf::Value* v = f.find(key);
  if (!v) {
    if (def >= 0) return def;
    throw Error(f.path() + ": missing metadata key " + key);
  }
  int64_t x = v->as_int(key);
  if (x <= 0) throw Error(f.path() + ": metadata " + key + " = " + std::to_string(x) + " must be positive");
  return x;
}

float finite_float(const gguf::File& f, const std::string& key, float def, bool required = false) {
  const gguf::Value* v = f.find(key);
  if (!v) {
    if (required) throw Error(f.path() + ": missing metadata key " + key);
    return def;
  }
  double x = v->as_float(key);
  if (!std::isfinite(x)) throw Error(f.path() + ": metadata " + key + " is not a finite number");
  return static_cast<float>(x);
}

}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> archs = {"llama", "qwen2", "qwen3"};
  return archs;
}

Hparams read_hparams(const gguf::File& f) {
  Hparams hp;
  hp.arch_name = f.get_string("general.architecture");
  if (hp.arch_name == "llama") {
    hp.arch = Arch::kLlama;
    hp.rope_layout = RopeLayout::kNormal;
  } else if (hp.arch_name == "qwen2") {
    hp.arch = Arch::kQwen2;
    hp.rope_layout = RopeLayout::kNeox;
  } else if (hp.arch_name == "qwen3") {
    hp.arch = Arch::kQwen3;
    hp.rope_layout = RopeLayout::kNeox;
  } else {
    std::string list;
    for (const auto& a : supported_architectures()) list += (list.empty() ? "" : ", ") + a;
    throw Error(f.path() + ": unknown architecture '" + hp.arch_name + "' (general.architecture); supported: " + list);
  }
  const std::string a = hp.arch_name + ".";

  if (const gguf::Value* v = f.find(a + "expert_count"); v && v->as_int(a + "expert_count") > 0)
    throw Error(f.path() + ": " + a + "expert_count = " + std::to_string(v->as_int()) +
                ": mixture-of-experts models are not supported");

  hp.n_ctx_train = positive_int(f, a + "context_length");
  hp.n_embd = positive_int(f, a + "embedding_length");
  hp.n_layer = positive_int(f, a + "block_count");
  hp.n_ff = positive_int(f, a + "feed_forward_length");
  hp.n_head = positive_int(f, a + "attention.head_count");
  hp.n_head_kv = positive_int(f, a + "attention.head_count_kv", hp.n_head);
  if (hp.n_head % hp.n_head_kv != 0)
    throw Error(f.path() + ": " + a + "attention.head_count " + std::to_string(hp.n_head) +
                " is not a multiple of attention.head_count_kv " + std::to_string(hp.n_head_kv));
  if (hp.n_embd % hp.n_head != 0 && (!f.has(a + "attention.key_length") || !f.has(a + "attention.value_length")))
    throw Error(f.path() + ": " + a + "embedding_length " + std::to_string(hp.n_embd) +
                " is not a multiple of attention.head_count " + std::to_string(hp.n_head));
  hp.head_dim_k = positive_int(f, a + "attention.key_length", hp.n_embd / hp.n_head);
  hp.head_dim_v = positive_int(f, a + "attention.value_length", hp.n_embd / hp.n_head);
  hp.rms_eps = finite_float(f, a + "attention.layer_norm_rms_epsilon", 0, /*required=*/true);
  if (!(hp.rms_eps >= 0)) throw Error(f.path() + ": " + a + "attention.layer_norm_rms_epsilon must not be negative");

  hp.n_rot = positive_int(f, a + "rope.dimension_count", hp.head_dim_k);
  if (hp.n_rot > hp.head_dim_k || hp.n_rot % 2 != 0)
    throw Error(f.path() + ": " + a + "rope.dimension_count = " + std::to_string(hp.n_rot) +
                " must be even and at most the head size " + std::to_string(hp.head_dim_k));
  hp.rope_freq_base = finite_float(f, a + "rope.freq_base", 10000.0f);
  if (!(hp.rope_freq_base > 0)) throw Error(f.path() + ": " + a + "rope.freq_base must be positive");

  // Scaling, as llama.cpp reads it: the type defaults to linear (a no-op with
  // factor 1), the factor 0 means 1.
  std::string scaling = f.get_string_or(a + "rope.scaling.type", "linear");
  if (scaling == "none") {
    hp.rope_scaling = RopeScaling::kNone;
  } else if (scaling == "linear") {
    hp.rope_scaling = RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    hp.rope_scaling = RopeScaling::kYarn;
  } else {
    throw Error(f.path() + ": unsupported " + a + "rope.scaling.type '" + scaling + "' (none, linear, yarn)");
  }
  float factor = f.has(a + "rope.scaling.factor") ? finite_float(f, a + "rope.scaling.factor", 0)
                                                  : finite_float(f, a + "rope.scale_linear", 0);
  if (factor < 0) throw Error(f.path() + ": " + a + "rope.scaling.factor must not be negative");
  hp.rope_freq_scale = (factor == 0.0f || hp.rope_scaling == RopeScaling::kNone) ? 1.0f : 1.0f / factor;
  hp.n_ctx_orig = positive_int(f, a + "rope.scaling.original_context_length", hp.n_ctx_train);
  hp.yarn_ext_factor = finite_float(f, a + "rope.scaling.yarn_ext_factor",
                                    hp.rope_scaling == RopeScaling::kYarn ? 1.0f : 0.0f);
  hp.yarn_attn_factor = finite_float(f, a + "rope.scaling.attn_factor", 1.0f);
  hp.yarn_attn_factor = finite_float(f, a + "rope.scaling.yarn_attn_factor", hp.yarn_attn_factor);
  hp.yarn_beta_fast = finite_float(f, a + "rope.scaling.yarn_beta_fast", 32.0f);
  hp.yarn_beta_slow = finite_float(f, a + "rope.scaling.yarn_beta_slow", 1.0f);

  const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) throw Error(f.path() + ": missing tensor token_embd.weight");
  if (emb->shape.size() != 2)
    throw Error(f.path() + ": tensor token_embd.weight has shape " + shape_str(emb->shape) + ", expected 2 dimensions");
  hp.n_vocab = emb->shape[1];
  if (const gguf::Value* v = f.find(a + "vocab_size"); v && v->as_int(a + "vocab_size") != hp.n_vocab)
    throw Error(f.path() + ": " + a + "vocab_size = " + std::to_string(v->as_int()) +
                " but token_embd.weight has " + std::to_string(hp.n_vocab) + " rows");
  return hp;
}

std::vector<TensorSpec> expected_tensors(const Hparams& hp) {
  std::vector<TensorSpec> t;
  auto vec = [&](std::string name, int64_t n, bool required = true) {
    t.push_back({std::move(name), {n}, required, false});
  };
  auto mat = [&](std::string name, int64_t n_in, int64_t n_out, bool required = true) {
    t.push_back({std::move(name), {n_in, n_out}, required, true});
  };
  mat("token_embd.weight", hp.n_embd, hp.n_vocab);
  vec("output_norm.weight", hp.n_embd);
  mat("output.weight", hp.n_embd, hp.n_vocab, /*required=*/false);
  vec("rope_freqs.weight", hp.n_rot / 2, /*required=*/false);
  const bool qkv_bias = hp.arch == Arch::kQwen2;
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    vec(b + "attn_norm.weight", hp.n_embd);
    mat(b + "attn_q.weight", hp.n_embd, hp.n_embd_q());
    mat(b + "attn_k.weight", hp.n_embd, hp.n_embd_k());
    mat(b + "attn_v.weight", hp.n_embd, hp.n_embd_v());
    mat(b + "attn_output.weight", hp.n_embd_att(), hp.n_embd);
    vec(b + "attn_q.bias", hp.n_embd_q(), qkv_bias);
    vec(b + "attn_k.bias", hp.n_embd_k(), qkv_bias);
    vec(b + "attn_v.bias", hp.n_embd_v(), qkv_bias);
    vec(b + "attn_output.bias", hp.n_embd, false);
    if (hp.arch == Arch::kQwen3) {
      vec(b + "attn_q_norm.weight", hp.head_dim_k);
      vec(b + "attn_k_norm.weight", hp.head_dim_k);
    }
    vec(b + "ffn_norm.weight", hp.n_embd);
    mat(b + "ffn_gate.weight", hp.n_embd, hp.n_ff);
    mat(b + "ffn_up.weight", hp.n_embd, hp.n_ff);
    mat(b + "ffn_down.weight", hp.n_ff, hp.n_embd);
  }
  return t;
}

void check_tensors(const gguf::File& f, const std::vector<TensorSpec>& specs) {
  for (const TensorSpec& spec : specs) {
    const gguf::TensorInfo* info = f.find_tensor(spec.name);
    if (!info) {
      if (spec.required) throw Error(f.path() + ": missing tensor " + spec.name);
      continue;
    }
    // ggml drops trailing dimensions of 1: [n] may be written as [n, 1].
    std::vector<int64_t> shape = info->shape;
    while (shape.size() > spec.shape.size() && shape.back() == 1) shape.pop_back();
    if (shape != spec.shape)
      throw Error(f.path() + ": tensor " + spec.name + " has shape " + shape_str(info->shape) + ", expected " +
                  shape_str(spec.shape));
    const TypeTraits& tr = traits(info->type);
    if (spec.is_matrix) {
      if (!tr.supported || info->type == GgmlType::Q8_1 || info->type == GgmlType::Q8_K)
        throw Error(f.path() + ": tensor " + spec.name + " has type " + std::string(tr.name) +
                    ", which this engine cannot compute with");
    } else if (info->type != GgmlType::F32) {
      throw Error(f.path() + ": tensor " + spec.name + " has type " + std::string(tr.name) + ", expected f32");
    }
  }
}

Weight bind_weight(const gguf::File& f, const std::string& name) {
  Weight w;
  const gguf::TensorInfo* info = f.find_tensor(name);
  if (!info) return w;
  w.info = info;
  w.type = info->type;
  w.data = info->data;
  w.n_cols = info->shape[0];
  w.n_rows = info->shape.size() > 1 ? info->shape[1] : 1;
  w.row_bytes = row_size(w.type, w.n_cols);
  return w;
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  gguf::File file = gguf::File::open(path);
  file.prefer_huge_pages();  // pages the weights in, in 2 MiB pages where the kernel can
  return from_file(std::move(file));
}

std::unique_ptr<Model> Model::from_file(gguf::File file) {
  std::unique_ptr<Model> m(new Model(std::move(file)));
  m->bind();
  return m;
}

void Model::bind() {
  const gguf::File& f = file_;
  hp_ = read_hparams(f);

  check_tensors(f, expected_tensors(hp_));
  auto bind_one = [&](const std::string& name) { return bind_weight(f, name); };
  token_embd = bind_one("token_embd.weight");
  output_norm = bind_one("output_norm.weight");
  output = bind_one("output.weight");
  if (!output) output = token_embd;  // tied
  rope_freqs = bind_one("rope_freqs.weight");
  layers.resize(static_cast<size_t>(hp_.n_layer));
  for (int64_t l = 0; l < hp_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    Layer& L = layers[static_cast<size_t>(l)];
    L.attn_norm = bind_one(b + "attn_norm.weight");
    L.wq = bind_one(b + "attn_q.weight");
    L.wk = bind_one(b + "attn_k.weight");
    L.wv = bind_one(b + "attn_v.weight");
    L.wo = bind_one(b + "attn_output.weight");
    L.bq = bind_one(b + "attn_q.bias");
    L.bk = bind_one(b + "attn_k.bias");
    L.bv = bind_one(b + "attn_v.bias");
    L.bo = bind_one(b + "attn_output.bias");
    L.q_norm = bind_one(b + "attn_q_norm.weight");
    L.k_norm = bind_one(b + "attn_k_norm.weight");
    L.ffn_norm = bind_one(b + "ffn_norm.weight");
    L.ffn_gate = bind_one(b + "ffn_gate.weight");
    L.ffn_up = bind_one(b + "ffn_up.weight");
    L.ffn_down = bind_one(b + "ffn_down.weight");
  }
}

}  // namespace hai::model
