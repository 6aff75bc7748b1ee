// A tokenizer whose tokens are the 256 single bytes (plus <unk>, <s>, </s>),
// so a Matcher can be driven byte by byte without a model.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "engine/grammar/grammar.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::grammar::test {

constexpr int32_t kEos = 2;
inline int32_t byte_token(unsigned char b) { return 3 + b; }

inline const Tokenizer& byte_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>"};
    v.types = {TokenType::UNKNOWN, TokenType::CONTROL, TokenType::CONTROL};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      v.tokens.push_back(buf);
      v.types.push_back(TokenType::BYTE);
    }
    v.scores.assign(v.tokens.size(), 0.0f);
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    v.eog = {2};
    return Tokenizer::from_vocab(std::move(v));
  }();
  return *tok;
}

// Feeds `text` byte by byte; false as soon as a byte is refused.
inline bool feed(Matcher& m, const std::string& text) {
  for (unsigned char c : text) {
    if (!m.allows(byte_token(c))) return false;
    m.accept(byte_token(c));
  }
  return true;
}

// Whether `text` is a whole sentence of `g`.
inline bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  Matcher m(g, byte_tokenizer());
  return feed(m, text) && m.is_complete();
}

// Whether `text` can be continued to a sentence of `g` (a valid prefix).
inline bool prefix_ok(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  Matcher m(g, byte_tokenizer());
  return feed(m, text);
}

}  // namespace hai::grammar::test
