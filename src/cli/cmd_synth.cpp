// hai synth: a random-weight model of any supported shape, with a real
// vocabulary, named and laid out exactly as llama.cpp writes that
// architecture. The tensor list comes from the model loader
// (model::expected_tensors, model::bert_expected_tensors for the BERT
// encoder "bert"), so what synth writes is what the engine loads. A bert
// with --pooling rank (4) is a reranker: it gets the classification head
// cls.weight/cls.bias and cls.output.weight/cls.output.bias (one output).
//
// Weights are deterministic in --seed and scaled as in the shared fixtures,
// so activations stay sane and logits vary: token embedding ~ N(0, 1),
// output ~ N(0, 4/sqrt(n_embd)), Q/K ~ N(0, 2/sqrt(n_in)), other matrices
// ~ N(0, 1/sqrt(n_in)) (attn_output / ffn_down 8x that when the output is
// tied), norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.2).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/bert.h"
#include "engine/model/model.h"
#include "engine/quant/quant.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using hai::Error;
using hai::GgmlType;
using hai::gguf::Value;
using hai::gguf::ValueType;

struct SynthArgs {
  std::string arch;
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0, ctx = 4096;
  double rope_base = 0;  // 0: 10000 for llama, 1e6 for qwen
  double rms_eps = 0;    // 0: 1e-5 for llama, 1e-6 for qwen
  bool tied = false, no_tied = false;
  std::string type = "f16";
  uint64_t seed = 42;
  std::string vocab, out, name;
  std::string vocab_pre;  // tokenizer.ggml.pre for a tokenizer.json (default: detected)
  int pooling = -1;       // bert.pooling_type (default 2, cls)
  std::string pooling_name;  // --pooling as given: a number or a name
};

// --pooling: a name (none, mean, cls, last, rank) or its number 0..4; empty
// gives -1 (the default).
int parse_pooling(const std::string& s) {
  if (s.empty()) return -1;
  static const std::map<std::string, int> names = {{"none", 0}, {"mean", 1}, {"cls", 2}, {"last", 3}, {"rank", 4}};
  if (auto it = names.find(s); it != names.end()) return it->second;
  if (s.size() == 1 && s[0] >= '0' && s[0] <= '4') return s[0] - '0';
  throw Error("--pooling must be none, mean, cls, last or rank (or 0..4), got '" + s + "'");
}

// splitmix64: seeds per-tensor generators from (seed, tensor name).
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t seed_for(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the name
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return mix(seed ^ mix(h));
}

// Standard normal values from a 64-bit generator (Box-Muller), identical on
// every platform (std::normal_distribution is not).
class Normal {
 public:
  explicit Normal(uint64_t seed) : rng_(seed) {}
  float next() {
    if (have_) {
      have_ = false;
      return spare_;
    }
    double u1 = (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53;
    double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = static_cast<float>(r * std::sin(2 * M_PI * u2));
    have_ = true;
    return static_cast<float>(r * std::cos(2 * M_PI * u2));
  }

 private:
  std::mt19937_64 rng_;
  bool have_ = false;
  float spare_ = 0;
};

struct Init {
  float mean = 0, std = 0;
};

Init init_for(const std::string& name, const std::vector<int64_t>& shape, int64_t n_embd, bool tied) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("norm.weight")) return {1.0f, 0.1f};
  if (has(".bias")) return {0.0f, 0.2f};
  if (name == "token_embd.weight") return {0.0f, 1.0f};
  if (name == "output.weight") return {0.0f, 4.0f / std::sqrt(float(n_embd))};
  const float s = 1.0f / std::sqrt(static_cast<float>(shape[0]));  // 1/sqrt(n_in)
  if (has("attn_q.") || has("attn_k.")) return {0.0f, 2.0f * s};
  // With a tied output the residual stream must move away from the input
  // token's own embedding, or greedy decoding repeats the input forever.
  if (has("attn_output") || has("ffn_down")) return {0.0f, tied ? 8.0f * s : s};
  return {0.0f, s};
}

bool looks_like_json(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return true;
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c))
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  return false;
}

Value str_array(const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(Value::make_string(s));
  return Value::make_array(ValueType::STRING, std::move(items));
}

