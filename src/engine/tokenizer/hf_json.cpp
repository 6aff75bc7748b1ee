// Tokenizer::from_hf_json: a Hugging Face tokenizer.json (normalizer,
// pre_tokenizer, model, post_processor, decoder, added_tokens) mapped onto
// the pipeline components. Anything we do not implement is an error that
// names the component, never a silent approximation.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/common/error.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace hai {

namespace {

using nlohmann::json;
using namespace tok;

const json& member(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(where + ": missing \"" + key + "\"");
  return *it;
}

std::string str_or(const json& j, const char* key, std::string def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) throw Error(std::string("\"") + key + "\" must be a string");
  return it->get<std::string>();
}

bool bool_or(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) throw Error(std::string("\"") + key + "\" must be true or false");
  return it->get<bool>();
}

std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + " must be an object");
  return member(j, "type", where).get<std::string>();
}

// Python/Rust regex syntax that PCRE2 and JavaScript read differently: the
// case-insensitive contraction group is spelled out, as llama.cpp and
// transformers.js do, so Unicode case folding (ſ, K) cannot change it.
std::string adapt_regex(std::string re) {
  const std::string from = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  const std::string to = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  for (size_t at = re.find(from); at != std::string::npos; at = re.find(from, at + to.size())) re.replace(at, from.size(), to);
  return re;
}

SplitBehavior behavior_of(const std::string& b, const std::string& where) {
  if (b == "Isolated") return SplitBehavior::ISOLATED;
  if (b == "Removed") return SplitBehavior::REMOVED;
  if (b == "MergedWithPrevious") return SplitBehavior::MERGED_WITH_PREVIOUS;
  if (b == "MergedWithNext") return SplitBehavior::MERGED_WITH_NEXT;
  if (b == "Contiguous") return SplitBehavior::CONTIGUOUS;
  throw Error(where + ": unsupported split behavior '" + b + "'");
}

void add_normalizer(const json& j, PipelineConfig& cfg, const std::string& where) {
  if (j.is_null()) return;
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const auto& n : member(j, "normalizers", where)) add_normalizer(n, cfg, where);
  } else if (t == "NFC") {
    cfg.normalizers.push_back(make_unicode_form(static_cast<int>(unicode::Form::NFC)));
  } else if (t == "NFD") {
    cfg.normalizers.push_back(make_unicode_form(static_cast<int>(unicode::Form::NFD)));
  } else if (t == "NFKC") {
    cfg.normalizers.push_back(make_unicode_form(static_cast<int>(unicode::Form::NFKC)));
  } else if (t == "NFKD") {
    cfg.normalizers.push_back(make_unicode_form(static_cast<int>(unicode::Form::NFKD)));
  } else if (t == "Lowercase") {
    cfg.normalizers.push_back(make_lowercase());
  } else if (t == "Strip") {
    cfg.normalizers.push_back(make_strip(bool_or(j, "strip_left", true), bool_or(j, "strip_right", true)));
  } else if (t == "StripAccents") {
    cfg.normalizers.push_back(make_strip_accents());
  } else if (t == "Prepend") {
    cfg.normalizers.push_back(make_prepend(member(j, "prepend", where).get<std::string>(), false));
  } else if (t == "Replace") {
    const json& p = member(j, "pattern", where);
    std::string content = member(j, "content", where).get<std::string>();
    if (p.contains("String")) {
      cfg.normalizers.push_back(make_replace(p["String"].get<std::string>(), content));
    } else if (p.contains("Regex")) {
      cfg.normalizers.push_back(make_replace_regex(adapt_regex(p["Regex"].get<std::string>()), content));
    } else {
      throw Error(where + ": Replace pattern needs \"String\" or \"Regex\"");
    }
  } else if (t == "BertNormalizer") {
    bool lower = bool_or(j, "lowercase", true);
    auto sa = j.find("strip_accents");
    bool strip = (sa == j.end() || sa->is_null()) ? lower : sa->get<bool>();
    cfg.normalizers.push_back(
        make_bert_normalizer(bool_or(j, "clean_text", true), bool_or(j, "handle_chinese_chars", true), strip, lower));
  } else {
    throw Error(where + ": unsupported normalizer type '" + t + "'");
  }
}

struct PreInfo {
  bool byte_level = false;
  bool metaspace = false;
  bool wordpiece_like = false;
};

