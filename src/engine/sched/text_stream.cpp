#include "engine/sched/text_stream.h"

#include <algorithm>

namespace hai::sched {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the UTF-8 sequence that `lead` starts (2..4) and the range
// its second byte must be in (Unicode table 3-7); 0 when `lead` starts none
// (ASCII is handled by the callers).
struct Lead {
  int len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
};

Lead lead_of(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};
  if (c >= 0xE1 && c <= 0xEC) return {3, 0x80, 0xBF};
  if (c == 0xED) return {3, 0x80, 0x9F};
  if (c >= 0xEE && c <= 0xEF) return {3, 0x80, 0xBF};
  if (c == 0xF0) return {4, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};
  return {};
}

// Whether byte k (>= 1) of a sequence started by `lead` may be `c`.
bool fits(const Lead& lead, size_t k, unsigned char c) {
  return k == 1 ? (c >= lead.lo && c <= lead.hi) : (c >= 0x80 && c <= 0xBF);
}

}  // namespace

std::string sanitize_utf8(std::string_view b) {
  std::string out;
  out.reserve(b.size());
  size_t i = 0;
  while (i < b.size()) {
    const unsigned char c = static_cast<unsigned char>(b[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    const Lead lead = lead_of(c);
    if (lead.len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    size_t k = 1;
    while (k < static_cast<size_t>(lead.len) && i + k < b.size() && fits(lead, k, static_cast<unsigned char>(b[i + k])))
      ++k;
    if (k == static_cast<size_t>(lead.len))
      out.append(b.substr(i, k));
    else
      out += kReplacement;  // the maximal subpart b[i .. i+k) is ill-formed or cut short
    i += k;
  }
  return out;
}

size_t incomplete_utf8_tail(std::string_view b) {
  const size_t n = b.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const size_t j = n - back;
    const unsigned char c = static_cast<unsigned char>(b[j]);
    if (c >= 0x80 && c <= 0xBF) continue;  // a continuation byte: look further back
    const Lead lead = lead_of(c);
    if (lead.len == 0 || static_cast<size_t>(lead.len) <= back) return 0;  // not a lead, or already complete
    for (size_t k = 1; k < back; ++k)
      if (!fits(lead, k, static_cast<unsigned char>(b[j + k]))) return 0;
    return back;
  }
  return 0;
}

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  // An empty stop string would match everywhere; it means nothing.
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string TextStream::push(std::string_view bytes) {
  if (stopped_) return {};
  held_.append(bytes);

  // A whole stop string: output what comes before the earliest one, end.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    std::string out = sanitize_utf8(std::string_view(held_).substr(0, first));
    held_.clear();
    stopped_ = true;
    return out;
  }

  // Hold back the longest end of the text that begins a stop string...
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  // ... and an incomplete character before it.
  size_t cut = held_.size() - keep;
  cut -= incomplete_utf8_tail(std::string_view(held_).substr(0, cut));
  std::string out = sanitize_utf8(std::string_view(held_).substr(0, cut));
  held_.erase(0, cut);
  return out;
}

std::string TextStream::finish() {
  std::string out = sanitize_utf8(held_);
  held_.clear();
  return out;
}

}  // namespace hai::sched