// llama.cpp's name for the pre-tokenizer of a tokenizer.json, recognised by
// its split regex (llama.cpp's converter hashes the tokenizer output instead).
std::string detect_pre(const nlohmann::json& j) {
  static const std::vector<std::pair<std::string, std::string>> known = {
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "qwen2"},
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "llama-bpe"},
  };
  if (!j.contains("pre_tokenizer") || !j["pre_tokenizer"].is_object()) return "default";
  const nlohmann::json& pt = j["pre_tokenizer"];
  std::vector<const nlohmann::json*> parts;
  if (pt.contains("pretokenizers") && pt["pretokenizers"].is_array())
    for (const auto& x : pt["pretokenizers"]) parts.push_back(&x);
  else
    parts.push_back(&pt);
  for (const nlohmann::json* x : parts) {
    if (!x->is_object() || x->value("type", "") != "Split") continue;
    if (!x->contains("pattern") || !(*x)["pattern"].is_object()) continue;
    std::string re = (*x)["pattern"].value("Regex", "");
    for (const auto& [pattern, name] : known)
      if (re == pattern) return name;
    if (re == R"(\p{N}{1,3})") return "deepseek-v3";
    break;
  }
  return "default";
}

// model.merges of a tokenizer.json as "a b" strings (both the string and the
// pair form are in use).
std::vector<std::string> json_merges(const std::string& path, const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.contains("model") || !j["model"].is_object() || !j["model"].contains("merges")) return out;
  const nlohmann::json& m = j["model"]["merges"];
  if (!m.is_array()) throw Error(path + ": model.merges is not an array");
  out.reserve(m.size());
  for (const auto& e : m) {
    if (e.is_string()) out.push_back(e.get<std::string>());
    else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string())
      out.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
    else throw Error(path + ": model.merges: bad entry " + e.dump().substr(0, 80));
  }
  return out;
}

// tokenizer.* keys from a Hugging Face tokenizer.json (tokens, types and
// special ids via the tokenizer's own reader; merges and the pre-tokenizer
// name from the JSON), in the form llama.cpp's converter writes them.
void vocab_keys_from_json(const std::string& path, const std::string& pre_override, hai::gguf::Writer& w,
                          int64_t* n_vocab) {
  std::unique_ptr<hai::Tokenizer> tok = hai::Tokenizer::from_hf_json(path);
  const hai::Vocab& v = tok->vocab();
  if (v.tokens.empty()) throw Error(path + ": vocabulary has no tokens");
  nlohmann::json j;
  {
    std::ifstream in(path, std::ios::binary);
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ": " + e.what());
    }
  }
  std::vector<std::string> merges = v.merges.empty() ? json_merges(path, j) : v.merges;
  std::string pre = !pre_override.empty() ? pre_override : v.pre.empty() || v.pre == "default" ? detect_pre(j) : v.pre;
  if (pre == "default" && v.model == "gpt2")
    std::fprintf(stderr, "hai: warning: %s: pre-tokenizer not recognised, writing tokenizer.ggml.pre = \"default\" "
                 "(give --vocab-pre)\n", path.c_str());
  w.set("tokenizer.ggml.model", Value::make_string(v.model));
  w.set("tokenizer.ggml.pre", Value::make_string(pre));
  w.set("tokenizer.ggml.tokens", str_array(v.tokens));
  if (!v.scores.empty()) {
    std::vector<Value> s;
    for (float x : v.scores) s.push_back(Value::make_float(ValueType::FLOAT32, x));
    w.set("tokenizer.ggml.scores", Value::make_array(ValueType::FLOAT32, std::move(s)));
  }
  std::vector<Value> types;
  types.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i)
    types.push_back(Value::make_int(ValueType::INT32, i < v.types.size() ? static_cast<int32_t>(v.types[i]) : 1));
  w.set("tokenizer.ggml.token_type", Value::make_array(ValueType::INT32, std::move(types)));
  if (!merges.empty()) w.set("tokenizer.ggml.merges", str_array(merges));
  auto id = [&](const char* key, hai::TokenId t) {
    if (t >= 0) w.set(key, Value::make_uint(ValueType::UINT32, static_cast<uint64_t>(t)));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  w.set("tokenizer.ggml.add_bos_token", Value::make_bool(v.add_bos));
  w.set("tokenizer.ggml.add_eos_token", Value::make_bool(v.add_eos));
  *n_vocab = static_cast<int64_t>(v.tokens.size());
}

// Every tokenizer.* key of a GGUF file, unchanged.
void vocab_keys_from_gguf(const std::string& path, hai::gguf::Writer& w, int64_t* n_vocab) {
  hai::gguf::File f = hai::gguf::File::open(path);
  if (!f.has("tokenizer.ggml.tokens"))
    throw Error(path + ": no tokenizer.ggml.tokens (not a vocabulary: use a GGUF model or vocabulary, or a tokenizer.json)");
  for (const auto& [key, value] : f.metadata())
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  *n_vocab = static_cast<int64_t>(f.get_string_array("tokenizer.ggml.tokens").size());
}

