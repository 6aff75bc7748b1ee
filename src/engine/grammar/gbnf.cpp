// GBNF text -> Rules (rules.h).
//
// Two steps. The parser reads the text into a small syntax tree (rules of
// alternatives of sequences of items, each item with a repetition count) and
// reports the first error with its line and column. Lowering then turns the
// tree into byte-level rules: literals into their UTF-8 bytes, character
// classes into the UTF-8 byte sequences of their code-point ranges, groups
// and repetitions into helper rules. Last, rules that are undefined, a
// missing root, and left recursion (which a stack-based matcher cannot run)
// are reported.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/common/utf8.h"
#include "engine/grammar/grammar.h"
#include "engine/grammar/rules.h"

namespace hai::grammar {
namespace {

// ---------------------------------------------------------------- syntax tree

struct Range {
  uint32_t lo, hi;  // code points, inclusive
};

struct Alternatives;

struct Item {
  enum Kind { LITERAL, CLASS, REF, GROUP } kind;
  std::string literal;              // LITERAL: UTF-8 bytes
  std::vector<Range> ranges;        // CLASS: the code points matched (already negated/normalized)
  std::string name;                 // REF
  std::shared_ptr<Alternatives> group;  // GROUP
  int min = 1, max = 1;             // repetition; max -1 = unbounded
  int line = 0, col = 0;
};

struct Alternatives {
  std::vector<std::vector<Item>> seqs;
};

struct RuleDef {
  std::string name;
  Alternatives body;
  int line = 0, col = 0;
};

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kMaxRepetition = 100000;

// Sorted, merged, without surrogates.
std::vector<Range> normalize(std::vector<Range> r) {
  std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  std::vector<Range> out;
  for (const Range& x : r) {
    if (!out.empty() && x.lo <= out.back().hi + 1) {
      out.back().hi = std::max(out.back().hi, x.hi);
    } else {
      out.push_back(x);
    }
  }
  std::vector<Range> cut;  // remove D800-DFFF
  for (const Range& x : out) {
    if (x.hi < 0xD800 || x.lo > 0xDFFF) {
      cut.push_back(x);
      continue;
    }
    if (x.lo < 0xD800) cut.push_back({x.lo, 0xD7FF});
    if (x.hi > 0xDFFF) cut.push_back({0xE000, x.hi});
  }
  return cut;
}

std::vector<Range> negate(const std::vector<Range>& r) {
  std::vector<Range> n = normalize(r);
  std::vector<Range> out;
  uint32_t next = 0;
  for (const Range& x : n) {
    if (x.lo > next) out.push_back({next, x.lo - 1});
    next = x.hi + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return normalize(out);
}

// ---------------------------------------------------------------- parser

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  std::vector<RuleDef> parse() {
    std::vector<RuleDef> rules;
    for (;;) {
      skip_space(/*newlines=*/true);
      if (at_end()) break;
      rules.push_back(parse_rule());
    }
    return rules;
  }

 private:
  static constexpr int kMaxNesting = 200;
  const std::string& s_;
  size_t pos_ = 0;
  int depth_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;

  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t k = 0) const { return pos_ + k < s_.size() ? s_[pos_ + k] : '\0'; }
  int col() const { return static_cast<int>(pos_ - line_start_) + 1; }

  void advance() {
    if (s_[pos_] == '\n') {
      ++line_;
      line_start_ = pos_ + 1;
    }
    ++pos_;
  }

  std::string found() const {
    if (at_end()) return "the end of the grammar";
    const unsigned char c = static_cast<unsigned char>(peek());
    if (c == '\n') return "a line break";
    if (c < 0x20 || c >= 0x7F) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
      return buf;
    }
    return std::string("'") + static_cast<char>(c) + "'";
  }

