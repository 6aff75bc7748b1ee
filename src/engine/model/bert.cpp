#include "engine/model/bert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "engine/common/cpu.h"
#include "engine/common/error.h"
#include "engine/model/bert_attention.h"
#include "engine/quant/quant.h"

namespace hai::model {
namespace {

int64_t positive_key(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (!v) throw Error(f.path() + ": missing metadata key " + key);
  const int64_t x = v->as_int(key);
  if (x <= 0) throw Error(f.path() + ": metadata " + key + " = " + std::to_string(x) + " must be positive");
  return x;
}

// The GELU table: for every F16 bit pattern h, gelu(h) rounded to F16, as
// ggml precomputes it; kept here widened to float (what a lookup returns).
struct GeluTable {
  std::vector<float> value;
  GeluTable() : value(1 << 16) {
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    constexpr float kCoefA = 0.044715f;
    for (uint32_t h = 0; h < (1u << 16); ++h) {
      const float x = fp16_to_fp32(static_cast<uint16_t>(h));
      const float g = 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
      value[h] = fp16_to_fp32(fp32_to_fp16(g));
    }
  }
};

}  // namespace

float bert_gelu(float x) {
  static const GeluTable table;
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return table.value[fp32_to_fp16(x)];
}

void bert_layer_norm(float* y, const float* x, const float* w, const float* b, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  double sum2 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - mean;
    y[i] = d;
    sum2 += static_cast<double>(d * d);
  }
  const float var = static_cast<float>(sum2 / static_cast<double>(n));
  const float scale = 1.0f / sqrtf(var + eps);
  for (int64_t i = 0; i < n; ++i) {
    float v = y[i] * scale;
    if (w) v = v * w[i];
    if (b) v = v + b[i];
    y[i] = v;
  }
}

BertHparams read_bert_hparams(const gguf::File& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "bert")
    throw Error(f.path() + ": architecture '" + arch + "' (general.architecture) is not a BERT encoder ('bert')");
  BertHparams hp;
  hp.n_ctx_train = positive_key(f, "bert.context_length");
  hp.n_embd = positive_key(f, "bert.embedding_length");
  hp.n_layer = positive_key(f, "bert.block_count");
  if (hp.n_layer > 4096)  // checked before a list of 16 tensors per layer is built
    throw Error(f.path() + ": bert.block_count = " + std::to_string(hp.n_layer) + " is not a plausible layer count");
  hp.n_ff = positive_key(f, "bert.feed_forward_length");
  hp.n_head = positive_key(f, "bert.attention.head_count");
  if (hp.n_embd % hp.n_head != 0)
    throw Error(f.path() + ": bert.embedding_length " + std::to_string(hp.n_embd) +
                " is not a multiple of bert.attention.head_count " + std::to_string(hp.n_head));
  if (const gguf::Value* v = f.find("bert.attention.head_count_kv");
      v && v->as_int("bert.attention.head_count_kv") != hp.n_head)
    throw Error(f.path() + ": bert.attention.head_count_kv = " + std::to_string(v->as_int()) +
                " differs from bert.attention.head_count " + std::to_string(hp.n_head) +
                " (grouped-query attention is not BERT)");
  if (f.get_bool_or("bert.attention.causal", false))
    throw Error(f.path() + ": bert.attention.causal = true: a causal BERT is not supported");

  const gguf::Value* eps = f.find("bert.attention.layer_norm_epsilon");
  if (!eps) throw Error(f.path() + ": missing metadata key bert.attention.layer_norm_epsilon");
  const double e = eps->as_float("bert.attention.layer_norm_epsilon");
  if (!std::isfinite(e) || e < 0)
    throw Error(f.path() + ": metadata bert.attention.layer_norm_epsilon = " + std::to_string(e) +
                " must be a finite number >= 0");
  hp.norm_eps = static_cast<float>(e);

  if (const gguf::Value* v = f.find("bert.pooling_type")) {
    const int64_t p = v->as_int("bert.pooling_type");
    if (p < 0 || p > 4)
      throw Error(f.path() + ": bert.pooling_type = " + std::to_string(p) +
                  " is not supported (0 none, 1 mean, 2 cls, 3 last, 4 rank)");
    hp.pooling_type = static_cast<int>(p);
  }
  if (const gguf::Value* v = f.find("tokenizer.ggml.token_type_count")) {
    hp.n_token_types = v->as_int("tokenizer.ggml.token_type_count");
    if (hp.n_token_types <= 0 || hp.n_token_types > 1024)
      throw Error(f.path() + ": tokenizer.ggml.token_type_count = " + std::to_string(hp.n_token_types) +
                  " must be in [1, 1024]");
  }

  const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) throw Error(f.path() + ": missing tensor token_embd.weight");
  if (emb->shape.size() != 2)
    throw Error(f.path() + ": tensor token_embd.weight has " + std::to_string(emb->shape.size()) +
                " dimensions, expected 2");
  hp.n_vocab = emb->shape[1];
  // The classifier's width is whatever cls.output.weight has (1 for a
  // reranker, more for a sequence classifier; the score is the first).
  if (const gguf::TensorInfo* out = f.find_tensor("cls.output.weight"); out && out->shape.size() == 2) {
    if (out->shape[1] <= 0 || out->shape[1] > 65536)
      throw Error(f.path() + ": tensor cls.output.weight has " + std::to_string(out->shape[1]) +
                  " outputs, expected 1 to 65536");
    hp.n_cls_out = out->shape[1];
  }
  return hp;
}

