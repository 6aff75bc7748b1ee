#include "kb/text.h"

#include <iconv.h>
#include <utf8proc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>

#include "engine/common/error.h"
#include "engine/common/utf8.h"

namespace hai::kb {

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(utf8::decode(s, i));
  return out;
}

void AppendUtf8(std::string* out, char32_t c) { utf8::append(*out, c); }

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size() * 3);
  for (char32_t c : s) AppendUtf8(&out, c);
  return out;
}

size_t CountCodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char b : s) n += (b & 0xC0) != 0x80;
  return n;
}

bool IsValidUtf8(std::string_view s) { return utf8::find_invalid(s) == std::string_view::npos; }

bool IsHan(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2FA1F) ||
         (c >= 0xF900 && c <= 0xFAFF) || c == 0x3007;
}

bool IsCjk(char32_t c) {
  return IsHan(c) || (c >= 0x3000 && c <= 0x30FF) || (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xFF00 && c <= 0xFFEF) ||
         (c >= 0x2E80 && c <= 0x2FDF) || (c >= 0x31F0 && c <= 0x31FF) || (c >= 0x201C && c <= 0x201D) ||
         (c >= 0x2018 && c <= 0x2019) || c == 0x2014 || c == 0x2026 || c == 0x00B7;
}

bool IsAsciiAlnum(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool IsSpace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200B) ||
         c == 0x202F || c == 0x205F || c == 0xFEFF;
}

bool IsSentenceEnd(char32_t c) {
  return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == '!' || c == '?' || c == 0xFF1B || c == ';' ||
         c == 0x2026 || c == 0xFF61;
}

int DisplayWidth(char32_t c) { return IsCjk(c) ? 2 : 1; }

std::string Trim(std::string_view s) {
  std::u32string u = DecodeUtf8(s);
  size_t b = 0, e = u.size();
  while (b < e && (IsSpace(u[b]) || u[b] == '\n' || u[b] == '\f')) ++b;
  while (e > b && (IsSpace(u[e - 1]) || u[e - 1] == '\n' || u[e - 1] == '\f')) --e;
  return EncodeUtf8(u.substr(b, e - b));
}

namespace {

// Converts with iconv; returns false when the input is not valid in `from`.
bool IconvConvert(std::string_view in, const char* from, std::string* out) {
  iconv_t cd = iconv_open("UTF-8", from);
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  out->clear();
  std::string buf(in.size() * 2 + 16, '\0');
  char* src = const_cast<char*>(in.data());
  size_t src_left = in.size();
  bool ok = true;
  while (src_left > 0) {
    char* dst = buf.data();
    size_t dst_left = buf.size();
    size_t r = iconv(cd, &src, &src_left, &dst, &dst_left);
    out->append(buf.data(), buf.size() - dst_left);
    if (r == static_cast<size_t>(-1) && errno != E2BIG) {
      ok = false;
      break;
    }
  }
  iconv_close(cd);
  return ok;
}

}  // namespace

std::string ToUtf8(std::string_view bytes, const std::string& what, std::string* encoding) {
  auto set = [&](const char* e) {
    if (encoding) *encoding = e;
  };
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  if (bytes.size() >= 2 && (bytes.substr(0, 2) == "\xFF\xFE" || bytes.substr(0, 2) == "\xFE\xFF")) {
    const char* from = bytes[0] == '\xFF' ? "UTF-16LE" : "UTF-16BE";
    std::string out;
    if (!IconvConvert(bytes.substr(2), from, &out)) throw Error(what + ": invalid " + from + " text");
    set(from);
    return out;
  }
  if (IsValidUtf8(bytes)) {
    set("UTF-8");
    return std::string(bytes);
  }
  // Not UTF-8: the Chinese legacy encoding (GB18030 is a superset of GBK and
  // GB2312). A NUL byte means binary data, not text.
  if (bytes.find('\0') == std::string_view::npos) {
    std::string out;
    if (IconvConvert(bytes, "GB18030", &out)) {
      set("GB18030");
      return out;
    }
  }
  throw Error(what + ": not text in a supported encoding (UTF-8, UTF-16 with BOM, GB18030/GBK)");
}

std::string Nfkc(std::string_view s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), s.size(), &out,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                                                   UTF8PROC_COMPAT));
  if (n < 0) return std::string(s);  // invalid UTF-8 was rejected earlier; keep the text as is
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

