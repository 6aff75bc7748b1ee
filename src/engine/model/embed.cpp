#include "engine/model/embed.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/bert.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"

namespace hai::model {
namespace {

// BERT texts are batched into one forward pass up to this many tokens.
constexpr int64_t kBertBatchTokens = 2048;
// A decoder embeds texts of at most this many tokens (or its training
// context, if smaller); the KV cache grows up to it as longer texts come.
constexpr int64_t kDecoderMaxCtx = 8192;

int resolve_threads(int n) {
  if (n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min(hc, 64u));
}

// The pooling the caller forces, else the metadata's, else the fallback.
Pooling choose_pooling(int metadata, const Embedder::Options& o) {
  if (o.pooling != Pooling::None) return o.pooling;
  if (metadata >= 1 && metadata <= 3) return static_cast<Pooling>(metadata);
  if (o.fallback == Pooling::None) throw Error("pooling 'none' gives one vector per token, not one per text");
  return o.fallback;
}

// out = the pooled vector of the n_tok hidden states [n_tok][dim].
std::vector<float> pool(const float* hidden, int64_t n_tok, int64_t dim, Pooling p) {
  std::vector<float> out(static_cast<size_t>(dim), 0.0f);
  switch (p) {
    case Pooling::Cls:
      std::copy(hidden, hidden + dim, out.begin());
      break;
    case Pooling::Last:
      std::copy(hidden + (n_tok - 1) * dim, hidden + n_tok * dim, out.begin());
      break;
    case Pooling::Mean:
    case Pooling::None: {
      // Summed in token order, then scaled by 1/n (as a mean-pooling matrix
      // of 1/n entries would).
      const float inv = 1.0f / static_cast<float>(n_tok);
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t j = 0; j < dim; ++j) out[j] += hidden[t * dim + j] * inv;
      break;
    }
  }
  return out;
}

void l2_normalize(std::vector<float>& v) {
  double sum = 0.0;
  for (float x : v) sum += static_cast<double>(x) * x;
  if (sum <= 0.0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(sum));
  for (float& x : v) x *= inv;
}

// The common part of both embedders: tokenizing, truncating, pooling,
// normalizing. Subclasses run the network.
class EmbedderBase : public Embedder {
 public:
  EmbedderBase(std::unique_ptr<Tokenizer> tok, std::string arch, int64_t dim, int64_t n_ctx, Pooling pooling,
               bool normalize)
      : tok_(std::move(tok)), arch_(std::move(arch)), dim_(dim), n_ctx_(n_ctx), pooling_(pooling),
        normalize_(normalize) {
    // A special token the vocabulary appends ([SEP], EOS) stays last when
    // a long text is cut: last-token pooling reads it.
    keep_suffix_ = tok_->vocab().add_eos || tok_->vocab().model == "bert";
  }

  int64_t dim() const override { return dim_; }
  int64_t n_ctx() const override { return n_ctx_; }
  Pooling pooling() const override { return pooling_; }
  const Tokenizer& tokenizer() const override { return *tok_; }
  std::string arch() const override { return arch_; }

  std::vector<Embedding> embed(const std::vector<std::string>& texts) override {
    std::vector<std::vector<int32_t>> tokens(texts.size());
    std::vector<Embedding> out(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      try {
        tokens[i] = tok_->encode(texts[i], /*add_special=*/true, /*parse_special=*/false);
      } catch (const Error& e) {
        throw Error("text " + std::to_string(i) + ": " + e.what());
      }
      if (tokens[i].empty())
        throw Error("text " + std::to_string(i) + " is empty and the vocabulary adds no special tokens to embed");
      out[i].truncated = truncate(tokens[i], keep_suffix_);
      out[i].n_tokens = static_cast<int64_t>(tokens[i].size());
    }
    std::lock_guard<std::mutex> lock(mu_);
    run(tokens, out);
    return out;
  }

  Embedding embed_tokens(const std::vector<int32_t>& tokens) override {
    if (tokens.empty()) throw Error("no tokens to embed");
    std::vector<std::vector<int32_t>> t(1, tokens);
    std::vector<Embedding> out(1);
    out[0].truncated = truncate(t[0], /*keep_last=*/false);
    out[0].n_tokens = static_cast<int64_t>(t[0].size());
    std::lock_guard<std::mutex> lock(mu_);
    run(t, out);
    return std::move(out[0]);
  }

 protected:
  // Fills out[i].vector for every (already truncated) token list.
  virtual void run(const std::vector<std::vector<int32_t>>& tokens, std::vector<Embedding>& out) = 0;

  // Pooled (and normalized if asked) vector of n_tok hidden states.
  std::vector<float> finish(const float* hidden, int64_t n_tok) const {
    std::vector<float> v = pool(hidden, n_tok, dim_, pooling_);
    if (normalize_) l2_normalize(v);
    return v;
  }

 private:
  // Cuts `t` to n_ctx tokens; keep_last keeps its last token at the end.
  bool truncate(std::vector<int32_t>& t, bool keep_last) const {
    if (static_cast<int64_t>(t.size()) <= n_ctx_) return false;
    const int32_t last = t.back();
    t.resize(static_cast<size_t>(n_ctx_));
    if (keep_last) t.back() = last;
    return true;
  }

