#include "engine/model/rerank.h"

#include <algorithm>
#include <mutex>
#include <thread>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/bert.h"

namespace hai::model {
namespace {

// Pairs are batched into one forward pass up to this many tokens.
constexpr int64_t kBatchTokens = 2048;

int resolve_threads(int n) {
  if (n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min(hc, 64u));
}

// The special tokens around the two texts of a pair:
//   [prefix] query [mid...] document [suffix]
struct PairFormat {
  std::vector<int32_t> prefix, mid, suffix;
};

PairFormat pair_format(const std::string& path, const Vocab& v) {
  PairFormat f;
  if (v.model == "bert") {
    // [CLS] query [SEP] document [SEP]
    const int32_t cls = v.cls >= 0 ? v.cls : v.bos;
    const int32_t sep = v.sep >= 0 ? v.sep : v.eos;
    if (cls < 0 || sep < 0) throw Error(path + ": the WordPiece vocabulary has no [CLS] or [SEP] token to form a pair");
    f.prefix = {cls};
    f.mid = {sep};
    f.suffix = {sep};
    return f;
  }
  // BOS query EOS SEP document EOS (XLM-RoBERTa: <s> q </s></s> d </s>).
  const int32_t eos = v.eos >= 0 ? v.eos : v.sep;
  const int32_t sep = v.sep >= 0 ? v.sep : eos;
  if (eos < 0) throw Error(path + ": the vocabulary has no EOS or SEP token to separate query and document");
  if (v.bos >= 0 && v.add_bos) f.prefix = {v.bos};
  f.mid = {eos, sep};
  f.suffix = {eos};
  return f;
}

}  // namespace

struct Reranker::Impl {
  std::string path;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<BertModel> model;
  std::unique_ptr<BertEncoder> encoder;
  PairFormat format;
  Options options;
  bool second_type = false;  // the model has a token-type row 1
  std::mutex mu;
};

Reranker::Reranker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reranker::~Reranker() = default;

std::unique_ptr<Reranker> Reranker::load(const std::string& path, Options options) {
  gguf::File file = gguf::File::open(path);
  const std::string arch = file.get_string("general.architecture");
  if (arch != "bert")
    throw Error(path + ": architecture '" + arch +
                "' (general.architecture) cannot rerank: a reranker is a BERT cross-encoder ('bert') with a "
                "classification head");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  impl->tok = Tokenizer::from_gguf(file);
  impl->model = BertModel::from_file(std::move(file));
  const BertModel& m = *impl->model;
  if (!m.has_rank_head())
    throw Error(path + ": no classification head (tensors cls.weight, cls.bias): not a reranker (an embedding "
                "model? use hai embed)");
  if (impl->tok->n_vocab() > m.hparams().n_vocab)
    throw Error(path + ": the vocabulary has " + std::to_string(impl->tok->n_vocab()) +
                " tokens but token_embd.weight only " + std::to_string(m.hparams().n_vocab) + " rows");
  impl->format = pair_format(path, impl->tok->vocab());
  const int64_t specials = static_cast<int64_t>(impl->format.prefix.size() + impl->format.mid.size() +
                                                impl->format.suffix.size());
  if (m.hparams().n_ctx_train < specials + 2)
    throw Error(path + ": bert.context_length " + std::to_string(m.hparams().n_ctx_train) +
                " is too small for a query-document pair");
  impl->second_type = m.token_types && m.token_types.n_rows >= 2;
  impl->encoder = std::make_unique<BertEncoder>(m, resolve_threads(options.n_threads));
  return std::unique_ptr<Reranker>(new Reranker(std::move(impl)));
}

bool Reranker::is_reranker(const std::string& path) {
  try {
    gguf::File f = gguf::File::open(path);
    if (f.get_string("general.architecture") != "bert") return false;
    return f.find_tensor("cls.weight") != nullptr && f.find_tensor("cls.bias") != nullptr;
  } catch (const std::exception&) {
    return false;
  }
}

RerankPair Reranker::tokenize_pair(const std::string& query, const std::string& document) const {
  const Impl& d = *impl_;
  std::vector<int32_t> q, doc;
  try {
    q = d.tok->encode(query, /*add_special=*/false, /*parse_special=*/false);
  } catch (const Error& e) {
    throw Error(std::string("query: ") + e.what());
  }
  try {
    doc = d.tok->encode(document, /*add_special=*/false, /*parse_special=*/false);
  } catch (const Error& e) {
    throw Error(std::string("document: ") + e.what());
  }
  const PairFormat& f = d.format;
  const int64_t n_ctx = d.model->hparams().n_ctx_train;
  const int64_t fixed = static_cast<int64_t>(f.prefix.size() + q.size() + f.mid.size() + f.suffix.size());
  if (fixed >= n_ctx)
    throw Error("the query has " + std::to_string(q.size()) + " tokens: with the special tokens of a pair that " +
                "leaves no room for a document in the model's " + std::to_string(n_ctx) + " positions");
  RerankPair p;
  if (fixed + static_cast<int64_t>(doc.size()) > n_ctx) {
    doc.resize(static_cast<size_t>(n_ctx - fixed));
    p.truncated = true;
  }
  const int32_t second = d.options.token_types == TokenTypes::Segment && d.second_type ? 1 : 0;
  auto append = [&](const std::vector<int32_t>& ids, int32_t type) {
    p.tokens.insert(p.tokens.end(), ids.begin(), ids.end());
    p.types.insert(p.types.end(), ids.size(), type);
  };
  // Hugging Face's pair encoding: the first sequence with its special
  // tokens is type 0; the second with its closing token type 1. For the
  // XLM-R form the second </s> of the middle opens the document part.
  append(f.prefix, 0);
  append(q, 0);
  append({f.mid.front()}, 0);
  append(std::vector<int32_t>(f.mid.begin() + 1, f.mid.end()), second);
  append(doc, second);
  append(f.suffix, second);
  return p;
}

std::vector<float> Reranker::score_pairs(const std::vector<RerankPair>& pairs) {
  Impl& d = *impl_;
  std::vector<float> scores;
  scores.reserve(pairs.size());
  std::lock_guard<std::mutex> lock(d.mu);
  std::vector<std::vector<int32_t>> texts, types;
  std::vector<float> part;
  int64_t batch_tokens = 0;
  auto flush = [&] {
    if (texts.empty()) return;
    d.encoder->rank(texts, types, part);
    scores.insert(scores.end(), part.begin(), part.end());
    texts.clear();
    types.clear();
    batch_tokens = 0;
  };
  for (const RerankPair& p : pairs) {
    const int64_t n = static_cast<int64_t>(p.tokens.size());
    if (!texts.empty() && batch_tokens + n > kBatchTokens) flush();
    texts.push_back(p.tokens);
    types.push_back(p.types);
    batch_tokens += n;
  }
  flush();
  return scores;
}

std::vector<RerankScore> Reranker::score(const std::string& query, const std::vector<std::string>& documents) {
  std::vector<RerankPair> pairs;
  pairs.reserve(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    try {
      pairs.push_back(tokenize_pair(query, documents[i]));
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.rfind("document: ", 0) == 0) throw Error("document " + std::to_string(i) + what.substr(8));
      throw;
    }
  }
  const std::vector<float> s = score_pairs(pairs);
  std::vector<RerankScore> out(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    out[i].score = s[i];
    out[i].n_tokens = static_cast<int64_t>(pairs[i].tokens.size());
    out[i].truncated = pairs[i].truncated;
  }
  return out;
}

int64_t Reranker::n_ctx() const { return impl_->model->hparams().n_ctx_train; }
const Tokenizer& Reranker::tokenizer() const { return *impl_->tok; }
const std::string& Reranker::path() const { return impl_->path; }

}  // namespace hai::model