std::string DropCjkSpaces(std::string_view s) {
  std::u32string u = DecodeUtf8(s);
  std::u32string out;
  out.reserve(u.size());
  auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  for (size_t i = 0; i < u.size();) {
    if (IsSpace(u[i]) && !out.empty()) {
      size_t j = i;
      while (j < u.size() && IsSpace(u[j])) ++j;
      if (j < u.size()) {
        char32_t a = out.back(), b = u[j];
        bool drop = (IsCjk(a) && IsCjk(b)) || (IsCjk(a) && digit(b)) || (digit(a) && IsCjk(b));
        if (drop) {
          i = j;
          continue;
        }
      }
      out.append(u, i, j - i);
      i = j;
      continue;
    }
    out.push_back(u[i++]);
  }
  return EncodeUtf8(out);
}

namespace {

bool IsChineseNumeral(char32_t c) {
  static const std::u32string kNum = U"一二三四五六七八九十百零〇";
  return kNum.find(c) != std::u32string::npos;
}

}  // namespace

HeadingMatch DetectHeading(std::string_view line_in) {
  HeadingMatch m;
  std::string line = Trim(line_in);
  if (line.empty()) return m;
  // Markdown ATX heading.
  if (line[0] == '#') {
    size_t n = 0;
    while (n < line.size() && line[n] == '#') ++n;
    if (n <= 6 && n < line.size() && line[n] == ' ') {
      m.is_heading = true;
      m.level = static_cast<int>(n);
      m.text = Trim(std::string_view(line).substr(n));
      return m;
    }
    return m;
  }
  std::u32string u = DecodeUtf8(line);
  if (u.size() > 40 || IsSentenceEnd(u.back()) || u.back() == U',' || u.back() == U'，' || u.back() == U'、')
    return m;
  // Lines with several sentences are text, not headings.
  for (char32_t c : u)
    if (c == U'。') return m;
  size_t i = 0;
  auto numeral_run = [&](size_t from) {
    size_t j = from;
    while (j < u.size() && IsChineseNumeral(u[j])) ++j;
    return j - from;
  };
  // 第二章 / 第三节 / 第一篇 / 第1部分
  if (u[0] == U'第') {
    size_t j = 1;
    while (j < u.size() && (IsChineseNumeral(u[j]) || (u[j] >= '0' && u[j] <= '9'))) ++j;
    if (j > 1 && j < u.size() && (u[j] == U'章' || u[j] == U'篇' || u[j] == U'部' || u[j] == U'节')) {
      m.is_heading = true;
      m.level = u[j] == U'节' ? 2 : 1;
    }
  } else if (size_t n = numeral_run(0); n > 0 && n < u.size() && u[n] == U'、') {  // 一、
    m.is_heading = true;
    m.level = 2;
  } else if ((u[0] == '(' || u[0] == U'（') && (i = numeral_run(1)) > 0 && 1 + i < u.size() &&
             (u[1 + i] == ')' || u[1 + i] == U'）')) {  // (一)
    m.is_heading = true;
    m.level = 3;
  } else if (u[0] >= '0' && u[0] <= '9') {  // 1.2 Title, 01. Title, 02 Title
    size_t j = 0;
    int dots = 0;
    while (j < u.size() && ((u[j] >= '0' && u[j] <= '9') || u[j] == '.')) {
      if (u[j] == '.') ++dots;
      ++j;
    }
    size_t digits = j - dots;
    bool has_title = j < u.size() && (u[j] == ' ' || u[j] == U'、' || IsHan(u[j]));
    // "2024年..." is a date, not a numbering; titles need a Han character.
    bool han = false;
    for (size_t k = j; k < u.size(); ++k) han |= IsHan(u[k]);
    if (has_title && han && digits <= 4 && j <= 8 && !(j < u.size() && (u[j] == U'年' || u[j] == U'月'))) {
      if (dots > 0 || u[0] == '0' || u[j] == U'、' || u[j] == ' ') {
        m.is_heading = true;
        m.level = 4 + std::min(dots, 2);
        if (u[0] == '0') m.level = 2;  // slide sections "01. ..."
      }
    }
  }
  if (m.is_heading) m.text = line;
  return m;
}