// A tensor of `spec`'s shape with random values (see the file comment):
// matrices of `type`, vectors F32 as the loaders require. BERT's
// token_types.weight stays F32 as llama.cpp's converter writes it (its
// graph adds the row to F32 activations, which it can only do in F32).
void add_random_tensor(hai::gguf::Writer& w, const hai::model::TensorSpec& spec, GgmlType type, uint64_t seed_base,
                       int64_t n_embd, bool tied) {
  const GgmlType t = spec.is_matrix && spec.name != "token_types.weight" ? type : GgmlType::F32;
  const Init init = init_for(spec.name, spec.shape, n_embd, tied);
  const uint64_t seed = seed_for(seed_base, spec.name);
  const std::vector<int64_t> shape = spec.shape;
  w.add_tensor(spec.name, t, shape, [=](std::vector<uint8_t>& out) {
    Normal normal(seed);
    const int64_t n_cols = shape[0];
    const size_t row_bytes = hai::row_size(t, n_cols);
    const int64_t n_rows = static_cast<int64_t>(out.size() / row_bytes);
    std::vector<float> row(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
      for (float& x : row) x = init.mean + init.std * normal.next();
      hai::quantize_row(t, row.data(), out.data() + static_cast<size_t>(r) * row_bytes, n_cols);
    }
  });
}

GgmlType matrix_type(const std::string& name, uint32_t* file_type) {
  if (name == "f32") return *file_type = 0, GgmlType::F32;
  if (name == "f16") return *file_type = 1, GgmlType::F16;
  if (name == "bf16") return *file_type = 32, GgmlType::BF16;
  throw Error("--type must be f32, f16 or bf16, got '" + name + "'");
}

// The size flags every architecture needs: positive, and a sane depth.
void check_common_shape(const SynthArgs& a) {
  auto positive = [](const char* flag, int64_t v) {
    if (v <= 0) throw Error(std::string(flag) + " must be positive, got " + std::to_string(v));
  };
  positive("--n-embd", a.n_embd);
  positive("--n-layer", a.n_layer);
  positive("--n-head", a.n_head);
  positive("--n-ff", a.n_ff);
  positive("--ctx", a.ctx);
  if (a.n_layer > 10000) throw Error("--n-layer " + std::to_string(a.n_layer) + " is too large");
}

// A BERT encoder (arch "bert") laid out as llama.cpp's converter writes
// bge / MiniLM models: post-norm layers with biases, learned positions,
// token types, layer-norm eps 1e-12, CLS pooling unless --pooling says.
void synth_bert(const SynthArgs& a) {
  check_common_shape(a);
  if (a.n_embd % a.n_head != 0)
    throw Error("--n-embd " + std::to_string(a.n_embd) + " is not a multiple of --n-head " + std::to_string(a.n_head));
  if (a.n_head_kv != 0 && a.n_head_kv != a.n_head)
    throw Error("--n-head-kv " + std::to_string(a.n_head_kv) + " must equal --n-head for bert");
  if (a.head_dim != 0 && a.head_dim * a.n_head != a.n_embd)
    throw Error("--head-dim " + std::to_string(a.head_dim) + " x --n-head " + std::to_string(a.n_head) +
                " must equal --n-embd for bert");
  if (a.pooling < -1 || a.pooling > 4)
    throw Error("--pooling must be 0..4 (none, mean, cls, last, rank) or its name, got " + std::to_string(a.pooling));
  uint32_t file_type = 0;
  const GgmlType type = matrix_type(a.type, &file_type);

  hai::gguf::Writer w;
  auto u32 = [](int64_t v) { return Value::make_uint(ValueType::UINT32, static_cast<uint64_t>(v)); };
  w.set("general.architecture", Value::make_string("bert"));
  w.set("general.name", Value::make_string(a.name.empty() ? "synth-bert" : a.name));
  w.set("bert.context_length", u32(a.ctx));
  w.set("bert.embedding_length", u32(a.n_embd));
  w.set("bert.block_count", u32(a.n_layer));
  w.set("bert.feed_forward_length", u32(a.n_ff));
  w.set("bert.attention.head_count", u32(a.n_head));
  w.set("bert.attention.layer_norm_epsilon", Value::make_float(ValueType::FLOAT32, a.rms_eps > 0 ? a.rms_eps : 1e-12));
  w.set("bert.attention.causal", Value::make_bool(false));
  w.set("bert.pooling_type", u32(a.pooling < 0 ? 2 : a.pooling));
  w.set("general.file_type", u32(file_type));
  w.set("tokenizer.ggml.token_type_count", u32(2));
  int64_t n_vocab = 0;
  if (looks_like_json(a.vocab))
    vocab_keys_from_json(a.vocab, a.vocab_pre, w, &n_vocab);
  else
    vocab_keys_from_gguf(a.vocab, w, &n_vocab);

  hai::model::BertHparams hp;
  hp.n_vocab = n_vocab;
  hp.n_ctx_train = a.ctx;
  hp.n_embd = a.n_embd;
  hp.n_layer = a.n_layer;
  hp.n_ff = a.n_ff;
  hp.n_head = a.n_head;
  hp.n_token_types = 2;
  // The classification head (cls.*, cls.output.*) makes a reranker: only
  // with --pooling rank.
  for (const hai::model::TensorSpec& spec : hai::model::bert_expected_tensors(hp))
    if (a.pooling == 4 || spec.name.rfind("cls.", 0) != 0) add_random_tensor(w, spec, type, a.seed, a.n_embd, false);
  w.write(a.out);
  std::fprintf(stderr, "wrote %s: bert, %lld layers, n_embd %lld, %lld tensors, vocab %lld (%s)\n", a.out.c_str(),
               static_cast<long long>(a.n_layer), static_cast<long long>(a.n_embd),
               static_cast<long long>(w.n_tensors()), static_cast<long long>(n_vocab), a.vocab.c_str());
}

