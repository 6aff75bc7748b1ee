// JSON schema "pattern" (an ECMA-262 regular expression, 'u' mode) -> a GBNF
// expression for the characters between the quotes of a JSON string.
//
// The grammar writes strings that match the whole pattern. A pattern is
// searched, not anchored, in JSON schema, so a whole match is always a
// valid string: the grammar is a subset of what the schema accepts. The
// subset of regular expressions: literals, escapes (\n \t \r \f \v \0 \xHH
// \uHHHH \u{H...} and escaped syntax characters), classes [...] and [^...],
// \d \w \s and their negations, '.', groups (...) and (?:...), alternation,
// the quantifiers * + ? {n} {n,} {n,m} (lazy forms too), and ^ / $ at the
// start / end of the pattern or of a top-level alternative. Anything else
// (lookaround, backreferences, \b, \p{...}, anchors inside) throws.
//
// Characters are written as JSON requires: '"' as \", '\' as \\, control
// characters as \u00XX.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/grammar/pattern.h"

namespace hai::grammar {
namespace {

struct CpRange {
  uint32_t lo, hi;
};
using CpSet = std::vector<CpRange>;

CpSet normalize(CpSet s) {
  std::sort(s.begin(), s.end(), [](const CpRange& a, const CpRange& b) { return a.lo < b.lo; });
  CpSet out;
  for (const CpRange& r : s) {
    if (!out.empty() && r.lo <= out.back().hi + 1) out.back().hi = std::max(out.back().hi, r.hi);
    else out.push_back(r);
  }
  CpSet cut;  // no surrogates
  for (const CpRange& r : out) {
    if (r.hi < 0xD800 || r.lo > 0xDFFF) {
      cut.push_back(r);
      continue;
    }
    if (r.lo < 0xD800) cut.push_back({r.lo, 0xD7FF});
    if (r.hi > 0xDFFF) cut.push_back({0xE000, r.hi});
  }
  return cut;
}

CpSet complement(const CpSet& s0) {
  const CpSet s = normalize(s0);
  CpSet out;
  uint32_t next = 0;
  for (const CpRange& r : s) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return normalize(out);
}

const CpSet kDigit = {{'0', '9'}};
const CpSet kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const CpSet kSpace = {{'\t', '\r'},     {' ', ' '},       {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
                      {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
const CpSet kDot = complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}});

std::string esc(uint32_t cp) {
  char buf[16];
  if (cp < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04X", cp);
  else std::snprintf(buf, sizeof buf, "\\U%08X", cp);
  return buf;
}

// A GBNF expression for one JSON-string character from `set`.
std::string char_expr(const CpSet& set0) {
  const CpSet set = normalize(set0);
  std::vector<std::string> alts;
  CpSet raw;
  for (const CpRange& r : set) {
    for (uint32_t c = r.lo; c <= std::min<uint32_t>(r.hi, 0x1F); ++c) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\"\\\\u%04x\"", c);  // the six characters \u00XX
      alts.push_back(buf);
    }
    uint32_t lo = std::max<uint32_t>(r.lo, 0x20);
    const uint32_t hi = r.hi;
    if (lo > hi) continue;
    // Split around '"' (0x22) and '\' (0x5C).
    for (uint32_t special : {0x22u, 0x5Cu}) {
      if (lo <= special && special <= hi) {
        if (lo < special) raw.push_back({lo, special - 1});
        alts.push_back(special == 0x22 ? "\"\\\\\\\"\"" : "\"\\\\\\\\\"");
        lo = special + 1;
      }
    }
    if (lo <= hi) raw.push_back({lo, hi});
  }
  if (!raw.empty()) {
    std::string cls = "[";
    for (const CpRange& r : raw) {
      cls += esc(r.lo);
      if (r.hi > r.lo) {
        cls += '-';
        cls += esc(r.hi);
      }
    }
    alts.insert(alts.begin(), cls + "]");
  }
  if (alts.empty()) return "";
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
  return out + " )";
}

class RegexParser {
 public:
  RegexParser(const std::vector<uint32_t>& p, const std::string& where) : p_(p), where_(where) {}

