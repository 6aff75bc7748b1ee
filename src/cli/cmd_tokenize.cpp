// hai tokenize (-m MODEL.gguf | --tokenizer tokenizer.json) [--no-special] [--jsonl] TEXT|-
//   -> JSON array of token ids on stdout.
// hai detokenize (-m MODEL.gguf | --tokenizer tokenizer.json) [--no-special] ID...
//   -> the text on stdout.
//
// --jsonl (bulk mode, used by the differential tests): stdin holds one JSON
// string per line; stdout gets one JSON array of ids per line.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

struct Source {
  std::string model;
  std::string tokenizer_json;
};

void add_source_options(CLI::App* sub, Source& src) {
  auto* m = sub->add_option("-m,--model", src.model, "GGUF model or vocabulary file");
  auto* t = sub->add_option("--tokenizer", src.tokenizer_json, "Hugging Face tokenizer.json");
  m->excludes(t);
  t->excludes(m);
}

std::unique_ptr<hai::Tokenizer> load(const Source& src) {
  if (!src.tokenizer_json.empty()) return hai::Tokenizer::from_hf_json(src.tokenizer_json);
  if (src.model.empty()) throw hai::Error("give a model (-m MODEL.gguf) or a tokenizer (--tokenizer tokenizer.json)");
  // Only the metadata is read; the tensor data stays unread in the mapping.
  auto file = hai::gguf::File::open(src.model);
  return hai::Tokenizer::from_gguf(file);
}

std::string ids_json(const std::vector<hai::TokenId>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += ']';
  return s;
}

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

struct TokenizeArgs {
  Source src;
  bool no_special = false;
  bool jsonl = false;
  std::string text;
  bool have_text = false;
};

void run_tokenize(const TokenizeArgs& a) {
  auto tok = load(a.src);
  const bool special = !a.no_special;
  if (a.jsonl) {
    std::string line;
    size_t line_no = 0;
    std::string out;
    while (std::getline(std::cin, line)) {
      ++line_no;
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw hai::Error("stdin line " + std::to_string(line_no) + ": malformed JSON: " + e.what());
      }
      if (!j.is_string()) throw hai::Error("stdin line " + std::to_string(line_no) + ": expected a JSON string");
      try {
        out += ids_json(tok->encode(j.get_ref<const std::string&>(), special, special));
      } catch (const hai::Error& e) {
        throw hai::Error("stdin line " + std::to_string(line_no) + ": " + e.what());
      }
      out += '\n';
      if (out.size() > (1 << 16)) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        out.clear();
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return;
  }
  if (!a.have_text) throw hai::Error("tokenize: give the TEXT to tokenize, or - to read it from stdin");
  std::string text = a.text == "-" ? read_stdin() : a.text;
  std::string out = ids_json(tok->encode(text, special, special));
  std::printf("%s\n", out.c_str());
}

struct DetokenizeArgs {
  Source src;
  bool no_special = false;
  std::vector<std::string> ids;
};

void run_detokenize(const DetokenizeArgs& a) {
  auto tok = load(a.src);
  std::vector<hai::TokenId> ids;
  for (const auto& s : a.ids) {
    hai::TokenId id = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (ec != std::errc() || p != s.data() + s.size()) throw hai::Error("detokenize: '" + s + "' is not a token id");
    if (id < 0 || id >= tok->n_vocab())
      throw hai::Error("detokenize: token id " + s + " is out of range (vocabulary has " +
                       std::to_string(tok->n_vocab()) + " tokens)");
    ids.push_back(id);
  }
  std::string text = tok->decode(ids, !a.no_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);
}

hai::cli::Register reg_tokenize([](CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* sub = app.add_subcommand("tokenize", "Text to token ids (a JSON array on stdout)");
  add_source_options(sub, args->src);
  sub->add_flag("--no-special", args->no_special,
                "Add no BOS/EOS and treat special-token text (e.g. <|im_start|>) as plain text");
  sub->add_flag("--jsonl", args->jsonl, "Bulk mode: one JSON string per stdin line -> one JSON array per line");
  sub->add_option("text", args->text, "The text, or - to read stdin")->each([args](const std::string&) {
    args->have_text = true;
  });
  sub->callback([args]() { run_tokenize(*args); });
});

hai::cli::Register reg_detokenize([](CLI::App& app) {
  auto args = std::make_shared<DetokenizeArgs>();
  auto* sub = app.add_subcommand("detokenize", "Token ids to text");
  add_source_options(sub, args->src);
  sub->add_flag("--no-special", args->no_special, "Leave out control tokens such as <s> and <|im_end|>");
  sub->add_option("ids", args->ids, "Token ids")->required();
  sub->callback([args]() { run_detokenize(*args); });
});

}  // namespace
