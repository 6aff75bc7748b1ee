// Normalizers and pre-tokenizers (the parts of a tokenizer before the model).
#include <algorithm>

#include "engine/common/error.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/unicode.h"

namespace hai::tok {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// ---- normalizers ----------------------------------------------------------------

class Replace final : public Normalizer {
 public:
  Replace(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void apply(std::string& s, bool) const override {
    if (from_.empty() || s.find(from_) == std::string::npos) return;
    std::string out;
    out.reserve(s.size() + s.size() / 2);
    size_t pos = 0;
    for (size_t at = s.find(from_); at != std::string::npos; at = s.find(from_, pos)) {
      out.append(s, pos, at - pos);
      out += to_;
      pos = at + from_.size();
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
  }

 private:
  std::string from_, to_;
};

class ReplaceRegex final : public Normalizer {
 public:
  ReplaceRegex(const std::string& pattern, std::string to) : re_(pattern), to_(std::move(to)) {}
  void apply(std::string& s, bool) const override {
    auto m = re_.find_all(s);
    if (m.empty()) return;
    std::string out;
    size_t pos = 0;
    for (auto [b, e] : m) {
      out.append(s, pos, b - pos);
      out += to_;
      pos = e;
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
  }

 private:
  Regex re_;
  std::string to_;
};

class Prepend final : public Normalizer {
 public:
  Prepend(std::string p, bool only_first) : p_(std::move(p)), only_first_(only_first) {}
  void apply(std::string& s, bool first) const override {
    if (s.empty() || (only_first_ && !first)) return;
    s.insert(0, p_);
  }

 private:
  std::string p_;
  bool only_first_;
};

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(unicode::Form f) : f_(f) {}
  void apply(std::string& s, bool) const override { s = unicode::normalize(s, f_); }

 private:
  unicode::Form f_;
};

class Lowercase final : public Normalizer {
 public:
  void apply(std::string& s, bool) const override { s = unicode::to_lower(s); }
};

class Strip final : public Normalizer {
 public:
  Strip(bool l, bool r) : l_(l), r_(r) {}
  void apply(std::string& s, bool) const override {
    auto cpts = unicode::decode_utf8(s);
    size_t b = 0, e = cpts.size();
    if (l_)
      while (b < e && unicode::is_whitespace(cpts[b])) ++b;
    if (r_)
      while (e > b && unicode::is_whitespace(cpts[e - 1])) --e;
    std::string out;
    for (size_t i = b; i < e; ++i) unicode::append_utf8(out, cpts[i]);
    s = std::move(out);
  }

 private:
  bool l_, r_;
};

class StripAccents final : public Normalizer {
 public:
  void apply(std::string& s, bool) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) {
      uint32_t c = unicode::next_cpt(s, pos);
      if (!unicode::is_nonspacing_mark(c)) unicode::append_utf8(out, c);
    }
    s = std::move(out);
  }
};

bool is_chinese_char(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Hugging Face BertNormalizer: clean text, pad CJK, strip accents, lowercase.
class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, bool strip, bool lower)
      : clean_(clean), chinese_(chinese), strip_(strip), lower_(lower) {}
  void apply(std::string& s, bool) const override {
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t pos = 0; pos < s.size();) {
      uint32_t c = unicode::next_cpt(s, pos);
      if (clean_) {
        if (c == 0 || c == 0xFFFD) continue;
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || unicode::is_separator(c);
        if (!ws && unicode::is_control(c)) continue;
        if (ws) c = ' ';
      }
      if (chinese_ && is_chinese_char(c)) {
        out += ' ';
        unicode::append_utf8(out, c);
        out += ' ';
      } else {
        unicode::append_utf8(out, c);
      }
    }
    if (strip_) {
      out = unicode::normalize(out, unicode::Form::NFD);
      StripAccents().apply(out, false);
    }
    if (lower_) out = unicode::to_lower(out);
    s = std::move(out);
  }

 private:
  bool clean_, chinese_, strip_, lower_;
};

// ---- pre-tokenizers -----------------------------------------------------------

class RegexSplit final : public PreTokenizer {
 public:
  RegexSplit(const std::string& p, SplitBehavior b, bool inv) : re_(p), b_(b), inv_(inv) {}
  void apply(std::vector<std::string>& pieces, bool) const override { split(pieces, re_, b_, inv_); }

 private:
  Regex re_;
  SplitBehavior b_;
  bool inv_;
};

class LiteralSplit final : public PreTokenizer {
 public:
  LiteralSplit(std::string d, SplitBehavior b) : d_(std::move(d)), b_(b) {}
  void apply(std::vector<std::string>& pieces, bool) const override { split_literal(pieces, d_, b_); }

 private:
  std::string d_;
  SplitBehavior b_;
};