std::vector<TensorSpec> bert_expected_tensors(const BertHparams& hp) {
  std::vector<TensorSpec> t;
  auto vec = [&](std::string name, int64_t n) { t.push_back({std::move(name), {n}, true, false}); };
  auto mat = [&](std::string name, int64_t n_in, int64_t n_out, bool required = true) {
    t.push_back({std::move(name), {n_in, n_out}, required, true});
  };
  mat("token_embd.weight", hp.n_embd, hp.n_vocab);
  mat("token_types.weight", hp.n_embd, hp.n_token_types, /*required=*/false);
  mat("position_embd.weight", hp.n_embd, hp.n_ctx_train);
  vec("token_embd_norm.weight", hp.n_embd);
  vec("token_embd_norm.bias", hp.n_embd);
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    mat(b + "attn_q.weight", hp.n_embd, hp.n_embd);
    vec(b + "attn_q.bias", hp.n_embd);
    mat(b + "attn_k.weight", hp.n_embd, hp.n_embd);
    vec(b + "attn_k.bias", hp.n_embd);
    mat(b + "attn_v.weight", hp.n_embd, hp.n_embd);
    vec(b + "attn_v.bias", hp.n_embd);
    mat(b + "attn_output.weight", hp.n_embd, hp.n_embd);
    vec(b + "attn_output.bias", hp.n_embd);
    vec(b + "attn_output_norm.weight", hp.n_embd);
    vec(b + "attn_output_norm.bias", hp.n_embd);
    mat(b + "ffn_up.weight", hp.n_embd, hp.n_ff);
    vec(b + "ffn_up.bias", hp.n_ff);
    mat(b + "ffn_down.weight", hp.n_ff, hp.n_embd);
    vec(b + "ffn_down.bias", hp.n_embd);
    vec(b + "layer_output_norm.weight", hp.n_embd);
    vec(b + "layer_output_norm.bias", hp.n_embd);
  }
  // The classification head of a reranker (optional: an embedding model
  // has none).
  mat("cls.weight", hp.n_embd, hp.n_embd, /*required=*/false);
  t.push_back({"cls.bias", {hp.n_embd}, false, false});
  mat("cls.output.weight", hp.n_embd, hp.n_cls_out, /*required=*/false);
  t.push_back({"cls.output.bias", {hp.n_cls_out}, false, false});
  return t;
}

std::unique_ptr<BertModel> BertModel::load(const std::string& path) {
  gguf::File file = gguf::File::open(path);
  file.prefer_huge_pages();  // pages the weights in, in 2 MiB pages where the kernel can
  return from_file(std::move(file));
}

std::unique_ptr<BertModel> BertModel::from_file(gguf::File file) {
  std::unique_ptr<BertModel> m(new BertModel(std::move(file)));
  m->bind();
  return m;
}

