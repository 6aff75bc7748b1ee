// Text <-> token ids, exactly as the reference tokenizers do it.
//
// Three algorithms, chosen by `tokenizer.ggml.model`:
//   "llama" — SentencePiece-style BPE over scores, with byte fallback;
//   "gpt2"  — byte-level BPE over merges, with the pre-tokenizer (regex split)
//             chosen by `tokenizer.ggml.pre`;
//   "bert"  — WordPiece.
// A Tokenizer is built from a GGUF file's tokenizer.ggml.* metadata or from a
// Hugging Face tokenizer.json; both fill the same Vocab.
//
// Encoding runs in stages (see pipeline.h): special/added tokens are cut out
// of the raw text first, then every plain fragment is normalized,
// pre-tokenized (regex splits, byte-level mapping) and given to the model
// (BPE over merges, SentencePiece BPE over scores, or WordPiece). Regexes are
// PCRE2 with two meanings pinned (regex.h): \s is the Unicode White_Space
// property (as in Hugging Face's Rust tokenizers and llama.cpp), and the
// letter/number/punctuation/symbol/mark classes include the code points of
// Unicode 15.0 and 15.1.
//
// A Tokenizer is immutable after construction except for an internal cache
// of finished BPE pieces; encode/decode may be called from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hai::gguf {
class File;
}

namespace hai {

using TokenId = int32_t;

// Token attributes as in tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};

struct Vocab {
  std::string model;  // "llama", "gpt2", "bert"
  std::string pre;    // pre-tokenizer name for gpt2 ("default" if absent)
  std::vector<std::string> tokens;
  std::vector<float> scores;        // may be empty
  std::vector<TokenType> types;     // may be empty (all NORMAL)
  std::vector<std::string> merges;  // "a b" pairs, gpt2 only
  TokenId bos = -1, eos = -1, eot = -1, unk = -1, pad = -1, sep = -1, cls = -1, mask = -1;
  std::vector<TokenId> eog;  // end-of-generation ids (eos, eot, <|im_end|>, ...)
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // llama/SentencePiece: prepend "▁"
  // Special tokens that swallow the whitespace on their right (llama.cpp's
  // RSTRIP attribute, set for Phi-3 vocabularies like llama.cpp does).
  std::vector<TokenId> rstrip;
  // decode() tidies spaces before punctuation and contractions afterwards
  // (llama.cpp's clean_spaces, see llama_clean_spaces below). from_gguf sets
  // it the way llama.cpp does: on for "bert" and for "gpt2" except the
  // pre-tokenizers that turn it off (qwen2, deepseek-*, command-r, smollm,
  // ...); off for "llama".
  bool clean_spaces = false;
};
// from_gguf follows llama.cpp for absent keys: "llama" adds BOS (id 1, eos 2,
// unk 0); "bert" adds [CLS] (101) ... [SEP] (102); "gpt2" adds BOS only for
// the llama3 family of pre-tokenizers. Keys present in the file win.
// from_hf_json takes BOS/EOS from the post_processor (TemplateProcessing,
// BertProcessing, RobertaProcessing), and eos for is_eog() also from a
// tokenizer_config.json next to the file.

// llama.cpp's detokenizer clean-up, byte for byte, in three passes over the
// text: (1) a space before '?', '!', '.' or ',' is dropped; (2) a lone
// apostrophe between two spaces loses both (" ' " -> "'"); (3) a space before
// the contractions 's, 'm, 're and 've is dropped (not before 't, 'd, 'll,
// nor " n't"). Each pass looks at the text the previous pass left.
std::string llama_clean_spaces(std::string_view text);

// Hugging Face's clean_up_tokenization: replaces " .", " ?", " !", " ,",
// " ' ", " n't", " 'm", " 's", " 've", " 're" by the same without the space
// (" ' " by "'"), each over the whole text in that order.
std::string hf_clean_up_tokenization(std::string_view text);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Throws hai::Error naming the key or file if the vocabulary is missing,
  // inconsistent or of an unknown model / pre-tokenizer.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);
  static std::unique_ptr<Tokenizer> from_vocab(Vocab vocab);
  static std::unique_ptr<Tokenizer> from_hf_json(const std::string& path);

  // add_special: add BOS/EOS (and CLS/SEP for bert) as the vocabulary asks.
  // parse_special: text like "<|im_start|>" becomes its special token id;
  // otherwise it is tokenized as plain text.
  // Invalid UTF-8 in `text` throws hai::Error.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const = 0;

  // The bytes of one token as text (byte tokens <0xNN> become that byte;
  // "▁" becomes a space for SentencePiece, byte-level BPE is unmapped).
  virtual std::string token_to_piece(TokenId id, bool render_special = true) const = 0;
  // Concatenated pieces, with the leading space of the first SentencePiece
  // token removed when the vocabulary adds one, then the vocabulary's space
  // clean-up: llama.cpp's (llama_clean_spaces) when Vocab::clean_spaces is
  // set; for a tokenizer.json, Hugging Face's clean_up_tokenization when its
  // WordPiece decoder has "cleanup" or a tokenizer_config.json next to it has
  // "clean_up_tokenization_spaces": true. Ids out of range throw.
  virtual std::string decode(const std::vector<TokenId>& ids, bool render_special = true) const = 0;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  bool is_eog(TokenId id) const;

 protected:
  explicit Tokenizer(Vocab v) : vocab_(std::move(v)) {}
  Vocab vocab_;
};

}  // namespace hai