class RegexSequence final : public PreTokenizer {
 public:
  explicit RegexSequence(const std::vector<std::string>& ps) {
    for (auto& p : ps) res_.push_back(std::make_unique<Regex>(p));
  }
  void apply(std::vector<std::string>& pieces, bool) const override {
    for (auto& re : res_) split(pieces, *re, SplitBehavior::ISOLATED);
  }

 private:
  std::vector<std::unique_ptr<Regex>> res_;
};

// GPT-2 ByteLevel: optional prefix space, optional GPT-2 regex split, then
// every byte shown as its printable code point.
class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool prefix, bool use_regex) : prefix_(prefix) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void apply(std::vector<std::string>& pieces, bool /*first*/) const override {
    // Like Hugging Face and transformers.js: every fragment between added tokens.
    if (prefix_ && !pieces.empty() && !pieces[0].empty() && pieces[0][0] != ' ') pieces[0] = std::string(" ") + pieces[0];
    if (re_) split(pieces, *re_, SplitBehavior::ISOLATED);
    for (auto& p : pieces) p = unicode::bytes_to_unicode(p);
  }

 private:
  bool prefix_;
  std::unique_ptr<Regex> re_;
};

// Splits every piece at the code points for which `match` holds (each one a
// range of its own, or runs of them when merge_runs), with `behavior`.
template <typename Pred>
void split_on_code_points(std::vector<std::string>& pieces, Pred match, bool merge_runs, SplitBehavior behavior) {
  std::vector<std::string> out;
  for (auto& p : pieces) {
    std::vector<std::pair<size_t, size_t>> m;
    for (size_t pos = 0; pos < p.size();) {
      const size_t b = pos;
      if (!match(unicode::next_cpt(p, pos))) continue;
      if (merge_runs && !m.empty() && m.back().second == b) {
        m.back().second = pos;
      } else {
        m.emplace_back(b, pos);
      }
    }
    split_by_ranges(p, m, behavior, false, out);
  }
  pieces = std::move(out);
}

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void apply(std::vector<std::string>& pieces, bool) const override {
    split_on_code_points(pieces, unicode::is_number, /*merge_runs=*/!individual_, SplitBehavior::ISOLATED);
  }

 private:
  bool individual_;  // HF Digits: char::is_numeric, i.e. every N* category
};

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string rep, int scheme, bool split) : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void apply(std::vector<std::string>& pieces, bool first) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string s = Replace(" ", rep_).apply_copy(pieces[i]);
      bool prepend = scheme_ == 2 || (scheme_ == 1 && first && i == 0);
      if (prepend && s.compare(0, rep_.size(), rep_) != 0) s.insert(0, rep_);
      if (!split_) {
        out.push_back(std::move(s));
        continue;
      }
      std::vector<std::string> one{std::move(s)};
      split_literal(one, rep_, SplitBehavior::MERGED_WITH_NEXT);
      for (auto& x : one) out.push_back(std::move(x));
    }
    pieces = std::move(out);
  }

 private:
  struct Replace {
    std::string from, to;
    Replace(std::string f, std::string t) : from(std::move(f)), to(std::move(t)) {}
    std::string apply_copy(const std::string& s) const {
      std::string out;
      size_t pos = 0;
      for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, pos)) {
        out.append(s, pos, at - pos);
        out += to;
        pos = at + from.size();
      }
      out.append(s, pos, std::string::npos);
      return out;
    }
  };
  std::string rep_;
  int scheme_;
  bool split_;
};

bool bert_punct(uint32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         unicode::is_punctuation(c);
}

// BertPreTokenizer: split on whitespace (removed) and punctuation (isolated).
class BertPre final : public PreTokenizer {
 public:
  void apply(std::vector<std::string>& pieces, bool) const override {
    std::vector<std::string> out;
    for (auto& p : pieces) {
      std::string cur;
      for (size_t pos = 0; pos < p.size();) {
        size_t b = pos;
        uint32_t c = unicode::next_cpt(p, pos);
        if (unicode::is_whitespace(c)) {
          if (!cur.empty()) out.push_back(std::move(cur));
          cur.clear();
        } else if (bert_punct(c)) {
          if (!cur.empty()) out.push_back(std::move(cur));
          cur.clear();
          out.emplace_back(p, b, pos - b);
        } else {
          cur.append(p, b, pos - b);
        }
      }
      if (!cur.empty()) out.push_back(std::move(cur));
    }
    pieces = std::move(out);
  }
};

class Whitespace final : public PreTokenizer {
 public:
  explicit Whitespace(bool split_only)
      : re_(split_only ? std::unique_ptr<Regex>() : std::make_unique<Regex>(R"(\w+|[^\w\s]+)")) {}
  void apply(std::vector<std::string>& pieces, bool) const override {
    if (re_) {
      split(pieces, *re_, SplitBehavior::REMOVED, true);
      return;
    }
    std::vector<std::string> out;
    for (auto& p : pieces) {
      std::string cur;
      for (size_t pos = 0; pos < p.size();) {
        size_t b = pos;
        uint32_t c = unicode::next_cpt(p, pos);
        if (unicode::is_whitespace(c)) {
          if (!cur.empty()) out.push_back(std::move(cur));
          cur.clear();
        } else {
          cur.append(p, b, pos - b);
        }
      }
      if (!cur.empty()) out.push_back(std::move(cur));
    }
    pieces = std::move(out);
  }

