// Quantization presets, per-tensor type choice and the streaming converter.
// See quantize.h for the rules and where they come from.
#include "engine/gguf/quantize.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "engine/common/error.h"
#include "engine/quant/quant.h"

namespace hai::gguf {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The layer of a "blk.N.*" tensor, or -1.
int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int n = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && n < 1000000) n = n * 10 + (name[i++] - '0');
  return i < name.size() && name[i] == '.' ? n : -1;
}

enum class Category { kTokenEmbd, kOutput, kAttnV, kAttnK, kAttnQ, kAttnOutput, kAttnQkv, kFfnDown, kFfnGate, kFfnUp, kOther };

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight") return Category::kTokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::kAttnQkv;
  if (contains(name, "attn_v.weight")) return Category::kAttnV;
  if (contains(name, "attn_k.weight")) return Category::kAttnK;
  if (contains(name, "attn_q.weight")) return Category::kAttnQ;
  if (contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(name, "ffn_up")) return Category::kFfnUp;
  if (contains(name, "ffn_gate")) return Category::kFfnGate;
  if (contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// Which tensors are quantized at all: matrices named *weight, but not norms,
// position embeddings or BERT token types.
bool allows_quantization(const TensorInfo& t) {
  int n_dims = static_cast<int>(t.shape.size());
  while (n_dims > 1 && t.shape[static_cast<size_t>(n_dims - 1)] == 1) --n_dims;  // ggml_n_dims
  if (n_dims < 2) return false;
  const std::string& n = t.name;
  return ends_with(n, "weight") && !contains(n, "_norm.weight") && !contains(n, "ffn_gate_inp.weight") &&
         n != "position_embd.weight" && n != "token_types.weight";
}

// Layers that get more bits in the _M mixes: the first and last eighth, and
// every third layer in between.
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

struct ModelFacts {
  std::string arch;
  int n_layer = 0;
  int64_t n_gqa = 1;  // n_head / n_head_kv
  bool tied = true;   // no output.weight: token_embd doubles as the output
  bool is_70b = false;
  std::vector<int> attn_v_layers;  // sorted: rank = llama.cpp's i_attention_wv
};

ModelFacts facts_of(const File& f) {
  ModelFacts m;
  m.arch = f.get_string_or("general.architecture", "");
  for (const TensorInfo& t : f.tensors()) {
    if (t.name == "output.weight") m.tied = false;
    if (category_of(t.name) == Category::kAttnV) m.attn_v_layers.push_back(layer_of(t.name));
  }
  std::sort(m.attn_v_layers.begin(), m.attn_v_layers.end());
  int max_layer = -1;
  for (const TensorInfo& t : f.tensors()) max_layer = std::max(max_layer, layer_of(t.name));
  int64_t n_layer = m.arch.empty() ? 0 : f.get_int_or(m.arch + ".block_count", 0);
  m.n_layer = static_cast<int>(std::clamp<int64_t>(n_layer > 0 ? n_layer : max_layer + 1, 0, 1000000));
  if (!m.arch.empty()) {
    const Value* h = f.find(m.arch + ".attention.head_count");
    const Value* hkv = f.find(m.arch + ".attention.head_count_kv");
    if (h && hkv && h->is_int() && hkv->is_int()) {
      int64_t nh = h->as_int(), nkv = hkv->as_int();
      if (nh > 0 && nkv > 0) m.n_gqa = nh / nkv;
      m.is_70b = m.arch == "llama" && m.n_layer == 80 && nh != nkv;
    }
  }
  return m;
}

int rank_in(const std::vector<int>& sorted, int layer) {
  return static_cast<int>(std::lower_bound(sorted.begin(), sorted.end(), layer) - sorted.begin());
}

bool is_quantized(GgmlType t) { return traits(t).quantized; }

// llama_tensor_get_type_impl for the presets we offer.
GgmlType mixed_type(const QuantPreset& p, const ModelFacts& m, const TensorInfo& t, Category cat) {
  const std::string_view ft = p.name;
  const bool falcon = m.arch == "falcon";
  GgmlType type = p.default_type;
  if (cat == Category::kOutput || (m.tied && cat == Category::kTokenEmbd)) {
    if (falcon || t.shape[0] % traits(type).block_size != 0) return GgmlType::Q8_0;
    return type == GgmlType::Q8_0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
  }
  if (cat == Category::kTokenEmbd) return type;
  const int layer = layer_of(t.name);
  if (cat == Category::kAttnV) {
    const int i = rank_in(m.attn_v_layers, layer);
    const int n = static_cast<int>(m.attn_v_layers.size());
    if (ft == "Q2_K") type = m.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (ft == "Q3_K_M") type = i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (ft == "Q3_K_L") type = GgmlType::Q5_K;
    else if ((ft == "Q4_K_M" || ft == "Q5_K_M") && use_more_bits(i, n)) type = GgmlType::Q6_K;
    else if (ft == "Q4_K_S" && i < 4) type = GgmlType::Q5_K;
    if (m.is_70b && (type == GgmlType::Q3_K || type == GgmlType::Q4_K)) type = GgmlType::Q5_K;
    return type;
  }
  if (cat == Category::kFfnDown) {
    const int i = layer < 0 ? 0 : layer, n = m.n_layer;
    if (ft == "Q2_K") type = GgmlType::Q3_K;
    else if (ft == "Q3_K_M")
      type = i < n / 16 ? GgmlType::Q5_K : (!falcon || use_more_bits(i, n)) ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (ft == "Q3_K_L") type = falcon ? GgmlType::Q4_K : GgmlType::Q5_K;
    else if (ft == "Q4_K_M") {
      if (falcon)
        type = i < n / 16 ? GgmlType::Q6_K : use_more_bits(i, n) ? GgmlType::Q5_K : GgmlType::Q4_K;
      else if (use_more_bits(i, n))
        type = GgmlType::Q6_K;
    } else if (ft == "Q5_K_M" && use_more_bits(i, n)) type = GgmlType::Q6_K;
    else if (ft == "Q4_K_S" && !falcon && i < n / 8) type = GgmlType::Q5_K;
    return type;
  }
  if (cat == Category::kAttnOutput) {
    if (!falcon) {
      if (ft == "Q2_K") type = GgmlType::Q3_K;
      else if (ft == "Q3_K_M") type = GgmlType::Q4_K;
      else if (ft == "Q3_K_L") type = GgmlType::Q5_K;
    } else if (ft == "Q3_K_L") {
      type = GgmlType::Q4_K;
    }
    return type;
  }
  if (cat == Category::kAttnQkv) {
    if (ft == "Q3_K_M" || ft == "Q3_K_L") type = GgmlType::Q4_K;
    else if (ft == "Q4_K_M") type = GgmlType::Q5_K;
    else if (ft == "Q5_K_M") type = GgmlType::Q6_K;
  }
  return type;
}

// A type whose block does not divide the row length is replaced.
GgmlType fallback(GgmlType type, int64_t ncols, std::string* note) {
  if (ncols % traits(type).block_size == 0) return type;
  GgmlType fb;
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K: fb = GgmlType::Q4_0; break;
    case GgmlType::Q4_K: fb = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: fb = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: fb = GgmlType::Q8_0; break;
    default: fb = GgmlType::F16; break;
  }
  if (ncols % traits(fb).block_size != 0) fb = GgmlType::F16;
  *note = "row of " + std::to_string(ncols) + " not a multiple of the " + std::string(type_name(type)) +
          " block " + std::to_string(traits(type).block_size) + ": falls back to " + std::string(type_name(fb));
  return fb;
}

}  // namespace

