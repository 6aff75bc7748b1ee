#include "kb/llm.h"

#include <algorithm>
#include <random>
#include <thread>

#include "engine/chat/template.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model/embed.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

int Threads(int n) { return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

std::string TokenText(const gguf::File& f, const char* id_key) {
  const gguf::Value* id = f.find(id_key);
  const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  if (!id || !tokens || !tokens->is_array()) return "";
  int64_t k = id->as_int(id_key);
  const auto& arr = tokens->as_array("tokenizer.ggml.tokens");
  if (k < 0 || static_cast<size_t>(k) >= arr.size()) return "";
  return arr[static_cast<size_t>(k)].as_string("tokenizer.ggml.tokens");
}

}  // namespace

EmbedFn LoadEmbedder(const std::string& path, int n_threads) {
  model::Embedder::Options o;
  o.n_threads = n_threads;
  o.normalize = true;
  std::shared_ptr<model::Embedder> e = model::Embedder::load(path, o);
  return [e](const std::vector<std::string>& texts) {
    std::vector<std::vector<float>> out;
    for (auto& emb : e->embed(texts)) out.push_back(std::move(emb.vector));
    return out;
  };
}

std::unique_ptr<ChatModel> ChatModel::Load(const std::string& path, const GenerateOptions& opt) {
  if (opt.max_tokens < 1) throw Error("--max-tokens must be at least 1 (got " + std::to_string(opt.max_tokens) + ")");
  model::SamplerParams sp;
  sp.temperature = opt.temperature;
  model::validate(sp);
  std::unique_ptr<ChatModel> m(new ChatModel());
  m->path_ = path;
  m->opt_ = opt;
  m->model_ = model::Model::load(path);
  m->tokenizer_ = Tokenizer::from_gguf(m->model_->file());
  const auto& f = m->model_->file();
  std::string source = chat::kChatMlTemplate, name = "chatml";
  if (const gguf::Value* t = f.find("tokenizer.chat_template")) {
    source = t->as_string("tokenizer.chat_template");
    name = path + ":tokenizer.chat_template";
  }
  m->template_ = std::make_unique<chat::Template>(source, name);
  m->bos_ = TokenText(f, "tokenizer.ggml.bos_token_id");
  m->eos_ = TokenText(f, "tokenizer.ggml.eos_token_id");
  const int64_t train = m->model_->hparams().n_ctx_train;
  m->n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(train > 0 ? train : 4096, 4096);
  return m;
}

ChatModel::~ChatModel() = default;

std::string ChatModel::Render(const nlohmann::ordered_json& messages) const {
  return chat::render_chat(*template_, messages, nullptr, /*add_generation_prompt=*/true, bos_, eos_);
}

std::vector<int32_t> ChatModel::Tokenize(const std::string& prompt) const {
  // A template that writes the BOS text itself must not get a second one.
  const bool has_bos = !bos_.empty() && prompt.rfind(bos_, 0) == 0;
  return tokenizer_->encode(prompt, /*add_special=*/!has_bos, /*parse_special=*/true);
}

std::string ChatModel::Generate(const std::vector<int32_t>& prompt,
                                const std::function<void(const std::string&)>& on_text) {
  if (prompt.empty()) throw Error("the prompt gives no tokens");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx_)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the context of " +
                std::to_string(n_ctx_) + " tokens");
  model::SamplerParams sp;
  sp.temperature = opt_.temperature;
  sp.seed = opt_.seed;
  model::Context ctx(*model_, n_ctx_, Threads(opt_.n_threads));
  model::Sampler sampler(sp);
  for (int32_t t : prompt) sampler.accept(t);
  std::vector<float> logits;
  ctx.eval(prompt, /*all_logits=*/false, logits);
  const int64_t n_vocab = model_->hparams().n_vocab;
  std::string bytes;
  for (int n = 0; n < opt_.max_tokens; ++n) {
    const int32_t next = sampler.sample(logits.data(), n_vocab);
    if (tokenizer_->is_eog(next)) break;
    bytes += tokenizer_->token_to_piece(next, /*render_special=*/false);
    if (on_text) on_text(bytes);
    sampler.accept(next);
    if (ctx.n_past() >= ctx.n_ctx()) break;
    ctx.eval({next}, /*all_logits=*/false, logits);
  }
  return EncodeUtf8(DecodeUtf8(bytes));  // invalid sequences become U+FFFD
}

namespace {

void CheckQuestion(const std::string& question) {
  if (!IsValidUtf8(question)) throw Error("the question is not valid UTF-8");
  if (Trim(question).empty()) throw Error("the question is empty");
}

}  // namespace

GeneratedAnswer AskWithModel(KnowledgeBase& kb, ChatModel& model, const std::string& question,
                             const SearchOptions& opt, AnswerMode mode,
                             const std::function<void(const std::string&)>& on_text) {
  CheckQuestion(question);
  return AnswerWithModel(model, question, kb.Search(question, opt), mode, on_text);
}

GeneratedAnswer AnswerWithModel(ChatModel& model, const std::string& question, std::vector<Hit> sources,
                                AnswerMode mode, const std::function<void(const std::string&)>& on_text) {
  CheckQuestion(question);
  GeneratedAnswer a;
  a.sources = std::move(sources);
  // Room for the answer: max_tokens, but at most a quarter of the context
  // (a longer answer stops when the context is full).
  const int64_t budget = model.n_ctx() - std::max<int64_t>(1, std::min<int64_t>(model.n_ctx() / 4, model.max_tokens()));
  std::vector<int32_t> tokens;
  for (;;) {
    bool fits = false;
    for (int cut : {0, 600, 300, 150, 60}) {
      a.prompt = model.Render(BuildAskMessages(question, a.sources, mode, cut));
      tokens = model.Tokenize(a.prompt);
      a.sources_chars = cut;
      if (static_cast<int64_t>(tokens.size()) <= budget) {
        fits = true;
        break;
      }
    }
    if (fits) break;
    if (a.sources.size() <= 1)
      throw Error("the question and one shortened source need " + std::to_string(tokens.size()) +
                  " tokens, more than fit the model's context of " + std::to_string(model.n_ctx()) +
                  " tokens with room for the answer");
    a.sources.pop_back();
  }
  a.text = Trim(model.Generate(tokens, on_text));
  a.cited = CitedSources(a.text, static_cast<int>(a.sources.size()));
  return a;
}

}  // namespace hai::kb