void BertModel::bind() {
  const gguf::File& f = file_;
  hp_ = read_bert_hparams(f);
  check_tensors(f, bert_expected_tensors(hp_));
  // Variants this forward pass does not compute (GEGLU FFN of jina-bert,
  // fused QKV of nomic-bert) must not be silently ignored.
  for (const char* extra : {"blk.0.ffn_gate.weight", "blk.0.attn_qkv.weight"})
    if (f.find_tensor(extra))
      throw Error(f.path() + ": tensor " + extra + " belongs to a BERT variant that is not supported");

  auto bind = [&](const std::string& name) { return bind_weight(f, name); };
  token_embd = bind("token_embd.weight");
  token_types = bind("token_types.weight");
  position_embd = bind("position_embd.weight");
  embd_norm_w = bind("token_embd_norm.weight");
  embd_norm_b = bind("token_embd_norm.bias");
  layers.resize(static_cast<size_t>(hp_.n_layer));
  for (int64_t l = 0; l < hp_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    BertLayer& L = layers[static_cast<size_t>(l)];
    L.wq = bind(b + "attn_q.weight");
    L.bq = bind(b + "attn_q.bias");
    L.wk = bind(b + "attn_k.weight");
    L.bk = bind(b + "attn_k.bias");
    L.wv = bind(b + "attn_v.weight");
    L.bv = bind(b + "attn_v.bias");
    L.wo = bind(b + "attn_output.weight");
    L.bo = bind(b + "attn_output.bias");
    L.attn_norm_w = bind(b + "attn_output_norm.weight");
    L.attn_norm_b = bind(b + "attn_output_norm.bias");
    L.ffn_up = bind(b + "ffn_up.weight");
    L.ffn_up_b = bind(b + "ffn_up.bias");
    L.ffn_down = bind(b + "ffn_down.weight");
    L.ffn_down_b = bind(b + "ffn_down.bias");
    L.out_norm_w = bind(b + "layer_output_norm.weight");
    L.out_norm_b = bind(b + "layer_output_norm.bias");
  }
  cls_w = bind("cls.weight");
  cls_b = bind("cls.bias");
  cls_out_w = bind("cls.output.weight");
  cls_out_b = bind("cls.output.bias");
  // Half a head is a broken file, not a model without one.
  if (static_cast<bool>(cls_w) != static_cast<bool>(cls_b))
    throw Error(f.path() + ": tensor " + std::string(cls_w ? "cls.bias" : "cls.weight") +
                " is missing (the classification head needs cls.weight and cls.bias)");
  if (static_cast<bool>(cls_out_w) != static_cast<bool>(cls_out_b))
    throw Error(f.path() + ": tensor " + std::string(cls_out_w ? "cls.output.bias" : "cls.output.weight") +
                " is missing (the classifier output needs cls.output.weight and cls.output.bias)");
  if (cls_out_w && !cls_w)
    throw Error(f.path() + ": tensor cls.output.weight without cls.weight: the classification head is incomplete");
}

BertEncoder::BertEncoder(const BertModel& model, int n_threads) : model_(model), hp_(model.hparams()) {
  if (n_threads < 1 || n_threads > 1024)
    throw Error("thread count must be in [1, 1024], got " + std::to_string(n_threads));
  pool_ = std::make_unique<ThreadPool>(n_threads);
  pfor_ = ParallelFor(pool_.get());
}

BertEncoder::~BertEncoder() = default;

// The encoder over all n tokens of the batch (texts at start_[i] ..
// start_[i+1]); see bert.h for the equations.
void BertEncoder::encode(const std::vector<std::vector<int32_t>>& texts, std::vector<float>& hidden) {
  run(texts, nullptr);
  hidden.assign(x_.begin(), x_.begin() + start_.back() * hp_.n_embd);
}

void BertEncoder::encode(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>& types,
                         std::vector<float>& hidden) {
  run(texts, types.empty() ? nullptr : &types);
  hidden.assign(x_.begin(), x_.begin() + start_.back() * hp_.n_embd);
}