const std::vector<QuantPreset>& quant_presets() {
  static const std::vector<QuantPreset> presets = {
      {"Q4_0", 2, GgmlType::Q4_0},    {"Q4_1", 3, GgmlType::Q4_1},    {"Q5_0", 8, GgmlType::Q5_0},
      {"Q5_1", 9, GgmlType::Q5_1},    {"Q2_K", 10, GgmlType::Q2_K},   {"Q3_K_S", 11, GgmlType::Q3_K},
      {"Q3_K_M", 12, GgmlType::Q3_K}, {"Q3_K_L", 13, GgmlType::Q3_K}, {"Q4_K_S", 14, GgmlType::Q4_K},
      {"Q4_K_M", 15, GgmlType::Q4_K}, {"Q5_K_S", 16, GgmlType::Q5_K}, {"Q5_K_M", 17, GgmlType::Q5_K},
      {"Q6_K", 18, GgmlType::Q6_K},   {"Q8_0", 7, GgmlType::Q8_0},    {"F16", 1, GgmlType::F16},
      {"BF16", 32, GgmlType::BF16},   {"F32", 0, GgmlType::F32},
  };
  return presets;
}

const QuantPreset& find_quant_preset(std::string_view name) {
  std::string n = upper(name);
  if (n == "Q4_K") n = "Q4_K_M";
  if (n == "Q5_K") n = "Q5_K_M";
  if (n == "Q3_K") n = "Q3_K_M";
  std::string all;
  for (const QuantPreset& p : quant_presets()) {
    if (p.name == n) return p;
    all += (all.empty() ? "" : ", ") + std::string(p.name);
  }
  throw Error("unknown quantization type '" + std::string(name) + "' (valid: " + all + ")");
}