void add_pre_tokenizer(const json& j, PipelineConfig& cfg, PreInfo& info, const std::string& where) {
  if (j.is_null()) return;
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const auto& p : member(j, "pretokenizers", where)) add_pre_tokenizer(p, cfg, info, where);
  } else if (t == "Split") {
    const json& p = member(j, "pattern", where);
    SplitBehavior b = behavior_of(member(j, "behavior", where).get<std::string>(), where);
    bool invert = bool_or(j, "invert", false);
    if (p.contains("Regex")) {
      cfg.pre_tokenizers.push_back(make_regex_split(adapt_regex(p["Regex"].get<std::string>()), b, invert));
    } else if (p.contains("String")) {
      if (invert) throw Error(where + ": an inverted String split is not supported");
      cfg.pre_tokenizers.push_back(make_literal_split(p["String"].get<std::string>(), b));
    } else {
      throw Error(where + ": Split pattern needs \"String\" or \"Regex\"");
    }
  } else if (t == "ByteLevel") {
    cfg.pre_tokenizers.push_back(make_byte_level(bool_or(j, "add_prefix_space", true), bool_or(j, "use_regex", true)));
    info.byte_level = true;
  } else if (t == "Digits") {
    cfg.pre_tokenizers.push_back(make_digits(bool_or(j, "individual_digits", false)));
  } else if (t == "Metaspace") {
    std::string rep = str_or(j, "replacement", "\xE2\x96\x81");
    std::string scheme = str_or(j, "prepend_scheme", bool_or(j, "add_prefix_space", true) ? "always" : "never");
    int s = scheme == "always" ? 2 : scheme == "first" ? 1 : scheme == "never" ? 0 : -1;
    if (s < 0) throw Error(where + ": unsupported Metaspace prepend_scheme '" + scheme + "'");
    cfg.pre_tokenizers.push_back(make_metaspace(rep, s, bool_or(j, "split", true)));
    info.metaspace = true;
  } else if (t == "BertPreTokenizer") {
    cfg.pre_tokenizers.push_back(make_bert_pre_tokenizer());
    info.wordpiece_like = true;
  } else if (t == "Whitespace") {
    cfg.pre_tokenizers.push_back(make_whitespace(false));
  } else if (t == "WhitespaceSplit") {
    cfg.pre_tokenizers.push_back(make_whitespace(true));
  } else if (t == "Punctuation") {
    cfg.pre_tokenizers.push_back(make_punctuation(behavior_of(str_or(j, "behavior", "Isolated"), where)));
  } else {
    throw Error(where + ": unsupported pre-tokenizer type '" + t + "'");
  }
}

TokenId id_of(const Vocab& v, const std::string& text) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return static_cast<TokenId>(i);
  return -1;
}

// Post-processor -> ids before/after the text when add_special is true.
void add_post_processor(const json& j, const Vocab& v, PipelineConfig& cfg, const std::string& where) {
  if (j.is_null()) return;
  std::string t = type_of(j, where);
  auto special = [&](const json& pair) {
    // BertProcessing/RobertaProcessing: ["[CLS]", 101]
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
      throw Error(where + ": expected [token, id]");
    return pair[1].get<TokenId>();
  };
  if (t == "ByteLevel") return;
  if (t == "Sequence") {
    for (const auto& p : member(j, "processors", where)) add_post_processor(p, v, cfg, where);
  } else if (t == "BertProcessing" || t == "RobertaProcessing") {
    cfg.prefix.push_back(special(member(j, "cls", where)));
    cfg.suffix.push_back(special(member(j, "sep", where)));
  } else if (t == "TemplateProcessing") {
    const json& single = member(j, "single", where);
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    bool seen_text = false;
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        seen_text = true;
        continue;
      }
      if (!item.contains("SpecialToken")) throw Error(where + ": unsupported template item " + item.dump());
      std::string name = member(item["SpecialToken"], "id", where).get<std::string>();
      std::vector<TokenId> ids;
      auto it = specials.find(name);
      if (it != specials.end()) {
        for (const auto& id : member(*it, "ids", where)) ids.push_back(id.get<TokenId>());
      } else {
        TokenId id = id_of(v, name);
        if (id < 0) throw Error(where + ": template token '" + name + "' is not in the vocabulary");
        ids.push_back(id);
      }
      auto& dst = seen_text ? cfg.suffix : cfg.prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
  } else {
    throw Error(where + ": unsupported post-processor type '" + t + "'");
  }
}

