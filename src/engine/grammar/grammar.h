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
// [^...], `.` for any character, groups ( ), repetition * + ? {m} {m,} {m,n},
// comments #); `root` is the start rule. Literals and classes take UTF-8 and
// the escapes \n \t \r \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH. A rule
// continues on the next line after `|`, inside parentheses, or when the next
// line starts with `|`. Left recursion (a ::= a "x" | ...) and repeating an
// item that can be empty ((x?)*) are rejected: the matcher is a stack
// machine, like llama.cpp's.
//
// JSON schemas (draft 2020-12) are translated to GBNF. The grammar accepts a
// subset of what the schema accepts, never more: a keyword that cannot be
// honoured exactly is an error naming its JSON pointer. Supported:
//   type (a name or an array of names), enum, const (any JSON value),
//   object: properties (written in the listed order), required,
//     additionalProperties false / true / schema (unlisted properties are
//     written only when it is given as true or a schema, or when there are
//     no properties), minProperties <= #required;
//   array: items, prefixItems, items false, minItems, maxItems,
//     uniqueItems false;
//   string: minLength, maxLength (code points), format date / time /
//     date-time / uuid, pattern (regular expressions without lookaround,
//     backreferences or \b; the string matches the whole pattern, see
//     pattern.h); escapes are allowed, \u escapes of surrogates not;
//   number / integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum
//     (honoured with whole-number bounds: a number keeps to [ceil(min),
//     floor(max)], so e.g. 0.1 < x < 0.5 is rejected); at most 16 integer
//     digits, 15 fraction digits, exponent of 2 digits (none when bounded);
//   anyOf; oneOf when its branches are provably disjoint (types,
//     const/enum of a property, required vs. additionalProperties false);
//     allOf of object schemas (properties, required); $ref to #/$defs,
//     #/definitions or any pointer inside the schema (recursion works);
//   annotations (title, description, default, examples, ...) are ignored.
// Rejected: multipleOf, not, if/then/else, contains,
// patternProperties, propertyNames, dependent*, unevaluated*, uniqueItems
// true, other formats, external $ref.
// Whitespace between tokens is limited to one run (" ", or a line break and
// up to 20 spaces/tabs) after { [ , : and before } ], so noise cannot loop
// in whitespace; the output starts with the value and ends with it.
//
// Speed (Qwen3 vocabulary, 151,669 tokens, JSON schema; benchmarks/
// bench_grammar.cpp, CPU time): mask_logits costs about 2.5 ms the first
// time a state is met inside a string (4 ms inside a string with
// maxLength, where every length is a new state), 0.1 ms in the middle of an
// object, and 50-70 us for a state met before (its bitmap is cached per
// Matcher); a whole random generation averages about 0.9 ms per token. The
// token trie is built once per tokenizer (about 80 ms) and shared by all
// Matchers while any is alive.
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

struct Rules;  // the compiled grammar (rules.h)

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
  // (tokenizer.n_vocab() floats; a model with more output rows than the
  // tokenizer has tokens must mask the rest itself). At least one token stays allowed unless the grammar is
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