void synth(const SynthArgs& a) {
  if (a.arch == "bert") return synth_bert(a);
  if (a.n_head_kv == 0) throw Error("--n-head-kv is required for " + a.arch);
  if (a.n_head_kv < 0) throw Error("--n-head-kv must be positive, got " + std::to_string(a.n_head_kv));
  check_common_shape(a);
  if (a.n_head % a.n_head_kv != 0)
    throw Error("--n-head " + std::to_string(a.n_head) + " is not a multiple of --n-head-kv " + std::to_string(a.n_head_kv));
  int64_t head_dim = a.head_dim;
  if (head_dim == 0) {
    if (a.n_embd % a.n_head != 0)
      throw Error("--n-embd " + std::to_string(a.n_embd) + " is not a multiple of --n-head " + std::to_string(a.n_head) +
                  " (give --head-dim)");
    head_dim = a.n_embd / a.n_head;
  }
  if (head_dim <= 0) throw Error("--head-dim must be positive, got " + std::to_string(head_dim));
  if (head_dim % 2 != 0) throw Error("--head-dim " + std::to_string(head_dim) + " must be even (RoPE rotates pairs)");
  if (a.arch != "qwen3" && head_dim * a.n_head != a.n_embd)
    throw Error("--head-dim " + std::to_string(head_dim) + " x --n-head " + std::to_string(a.n_head) +
                " must equal --n-embd for " + a.arch + " (only qwen3 has its own head size)");
  uint32_t file_type = 0;
  const GgmlType type = matrix_type(a.type, &file_type);
  const bool tied = a.tied ? true : a.no_tied ? false : a.arch != "llama";
  const double rope_base = a.rope_base > 0 ? a.rope_base : a.arch == "llama" ? 10000.0 : 1000000.0;

  hai::gguf::Writer w;
  const std::string p = a.arch + ".";
  auto u32 = [](int64_t v) { return Value::make_uint(ValueType::UINT32, static_cast<uint64_t>(v)); };
  w.set("general.architecture", Value::make_string(a.arch));
  w.set("general.name", Value::make_string(a.name.empty() ? "synth-" + a.arch : a.name));
  w.set(p + "context_length", u32(a.ctx));
  w.set(p + "embedding_length", u32(a.n_embd));
  w.set(p + "block_count", u32(a.n_layer));
  w.set(p + "feed_forward_length", u32(a.n_ff));
  w.set(p + "attention.head_count", u32(a.n_head));
  w.set(p + "attention.head_count_kv", u32(a.n_head_kv));
  w.set(p + "attention.layer_norm_rms_epsilon",
        Value::make_float(ValueType::FLOAT32, a.rms_eps > 0 ? a.rms_eps : a.arch == "llama" ? 1e-5 : 1e-6));
  w.set(p + "rope.freq_base", Value::make_float(ValueType::FLOAT32, rope_base));
  w.set(p + "rope.dimension_count", u32(head_dim));
  if (a.arch == "qwen3") {
    w.set(p + "attention.key_length", u32(head_dim));
    w.set(p + "attention.value_length", u32(head_dim));
  }
  w.set(p + "vocab_size", u32(0));  // placeholder, keeps llama.cpp's key order; set below
  w.set("general.file_type", Value::make_uint(ValueType::UINT32, file_type));
  int64_t n_vocab = 0;
  if (looks_like_json(a.vocab))
    vocab_keys_from_json(a.vocab, a.vocab_pre, w, &n_vocab);
  else
    vocab_keys_from_gguf(a.vocab, w, &n_vocab);
  w.set(p + "vocab_size", u32(n_vocab));

  hai::model::Hparams hp;
  hp.arch_name = a.arch;
  hp.arch = a.arch == "llama" ? hai::model::Arch::kLlama
            : a.arch == "qwen2" ? hai::model::Arch::kQwen2
                                : hai::model::Arch::kQwen3;
  hp.n_vocab = n_vocab;
  hp.n_ctx_train = a.ctx;
  hp.n_embd = a.n_embd;
  hp.n_layer = a.n_layer;
  hp.n_ff = a.n_ff;
  hp.n_head = a.n_head;
  hp.n_head_kv = a.n_head_kv;
  hp.head_dim_k = hp.head_dim_v = head_dim;
  hp.n_rot = head_dim;

  for (const hai::model::TensorSpec& spec : hai::model::expected_tensors(hp)) {
    const bool want = spec.name == "output.weight" ? !tied : spec.required;
    if (want) add_random_tensor(w, spec, type, a.seed, a.n_embd, tied);
  }
  w.write(a.out);
  std::fprintf(stderr, "wrote %s: %s, %lld layers, n_embd %lld, %lld tensors, vocab %lld (%s)\n", a.out.c_str(),
               a.arch.c_str(), static_cast<long long>(a.n_layer), static_cast<long long>(a.n_embd),
               static_cast<long long>(w.n_tensors()), static_cast<long long>(n_vocab), a.vocab.c_str());
}

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  auto* sub = app.add_subcommand("synth", "Make a random-weight model of a given shape with a real vocabulary");
  sub->add_option("--arch", a->arch, "Architecture")->required()->check(CLI::IsMember({"llama", "qwen2", "qwen3", "bert"}));
  sub->add_option("--n-embd", a->n_embd, "Embedding size")->required();
  sub->add_option("--n-layer", a->n_layer, "Number of layers")->required();
  sub->add_option("--n-head", a->n_head, "Attention heads")->required();
  sub->add_option("--n-head-kv", a->n_head_kv, "Key/value heads (GQA; required except for bert)");
  sub->add_option("--n-ff", a->n_ff, "Feed-forward size")->required();
  sub->add_option("--head-dim", a->head_dim, "Head size (default n_embd / n_head; qwen3 may differ)");
  sub->add_option("--rope-base", a->rope_base, "RoPE frequency base (default 10000 llama, 1e6 qwen)");
  sub->add_option("--rms-eps", a->rms_eps, "RMSNorm epsilon (default 1e-5 llama, 1e-6 qwen); bert: LayerNorm epsilon (1e-12)");
  sub->add_option("--pooling", a->pooling_name,
                  "bert: bert.pooling_type, none|0, mean|1, cls|2 (default), last|3, rank|4 (a reranker: adds the "
                  "classification head cls.*)");
  auto* t = sub->add_flag("--tied", a->tied, "Output matrix tied to the token embedding (default for qwen2/qwen3)");
  sub->add_flag("--no-tied", a->no_tied, "Separate output matrix (default for llama)")->excludes(t);
  sub->add_option("--ctx", a->ctx, "Training context length (default 4096)");
  sub->add_option("--type", a->type, "Matrix type: f16 (default), f32, bf16");
  sub->add_option("--seed", a->seed, "Random seed (default 42)");
  sub->add_option("--name", a->name, "general.name (default synth-ARCH)");
  sub->add_option("--vocab", a->vocab, "Vocabulary: a GGUF with tokenizer.ggml.* keys, or a tokenizer.json")->required();
  sub->add_option("--vocab-pre", a->vocab_pre, "tokenizer.ggml.pre for a tokenizer.json (default: recognised from its regex)");
  sub->add_option("OUT", a->out, "Output GGUF file")->required();
  sub->callback([a] {
    a->pooling = parse_pooling(a->pooling_name);
    synth(*a);
  });
});

}  // namespace
