// Regular expressions for pre-tokenizers: PCRE2 in UTF + Unicode-property
// mode, JIT-compiled, safe to share between threads. Patterns are written in
// the Python/Rust syntax of tokenizer.json files; see adapt() for the two
// places where we pin the meaning instead of taking PCRE2's.
//
// Pre-tokenizers split text into pieces. `split` applies one pattern to
// every piece, the way Hugging Face's Split pre-tokenizer does, with one of
// its behaviours; llama.cpp's regex lists are a sequence of ISOLATED splits.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hai {

class Regex {
 public:
  // Throws hai::Error naming the pattern if it does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the successive non-overlapping matches in
  // `text` (valid UTF-8). Empty matches are skipped.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

  // The pattern as compiled: \s becomes the White_Space property and
  // \p{L}/\p{N}/\p{P}/\p{S}/\p{M} gain the code points Unicode 15/15.1
  // assigned after PCRE2's Unicode 14 tables.
  static std::string adapt(const std::string& pattern);

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*
};

enum class SplitBehavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS };

// Splits every piece of `pieces` by the matches of `re` (or, with invert, by
// the gaps between matches). Empty pieces are dropped.
void split(std::vector<std::string>& pieces, const Regex& re, SplitBehavior behavior, bool invert = false);

// The same for a literal delimiter.
void split_literal(std::vector<std::string>& pieces, std::string_view delim, SplitBehavior behavior);

// Splits by [begin,end) match ranges of `piece`.
void split_by_ranges(std::string_view piece, const std::vector<std::pair<size_t, size_t>>& matches,
                     SplitBehavior behavior, bool invert, std::vector<std::string>& out);

}  // namespace hai