void apply_decoder(const json& j, PipelineConfig& cfg, const PreInfo& info, const std::string& where) {
  if (j.is_null()) {
    cfg.piece_mode = info.byte_level ? PieceMode::BYTE_LEVEL
                     : info.wordpiece_like ? PieceMode::WORDPIECE_HF
                                           : PieceMode::SENTENCEPIECE;
    if (cfg.piece_mode == PieceMode::WORDPIECE_HF) cfg.cleanup = SpaceCleanup::HUGGING_FACE;
    return;
  }
  std::string t = type_of(j, where);
  if (t == "ByteLevel") {
    cfg.piece_mode = PieceMode::BYTE_LEVEL;
  } else if (t == "WordPiece") {
    cfg.piece_mode = PieceMode::WORDPIECE_HF;
    cfg.strip_first_space = true;
    cfg.cleanup = bool_or(j, "cleanup", true) ? SpaceCleanup::HUGGING_FACE : SpaceCleanup::NONE;
  } else if (t == "Metaspace") {
    cfg.piece_mode = PieceMode::SENTENCEPIECE;
    std::string scheme = str_or(j, "prepend_scheme", bool_or(j, "add_prefix_space", true) ? "always" : "never");
    cfg.strip_first_space = scheme != "never";
  } else if (t == "Sequence") {
    // The SentencePiece-style chain: Replace(▁ -> " "), ByteFallback, Fuse, Strip(" ", 1, 0).
    cfg.piece_mode = PieceMode::SENTENCEPIECE;
    for (const auto& d : member(j, "decoders", where)) {
      std::string dt = type_of(d, where);
      if (dt == "ByteFallback") {
        cfg.byte_fallback_decode = true;
      } else if (dt == "Strip") {
        cfg.strip_first_space = d.value("start", 0) > 0;
      } else if (dt == "ByteLevel") {
        cfg.piece_mode = PieceMode::BYTE_LEVEL;
      } else if (dt == "Metaspace") {
        cfg.strip_first_space = true;
      } else if (dt == "Replace" || dt == "Fuse") {
        // Replace(▁, " ") is what SENTENCEPIECE pieces do; Fuse only joins strings.
      } else {
        throw Error(where + ": unsupported decoder type '" + dt + "'");
      }
    }
  } else if (t == "ByteFallback" || t == "Fuse") {
    cfg.piece_mode = PieceMode::SENTENCEPIECE;
    cfg.byte_fallback_decode = t == "ByteFallback";
  } else {
    throw Error(where + ": unsupported decoder type '" + t + "'");
  }
}

// tokenizer_config.json next to tokenizer.json names bos/eos; they only
// matter for end-of-generation detection here.
std::string config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return (*it)["content"].get<std::string>();
  return "";
}