// The classification head on the first hidden state of every text:
//   c = tanh(h W_cls + b_cls);  out = c W_out + b_out;  score = out[0]
// as llama.cpp's rank pooling (mul_mat, add, tanh, mul_mat, add).
void BertEncoder::rank(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>& types,
                       std::vector<float>& scores) {
  const BertModel& m = model_;
  if (!m.has_rank_head())
    throw Error(m.file().path() + ": no classification head (cls.weight, cls.bias): not a reranker");
  run(texts, types.empty() ? nullptr : &types);
  const int64_t D = hp_.n_embd, n = static_cast<int64_t>(texts.size());
  scores.clear();
  if (n == 0) return;

  std::vector<float> h(static_cast<size_t>(n * D));  // [n][n_embd]: each text's first token
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(&x_[static_cast<size_t>(start_[i] * D)], D, &h[static_cast<size_t>(i * D)]);
  std::vector<float> c(static_cast<size_t>(n * D));
  matmul(m.cls_w, h.data(), n, c.data(), m.cls_b.f32(), act_, pfor_);
  for (float& v : c) v = tanhf(v);
  if (!m.cls_out_w) {
    for (int64_t i = 0; i < n; ++i) scores.push_back(c[static_cast<size_t>(i * D)]);
    return;
  }
  const int64_t K = hp_.n_cls_out;
  std::vector<float> out(static_cast<size_t>(n * K));
  matmul(m.cls_out_w, c.data(), n, out.data(), m.cls_out_b.f32(), act_, pfor_);
  for (int64_t i = 0; i < n; ++i) scores.push_back(out[static_cast<size_t>(i * K)]);
}

void BertEncoder::run(const std::vector<std::vector<int32_t>>& texts, const std::vector<std::vector<int32_t>>* types) {
  const BertHparams& hp = hp_;
  const int64_t D = hp.n_embd, F = hp.n_ff;

  start_.assign(1, 0);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& t = texts[i];
    if (t.empty()) throw Error("text " + std::to_string(i) + " of the batch has no tokens");
    if (static_cast<int64_t>(t.size()) > hp.n_ctx_train)
      throw Error("text " + std::to_string(i) + " has " + std::to_string(t.size()) +
                  " tokens, more than the model's " + std::to_string(hp.n_ctx_train) + " positions");
    for (int32_t id : t)
      if (id < 0 || id >= hp.n_vocab)
        throw Error("token id " + std::to_string(id) + " is out of the vocabulary [0, " + std::to_string(hp.n_vocab) +
                    ")");
    start_.push_back(start_.back() + static_cast<int64_t>(t.size()));
  }
  const int64_t n_types = model_.token_types ? model_.token_types.n_rows : 1;
  if (types) {
    if (types->size() != texts.size())
      throw Error("token types given for " + std::to_string(types->size()) + " texts, but the batch has " +
                  std::to_string(texts.size()));
    for (size_t i = 0; i < texts.size(); ++i) {
      if ((*types)[i].size() != texts[i].size())
        throw Error("text " + std::to_string(i) + " has " + std::to_string(texts[i].size()) + " tokens but " +
                    std::to_string((*types)[i].size()) + " token types");
      for (int32_t y : (*types)[i])
        if (y < 0 || y >= n_types)
          throw Error("token type " + std::to_string(y) + " is out of the model's range [0, " +
                      std::to_string(n_types) + ")");
    }
  }
  const int64_t n = start_.back();
  if (n == 0) return;

  x_.resize(static_cast<size_t>(n * D));
  q_.resize(x_.size());
  k_.resize(x_.size());
  v_.resize(x_.size());
  att_.resize(x_.size());
  proj_.resize(x_.size());
  ff_.resize(static_cast<size_t>(n * F));

  // Embeddings: token + token type (0, "sentence A", unless given) + position,
  // then LayerNorm.
  std::vector<float> type_rows(static_cast<size_t>(n_types * D), 0.0f);
  if (model_.token_types)
    for (int64_t y = 0; y < n_types; ++y)
      dequantize_row(model_.token_types.type, model_.token_types.row(y), &type_rows[static_cast<size_t>(y * D)], D);
  for (size_t i = 0; i < texts.size(); ++i) {
    const int64_t s = start_[i];
    pfor_(static_cast<int64_t>(texts[i].size()), [&](int64_t p0, int64_t p1) {
      std::vector<float> pos(static_cast<size_t>(D));
      for (int64_t p = p0; p < p1; ++p) {
        float* xr = &x_[static_cast<size_t>((s + p) * D)];
        const int64_t y = types ? (*types)[i][static_cast<size_t>(p)] : 0;
        const float* type = &type_rows[static_cast<size_t>(y * D)];
        embedding_row(model_.token_embd, texts[i][static_cast<size_t>(p)], xr);
        embedding_row(model_.position_embd, static_cast<int32_t>(p), pos.data());
        for (int64_t j = 0; j < D; ++j) xr[j] = (xr[j] + type[j]) + pos[j];
        bert_layer_norm(xr, xr, model_.embd_norm_w.f32(), model_.embd_norm_b.f32(), D, hp.norm_eps);
      }
    });
  }

  for (const BertLayer& L : model_.layers) {
    // Self-attention, then the residual and its LayerNorm.
    matmul(L.wq, x_.data(), n, q_.data(), L.bq.f32(), act_, pfor_);
    matmul(L.wk, x_.data(), n, k_.data(), L.bk.f32(), act_, pfor_);
    matmul(L.wv, x_.data(), n, v_.data(), L.bv.f32(), act_, pfor_);
    attention();
    matmul(L.wo, att_.data(), n, proj_.data(), L.bo.f32(), act_, pfor_);
    residual_norm(n, L.attn_norm_w, L.attn_norm_b);

    // Feed-forward: GELU(x W_up + b_up) W_down + b_down, residual, LayerNorm.
    matmul(L.ffn_up, x_.data(), n, ff_.data(), L.ffn_up_b.f32(), act_, pfor_);
    pfor_(n, [&](int64_t t0, int64_t t1) {
      for (int64_t i = t0 * F; i < t1 * F; ++i) ff_[static_cast<size_t>(i)] = bert_gelu(ff_[static_cast<size_t>(i)]);
    });
    matmul(L.ffn_down, ff_.data(), n, proj_.data(), L.ffn_down_b.f32(), act_, pfor_);
    residual_norm(n, L.out_norm_w, L.out_norm_b);
  }
}

