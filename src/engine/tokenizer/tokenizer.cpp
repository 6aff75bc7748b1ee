// Tokenizer construction from a Vocab (GGUF tokenizer.ggml.* metadata) the
// way llama.cpp configures it, and end-of-generation detection.
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/unicode.h"

namespace hai {

bool Tokenizer::is_eog(TokenId id) const {
  return id >= 0 && std::find(vocab_.eog.begin(), vocab_.eog.end(), id) != vocab_.eog.end();
}

namespace tok {

void fill_eog(Vocab& v) {
  static const std::unordered_set<std::string> kEogTexts = {
      "<|eot_id|>", "<|im_end|>",    "<|end|>",    "<end_of_turn>", "<|endoftext|>",
      "<|eom_id|>", "<EOT>",         "_<EOT>",     "<|end_of_text|>", "<｜end▁of▁sentence｜>",
      "<|return|>", "<|call|>",      "<end_of_utterance>"};
  static const std::vector<std::string> kEotTexts = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
      "<EOT>",      "_<EOT>",     "<｜end▁of▁sentence｜>"};
  const TokenId n = static_cast<TokenId>(v.tokens.size());
  if (v.eot < 0) {
    for (const auto& t : kEotTexts) {
      auto it = std::find(v.tokens.begin(), v.tokens.end(), t);
      if (it != v.tokens.end()) {
        v.eot = static_cast<TokenId>(it - v.tokens.begin());
        break;
      }
    }
  }
  std::vector<TokenId> eog = v.eog;
  auto add = [&](TokenId id) {
    if (id >= 0 && id < n && std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
  };
  for (TokenId id = 0; id < n; ++id)
    if (kEogTexts.count(v.tokens[id])) add(id);
  add(v.eos);
  add(v.eot);
  std::sort(eog.begin(), eog.end());
  v.eog = std::move(eog);
}

namespace {

void check_id(TokenId id, size_t n, const char* what) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n))
    throw Error(std::string("tokenizer: ") + what + " = " + std::to_string(id) + " is out of range (vocabulary has " +
                std::to_string(n) + " tokens)");
}

