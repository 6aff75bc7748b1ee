#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer/regex.h"

#include <pcre2.h>

#include "engine/common/error.h"

namespace hai {

namespace {

// One JIT stack per thread, large enough for long whitespace or letter runs.
struct JitStack {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_data* md = nullptr;
  pcre2_match_context* ctx = nullptr;
  JitStack() {
    stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    md = pcre2_match_data_create(16, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    if (ctx && stack) pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~JitStack() {
    if (ctx) pcre2_match_context_free(ctx);
    if (stack) pcre2_jit_stack_free(stack);
    if (md) pcre2_match_data_free(md);
  }
};

JitStack& thread_jit() {
  thread_local JitStack s;
  return s;
}

// \s is the Unicode White_Space property, as in Oniguruma (Hugging Face
// tokenizers) and llama.cpp. PCRE2 would add U+180E and ECMAScript would add
// U+FEFF and drop U+0085.
const char* const kWhiteSpace = R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Code points that PCRE2 10.42 (Unicode 14 tables) leaves unassigned but that
// Unicode 15.0 (utf8proc) and 15.1 put in a general category. Added to
// \p{L}, \p{N}, \p{P}, \p{S}, \p{M} so that Hai classifies text like the
// current Unicode standard (and like JavaScript engines do).
const char* extra_ranges(char cat) {
  switch (cat) {
    case 'L':
      return R"(\x{1123F}-\x{11240}\x{11F02}\x{11F04}-\x{11F10}\x{11F12}-\x{11F33}\x{1342F}\x{13441}-\x{13446}\x{1B132}\x{1B155}\x{1DF25}-\x{1DF2A}\x{1E030}-\x{1E06D}\x{1E4D0}-\x{1E4EB}\x{2B739}\x{2EBF0}-\x{2EE5D}\x{31350}-\x{323AF})";
    case 'N':
      return R"(\x{11F50}-\x{11F59}\x{1D2C0}-\x{1D2D3}\x{1E4F0}-\x{1E4F9})";
    case 'P':
      return R"(\x{11B00}-\x{11B09}\x{11F43}-\x{11F4F})";
    case 'S':
      return R"(\x{1F6DC}\x{1F774}-\x{1F776}\x{1F77B}-\x{1F77F}\x{1F7D9}\x{1FA75}-\x{1FA77}\x{1FA87}-\x{1FA88}\x{1FAAD}-\x{1FAAF}\x{1FABB}-\x{1FABD}\x{1FABF}\x{1FACE}-\x{1FACF}\x{1FADA}-\x{1FADB}\x{1FAE8}\x{1FAF7}-\x{1FAF8}\x{2FFC}-\x{2FFF}\x{31EF})";
    case 'M':
      return R"(\x{CF3}\x{ECE}\x{10EFD}-\x{10EFF}\x{11241}\x{11F00}-\x{11F01}\x{11F03}\x{11F34}-\x{11F3A}\x{11F3E}-\x{11F42}\x{13440}\x{13447}-\x{13455}\x{1E08F}\x{1E4EC}-\x{1E4EF})";
  }
  return "";
}

}  // namespace

std::string Regex::adapt(const std::string& p) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
        ++i;
        continue;
      }
      if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
        ++i;
        continue;
      }
      if (n == 'p' && i + 4 < p.size() && p[i + 2] == '{' && p[i + 4] == '}' && *extra_ranges(p[i + 3])) {
        std::string cls = std::string("\\p{") + p[i + 3] + "}" + extra_ranges(p[i + 3]);
        out += in_class ? cls : "[" + cls + "]";
        i += 4;
        continue;
      }
      out += c;
      out += n;
      ++i;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
        size_t end = p.find(":]", i + 2);
        if (end != std::string::npos) {
          out.append(p, i, end + 2 - i);
          i = end + 1;
          continue;
        }
      }
      if (c == ']') in_class = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  const std::string adapted = adapt(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(adapted.data()), adapted.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("bad pre-tokenizer regex '" + pattern + "' at offset " + std::to_string(off) + ": " +
                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  JitStack& js = thread_jit();
  pcre2_match_context* mctx = js.ctx;
  size_t start = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, js.md, mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error("regex '" + pattern_ + "' failed: " + reinterpret_cast<const char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(js.md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // Empty match: step over one code point.
      if (b >= text.size()) break;
      size_t n = 1;
      auto c = static_cast<unsigned char>(text[b]);
      if (c >= 0xF0) n = 4; else if (c >= 0xE0) n = 3; else if (c >= 0xC0) n = 2;
      start = b + n;
    }
  }
  return out;
}

void split_by_ranges(std::string_view piece, const std::vector<std::pair<size_t, size_t>>& matches,
                     SplitBehavior behavior, bool invert, std::vector<std::string>& out) {
  // Turn the matches into a list of (begin, end, is_delimiter) spans covering the piece.
  struct Span {
    size_t b, e;
    bool delim;
  };
  std::vector<Span> spans;
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) spans.push_back({pos, b, invert});
    spans.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < piece.size()) spans.push_back({pos, piece.size(), invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.emplace_back(piece.substr(b, e - b));
  };
  switch (behavior) {
    case SplitBehavior::ISOLATED:
      for (auto& s : spans) emit(s.b, s.e);
      break;
    case SplitBehavior::REMOVED:
      for (auto& s : spans)
        if (!s.delim) emit(s.b, s.e);
      break;
    case SplitBehavior::MERGED_WITH_PREVIOUS: {
      // A delimiter joins the piece before it.
      size_t cur = 0;
      bool open = false;
      for (auto& s : spans) {
        if (s.delim) {
          emit(open ? cur : s.b, s.e);
          open = false;
        } else {
          if (open) emit(cur, s.b);
          cur = s.b;
          open = true;
        }
      }
      if (open) emit(cur, piece.size());
      break;
    }
    case SplitBehavior::MERGED_WITH_NEXT: {
      // A delimiter joins the piece after it.
      size_t cur = 0;
      bool open = false;
      for (auto& s : spans) {
        if (s.delim) {
          if (open) emit(cur, s.b);
          cur = s.b;
          open = true;
        } else {
          emit(open ? cur : s.b, s.e);
          open = false;
        }
      }
      if (open) emit(cur, piece.size());
      break;
    }
    case SplitBehavior::CONTIGUOUS: {
      // Adjacent delimiters form one piece.
      size_t i = 0;
      while (i < spans.size()) {
        if (spans[i].delim) {
          size_t j = i;
          while (j + 1 < spans.size() && spans[j + 1].delim) ++j;
          emit(spans[i].b, spans[j].e);
          i = j + 1;
        } else {
          emit(spans[i].b, spans[i].e);
          ++i;
        }
      }
      break;
    }
  }
}

void split(std::vector<std::string>& pieces, const Regex& re, SplitBehavior behavior, bool invert) {
  std::vector<std::string> out;
  out.reserve(pieces.size() * 2);
  for (const auto& p : pieces) split_by_ranges(p, re.find_all(p), behavior, invert, out);
  pieces = std::move(out);
}

void split_literal(std::vector<std::string>& pieces, std::string_view delim, SplitBehavior behavior) {
  std::vector<std::string> out;
  for (const auto& p : pieces) {
    std::vector<std::pair<size_t, size_t>> m;
    if (!delim.empty()) {
      for (size_t at = p.find(delim); at != std::string::npos; at = p.find(delim, at + delim.size()))
        m.emplace_back(at, at + delim.size());
    }
    split_by_ranges(p, m, behavior, false, out);
  }
  pieces = std::move(out);
}

}  // namespace hai