// x = LayerNorm(proj + x) * w + b for each of the n tokens.
void BertEncoder::residual_norm(int64_t n, const Weight& w, const Weight& b) {
  const int64_t D = hp_.n_embd;
  pfor_(n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* xr = &x_[static_cast<size_t>(t * D)];
      const float* pr = &proj_[static_cast<size_t>(t * D)];
      for (int64_t j = 0; j < D; ++j) xr[j] = pr[j] + xr[j];
      bert_layer_norm(xr, xr, w.f32(), b.f32(), D, hp_.norm_eps);
    }
  });
}

// Bidirectional multi-head attention within each text of the batch:
//   att[i] = sum_j softmax_j(q[i] . k[j] / sqrt(d)) v[j]   (i, j in the same text)
// One job per (text, head), by bert_head_attention (bert_attention.h) in
// the widest build this CPU runs.
void BertEncoder::attention() {
  const int64_t D = hp_.n_embd, H = hp_.n_head, hd = hp_.head_dim();
  const int64_t n_texts = static_cast<int64_t>(start_.size()) - 1;
  int64_t max_len = 0;
  for (int64_t i = 0; i < n_texts; ++i) max_len = std::max(max_len, start_[i + 1] - start_[i]);
  const CpuLevel level = cpu_level();
  pfor_(n_texts * H, [&](int64_t j0, int64_t j1) {
    std::vector<float> kt(static_cast<size_t>(hd * bert_padded(max_len)));
    std::vector<float> scores(static_cast<size_t>(bert_padded(max_len)));
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t text = job / H, h = job % H;
      const size_t off = static_cast<size_t>(start_[text] * D + h * hd);
      BertHeadArgs a;
      a.q = &q_[off];
      a.k = &k_[off];
      a.v = &v_[off];
      a.out = &att_[off];
      a.stride = D;
      a.len = start_[text + 1] - start_[text];
      a.hd = hd;
      a.scale = 1.0f / sqrtf(static_cast<float>(hd));
      a.kt = kt.data();
      a.scores = scores.data();
      if (level == CpuLevel::kAvx512) bert_head_attention_avx512(a);
      else if (level == CpuLevel::kAvx2) bert_head_attention_avx2(a);
      else bert_head_attention(a);
    }
  });
}

}  // namespace hai::model