std::vector<AddedToken> added_from_types(const Vocab& v) {
  std::vector<AddedToken> out;
  if (v.types.empty()) return out;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    TokenType t = v.types[i];
    if (t == TokenType::CONTROL || t == TokenType::UNKNOWN || t == TokenType::USER_DEFINED) {
      AddedToken a;
      a.text = v.tokens[i];
      a.id = static_cast<TokenId>(i);
      a.special = t != TokenType::USER_DEFINED;  // user-defined tokens are matched even without parse_special
      a.rstrip = std::find(v.rstrip.begin(), v.rstrip.end(), a.id) != v.rstrip.end();
      out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace
}  // namespace tok

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(Vocab v) {
  using namespace tok;
  const size_t n = v.tokens.size();
  if (n == 0) throw Error("tokenizer: the vocabulary has no tokens (tokenizer.ggml.tokens)");
  if (!v.scores.empty() && v.scores.size() != n)
    throw Error("tokenizer: tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
                std::to_string(n) + " tokens");
  if (!v.types.empty() && v.types.size() != n)
    throw Error("tokenizer: tokenizer.ggml.token_type has " + std::to_string(v.types.size()) + " entries for " +
                std::to_string(n) + " tokens");
  for (size_t i = 0; i < n; ++i)
    if (!unicode::is_valid_utf8(v.tokens[i]))
      throw Error("tokenizer: token " + std::to_string(i) + " is not valid UTF-8 (tokenizer.ggml.tokens)");
  check_id(v.bos, n, "bos_token_id");
  check_id(v.eos, n, "eos_token_id");
  check_id(v.eot, n, "eot_token_id");
  check_id(v.unk, n, "unknown_token_id");
  check_id(v.pad, n, "padding_token_id");
  check_id(v.sep, n, "seperator_token_id");
  check_id(v.cls, n, "cls_token_id");
  check_id(v.mask, n, "mask_token_id");

  auto map = build_token_map(v.tokens);
  PipelineConfig cfg;
  cfg.added = added_from_types(v);

  if (v.model == "llama") {
    if (v.add_space_prefix) cfg.normalizers.push_back(make_prepend(" ", false));
    cfg.normalizers.push_back(make_replace(" ", "\xE2\x96\x81"));
    cfg.model = make_spm_model(v, map);
    cfg.piece_mode = PieceMode::SENTENCEPIECE;
    cfg.strip_first_space = v.add_space_prefix;
    if (v.add_bos) {
      if (v.bos < 0) throw Error("tokenizer: add_bos_token is true, but bos_token_id is not set");
      cfg.prefix.push_back(v.bos);
    }
    if (v.add_eos) {
      if (v.eos < 0) throw Error("tokenizer: add_eos_token is true, but eos_token_id is not set");
      cfg.suffix.push_back(v.eos);
    }
  } else if (v.model == "gpt2") {
    if (v.pre.empty()) v.pre = "default";
    cfg.pre_tokenizers.push_back(make_regex_sequence(gguf_pre_regexes(v.pre)));
    cfg.pre_tokenizers.push_back(make_byte_level(false, false));
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      size_t sp = m.find(' ', 1);
      if (sp == std::string::npos)
        throw Error("tokenizer: merge " + std::to_string(i) + " '" + m + "' has no space (tokenizer.ggml.merges)");
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    BpeOptions o;
    o.ignore_merges = v.pre == "llama3" || v.pre == "llama-v3" || v.pre == "llama-bpe" || v.pre == "falcon3" ||
                      v.pre == "pixtral";
    cfg.model = make_bpe_model(map, merges, o);
    cfg.piece_mode = PieceMode::BYTE_LEVEL;
    if (v.add_bos) {
      if (v.bos < 0) throw Error("tokenizer: add_bos_token is true, but bos_token_id is not set");
      cfg.prefix.push_back(v.bos);
    }
    if (v.add_eos) {
      if (v.eos < 0) throw Error("tokenizer: add_eos_token is true, but eos_token_id is not set");
      cfg.suffix.push_back(v.eos);
    }
  } else if (v.model == "bert") {
    cfg.normalizers.push_back(make_bert_normalizer(true, true, true, true));
    cfg.pre_tokenizers.push_back(make_bert_pre_tokenizer());
    cfg.model = make_wordpiece_model(map, v.unk, "\xE2\x96\x81", "", 100);
    cfg.piece_mode = PieceMode::WORDPIECE_GGUF;
    cfg.strip_first_space = true;
    TokenId cls = v.cls >= 0 ? v.cls : v.bos;
    if (cls < 0 || v.sep < 0) throw Error("tokenizer: a bert vocabulary needs cls_token_id and seperator_token_id");
    cfg.prefix.push_back(cls);
    cfg.suffix.push_back(v.sep);
    v.add_bos = v.add_eos = true;
  } else {
    throw Error("tokenizer: unknown tokenizer model '" + v.model + "' (tokenizer.ggml.model)");
  }
  cfg.cleanup = v.clean_spaces ? SpaceCleanup::LLAMA_CPP : SpaceCleanup::NONE;
  fill_eog(v);
  return std::make_unique<PipelineTokenizer>(std::move(v), std::move(cfg));
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
  const std::string& path = f.path();
  auto wrap = [&](auto&& fn) {
    try {
      return fn();
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.compare(0, path.size(), path) == 0) throw;  // the reader named the file already
      throw Error(path + ": " + msg);
    }
  };
  return wrap([&]() {
    if (!f.has("tokenizer.ggml.model")) throw Error("no tokenizer.ggml.model key: the file has no vocabulary");
    Vocab v;
    v.model = f.get_string("tokenizer.ggml.model");
    if (v.model != "llama" && v.model != "gpt2" && v.model != "bert")
      throw Error("unknown tokenizer model '" + v.model + "' (tokenizer.ggml.model; supported: llama, gpt2, bert)");
    v.pre = f.get_string_or("tokenizer.ggml.pre", "");
    v.tokens = f.get_string_array("tokenizer.ggml.tokens");
    if (f.has("tokenizer.ggml.scores")) v.scores = f.get_float_array("tokenizer.ggml.scores");
    if (f.has("tokenizer.ggml.token_type")) {
      for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) {
        if (t < 0 || t > 6) t = 0;
        v.types.push_back(static_cast<TokenType>(t));
      }
    }
    // llama.cpp's defaults per model, then the file's keys.
    if (v.model == "llama") {
      v.bos = 1, v.eos = 2, v.unk = 0;
      v.add_bos = true;
    } else if (v.model == "bert") {
      v.cls = 101, v.unk = 100, v.sep = 102, v.pad = 0, v.mask = 103;
      v.add_bos = true;
      v.clean_spaces = true;
    } else if (v.model == "gpt2") {
      if (!f.has("tokenizer.ggml.merges")) throw Error("no tokenizer.ggml.merges key (needed by a gpt2 vocabulary)");
      v.merges = f.get_string_array("tokenizer.ggml.merges");
      v.bos = 11, v.eos = 11;
      if (v.pre.empty()) v.pre = "default";
      v.add_bos = v.pre == "llama3" || v.pre == "llama-v3" || v.pre == "llama-bpe" || v.pre == "falcon3" ||
                  v.pre == "pixtral";
      tok::gguf_pre_regexes(v.pre);  // unknown names fail here, naming the key
      // llama.cpp cleans spaces for every BPE vocabulary except these.
      static const std::unordered_set<std::string> kNoCleanSpaces = {
          "deepseek-llm", "deepseek-coder", "deepseek-v3", "youtu", "sarvam-moe", "command-r", "qwen2",
          "deepseek-r1-qwen", "kormo", "f2llmv2", "qwen35", "poro-chat", "viking", "tekken", "smollm",
          "chameleon", "gpt-4o", "llama4", "kanana2", "talkie", "granite-embed-multi-97m", "tiny_aya",
          "cohere2moe", "superbpe", "trillion", "granite-docling", "bailingmoe", "bailingmoe2", "llada-moe",
          "seed-coder", "hunyuan", "hunyuan-dense", "joyai-llm", "kimi-k2", "grok-2", "afmoe", "laguna",
          "minimax-m2", "solar-open"};
      v.clean_spaces = kNoCleanSpaces.count(v.pre) == 0;
    } else {
      throw Error("unknown tokenizer model '" + v.model + "' (tokenizer.ggml.model)");
    }
    const TokenId n = static_cast<TokenId>(v.tokens.size());
    auto id_key = [&](const char* key, TokenId& dst) {
      if (!f.has(key)) {
        if (dst >= n) dst = -1;  // a default that does not fit this vocabulary
        return;
      }
      int64_t id = f.get_int(key);
      if (id < 0 || id >= n)
        throw Error(std::string(key) + " = " + std::to_string(id) + " is out of range (vocabulary has " +
                    std::to_string(n) + " tokens)");
      dst = static_cast<TokenId>(id);
    };
    id_key("tokenizer.ggml.bos_token_id", v.bos);
    id_key("tokenizer.ggml.eos_token_id", v.eos);
    id_key("tokenizer.ggml.eot_token_id", v.eot);
    id_key("tokenizer.ggml.unknown_token_id", v.unk);
    id_key("tokenizer.ggml.seperator_token_id", v.sep);
    id_key("tokenizer.ggml.padding_token_id", v.pad);
    id_key("tokenizer.ggml.cls_token_id", v.cls);
    id_key("tokenizer.ggml.mask_token_id", v.mask);
    TokenId eom = -1;
    id_key("tokenizer.ggml.eom_token_id", eom);
    if (eom >= 0) v.eog.push_back(eom);
    v.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", v.add_bos);
    v.add_eos = f.get_bool_or("tokenizer.ggml.add_eos_token", v.add_eos);
    v.add_space_prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix", v.model == "llama");
    // Phi-3: llama.cpp (like the Hugging Face tokenizer) lets the special
    // tokens swallow the whitespace after them, except <unk>, <s>, <|endoftext|>.
    std::string name = f.get_string_or("general.name", "");
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
      for (size_t i = 0; i < v.types.size(); ++i) {
        const std::string& t = v.tokens[i];
        bool special = v.types[i] == TokenType::CONTROL || v.types[i] == TokenType::USER_DEFINED ||
                       v.types[i] == TokenType::UNKNOWN;
        if ((special || t == "</s>") && t != "<unk>" && t != "<s>" && t != "<|endoftext|>")
          v.rstrip.push_back(static_cast<TokenId>(i));
      }
    }
    if (v.model == "bert" && v.cls < 0) v.cls = v.bos;
    if (v.model == "bert" && v.bos < 0) v.bos = v.cls;
    return from_vocab(std::move(v));
  });
}

}  // namespace hai
