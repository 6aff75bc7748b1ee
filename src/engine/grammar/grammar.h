// Grammar-constrained decoding: the output of a model is kept inside a
// context-free grammar, token by token, so that JSON output and tool calls
// always parse.
//
//   auto g = grammar::Grammar::from_json_schema(schema);       // or parse_gbnf(text)
//   grammar::Matcher m(g, tokenizer);                          // one per sequence
//   m.mask_logits(logits);        // tokens that would leave the grammar -> -inf
//   int32_t tok = sampler.sample(logits, n_vocab);
//   m.accept(tok);                // advances; throws if tok is not allowed
//   if (m.is_complete()) ...      // the text so far is a whole sentence
//
// Grammars are written in GBNF, the notation llama.cpp uses (rules
// `name ::= alternatives`, literals "...", character classes [a-z] and
// [^...], groups ( ), repetition * + ? {m,n}, comments #); `root` is the
// start rule. JSON schemas are translated to GBNF (objects with properties,
// required / optional properties, additionalProperties false, arrays with
// items / minItems / maxItems, enum, const, string / number / integer /
// boolean / null, anyOf / oneOf, $ref to $defs / definitions, nested schemas,
// strings with escapes).
//
// A Grammar is immutable and may be shared by many Matchers on many threads;
// a Matcher belongs to one sequence and one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/tokenizer/tokenizer.h"

namespace hai::grammar {

struct Rules;  // the compiled grammar (grammar.cpp)

class Grammar {
 public:
  // Parses GBNF text. Throws hai::Error naming the line, column and what was
  // expected on a syntax error, an undefined rule, or a missing `root`.
  static std::shared_ptr<const Grammar> parse_gbnf(const std::string& text);
  // Translates a JSON schema (draft 2020-12 subset listed above) to GBNF and
  // parses it. Throws hai::Error naming the JSON pointer of an unsupported or
  // malformed part of the schema.
  static std::shared_ptr<const Grammar> from_json_schema(const nlohmann::ordered_json& schema);
  // Any JSON object (response_format {"type": "json_object"}).
  static std::shared_ptr<const Grammar> json_object();

  // The GBNF text of a JSON schema (what from_json_schema parses).
  static std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

  const Rules& rules() const { return *rules_; }
  ~Grammar();

 private:
  Grammar() = default;
  std::unique_ptr<Rules> rules_;
};

class Matcher {
 public:
  // The tokenizer gives the bytes of every token (token_to_piece without
  // rendering special tokens as text). End-of-generation tokens are allowed
  // exactly when the text so far is a complete sentence of the grammar;
  // other special/control tokens are never allowed.
  Matcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer);
  ~Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;

  // Sets to -infinity the logit of every token that cannot come next
  // (n_vocab floats). At least one token stays allowed unless the grammar is
  // complete and cannot be extended and no end-of-generation token exists.
  void mask_logits(float* logits) const;
  // Whether `token` may come next.
  bool allows(int32_t token) const;
  // Advances over `token`. Throws hai::Error if it is not allowed.
  void accept(int32_t token);
  // The bytes accepted so far form a complete sentence of the grammar.
  bool is_complete() const;
  // Complete and no further byte could be accepted (generation must stop).
  bool is_finished() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace hai::grammar
