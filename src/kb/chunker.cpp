#include "kb/chunker.h"

#include "engine/common/error.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

bool IsClosing(char32_t c) {
  return c == U'”' || c == U'’' || c == '"' || c == '\'' || c == ')' || c == U'）' || c == U'」' || c == U'』' ||
         c == U'】' || c == U'》';
}

bool IsBlank(char32_t c) { return IsSpace(c) || c == '\n' || c == '\f'; }

}  // namespace

std::vector<std::pair<size_t, size_t>> SplitSentences(const std::u32string& t) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  const size_t n = t.size();
  while (i < n) {
    while (i < n && IsBlank(t[i])) ++i;
    if (i >= n) break;
    size_t b = i;
    size_t e = n;
    for (size_t j = i; j < n; ++j) {
      char32_t c = t[j];
      if (c == '\n' || c == '\f') {  // a line break ends a paragraph
        e = j;
        break;
      }
      bool end = IsSentenceEnd(c);
      // An English full stop ends a sentence before white space (not "3.5").
      if (c == '.' && (j + 1 == n || IsBlank(t[j + 1])) && j > b) end = true;
      if (end) {
        size_t k = j + 1;
        while (k < n && (IsSentenceEnd(t[k]) || IsClosing(t[k]))) ++k;
        e = k;
        break;
      }
    }
    // Trim trailing blanks.
    size_t ee = e;
    while (ee > b && IsBlank(t[ee - 1])) --ee;
    if (ee > b) out.emplace_back(b, ee);
    i = e;
  }
  return out;
}

std::string JoinSections(const std::vector<Section>& sections) {
  std::string s;
  for (size_t i = 0; i < sections.size(); ++i) {
    if (i) s += "\n\n";
    s += sections[i].text;
  }
  return s;
}

void ValidateChunkerOptions(const ChunkerOptions& opt) {
  if (opt.size < 50 || opt.size > 100000)
    throw Error("chunk size " + std::to_string(opt.size) + " out of range (50..100000 characters)");
  if (opt.overlap < 0 || opt.overlap >= opt.size)
    throw Error("chunk overlap " + std::to_string(opt.overlap) + " must be >= 0 and smaller than the chunk size " +
                std::to_string(opt.size));
}

std::vector<Chunk> ChunkSections(const std::vector<Section>& sections, const ChunkerOptions& opt) {
  ValidateChunkerOptions(opt);
  std::vector<Chunk> chunks;
  const size_t size = static_cast<size_t>(opt.size);
  const size_t overlap = static_cast<size_t>(opt.overlap);
  int64_t base = 0;  // offset of the section in the document text
  for (size_t si = 0; si < sections.size(); ++si) {
    const Section& sec = sections[si];
    std::u32string u = DecodeUtf8(sec.text);
    // Sentences, with long ones cut into pieces of at most `size`.
    std::vector<std::pair<size_t, size_t>> sents;
    for (auto [b, e] : SplitSentences(u)) {
      while (e - b > size) {
        // Prefer to cut after a comma or a space in the last third.
        size_t cut = b + size;
        for (size_t k = b + size; k > b + size * 2 / 3; --k) {
          char32_t c = u[k - 1];
          if (c == U'，' || c == ',' || c == U'、' || c == ' ' || c == ':' || c == U'：') {
            cut = k;
            break;
          }
        }
        size_t ce = cut;
        while (ce > b && IsBlank(u[ce - 1])) --ce;
        if (ce > b) sents.emplace_back(b, ce);
        b = cut;
        while (b < e && IsBlank(u[b])) ++b;
      }
      if (e > b) sents.emplace_back(b, e);
    }
    // Greedy packing: add sentences while the chunk stays within `size`.
    size_t i = 0;
    while (i < sents.size()) {
      size_t j = i;
      size_t b = sents[i].first, e = sents[i].second;
      while (j + 1 < sents.size() && sents[j + 1].second - b <= size) {
        ++j;
        e = sents[j].second;
      }
      Chunk c;
      c.start = base + static_cast<int64_t>(b);
      c.end = base + static_cast<int64_t>(e);
      c.text = EncodeUtf8(std::u32string_view(u).substr(b, e - b));
      c.page = sec.page;
      c.row = sec.row;
      c.heading = sec.heading;
      chunks.push_back(std::move(c));
      if (j + 1 >= sents.size()) break;
      // Next chunk starts with the trailing sentences that fit in `overlap`,
      // but always moves forward by at least one sentence.
      size_t k = j + 1;
      while (k > i + 1 && sents[j].second - sents[k - 1].first <= overlap) --k;
      i = k;
    }
    base += static_cast<int64_t>(u.size()) + 2;  // the "\n\n" between sections
  }
  return chunks;
}

}  // namespace hai::kb
