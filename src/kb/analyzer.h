// The analyser turns text into index terms, the same way for documents and
// for queries: NFKC, lowercase, Chinese word segmentation (search mode),
// Snowball stemming of English words, stop words dropped. Queries can also
// be expanded with related terms from a synonym file.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kb/segmenter.h"

struct sb_stemmer;

namespace hai::kb {

class Analyzer {
 public:
  // Uses `segmenter` for Han text (Segmenter::Default() when null).
  explicit Analyzer(std::shared_ptr<const Segmenter> segmenter = nullptr);
  ~Analyzer();
  Analyzer(const Analyzer&) = delete;
  Analyzer& operator=(const Analyzer&) = delete;

  // The index terms of `text`, in order, with repeats.
  std::vector<std::string> Terms(std::string_view text) const;

  // Overlapping character bigrams of the Han runs of `text`, as terms
  // prefixed with '~' ("~大模", "~模型"), which never clash with words.
  // Bigrams that are stop words ("什么") are left out.
  std::vector<std::string> HanBigrams(std::string_view text) const;

  // Query terms with weights: the query's own terms weigh 1 (a single Han
  // character 0.5); related terms from the synonym groups that the query
  // touches weigh `related_weight`. A group is touched when the query
  // contains one of its members (a one-character Han member only when the
  // query's segmentation has it as a word of its own; a Latin member only
  // as a whole word: "AR" is not in "large").
  std::map<std::string, double> QueryTerms(std::string_view query, double related_weight = 0.5) const;

  // Loads synonym groups: one group per line, members separated by ',' or
  // '|' ("大模型,大语言模型,LLM"); '#' starts a comment. A line "a,b => c,d"
  // is one-way: a query with a or b also searches c and d, but c and d do
  // not lead back (for metaphors and colloquialisms: "粮食,养料 => 数据").
  // Replaces any groups loaded before. Throws hai::Error naming the file
  // when unreadable, and file:line for a '=>' without words on both sides.
  void LoadSynonyms(const std::string& path);
  // The default synonym file: $HAI_KB_DATA_DIR/synonyms.txt or the one in
  // the source tree. Silently does nothing when there is none.
  void LoadDefaultSynonyms();

  const Segmenter& segmenter() const { return *segmenter_; }
  // Identifies the analysis, so an index is queried the way it was built.
  std::string kind() const { return segmenter_->kind() + "+snowball-english"; }

  static bool IsStopWord(std::string_view term);

 private:
  std::string Stem(const std::string& word) const;

  std::shared_ptr<const Segmenter> segmenter_;
  mutable std::mutex stem_mu_;  // libstemmer is not thread-safe
  sb_stemmer* stemmer_ = nullptr;
  struct Member {
    std::string text;                // normalised, lowercased
    std::vector<std::string> terms;  // its index terms
    bool key = true;                 // whether it touches the group (left of "=>", or no "=>")
  };
  std::vector<std::vector<Member>> groups_;
};

}  // namespace hai::kb
