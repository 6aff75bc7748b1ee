// The one Tokenizer implementation behind every vocabulary: special-token
// partition, then for each plain-text fragment normalizers -> pre-tokenizers
// -> model, then the post-processor's prefix/suffix ids. GGUF vocabularies
// (llama / gpt2 / bert) and Hugging Face tokenizer.json files are different
// configurations of these components.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::tok {

// text -> id, looked up without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

inline TokenId lookup(const TokenMap& m, std::string_view s) {
  auto it = m.find(s);
  return it == m.end() ? -1 : it->second;
}

// ---- normalizers: rewrite the text of one fragment --------------------------
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `first`: the fragment starts the input (for prepend-on-first schemes).
  virtual void apply(std::string& text, bool first) const = 0;
};

// ---- pre-tokenizers: split pieces into smaller pieces -----------------------
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<std::string>& pieces, bool first) const = 0;
};

// ---- models: one piece -> ids ------------------------------------------------
class Model {
 public:
  virtual ~Model() = default;
  virtual void encode(std::string_view piece, std::vector<TokenId>& out) const = 0;
};

// text -> id for every token of a vocabulary (the first id wins on duplicates).
std::shared_ptr<const TokenMap> build_token_map(const std::vector<std::string>& tokens);

// How a token's text becomes bytes when decoding.
enum class PieceMode {
  SENTENCEPIECE,  // "▁" is a space, <0xNN> byte tokens
  BYTE_LEVEL,     // GPT-2 byte <-> code point mapping
  WORDPIECE_GGUF, // word starts carry "▁", continuations are bare
  WORDPIECE_HF,   // continuations carry "##", words are joined by spaces
};

// The space clean-up decode() applies after joining the pieces.
enum class SpaceCleanup {
  NONE,
  LLAMA_CPP,     // llama_clean_spaces (GGUF vocabularies with clean_spaces)
  HUGGING_FACE,  // hf_clean_up_tokenization (tokenizer.json)
};

// A token matched in the raw text before anything else runs.
struct AddedToken {
  std::string text;
  TokenId id = -1;
  bool special = true;  // matched only when parse_special
  bool lstrip = false;  // swallow whitespace on the left
  bool rstrip = false;  // swallow whitespace on the right
};

struct PipelineConfig {
  std::vector<std::unique_ptr<Normalizer>> normalizers;
  std::vector<std::unique_ptr<PreTokenizer>> pre_tokenizers;
  std::unique_ptr<Model> model;
  std::vector<AddedToken> added;
  // Ids added around the text when add_special is true.
  std::vector<TokenId> prefix, suffix;
  PieceMode piece_mode = PieceMode::SENTENCEPIECE;
  bool strip_first_space = false;  // decode: drop the leading space of the first piece
  bool byte_fallback_decode = false;  // HF: <0xNN> tokens decode to bytes
  SpaceCleanup cleanup = SpaceCleanup::NONE;  // decode: applied to the whole text
};

class PipelineTokenizer : public Tokenizer {
 public:
  PipelineTokenizer(Vocab vocab, PipelineConfig config);

  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string token_to_piece(TokenId id, bool render_special = true) const override;
  std::string decode(const std::vector<TokenId>& ids, bool render_special = true) const override;

 private:
  struct Fragment {
    std::string_view text;  // empty when it is a token
    TokenId token = -1;
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_fragment(std::string_view text, bool first, std::vector<TokenId>& out) const;

  PipelineConfig cfg_;
  // Trie-free special matching: added tokens grouped by first byte, longest first.
  std::vector<std::vector<size_t>> added_by_byte_;
  std::vector<std::string> pieces_;  // token_to_piece cache (render_special = true)
};

// ---- components ---------------------------------------------------------------

// Byte-pair encoding over merge ranks (GPT-2 style, also HF BPE models).
struct BpeOptions {
  bool ignore_merges = false;  // a piece that is a whole token is taken as is
  bool byte_fallback = false;  // unknown characters become <0xNN> tokens
  bool fuse_unk = false;
  TokenId unk = -1;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};
std::unique_ptr<Model> make_bpe_model(std::shared_ptr<const TokenMap> map,
                                      const std::vector<std::pair<std::string, std::string>>& merges,
                                      BpeOptions opts);

// SentencePiece BPE over token scores with byte fallback (llama.cpp "llama").
std::unique_ptr<Model> make_spm_model(const Vocab& vocab, std::shared_ptr<const TokenMap> map);

// WordPiece: greedy longest match. `word_prefix` starts a word ("▁" in GGUF
// vocabularies), `cont_prefix` marks continuations ("##" in tokenizer.json).
std::unique_ptr<Model> make_wordpiece_model(std::shared_ptr<const TokenMap> map, TokenId unk, std::string word_prefix,
                                            std::string cont_prefix, size_t max_chars_per_word);

// Normalizers.
std::unique_ptr<Normalizer> make_replace(std::string from, std::string to);
std::unique_ptr<Normalizer> make_replace_regex(const std::string& pattern, std::string to);
std::unique_ptr<Normalizer> make_prepend(std::string prefix, bool only_first);
std::unique_ptr<Normalizer> make_unicode_form(int form);  // unicode::Form
std::unique_ptr<Normalizer> make_lowercase();
std::unique_ptr<Normalizer> make_strip(bool left, bool right);
std::unique_ptr<Normalizer> make_strip_accents();
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool chinese_chars, bool strip_accents,
                                                 bool lowercase);

// Pre-tokenizers.
std::unique_ptr<PreTokenizer> make_regex_split(const std::string& pattern, SplitBehavior behavior, bool invert);
std::unique_ptr<PreTokenizer> make_literal_split(std::string delim, SplitBehavior behavior);
// llama.cpp's regex list for tokenizer.ggml.pre (each an ISOLATED split).
std::unique_ptr<PreTokenizer> make_regex_sequence(const std::vector<std::string>& patterns);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_digits(bool individual);
std::unique_ptr<PreTokenizer> make_metaspace(std::string replacement, int prepend_scheme /*0 never,1 first,2 always*/,
                                             bool split);
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> make_whitespace(bool split_only);  // Whitespace / WhitespaceSplit
std::unique_ptr<PreTokenizer> make_punctuation(SplitBehavior behavior);

// The regexes llama.cpp uses for a `tokenizer.ggml.pre` name; throws
// hai::Error naming an unknown pre-tokenizer.
std::vector<std::string> gguf_pre_regexes(const std::string& pre);

// GPT-2's pattern (ByteLevel use_regex).
extern const char* const kGpt2Pattern;

// End-of-generation ids as llama.cpp finds them (eos, eot, texts like <|im_end|>).
void fill_eog(Vocab& v);

}  // namespace hai::tok