  [[noreturn]] void fail(const std::string& what) const { fail_at(line_, col(), what); }
  [[noreturn]] static void fail_at(int line, int col, const std::string& what) {
    throw Error("grammar: line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
  }
  [[noreturn]] void expected(const std::string& what) const { fail("expected " + what + ", found " + found()); }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  // Spaces, tabs, comments; line breaks too when `newlines`.
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r') {
        advance();
      } else if (c == '\n' && newlines) {
        advance();
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') advance();
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(peek())) advance();
    return s_.substr(start, pos_ - start);
  }

  RuleDef parse_rule() {
    RuleDef r;
    r.line = line_;
    r.col = col();
    r.name = parse_name();
    if (r.name.empty()) expected("a rule name");
    skip_space(false);
    if (s_.compare(pos_, 3, "::=") != 0) expected("'::=' after the rule name '" + r.name + "'");
    for (int i = 0; i < 3; ++i) advance();
    skip_space(true);
    r.body = parse_alternatives(/*nested=*/false);
    skip_space(false);
    if (!at_end() && peek() != '\n') expected("a line break or '|' after the rule '" + r.name + "'");
    return r;
  }

  // At top level a line break ends the rule, unless the next line (past
  // blank lines and comments) starts with '|'.
  bool continues_with_bar() {
    size_t p = pos_;
    while (p < s_.size()) {
      const char c = s_[p];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++p;
      } else if (c == '#') {
        while (p < s_.size() && s_[p] != '\n') ++p;
      } else {
        return c == '|';
      }
    }
    return false;
  }

  Alternatives parse_alternatives(bool nested) {
    Alternatives a;
    a.seqs.push_back(parse_sequence(nested));
    for (;;) {
      skip_space(nested);
      if (!nested && peek() == '\n' && continues_with_bar()) skip_space(true);
      if (peek() != '|') break;
      advance();
      skip_space(true);
      a.seqs.push_back(parse_sequence(nested));
    }
    return a;
  }

  std::vector<Item> parse_sequence(bool nested) {
    std::vector<Item> seq;
    for (;;) {
      skip_space(nested);
      const char c = peek();
      Item it;
      it.line = line_;
      it.col = col();
      if (c == '"') {
        advance();
        it.kind = Item::LITERAL;
        while (peek() != '"') {
          if (at_end() || peek() == '\n') fail("unterminated string literal (missing '\"')");
          utf8::append(it.literal, parse_char());
        }
        advance();
      } else if (c == '[') {
        advance();
        it.kind = Item::CLASS;
        bool neg = false;
        if (peek() == '^') {
          neg = true;
          advance();
        }
        std::vector<Range> ranges;
        while (peek() != ']') {
          if (at_end() || peek() == '\n') fail("unterminated character class (missing ']')");
          const int l = line_, cc = col();
          const uint32_t lo = parse_char();
          uint32_t hi = lo;
          if (peek() == '-' && peek(1) != ']') {
            advance();
            if (at_end() || peek() == '\n') fail("unterminated character class (missing ']')");
            hi = parse_char();
            if (hi < lo) fail_at(l, cc, "character range is reversed (end before start)");
          }
          ranges.push_back({lo, hi});
        }
        advance();
        if (ranges.empty() && !neg) fail_at(it.line, it.col, "empty character class []");
        it.ranges = neg ? negate(ranges) : normalize(ranges);
        if (it.ranges.empty()) fail_at(it.line, it.col, "character class matches no character");
      } else if (c == '.') {
        advance();
        it.kind = Item::CLASS;
        it.ranges = normalize({{0, kMaxCodePoint}});
      } else if (c == '(') {
        if (++depth_ > kMaxNesting) fail("groups nested more than " + std::to_string(kMaxNesting) + " deep");
        advance();
        skip_space(true);
        it.kind = Item::GROUP;
        it.group = std::make_shared<Alternatives>(parse_alternatives(/*nested=*/true));
        --depth_;
        skip_space(true);
        if (peek() != ')') expected("')' to close the group opened at line " + std::to_string(it.line) +
                                    ", column " + std::to_string(it.col));
        advance();
      } else if (is_name_char(c)) {
        it.kind = Item::REF;
        it.name = parse_name();
        // "name ::=" here means the previous rule ended without a line break.
        size_t p = pos_;
        while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t')) ++p;
        if (s_.compare(p, 3, "::=") == 0)
          fail_at(it.line, it.col,
                  nested ? "expected ')' to close a group before the rule '" + it.name + "'"
                         : "expected a line break before the rule '" + it.name + "'");
      } else {
        if (c == '*' || c == '+' || c == '?' || c == '{') fail("'" + std::string(1, c) + "' must follow an item");
        if (c == ')' && !nested) fail("unmatched ')'");
        if (at_end() || c == '\n' || c == '|' || c == ')') break;
        expected("a literal, a character class, a rule name, '(' or '|'");
      }
      parse_repetition(it);
      seq.push_back(std::move(it));
    }
    return seq;
  }

  void parse_repetition(Item& it) {
    const char c = peek();
    if (c == '*') {
      it.min = 0, it.max = -1;
    } else if (c == '+') {
      it.min = 1, it.max = -1;
    } else if (c == '?') {
      it.min = 0, it.max = 1;
    } else if (c == '{') {
      const int l = line_, cc = col();
      advance();
      skip_space(false);
      it.min = parse_int();
      skip_space(false);
      it.max = it.min;
      if (peek() == ',') {
        advance();
        skip_space(false);
        it.max = (peek() == '}') ? -1 : parse_int();
        skip_space(false);
      }
      if (peek() != '}') expected("'}' to close the repetition");
      if (it.max != -1 && it.max < it.min) fail_at(l, cc, "repetition {m,n} has n < m");
    } else {
      return;
    }
    advance();
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')
      fail("repetition of a repetition; use a group: ( ... )" + std::string(1, peek()));
  }

  int parse_int() {
    if (!(peek() >= '0' && peek() <= '9')) expected("a number");
    long v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > kMaxRepetition) fail("repetition count larger than " + std::to_string(kMaxRepetition));
      advance();
    }
    return static_cast<int>(v);
  }

  uint32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = peek();
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else expected(std::to_string(digits) + " hexadecimal digits");
      v = v * 16 + static_cast<uint32_t>(d);
      advance();
    }
    return v;
  }

  // One character of a literal or class: an escape or a UTF-8 character.
  uint32_t parse_char() {
    const int l = line_, cc = col();
    const unsigned char c = static_cast<unsigned char>(peek());
    if (c == '\\') {
      advance();
      const char e = peek();
      if (at_end()) fail("unterminated escape sequence");
      advance();
      uint32_t v;
      switch (e) {
        case 'n': return '\n';
        case 't': return '\t';
        case 'r': return '\r';
        case '0': return 0;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': case '.': case '|':
          return static_cast<uint8_t>(e);
        case 'x': v = parse_hex(2); break;
        case 'u': v = parse_hex(4); break;
        case 'U': v = parse_hex(8); break;
        default:
          fail_at(l, cc, std::string("unknown escape '\\") + e + "' (known: \\n \\t \\r \\\\ \\\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH)");
      }
      if (v > kMaxCodePoint || (v >= 0xD800 && v <= 0xDFFF))
        fail_at(l, cc, "escape is not a Unicode scalar value");
      return v;
    }
    if (c < 0x80) {
      advance();
      return c;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else fail("invalid UTF-8");
    for (int k = 1; k < len; ++k) {
      const unsigned char cc2 = static_cast<unsigned char>(peek(k));
      if (pos_ + k >= s_.size() || (cc2 & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (cc2 & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8");
    for (int k = 0; k < len; ++k) advance();
    return cp;
  }
};

// ---------------------------------------------------------------- UTF-8 ranges

// A code-point range as UTF-8 byte sequences: each sequence is a list of
// byte ranges, one per byte, and the sequences together match exactly the
// encodings of the code points in [lo, hi] (surrogates already removed).
using ByteSeq = std::vector<std::pair<uint8_t, uint8_t>>;

int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteSeq>& out) {
  // Split where the encoded length changes.
  static const uint32_t kLast[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  for (int n = 1; n <= 3; ++n) {
    if (lo <= kLast[n - 1] && hi > kLast[n - 1]) {
      utf8_sequences(lo, kLast[n - 1], out);
      utf8_sequences(kLast[n - 1] + 1, hi, out);
      return;
    }
  }
  const int n = utf8_len(lo);
  // Split until every continuation byte spans a full or aligned range: for
  // each suffix of i continuation bytes, lo and hi must either agree on the
  // bits above it, or lo's suffix be all zeros and hi's all ones.
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (uint32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  utf8::append(a, lo);
  utf8::append(b, hi);
  ByteSeq seq;
  for (size_t k = 0; k < a.size(); ++k) seq.push_back({static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k])});
  out.push_back(std::move(seq));
}

// ---------------------------------------------------------------- lowering

class Lowering {
 public:
  explicit Lowering(Rules& r) : r_(r) {}

  void run(const std::vector<RuleDef>& defs) {
    for (const RuleDef& d : defs) {
      auto [it, fresh] = ids_.emplace(d.name, static_cast<uint32_t>(r_.alts.size()));
      if (!fresh)
        Parser_fail(d.line, d.col, "rule '" + d.name + "' is defined twice (first at line " +
                                       std::to_string(where_[it->second].first) + ")");
      r_.alts.emplace_back();
      r_.names.push_back(d.name);
      where_.push_back({d.line, d.col});
    }
    auto root = ids_.find("root");
    if (root == ids_.end()) throw Error("grammar: no rule named 'root' (the start rule)");
    r_.root = root->second;
    for (const RuleDef& d : defs) {
      const uint32_t id = ids_[d.name];
      current_ = d.name;
      set_alternatives(id, d.body);
    }
  }

  const std::vector<std::pair<int, int>>& where() const { return where_; }

  struct Repeat {
    uint32_t rule;  // the repeated unit
    int line, col;
  };
  const std::vector<Repeat>& repeats() const { return repeats_; }

 private:
  Rules& r_;
  std::map<std::string, uint32_t> ids_;
  std::vector<std::pair<int, int>> where_;  // rule id -> line, column of its definition
  std::map<std::array<uint64_t, 4>, uint32_t> set_ids_;
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, uint32_t> class_rules_;
  std::string current_;
  int helpers_ = 0;
  std::vector<Repeat> repeats_;

  [[noreturn]] static void Parser_fail(int line, int col, const std::string& what) {
    throw Error("grammar: line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
  }

  uint32_t new_rule(int line, int col) {
    const uint32_t id = static_cast<uint32_t>(r_.alts.size());
    r_.alts.emplace_back();
    r_.names.push_back(current_ + "-" + std::to_string(++helpers_));
    where_.push_back({line, col});
    return id;
  }

  void add_alt(uint32_t rule, const std::vector<Elem>& seq) {
    r_.alts[rule].push_back(static_cast<uint32_t>(r_.elems.size()));
    r_.elems.insert(r_.elems.end(), seq.begin(), seq.end());
    r_.elems.push_back({Elem::END, 0});
  }

  void set_alternatives(uint32_t rule, const Alternatives& a) {
    // Lower all sequences first: lowering may add helper rules and elements.
    std::vector<std::vector<Elem>> seqs;
    for (const auto& s : a.seqs) seqs.push_back(lower_seq(s));
    for (const auto& s : seqs) add_alt(rule, s);
  }

  Elem byte_elem(uint8_t lo, uint8_t hi) {
    ByteSet bs;
    bs.add_range(lo, hi);
    auto [it, fresh] = set_ids_.emplace(bs.bits, static_cast<uint32_t>(r_.sets.size()));
    if (fresh) r_.sets.push_back(bs);
    return {Elem::BYTES, it->second};
  }

  std::vector<Elem> lower_class(const Item& it) {
    std::vector<ByteSeq> seqs;
    for (const Range& x : it.ranges) utf8_sequences(x.lo, x.hi, seqs);
    // Single-byte sequences merge into one byte set.
    ByteSet single;
    bool any_single = false;
    std::vector<ByteSeq> multi;
    for (const ByteSeq& s : seqs) {
      if (s.size() == 1) {
        single.add_range(s[0].first, s[0].second);
        any_single = true;
      } else {
        multi.push_back(s);
      }
    }
    auto seq_elems = [&](const ByteSeq& s) {
      std::vector<Elem> e;
      for (auto [lo, hi] : s) e.push_back(byte_elem(lo, hi));
      return e;
    };
    auto single_elem = [&] {
      auto [iter, fresh] = set_ids_.emplace(single.bits, static_cast<uint32_t>(r_.sets.size()));
      if (fresh) r_.sets.push_back(single);
      return Elem{Elem::BYTES, iter->second};
    };
    if (multi.empty()) return {single_elem()};
    if (!any_single && multi.size() == 1) return seq_elems(multi[0]);
    std::vector<std::pair<uint32_t, uint32_t>> key;
    for (const Range& x : it.ranges) key.push_back({x.lo, x.hi});
    auto found = class_rules_.find(key);
    if (found != class_rules_.end()) return {{Elem::REF, found->second}};
    const uint32_t id = new_rule(it.line, it.col);
    class_rules_[key] = id;
    if (any_single) add_alt(id, {single_elem()});
    for (const ByteSeq& s : multi) add_alt(id, seq_elems(s));
    return {{Elem::REF, id}};
  }

  // The item once, without its repetition.
  std::vector<Elem> lower_once(const Item& it) {
    switch (it.kind) {
      case Item::LITERAL: {
        std::vector<Elem> e;
        for (char c : it.literal) e.push_back(byte_elem(static_cast<uint8_t>(c), static_cast<uint8_t>(c)));
        return e;
      }
      case Item::CLASS:
        return lower_class(it);
      case Item::REF: {
        auto f = ids_.find(it.name);
        if (f == ids_.end()) Parser_fail(it.line, it.col, "undefined rule '" + it.name + "'");
        return {{Elem::REF, f->second}};
      }
      case Item::GROUP: {
        if (it.group->seqs.size() == 1) return lower_seq(it.group->seqs[0]);
        const uint32_t id = new_rule(it.line, it.col);
        set_alternatives(id, *it.group);
        return {{Elem::REF, id}};
      }
    }
    return {};
  }

  std::vector<Elem> lower_item(const Item& it) {
    std::vector<Elem> once = lower_once(it);
    if (it.min == 1 && it.max == 1) return once;
    // The repeated unit as one element.
    Elem unit;
    if (once.size() == 1) {
      unit = once[0];
    } else {
      const uint32_t id = new_rule(it.line, it.col);
      add_alt(id, once);
      unit = {Elem::REF, id};
    }
    // Only more than one copy of an item that can be empty is a problem (x? is fine).
    if (unit.kind == Elem::REF && (it.max == -1 || it.max > 1)) repeats_.push_back({unit.arg, it.line, it.col});
    std::vector<Elem> out(static_cast<size_t>(it.min), unit);
    if (it.max == -1) {
      // star ::= unit star | (empty)
      const uint32_t star = new_rule(it.line, it.col);
      add_alt(star, {unit, {Elem::REF, star}});
      add_alt(star, {});
      out.push_back({Elem::REF, star});
    } else if (it.max > it.min) {
      // opt_1 ::= unit | ;  opt_k ::= unit opt_(k-1) | ;
      uint32_t prev = 0;
      for (int k = 1; k <= it.max - it.min; ++k) {
        const uint32_t opt = new_rule(it.line, it.col);
        if (k == 1) add_alt(opt, {unit});
        else add_alt(opt, {unit, {Elem::REF, prev}});
        add_alt(opt, {});
        prev = opt;
      }
      out.push_back({Elem::REF, prev});
    }
    return out;
  }

  std::vector<Elem> lower_seq(const std::vector<Item>& seq) {
    std::vector<Elem> out;
    for (const Item& it : seq) {
      std::vector<Elem> e = lower_item(it);
      out.insert(out.end(), e.begin(), e.end());
    }
    return out;
  }
};

// Rejects left recursion: a rule that can reach itself without consuming a
// byte (directly, through rules that may match nothing, or by repeating
// something that may match nothing) would expand forever.
void check_left_recursion(const Rules& r, const std::vector<std::pair<int, int>>& where,
                          const std::vector<Lowering::Repeat>& repeats) {
  const size_t n = r.alts.size();
  std::vector<char> nullable(n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; ++i) {
      if (nullable[i]) continue;
      for (uint32_t start : r.alts[i]) {
        bool all = true;
        for (uint32_t p = start; r.elems[p].kind != Elem::END; ++p)
          if (r.elems[p].kind == Elem::BYTES || !nullable[r.elems[p].arg]) {
            all = false;
            break;
          }
        if (all) {
          nullable[i] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  // Repeating something that can be empty would loop without consuming input
  // (unbounded) or make long chains of empty expansions (bounded).
  for (const auto& rep : repeats)
    if (nullable[rep.rule])
      throw Error("grammar: line " + std::to_string(rep.line) + ", column " + std::to_string(rep.col) +
                  ": the repeated item can match the empty string; make it non-empty (e.g. x+ instead of (x?)*)");
  std::vector<std::vector<uint32_t>> left(n);  // rules reachable at the left edge
  for (size_t i = 0; i < n; ++i)
    for (uint32_t start : r.alts[i])
      for (uint32_t p = start; r.elems[p].kind == Elem::REF; ++p) {
        left[i].push_back(r.elems[p].arg);
        if (!nullable[r.elems[p].arg]) break;
      }
  // Depth-first search for a cycle.
  std::vector<int> color(n, 0);
  std::vector<uint32_t> path;
  std::function<void(uint32_t)> visit = [&](uint32_t u) {
    color[u] = 1;
    path.push_back(u);
    for (uint32_t v : left[u]) {
      if (color[v] == 1) {
        std::string cycle;
        bool on = false;
        for (uint32_t w : path) {
          if (w == v) on = true;
          if (on) cycle += r.names[w] + " -> ";
        }
        cycle += r.names[v];
        throw Error("grammar: line " + std::to_string(where[v].first) + ", column " + std::to_string(where[v].second) +
                    ": left recursion (" + cycle +
                    ") can match again without consuming input; rewrite it with repetition, e.g. "
                    "a ::= b (\"x\" b)* instead of a ::= a \"x\" b | b, and do not repeat what can be empty");
      }
      if (color[v] == 0) visit(v);
    }
    path.pop_back();
    color[u] = 2;
  };
  for (uint32_t i = 0; i < n; ++i)
    if (color[i] == 0) visit(i);
}

}  // namespace

Grammar::~Grammar() = default;

std::shared_ptr<const Grammar> Grammar::parse_gbnf(const std::string& text) {
  Parser parser(text);
  std::vector<RuleDef> defs = parser.parse();
  auto rules = std::make_unique<Rules>();
  Lowering low(*rules);
  low.run(defs);
  check_left_recursion(*rules, low.where(), low.repeats());
  std::shared_ptr<Grammar> g(new Grammar());
  g->rules_ = std::move(rules);
  return g;
}

}  // namespace hai::grammar