std::vector<TensorPlan> plan_quantization(const File& in, const QuantPreset& preset) {
  const ModelFacts m = facts_of(in);
  std::vector<TensorPlan> plan;
  plan.reserve(in.tensors().size());
  for (const TensorInfo& t : in.tensors()) {
    TensorPlan p;
    p.in = &t;
    if (!allows_quantization(t)) {
      p.out_type = t.type;
    } else if (!is_quantized(preset.default_type)) {
      p.out_type = preset.default_type;  // F32 / F16 / BF16: every matrix
    } else {
      GgmlType mixed = mixed_type(preset, m, t, category_of(t.name));
      p.out_type = fallback(mixed, t.shape[0], &p.note);
      if (p.note.empty() && mixed != preset.default_type) {
        Category c = category_of(t.name);
        p.note = c == Category::kOutput || c == Category::kTokenEmbd ? "output matrix" : "more bits for this layer";
      }
    }
    if (p.out_type != t.type && !traits(t.type).supported)
      throw Error(in.path() + ": tensor '" + t.name + "' has type " + std::string(type_name(t.type)) +
                  ", which cannot be dequantized");
    plan.push_back(std::move(p));
  }
  return plan;
}

void quantize_file(const std::string& in_path, const std::string& out_path, const QuantPreset& preset,
                   const QuantizeOptions& opt) {
  File in = File::open(in_path);
  std::vector<TensorPlan> plan = plan_quantization(in, preset);
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  const int threads = std::clamp(opt.threads, 1, 256);

  Writer w;
  for (const auto& [key, value] : in.metadata()) w.set(key, value);
  w.set("general.quantization_version", Value::make_uint(ValueType::UINT32, 2));
  w.set("general.file_type", Value::make_uint(ValueType::UINT32, preset.ftype));

  bool warned_requant = false;
  size_t index = 0;
  for (const TensorPlan& p : plan) {
    const TensorInfo& t = *p.in;
    ++index;
    std::string line = "[" + std::to_string(index) + "/" + std::to_string(plan.size()) + "] " + t.name + " " +
                       std::string(type_name(t.type));
    if (p.out_type == t.type) {
      log(line + " (copied)");
      w.add_tensor(t.name, t.type, t.shape, t.data, t.nbytes);
      continue;
    }
    log(line + " -> " + std::string(type_name(p.out_type)) + (p.note.empty() ? "" : " (" + p.note + ")"));
    if (traits(t.type).quantized && !warned_requant) {
      log("warning: " + in_path + " is already quantized (" + std::string(type_name(t.type)) +
          "); dequantizing first loses quality compared with quantizing the original F16/F32 weights");
      warned_requant = true;
    }
    const GgmlType out_type = p.out_type;
    const int64_t n_cols = t.shape[0];
    const int64_t n_rows = t.n_elements() / n_cols;
    const size_t in_row = row_size(t.type, n_cols);
    const size_t out_row = row_size(out_type, n_cols);
    const uint8_t* src = t.data;
    w.add_tensor(t.name, out_type, t.shape, [=](std::vector<uint8_t>& out) {
      // Rows split evenly over the threads; each converts its rows through a
      // one-row float buffer: dequantize (or widen) then quantize.
      auto work = [&](int64_t r0, int64_t r1) {
        std::vector<float> f(static_cast<size_t>(n_cols));
        for (int64_t r = r0; r < r1; ++r) {
          dequantize_row(t.type, src + static_cast<size_t>(r) * in_row, f.data(), n_cols);
          quantize_row(out_type, f.data(), out.data() + static_cast<size_t>(r) * out_row, n_cols);
        }
      };
      const int64_t n_threads = std::min<int64_t>(threads, std::max<int64_t>(1, n_rows / 16));
      if (n_threads <= 1) return work(0, n_rows);
      std::vector<std::thread> pool;
      std::exception_ptr err;
      std::mutex err_mutex;
      for (int64_t k = 0; k < n_threads; ++k) {
        pool.emplace_back([&, k] {
          try {
            work(n_rows * k / n_threads, n_rows * (k + 1) / n_threads);
          } catch (...) {
            std::lock_guard<std::mutex> lock(err_mutex);
            if (!err) err = std::current_exception();
          }
        });
      }
      for (auto& th : pool) th.join();
      if (err) std::rethrow_exception(err);
    });
  }
  w.write(out_path);
}

}  // namespace hai::gguf