 private:
  std::unique_ptr<Regex> re_;
};

class Punctuation final : public PreTokenizer {
 public:
  explicit Punctuation(SplitBehavior b) : b_(b) {}
  void apply(std::vector<std::string>& pieces, bool) const override {
    split_on_code_points(pieces, bert_punct, /*merge_runs=*/false, b_);
  }

 private:
  SplitBehavior b_;
};

}  // namespace

std::unique_ptr<Normalizer> make_replace(std::string from, std::string to) {
  return std::make_unique<Replace>(std::move(from), std::move(to));
}
std::unique_ptr<Normalizer> make_replace_regex(const std::string& pattern, std::string to) {
  return std::make_unique<ReplaceRegex>(pattern, std::move(to));
}
std::unique_ptr<Normalizer> make_prepend(std::string prefix, bool only_first) {
  return std::make_unique<Prepend>(std::move(prefix), only_first);
}
std::unique_ptr<Normalizer> make_unicode_form(int form) {
  return std::make_unique<UnicodeForm>(static_cast<unicode::Form>(form));
}
std::unique_ptr<Normalizer> make_lowercase() { return std::make_unique<Lowercase>(); }
std::unique_ptr<Normalizer> make_strip(bool left, bool right) { return std::make_unique<Strip>(left, right); }
std::unique_ptr<Normalizer> make_strip_accents() { return std::make_unique<StripAccents>(); }
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool chinese_chars, bool strip_accents,
                                                 bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, chinese_chars, strip_accents, lowercase);
}

std::unique_ptr<PreTokenizer> make_regex_split(const std::string& pattern, SplitBehavior behavior, bool invert) {
  return std::make_unique<RegexSplit>(pattern, behavior, invert);
}
std::unique_ptr<PreTokenizer> make_literal_split(std::string delim, SplitBehavior behavior) {
  return std::make_unique<LiteralSplit>(std::move(delim), behavior);
}
std::unique_ptr<PreTokenizer> make_regex_sequence(const std::vector<std::string>& patterns) {
  return std::make_unique<RegexSequence>(patterns);
}
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevel>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_digits(bool individual) { return std::make_unique<Digits>(individual); }
std::unique_ptr<PreTokenizer> make_metaspace(std::string replacement, int prepend_scheme, bool split) {
  return std::make_unique<Metaspace>(std::move(replacement), prepend_scheme, split);
}
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() { return std::make_unique<BertPre>(); }
std::unique_ptr<PreTokenizer> make_whitespace(bool split_only) { return std::make_unique<Whitespace>(split_only); }
std::unique_ptr<PreTokenizer> make_punctuation(SplitBehavior behavior) {
  return std::make_unique<Punctuation>(behavior);
}

std::vector<std::string> gguf_pre_regexes(const std::string& pre) {
  // The contraction alternatives are spelled out ('[sS]) rather than (?i:...)
  // so that Unicode case folding (ſ, K) cannot change them.
  static const std::string kLlama3 =
      R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string kQwen2 =
      R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::string gpt2 = kGpt2Pattern;
  if (pre == "default") return {R"([\p{P}\$\+<=>\^~\|]+)", gpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "pixtral" ||
      pre == "dbrx" || pre == "smaug-bpe" || pre == "chatglm-bpe" || pre == "glm4")
    return {kLlama3};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2" || pre == "megrez" || pre == "hunyuan")
    return {kQwen2};
  if (pre == "deepseek-llm")
    return {"[\r\n]",
            "\\s?[\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"};
  if (pre == "deepseek-coder")
    return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  if (pre == "deepseek-v3")
    return {R"(\p{N}{1,3})", "[一-龥぀-ゟ゠-ヿ]+",
            R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  if (pre == "falcon") return {R"([\p{P}\$\+<=>\^~\|`]+)", gpt2, "[0-9][0-9][0-9]"};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b")
    return {R"(\p{N})", gpt2};
  if (pre == "gpt-2" || pre == "mpt" || pre == "olmo" || pre == "jais" || pre == "phi-2" || pre == "jina-es" ||
      pre == "jina-de" || pre == "jina-v1-en" || pre == "jina-v2-es" || pre == "jina-v2-de" ||
      pre == "jina-v2-code" || pre == "roberta-bpe" || pre == "gigachat")
    return {gpt2};
  throw Error("unknown pre-tokenizer type '" + pre + "' (tokenizer.ggml.pre)");
}

}  // namespace hai::tok
