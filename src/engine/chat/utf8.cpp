#include "engine/chat/utf8.h"

#include <algorithm>

#include <utf8proc.h>

namespace hai::chat::utf8 {

bool is_space(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E: case 0x1F:
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_alnum(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  auto cat = utf8proc_category(utf8proc_int32_t(cp));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

static bool is_cased_letter(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  auto cat = utf8proc_category(utf8proc_int32_t(cp));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

uint32_t to_upper(uint32_t cp) { return uint32_t(utf8proc_toupper(utf8proc_int32_t(cp))); }
uint32_t to_lower(uint32_t cp) { return uint32_t(utf8proc_tolower(utf8proc_int32_t(cp))); }

std::string upper(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) append(out, to_upper(decode(s, pos)));
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) append(out, to_lower(decode(s, pos)));
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  size_t pos = 0;
  bool prev_cased = false;
  while (pos < s.size()) {
    uint32_t cp = decode(s, pos);
    bool cased = is_cased_letter(cp);
    append(out, cased ? (prev_cased ? to_lower(cp) : to_upper(cp)) : cp);
    prev_cased = cased;
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < s.size()) {
    uint32_t cp = decode(s, pos);
    append(out, first ? to_upper(cp) : to_lower(cp));
    first = false;
  }
  return out;
}

std::string strip(std::string_view s, bool left, bool right, const std::string* chars) {
  std::vector<uint32_t> cps = code_points(s);
  std::vector<uint32_t> set;
  if (chars) set = code_points(*chars);
  auto strip_it = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : is_space(cp);
  };
  size_t a = 0, b = cps.size();
  if (left) while (a < b && strip_it(cps[a])) ++a;
  if (right) while (b > a && strip_it(cps[b - 1])) --b;
  return encode(std::vector<uint32_t>(cps.begin() + a, cps.begin() + b));
}

}  // namespace hai::chat::utf8