std::unique_ptr<Tokenizer> build(const json& root, const std::string& path) {
  if (!root.is_object()) throw Error("the top level is not a JSON object");
  const json& model = member(root, "model", "tokenizer.json");
  std::string mtype = model.contains("type") ? model["type"].get<std::string>()
                      : model.contains("merges") ? "BPE"
                                                 : "";
  if (mtype != "BPE" && mtype != "WordPiece")
    throw Error("model: unsupported model type '" + mtype + "' (supported: BPE, WordPiece)");

  // The vocabulary: model.vocab plus added_tokens, indexed by id.
  const json& vj = member(model, "vocab", "model");
  if (!vj.is_object()) throw Error("model.vocab must be an object of token -> id");
  Vocab v;
  TokenId max_id = -1;
  for (auto it = vj.begin(); it != vj.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 24))
      throw Error("model.vocab: token '" + it.key() + "' has a bad id");
    max_id = std::max(max_id, it.value().get<TokenId>());
  }
  const json& added = root.contains("added_tokens") && !root["added_tokens"].is_null() ? root["added_tokens"] : json::array();
  for (const auto& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content"))
      throw Error("added_tokens: each entry needs \"id\" and \"content\"");
    TokenId id = a["id"].get<TokenId>();
    if (id < 0 || id > (1 << 24)) throw Error("added_tokens: bad id " + std::to_string(id));
    max_id = std::max(max_id, id);
  }
  if (max_id < 0) throw Error("model.vocab is empty");
  v.tokens.assign(static_cast<size_t>(max_id) + 1, std::string());
  v.types.assign(v.tokens.size(), TokenType::UNUSED);
  for (auto it = vj.begin(); it != vj.end(); ++it) {
    TokenId id = it.value().get<TokenId>();
    v.tokens[id] = it.key();
    v.types[id] = TokenType::NORMAL;
  }
  PipelineConfig cfg;
  for (const auto& a : added) {
    AddedToken t;
    t.id = a["id"].get<TokenId>();
    t.text = a["content"].get<std::string>();
    t.special = bool_or(a, "special", false);
    t.lstrip = bool_or(a, "lstrip", false);
    t.rstrip = bool_or(a, "rstrip", false);
    v.tokens[t.id] = t.text;
    v.types[t.id] = t.special ? TokenType::CONTROL : TokenType::USER_DEFINED;
    cfg.added.push_back(std::move(t));
  }
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == TokenType::UNUSED) v.tokens[i] = "[EMPTY_" + std::to_string(i) + "]";

  auto map = build_token_map(v.tokens);
  std::string unk_text = str_or(model, "unk_token", "");
  v.unk = unk_text.empty() ? -1 : lookup(*map, unk_text);

  add_normalizer(root.value("normalizer", json()), cfg, "normalizer");
  PreInfo info;
  add_pre_tokenizer(root.value("pre_tokenizer", json()), cfg, info, "pre_tokenizer");

  if (mtype == "BPE") {
    const json& mj = member(model, "merges", "model");
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(mj.size());
    for (const auto& m : mj) {
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) throw Error("model.merges: '" + s + "' is not two tokens separated by a space");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        throw Error("model.merges: bad entry " + m.dump());
      }
    }
    BpeOptions o;
    o.ignore_merges = bool_or(model, "ignore_merges", false);
    o.byte_fallback = bool_or(model, "byte_fallback", false);
    o.fuse_unk = bool_or(model, "fuse_unk", false);
    o.unk = v.unk;
    o.continuing_subword_prefix = str_or(model, "continuing_subword_prefix", "");
    o.end_of_word_suffix = str_or(model, "end_of_word_suffix", "");
    if (!o.end_of_word_suffix.empty()) throw Error("model: end_of_word_suffix is not supported");
    if (!o.continuing_subword_prefix.empty()) throw Error("model: continuing_subword_prefix is not supported for BPE");
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
      throw Error("model: BPE dropout is not supported");
    cfg.model = make_bpe_model(map, merges, o);
    v.model = info.byte_level ? "gpt2" : "llama";
    if (o.byte_fallback)
      for (size_t i = 0; i < v.tokens.size(); ++i) {
        const auto& t = v.tokens[i];
        if (v.types[i] == TokenType::NORMAL && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>')
          v.types[i] = TokenType::BYTE;
      }
  } else {
    std::string cont = str_or(model, "continuing_subword_prefix", "##");
    auto max_chars = model.value("max_input_chars_per_word", 100);
    cfg.model = make_wordpiece_model(map, v.unk, "", cont, static_cast<size_t>(max_chars));
    v.model = "bert";
    info.wordpiece_like = true;
  }
  add_post_processor(root.value("post_processor", json()), v, cfg, "post_processor");
  apply_decoder(root.value("decoder", json()), cfg, info, "decoder");

  v.add_bos = !cfg.prefix.empty();
  v.add_eos = !cfg.suffix.empty();
  if (!cfg.prefix.empty()) v.bos = cfg.prefix.front();
  if (!cfg.suffix.empty()) v.eos = cfg.suffix.back();
  if (v.model == "bert") {
    v.cls = v.bos;
    v.sep = v.eos;
  }
  // bos/eos names from tokenizer_config.json, when it sits next to the file.
  auto conf_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::ifstream conf_in(conf_path);
  if (conf_in) {
    json conf = json::parse(conf_in, nullptr, /*allow_exceptions=*/false);
    if (conf.is_object()) {
      TokenId b = lookup(*map, config_token(conf, "bos_token"));
      TokenId e = lookup(*map, config_token(conf, "eos_token"));
      if (b >= 0 && v.bos < 0) v.bos = b;
      if (e >= 0) v.eos = e;
      // transformers cleans after the decoder when the config asks for it.
      auto clean = conf.find("clean_up_tokenization_spaces");
      if (clean != conf.end() && clean->is_boolean() && clean->get<bool>()) cfg.cleanup = SpaceCleanup::HUGGING_FACE;
    }
  }
  fill_eog(v);
  return std::make_unique<PipelineTokenizer>(std::move(v), std::move(cfg));
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open tokenizer file");
  std::stringstream ss;
  ss << in.rdbuf();
  json root;
  try {
    root = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(path + ": malformed JSON: " + e.what());
  }
  try {
    return build(root, path);
  } catch (const json::exception& e) {
    throw Error(path + ": " + e.what());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace hai
