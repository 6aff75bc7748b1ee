// The knowledge base's use of the engine's models: an embedding function
// from a GGUF embedding model (for dense retrieval), and answers generated
// by a local chat model from the retrieved passages (`hai kb ask --model`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kb/knowledge_base.h"
#include "kb/prompt.h"

namespace hai::model {
class Model;
}
namespace hai::chat {
class Template;
}
namespace hai {
class Tokenizer;
}

namespace hai::kb {

// An embedding function over the GGUF model at `path` (BERT-family encoders,
// decoder embedders; pooling from the file). Throws hai::Error for a missing
// or unusable file.
EmbedFn LoadEmbedder(const std::string& path, int n_threads = 0);

struct GenerateOptions {
  int max_tokens = 512;      // tokens of answer at most
  float temperature = 0.0f;  // 0: greedy (reproducible)
  uint64_t seed = 0;
  int n_threads = 0;  // 0: all cores
  int64_t n_ctx = 0;  // 0: the model's training context, at most 4096
};

// A local chat model with its template (the file's tokenizer.chat_template,
// ChatML when it has none).
class ChatModel {
 public:
  // Throws hai::Error for a missing or corrupt file or a bad template.
  static std::unique_ptr<ChatModel> Load(const std::string& path, const GenerateOptions& opt);
  ~ChatModel();

  // The prompt text for a chat, ending with the assistant's turn.
  std::string Render(const nlohmann::ordered_json& messages) const;
  // Tokens of a rendered prompt.
  std::vector<int32_t> Tokenize(const std::string& prompt) const;
  int64_t n_ctx() const { return n_ctx_; }
  int max_tokens() const { return opt_.max_tokens; }
  // Generates from prompt tokens until end of generation, max_tokens or a
  // full context; `on_text` (optional) receives the text as it grows.
  // Invalid UTF-8 from the model is replaced by U+FFFD.
  std::string Generate(const std::vector<int32_t>& prompt, const std::function<void(const std::string&)>& on_text = nullptr);
  const std::string& path() const { return path_; }

 private:
  ChatModel() = default;
  std::string path_;
  GenerateOptions opt_;
  int64_t n_ctx_ = 0;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<chat::Template> template_;
  std::string bos_, eos_;
};

struct GeneratedAnswer {
  std::string text;          // the model's answer (with its [n] citations)
  std::vector<Hit> sources;  // sources[n-1] is [n] in the prompt
  std::vector<int> cited;    // source numbers the answer cites
  std::string prompt;        // the rendered prompt (for --verbose / debugging)
  int sources_chars = 0;     // passage cut used to fit the context (0: whole)
};

// Retrieves `opt.top_k` passages, builds the prompt (cutting passages, and
// then dropping the last ones, until it leaves room for the answer in the
// context), and generates the answer. Throws hai::Error when not even one
// shortened passage fits.
GeneratedAnswer AskWithModel(KnowledgeBase& kb, ChatModel& model, const std::string& question,
                             const SearchOptions& opt, AnswerMode mode,
                             const std::function<void(const std::string&)>& on_text = nullptr);
// The same over the given passages (sources[n-1] is [n]), e.g. reranked ones.
GeneratedAnswer AnswerWithModel(ChatModel& model, const std::string& question, std::vector<Hit> sources,
                                AnswerMode mode, const std::function<void(const std::string&)>& on_text = nullptr);

}  // namespace hai::kb