namespace {

bool IsPageNumberLine(const std::u32string& u) {
  if (u.empty() || u.size() > 8) return false;
  bool digit = false;
  for (char32_t c : u) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (!(c == '-' || c == ' ' || c == U'—' || c == '/' || c == 'I' || c == 'V' || c == 'X' || c == 'i' ||
                 c == 'v' || c == 'x')) {
      return false;
    }
  }
  return digit || u.size() <= 4;
}

bool IsDotLeaderLine(const std::string& s) {
  return s.find("......") != std::string::npos || s.find("\u2026\u2026") != std::string::npos ||
         s.find("\u00B7\u00B7\u00B7\u00B7") != std::string::npos;
}

bool StartsItem(const std::u32string& u) {
  if (u.empty()) return false;
  static const std::u32string kBullets = U"□■●○•▪◆◇-*–·√✓➢▶►";
  return kBullets.find(u[0]) != std::u32string::npos;
}

int LineWidth(const std::u32string& u) {
  int w = 0;
  for (char32_t c : u) w += DisplayWidth(c);
  return w;
}

}  // namespace

std::string CleanExtractedText(std::string_view text) {
  std::string norm = DropCjkSpaces(Nfkc(text));
  // Split into lines; '\f' (page break) is kept as a line of its own.
  std::vector<std::u32string> lines;
  {
    std::u32string u = DecodeUtf8(norm);
    std::u32string cur;
    for (char32_t c : u) {
      if (c == '\n' || c == '\f') {
        lines.push_back(cur);
        cur.clear();
        if (c == '\f') lines.push_back(U"\f");
      } else if (c != '\r') {
        cur.push_back(c);
      }
    }
    lines.push_back(cur);
  }
  // Trim each line.
  for (auto& l : lines) {
    if (l == U"\f") continue;
    size_t b = 0, e = l.size();
    while (b < e && IsSpace(l[b])) ++b;
    while (e > b && IsSpace(l[e - 1])) --e;
    l = l.substr(b, e - b);
  }
  // Running headers: short lines repeated many times in a long document.
  std::map<std::u32string, int> counts;
  size_t nonempty = 0;
  for (auto& l : lines)
    if (!l.empty() && l != U"\f") {
      ++nonempty;
      if (l.size() <= 30) counts[l]++;
    }
  auto is_running_header = [&](const std::u32string& l) {
    if (nonempty < 100 || l.size() > 30) return false;
    auto it = counts.find(l);
    return it != counts.end() && it->second >= 5 && it->second * 50 >= static_cast<int>(nonempty) / 10;
  };
  // Keep the content lines.
  std::vector<std::u32string> kept;
  for (auto& l : lines) {
    if (l == U"\f") {
      kept.push_back(l);
      continue;
    }
    if (l.empty() || IsPageNumberLine(l) || IsDotLeaderLine(EncodeUtf8(l)) || is_running_header(l)) continue;
    kept.push_back(l);
  }
  // The wrap width: the 75th percentile of line widths. Lines of a
  // hard-wrapped paragraph sit at that width; a shorter line ends one.
  std::vector<int> widths;
  for (auto& l : kept)
    if (l != U"\f" && l.size() >= 8) widths.push_back(LineWidth(l));
  int wrap = 0;
  if (!widths.empty()) {
    std::sort(widths.begin(), widths.end());
    wrap = widths[widths.size() * 3 / 4];
  }
  std::u32string out;
  bool open = false;  // the last kept line may continue on the next one
  for (size_t i = 0; i < kept.size(); ++i) {
    const std::u32string& l = kept[i];
    if (l == U"\f") {
      while (!out.empty() && out.back() == '\n') out.pop_back();
      out += U"\f";
      open = false;
      continue;
    }
    bool heading = DetectHeading(EncodeUtf8(l)).is_heading;
    if (open && !heading && !StartsItem(l)) {
      // Continue the paragraph; a space only between two Latin words.
      char32_t a = out.back(), b = l.front();
      if (IsAsciiAlnum(a) && IsAsciiAlnum(b)) out.push_back(' ');
      out += l;
    } else {
      if (!out.empty() && out.back() != '\f') out.push_back('\n');
      out += l;
    }
    char32_t last = l.back();
    bool ends_sentence = IsSentenceEnd(last) || last == ':' || last == U'：';
    open = !heading && !ends_sentence && wrap > 0 && LineWidth(l) * 100 >= wrap * 85 && LineWidth(l) >= 20;
  }
  return EncodeUtf8(out);
}

}  // namespace hai::kb
