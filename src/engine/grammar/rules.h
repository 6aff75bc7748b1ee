// The compiled form of a grammar: a byte-level context-free grammar.
//
// Parsing GBNF (gbnf.cpp) lowers everything to bytes: a literal becomes one
// element per UTF-8 byte, a character class over code points becomes a rule
// whose alternatives are the UTF-8 byte sequences of its ranges (so [^"]
// only ever matches whole, valid UTF-8 characters), and repetitions become
// helper rules. What is left has two kinds of element only: a set of bytes,
// and a reference to a rule. The matcher (matcher.cpp) runs a pushdown
// automaton over these elements one byte at a time, so a token that ends in
// the middle of a character needs no special handling.
//
// Layout: every alternative of every rule is a run of elements in `elems`
// closed by an END element; `alts[r]` lists where the alternatives of rule r
// start. Left recursion is rejected at parse time, so expanding rule
// references always terminates.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace hai::grammar {

struct ByteSet {
  std::array<uint64_t, 4> bits{};
  bool has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  void add(uint8_t b) { bits[b >> 6] |= uint64_t{1} << (b & 63); }
  void add_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
  }
  bool operator==(const ByteSet&) const = default;
};

struct Elem {
  enum Kind : uint8_t { END, BYTES, REF } kind;
  uint32_t arg;  // BYTES: index into Rules::sets; REF: rule id
};

struct Rules {
  std::vector<Elem> elems;
  std::vector<std::vector<uint32_t>> alts;  // rule id -> start offsets in elems
  std::vector<std::string> names;           // rule id -> name (helper rules: "name-N")
  std::vector<ByteSet> sets;
  uint32_t root = 0;
};

}  // namespace hai::grammar