  std::unique_ptr<Tokenizer> tok_;
  std::string arch_;
  int64_t dim_, n_ctx_;
  Pooling pooling_;
  bool normalize_;
  bool keep_suffix_ = false;
  std::mutex mu_;
};

class BertEmbedder : public EmbedderBase {
 public:
  BertEmbedder(std::unique_ptr<BertModel> model, std::unique_ptr<Tokenizer> tok, Pooling pooling, const Options& o)
      : EmbedderBase(std::move(tok), "bert", model->hparams().n_embd, model->hparams().n_ctx_train, pooling,
                     o.normalize),
        model_(std::move(model)),
        encoder_(*model_, resolve_threads(o.n_threads)) {}

 protected:
  // Texts in batches of up to kBertBatchTokens tokens, one forward each.
  void run(const std::vector<std::vector<int32_t>>& tokens, std::vector<Embedding>& out) override {
    const int64_t D = dim();
    std::vector<std::vector<int32_t>> batch;
    std::vector<float> hidden;
    size_t first = 0;
    int64_t batch_tokens = 0;
    auto flush = [&](size_t end) {
      if (batch.empty()) return;
      encoder_.encode(batch, hidden);
      int64_t row = 0;
      for (size_t i = first; i < end; ++i) {
        const int64_t n = static_cast<int64_t>(tokens[i].size());
        out[i].vector = finish(hidden.data() + row * D, n);
        row += n;
      }
      batch.clear();
      batch_tokens = 0;
      first = end;
    };
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int64_t n = static_cast<int64_t>(tokens[i].size());
      if (!batch.empty() && batch_tokens + n > kBertBatchTokens) flush(i);
      batch.push_back(tokens[i]);
      batch_tokens += n;
    }
    flush(tokens.size());
  }

 private:
  std::unique_ptr<BertModel> model_;
  BertEncoder encoder_;
};

class DecoderEmbedder : public EmbedderBase {
 public:
  DecoderEmbedder(std::unique_ptr<Model> model, std::unique_ptr<Tokenizer> tok, Pooling pooling, const Options& o)
      : EmbedderBase(std::move(tok), model->hparams().arch_name, model->hparams().n_embd,
                     std::min(model->hparams().n_ctx_train, kDecoderMaxCtx), pooling, o.normalize),
        model_(std::move(model)),
        n_threads_(resolve_threads(o.n_threads)) {}

 protected:
  // One text at a time through the causal forward pass, from an empty cache.
  void run(const std::vector<std::vector<int32_t>>& tokens, std::vector<Embedding>& out) override {
    std::vector<float> hidden;
    for (size_t i = 0; i < tokens.size(); ++i) {
      Context& ctx = context_for(static_cast<int64_t>(tokens[i].size()));
      ctx.clear();
      ctx.eval_hidden(tokens[i], hidden);
      out[i].vector = finish(hidden.data(), static_cast<int64_t>(tokens[i].size()));
    }
  }

 private:
  // A context of at least n positions: grown in powers of two up to n_ctx().
  Context& context_for(int64_t n) {
    if (!ctx_ || ctx_->n_ctx() < n) {
      int64_t size = 512;
      while (size < n) size *= 2;
      size = std::min(size, n_ctx());
      ctx_.reset();
      ctx_ = std::make_unique<Context>(*model_, size, n_threads_);
    }
    return *ctx_;
  }

  std::unique_ptr<Model> model_;
  int n_threads_;
  std::unique_ptr<Context> ctx_;
};

}  // namespace

std::unique_ptr<Embedder> Embedder::load(const std::string& path, Options options) {
  gguf::File file = gguf::File::open(path);
  const std::string arch = file.get_string("general.architecture");
  if (arch == "bert") {
    std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(file);
    auto model = BertModel::from_file(std::move(file));
    if (tok->n_vocab() > model->hparams().n_vocab)
      throw Error(path + ": the vocabulary has " + std::to_string(tok->n_vocab()) +
                  " tokens but token_embd.weight only " + std::to_string(model->hparams().n_vocab) + " rows");
    const Pooling p = choose_pooling(model->hparams().pooling_type, options);
    return std::make_unique<BertEmbedder>(std::move(model), std::move(tok), p, options);
  }
  const auto& decoders = supported_architectures();
  if (std::find(decoders.begin(), decoders.end(), arch) == decoders.end()) {
    std::string list = "bert";
    for (const auto& a : decoders) list += ", " + a;
    throw Error(path + ": architecture '" + arch + "' (general.architecture) cannot embed; supported: " + list);
  }
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(file);
  const std::string key = arch + ".pooling_type";
  int meta = -1;
  if (const gguf::Value* v = file.find(key)) {
    const int64_t p = v->as_int(key);
    if (p < 0 || p > 3)
      throw Error(path + ": " + key + " = " + std::to_string(p) + " is not supported (0 none, 1 mean, 2 cls, 3 last)");
    meta = static_cast<int>(p);
  }
  auto model = Model::from_file(std::move(file));
  if (tok->n_vocab() > model->hparams().n_vocab)
    throw Error(path + ": the vocabulary has " + std::to_string(tok->n_vocab()) + " tokens but token_embd.weight only " +
                std::to_string(model->hparams().n_vocab) + " rows");
  const Pooling p = choose_pooling(meta, options);
  return std::make_unique<DecoderEmbedder>(std::move(model), std::move(tok), p, options);
}

}  // namespace hai::model
