// Chinese word segmentation, jieba style: a prefix dictionary of words with
// frequencies, a DAG of every dictionary word starting at each character,
// and dynamic programming for the segmentation of maximum probability
// (P(word) = freq / total). Search mode also yields the 2- and 3-character
// dictionary words inside longer words ("清华大学" -> 清华, 华大, 大学).
// Without a dictionary it falls back to overlapping character bigrams.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hai::kb {

class Segmenter {
 public:
  // A segmenter with no dictionary: character bigrams.
  Segmenter() = default;

  // Loads a jieba dictionary (lines "word freq [tag]"). Throws hai::Error
  // naming the file when it cannot be read or has no valid line.
  static std::shared_ptr<const Segmenter> FromDictionary(const std::string& path);
  // Adds the words of a user dictionary ("word [freq]" lines, '#' comments;
  // freq defaults to 100) to a copy of this segmenter. Throws hai::Error
  // naming the file when it cannot be read.
  std::shared_ptr<const Segmenter> WithUserDictionary(const std::string& path) const;
  // Loads the main dictionary and then a user dictionary into one segmenter
  // (no copy of the large table).
  static std::shared_ptr<const Segmenter> FromDictionaries(const std::string& path, const std::string& user_path);
  // Builds from an in-memory word list (tests).
  static std::shared_ptr<const Segmenter> FromWords(const std::vector<std::pair<std::string, double>>& words);

  // The process-wide default: the dictionary named by $HAI_JIEBA_DICT, else
  // Debian's python3-jieba dictionary, plus the domain user dictionary
  // (user_dict.txt in $HAI_KB_DATA_DIR or the source tree); without the
  // main dictionary, bigrams. Loaded once.
  static std::shared_ptr<const Segmenter> Default();
  static std::string DefaultDictionaryPath();
  // The folder of the analyser's data files (user_dict.txt, synonyms.txt):
  // $HAI_KB_DATA_DIR, else the source tree's src/kb/data; "" if neither.
  static std::string DataDir();

  bool has_dictionary() const { return !freq_.empty(); }
  // "jieba" or "bigram": recorded with each index so queries match it.
  std::string kind() const { return has_dictionary() ? "jieba" : "bigram"; }

  // Segments a run of Han characters (no punctuation, no Latin) into words
  // of maximum probability.
  std::vector<std::u32string> Cut(std::u32string_view han) const;
  // Cut() plus the dictionary sub-words of long words (jieba's cut_for_search).
  // Without a dictionary: the single character for a run of one, else all
  // overlapping bigrams.
  std::vector<std::u32string> CutForSearch(std::u32string_view han) const;

 private:
  void Add(std::u32string word, double freq);
  void LoadUser(const std::string& path);
  double Freq(std::u32string_view w) const;  // 0 when not a word (or only a prefix)

  // Transparent hashing: look up substrings without copying them.
  struct ViewHash {
    using is_transparent = void;
    size_t operator()(std::u32string_view s) const { return std::hash<std::u32string_view>{}(s); }
  };
  std::unordered_map<std::u32string, double, ViewHash, std::equal_to<>> freq_;  // words, and prefixes with 0
  double log_total_ = 0;
  size_t max_len_ = 0;
};

}  // namespace hai::kb
