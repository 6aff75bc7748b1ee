#include "engine/tokenizer/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>
#include <memory>

#include "engine/common/error.h"
#include "engine/common/utf8.h"

namespace hai::unicode {

namespace {

// Returns the length of the well-formed sequence at text[pos], or 0.
size_t valid_seq_len(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data()) + pos;
  size_t left = text.size() - pos;
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  if (c < 0xC2 || c > 0xF4) return 0;
  auto cont = [&](size_t i) { return i < left && (s[i] & 0xC0) == 0x80; };
  if (c < 0xE0) return cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && s[1] >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (!cont(1) || !cont(2) || !cont(3)) return 0;
  if (c == 0xF0 && s[1] < 0x90) return 0;  // overlong
  if (c == 0xF4 && s[1] >= 0x90) return 0;  // > U+10FFFF
  return 4;
}

utf8proc_category_t cat(uint32_t cpt) { return utf8proc_category(static_cast<utf8proc_int32_t>(cpt)); }

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    size_t n = valid_seq_len(text, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

void validate_utf8(std::string_view text, std::string_view what) {
  for (size_t pos = 0; pos < text.size();) {
    size_t n = valid_seq_len(text, pos);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<uint8_t>(text[pos]));
      throw Error(std::string(what) + ": invalid UTF-8 at byte " + std::to_string(pos) + " (byte " + hex + ")");
    }
    pos += n;
  }
}

uint32_t next_cpt(std::string_view text, size_t& pos) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data()) + pos;
  size_t n = utf8_len(s[0]);
  if (n > text.size() - pos) n = 1;
  uint32_t c;
  switch (n) {
    case 1: c = s[0]; break;
    case 2: c = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu); break;
    case 3: c = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu); break;
    default: c = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu); break;
  }
  pos += n;
  return c;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) out.push_back(next_cpt(text, pos));
  return out;
}

void append_utf8(std::string& out, uint32_t c) { utf8::append(out, c); }

std::string cpt_to_utf8(uint32_t cpt) {
  std::string s;
  append_utf8(s, cpt);
  return s;
}

bool is_letter(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_mark(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
}
bool is_nonspacing_mark(uint32_t c) { return cat(c) == UTF8PROC_CATEGORY_MN; }
bool is_number(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}
bool is_punctuation(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}
bool is_symbol(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_SM && k <= UTF8PROC_CATEGORY_SO;
}
bool is_separator(uint32_t c) {
  auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_ZS && k <= UTF8PROC_CATEGORY_ZP;
}
bool is_control(uint32_t c) {
  auto k = cat(c);
  return k == UTF8PROC_CATEGORY_CN || k >= UTF8PROC_CATEGORY_CC;
}
bool is_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
uint32_t to_lower(uint32_t c) { return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
uint32_t to_upper(uint32_t c) { return static_cast<uint32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }

std::string normalize(std::string_view text, Form form) {
  if (text.empty()) return {};
  int opts = UTF8PROC_STABLE;
  switch (form) {
    case Form::NFC: opts |= UTF8PROC_COMPOSE; break;
    case Form::NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case Form::NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case Form::NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out,
                                    static_cast<utf8proc_option_t>(opts));
  if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

std::string to_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) append_utf8(out, to_lower(next_cpt(text, pos)));
  return out;
}

namespace {
struct ByteTables {
  std::array<std::string, 256> to_cpt;
  std::array<uint32_t, 256> cpt;
  ByteTables() {
    // Printable bytes map to themselves; the others to U+0100 onwards, in order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      cpt[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_cpt[b] = cpt_to_utf8(cpt[b]);
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return byte_tables().to_cpt[byte]; }

int unicode_to_byte(uint32_t c) {
  if (c < 256) {
    bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    return printable ? static_cast<int>(c) : -1;
  }
  const auto& t = byte_tables();
  if (c >= 256 && c < 256 + 68) {
    for (int b = 0; b < 256; ++b)
      if (t.cpt[b] == c) return b;
  }
  return -1;
}

std::string bytes_to_unicode(std::string_view text) {
  const auto& t = byte_tables();
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text) out += t.to_cpt[c];
  return out;
}

}  // namespace hai::unicode