  std::string parse() {
    std::string out = alternatives(/*top=*/true);
    if (i_ < p_.size()) fail("unexpected ')'");
    return out;
  }

 private:
  const std::vector<uint32_t>& p_;
  const std::string& where_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": pattern not supported at character " + std::to_string(i_ + 1) + ": " + what);
  }
  bool at_end() const { return i_ >= p_.size(); }
  uint32_t peek() const { return at_end() ? 0 : p_[i_]; }

  std::string alternatives(bool top) {
    std::vector<std::string> alts;
    for (;;) {
      if (top && peek() == '^') ++i_;
      alts.push_back(sequence(top));
      if (peek() != '|') break;
      ++i_;
    }
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t k = 0; k < alts.size(); ++k) out += (k ? " | " : " ") + alts[k];
    return out + " )";
  }

  std::string sequence(bool top) {
    std::string out;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '$') {
        ++i_;
        if (top && (at_end() || peek() == '|')) break;
        fail("'$' is supported only at the end");
      }
      if (peek() == '^') fail("'^' is supported only at the start");
      std::string atom_expr = atom();
      atom_expr = quantified(atom_expr);
      out += (out.empty() ? "" : " ") + atom_expr;
    }
    return out.empty() ? "\"\"" : out;
  }

  std::string quantified(const std::string& a) {
    std::string q;
    const uint32_t c = peek();
    if (c == '*' || c == '+' || c == '?') {
      ++i_;
      q = std::string(1, static_cast<char>(c));
    } else if (c == '{') {
      size_t save = i_;
      ++i_;
      auto num = [&]() -> long {
        if (!(peek() >= '0' && peek() <= '9')) return -1;
        long v = 0;
        while (peek() >= '0' && peek() <= '9') {
          v = v * 10 + (peek() - '0');
          if (v > 10000) fail("repetition count above 10000");
          ++i_;
        }
        return v;
      };
      const long m = num();
      long n = m;
      if (m < 0) {
        i_ = save;  // a literal '{'
        return a;
      }
      if (peek() == ',') {
        ++i_;
        n = (peek() == '}') ? -1 : num();
        if (n == -2) fail("bad repetition");
      }
      if (peek() != '}') fail("expected '}' in a repetition");
      ++i_;
      if (n >= 0 && n < m) fail("repetition {m,n} with n < m");
      q = "{";
      q += std::to_string(m);
      if (n != m) {
        q += ',';
        if (n >= 0) q += std::to_string(n);
      }
      q += '}';
    } else {
      return a;
    }
    if (peek() == '?') ++i_;  // lazy: same language
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{') fail("nested quantifier");
    return "(" + a + ")" + q;
  }

  std::string atom() {
    const uint32_t c = peek();
    if (c == '(') {
      ++i_;
      if (peek() == '?') {
        if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
          i_ += 2;
        } else {
          fail("lookaround and named groups are not supported");
        }
      }
      std::string inner = alternatives(/*top=*/false);
      if (peek() != ')') fail("missing ')'");
      ++i_;
      return "( " + inner + " )";
    }
    if (c == '[') return char_expr_or_fail(char_class());
    if (c == '.') {
      ++i_;
      return char_expr(kDot);
    }
    if (c == '*' || c == '+' || c == '?') fail("quantifier without an atom");
    if (c == '\\') {
      CpSet set = escape(/*in_class=*/false);
      return char_expr_or_fail(set);
    }
    ++i_;
    return char_expr_or_fail({{c, c}});
  }

  std::string char_expr_or_fail(const CpSet& set) {
    std::string e = char_expr(set);
    if (e.empty()) fail("a class that matches no character");
    return e;
  }

  uint32_t hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      const uint32_t h = peek();
      int d = (h >= '0' && h <= '9') ? int(h - '0') : (h >= 'a' && h <= 'f') ? int(h - 'a' + 10)
              : (h >= 'A' && h <= 'F') ? int(h - 'A' + 10) : -1;
      if (d < 0) fail("bad hexadecimal escape");
      v = v * 16 + static_cast<uint32_t>(d);
      ++i_;
    }
    return v;
  }

  // After '\': a set of code points.
  CpSet escape(bool in_class) {
    ++i_;
    if (at_end()) fail("pattern ends with '\\'");
    const uint32_t e = p_[i_++];
    switch (e) {
      case 'd': return kDigit;
      case 'w': return kWord;
      case 's': return kSpace;
      case 'D': return complement(kDigit);
      case 'W': return complement(kWord);
      case 'S': return complement(kSpace);
      case 'n': return {{'\n', '\n'}};
      case 't': return {{'\t', '\t'}};
      case 'r': return {{'\r', '\r'}};
      case 'f': return {{'\f', '\f'}};
      case 'v': return {{'\v', '\v'}};
      case '0': return {{0, 0}};
      case 'x': {
        const uint32_t v = hex(2);
        return {{v, v}};
      }
      case 'u': {
        uint32_t v;
        if (peek() == '{') {
          ++i_;
          v = 0;
          int n = 0;
          while (peek() != '}') {
            v = v * 16 + hex(1);
            if (++n > 6) fail("bad \\u{...} escape");
          }
          ++i_;
        } else {
          v = hex(4);
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) fail("escape of a surrogate or beyond U+10FFFF");
        return {{v, v}};
      }
      case 'b':
        if (in_class) return {{'\b', '\b'}};
        fail("\\b (word boundary) is not supported");
      default:
        break;
    }
    static const std::string kSyntax = "^$\\.*+?()[]{}|/-";
    if (e < 0x80 && kSyntax.find(static_cast<char>(e)) != std::string::npos) return {{e, e}};
    fail(std::string("escape '\\") + (e < 0x80 ? std::string(1, static_cast<char>(e)) : "?") + "' is not supported");
  }

  CpSet char_class() {
    ++i_;  // '['
    bool neg = false;
    if (peek() == '^') {
      neg = true;
      ++i_;
    }
    CpSet set;
    bool first = true;
    while (!at_end() && (peek() != ']' || false)) {
      (void)first;
      first = false;
      CpSet lo_set;
      uint32_t lo;
      bool single;
      if (peek() == '\\') {
        lo_set = escape(/*in_class=*/true);
        single = lo_set.size() == 1 && lo_set[0].lo == lo_set[0].hi;
        lo = single ? lo_set[0].lo : 0;
      } else {
        lo = p_[i_++];
        single = true;
        lo_set = {{lo, lo}};
      }
      if (single && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi;
        if (peek() == '\\') {
          CpSet h = escape(/*in_class=*/true);
          if (!(h.size() == 1 && h[0].lo == h[0].hi)) fail("a class cannot end a range");
          hi = h[0].lo;
        } else {
          hi = p_[i_++];
        }
        if (hi < lo) fail("range out of order in a character class");
        set.push_back({lo, hi});
      } else {
        set.insert(set.end(), lo_set.begin(), lo_set.end());
      }
    }
    if (at_end()) fail("missing ']'");
    ++i_;
    return neg ? complement(set) : normalize(set);
  }
};

}  // namespace

std::string pattern_to_gbnf(const std::string& pattern, const std::string& where) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < pattern.size();) {
    const unsigned char c = static_cast<unsigned char>(pattern[i]);
    const int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len && i + k < pattern.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(pattern[i + k]) & 0x3F);
    cps.push_back(cp);
    i += static_cast<size_t>(len);
  }
  return RegexParser(cps, where).parse();
}

}  // namespace hai::grammar
